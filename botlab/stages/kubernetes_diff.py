"""The kubernetes stage's own logic, free of I/O: the rendered bundle read into what the
model should hold, botlab's diff of it against the model's current state, and the rules for
when the model has settled.

The diff works on an empty (or absent) model as well as on a half-deployed one, which is
why botlab does not use Juju's GetChangesMapArgs (it plans for an empty model only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from botlab import names
from botlab.context import Consent
from botlab.drivers.juju import JujuMachine, JujuUnit, ModelStatus, constraint_values
from botlab.pipeline import REFUSED, Change

HOSTNAME_ANNOTATION = "botlab/hostname"
APP_KEYS = frozenset({"charm", "channel", "base", "num_units", "to", "options", "constraints", "expose"})
MACHINE_KEYS = frozenset({"constraints", "annotations", "base"})
BUNDLE_KEYS = frozenset({"description", "name", "default-base", "machines", "applications", "relations"})
KUBELET_WAIT = "waiting for kubelet to start"
CONTROL_PLANE_CHARM = "kubernetes-control-plane"


class BundleProblem(ValueError):
    """The rendered bundle asks for something botlab cannot deploy as asked (one line)."""


# --- what the model should hold ---------------------------------------------------------------


@dataclass(frozen=True)
class WantedMachine:
    hostname: str
    pin_tag: str
    constraints: str  # the bundle machine's constraints (at least tags=<pin tag>)
    base: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    bundle_id: str | None = None  # None: a host with no Kubernetes role (added for its OS)


@dataclass(frozen=True)
class Placement:
    hostname: str
    container: str = ""  # "lxd" for a new container on the host

    def __str__(self) -> str:
        return f"{self.container}:{self.hostname}" if self.container else self.hostname


@dataclass(frozen=True)
class WantedApp:
    name: str
    charm: str
    channel: str | None
    base: str
    options: Mapping[str, Any]
    constraints: str
    expose: bool
    placements: tuple[Placement, ...]  # empty for subordinates

    @property
    def subordinate(self) -> bool:
        return not self.placements


@dataclass(frozen=True)
class Endpoint:
    application: str
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.application}:{self.name}" if self.name else self.application


@dataclass(frozen=True)
class WantedRelation:
    first: Endpoint
    second: Endpoint

    def __str__(self) -> str:
        return f"{self.first} {self.second}"


@dataclass(frozen=True)
class Wanted:
    machines: tuple[WantedMachine, ...]
    applications: Mapping[str, WantedApp]
    relations: tuple[WantedRelation, ...]

    def control_plane(self) -> WantedApp | None:
        found = [a for a in self.applications.values() if a.charm == CONTROL_PLANE_CHARM and a.placements]
        return found[0] if found else None


# --- the typed changes apply executes ----------------------------------------------------------


@dataclass(frozen=True)
class CreateModel(Change):
    model: str = ""


@dataclass(frozen=True)
class AuthorizeKey(Change):
    key: str = ""  # a public key line


@dataclass(frozen=True)
class AddMachine(Change):
    machine: WantedMachine | None = None


@dataclass(frozen=True)
class DeployApp(Change):
    app: WantedApp | None = None


@dataclass(frozen=True)
class AddUnit(Change):
    application: str = ""
    placement: Placement | None = None


@dataclass(frozen=True)
class RemoveUnit(Change):
    """A unit of a bundle application that is on no machine: Juju adds a unit before it
    places it, so a placement that failed (machine gone, dying, another base) leaves it
    unassigned. Juju 3.6's client API cannot assign an existing unit (no AssignUnits call), so
    it is removed (`juju remove-unit`) and the bundle's unit is added again, placed."""

    application: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Relate(Change):
    relation: WantedRelation | None = None


@dataclass(frozen=True)
class Expose(Change):
    application: str = ""


@dataclass(frozen=True)
class SetConfig(Change):
    application: str = ""
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolveUnit(Change):
    unit: str = ""


@dataclass(frozen=True)
class RenameMachine(Change):
    """A renamed host keeps its Juju machine: recorded under the new hostname."""

    hostname: str = ""
    previous: str = ""
    machine: str = ""


@dataclass(frozen=True)
class ForgetMachine(Change):
    """A host that left the inventory: its Juju machine's record is forgotten (action
    `forget`), or, while the machine is still in the model, refused without consent."""

    hostname: str = ""
    machine: str = ""
    units: tuple[str, ...] = ()
    in_model: bool = False  # the machine stays in the model (remembered, not asked about again)


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BundleProblem(f"{where}: expected a string, got {type(value).__name__}")
    return str(value)


def read_bundle(text: str, pin_tags: Mapping[str, str]) -> Wanted:
    """The rendered bundle as botlab deploys it. `pin_tags` maps every inventory hostname to
    its pin tag: each bundle machine must be constrained by exactly one of them, and every
    inventory host that no bundle machine names is added too (for its OS only)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BundleProblem(f"the rendered bundle is not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BundleProblem("the rendered bundle is not a mapping")
    unknown = sorted(set(doc) - BUNDLE_KEYS)
    if unknown:
        raise BundleProblem(f"bundle keys {', '.join(unknown)} are not supported by botlab's deployer"
                            f" (it reads {', '.join(sorted(BUNDLE_KEYS))})")
    default_base = str(doc.get("default-base") or "")
    by_tag = {tag: host for host, tag in pin_tags.items()}

    machines: list[WantedMachine] = []
    host_of: dict[str, str] = {}
    for raw_id, spec in (doc.get("machines") or {}).items():
        mid = str(raw_id)
        spec = spec or {}
        if not isinstance(spec, dict):
            raise BundleProblem(f"machine {mid}: expected a mapping")
        extra = sorted(set(spec) - MACHINE_KEYS)
        if extra:
            raise BundleProblem(f"machine {mid}: keys {', '.join(extra)} are not supported")
        constraints = _text(spec.get("constraints") or "", f"machine {mid}: constraints")
        pinned = [by_tag[t] for t in constraint_values(constraints, "tags") if t in by_tag]
        if len(pinned) != 1:
            raise BundleProblem(
                f"machine {mid}: its constraints ({constraints or 'none'}) must name exactly one"
                " inventory host's pin tag (tags=<lab>-pin-<hostname>), so Juju deploys that host")
        host = pinned[0]
        if host in host_of.values():
            raise BundleProblem(f"machine {mid}: {host} is already bundle machine "
                                f"{next(k for k, v in host_of.items() if v == host)}")
        annotations = {str(k): str(v) for k, v in (spec.get("annotations") or {}).items()}
        machines.append(WantedMachine(host, pin_tags[host], constraints, str(spec.get("base") or default_base),
                                      annotations, mid))
        host_of[mid] = host
    for host, tag in pin_tags.items():
        if host not in host_of.values():
            machines.append(WantedMachine(host, tag, f"tags={tag}", default_base,
                                          {HOSTNAME_ANNOTATION: host}, None))

    apps: dict[str, WantedApp] = {}
    for name, spec in (doc.get("applications") or {}).items():
        name = str(name)
        if not isinstance(spec, dict) or "charm" not in spec:
            raise BundleProblem(f"application {name}: expected a mapping with a charm")
        extra = sorted(set(spec) - APP_KEYS)
        if extra:
            raise BundleProblem(f"application {name}: keys {', '.join(extra)} are not supported by"
                                " botlab's deployer")
        placements = tuple(_placement(name, str(p), host_of) for p in spec.get("to") or [])
        units = spec.get("num_units")
        if units is None:
            units = len(placements)
        if isinstance(units, bool) or not isinstance(units, int) or units < 0:
            raise BundleProblem(f"application {name}: num_units must be a whole number")
        if units != len(placements):
            raise BundleProblem(
                f"application {name}: num_units is {units} but `to` places {len(placements)}: every"
                " unit needs a placement on a bundle machine, so Juju deploys only this lab's hosts")
        options = spec.get("options") or {}
        if not isinstance(options, dict):
            raise BundleProblem(f"application {name}: options must be a mapping")
        channel = spec.get("channel")
        apps[name] = WantedApp(
            name=name,
            charm=_text(spec["charm"], f"application {name}: charm"),
            channel=str(channel) if channel else None,
            base=str(spec.get("base") or default_base),
            options={str(k): v for k, v in options.items()},
            constraints=str(spec.get("constraints") or ""),
            expose=bool(spec.get("expose")),
            placements=placements,
        )

    relations: list[WantedRelation] = []
    for i, pair in enumerate(doc.get("relations") or []):
        if not isinstance(pair, list) or len(pair) != 2:
            raise BundleProblem(f"relations[{i}]: expected a pair of endpoints")
        ends = []
        for raw in pair:
            app, _, endpoint = str(raw).partition(":")
            if app not in apps:
                raise BundleProblem(f"relations[{i}]: {app} is not an application of the bundle")
            ends.append(Endpoint(app, endpoint or None))
        relations.append(WantedRelation(ends[0], ends[1]))
    return Wanted(tuple(machines), apps, tuple(relations))


def _placement(app: str, text: str, host_of: Mapping[str, str]) -> Placement:
    container, _, target = text.rpartition(":")
    if container not in ("", "lxd") or target not in host_of:
        raise BundleProblem(
            f"application {app}: placement {text!r} is not supported: place units on bundle"
            " machines (\"0\") or in containers on them (\"lxd:0\")")
    return Placement(host_of[target], container)


# --- the model's current state ----------------------------------------------------------------


@dataclass
class Current:
    """What the model holds, as the diff reads it. `status` is None before the model exists."""

    status: ModelStatus | None = None
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # application -> option values
    keys: Sequence[str] = ()  # authorized keys, as full lines

    @property
    def exists(self) -> bool:
        return self.status is not None


def match_machines(wanted: Wanted, status: ModelStatus | None, recorded: Mapping[str, str],
                   system_ids: Mapping[str, str] | None = None) -> dict[str, str]:
    """Hostname -> Juju machine id. A machine is a host's when its constraints (or the tags
    MAAS reported) carry the host's pin tag, or, failing that, when its instance is the host's
    MAAS machine (`system_ids`: a renamed host keeps its machine, whose constraints name the
    old pin tag). A pinned machine whose instance is another MAAS machine is not the host's.
    The id botlab recorded wins among several (a dying one may linger), else the lowest.
    Recorded ids are trusted only that far, so a model destroyed and made again, whose ids
    start over, is read right."""
    if status is None:
        return {}
    top = [j for j in status.machines.values() if not j.parent]
    sids = system_ids or {}
    out: dict[str, str] = {}
    for m in wanted.machines:
        sid = sids.get(m.hostname)
        hits = [j for j in top if m.pin_tag in j.tags and not (sid and j.instance_id and j.instance_id != sid)]
        if not hits and sid:
            hits = [j for j in top if j.instance_id == sid]
        if not hits:
            continue
        ids = {j.id for j in hits}
        mine = recorded.get(m.hostname)
        out[m.hostname] = mine if mine in ids else min(ids, key=_id_key)
    return out


def units_on(status: ModelStatus, machine_id: str) -> tuple[str, ...]:
    """Every unit on a machine or in a container on it, subordinates included."""
    return tuple(sorted((u.name for u in status.units.values()
                         if u.machine and u.machine.split("/")[0] == machine_id), key=_unit_key))


def _unit_key(name: str) -> tuple[Any, ...]:
    app, _, number = name.partition("/")
    return (app, int(number) if number.isdigit() else number)


def inventory_edits(lab: str, wanted: Wanted, status: ModelStatus | None, recorded: Mapping[str, str],
                    ids: Mapping[str, str], consent: Consent, removed: Mapping[str, str] | None = None,
                    ) -> list[Change]:
    """What renaming or removing inventory hosts does to the model: a renamed host's machine
    (matched to its new name in `ids`) is recorded under the new name; a host that left the
    inventory while its machine is still in the model is refused without `--remove HOST`
    (then only forgotten: botlab removes nothing from the model). `removed`: hosts removed
    so earlier -> their machine ids, which are not asked about again."""
    gone = set((removed or {}).values())
    current = {m.hostname for m in wanted.machines}
    host_of = {mid: host for host, mid in ids.items()}
    machines = {j.id: j for j in status.machines.values() if not j.parent} if status is not None else {}
    previous: dict[str, str] = {}  # machine id -> the name botlab knew its host by
    for host, mid in recorded.items():
        if host not in current:
            previous.setdefault(mid, host)
    for j in machines.values():  # state lost: a machine pinned to a host the inventory no longer has
        for tag in sorted(j.tags):
            pinned = names.pinned_host(lab, tag)
            if pinned and pinned not in current and j.id not in previous and j.id not in gone:
                previous[j.id] = pinned
    out: list[Change] = []
    for mid, old in sorted(previous.items(), key=lambda kv: _id_key(kv[0])):
        if mid in host_of:
            new = host_of[mid]
            if recorded.get(new) == mid and recorded.get(old) != mid:
                continue  # recorded under its new name already (its constraints keep the old pin tag)
            out.append(RenameMachine("rename", f"machine {new}", f"Juju machine {mid} (was {old}; the same MAAS"
                                     " machine): kept, recorded under the new name", hostname=new, previous=old,
                                     machine=mid))
            continue
        found = machines.get(mid)
        if found is None:
            if old in recorded:
                out.append(ForgetMachine("forget", f"machine {old}", f"left the inventory; its Juju machine {mid}"
                                         " is gone: forget the record", hostname=old, machine=mid))
            continue
        units = units_on(status, mid) if status is not None else ()
        runs = f"runs {', '.join(units)}" if units else f"is deployed ({found.agent_status or 'pending'}, no units)"
        if old not in consent.remove:
            out.append(ForgetMachine(REFUSED, f"machine {old}", f"left the inventory but Juju machine {mid} still"
                                     f" {runs}: botlab would forget it, leaving it running unmanaged. Put it back"
                                     f" in the inventory, or run `botlab up {consent.flag(old)}` to forget it"
                                     f" (then `juju remove-machine {mid}` releases it)", hostname=old, machine=mid,
                                     units=units, in_model=True))
        else:
            out.append(ForgetMachine("forget", f"machine {old}", f"left the inventory; {consent.flag(old)} given:"
                                     f" Juju machine {mid} ({runs.removeprefix('runs ')}) is forgotten and keeps"
                                     f" running until `juju remove-machine {mid}`", hostname=old, machine=mid,
                                     units=units, in_model=True))
    return out


def _id_key(machine_id: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in machine_id.split("/"))


def host_lookup(ids: Mapping[str, str]) -> Callable[[str], str]:
    """From hostname -> machine id: a function naming the host a unit's machine is on (the
    machine itself, `3`, or a container on it, `3/lxd/0`); "" for none of them."""
    host_of = {mid: host for host, mid in ids.items()}
    return lambda machine_id: host_of.get(machine_id.split("/")[0], "")


def option_text(value: Any) -> str:
    """An option value as Juju's config strings spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


# --- the diff ---------------------------------------------------------------------------------


@dataclass
class Diff:
    """What apply must do, in its order, plus what is already in place."""

    create_model: bool = False
    add_key: bool = False
    machines: list[WantedMachine] = field(default_factory=list)
    deploy: list[WantedApp] = field(default_factory=list)
    units: dict[str, list[Placement]] = field(default_factory=dict)
    relations: list[WantedRelation] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    config: dict[str, dict[str, str]] = field(default_factory=dict)
    conflicts: list[Change] = field(default_factory=list)
    in_place: list[Change] = field(default_factory=list)
    machine_ids: dict[str, str] = field(default_factory=dict)  # hostname -> machine id already there
    resolve: list[str] = field(default_factory=list)  # units in error: their failed hook is retried
    orphans: list[str] = field(default_factory=list)  # units on no machine (a failed placement): removed

    @property
    def empty(self) -> bool:
        return not (self.create_model or self.add_key or self.machines or self.deploy or self.units
                    or self.relations or self.expose or self.config or self.resolve or self.conflicts
                    or self.orphans)

    def changes(self, model: str, controller: str, key: str) -> list[Change]:
        """The typed changes apply executes, in its order, then what is in place."""
        out: list[Change] = []
        if self.create_model:
            out.append(CreateModel("create", f"model {model}", f"not on controller {controller}", model=model))
        if self.add_key:
            out.append(AuthorizeKey("add", f"ssh key {key_name(key)}", "the operator's key (ssh.public_key) is"
                                    " not among the model's authorized keys", key=key))
        for m in self.machines:
            role = f"bundle machine {m.bundle_id}" if m.bundle_id is not None else "no Kubernetes role: for its OS"
            out.append(AddMachine("add", f"machine {m.hostname}", f"{role}; constraints {m.constraints}", machine=m))
        for app in self.deploy:
            units = f"{len(app.placements)} unit(s)" if app.placements else "subordinate"
            units += ", exposed" if app.expose else ""
            channel = f" from {app.channel}" if app.channel else ""
            out.append(DeployApp("deploy", f"application {app.name}", f"charm {app.charm}{channel}, {units}", app=app))
        for unit in self.orphans:
            owner = unit.split("/", 1)[0]
            again = " and its unit added again, placed" if self.units.get(owner) else ""
            out.append(RemoveUnit("remove", f"unit {unit}", "on no machine: left unassigned by a failed placement"
                                  f" (Juju cannot assign an existing unit); removed{again}", application=owner,
                                  unit=unit))
        for name, placements in sorted(self.units.items()):
            for p in placements:
                where = f"in a new {p.container} container on {p.hostname}" if p.container else f"on {p.hostname}"
                out.append(AddUnit("add", f"unit {name} {where}", "placed by the bundle", application=name,
                                   placement=p))
        for rel in self.relations:
            out.append(Relate("relate", f"relation {rel}", "in the bundle, not in the model", relation=rel))
        deployed = {a.name for a in self.deploy}
        for name in self.expose:
            if name not in deployed:
                out.append(Expose("expose", f"application {name}", "the bundle exposes it", application=name))
        for name, options in sorted(self.config.items()):
            shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
            out.append(SetConfig("config", f"application {name}", f"set {shown}", application=name,
                                 options=dict(options)))
        for unit in self.resolve:
            out.append(ResolveUnit("resolve", f"unit {unit}", "in error: retry its failed hook (juju resolved)",
                                   unit=unit))
        out.extend(self.conflicts)
        out.extend(self.in_place)
        return out


def key_name(key: str) -> str:
    """A public key as messages name it: its comment, else its type."""
    parts = key.split()
    return parts[2] if len(parts) > 2 else parts[0] if parts else ""


def diff(wanted: Wanted, current: Current, operator_key: str, recorded: Mapping[str, str],
         system_ids: Mapping[str, str] | None = None) -> Diff:
    """What apply must do to make the model hold `wanted`. Nothing is ever removed: what the
    model holds beyond the bundle is left as it is."""
    out = Diff()
    status = current.status
    if status is None:
        out.create_model = True
    if not has_key(current.keys, operator_key):
        out.add_key = True
    elif status is not None:
        out.in_place.append(Change("ok", "ssh key", "the operator's key is authorized"))
    ids = match_machines(wanted, status, recorded, system_ids)
    out.machine_ids = ids
    for m in wanted.machines:
        if m.hostname in ids:
            assert status is not None  # machines are matched in the model only
            j = status.machines[ids[m.hostname]]
            out.in_place.append(Change("ok", f"machine {m.hostname}",
                                       f"Juju machine {ids[m.hostname]} ({j.agent_status or 'pending'})"))
        else:
            out.machines.append(m)

    for app in wanted.applications.values():
        found = status.applications.get(app.name) if status else None
        if found is None:
            out.deploy.append(app)
            if app.placements:
                out.units[app.name] = list(app.placements)
            if app.expose:
                out.expose.append(app.name)
            continue
        if found.charm and found.charm != app.charm:
            out.conflicts.append(Change(
                "conflict", f"application {app.name}",
                f"the model runs charm {found.charm}, the bundle asks for {app.charm}: botlab does not"
                f" replace applications; remove it (`juju remove-application {app.name}`) or rename it"
                " in the bundle, then run `botlab up`"))
            continue
        if app.channel and found.channel and found.channel != app.channel:
            out.conflicts.append(Change(
                "conflict", f"application {app.name}",
                f"deployed from {found.channel}, the bundle asks for {app.channel}: botlab does not"
                f" refresh charms; run `juju refresh {app.name} --channel {app.channel}`, then `botlab up`"))
        assert status is not None  # `found` is in it
        if not app.subordinate:
            out.orphans.extend(sorted((u.name for u in status.units.values()
                                       if u.application == app.name and not u.principal and not u.machine),
                                      key=_unit_key))
        missing = _missing_units(app, status, ids)
        if missing:
            out.units[app.name] = missing
        if app.expose and not found.exposed:
            out.expose.append(app.name)
        have = current.config.get(app.name, {})
        changed = {k: option_text(v) for k, v in app.options.items()
                   if k not in have or option_text(have[k]) != option_text(v)}
        if changed:
            out.config[app.name] = changed
        if not missing and not changed and not (app.expose and not found.exposed) and not any(
                u.split("/", 1)[0] == app.name for u in out.orphans):
            units = len(app.placements)
            out.in_place.append(Change("ok", f"application {app.name}",
                                       f"{units} unit(s), options as in the bundle" if units
                                       else "subordinate, options as in the bundle"))

    for rel in wanted.relations:
        if status is None or not _in_model(rel, status):
            out.relations.append(rel)
    if status is not None:
        out.resolve = sorted(u.name for u in status.units.values() if u.workload == "error")
    if status is not None and wanted.relations and len(out.relations) < len(wanted.relations):
        out.in_place.append(Change("ok", "relations",
                                   f"{len(wanted.relations) - len(out.relations)} of {len(wanted.relations)}"
                                   " in place"))
    return out


def has_key(keys: Iterable[str], key: str) -> bool:
    """Keys compare by their type and base64 body, not their comment."""
    wanted = key.split()[:2]
    return any(k.split()[:2] == wanted for k in keys)


def _missing_units(app: WantedApp, status: ModelStatus, ids: Mapping[str, str]) -> list[Placement]:
    """Placements of `app` with no unit of it there yet (on the host's machine, or in a
    container on it); as many as the bundle places on the same spot."""
    have: Counter[tuple[str, str]] = Counter()
    for unit in status.units.values():
        if unit.application != app.name or unit.principal or not unit.machine:
            continue
        head, _, rest = unit.machine.partition("/")  # "0/lxd/1": "0", "lxd/1"
        machine = status.machines.get(unit.machine)
        host_machine = machine.parent if machine is not None and machine.parent else head
        have[(host_machine, rest.partition("/")[0])] += 1
    missing: list[Placement] = []
    for p in app.placements:
        mid = ids.get(p.hostname)
        key = (mid or "", p.container)
        if mid is not None and have[key] > 0:
            have[key] -= 1
        else:
            missing.append(p)
    return missing


def _in_model(rel: WantedRelation, status: ModelStatus) -> bool:
    return any(_relation_matches(rel, r.endpoints) for r in status.relations)


def _relation_matches(rel: WantedRelation, endpoints: Sequence[tuple[str, str]]) -> bool:
    if len(endpoints) != 2:
        return False
    (a1, e1), (a2, e2) = endpoints

    def fits(want: Endpoint, app: str, ep: str) -> bool:
        return want.application == app and (want.name is None or want.name == ep)

    return (fits(rel.first, a1, e1) and fits(rel.second, a2, e2)) or (
        fits(rel.first, a2, e2) and fits(rel.second, a1, e1))


# --- settling ---------------------------------------------------------------------------------


@dataclass
class Settle:
    """Where the model stands against the bundle while units settle."""

    pending: list[str] = field(default_factory=list)  # "unit (why)" / "machine (why)"
    errors: dict[str, str] = field(default_factory=dict)  # unit name or hostname -> what went wrong
    machine_errors: set[str] = field(default_factory=set)  # hostnames among `errors`
    rows: dict[str, tuple[str, str]] = field(default_factory=dict)  # display key -> (state, detail)

    @property
    def done(self) -> bool:
        return not self.pending and not self.errors


def _carriers(wanted: Wanted, status: ModelStatus) -> dict[str, list[str]]:
    """Principal application -> the bundle's subordinates that ride on its units: those
    related to it over a container-scoped relation, as the model reports the scope."""
    out: dict[str, set[str]] = {}
    for rel in status.relations:
        if rel.scope != "container" or len(rel.endpoints) != 2:
            continue
        (a, _), (b, _) = rel.endpoints
        for principal, sub in ((a, b), (b, a)):
            wanted_sub = wanted.applications.get(sub)
            wanted_principal = wanted.applications.get(principal)
            if wanted_sub and wanted_sub.subordinate and wanted_principal and not wanted_principal.subordinate:
                out.setdefault(principal, set()).add(sub)
    return {k: sorted(v) for k, v in out.items()}


def unit_settled(unit: JujuUnit, *, docker_gpu_host: bool) -> bool:
    """active/idle; with the docker runtime, a worker on a GPU host waiting for the NVIDIA
    runtime ("Waiting for kubelet to start.") also counts: the gpu stage finishes it."""
    if unit.agent != "idle":
        return False
    if unit.workload == "active":
        return True
    return docker_gpu_host and unit.workload == "waiting" and KUBELET_WAIT in unit.workload_message.lower()


def settle(wanted: Wanted, status: ModelStatus, ids: Mapping[str, str], *, docker: bool,
           gpu_hosts: Iterable[str]) -> Settle:
    """Machines started, every placed unit there, every subordinate on its principals, all
    units settled; errors (a failed hook, a machine MAAS could not deploy) named."""
    out = Settle()
    host = host_lookup(ids)
    gpu = set(gpu_hosts)

    for m in wanted.machines:
        mid = ids.get(m.hostname)
        j: JujuMachine | None = status.machines.get(mid) if mid else None
        if j is None:
            out.pending.append(f"{m.hostname} (no Juju machine yet)")
            out.rows[m.hostname] = ("waiting", "no Juju machine yet")
            continue
        label = f"machine {j.id}"
        if j.instance_status in ("provisioning error", "error") or j.agent_status == "error":
            message = j.instance_message or j.agent_message or j.instance_status
            state = j.instance_status or j.agent_status
            out.errors[m.hostname] = f"{m.hostname} (Juju machine {j.id}): {state}: {message}"
            out.machine_errors.add(m.hostname)
            out.rows[m.hostname] = (j.instance_status or "error", f"{label}: {message}")
        elif j.agent_status != "started":
            why = j.instance_message or j.instance_status or j.agent_status or "pending"
            out.pending.append(f"{m.hostname} (machine {j.id}: {j.instance_status or 'pending'}: {why})")
            out.rows[m.hostname] = (j.instance_status or "pending", f"{label}: {why}")
        else:
            out.rows[m.hostname] = ("started", f"{label} ({j.hostname or m.hostname})")

    for rel in wanted.relations:
        if not _in_model(rel, status):
            out.pending.append(f"relation {rel} (not in the model yet)")
    carried_by = _carriers(wanted, status)
    units_by_app: dict[str, list[JujuUnit]] = {}
    for unit in status.units.values():
        units_by_app.setdefault(unit.application, []).append(unit)
    for app in wanted.applications.values():
        units = units_by_app.get(app.name, [])
        if app.name not in status.applications:
            out.pending.append(f"application {app.name} (not deployed yet)")
            continue
        principals = [u for u in units if not u.principal]
        if not app.subordinate and len(principals) < len(app.placements):
            short = len(app.placements) - len(principals)
            out.pending.append(f"application {app.name} ({short} unit(s) not added yet)")
        for sub in carried_by.get(app.name, ()):
            carried = {u.principal for u in units_by_app.get(sub, [])}
            for unit in principals:
                if unit.name not in carried:
                    out.pending.append(f"{unit.name} (no {sub} subordinate yet)")
        for unit in sorted(units, key=lambda u: _id_key(u.name.split("/", 1)[1])):
            where = host(unit.machine)
            machine = f"machine {unit.machine}" + (f" ({where})" if where else "") if unit.machine else "no machine yet"
            detail = f"{app.name} on {machine}: {unit.workload_message or unit.agent_message or '-'}"
            state = f"{unit.workload or 'unknown'}/{unit.agent or 'allocating'}"
            out.rows[unit.name] = (state, detail)
            if unit.workload == "error":
                out.errors[unit.name] = f"{unit.name} on {machine}: {unit.workload_message or 'error'}"
            elif not unit_settled(unit, docker_gpu_host=docker and where in gpu):
                message = unit.workload_message or unit.agent_message
                out.pending.append(f"{unit.name} on {machine} ({unit.workload or 'unknown'}/"
                                   f"{unit.agent or 'allocating'}{': ' + message if message else ''})")
    return out
