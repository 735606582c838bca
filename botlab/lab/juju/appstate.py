"""What a model holds of applications, units, relations, charms and actions, and how it is
shown: AllWatcher deltas (params.ApplicationInfo, UnitInfo, RelationInfo, CharmInfo,
ActionInfo) and Client.FullStatus's `applications` and `relations`.

Everything lives in `model.ext["applications"]` (a `World`) on the emulator's loop. The facade
modules (applications.py, units.py, relations.py, actions.py, charms.py, resources.py) change
it; units.py runs the unit agents.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botlab.lab.juju import errors
from botlab.lab.juju.catalogue import Charm, Endpoint
from botlab.lab.juju.state import ControllerState, ModelState, iso_time

APP_TAG = "application-"


def application_name(tag: str) -> str:
    """`application-etcd` -> `etcd`; anything else is Juju's "not a valid application tag"."""
    if not tag.startswith(APP_TAG):
        raise errors.not_valid(f'"{tag}" is not a valid application tag')
    return tag[len(APP_TAG):]

if TYPE_CHECKING:
    from botlab.lab.juju.facades import CallContext

WORLD_KEY = "applications"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as Juju sends unset times

# status.DeriveStatus's severities (Juju 3.6 core/status).
SEVERITY = {"error": 100, "blocked": 90, "maintenance": 80, "waiting": 70, "active": 60, "terminated": 50,
            "unknown": 40}


@dataclass
class Status:
    """One status value: current, message, since (a unit's agent or workload status ...)."""

    current: str
    message: str = ""
    since: float = field(default_factory=time.time)
    version: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def set(self, current: str, message: str = "", data: dict[str, Any] | None = None) -> bool:
        """Change it; False if nothing changed."""
        new_data = data or {}
        if (current, message, new_data) == (self.current, self.message, self.data):
            return False
        self.current, self.message, self.data, self.since = current, message, new_data, time.time()
        return True

    def info(self) -> dict[str, Any]:
        """params.StatusInfo (AllWatcher deltas)."""
        return {"current": self.current, "message": self.message, "since": iso_time(self.since),
                "version": self.version, "data": dict(self.data)}

    def detailed(self, kind: str = "", life: str = "") -> dict[str, Any]:
        """params.DetailedStatus (FullStatus)."""
        return {"status": self.current, "info": self.message, "data": dict(self.data),
                "since": iso_time(self.since), "kind": kind, "version": self.version, "life": life}


@dataclass
class Unit:
    app: App
    number: int
    principal: str = ""  # the principal unit's name, for a subordinate
    machine_id: str = ""
    life: str = "alive"
    agent: Status = field(default_factory=lambda: Status("allocating"))
    workload: Status = field(default_factory=lambda: Status("waiting", "waiting for machine"))
    leader: bool = False
    installed: bool = False  # install, leader-elected, config-changed and start hooks have run
    failed_hook: str = ""  # the hook in error, until resolved
    public_address: str = ""
    private_address: str = ""
    workload_version: str = ""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    resolved: asyncio.Event = field(default_factory=asyncio.Event)
    retry_hook: bool = True  # how the last resolve asked: re-run the hook, or skip it
    config_changed: bool = False  # a config-changed hook is due
    leader_elected: bool = False  # a leader-elected hook is due
    task: asyncio.Task[Any] | None = None
    attempts: dict[str, int] = field(default_factory=dict)  # failed attempts per hook (auto-retry backoff)
    seen: set[tuple[int, str]] = field(default_factory=set)  # (relation id, remote app) joined hooks run

    @property
    def name(self) -> str:
        return f"{self.app.name}/{self.number}"

    @property
    def tag(self) -> str:
        return f"unit-{self.app.name}-{self.number}"

    @property
    def subordinate(self) -> bool:
        return bool(self.principal)

    def poke(self) -> None:
        """Make the unit agent look again (a relation, config or fault changed)."""
        self.wake.set()


@dataclass
class App:
    name: str
    charm: Charm
    charm_url: str
    channel: str  # track/risk, "latest/stable"
    revision: int
    base: str  # "ubuntu@24.04"
    config: dict[str, Any] = field(default_factory=dict)  # user-set values (typed)
    constraints: dict[str, Any] = field(default_factory=dict)
    trust: bool = False
    exposed: bool = False
    exposed_endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoint_bindings: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    life: str = "alive"
    status: Status = field(default_factory=lambda: Status("unset"))
    units: dict[int, Unit] = field(default_factory=dict)
    next_unit: int = 0
    created: float = field(default_factory=time.time)

    @property
    def tag(self) -> str:
        return f"application-{self.name}"

    @property
    def subordinate(self) -> bool:
        return self.charm.subordinate

    def alive_units(self) -> list[Unit]:
        return [u for _, u in sorted(self.units.items()) if u.life == "alive"]

    def option_values(self) -> dict[str, Any]:
        """The charm's config with the user's values over the defaults (options without a
        default and unset are absent, as a charm sees them)."""
        out = {n: o.default for n, o in self.charm.options.items() if o.default is not None}
        out.update(self.config)
        return out


@dataclass
class Relation:
    id: int
    endpoints: list[tuple[str, Endpoint]]  # (application, endpoint), in key order
    life: str = "alive"

    @property
    def key(self) -> str:
        return " ".join(f"{app}:{ep.name}" for app, ep in self.endpoints)

    @property
    def scope(self) -> str:
        return "container" if any(ep.scope == "container" for _a, ep in self.endpoints) else "global"

    @property
    def interface(self) -> str:
        return self.endpoints[0][1].interface

    @property
    def is_peer(self) -> bool:
        return len(self.endpoints) == 1

    def applications(self) -> list[str]:
        return [app for app, _ep in self.endpoints]

    def endpoint_of(self, app: str) -> Endpoint | None:
        for name, ep in self.endpoints:
            if name == app:
                return ep
        return None

    def other(self, app: str) -> tuple[str, Endpoint] | None:
        """The far end (for a peer relation: the application itself)."""
        if self.is_peer:
            return self.endpoints[0]
        for name, ep in self.endpoints:
            if name != app:
                return name, ep
        return None


@dataclass
class Action:
    id: str
    operation: str
    receiver: str  # unit name
    name: str
    parameters: dict[str, Any]
    status: str = "pending"
    message: str = ""
    results: dict[str, Any] = field(default_factory=dict)
    enqueued: float = field(default_factory=time.time)
    started: float | None = None
    completed: float | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"action-{self.id}"


@dataclass
class Operation:
    id: str
    summary: str
    actions: list[str]
    enqueued: float = field(default_factory=time.time)


@dataclass
class World:
    """A model's applications and everything hanging off them."""

    controller: ControllerState
    model: ModelState
    apps: dict[str, App] = field(default_factory=dict)
    relations: dict[int, Relation] = field(default_factory=dict)
    next_relation: int = 0
    charms: dict[str, dict[str, Any]] = field(default_factory=dict)  # charm URL -> {"charm", "origin"}
    actions: dict[str, Action] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    next_task: int = 0  # operations and actions share Juju's per-model id sequence
    pending_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_serial: int = 0

    # -- lookups --

    def app_by_tag(self, tag: str) -> App:
        """The application an `application-<name>` tag names (not valid / not found as Juju says)."""
        return self.app(application_name(tag))

    def app(self, name: str) -> App:
        app = self.apps.get(name)
        if app is None or app.life == "dead":
            raise errors.not_found(f'application "{name}" not found')
        return app

    def unit(self, name: str) -> Unit:
        app_name, _, number = name.rpartition("/")
        app = self.apps.get(app_name)
        unit = app.units.get(int(number)) if app is not None and number.isdigit() else None
        if unit is None:
            raise errors.not_found(f'unit "{name}" not found')
        return unit

    def units(self) -> list[Unit]:
        return [u for app in self.apps.values() for _, u in sorted(app.units.items())]

    def relations_of(self, app: str, endpoint: str | None = None) -> list[Relation]:
        out = []
        for rel in self.relations.values():
            if rel.life != "alive":
                continue
            ep = rel.endpoint_of(app)
            if ep is not None and (endpoint is None or ep.name == endpoint):
                out.append(rel)
        return out

    def ends_of(self, app: str) -> list[tuple[Relation, Endpoint, str]]:
        """(relation, `app`'s endpoint, the far application) for each alive relation of `app`;
        a peer relation's far application is `app` itself."""
        out = []
        for rel in self.relations.values():
            if rel.life != "alive":
                continue
            ep = rel.endpoint_of(app)
            far = rel.other(app)
            if ep is not None and far is not None:
                out.append((rel, ep, far[0]))
        return out

    def subordinates_of(self, principal: str) -> list[Unit]:
        """The principal's alive subordinate units (subordinate applications only are scanned)."""
        return [u for app in self.apps.values() if app.subordinate for _, u in sorted(app.units.items())
                if u.principal == principal and u.life == "alive"]

    def next_id(self) -> str:
        self.next_task += 1
        return str(self.next_task)

    def event(self, kind: str, **fields: Any) -> None:
        self.controller.events.record(kind, model=self.model.name, model_uuid=self.model.uuid, **fields)

    # -- publishing (AllWatcher) --

    def publish_app(self, app: App) -> None:
        if app.life == "dead":
            return
        self.model.put_entity("application", {
            "name": app.name,
            "exposed": app.exposed,
            "charm-url": app.charm_url,
            "owner-tag": self.model.owner_tag,
            "life": app.life,
            "min-units": 0,
            "constraints": dict(app.constraints),
            "config": dict(app.config),
            "subordinate": app.subordinate,
            "status": app.status.info(),
            "workload-version": app_workload_version(app),
        })

    def publish_unit(self, unit: Unit) -> None:
        if unit.life == "dead":
            return
        self.model.put_entity("unit", {
            "name": unit.name,
            "application": unit.app.name,
            "base": unit.app.base,  # Juju 3.x UnitInfo: `base`, no `series` (python-libjuju#958)
            "charm-url": unit.app.charm_url,
            "life": unit.life,
            "public-address": unit.public_address,
            "private-address": unit.private_address,
            "machine-id": unit.machine_id,
            "ports": [],
            "port-ranges": [],
            "principal": unit.principal,
            "subordinate": unit.subordinate,
            "workload-status": shown_workload(unit).info(),
            "agent-status": shown_agent(unit).info(),
        })

    def publish_relation(self, rel: Relation) -> None:
        self.model.put_entity("relation", {
            "key": rel.key,
            "id": rel.id,
            "endpoints": [{"application-name": app, "relation": ep.to_api()} for app, ep in rel.endpoints],
        })

    def publish_charm(self, url: str) -> None:
        entry = self.charms[url]
        charm: Charm = entry["charm"]
        self.model.put_entity("charm", {
            "charm-url": url,
            "charm-version": "",
            "life": "alive",
            "config": {n: o.default for n, o in charm.options.items() if o.default is not None},
        })

    def publish_action(self, action: Action) -> None:
        self.model.put_entity("action", {
            "id": action.id,
            "receiver": action.receiver,
            "name": action.name,
            "parameters": dict(action.parameters),
            "status": action.status,
            "message": action.message,
            "results": dict(action.results),
            "enqueued": iso_time(action.enqueued),
            "started": iso_time(action.started) if action.started else ZERO_TIME,
            "completed": iso_time(action.completed) if action.completed else ZERO_TIME,
        })


def existing_world(model: ModelState) -> World | None:
    """The model's World if anything made it yet (None: it never had applications)."""
    found = model.ext.get(WORLD_KEY)
    return found if isinstance(found, World) else None


def world(controller: ControllerState, model: ModelState) -> World:
    """The model's World (made on first use)."""
    found = existing_world(model)
    if found is None:
        found = model.ext[WORLD_KEY] = World(controller, model)
    return found


def world_of(ctx: CallContext) -> World:
    """The World of the call's model."""
    return world(ctx.controller, ctx.model)


# --- how Juju shows statuses ---------------------------------------------------------------------


def shown_workload(unit: Unit) -> Status:
    """A unit in a failed hook shows workload "error" with `hook failed: "<hook>"`, as Juju
    reports its agent's error status."""
    if unit.failed_hook:
        return Status("error", f'hook failed: "{unit.failed_hook}"', unit.agent.since,
                      data={"hook": unit.failed_hook})
    return unit.workload


def shown_agent(unit: Unit) -> Status:
    """...and its agent "idle" meanwhile."""
    if unit.failed_hook:
        return Status("idle", "", unit.agent.since, unit.agent.version)
    return unit.agent


def derived_status(app: App) -> Status:
    """The application's status: the most severe unit workload status (status.DeriveStatus;
    the emulated charms never set an application status, so `app.status` stays "unset")."""
    units = app.alive_units()
    best: Status | None = None
    for unit in units:
        shown = shown_workload(unit)
        if best is None or SEVERITY.get(shown.current, 0) > SEVERITY.get(best.current, 0):
            best = shown
    if best is None:
        return Status("unknown", "", app.created)
    return best


def app_workload_version(app: App) -> str:
    for unit in app.alive_units():
        if unit.workload_version:
            return unit.workload_version
    return ""


# --- FullStatus ----------------------------------------------------------------------------------


def base_api(base: str) -> dict[str, str]:
    name, _, track = base.partition("@")
    return {"name": name, "channel": track}


def unit_status(w: World, unit: Unit) -> dict[str, Any]:
    """params.UnitStatus, subordinates nested."""
    life = "" if unit.life == "alive" else unit.life
    return {
        "agent-status": shown_agent(unit).detailed("", life),
        "workload-status": shown_workload(unit).detailed("", life),
        "workload-version": unit.workload_version,
        "machine": unit.machine_id,
        "opened-ports": [],
        "public-address": unit.public_address,
        "address": unit.private_address,
        "provider-id": "",
        "charm": "",
        "subordinates": {s.name: unit_status(w, s) for s in w.subordinates_of(unit.name)},
        "leader": unit.leader,
    }


def application_status(w: World, app: App) -> dict[str, Any]:
    """params.ApplicationStatus."""
    relations: dict[str, list[str]] = {}
    subordinate_to: set[str] = set()
    for rel, ep, far in w.ends_of(app.name):
        relations.setdefault(ep.name, [])
        if far not in relations[ep.name]:
            relations[ep.name].append(far)
        if app.subordinate and rel.scope == "container" and not rel.is_peer:
            other = w.apps.get(far)
            if other is not None and not other.subordinate:
                subordinate_to.add(far)
    life = "" if app.life == "alive" else app.life
    units = {} if app.subordinate else {u.name: unit_status(w, u) for u in app.alive_units()}
    return {
        "charm": app.charm_url,
        "charm-version": "",
        "charm-profile": "",
        "charm-channel": app.channel,
        "charm-rev": app.revision,
        "base": base_api(app.base),
        "exposed": app.exposed,
        "exposed-endpoints": {k: dict(v) for k, v in app.exposed_endpoints.items()},
        "life": life,
        "relations": {k: sorted(v) for k, v in sorted(relations.items())},
        "can-upgrade-to": "",
        "subordinate-to": sorted(subordinate_to),
        "units": units,
        "meter-statuses": {},
        "status": derived_status(app).detailed("application", life),
        "workload-version": app_workload_version(app),
        "endpoint-bindings": dict(app.endpoint_bindings),
        "public-address": "",
        "provider-id": "",
    }


def relation_status(w: World, rel: Relation) -> dict[str, Any]:
    """params.RelationStatus."""
    return {
        "id": rel.id,
        "key": rel.key,
        "interface": rel.interface,
        "scope": rel.scope,
        "endpoints": [
            {"application": app, "name": ep.name, "role": ep.role,
             "subordinate": bool(w.apps.get(app) and w.apps[app].subordinate)}
            for app, ep in rel.endpoints
        ],
        "status": Status("joined" if rel.life == "alive" else "broken").detailed("relation"),
    }


def log_event(ctx: CallContext, kind: str, **fields: Any) -> None:
    """An event for a mutating call, naming the model (the rpc event is logged already)."""
    ctx.event(kind, model=ctx.model.name, model_uuid=ctx.model.uuid, **fields)
