"""Units and their placement (Juju bundlechanges' unitProcessor, empty model): one addUnit per
unit, then each application's `to:` directives turn into targets, extra addMachines for new
machines and containers, and `requires` that order units after what they land on."""

from __future__ import annotations

from dataclasses import dataclass, field

from botlab.lab.juju.bundle_base import Base
from botlab.lab.juju.bundle_changeset import Change, ChangeSet, Sequence, machine_args, placeholder
from botlab.lab.juju.bundle_data import ApplicationSpec, BundleData
from botlab.lab.juju.bundle_parse import BundleChangesError, UnitPlacement, go_quote, natural_sorted, parse_placement
from botlab.lab.juju.bundle_resolver import application_base


@dataclass
class Placed:
    """Where one unit goes: `target` ("" = a new machine Juju picks), the top-level machine
    number it lands on, and the changes it must wait for."""

    target: str = ""
    base_machine: str = ""
    requires: list[str] = field(default_factory=list)


def handle_units(
    data: BundleData,
    default: Base,
    applications: dict[str, str],
    machines: dict[str, Change],
    changes: ChangeSet,
    sequence: Sequence,
) -> None:
    """Add and place every unit; BundleChangesError on a placement cycle or an unused machine."""
    processor = UnitProcessor(data, default, applications, machines, changes, sequence)
    processor.add_all_units()
    processor.place_all_units()
    check_all_machines_used(data, machines, changes)


class UnitProcessor:
    """The state unit placement needs while it walks the applications."""

    def __init__(
        self,
        data: BundleData,
        default: Base,
        applications: dict[str, str],
        machines: dict[str, Change],
        changes: ChangeSet,
        sequence: Sequence,
    ) -> None:
        self.data, self.default, self.changes, self.sequence = data, default, changes, sequence
        self.applications, self.machines = applications, machines
        self.app_names = natural_sorted(data.applications)
        self.unit_changes: dict[str, Change] = {}
        self.app_units: dict[str, list[Change]] = {}
        self.units_to_follow: dict[str, list[Change]] = {}
        self.machine_change_ids = {c.id for c in machines.values()}

    def app(self, name: str) -> ApplicationSpec:
        """The (verified, hence present) application `name`."""
        app = self.data.applications.get(name)
        return app if app is not None else ApplicationSpec()

    def add_all_units(self) -> None:
        """One addUnit per unit, application by application; placement fills them in later."""
        for name in self.app_names:
            for index in range(self.app(name).num_units):
                deploy = self.applications[name]
                change = self.changes.add("addUnit", {"application": placeholder(deploy)}, [deploy])
                self.unit_changes[f"{name}/${index}"] = change
                self.app_units.setdefault(name, []).append(change)

    def place_all_units(self) -> None:
        """Place applications in passes, each once the applications it refers to are placed."""
        done: set[str] = set()
        todo = set(self.app_names)
        while todo:
            placed_now = 0
            for name in sorted(todo):
                if _placement_dependencies(self.app(name)) - done:
                    continue
                self.place_units(name)
                done.add(name)
                todo.discard(name)
                placed_now += 1
            if not placed_now:
                raise BundleChangesError("cycle in placement directives for: " + ", ".join(sorted(todo)))

    def place_units(self, name: str) -> None:
        """Give each unit of `name` its directive (the last one repeats if it names an
        application or `new`), target and requirements; units follow each other."""
        app = self.app(name)
        remaining = list(app.to)
        repeat = _repeatable(app.to[-1]) if app.to else ""
        previous = ""
        for index in range(app.num_units):
            directive = remaining.pop(0) if remaining else repeat
            placed = self.placement_for(name, app, directive)
            change = self.unit_changes[f"{name}/${index}"]
            change.base_machine = placed.base_machine
            if placed.target:
                change.args["to"] = placed.target
            change.requires += placed.requires + ([previous] if previous else [])
            previous = change.id

    def placement_for(self, name: str, app: ApplicationSpec, directive: str) -> Placed:
        """Where a unit with this directive goes ("" = a fresh machine chosen at deploy time)."""
        if not directive:
            return Placed(base_machine=self.sequence.next_machine())
        try:
            placement = parse_placement(directive)
        except ValueError:
            return Placed()
        if placement.machine == "new":
            return self.new_machine(app, placement.container_type)
        if placement.machine:
            return self.bundle_machine(app, placement)
        if placement.unit >= 0:
            return self.next_to_unit(app, placement)
        return self.next_to_application(name, app, placement)

    def new_machine(self, app: ApplicationSpec, container_type: str) -> Placed:
        """`new` or `lxd:new`: an addMachines change (with the container type, if any)."""
        machine = self.sequence.next_machine()
        if container_type:
            self.sequence.next_container(machine, container_type)
        args = machine_args(self.base(app), self.constraints(app), container_type)
        change = self.add_machine_change(args, set())
        return Placed(placeholder(change.id), machine, [change.id])

    def bundle_machine(self, app: ApplicationSpec, placement: UnitPlacement) -> Placed:
        """`2` or `lxd:2`: the bundle machine itself, or a new container on it."""
        change = self.machines[placement.machine]
        placed = Placed(placeholder(change.id), change.machine, [change.id])
        return self.add_container(placed, app, placement.container_type) if placement.container_type else placed

    def next_to_unit(self, app: ApplicationSpec, placement: UnitPlacement) -> Placed:
        """`app/2` or `lxd:app/2`: the same machine as that unit, or a sibling container."""
        other = self.unit_changes.get(f"{placement.application}/${placement.unit}")
        if other is None:
            return self.new_machine(app, placement.container_type)
        return self.next_to_change(other, app, placement.container_type)

    def next_to_application(self, name: str, app: ApplicationSpec, placement: UnitPlacement) -> Placed:
        """`app` or `lxd:app`: next to the next unit of `app` not yet used by `name`."""
        queue = self.units_to_follow.setdefault(
            f"{name}/{placement.application}", list(self.app_units.get(placement.application, []))
        )
        if not queue:
            return Placed(base_machine=self.sequence.next_machine())
        return self.next_to_change(queue.pop(0), app, placement.container_type)

    def next_to_change(self, other: Change, app: ApplicationSpec, container_type: str) -> Placed:
        """Onto the machine of another unit change, or into a new container beside it."""
        placed = Placed(placeholder(other.id), other.base_machine, [other.id])
        return self.add_container(placed, app, container_type) if container_type else placed

    def add_container(self, host: Placed, app: ApplicationSpec, container_type: str) -> Placed:
        """A container of `container_type` whose parent is the host placement's target."""
        self.sequence.next_container(host.base_machine, container_type)
        args = machine_args(self.base(app), self.constraints(app), container_type, host.target)
        change = self.add_machine_change(args, set(host.requires))
        return Placed(placeholder(change.id), host.base_machine, [change.id])

    def add_machine_change(self, args: dict[str, object], requires: set[str]) -> Change:
        """An addMachines change that waits for every machine added before it."""
        change = self.changes.add("addMachines", dict(args), sorted(requires | self.machine_change_ids))
        self.machine_change_ids.add(change.id)
        return change

    def base(self, app: ApplicationSpec) -> Base:
        """The base for a machine made for one of `app`'s units."""
        return application_base(app, self.default)

    def constraints(self, app: ApplicationSpec) -> str:
        """The constraints for a machine made for one of `app`'s units."""
        return constraints_with_bindings(app.constraints, app.bindings)


def _placement_dependencies(app: ApplicationSpec) -> set[str]:
    """Applications named in `app`'s placement directives."""
    names = set()
    for directive in app.to:
        try:
            names.add(parse_placement(directive).application)
        except ValueError:
            continue
    return names - {""}


def _repeatable(directive: str) -> str:
    """The last directive if it may fill the remaining units (`new` or a whole application)."""
    try:
        placement = parse_placement(directive)
    except ValueError:
        return ""
    if placement.machine == "new" or (placement.application and placement.unit == -1):
        return directive
    return ""


def constraints_with_bindings(constraints: str, bindings: dict[str, str]) -> str:
    """`constraints` with a spaces= entry covering every space endpoints are bound to."""
    positive = set(bindings.values())
    if not positive:
        return constraints
    values, keys = _split_constraints(constraints)
    negative = set()
    for space in values.get("spaces", "").split(",") if values.get("spaces") else []:
        if not space.startswith("^"):
            positive.add(space)
            continue
        negative.add(space[1:])
        if space[1:] in positive:
            raise BundleChangesError(f"space {go_quote(space[1:])} is required but it's forbidden by constraint")
    spaces = natural_sorted([*positive, *("^" + s for s in negative)])
    return "spaces=" + ",".join(spaces) + "".join(f" {k}={values[k]}" for k in natural_sorted(keys))


def _split_constraints(constraints: str) -> tuple[dict[str, str], list[str]]:
    """name -> value, and the names other than spaces in order of appearance."""
    values: dict[str, str] = {}
    keys: list[str] = []
    items = constraints.split(" ") if constraints else []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise BundleChangesError(f"invalid constraint: {go_quote(item)} {go_quote(constraints)} {len(items)}")
        values[key] = value
        if key != "spaces":
            keys.append(key)
    return values, keys


def check_all_machines_used(data: BundleData, machines: dict[str, Change], changes: ChangeSet) -> None:
    """Every bundle machine must host something (else Juju reports an inconsistent machine map)."""
    dependents = changes.dependents()
    for name in natural_sorted(machines):
        if dependents.get(machines[name].id):
            continue
        message = "bundle and machine mapping are inconsistent: need an explicit entry mapping bundle machine "
        message += go_quote(name)
        hosts = natural_sorted(app for app, spec in data.applications.items() if spec and name in spec.to)
        raise BundleChangesError(message + (f" - the target should host [{', '.join(hosts)}]" if hosts else ""))
