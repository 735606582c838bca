"""`JujuEmulator`: an emulated Juju 3.6 controller (wss API + control API) for a lab spec.

    with run_juju(spec, maas.url, maas.api_key) as juju:
        data = juju.write_juju_data(tmp / "juju")      # then JUJU_DATA=data
        ...                                           # libjuju: Controller().connect(), ...
        juju.inject({"kind": "drop", "facade": "Client", "method": "FullStatus"})
        juju.events(since)                             # what the clients did

The controller runs on its own event loop in a background thread; every method here may be
called from any thread. It lives on a MAAS cloud (type "maas", endpoint = the MAAS
emulator's URL, credential = its API key) and starts, as after `juju bootstrap`, with the
"controller" model and a "default" model.

Settings come from the lab spec's `juju:` section (all optional)::

    juju:
      controller: botlab-lab     # controller name in controllers.yaml
      cloud: lab-maas            # the MAAS cloud's name
      user: admin
      password: null             # null: a random one (written to accounts.yaml)
      version: 3.6.1             # what the controller reports (major version must be 3)
      destroy_s: 0.2             # how long destroying a model takes after its hooks ran
      provisioner_retries: 10    # a failed machine start is retried this often (Juju: 10)
      provisioner_retry_s: 10    # ... this many seconds apart (Juju: 10s)
      default_model: true        # create "default" as juju bootstrap does
      faults: []                 # see faults.py
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from botlab.lab.events import EventLog
from botlab.lab.juju.control import ControlApi
from botlab.lab.juju.facades import REGISTRY, FacadeRegistry, load_modules
from botlab.lab.juju.faults import FaultBook, JujuFault, load_fault
from botlab.lab.juju.jujudata import JujuDataSpec, ensure_client_key, write_juju_data
from botlab.lab.juju.rpc import ApiServer, rpc_counters
from botlab.lab.juju.sshkeys import split_authorized_keys
from botlab.lab.juju.state import Cloud, CloudRegion, ControllerState, Credential, User, controller_uuid_for
from botlab.lab.juju.tls import ControllerCerts, make_certs
from botlab.lab.spec import LabSpec
from botlab.lab.thread import ServerThread, Site, StartStop

T = TypeVar("T")

_SETTINGS = ("controller", "cloud", "user", "password", "version", "destroy_s", "default_model", "faults",
             "charms", "provisioner_retries", "provisioner_retry_s")


@dataclass(frozen=True)
class JujuSettings:
    controller: str = "botlab-lab"
    cloud: str = "lab-maas"
    user: str = "admin"
    password: str | None = None
    version: str = "3.6.1"
    destroy_s: float = 0.2
    provisioner_retries: int = 10  # worker/provisioner retryStrategyCount (Juju 3.6)
    provisioner_retry_s: float = 10.0  # worker/provisioner retryStrategyDelay (Juju 3.6)
    default_model: bool = True
    faults: tuple[JujuFault, ...] = field(default_factory=tuple)


def juju_settings(spec: LabSpec) -> JujuSettings:
    """The spec's `juju:` section, checked; ValueError names the bad key."""
    raw = spec.extra.get("juju") or {}
    if not isinstance(raw, Mapping):
        raise ValueError("juju: must be a mapping")
    for key in raw:
        if key not in _SETTINGS:
            raise ValueError(f"juju.{key}: unknown setting (known: {', '.join(_SETTINGS)})")
    base = JujuSettings()
    out: dict[str, Any] = {}
    for key in ("controller", "cloud", "user", "version"):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise ValueError(f"juju.{key}: must be a non-empty string")
            out[key] = raw[key]
    if not str(out.get("version", base.version)).startswith("3."):
        raise ValueError("juju.version: libjuju 3 talks to Juju 3.x controllers only")
    if raw.get("password") is not None:
        if not isinstance(raw["password"], str) or not raw["password"]:
            raise ValueError("juju.password: must be a non-empty string")
        out["password"] = raw["password"]
    if "destroy_s" in raw:
        value = raw["destroy_s"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError("juju.destroy_s: must be a number of seconds >= 0")
        out["destroy_s"] = float(value)
    if "provisioner_retry_s" in raw:
        value = raw["provisioner_retry_s"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError("juju.provisioner_retry_s: must be a number of seconds >= 0")
        out["provisioner_retry_s"] = float(value)
    if "provisioner_retries" in raw:
        value = raw["provisioner_retries"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("juju.provisioner_retries: must be an integer >= 0")
        out["provisioner_retries"] = value
    if "default_model" in raw:
        if not isinstance(raw["default_model"], bool):
            raise ValueError("juju.default_model: must be true or false")
        out["default_model"] = raw["default_model"]
    if any(f.service == "juju" for f in spec.faults):
        raise ValueError("faults: put Juju faults in the juju.faults section (kinds drop, error, slow), "
                         "not in the MAAS-shaped top-level faults list")
    faults = raw.get("faults") or []
    if not isinstance(faults, list):
        raise ValueError("juju.faults: must be a list")
    out["faults"] = tuple(load_fault(f) for f in faults)
    return JujuSettings(**{**base.__dict__, **out})


def _system_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} juju-system-key"


class JujuEmulator(StartStop):
    """An emulated Juju controller for `spec`, on the MAAS at `maas_url` with `maas_api_key`."""

    def __init__(
        self,
        spec: LabSpec,
        maas_url: str,
        maas_api_key: str,
        *,
        controller_name: str | None = None,
        cloud_name: str | None = None,
        password: str | None = None,
        port: int = 0,
        control_port: int = 0,
        modules: tuple[str, ...] = (),
        registry: FacadeRegistry | None = None,
        check_replies: bool = True,
        model_defaults: dict[str, Any] | None = None,
    ) -> None:
        settings = juju_settings(spec)
        self.spec = spec
        self.settings = settings
        self.controller_name = controller_name or settings.controller
        self.cloud_name = cloud_name or settings.cloud
        self.username = settings.user
        self.password = password or settings.password or secrets.token_urlsafe(18)
        self.credential_name = spec.maas.username
        self._events = EventLog(rpc_counters)
        self._faults = FaultBook()
        for fault in settings.faults:
            self._faults.add(fault)
        load_modules(modules)
        self.registry = registry or REGISTRY

        uuid = controller_uuid_for(spec.timings.seed, self.controller_name)
        self.certs: ControllerCerts = make_certs(uuid)
        region = CloudRegion("default", maas_url)
        cloud = Cloud(
            name=self.cloud_name, type="maas", auth_types=["oauth1"], endpoint=maas_url,
            regions=[region], is_controller_cloud=True,
        )
        state = ControllerState(
            name=self.controller_name, uuid=uuid, version=settings.version, cloud=cloud, spec=spec,
            maas_url=maas_url, maas_api_key=maas_api_key, events=self._events, destroy_s=settings.destroy_s,
        )
        state.model_defaults = dict(model_defaults or {})
        state.provisioner_retries = settings.provisioner_retries
        state.provisioner_retry_s = settings.provisioner_retry_s
        state.ca_cert = self.certs.ca_cert
        state.system_key = _system_key()
        state.destroy_hooks = self.registry.destroy_hooks  # shared: hooks registered later count too
        state.users[self.username] = User(self.username, self.password, display_name=self.username)
        credential = Credential(self.cloud_name, self.username, self.credential_name, "oauth1",
                                {"maas-oauth": maas_api_key})
        state.add_credential(credential)
        keys = {"authorized-keys": state.system_key}
        state.create_model("controller", self.username, credential=credential, config=keys, is_controller=True)
        if settings.default_model:
            state.create_model("default", self.username, credential=credential, config=keys)
        self.state = state
        self.server = ApiServer(state, self.registry, self._faults, check_replies=check_replies)

        # The control API is served by the thread; the API beside it on the same loop, by the
        # emulator itself, so that it can stop listening and listen again (/_lab/service down).
        self._thread = ServerThread(self._sites, (control_port,), name="juju-emulator",
                                    label="the Juju emulator", on_stop=self._close_connections)
        self._api_port = port
        self._api_sock: socket.socket | None = None
        self._api_runner: web.AppRunner | None = None
        self._api_site: web.SockSite | None = None
        self._endpoint: str | None = None
        self._control_base: str | None = None

    # --- serving ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """host:port of the API (what controllers.yaml lists in api-endpoints)."""
        if self._endpoint is None:
            raise RuntimeError("the Juju emulator is not running")
        return self._endpoint

    @property
    def control_url(self) -> str:
        """http://127.0.0.1:PORT/_lab/ (the control API)."""
        if self._control_base is None:
            raise RuntimeError("the Juju emulator is not running")
        return f"{self._control_base}/_lab/"

    @property
    def controller_uuid(self) -> str:
        return self.state.uuid

    @property
    def ca_cert(self) -> str:
        return self.certs.ca_cert

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        try:
            return self._thread.loop
        except RuntimeError:
            raise RuntimeError("the Juju emulator is not running") from None

    def start(self, timeout: float = 15.0) -> str:
        """Serve from a background thread on 127.0.0.1; returns `endpoint`."""
        if self._thread.running:
            raise RuntimeError("the Juju emulator is already running")
        self.server.service.set("up")
        self._api_sock = _listening_socket(self._api_port)
        api_port = self._api_sock.getsockname()[1]
        self._thread.start(timeout)
        (control_port,) = self._thread.ports
        self._endpoint = f"127.0.0.1:{api_port}"
        self._control_base = f"http://127.0.0.1:{control_port}"
        self.state.api_addresses = [self._endpoint]
        return self._endpoint

    def stop(self, timeout: float = 15.0) -> None:
        """Close every connection and stop serving. Safe to call twice."""
        if not self._thread.running:
            return
        self._thread.stop(timeout)
        self._endpoint = None
        self._control_base = None

    def _sites(self) -> list[Site]:
        """The control API (http), made on the serving loop at each start; its start-up
        starts the API (wss) and its clean-up stops it."""
        self.state.attach(asyncio.get_running_loop())
        control = ControlApi(self).app()
        control.on_startup.append(self._start_api)
        control.on_cleanup.append(self._stop_api)
        return [Site(control)]

    async def _start_api(self, _app: web.Application) -> None:
        api_app = web.Application(client_max_size=64 * 1024 * 1024)
        api_app.add_routes(self.server.routes())
        # A short shutdown timeout: a request held by a "slow" fault must not stall stop().
        self._api_runner = web.AppRunner(api_app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._api_runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        """Serve the API on its socket (bound again to the same port after a `down`)."""
        assert self._api_runner is not None
        if self._api_sock is None:
            self._api_sock = _listening_socket(int(self.endpoint.rpartition(":")[2]))
        self._api_site = web.SockSite(self._api_runner, self._api_sock, ssl_context=self.certs.server_context())
        await self._api_site.start()

    async def _stop_listening(self) -> None:
        """Close the API's listening socket: connecting is refused until `_listen`."""
        site, self._api_site, self._api_sock = self._api_site, None, None
        if site is not None:
            await site.stop()

    async def _stop_api(self, _app: web.Application) -> None:
        await self._stop_listening()
        runner, self._api_runner = self._api_runner, None
        if runner is not None:
            await runner.cleanup()

    def service_now(self) -> dict[str, Any]:
        return {"state": self.server.service.state}

    async def switch_service(self, state: str) -> dict[str, Any]:
        """Switch whether the controller answers, on the emulator's loop (the control API):
        `down` closes the API's listening socket and cuts every connection, as a controller
        whose process died (clients are refused); `hung` holds every request and new
        connection unanswered, as a frozen process; `up` listens again, or releases what was
        held (see faults.ServiceState)."""
        previous = self.server.service.set(state)
        if state == "down" and previous != "down":
            await self._stop_listening()
            self.server.drop_connections()
        elif state != "down" and previous == "down":
            await self._listen()
        self._events.record("service", state=state, previous=previous)
        return {"state": state, "previous": previous}

    def set_service(self, state: str, timeout: float = 10.0) -> dict[str, Any]:
        """`switch_service` from any thread."""
        return self.run_coroutine(self.switch_service(state), timeout)

    async def _close_connections(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.close_all(), 3.0)
        for conn in list(self.server.connections.values()):
            conn.drop()
        await self.state.cancel_tasks()

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run `fn()` on the emulator's loop (where the state lives) and return its result."""
        return self._thread.call_function(fn, timeout)

    def run_coroutine(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run a coroutine on the emulator's loop from another thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # --- JUJU_DATA -------------------------------------------------------------------------

    def write_juju_data(self, folder: Path | str) -> Path:
        """Write a JUJU_DATA folder for this controller (see jujudata.py); returns it. The
        client's SSH key is made there (once) and authorized in the models that exist."""
        folder = Path(folder)
        endpoint = self.endpoint
        client_key = ensure_client_key(folder)

        def authorize_and_list() -> list[tuple[str, str, str]]:
            for model in self.state.models.values():
                keys = split_authorized_keys(model.authorized_keys)
                if client_key not in keys and model.life == "alive":
                    model.config["authorized-keys"] = "\n".join([*keys, client_key])
                    model.publish()
            return [(m.qualified_name, m.uuid, m.type) for m in self.state.iter_models() if m.life == "alive"]

        models = self.call(authorize_and_list)
        names = [name for name, _u, _t in models]
        current = f"{self.username}/default" if f"{self.username}/default" in names else None
        out = write_juju_data(
            folder,
            JujuDataSpec(
                controller=self.controller_name,
                controller_uuid=self.state.uuid,
                endpoints=(endpoint,),
                ca_cert=self.ca_cert,
                version=self.state.version,
                user=self.username,
                password=self.password,
                cloud=self.cloud_name,
                cloud_type="maas",
                cloud_endpoint=self.state.maas_url,
                region="default",
                auth_type="oauth1",
                credential_name=self.credential_name,
                credential_attrs={"maas-oauth": self.state.maas_api_key},
                models=tuple(models),
                current_model=current,
            ),
        )
        self._events.record("juju-data-written", folder=str(out))
        return out

    # --- inspection and faults -------------------------------------------------------------

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Events numbered above `since` (see docs/lab-juju.md): `rpc` (facade, version,
        method, mutating, model, user, error, injected, ...), `connect`, `disconnect`,
        `model-added`, `model-dying`, `model-removed`, fault changes."""
        return self._events.since(since)

    @property
    def last_seq(self) -> int:
        return self._events.last_seq

    def counters(self) -> dict[str, int]:
        return self._events.counters()

    def inject(self, fault: JujuFault | Mapping[str, Any]) -> dict[str, Any]:
        """Add a fault (a JujuFault or its dict form); returns it as the control API shows it."""
        added = self._faults.add(fault if isinstance(fault, JujuFault) else load_fault(fault)).describe()
        self._events.record("fault-injected", fault=added)
        return added

    def clear_faults(self) -> None:
        self._faults.clear()
        self._events.record("faults-cleared")

    def active_faults(self) -> list[dict[str, Any]]:
        return self._faults.describe()

    def drop_connections(self, model: str | None = None) -> int:
        """Cut API connections now (all; or to `model`, a name or UUID; "controller" for
        controller logins), as a controller restart does; returns how many."""
        return self.call(lambda: self.drop_connections_now(model))

    def drop_connections_now(self, model: str | None = None) -> int:
        """`drop_connections` for code already on the emulator's loop."""
        count = self.server.drop_connections(model)
        self._events.record("connections-dropped", model=model, count=count)
        return count

    def connections(self) -> list[dict[str, Any]]:
        return self.call(self.connections_now)

    def connections_now(self) -> list[dict[str, Any]]:
        return [c.describe() for c in self.server.connections.values()]

    def snapshot(self) -> dict[str, Any]:
        """Everything the controller holds, as plain data (no secrets)."""
        return self.call(self.snapshot_now)

    def snapshot_now(self) -> dict[str, Any]:
        s = self.state
        return {
            "controller": {"name": s.name, "uuid": s.uuid, "version": s.version, "endpoint": self._endpoint,
                           "cloud": s.default_cloud},
            "clouds": {name: c.to_api() for name, c in s.clouds.items()},
            "credentials": sorted(c.id for c in s.credentials.values()),
            "users": sorted(s.users),
            "models": [
                {
                    "name": m.name,
                    "uuid": m.uuid,
                    "owner": m.owner,
                    "life": m.life,
                    "status": m.status,
                    "cloud": m.cloud.name,
                    "region": m.region,
                    "credential": m.credential.id if m.credential else None,
                    "config": {k: v for k, v in m.config.items()},
                    "constraints": dict(m.constraints),
                    "annotations": {k: dict(v) for k, v in m.annotations.items()},
                    "entities": {
                        kind: sorted(m.entities(kind))
                        for kind in ("machine", "application", "unit", "relation", "charm")
                        if m.entities(kind)
                    },
                }
                for m in s.iter_models()
            ],
            "connections": self.connections_now(),
            "faults": self.active_faults(),
            "counters": self.counters(),
            "last_seq": self.last_seq,
        }


def _listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@contextmanager
def run_juju(spec: LabSpec, maas_url: str, maas_api_key: str, **kwargs: Any) -> Iterator[JujuEmulator]:
    """Serve a Juju emulator for the `with` block (see JujuEmulator for kwargs)."""
    with JujuEmulator(spec, maas_url, maas_api_key, **kwargs) as emulator:
        yield emulator
