"""What the emulated controller knows: clouds, credentials, users and models, each model's
configuration, constraints, annotations and keys, and each model's *delta feed*, the entity
store its AllWatchers read.

Everything here lives on the emulator's event loop: handlers, timers and hooks mutate it
there and nothing else does (other threads go through `JujuEmulator.call`). Entities the
AllWatcher shows (machines, applications, units, ...) are published with
`ModelState.put_entity(kind, data)` / `remove_entity(kind, id)`; a watcher's next `Next`
returns them as `[kind, "change"|"remove", data]` deltas, coalesced to the latest state.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botlab.lab.events import EventLog
from botlab.lab.juju import modelconfig
from botlab.lab.juju.errors import JujuApiError, already_exists, not_found, not_valid

if TYPE_CHECKING:
    from botlab.lab.spec import LabSpec

# The field holding each entity kind's id, as params.EntityId in Juju's multiwatcher.
ENTITY_ID_KEYS = {
    "action": "id",
    "annotation": "tag",
    "application": "name",
    "applicationOffer": "offer-name",
    "block": "id",
    "branch": "id",
    "charm": "charm-url",
    "machine": "id",
    "model": "model-uuid",
    "relation": "key",
    "remoteApplication": "name",
    "unit": "name",
}
MODEL_NAME_CHARS = "lowercase letters, digits and hyphens"


def iso_time(t: float) -> str:
    """An RFC 3339 UTC timestamp as Go marshals time.Time."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat().replace("+00:00", "Z")


def valid_model_name(name: str) -> bool:
    return bool(name) and name[0] != "-" and all(c.isdigit() or ("a" <= c <= "z") or c == "-" for c in name)


# --- the AllWatcher's entity store -------------------------------------------------------------


@dataclass
class _Entry:
    kind: str
    id: str
    data: dict[str, Any]
    rev: int
    removed: bool = False


class DeltaFeed:
    """The entities of one model as its AllWatchers see them, with a revision per change."""

    def __init__(self, model_uuid: str) -> None:
        self.model_uuid = model_uuid
        self.rev = 0
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        self.closed = False

    def put(self, kind: str, data: dict[str, Any]) -> None:
        """Create or replace the entity `data` describes (its id is taken from `data`)."""
        key_field = ENTITY_ID_KEYS.get(kind)
        if key_field is None:
            raise ValueError(f"unknown AllWatcher entity kind {kind!r} (known: {', '.join(ENTITY_ID_KEYS)})")
        if key_field not in data:
            raise ValueError(f"a {kind} delta needs its id field {key_field!r}")
        data = {"model-uuid": self.model_uuid, **data}
        self.rev += 1
        entity_id = str(data[key_field])
        self._entries[(kind, entity_id)] = _Entry(kind, entity_id, data, self.rev)
        self._wake()

    def remove(self, kind: str, entity_id: str) -> None:
        entry = self._entries.get((kind, str(entity_id)))
        if entry is None or entry.removed:
            return
        self.rev += 1
        entry.removed, entry.rev = True, self.rev
        self._wake()

    def get(self, kind: str, entity_id: str) -> dict[str, Any] | None:
        entry = self._entries.get((kind, str(entity_id)))
        return None if entry is None or entry.removed else entry.data

    def entities(self, kind: str) -> dict[str, dict[str, Any]]:
        return {e.id: e.data for e in self._entries.values() if e.kind == kind and not e.removed}

    def changes_since(self, rev: int, known: set[tuple[str, str]]) -> list[list[Any]]:
        """Deltas for entries changed after `rev`; `known` (what the watcher has shown as live)
        is updated. Removals of entities the watcher never saw are skipped."""
        out: list[list[Any]] = []
        for entry in sorted(self._entries.values(), key=lambda e: e.rev):
            if entry.rev <= rev:
                continue
            key = (entry.kind, entry.id)
            if entry.removed:
                if key in known:
                    known.discard(key)
                    out.append([entry.kind, "remove", entry.data])
            else:
                known.add(key)
                out.append([entry.kind, "change", entry.data])
        return out

    def waiter(self) -> asyncio.Future[None]:
        """A future that completes at the next change (or when the feed closes). It is
        registered at once, so a change made before the caller awaits it is not missed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        future.add_done_callback(self._waiters.discard)
        return future

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        for future in list(self._waiters):
            if not future.done():
                future.set_result(None)


class FeedWatcher:
    """One AllWatcher: the first `next()` returns every live entity, later ones what changed
    since, blocking until there is something."""

    def __init__(self, feed: DeltaFeed) -> None:
        self.feed = feed
        self.rev = 0
        self.known: set[tuple[str, str]] = set()
        self.stopped = asyncio.Event()

    async def next(self) -> list[list[Any]]:
        while True:
            if self.stopped.is_set():
                raise JujuApiError("watcher was stopped", "stopped")
            deltas = self.feed.changes_since(self.rev, self.known)
            self.rev = self.feed.rev
            if deltas:
                return deltas
            if self.feed.closed:
                raise JujuApiError("watcher was stopped", "stopped")
            changed = self.feed.waiter()  # no await since changes_since: no change can slip by
            stop: asyncio.Future[Any] = asyncio.ensure_future(self.stopped.wait())
            try:
                await asyncio.wait([changed, stop], return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                stop.cancel()

    def stop(self) -> None:
        self.stopped.set()


# --- clouds, credentials, users ------------------------------------------------------------------


@dataclass
class CloudRegion:
    name: str
    endpoint: str = ""
    identity_endpoint: str = ""
    storage_endpoint: str = ""

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "identity-endpoint": self.identity_endpoint,
            "storage-endpoint": self.storage_endpoint,
        }


@dataclass
class Cloud:
    name: str
    type: str
    auth_types: list[str]
    endpoint: str = ""
    regions: list[CloudRegion] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    region_config: dict[str, Any] = field(default_factory=dict)
    ca_certificates: list[str] = field(default_factory=list)
    skip_tls_verify: bool = False
    is_controller_cloud: bool = False

    @property
    def tag(self) -> str:
        return f"cloud-{self.name}"

    def region(self, name: str | None) -> CloudRegion:
        """The named region, or the default (first) one; not valid if it does not exist."""
        if not name:
            return self.regions[0]
        for region in self.regions:
            if region.name == name:
                return region
        known = ", ".join(f'"{r.name}"' for r in self.regions)
        raise not_valid(f'getting cloud region definition: region "{name}" not found (expected one of [{known}])')

    def to_api(self) -> dict[str, Any]:
        """params.Cloud."""
        return {
            "type": self.type,
            "host-cloud-region": "",
            "auth-types": list(self.auth_types),
            "endpoint": self.endpoint,
            "identity-endpoint": "",
            "storage-endpoint": "",
            "regions": [r.to_api() for r in self.regions],
            "ca-certificates": list(self.ca_certificates),
            "skip-tls-verify": self.skip_tls_verify,
            "config": dict(self.config),
            "region-config": dict(self.region_config),
            "is-controller-cloud": self.is_controller_cloud,
        }


# Attributes of each auth type (juju/cloud schemas): (name, secret?).
AUTH_ATTRIBUTES: dict[str, tuple[tuple[str, bool], ...]] = {
    "oauth1": (("maas-oauth", True),),
    "empty": (),
}


@dataclass
class Credential:
    cloud: str
    owner: str
    name: str
    auth_type: str
    attrs: dict[str, str]
    invalid: bool = False
    invalid_reason: str = ""

    @property
    def tag(self) -> str:
        return f"cloudcred-{self.cloud}_{self.owner}_{self.name}"

    @property
    def id(self) -> str:
        return f"{self.cloud}/{self.owner}/{self.name}"

    def to_api(self, *, redact: bool = True) -> dict[str, Any]:
        """params.CloudCredential (secret attributes redacted, as Juju does)."""
        secret = {name for name, is_secret in AUTH_ATTRIBUTES.get(self.auth_type, ()) if is_secret}
        attrs = {k: v for k, v in self.attrs.items() if not (redact and k in secret)}
        redacted = sorted(secret & set(self.attrs)) if redact else []
        return {"auth-type": self.auth_type, "attrs": attrs, "redacted": redacted}


def parse_credential_tag(tag: str) -> tuple[str, str, str]:
    """(cloud, owner, name) of `cloudcred-<cloud>_<owner>_<name>`; not valid otherwise."""
    if not tag.startswith("cloudcred-"):
        raise not_valid(f'"{tag}" is not a valid cloudcred tag')
    parts = tag[len("cloudcred-") :].split("_")
    if len(parts) != 3 or not all(parts):
        raise not_valid(f'"{tag}" is not a valid cloudcred tag')
    return parts[0], parts[1], parts[2]


@dataclass
class User:
    name: str
    password: str
    display_name: str = ""
    access: str = "superuser"  # controller access: login, add-model, superuser
    created_by: str = "admin"
    date_created: float = field(default_factory=time.time)
    disabled: bool = False
    last_connection: float | None = None

    @property
    def tag(self) -> str:
        return f"user-{self.name}"

    def to_api(self) -> dict[str, Any]:
        """params.UserInfo."""
        out: dict[str, Any] = {
            "username": self.name,
            "display-name": self.display_name,
            "access": self.access,
            "created-by": self.created_by,
            "date-created": iso_time(self.date_created),
            "disabled": self.disabled,
        }
        if self.last_connection is not None:
            out["last-connection"] = iso_time(self.last_connection)
        return out


# --- models --------------------------------------------------------------------------------------


@dataclass
class ModelState:
    """One model. `ext` is free for extension modules (keyed by their own names)."""

    uuid: str
    name: str
    owner: str
    cloud: Cloud
    region: str
    credential: Credential | None
    controller_uuid: str
    agent_version: str
    type: str = "iaas"
    is_controller: bool = False
    config: dict[str, Any] = field(default_factory=dict)  # the model's own values (source "model")
    constraints: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    life: str = "alive"
    status: str = "available"
    status_info: str = ""
    status_since: float = field(default_factory=time.time)
    sla_level: str = "unsupported"
    created: float = field(default_factory=time.time)
    last_connection: float | None = None
    ext: dict[str, Any] = field(default_factory=dict)
    feed: DeltaFeed = field(init=False)

    def __post_init__(self) -> None:
        self.feed = DeltaFeed(self.uuid)

    @property
    def tag(self) -> str:
        return f"model-{self.uuid}"

    @property
    def owner_tag(self) -> str:
        return f"user-{self.owner}"

    @property
    def qualified_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def provider_type(self) -> str:
        return self.cloud.type

    # -- entities (AllWatcher) --

    def put_entity(self, kind: str, data: dict[str, Any]) -> None:
        """Publish an entity (a machine, application, unit, ...) to this model's AllWatchers."""
        self.feed.put(kind, data)

    def remove_entity(self, kind: str, entity_id: str) -> None:
        self.feed.remove(kind, entity_id)

    def entity(self, kind: str, entity_id: str) -> dict[str, Any] | None:
        return self.feed.get(kind, entity_id)

    def entities(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.feed.entities(kind)

    def has_tag(self, tag: str) -> bool:
        """Whether the entity a tag names exists here (model-, machine-, application-, unit-)."""
        kind, _, rest = tag.partition("-")
        if kind == "model":
            return rest == self.uuid
        if kind == "unit":
            app, _, number = rest.rpartition("-")
            return self.entity("unit", f"{app}/{number}") is not None
        if kind in ("machine", "application", "charm"):
            return self.entity(kind, rest) is not None
        return False

    # -- config --

    def config_values(self) -> dict[str, dict[str, Any]]:
        """ModelGet: key -> {"value", "source"}."""
        return modelconfig.with_sources(self.own_config())

    def own_config(self) -> dict[str, Any]:
        return {
            **self.config,
            "name": self.name,
            "uuid": self.uuid,
            "type": self.cloud.type,
            "agent-version": self.agent_version,
        }

    @property
    def authorized_keys(self) -> str:
        return str(self.config.get("authorized-keys", ""))

    # -- views --

    def status_view(self) -> dict[str, Any]:
        """params.EntityStatus."""
        return {"status": self.status, "info": self.status_info, "data": {}, "since": iso_time(self.status_since)}

    def publish(self) -> None:
        """Send the model's own delta (params.ModelUpdate) to its AllWatchers."""
        self.feed.put(
            "model",
            {
                "model-uuid": self.uuid,
                "name": self.name,
                "life": self.life,
                "owner": self.owner,
                "controller-uuid": self.controller_uuid,
                "is-controller": self.is_controller,
                "config": modelconfig.effective(self.own_config()),
                "status": {
                    "current": self.status,
                    "message": self.status_info,
                    "since": iso_time(self.status_since),
                    "version": "",
                    "data": {},
                },
                "constraints": dict(self.constraints),
                "sla": {"level": self.sla_level, "owner": self.owner},
            },
        )

    def set_status(self, status: str, info: str = "") -> None:
        self.status, self.status_info, self.status_since = status, info, time.time()


DestroyHook = Callable[["ControllerState", ModelState], Awaitable[None]]


class ControllerState:
    """The controller: its uuid, clouds, credentials, users and models."""

    def __init__(
        self,
        *,
        name: str,
        uuid: str,
        version: str,
        cloud: Cloud,
        spec: LabSpec,
        maas_url: str,
        maas_api_key: str,
        events: EventLog,
        destroy_s: float = 0.2,
    ) -> None:
        self.name = name
        self.uuid = uuid
        self.version = version
        self.spec = spec
        self.maas_url = maas_url
        self.maas_api_key = maas_api_key
        self.events = events
        self.destroy_s = destroy_s
        # Juju's provisioner retry strategy (see machines.START_RETRIES); the spec's juju section.
        self.provisioner_retries = 10
        self.provisioner_retry_s = 10.0
        self.clouds: dict[str, Cloud] = {cloud.name: cloud}
        self.default_cloud = cloud.name
        self.credentials: dict[tuple[str, str, str], Credential] = {}
        self.users: dict[str, User] = {}
        self.models: dict[str, ModelState] = {}
        self.api_addresses: list[str] = []
        self.ca_cert = ""
        self.system_key = ""  # the controller's own key (comment juju-system-key), in every model
        # What `juju bootstrap --model-default k=v` sets: config every new model starts with.
        self.model_defaults: dict[str, Any] = {}
        self.destroy_hooks: list[DestroyHook] = []
        self.on_model_removed: list[Callable[[ModelState], None]] = []
        self._model_serial = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- loop --

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the Juju emulator is not serving")
        return self._loop

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "juju-task") -> asyncio.Task[Any]:
        """Run `coro` in the background on the emulator's loop (cancelled when it stops)."""
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- lookups --

    def cloud(self, name: str) -> Cloud:
        try:
            return self.clouds[name]
        except KeyError:
            raise not_found(f'cloud "{name}" not found') from None

    def user(self, name: str) -> User | None:
        return self.users.get(name)

    def model(self, uuid: str) -> ModelState:
        try:
            return self.models[uuid]
        except KeyError:
            raise not_found(f'model "{uuid}" not found') from None

    def model_by_name(self, owner: str, name: str) -> ModelState | None:
        for m in self.models.values():
            if m.owner == owner and m.name == name:
                return m
        return None

    def controller_model(self) -> ModelState:
        return next(m for m in self.models.values() if m.is_controller)

    def iter_models(self) -> Iterator[ModelState]:
        return iter(sorted(self.models.values(), key=lambda m: (not m.is_controller, m.created, m.name)))

    def credential(self, cloud: str, owner: str, name: str) -> Credential:
        try:
            return self.credentials[(cloud, owner, name)]
        except KeyError:
            raise not_found(f'credential "{cloud}/{owner}/{name}" not found') from None

    # -- changes --

    def add_credential(self, credential: Credential) -> None:
        self.cloud(credential.cloud)
        self.credentials[(credential.cloud, credential.owner, credential.name)] = credential

    def new_uuid(self, what: str) -> str:
        """Deterministic UUIDs: the same lab and the same calls give the same ids."""
        self._model_serial += 1
        return str(uuidlib.uuid5(uuidlib.UUID(self.uuid), f"{what}-{self._model_serial}"))

    def create_model(
        self,
        name: str,
        owner: str,
        *,
        cloud: str | None = None,
        region: str | None = None,
        credential: Credential | None = None,
        config: dict[str, Any] | None = None,
        is_controller: bool = False,
    ) -> ModelState:
        if not valid_model_name(name):
            raise not_valid(
                f'failed to create config: creating config from values failed: "{name}" is not a valid name:'
                f" model names may only contain {MODEL_NAME_CHARS}"
            )
        if self.model_by_name(owner, name) is not None:
            raise already_exists(f'failed to create new model: model "{name}" for {owner} already exists')
        the_cloud = self.cloud(cloud or self.default_cloud)
        the_region = the_cloud.region(region)
        values: dict[str, Any] = {}
        for key, value in {**self.model_defaults, **(config or {})}.items():
            if key in modelconfig.IMMUTABLE or key == "agent-version":
                raise not_valid(f'failed to create config: option "{key}" may not be set at model creation')
            values[key] = modelconfig.coerce(key, value)
        model = ModelState(
            uuid=self.new_uuid(f"model-{owner}-{name}"),
            name=name,
            owner=owner,
            cloud=the_cloud,
            region=the_region.name,
            credential=credential,
            controller_uuid=self.uuid,
            agent_version=self.version,
            is_controller=is_controller,
            config=values,
        )
        self.models[model.uuid] = model
        model.publish()
        self.events.record("model-added", model=model.name, model_uuid=model.uuid, owner=owner)
        return model

    def destroy_model(self, model: ModelState) -> None:
        """Start destroying `model`: it turns dying now and disappears once every destroy hook
        ran and `destroy_s` passed. A second call while dying is a no-op."""
        if model.is_controller:
            raise JujuApiError(
                f'failed to destroy model: model "{model.name}" is the controller model and cannot be destroyed'
            )
        if model.life != "alive":
            return
        model.life = "dying"
        model.set_status("destroying", "the model is being destroyed")
        model.publish()
        self.events.record("model-dying", model=model.name, model_uuid=model.uuid)
        self.spawn(self._finish_destroy(model), name=f"destroy-{model.name}")

    async def _finish_destroy(self, model: ModelState) -> None:
        try:
            for hook in self.destroy_hooks:
                await hook(self, model)
        except Exception as exc:  # a hook failing leaves the model dying, as a stuck teardown does
            model.set_status("error", f"destroying the model failed: {exc}")
            model.publish()
            self.events.record("model-destroy-failed", model=model.name, model_uuid=model.uuid, error=str(exc))
            return
        if self.destroy_s > 0:
            await asyncio.sleep(self.destroy_s)
        model.life = "dead"
        model.feed.remove("model", model.uuid)
        model.feed.close()
        self.models.pop(model.uuid, None)
        self.events.record("model-removed", model=model.name, model_uuid=model.uuid)
        for callback in list(self.on_model_removed):
            callback(model)


def controller_uuid_for(seed: int, name: str) -> str:
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"botlab-juju-controller/{name}/{seed}"))
