"""Juju driver: a thin async facade over python-libjuju. No policy: it reads a model's
status, adds what it is told to (machines, applications, units, relations, keys), and turns
every fault into a StageError naming the operation, what Juju said, and where.

`JujuDriver` holds the controller connection and the controller-level calls; each open model
is a `JujuModel` handle with its own libjuju connection, AllWatcher and change event, so a
run can hold several models at once (the kubeflow stage works in two).

libjuju is connected to the inventory's JUJU_DATA folder through a `FileJujuData` whose
path is set explicitly, so `os.environ` is never touched. Where libjuju's high-level API
cannot say what botlab needs, the driver calls libjuju's generated facade clients:

- `MachineManager.AddMachines` with a `base` (libjuju's `Model.add_machine` sends `series`,
  which AddMachineParams no longer has, so a machine would get the model's default base),
  for many machines in one request;
- `Application.AddUnits` with a list of placements (one request per application);
- `Application.DestroyUnit` for several units in one request;
- `Annotations.Set` for many entities in one request;
- `SSHClient.PublicKeys` for many machines' host keys in one request.

Every RPC has a deadline (`Deadlines.call`). Reads are retried on connection faults and
missing answers under READS; a change is sent once, and one that got no answer is reported
("may or may not have been made"; the next `botlab up` plans from the model). Before any
call the connection it needs is checked and, if lost, opened afresh (a reconnect is a read):
the controller's, or the model's with a new AllWatcher, whose first delta re-reads the whole
model. libjuju's own reconnect is not relied on: after a cut its AllWatcher task can end while
libjuju reconnects beside it, leaving the model's view frozen (libjuju 3.6.1.3,
Model._watch). `JujuModel.changed` notices a dead watcher or connection and reopens it,
keeping on for up to `Deadlines.unreachable` before it fails naming the controller and since
when. libjuju's background errors (a reconnect task that fails) go to the run log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from botlab.drivers.retry import (
    ONCE,
    Deadlines,
    NoAnswer,
    Reachability,
    RetryPolicy,
    Sleep,
    answer_within,
    retry_call,
)
from botlab.errors import StageError

if TYPE_CHECKING:
    from botlab.inventory import Inventory

log = logging.getLogger("botlab.juju")
T = TypeVar("T")

# Reads only (a mutation is never sent twice): 5 tries, waits 0.2 ... 1.6 s plus up to 0.25 s of
# jitter each, about 3-4 s in all.
# Each driver also bounds them by Deadlines.unreachable (tries that each wait out a deadline).
READS = RetryPolicy(attempts=5, initial=0.2, maximum=2.0, jitter=0.25)
ADD_MACHINES_BATCH = 100  # machines per AddMachines request
CLOSE_S = 2.0  # closing a connection to a controller that does not answer is given up after this
WATCH_CHECK_S = 0.5  # while waiting for a change, how often the watcher's health is checked


# --- what botlab reads of a model ---------------------------------------------------------------


@dataclass(frozen=True)
class JujuMachine:
    id: str
    constraints: str = ""  # constraints.Value.String(): "tags=a,b cores=4"
    hardware: str = ""  # "arch=amd64 cores=4 mem=8192M tags=a,b ..."
    hostname: str = ""
    instance_id: str = ""
    instance_status: str = ""  # allocating, running, provisioning error ...
    instance_message: str = ""
    agent_status: str = ""  # pending, started, down, error
    agent_message: str = ""
    base: str = ""  # ubuntu@22.04
    parent: str = ""  # "0" for "0/lxd/1"
    address: str = ""  # where to reach it: its DNS name, else its first IP address

    @property
    def tags(self) -> frozenset[str]:
        """Tags from the machine's constraints and from what the provider found."""
        return frozenset(constraint_values(self.constraints, "tags")) | frozenset(
            constraint_values(self.hardware, "tags"))


@dataclass(frozen=True)
class JujuUnit:
    name: str
    application: str
    machine: str = ""  # subordinates: their principal's machine
    workload: str = ""
    workload_message: str = ""
    agent: str = ""
    agent_message: str = ""
    principal: str = ""  # set on subordinate units
    leader: bool = False


@dataclass(frozen=True)
class JujuApplication:
    name: str
    charm: str = ""  # charm name, e.g. "containerd"
    channel: str = ""
    exposed: bool = False
    subordinate: bool = False
    status: str = ""
    status_message: str = ""


@dataclass(frozen=True)
class JujuRelation:
    key: str
    endpoints: tuple[tuple[str, str], ...]  # (application, endpoint name)
    interface: str = ""
    scope: str = ""  # "container" (subordinates ride on it) or "global"


@dataclass
class ModelStatus:
    name: str
    uuid: str = ""
    machines: dict[str, JujuMachine] = field(default_factory=dict)
    applications: dict[str, JujuApplication] = field(default_factory=dict)
    units: dict[str, JujuUnit] = field(default_factory=dict)
    relations: list[JujuRelation] = field(default_factory=list)


@dataclass(frozen=True)
class ActionResult:
    status: str  # completed, failed
    results: Mapping[str, Any]
    message: str = ""


def constraint_values(text: str, key: str) -> list[str]:
    """Values of `key` in a constraints or hardware string: `tags=a,b cores=4` -> [a, b]."""
    out: list[str] = []
    for part in (text or "").split():
        name, _, value = part.partition("=")
        if name == key and value:
            out.extend(v for v in value.split(",") if v)
    return out


def charm_name(url: str) -> str:
    """`ch:amd64/jammy/etcd-760` -> `etcd`."""
    last = url.rsplit("/", 1)[-1].split(":")[-1]
    head, _, tail = last.rpartition("-")
    return head if head and tail.isdigit() else last


def _text(status: Any, attr: str) -> str:
    value = getattr(status, attr, None) if status is not None else None
    return str(value or "")


def _base(raw: Any) -> str:
    if raw is None:
        return ""
    name = getattr(raw, "name", None) or (raw.get("name") if isinstance(raw, Mapping) else None)
    channel = getattr(raw, "channel", None) or (raw.get("channel") if isinstance(raw, Mapping) else None)
    if not name or not channel:
        return str(raw) if isinstance(raw, str) else ""
    return f"{name}@{str(channel).split('/')[0]}"


def _machines_from_status(raw: Mapping[str, Any], parent: str = "") -> Iterable[JujuMachine]:
    for mid, m in (raw or {}).items():
        yield JujuMachine(
            id=str(mid),
            constraints=str(getattr(m, "constraints", "") or ""),
            hardware=str(getattr(m, "hardware", "") or ""),
            hostname=str(getattr(m, "hostname", "") or ""),
            instance_id=str(getattr(m, "instance_id", "") or ""),
            instance_status=_text(getattr(m, "instance_status", None), "status"),
            instance_message=_text(getattr(m, "instance_status", None), "info"),
            agent_status=_text(getattr(m, "agent_status", None), "status"),
            agent_message=_text(getattr(m, "agent_status", None), "info"),
            base=_base(getattr(m, "base", None)),
            parent=parent,
            address=str(getattr(m, "dns_name", "") or next(iter(getattr(m, "ip_addresses", None) or []), "")),
        )
        yield from _machines_from_status(getattr(m, "containers", None) or {}, str(mid))


def status_from_full(name: str, uuid: str, full: Any) -> ModelStatus:
    """libjuju's FullStatus -> ModelStatus."""
    out = ModelStatus(name, uuid)
    for machine in _machines_from_status(full.machines or {}):
        out.machines[machine.id] = machine
    for app_name, app in (full.applications or {}).items():
        out.applications[app_name] = JujuApplication(
            name=app_name,
            charm=charm_name(str(app.charm or "")),
            channel=str(app.charm_channel or ""),
            exposed=bool(app.exposed),
            subordinate=bool(app.subordinate_to),
            status=_text(app.status, "status"),
            status_message=_text(app.status, "info"),
        )
        for unit_name, unit in (app.units or {}).items():
            out.units[unit_name] = _unit_from_status(unit_name, unit, "")
            for sub_name, sub in (unit.subordinates or {}).items():
                out.units[sub_name] = _unit_from_status(sub_name, sub, unit_name, str(unit.machine or ""))
    for rel in full.relations or []:
        endpoints = tuple((str(e.application), str(e.name)) for e in rel.endpoints or [])
        out.relations.append(JujuRelation(str(rel.key), endpoints, str(rel.interface or ""), str(rel.scope or "")))
    return out


def _unit_from_status(name: str, unit: Any, principal: str, machine: str = "") -> JujuUnit:
    return JujuUnit(
        name=name,
        application=name.split("/")[0],
        machine=str(unit.machine or machine),
        workload=_text(unit.workload_status, "status"),
        workload_message=_text(unit.workload_status, "info"),
        agent=_text(unit.agent_status, "status"),
        agent_message=_text(unit.agent_status, "info"),
        principal=principal,
        leader=bool(unit.leader),
    )


def _status_field(data: Mapping[str, Any], key: str, part: str) -> str:
    """`part` ("current" or "message") of the status block `key` of an AllWatcher entity,
    as text ("" if absent)."""
    return str((data.get(key) or {}).get(part) or "")


def _watcher_address(addresses: Sequence[Mapping[str, Any]]) -> str:
    """The address Juju would name the machine by: public first, then the cloud-local one."""
    for scope in ("public", "local-cloud"):
        for a in addresses:
            if a.get("scope") == scope and a.get("value"):
                return str(a["value"])
    return next((str(a["value"]) for a in addresses if a.get("value")), "")


def status_from_watcher(name: str, uuid: str, model: Any) -> ModelStatus:
    """The same view from libjuju's AllWatcher state (no request); machines' constraints are
    not in the watcher's data (MAAS's tags in their hardware are)."""
    out = ModelStatus(name, uuid)
    for mid, m in list(model.machines.items()):
        data = m.safe_data or {}
        hardware = data.get("hardware-characteristics") or {}
        tags = hardware.get("tags") or []
        out.machines[mid] = JujuMachine(
            id=mid,
            hardware=f"tags={','.join(tags)}" if tags else "",
            hostname=str(data.get("hostname") or ""),
            instance_id=str(data.get("instance-id") or ""),
            instance_status=_status_field(data, "instance-status", "current"),
            instance_message=_status_field(data, "instance-status", "message"),
            agent_status=_status_field(data, "agent-status", "current"),
            agent_message=_status_field(data, "agent-status", "message"),
            base=str(data.get("base") or ""),
            parent=mid.rsplit("/", 2)[0] if "/" in mid else "",
            address=_watcher_address(data.get("addresses") or []),
        )
    for app_name, app in list(model.applications.items()):
        data = app.safe_data or {}
        out.applications[app_name] = JujuApplication(
            name=app_name,
            charm=charm_name(str(data.get("charm-url") or "")),
            exposed=bool(data.get("exposed")),
            subordinate=bool(data.get("subordinate")),
            status=_status_field(data, "status", "current"),
            status_message=_status_field(data, "status", "message"),
        )
    for unit_name, unit in list(model.units.items()):
        data = unit.safe_data or {}
        out.units[unit_name] = JujuUnit(
            name=unit_name,
            application=str(data.get("application") or unit_name.split("/")[0]),
            machine=str(data.get("machine-id") or ""),
            workload=_status_field(data, "workload-status", "current"),
            workload_message=_status_field(data, "workload-status", "message"),
            agent=_status_field(data, "agent-status", "current"),
            agent_message=_status_field(data, "agent-status", "message"),
            principal=str(data.get("principal") or ""),
        )
    for rel in list(model.relations):
        data = rel.safe_data or {}
        ends = data.get("endpoints") or []
        pairs = tuple((str(e.get("application-name")), str((e.get("relation") or {}).get("name"))) for e in ends)
        scoped = any((e.get("relation") or {}).get("scope") == "container" for e in ends)
        out.relations.append(JujuRelation(str(data.get("key") or ""), pairs,
                                          str(((ends[0].get("relation") or {}) if ends else {}).get("interface") or ""),
                                          "container" if scoped else "global"))
    return out


# --- errors -------------------------------------------------------------------------------------


def _result_errors(result: Any) -> list[str]:
    """Juju's messages for the items of a bulk call's answer that failed."""
    return [r.error.message for r in getattr(result, "results", None) or [] if getattr(r, "error", None)]


def _juju_message(exc: BaseException) -> str:
    """Juju's words: for a bulk call's failed items libjuju's `message` is the list's repr,
    so its `errors` are joined instead."""
    message = getattr(exc, "message", None)
    errors = getattr(exc, "errors", None)
    if errors and (not message or message == str(errors)):
        message = "; ".join(str(e) for e in errors)
    elif not message:
        message = str(exc)
    return str(message).strip() or type(exc).__name__


def _is_connection_fault(exc: BaseException) -> bool:
    """The controller was not reached or did not answer: a socket error, a closed websocket, a
    call without an answer, or libjuju finding no endpoint that accepts a connection."""
    name = type(exc).__name__
    if name == "JujuConnectionError":  # also raised for a controller botlab cannot talk to at all
        return "Unable to connect to any endpoint" in str(exc)
    return isinstance(exc, (OSError, TimeoutError, ConnectionError)) or name in (
        "ConnectionClosed", "ConnectionClosedError", "ConnectionClosedOK",
        "InvalidStatusCode", "InvalidHandshake", "InvalidMessage", "NoConnectionException",
    )


def _transient(exc: Exception) -> bool:
    """A read may be sent again after a lost connection or a missing answer; anything Juju
    answered (a JujuError, failed logins included) is final."""
    from juju.errors import JujuError

    if type(exc).__name__ == "JujuConnectionError":  # a JujuError libjuju raises on its own
        return _is_connection_fault(exc)
    return not isinstance(exc, JujuError) and _is_connection_fault(exc)


async def _quietly(what: str, work: Coroutine[Any, Any, Any], seconds: float = CLOSE_S) -> None:
    """Await `work` (closing something) for at most `seconds`; never raises."""
    try:
        await asyncio.wait_for(work, seconds)
    except Exception as exc:  # closing never fails the run
        log.debug("%s: %s: %s", what, type(exc).__name__, exc)


def _watching(model: Any) -> bool:
    """Whether libjuju's Model is connected and its AllWatcher task still runs (libjuju 3.6.1.3
    keeps it in `_watcher_task`)."""
    task = getattr(model, "_watcher_task", None)
    try:
        connection = model.connection()
    except Exception:
        return False
    return task is not None and not task.done() and bool(connection.is_open)


PING_TASK = "Connection._pinger.<locals>._do_ping"


class _IntoBotlabLog(logging.Handler):
    """libjuju's own log records go to botlab's run log (never bare onto the terminal)."""

    def emit(self, record: logging.LogRecord) -> None:
        log.debug("libjuju %s: %s", record.name, record.getMessage(), exc_info=record.exc_info)


def _route_libjuju_noise(loop: asyncio.AbstractEventLoop) -> None:
    """Keep libjuju's known noise off the terminal: its log records go to botlab's run log,
    and the orphaned ping tasks of closed connections (see `_reap_pings`) are logged at
    debug level instead of as "Task was destroyed but it is pending!" errors."""
    juju_log = logging.getLogger("juju")
    if not any(isinstance(h, _IntoBotlabLog) for h in juju_log.handlers):
        juju_log.addHandler(_IntoBotlabLog(logging.INFO))
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("task") or context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if getattr(coro, "__qualname__", "") == PING_TASK:
            log.debug("libjuju: %s (%s)", context.get("message"), PING_TASK)
        elif _from_libjuju(coro, context.get("exception")):
            # e.g. the reconnect task libjuju starts when a connection drops, failing with
            # JujuConnectionError while the controller is away: botlab reconnects itself.
            error = context.get("exception")
            log.debug("libjuju background task %s: %s%s", getattr(coro, "__qualname__", "?"), context.get("message"),
                      f": {type(error).__name__}: {error}" if error else "")
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _from_libjuju(coro: Any, error: Any) -> bool:
    """A task of libjuju's or of its websockets, or a failure of their making."""
    code = getattr(coro, "cr_code", None)
    where = str(getattr(code, "co_filename", "")).replace("\\", "/")
    if "/juju/" in where or "/websockets/" in where:
        return True
    return type(error).__module__.split(".")[0] in ("juju", "websockets") if error is not None else False


async def _reap_pings() -> None:
    """libjuju 3.6.1.3 runs each keep-alive ping as its own task and, when a connection
    closes while one is in flight (a short-lived connection, e.g. the one `Model.connect`
    opens to read ModelInfo), cancels the pinger but not that task, which then waits for a
    reply forever and is reported as "Task was destroyed but it is pending!" when the event
    loop closes. Cancel such orphans once every connection is closed."""
    current = asyncio.current_task()
    orphans = [t for t in asyncio.all_tasks() if t is not current and not t.done()
               and getattr(t.get_coro(), "__qualname__", "") == PING_TASK]
    for task in orphans:
        task.cancel()
    if orphans:
        await asyncio.gather(*orphans, return_exceptions=True)


# --- the driver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineRequest:
    """One machine to add, by Juju constraints (`tags=<pin tag>` picks the MAAS machine), on
    `base`."""

    constraints: str
    base: str = ""  # ubuntu@22.04; "" for the model's default base


@dataclass(frozen=True)
class AddedMachine:
    machine: str = ""  # the new machine's id
    error: str = ""


class JujuDriver:
    """One controller connection for one run, and the models opened through it (one handle
    per model name)."""

    def __init__(self, controller: Any, jujudata: Any, controller_name: str, endpoint: str,
                 sleep: Sleep = asyncio.sleep, deadlines: Deadlines | None = None) -> None:
        self._controller = controller
        self._jujudata = jujudata
        self.controller_name = controller_name
        self.endpoint = endpoint
        self._sleep = sleep  # between read retries; tests pass one that does not wait
        self.deadlines = deadlines or Deadlines()
        self._reads = replace(READS, within=self.deadlines.unreachable)
        self.reach = Reachability()
        self._params: dict[str, Any] = {}  # how to connect again: endpoints, user, password, CA
        self._models: dict[str, JujuModel] = {}
        self._opening = asyncio.Lock()  # two tasks opening one model get one handle
        self._reconnecting = asyncio.Lock()

    # -- connecting ------------------------------------------------------------------------------

    @classmethod
    async def connect(cls, inventory: Inventory, environ: Mapping[str, str]) -> JujuDriver:
        from juju.client.jujudata import FileJujuData
        from juju.controller import Controller

        _route_libjuju_noise(asyncio.get_running_loop())
        cfg = inventory.juju
        data = FileJujuData()
        if cfg.data_dir is not None:
            data.path = str(cfg.data_dir)
        where = f"controller {cfg.controller}"
        try:
            controllers = data.controllers() or {}
        except FileNotFoundError:
            controllers = {}
        if cfg.controller not in controllers:
            known = ", ".join(sorted(controllers)) or "none"
            raise StageError(
                f"JUJU_DATA {data.path} knows no controller {cfg.controller!r} (it knows: {known})",
                system="Juju", operation="connect",
                hint="check juju.controller and juju.data_dir in the inventory (`juju controllers`"
                " with that JUJU_DATA lists them)",
            )
        endpoints = list(controllers[cfg.controller].get("api-endpoints") or [])
        controller = Controller(jujudata=data)
        kwargs: dict[str, Any] = {}
        if cfg.password is not None:
            account = (data.accounts() or {}).get(cfg.controller) or {}
            kwargs = {
                "endpoint": endpoints,
                "username": account.get("user", "admin"),
                "password": inventory.secret("juju.password", environ).reveal(),
                "cacert": controllers[cfg.controller].get("ca-cert"),
            }
        driver = cls(controller, data, cfg.controller, ", ".join(endpoints),
                     deadlines=Deadlines.from_environ(environ))

        async def _connect() -> None:
            # retries=0: libjuju would sleep 10, 20, 30 s between tries; botlab retries itself.
            if kwargs:
                await controller.connect(**kwargs, retries=0)
            else:
                await controller.connect(cfg.controller, retries=0)

        await driver._call("connect", _connect, where=where, read=True, reconnect=_nothing)
        params = dict(controller.connection().connect_params())
        params.update(endpoint=endpoints or params.get("endpoint"), uuid=None, retries=0)
        driver._params = params
        return driver

    def client_key(self) -> str | None:
        """The Juju client's public key in JUJU_DATA (what `juju add-model` authorizes)."""
        from pathlib import Path

        path = Path(self._jujudata.path) / "ssh" / "juju_id_rsa.pub"
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    async def close(self) -> None:
        """Close every open model, then the controller connection; never raises, and gives
        up on a controller that does not answer after CLOSE_S."""
        closing = [model.close() for model in list(self._models.values())]
        if self._controller is not None:
            closing.append(_quietly("controller disconnect", self._controller.disconnect()))
        await asyncio.gather(*closing)  # at once: each may wait out CLOSE_S on a silent controller
        await _reap_pings()

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]], *, where: str | None = None,
                    read: bool = False, reconnect: Callable[[], Awaitable[None]] | None = None) -> T:
        """Run one libjuju call within the call deadline, on a live connection (`reconnect`
        makes sure of it: by default the controller's). Reads are retried on connection faults
        and missing answers; a change is sent once (only reconnecting before it is retried)."""
        ensure = reconnect or self._ensure_controller

        def error(exc: Exception) -> StageError:
            return self._error(exc, operation, where, read)

        if not read:
            await retry_call(self._reads, ensure, transient=_transient, log=log, what=f"Juju {operation}: reconnect",
                             error=lambda exc: self._error(exc, operation, where, True), sleep=self._sleep)
            return await retry_call(ONCE, lambda: self._attempt(fn), transient=_transient, log=log,
                                    what=f"Juju {operation}", error=error, sleep=self._sleep)

        async def attempt() -> T:
            await ensure()
            return await self._attempt(fn)

        return await retry_call(self._reads, attempt, transient=_transient, log=log, what=f"Juju {operation}",
                                error=error, sleep=self._sleep)

    async def _attempt(self, fn: Callable[[], Awaitable[T]]) -> T:
        """`fn()` within the call deadline, noting whether the controller answered."""
        try:
            result = await answer_within(self.deadlines.call, fn)
        except Exception as exc:
            if _is_connection_fault(exc):
                self.reach.lost()
            else:
                self.reach.answered()
            raise
        self.reach.answered()
        return result

    async def _ensure_controller(self) -> None:
        """Reconnect the controller connection if it was lost: a new libjuju Controller,
        connected within the call deadline (the old one closed quietly)."""
        controller = self._controller
        if controller is None or not self._params or _connected(controller):
            return
        async with self._reconnecting:
            if _connected(self._controller):
                return
            from juju.controller import Controller

            fresh = Controller(jujudata=self._jujudata)

            async def _connect() -> None:
                await fresh.connect(**self._params)

            try:
                await self._attempt(_connect)
            except BaseException:
                await _quietly("controller disconnect", fresh.disconnect())
                raise
            old, self._controller = self._controller, fresh
            log.info("reconnected to the controller at %s", self.endpoint)
            await _quietly("old controller disconnect", old.disconnect())

    async def _connect_model(self, name: str, uuid: str) -> Any:
        """A new libjuju Model of `uuid`, connected (its AllWatcher running); closed again if
        that fails (callers give it the call deadline through `_attempt`)."""
        from juju.model import Model

        self._adopt_noise()
        model = Model(jujudata=self._jujudata)
        if self._params:
            params = dict(self._params, uuid=uuid)
        else:
            params = dict(self._controller.connection().connect_params(), uuid=uuid)

        try:
            await model.connect(**params)
        except BaseException:
            await _quietly(f"model {name} disconnect", model.disconnect())
            raise
        return model

    def _adopt_noise(self) -> None:
        with contextlib.suppress(RuntimeError):
            _route_libjuju_noise(asyncio.get_running_loop())

    def _error(self, exc: Exception, operation: str, where: str | None, read: bool = True) -> StageError:
        from juju.errors import JujuAPIError, JujuError

        if isinstance(exc, JujuAPIError):
            code = getattr(exc, "error_code", "") or ""
            if code == "unauthorized access" or "invalid entity name or password" in _juju_message(exc):
                return StageError(
                    f"the controller refused the login: {_juju_message(exc)}",
                    system="Juju", operation=operation, where=where,
                    hint="check the account in JUJU_DATA (accounts.yaml) or juju.password",
                )
            return StageError(_juju_message(exc) + (f" ({code})" if code else ""), system="Juju",
                              operation=operation, where=where)
        if isinstance(exc, JujuError) and not _is_connection_fault(exc):
            return StageError(_juju_message(exc), system="Juju", operation=operation, where=where)
        if not _is_connection_fault(exc):
            return StageError(f"{type(exc).__name__}: {_juju_message(exc)}", system="Juju",
                              operation=operation, where=where)
        if not read:
            lost = (f"no answer from the controller at {self.endpoint} within {exc.seconds:g}s"
                    if isinstance(exc, NoAnswer) else
                    f"lost the connection to the controller at {self.endpoint} before it answered"
                    f" ({type(exc).__name__}: {exc})")
            return StageError(
                f"{lost}: Juju may or may not have made this change", system="Juju", operation=operation,
                where=where, hint="check that the controller is reachable, then run `botlab up`: it plans again"
                " from what is in the model and sends only what is missing",
            )
        return self.unreachable(exc, operation, where)

    def unreachable(self, exc: BaseException, operation: str, where: str | None) -> StageError:
        """"cannot reach the controller at ... since HH:MM:SS (the last error)"."""
        since = self.reach.since_text()
        return StageError(
            f"cannot reach the controller at {self.endpoint}{' ' + since if since else ''}"
            f" ({type(exc).__name__}: {exc})",
            system="Juju", operation=operation, where=where,
            hint="check that the controller is running and reachable (`juju status`), then run `botlab up`:"
            " it resumes from what is already in the model",
        )

    def _user(self) -> str:
        """The logged-in user's name (`admin`), as Juju's user-scoped calls want it."""
        return str(self._controller.connection().info["user-info"]["identity"]).removeprefix("user-")

    # -- models ----------------------------------------------------------------------------------

    async def model_uuids(self) -> dict[str, str]:
        """Model name -> UUID, for the models this user can see."""
        found: dict[str, str] = await self._call("list models", self._controller.model_uuids, read=True)
        return dict(found)

    async def create_model(self, name: str, cloud: str, authorized_keys: str,
                           config: Mapping[str, str] | None = None) -> JujuModel:
        """CreateModel on `cloud` (its default region and credential), and its handle. libjuju
        would read the client's key from $JUJU_DATA; it is passed here instead."""
        settings = {"authorized-keys": authorized_keys, **(config or {})}

        async def _add() -> Any:
            from juju.errors import JujuAPIError

            try:
                return await self._controller.add_model(name, cloud_name=cloud, config=settings)
            except JujuAPIError as exc:
                # Juju: "failed to create new model: model "X" for admin already exists"
                if getattr(exc, "error_code", "") == "already exists" or "already exists" in _juju_message(exc):
                    log.info("model %s exists already (another run created it): opening it", name)
                    return None
                raise

        model = await self._call("create model", _add, where=f"model {name}")
        if name in self._models:  # a handle on an earlier model of that name, destroyed behind our back
            await self._models[name].close()
        if model is None:
            return await self.open_model(name)
        return self._adopt(model, name, str(model.info.uuid))

    async def open_model(self, name: str, uuid: str | None = None) -> JujuModel:
        """The handle of model `name`, connecting it on first use (its AllWatcher starts
        feeding `live()`); given its `uuid` (from `model_uuids`), without listing the models."""
        async with self._opening:
            if name in self._models:
                return self._models[name]
            if uuid is None:
                uuids = await self.model_uuids()
                if name not in uuids:
                    raise StageError(f"model {name} does not exist", system="Juju", operation="connect model",
                                     where=f"controller {self.controller_name}")
                uuid = uuids[name]
            known = uuid
            model = await self._call("connect model", lambda: self._connect_model(name, known),
                                     where=f"model {name}", read=True)
            return self._adopt(model, name, uuid)

    def _adopt(self, model: Any, name: str, uuid: str) -> JujuModel:
        handle = JujuModel(self, model, name, uuid)
        self._models[name] = handle
        return handle

    def _forget(self, handle: JujuModel) -> None:
        if self._models.get(handle.name) is handle:
            del self._models[handle.name]

    async def destroy_model(self, name: str, timeout: float) -> None:
        """Close its handle if open, DestroyModels, then wait until the controller no longer
        lists it."""
        if name in self._models:
            await self._models[name].close()

        async def _destroy() -> None:
            await self._controller.destroy_model(name)

        await self._call("destroy model", _destroy, where=f"model {name}")
        deadline = time.monotonic() + timeout
        delay = 0.1
        while name in await self.model_uuids():
            if time.monotonic() > deadline:
                raise StageError(
                    f"model {name} is still being destroyed after {timeout:.0f}s", system="Juju",
                    operation="destroy model", where=f"model {name}",
                    hint="see `juju status -m` for what is stuck; `botlab down` again waits for it",
                )
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 1.5)


async def _nothing() -> None:
    return None


def _connected(controller: Any) -> bool:
    try:
        return bool(controller.is_connected() and controller.connection().is_open)
    except Exception:
        return False


def _machine_tag(machine_id: str) -> str:
    """`0/lxd/1` -> `machine-0-lxd-1`."""
    return "machine-" + machine_id.replace("/", "-")


class JujuModel:
    """One open model: its own libjuju connection, AllWatcher and change event, so events of
    one model never wake a task waiting on another. Got from `JujuDriver.open_model` or
    `create_model`; closed by `close()`, `JujuDriver.destroy_model` or `JujuDriver.close`."""

    def __init__(self, driver: JujuDriver, model: Any, name: str, uuid: str) -> None:
        self._driver = driver
        self._model: Any = model
        self.name = name
        self.uuid = uuid
        self._changed = asyncio.Event()
        self.reopened = 0  # times its connection and AllWatcher were opened afresh

        async def on_delta(delta: Any, old: Any, new: Any, model: Any) -> None:
            self._changed.set()

        self._on_delta = on_delta  # libjuju keeps observers in a weak map: hold it here
        model.add_observer(on_delta)

    @property
    def closed(self) -> bool:
        return self._model is None

    @property
    def _libjuju(self) -> Any:
        """libjuju's Model, while the handle is open."""
        if self._model is None:
            raise RuntimeError(f"model {self.name} is closed")
        return self._model

    async def close(self) -> None:
        """Disconnect (its AllWatcher stops); never raises, and gives up on a controller that
        does not answer after CLOSE_S. The driver's next `open_model` of this name connects
        afresh."""
        self._driver._forget(self)
        if self._model is None:
            return
        model, self._model = self._model, None
        await _quietly(f"model {self.name} disconnect", model.disconnect())

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]], *, where: str | None = None,
                    read: bool = False) -> T:
        """One call on this model's connection, reopened first if it was lost. `fn` reads
        `self._libjuju` when it runs, so a retry after a reopen uses the new connection."""
        return await self._driver._call(operation, fn, where=where, read=read, reconnect=self._ensure_open)

    async def _ensure_open(self) -> None:
        """Reopen the model's connection and AllWatcher if either died (a new libjuju Model,
        connected within the call deadline; its first delta re-reads the whole model)."""
        if self._model is None or _watching(self._model):
            return
        await self._driver._ensure_controller()
        fresh = await self._driver._attempt(lambda: self._driver._connect_model(self.name, self.uuid))
        if self._model is None:  # closed meanwhile
            await _quietly(f"model {self.name} disconnect", fresh.disconnect())
            return
        old, self._model = self._model, fresh
        fresh.add_observer(self._on_delta)
        self.reopened += 1
        self._changed.set()  # the whole model was read again
        log.info("model %s: reconnected and its AllWatcher re-established", self.name)
        await _quietly(f"model {self.name} old connection", old.disconnect())

    def _facade(self, name: str) -> Any:
        """libjuju's generated client of facade `name` (`client.<name>Facade`) on this model."""
        from juju.client import client

        return getattr(client, f"{name}Facade").from_connection(self._libjuju.connection())

    def _application(self, name: str) -> Any:
        app = self._libjuju.applications.get(name)
        if app is None:
            raise StageError(f"application {name} is not in the model", system="Juju", where=name)
        return app

    # -- reading ---------------------------------------------------------------------------------

    async def status(self) -> ModelStatus:
        """Client.FullStatus of the model."""
        full = await self._call("read status", lambda: self._libjuju.get_status(), where=f"model {self.name}",
                                read=True)
        return status_from_full(self.name, self.uuid, full)

    def live(self) -> ModelStatus:
        """The model as its AllWatcher has delivered it so far (no request)."""
        return status_from_watcher(self.name, self.uuid, self._libjuju)

    async def changed(self, timeout: float) -> bool:
        """Wait until this model's AllWatcher delivers a change (True) or `timeout` passes
        (False). A dead watcher or connection is reopened (True: the model was read again);
        while the controller cannot be reached this keeps trying, and raises the StageError
        "cannot reach the controller ... since ..." once it has been unreachable for
        Deadlines.unreachable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            if self._model is not None and not _watching(self._model):
                try:
                    await self._call("watch model", _nothing, where=f"model {self.name}", read=True)
                except StageError:
                    reach = self._driver.reach
                    if reach.since is None or reach.lost_for() >= self._driver.deadlines.unreachable:
                        raise
                    log.debug("model %s: controller unreachable for %.1fs; trying again", self.name, reach.lost_for())
                else:
                    self._changed.clear()
                    return True
            if self._changed.is_set():
                self._changed.clear()
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, WATCH_CHECK_S))

    async def ssh_keys(self) -> list[str]:
        """The model's authorized keys, as full public key lines."""
        found = await self._call("list ssh keys", lambda: self._libjuju.get_ssh_keys(raw_ssh=True), read=True)
        keys: list[str] = []
        for result in getattr(found, "results", None) or []:
            keys.extend(str(k) for k in (getattr(result, "result", None) or []))
        return keys

    async def host_keys(self, machine_ids: Sequence[str]) -> dict[str, list[str]]:
        """Machine id -> the SSH host keys its agent reported (SSHClient.PublicKeys, one request
        for all). A machine whose agent has not reported them yet fails the call (libjuju
        raises on any failed item), so ask once the machines have started."""
        if not machine_ids:
            return {}
        entities = [{"tag": _machine_tag(mid)} for mid in machine_ids]
        where = ", ".join(f"machine {m}" for m in machine_ids[:3]) + (" ..." if len(machine_ids) > 3 else "")
        got = await self._call("read host keys", lambda: self._facade("SSHClient").PublicKeys(entities=entities),
                               where=where, read=True)
        return {mid: [str(k) for k in item.public_keys or []]
                for mid, item in zip(machine_ids, got.results or [], strict=True)}

    async def application_config(self, application: str) -> dict[str, Any]:
        """Option -> current value (options without one are left out)."""
        got = await self._call("read config", lambda: self._facade("Application").Get(application=application),
                               where=application, read=True)
        out: dict[str, Any] = {}
        for option, info in (got.config or {}).items():
            if isinstance(info, Mapping) and "value" in info:
                out[option] = info["value"]
        return out

    # -- changing --------------------------------------------------------------------------------

    async def add_ssh_key(self, key: str) -> None:
        user = self._driver._user()

        async def _add() -> None:
            errors = _result_errors(await self._libjuju.add_ssh_key(user, key))
            if errors:
                raise StageError(errors[0], system="Juju", operation="add ssh key")

        await self._call("add ssh key", _add, where=f"model {self.name}")

    async def add_machines(self, requests: Sequence[MachineRequest]) -> list[AddedMachine]:
        """MachineManager.AddMachines, up to 100 machines per request. Each result carries
        the new machine's id or Juju's error for that machine."""
        from juju.client import client
        from juju.constraints import parse as parse_constraints

        out: list[AddedMachine] = []
        for i in range(0, len(requests), ADD_MACHINES_BATCH):
            batch = list(requests[i: i + ADD_MACHINES_BATCH])
            params = []
            for req in batch:
                constraints = dict(parse_constraints(req.constraints) or {})
                p = client.AddMachineParams(jobs=["JobHostUnits"], constraints=client.Value.from_json(constraints))
                if req.base:
                    name, _, channel = req.base.partition("@")
                    p.base = client.Base(name=name, channel=channel)
                params.append(p)
            where = ", ".join(r.constraints for r in batch[:3]) + (" ..." if len(batch) > 3 else "")

            async def _add(ps: list[Any] = params) -> Any:
                return await self._facade("MachineManager").AddMachines(params=ps)

            result = await self._call("add machines", _add, where=where)
            for item in (result.machines or [])[: len(batch)]:  # one answer per request
                error = getattr(item, "error", None)
                out.append(AddedMachine(str(item.machine or ""), error.message if error else ""))
        return out

    async def annotate(self, entities: Mapping[str, Mapping[str, str]]) -> None:
        """Annotations.Set for many entities (tags like `machine-0`) in one request."""
        if not entities:
            return
        from juju.client import client

        params = [client.EntityAnnotations(entity=tag, annotations=dict(values)) for tag, values in entities.items()]
        result = await self._call("set annotations", lambda: self._facade("Annotations").Set(annotations=params))
        errors = _result_errors(result)
        if errors:
            raise StageError("; ".join(errors), system="Juju", operation="set annotations")

    async def deploy(self, application: str, charm: str, *, channel: str | None, base: str | None,
                     config: Mapping[str, str], constraints: str) -> None:
        """Deploy `charm` from Charmhub as `application` with no units; `constraints` as a
        bundle writes them (`cores=4 mem=8G`), "" for none."""
        from juju.constraints import parse as parse_constraints

        parsed = parse_constraints(constraints) if constraints else None

        async def _deploy() -> None:
            await self._libjuju.deploy(charm, application_name=application, channel=channel, base=base or None,
                               config=dict(config), constraints=dict(parsed) if parsed else None,
                               num_units=0)

        await self._call("deploy", _deploy, where=application)

    async def add_units(self, application: str, placements: Sequence[str]) -> list[str]:
        """Application.AddUnits: one unit per placement (`"3"`, `"lxd:0"`), in one request;
        returns the new units' names."""
        from juju.placement import parse as parse_placement

        directives: list[Any] = []
        for p in placements:
            directives.extend(parse_placement(p) or [])

        async def _add() -> Any:
            return await self._facade("Application").AddUnits(application=application, num_units=len(placements),
                                         placement=directives or None, attach_storage=[])

        result = await self._call("add units", _add, where=application)
        return [str(u) for u in result.units or []]

    async def remove_units(self, units: Sequence[str]) -> None:
        """Application.DestroyUnit for `units` in one request (`juju remove-unit`); a unit
        already gone counts as removed."""
        if not units:
            return
        params = [{"unit-tag": "unit-" + u.replace("/", "-"), "destroy-storage": False, "force": False,
                   "dry-run": False} for u in units]

        async def _destroy() -> Any:
            return await self._facade("Application").DestroyUnit(units=params)

        result = await self._call("remove units", _destroy, where=", ".join(units))
        errors = [e for e in _result_errors(result) if "not found" not in e]
        if errors:
            raise StageError("; ".join(errors), system="Juju", operation="remove units", where=", ".join(units))

    async def relate(self, first: str, second: str) -> None:
        async def _relate() -> None:
            await self._libjuju.integrate(first, second)

        await self._call("add relation", _relate, where=f"{first} {second}")

    async def expose(self, application: str) -> None:
        await self._call("expose", lambda: self._application(application).expose(), where=application)

    async def set_config(self, application: str, options: Mapping[str, str]) -> None:
        await self._call("set config", lambda: self._application(application).set_config(dict(options)),
                         where=application)

    async def resolve(self, unit: str) -> None:
        """ResolveUnitErrors with retry (`juju resolved <unit>`): the failed hook runs again."""
        entities = {"entities": [{"tag": "unit-" + unit.replace("/", "-")}]}

        async def _resolve() -> Any:
            return await self._facade("Application").ResolveUnitErrors(all_=False, retry=True, tags=entities)

        result = await self._call("resolve unit", _resolve, where=unit)
        errors = _result_errors(result)
        if errors and not all("not in an error state" in e for e in errors):
            raise StageError("; ".join(errors), system="Juju", operation="resolve unit", where=unit)

    async def run_action(self, unit: str, action: str, timeout: float, **params: Any) -> ActionResult:
        """Run an action on a unit and wait for its end (through the AllWatcher), then read its
        results."""
        def found() -> Any:
            got = self._libjuju.units.get(unit)
            if got is None:
                raise StageError(f"unit {unit} is not in the model", system="Juju", operation=f"run {action}",
                                 where=unit)
            return got

        found()
        started = await self._call(f"run {action}", lambda: found().run_action(action, **params), where=unit)
        reopened = self.reopened

        async def status() -> str:
            history = self._libjuju.state.state.get("action", {}).get(started.entity_id)
            if history and history[-1]:
                return str(history[-1].get("status"))
            if self.reopened == reopened:
                return ""
            # The watcher was re-established since: ask for the action itself.
            got = await self._call(f"read {action} status", lambda: self._facade("Action").Actions(
                entities=[{"tag": f"action-{started.entity_id}"}]), where=unit, read=True)
            return str(got.results[0].status or "") if got.results else ""

        deadline = time.monotonic() + timeout
        while (now := await status()) not in ("completed", "failed", "cancelled", "error", "aborted"):
            if time.monotonic() > deadline:
                raise StageError(f"action {action} did not finish within {timeout:.0f}s (status"
                                 f" {now or 'pending'})", system="Juju", operation=f"run {action}",
                                 where=unit)
            await self.changed(min(1.0, max(0.0, deadline - time.monotonic())))
        tag = f"action-{started.entity_id}"
        got = await self._call(f"read {action} results",
                               lambda: self._facade("Action").Actions(entities=[{"tag": tag}]), where=unit, read=True)
        item = got.results[0]
        return ActionResult(str(item.status or ""), dict(item.output or {}), str(item.message or ""))
