"""The facade registry: which facade methods the emulated controller serves, at which versions.

Extension API
=============

A facade method is an async function of a `CallContext` and the request's params (a dict,
JSON as the client sent it) that returns the response (a dict; None means `{}`) or raises
`JujuApiError`. Register it with the decorator, in any module listed in `FACADE_MODULES`
(or passed to `JujuEmulator(modules=...)`)::

    from botlab.lab.juju.errors import JujuApiError, error_result, not_found
    from botlab.lab.juju.facades import CallContext, facade_method

    @facade_method("Application", (17, 19, 20), "Deploy")
    async def deploy(ctx: CallContext, params: dict) -> dict:
        model = ctx.model                        # the connection's ModelState
        maas = ctx.controller.maas_url, ctx.controller.maas_api_key
        ...
        model.put_entity("application", {...})  # AllWatcher delta ["application","change",{...}]
        ctx.event("application-deployed", name="ubuntu")   # into the event log
        ctx.controller.spawn(some_coroutine())  # background work on the emulator's loop
        return {"results": [{}]}

- Versions must be ones python-libjuju 3.6.1.3 speaks (`client_facade_versions`), and the
  method must exist in libjuju's generated client for each version: registration fails
  loudly otherwise. A facade is offered at login at the versions that have at least one
  method registered, filtered as Juju does for controller and model connections.
- `mutating` (for the event log) defaults to a guess from the name: Get*/List*/Watch*/
  Next/Stop/... read; everything else writes. Pass `mutating=False|True` to be explicit.
- Replies are checked against the type libjuju decodes them with (see check.py); a reply
  that would not decode is answered as an error naming the field.
- A call whose facade and version exist in real Juju but whose method nobody registered
  answers "no such request - method F(v).M is not implemented by the botlab Juju
  emulator" (code "not implemented"): never a silent success.

Other extension points on the same registry:

- `@status_contributor`: `fn(ctx, status)` fills Client.FullStatus (machines, applications,
  relations ...) for the model (may be async).
- `@destroy_hook`: `async fn(controller, model)` runs while a model is destroyed (release
  its machines from MAAS ...) before it disappears.
- Watchers: `ctx.conn.add_watcher(obj)` (any object with `stop()`) returns the id the client
  sends back as the request's "id" (`ctx.id`); `ctx.conn.watcher(id)` finds it; watchers
  are stopped when their connection closes.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from juju.client.facade_versions import client_facade_versions

from botlab.lab.juju.check import client_methods

if TYPE_CHECKING:
    from botlab.lab.juju.rpc import RpcConnection
    from botlab.lab.juju.state import ControllerState, ModelState

Handler = Callable[["CallContext", dict[str, Any]], Awaitable[dict[str, Any] | None]]
StatusContributor = Callable[["CallContext", dict[str, Any]], Awaitable[None] | None]
DestroyHook = Callable[["ControllerState", "ModelState"], Awaitable[None]]
ConnectionKind = Literal["controller", "model"]

# Modules whose import registers the built-in facade methods. Add yours here.
FACADE_MODULES = (
    "botlab.lab.juju.admin",
    "botlab.lab.juju.controller",
    "botlab.lab.juju.model",
    "botlab.lab.juju.machines",
    "botlab.lab.juju.applications",
)

# apiserver/restrict_controller.go (Juju 3.6): what a controller-only login may use; a
# model login may use everything except CONTROLLER_FACADES.
CONTROLLER_FACADES = frozenset({
    "AllModelWatcher", "ApplicationOffers", "Cloud", "Controller", "CrossController", "MigrationTarget",
    "ModelManager", "ModelUpgrader", "ModelSummaryWatcher", "SecretBackends", "UserManager",
})
COMMON_FACADES = frozenset({"Pinger", "Bundle", "HighAvailability", "NotifyWatcher", "ModelConfig", "SSHServer"})

READ_ONLY_PREFIXES = (
    "Get", "List", "Show", "Find", "Watch", "Next", "Stop", "Ping", "Login", "RedirectInfo", "Info",
    "FullStatus", "Status", "ModelGet", "ModelInfo", "ModelStatus", "Cloud", "Credential", "UserInfo",
    "UserCredentials", "Controller", "AllModels", "IdentityProviderURL", "MongoVersion", "HostedModelConfigs",
    "ModelConfig", "Sequences", "SLALevel", "ExportBundle", "CharmInfo", "Dashboard", "CheckCredentials",
    "InstanceTypes", "ModelDefaultsForClouds", "DumpModels", "ModelUserInfo", "Read",
)


def is_controller_facade(name: str) -> bool:
    return name in CONTROLLER_FACADES or name in COMMON_FACADES


def is_model_facade(name: str) -> bool:
    return name not in CONTROLLER_FACADES


def guess_mutating(method: str) -> bool:
    return not method.startswith(READ_ONLY_PREFIXES)


@dataclass(frozen=True)
class MethodEntry:
    facade: str
    version: int
    method: str
    handler: Handler
    mutating: bool


@dataclass
class CallContext:
    """What a facade method sees of the call and the controller."""

    conn: RpcConnection
    facade: str
    version: int
    method: str
    request_id: int
    id: str  # the request's "id" (watcher calls), "" if none

    @property
    def controller(self) -> ControllerState:
        return self.conn.controller

    @property
    def model(self) -> ModelState:
        """The connection's model (the controller model for controller connections)."""
        return self.conn.model

    @property
    def kind(self) -> ConnectionKind:
        return self.conn.kind

    @property
    def user(self) -> str:
        return self.conn.username

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def event(self, kind: str, **fields: Any) -> None:
        """Record an event in the emulator's log (tests read it)."""
        self.controller.events.record(kind, conn=self.conn.id, **fields)


@dataclass
class FacadeRegistry:
    methods: dict[tuple[str, int, str], MethodEntry] = field(default_factory=dict)
    status_contributors: list[StatusContributor] = field(default_factory=list)
    destroy_hooks: list[DestroyHook] = field(default_factory=list)

    def register(
        self,
        facade: str,
        versions: Iterable[int],
        method: str,
        handler: Handler,
        *,
        mutating: bool | None = None,
        replace: bool = False,
    ) -> None:
        versions = tuple(versions)
        if not versions:
            raise ValueError(f"{facade}.{method}: no versions given")
        known = client_facade_versions.get(facade)
        for version in versions:
            if known is None or version not in known:
                raise ValueError(
                    f"{facade}({version}).{method}: libjuju does not speak {facade} version {version}"
                    f" (it speaks {tuple(known) if known else 'no version of it'})"
                )
            methods = client_methods(facade, version)
            if methods is not None and method not in methods:
                raise ValueError(f"{facade}({version}) has no method {method!r} in libjuju's client")
            key = (facade, version, method)
            if key in self.methods and not replace and self.methods[key].handler is not handler:
                raise ValueError(f"{facade}({version}).{method} is already registered (pass replace=True)")
            self.methods[key] = MethodEntry(
                facade, version, method, handler, guess_mutating(method) if mutating is None else mutating
            )

    def lookup(self, facade: str, version: int, method: str) -> MethodEntry:
        """The entry for a call, or the JujuApiError a real controller would give."""
        from botlab.lab.juju import errors

        entry = self.methods.get((facade, version, method))
        if entry is not None:
            return entry
        known = client_facade_versions.get(facade)
        if known is not None and version in known:
            raise errors.method_not_implemented(facade, version, method)
        if known is not None or any(f == facade for f, _v, _m in self.methods):
            raise errors.unknown_version(facade, version)
        raise errors.unknown_facade(facade)

    def served_versions(self, facade: str) -> tuple[int, ...]:
        return tuple(sorted({v for f, v, _m in self.methods if f == facade}))

    def describe(self, kind: ConnectionKind) -> list[dict[str, Any]]:
        """The facades list of a login result for this kind of connection."""
        allowed = is_controller_facade if kind == "controller" else is_model_facade
        names = sorted({f for f, _v, _m in self.methods})
        return [{"name": n, "versions": list(self.served_versions(n))} for n in names if allowed(n)]

    def add_status_contributor(self, fn: StatusContributor) -> None:
        if fn not in self.status_contributors:
            self.status_contributors.append(fn)

    def add_destroy_hook(self, fn: DestroyHook) -> None:
        if fn not in self.destroy_hooks:
            self.destroy_hooks.append(fn)


REGISTRY = FacadeRegistry()


def facade_method(
    facade: str,
    versions: Iterable[int] | int,
    method: str,
    *,
    mutating: bool | None = None,
    registry: FacadeRegistry | None = None,
    replace: bool = False,
) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as `facade.method` at `versions` (see module doc)."""
    vs = (versions,) if isinstance(versions, int) else tuple(versions)

    def decorate(fn: Handler) -> Handler:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"{facade}.{method}: the handler must be an async function")
        (registry or REGISTRY).register(facade, vs, method, fn, mutating=mutating, replace=replace)
        return fn

    return decorate


def status_contributor(fn: StatusContributor) -> StatusContributor:
    """Register `fn(ctx, status)` to fill in Client.FullStatus (see module doc)."""
    REGISTRY.add_status_contributor(fn)
    return fn


def destroy_hook(fn: DestroyHook) -> DestroyHook:
    """Register `async fn(controller, model)` to run while a model is destroyed."""
    REGISTRY.add_destroy_hook(fn)
    return fn


def load_modules(modules: Iterable[str] = ()) -> None:
    """Import the built-in facade modules and `modules` (registration happens on import)."""
    for name in (*FACADE_MODULES, *modules):
        importlib.import_module(name)

