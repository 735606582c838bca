"""Units: placement on machines, the unit agent's life cycle, leadership, subordinates, unit
faults, and the Application facade's unit calls (AddUnits, DestroyUnit, ResolveUnitErrors,
UnitsInfo, Leader).

AddUnits adds each unit first and then places it, as Juju does: a placement that fails
leaves the unit in the model on no machine ("waiting for machine") and answers `acquiring
machine to host unit "x/N": <why>` with the cause's code.

A unit agent runs as a task on the emulator's loop, as jujud does on the machine:

1. allocating: agent "allocating", workload waiting "waiting for machine" until its machine
   has started (machines.wait_started; a subordinate waits for its principal's install);
2. install: agent executing "running install hook", workload maintenance "installing charm
   software", then leader-elected (the leader), config-changed and start hooks;
3. settled: relation hooks for each related application with an installed unit ("running
   db-relation-changed hook"), queued actions, then the workload status its charm decides
   (catalogue.Behaviour: config checks, required relations, host gates, active message)
   and agent "idle". It wakes on relation, config, fault and leadership changes and every
   update-status period.

A failing hook (an injected unit fault) leaves the unit in workload "error" with
`hook failed: "<hook>"` (agent idle), as Juju shows it; `ResolveUnitErrors` (libjuju
`unit.resolved()`) re-runs the hook (retry) or skips it, and with the model's
`automatically-retry-hooks` (default true) the agent retries by itself after
`retry_s`, doubling. Timings: catalogue.timings(controller).

Unit faults (documented in docs/lab-juju.md): `inject_unit_fault(juju, {...})` from any thread,
`inject_unit_fault_now(controller, {...})` on the loop, or the spec's `juju.charms.unit_faults`:

    {kind: error, hook: install, application: etcd, count: 1}        # hook failed: "install"
    {kind: error, hook: config-changed, unit: etcd/0, count: always}
    {kind: blocked, application: kubernetes-worker, message: "nvidia driver missing"}
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botlab.lab.faults import ActiveFaults
from botlab.lab.juju import catalogue, errors, machines
from botlab.lab.juju.appstate import App, Unit, World, base_api, existing_world, log_event, world_of
from botlab.lab.juju.errors import JujuApiError, bulk
from botlab.lab.juju.facades import CallContext, facade_method
from botlab.lab.juju.faults import FaultError, parse_count, use_hit
from botlab.lab.juju.state import ControllerState, ModelState

if TYPE_CHECKING:
    from botlab.lab.juju.emulator import JujuEmulator

MAX_RETRY_FACTOR = 60  # automatic retries back off up to retry_s * 60 (5 s -> 5 min, Juju's cap)

# --- unit faults ---------------------------------------------------------------------------------

FAULT_FIELDS = ("kind", "hook", "application", "unit", "model", "message", "count")
FAULT_KINDS = ("error", "blocked")


@dataclass
class UnitFault:
    id: int
    kind: str  # error: a hook fails; blocked: the workload is blocked with `message`
    hook: str  # for error: the hook that fails ("install", "config-changed", "start", ...)
    application: str | None
    unit: str | None
    model: str | None  # name or UUID
    message: str
    count: int | None  # None: always
    hits: int = 0

    def matches(self, model: ModelState, unit: Unit) -> bool:
        if self.model is not None and self.model not in (model.name, model.uuid):
            return False
        if self.unit is not None and self.unit != unit.name:
            return False
        return self.application is None or self.application == unit.app.name

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "count": self.count, "hits": self.hits}
        for name in ("hook", "application", "unit", "model", "message"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


def load_unit_fault(data: Mapping[str, Any], fault_id: int = 0) -> UnitFault:
    if not isinstance(data, Mapping):
        raise FaultError("a unit fault is a mapping")
    unknown = sorted(set(data) - set(FAULT_FIELDS))
    if unknown:
        raise FaultError(f"unit_fault.{unknown[0]}: unknown setting (known: {', '.join(FAULT_FIELDS)})")
    kind = data.get("kind", "error")
    if kind not in FAULT_KINDS:
        raise FaultError(f"unit_fault.kind: must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    for name in ("hook", "application", "unit", "model", "message"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise FaultError(f"unit_fault.{name}: must be a string")
    count = parse_count(data.get("count", 1 if kind == "error" else "always"), "unit_fault")
    if kind == "blocked" and not data.get("message"):
        raise FaultError("unit_fault.message: a blocked fault needs the status message")
    unit = data.get("unit")
    if unit is not None and (unit.count("/") != 1 or not unit.rpartition("/")[2].isdigit()):
        raise FaultError(f"unit_fault.unit: {unit!r} is not a unit name (app/N)")
    return UnitFault(
        id=fault_id, kind=str(kind), hook=str(data.get("hook") or ("install" if kind == "error" else "")),
        application=data.get("application"), unit=unit, model=data.get("model"),
        message=str(data.get("message") or ""), count=count,
    )


class FaultBook(ActiveFaults[UnitFault]):
    """Active unit faults; hook failures use up hits, blocked faults hold until cleared."""

    def add(self, data: Mapping[str, Any]) -> UnitFault:
        return self._add(lambda fault_id: load_unit_fault(data, fault_id))

    def take_hook_failure(self, model: ModelState, unit: Unit, hook: str) -> UnitFault | None:
        """The error fault that makes this hook fail now (one hit used), or None."""
        with self._lock:
            for fault in list(self._faults):
                if fault.kind == "error" and fault.hook == hook and fault.matches(model, unit):
                    use_hit(fault, self._faults)
                    return fault
        return None

    def blocked(self, model: ModelState, unit: Unit) -> UnitFault | None:
        with self._lock:
            return next((f for f in self._faults if f.kind == "blocked" and f.matches(model, unit)), None)

    def remove_matching(self, **match: str) -> int:
        """Remove the faults whose fields equal `match` (all of them for no `match`); how many."""
        with self._lock:
            doomed = [f for f in self._faults if all(getattr(f, k, None) == v for k, v in match.items())]
            for fault in doomed:
                self._faults.remove(fault)
        return len(doomed)


_BOOKS: weakref.WeakKeyDictionary[ControllerState, FaultBook] = weakref.WeakKeyDictionary()


def fault_book(controller: ControllerState) -> FaultBook:
    book = _BOOKS.get(controller)
    if book is None:
        book = _BOOKS[controller] = FaultBook()
        juju = controller.spec.extra.get("juju")
        charms = juju.get("charms") if isinstance(juju, Mapping) else None
        configured = charms.get("unit_faults") if isinstance(charms, Mapping) else None
        for item in configured or []:
            book.add(item)
    return book


def _poke_all(controller: ControllerState) -> None:
    for model in controller.models.values():
        found = existing_world(model)
        if found is not None:
            for unit in found.units():
                unit.poke()


def inject_unit_fault_now(controller: ControllerState, fault: Mapping[str, Any]) -> dict[str, Any]:
    """Add a unit fault (on the emulator's loop); returns it described."""
    added = fault_book(controller).add(fault)
    controller.events.record("unit-fault-injected", fault=added.describe())
    _poke_all(controller)
    return added.describe()


def clear_unit_faults_now(controller: ControllerState, **match: str) -> int:
    """Remove unit faults (all, or those whose fields equal `match`); returns how many."""
    count = fault_book(controller).remove_matching(**match)
    controller.events.record("unit-faults-cleared", count=count, match=dict(match))
    _poke_all(controller)
    return count


def inject_unit_fault(juju: JujuEmulator, fault: Mapping[str, Any]) -> dict[str, Any]:
    """`inject_unit_fault_now` from any thread."""
    return juju.call(lambda: inject_unit_fault_now(juju.state, fault))


def clear_unit_faults(juju: JujuEmulator, **match: str) -> int:
    return juju.call(lambda: clear_unit_faults_now(juju.state, **match))


def unit_faults(juju: JujuEmulator) -> list[dict[str, Any]]:
    return juju.call(lambda: fault_book(juju.state).describe())


def recheck(juju: JujuEmulator) -> None:
    """Make every unit re-evaluate its status now (after a host probe's answer changed)."""
    juju.call(lambda: _poke_all(juju.state))


# --- placement -----------------------------------------------------------------------------------


async def place(ctx: CallContext, w: World, app: App, placement: Mapping[str, Any] | None) -> str:
    """The machine a new principal unit goes to, adding one where the placement asks (or
    none is given), as Juju's unit assignment does; returns its id."""
    model = w.model
    merged = {**model.constraints, **app.constraints}
    base = base_api(app.base)
    if not placement:
        return str(await machines.add_machine(ctx, model, constraints=merged, base=base))
    scope = str(placement.get("scope") or "")
    directive = str(placement.get("directive") or "")
    if scope == "#":
        existing = machines.machine(model, directive)
        if existing is None:
            raise errors.not_found(f"machine {directive} not found")
        if existing.get("life", "alive") != "alive":
            raise JujuApiError(f"machine {directive} is not alive")
        machine_base = str(existing.get("base") or "")
        if machine_base and catalogue.normalize_base(machine_base) != app.base:
            raise JujuApiError(f'cannot assign unit to machine {directive}: base does not match: unit has '
                               f'"{app.base}", machine has "{machine_base}"')
        return directive
    if scope in ("lxd", "kvm"):  # a new container, on machine `directive` ("": on a new machine)
        return str(await machines.add_machine(ctx, model, container_type=scope, parent_id=directive,
                                              base=base, constraints=merged))
    return str(await machines.add_machine(ctx, model, placement=dict(placement), constraints=merged, base=base))


def new_unit(w: World, app: App, *, principal: str = "", machine_id: str = "") -> Unit:
    unit = Unit(app, app.next_unit, principal=principal, machine_id=machine_id)
    app.next_unit += 1
    app.units[unit.number] = unit
    if not any(u.leader for u in app.alive_units() if u is not unit):
        unit.leader = True
    w.publish_unit(unit)
    w.event("unit-added", unit=unit.name, machine=machine_id, principal=principal)
    unit.task = w.controller.spawn(run_agent(w, unit), name=f"unit-{w.model.name}-{unit.name}")
    return unit


async def add_units(ctx: CallContext, w: World, app: App, count: int,
                    placements: Iterable[Mapping[str, Any] | None] = ()) -> list[Unit]:
    """Juju's AddUnits: `count` units, the first ones placed per `placements`."""
    if app.subordinate:
        raise JujuApiError(f'cannot add unit to application "{app.name}": application is subordinate')
    if app.life != "alive":
        raise JujuApiError(f'application "{app.name}" is not alive')
    wanted = list(placements)
    out = []
    for i in range(count):
        # Juju's addUnits (apiserver/facades/client/application): the unit is added first,
        # then assigned; a placement that fails leaves it in the model, unassigned.
        unit = new_unit(w, app)
        out.append(unit)
        try:
            unit.machine_id = await place(ctx, w, app, wanted[i] if i < len(wanted) else None)
        except JujuApiError as exc:
            w.event("unit-unassigned", unit=unit.name, error=exc.message)
            raise JujuApiError(f'acquiring machine to host unit "{unit.name}": {exc.message}', exc.code,
                               exc.info) from None
        w.publish_unit(unit)
        unit.poke()
    return out


def ensure_subordinates(w: World) -> None:
    """Every installed principal unit related to a subordinate application over a container-
    scoped relation gets its unit of that subordinate (created when the principal's agent
    enters the relation, as in Juju)."""
    for rel in list(w.relations.values()):
        if rel.life != "alive" or rel.scope != "container" or rel.is_peer:
            continue
        apps = [w.apps.get(name) for name in rel.applications()]
        subs = [a for a in apps if a is not None and a.subordinate and a.life == "alive"]
        principals = [a for a in apps if a is not None and not a.subordinate]
        for sub in subs:
            for principal_app in principals:
                for punit in principal_app.alive_units():
                    if not punit.installed:
                        continue
                    if any(s.app is sub for s in w.subordinates_of(punit.name)):
                        continue
                    new_unit(w, sub, principal=punit.name, machine_id=punit.machine_id)


# --- the agent -----------------------------------------------------------------------------------


def _publish(w: World, unit: Unit) -> None:
    w.publish_unit(unit)
    w.publish_app(unit.app)


def _machine_data(w: World, unit: Unit) -> dict[str, Any] | None:
    if not unit.machine_id:
        return None
    return machines.machine(w.model, unit.machine_id) or None  # a copy already


def _take_addresses(w: World, unit: Unit) -> None:
    data = _machine_data(w, unit) or {}
    values = [str(a.get("value")) for a in data.get("addresses") or [] if isinstance(a, dict) and a.get("value")]
    if values:
        unit.public_address = unit.private_address = values[0]


async def _allocate(w: World, unit: Unit) -> bool:
    """Wait for the unit's machine (or principal); False if the unit died first."""
    if unit.principal:
        while unit.life == "alive":
            try:
                principal = w.unit(unit.principal)
            except JujuApiError:
                return False
            if principal.installed:
                unit.machine_id = principal.machine_id
                unit.public_address, unit.private_address = principal.public_address, principal.private_address
                return True
            await _wait(unit, catalogue.timings(w.controller).update_status_s or 1.0)
        return False
    while unit.life == "alive":
        if not unit.machine_id:  # not assigned (yet, or its placement failed): no agent runs
            if unit.workload.set("waiting", "waiting for machine"):
                _publish(w, unit)
            await _wait(unit, None)
            continue
        try:
            await machines.wait_started(w.model, unit.machine_id)
        except machines.MachineFailed as exc:
            if unit.workload.set("waiting", "waiting for machine", {"machine-error": exc.message}):
                _publish(w, unit)
            await _wait(unit, catalogue.timings(w.controller).update_status_s or 1.0)  # provisioning may be retried
            continue
        _take_addresses(w, unit)
        return True
    return False


async def _wait(unit: Unit, timeout: float | None) -> None:
    """Sleep until poked (or `timeout`)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(unit.wake.wait(), timeout)
    unit.wake.clear()


async def run_hook(w: World, unit: Unit, hook: str, seconds: float) -> bool:
    """Run one hook; with a matching error fault it fails and the unit waits in error for
    resolution (or the automatic retry). False if the unit died meanwhile."""
    timings = catalogue.timings(w.controller)
    while unit.life == "alive":
        unit.agent.set("executing", f"running {hook} hook")
        _publish(w, unit)
        await asyncio.sleep(timings.delay(seconds, unit.name, hook))
        fault = fault_book(w.controller).take_hook_failure(w.model, unit, hook)
        if fault is not None:
            w.event("unit-hook-failed", unit=unit.name, hook=hook, fault=fault.id)
        else:
            problem = await _charm_work(w, unit, hook)
            if problem is None:
                unit.attempts.pop(hook, None)
                return True
            w.event("unit-hook-failed", unit=unit.name, hook=hook, error=problem)
        unit.failed_hook = hook
        unit.resolved.clear()
        _publish(w, unit)
        attempts = unit.attempts[hook] = unit.attempts.get(hook, 0) + 1
        retry: float | None = None
        if w.model.own_config().get("automatically-retry-hooks", True) is not False:
            retry = timings.retry_s * min(2 ** (attempts - 1), MAX_RETRY_FACTOR)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(unit.resolved.wait(), retry)
        resolved = unit.resolved.is_set()
        unit.failed_hook = ""
        if unit.life != "alive":
            return False
        if resolved and not unit.retry_hook:
            w.event("unit-hook-skipped", unit=unit.name, hook=hook)
            unit.attempts.pop(hook, None)
            return True
        w.event("unit-hook-retried", unit=unit.name, hook=hook, automatic=not resolved)
    return False


async def _charm_work(w: World, unit: Unit, hook: str) -> str | None:
    """What the charm does on its machine in this hook (registered hook handlers, e.g. the
    lab's hosts); None when it worked, else why not."""
    if not catalogue.HOOK_HANDLERS:
        return None
    machine = _machine_data(w, unit) or {}
    run = catalogue.HookRun(
        model=w.model, unit=unit.name, application=unit.app.name, charm=unit.app.charm.name, hook=hook,
        hostname=str(machine.get("hostname") or ""), config=dict(unit.app.option_values()),
        address=unit.public_address or "",
    )
    try:
        await asyncio.to_thread(catalogue.run_hook_handlers, run)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def unit_view(w: World, unit: Unit) -> catalogue.UnitView:
    app = unit.app
    linked: dict[str, list[str]] = {}
    ready: dict[str, list[str]] = {}
    for rel, ep, far in w.ends_of(app.name):
        linked.setdefault(ep.name, []).append(far)
        if _far_ready(w, unit, rel.scope, far):
            ready.setdefault(ep.name, []).append(far)
    peers = sum(1 for u in app.alive_units() if u.installed)
    subs = tuple(sorted({s.app.charm.name for s in w.subordinates_of(unit.name) if s.installed}))
    return catalogue.UnitView(
        unit=unit.name, application=app.name, charm=app.charm.name, config=app.option_values(), peers=peers,
        linked={k: tuple(v) for k, v in linked.items()}, ready={k: tuple(v) for k, v in ready.items()},
        machine=_machine_data(w, unit), subordinates=subs, principal=unit.principal,
    )


def _far_ready(w: World, unit: Unit, scope: str, far_app: str) -> bool:
    """Whether the far side of a relation has a unit this unit talks to: for a container-
    scoped relation the unit's own principal or subordinate, else any installed unit."""
    app = w.apps.get(far_app)
    if app is None or app.life != "alive":
        return False
    if scope == "container":
        if unit.principal:
            return any(u.name == unit.principal and u.installed for u in app.alive_units())
        return any(s.app is app and s.installed for s in w.subordinates_of(unit.name))
    return any(u.installed for u in app.alive_units())


def evaluate(w: World, unit: Unit) -> tuple[str, str]:
    """The workload status the charm would set now."""
    blocked = fault_book(w.controller).blocked(w.model, unit)
    if blocked is not None:
        return "blocked", blocked.message
    view = unit_view(w, unit)
    behaviour = unit.app.charm.behaviour
    status, message = behaviour.evaluate(view)
    unit.workload_version = behaviour.version(view)
    if status != "active":
        return status, message
    machine = view.machine or {}
    for gate in behaviour.host_gates:
        check = catalogue.HostCheck(
            model=w.model, unit=unit.name, application=unit.app.name, charm=unit.app.charm.name, gate=gate.name,
            machine=view.machine, hostname=str(machine.get("hostname") or machine.get("display-name") or ""),
            subordinates=view.subordinates, config=view.config,
        )
        if not catalogue.host_ready(check):
            return gate.status, gate.message
    return status, message


def _pending_relation_hooks(w: World, unit: Unit) -> list[tuple[tuple[int, str], str]]:
    """(key, hook) for relations this unit has not yet run a joined/changed hook for."""
    out = []
    current: set[tuple[int, str]] = set()
    for rel, ep, far in w.ends_of(unit.app.name):
        if not _far_ready(w, unit, rel.scope, far):
            continue
        key = (rel.id, far)
        current.add(key)
        if key not in unit.seen:
            out.append((key, f"{ep.name}-relation-changed"))
    unit.seen &= current  # a relation gone (or its far side gone) is joined afresh if it comes back
    return out


async def settle(w: World, unit: Unit) -> bool:
    """Run what is due (leadership, config, relation hooks, actions), then set the workload
    status and go idle. False if the unit died."""
    timings = catalogue.timings(w.controller)
    if unit.leader_elected:
        unit.leader_elected = False
        if not await run_hook(w, unit, "leader-elected", timings.hook_s):
            return False
    if unit.config_changed:
        unit.config_changed = False
        if not await run_hook(w, unit, "config-changed", timings.hook_s):
            return False
    for key, hook in _pending_relation_hooks(w, unit):
        if not await run_hook(w, unit, hook, timings.hook_s):
            return False
        unit.seen.add(key)
    from botlab.lab.juju import actions  # the Action facade: the queued actions of this unit

    if not await actions.run_pending(w, unit):
        return False
    version = unit.workload_version
    status, message = evaluate(w, unit)
    changed = unit.workload.set(status, message)
    changed = unit.agent.set("idle") or changed
    if changed or version != unit.workload_version:
        _publish(w, unit)
    return unit.life == "alive"


async def run_agent(w: World, unit: Unit) -> None:
    """The unit agent (see the module doc)."""
    timings = catalogue.timings(w.controller)
    try:
        if not await _allocate(w, unit):
            return await _finish(w, unit)
        unit.workload.set("maintenance", unit.app.charm.behaviour.install_message)
        steps = [("install", timings.install_s * unit.app.charm.behaviour.install_factor)]
        if unit.leader:
            steps.append(("leader-elected", timings.hook_s))
        steps += [("config-changed", timings.hook_s), ("start", timings.hook_s)]
        for hook, seconds in steps:
            if not await run_hook(w, unit, hook, seconds):
                return await _finish(w, unit)
        unit.installed = True
        unit.config_changed = unit.leader_elected = False
        w.event("unit-started", unit=unit.name, machine=unit.machine_id)
        ensure_subordinates(w)
        _poke_related(w, unit.app.name)
        while unit.life == "alive":
            if not await settle(w, unit):
                break
            await _wait(unit, timings.update_status_s or None)
        await _finish(w, unit)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an emulator bug: show it on the unit rather than die silently
        unit.workload.set("error", f"internal error in the botlab Juju emulator: {exc!r}")
        _publish(w, unit)
        w.event("unit-agent-crashed", unit=unit.name, error=repr(exc))


def _poke_related(w: World, app_name: str) -> None:
    """Wake the units of every application related to `app_name` (and its own, for peers)."""
    names = {app_name}
    for rel in w.relations_of(app_name):
        names.update(rel.applications())
    for name in names:
        app = w.apps.get(name)
        if app is None:
            continue
        for unit in app.units.values():
            unit.poke()
            for sub in w.subordinates_of(unit.name):
                sub.poke()


# --- dying and removal ---------------------------------------------------------------------------


def kill_unit(w: World, unit: Unit) -> None:
    """Make the unit dying; its agent runs the stop hook and removes it (with its subordinates)."""
    if unit.life != "alive":
        return
    unit.life = "dying"
    _publish(w, unit)
    w.event("unit-dying", unit=unit.name)
    for sub in w.subordinates_of(unit.name):
        kill_unit(w, sub)
    unit.resolved.set()
    unit.poke()
    if unit.task is None or unit.task.done():
        w.controller.spawn(_finish(w, unit), name=f"unit-remove-{w.model.name}-{unit.name}")


async def _finish(w: World, unit: Unit) -> None:
    """The end of a unit: the stop hook (if it got that far), then removal."""
    if unit.life == "alive":
        return
    if unit.installed and unit.life == "dying":
        unit.agent.set("executing", "running stop hook")
        unit.workload.set("maintenance", "stopping charm software")
        _publish(w, unit)
        timings = catalogue.timings(w.controller)
        await asyncio.sleep(timings.delay(timings.hook_s, unit.name, "stop"))
    remove_unit(w, unit)


def remove_unit(w: World, unit: Unit) -> None:
    """Take the unit out of the model now (and its subordinates); elect a new leader."""
    if unit.life == "dead":
        return
    for sub in w.subordinates_of(unit.name):
        sub.life = "dying"
        remove_unit(w, sub)
    unit.life = "dead"
    app = unit.app
    app.units.pop(unit.number, None)
    w.model.remove_entity("unit", unit.name)
    w.model.annotations.pop(unit.tag, None)
    w.event("unit-removed", unit=unit.name)
    if unit.task is not None and not unit.task.done() and unit.task is not asyncio.current_task():
        unit.task.cancel()
    if unit.leader:
        unit.leader = False
        successor = next(iter(app.alive_units()), None)
        if successor is not None:
            successor.leader = True
            successor.leader_elected = True
            successor.poke()
            w.event("unit-leader-elected", unit=successor.name)
    _poke_related(w, app.name)
    # an application dying goes once its last unit has
    importlib.import_module("botlab.lab.juju.applications").maybe_remove(w, app)
    w.publish_app(app)


async def remove_units_on_machine(controller: ControllerState, model: ModelState, machine_id: str) -> None:
    """machines.machine_removal_hook: a removed machine takes its units with it."""
    found = existing_world(model)
    if found is None:
        return
    for unit in list(found.units()):
        if unit.machine_id == machine_id and not unit.principal:
            remove_unit(found, unit)


# --- facade calls --------------------------------------------------------------------------------


def unit_from_tag(w: World, tag: Any) -> Unit:
    text = str(tag or "")
    if not text.startswith("unit-"):
        raise errors.not_valid(f'"{text}" is not a valid unit tag')
    app, _, number = text[len("unit-"):].rpartition("-")
    if not app or not number.isdigit():
        raise errors.not_valid(f'"{text}" is not a valid unit tag')
    return w.unit(f"{app}/{number}")


@facade_method("Application", (17, 19, 20), "AddUnits", mutating=True)
async def add_units_call(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    app = w.app(str(params.get("application") or ""))
    count = params.get("num-units")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise errors.not_valid("must add at least one unit")
    placements = [p for p in params.get("placement") or [] if isinstance(p, dict)]
    units = await add_units(ctx, w, app, count, placements)
    log_event(ctx, "units-added", application=app.name, units=[u.name for u in units])
    return {"units": [u.name for u in units]}


@facade_method("Application", (17, 19, 20), "DestroyUnit", mutating=True)
async def destroy_unit(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        unit = unit_from_tag(w, (item or {}).get("unit-tag"))
        if unit.principal:
            raise JujuApiError(f'unit "{unit.name}" is a subordinate, to remove use remove-relation. '
                               f"Note: this will remove all units of \"{unit.app.name}\"")
        if not item.get("dry-run"):
            kill_unit(w, unit)
            if item.get("force"):
                remove_unit(w, unit)
            log_event(ctx, "unit-destroyed", unit=unit.name, force=bool(item.get("force")))
        return {"info": {"destroyed-storage": [], "detached-storage": []}}

    return bulk(params.get("units") or [], one)


@facade_method("Application", (17, 19, 20), "ResolveUnitErrors", mutating=True)
async def resolve_unit_errors(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """`juju resolved`: a unit in error re-runs the failed hook (retry) or skips it."""
    w = world_of(ctx)
    retry = bool(params.get("retry"))
    if params.get("all"):
        for unit in w.units():
            if unit.failed_hook:
                _resolve(ctx, unit, retry)
        return {"results": []}
    tags = params.get("tags") or {}

    def one(item: Any) -> dict[str, Any]:
        unit = unit_from_tag(w, (item or {}).get("tag"))
        if not unit.failed_hook:
            raise errors.not_valid(f'unit "{unit.name}" is not in an error state')
        _resolve(ctx, unit, retry)
        return {}

    return bulk((tags.get("entities") or []) if isinstance(tags, dict) else [], one)


def _resolve(ctx: CallContext, unit: Unit, retry: bool) -> None:
    unit.retry_hook = retry
    unit.resolved.set()
    log_event(ctx, "unit-resolved", unit=unit.name, hook=unit.failed_hook, retry=retry)


@facade_method("Application", (17, 19, 20), "UnitsInfo", mutating=False)
async def units_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        unit = unit_from_tag(w, (item or {}).get("tag"))
        return {"result": {
            "tag": unit.tag, "workload-version": unit.workload_version, "machine": unit.machine_id,
            "opened-ports": [], "public-address": unit.public_address, "address": unit.private_address,
            "charm": unit.app.charm_url, "leader": unit.leader, "life": unit.life, "relation-data": [],
            "provider-id": "",
        }}

    return bulk(params.get("entities") or [], one)


@facade_method("Application", (17, 19, 20), "Leader", mutating=False)
async def leader(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    tag = str(params.get("tag") or "")
    app = w.app_by_tag(tag)
    found = next((u for u in app.alive_units() if u.leader), None)
    return {"result": found.name if found else ""}
