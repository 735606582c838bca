"""`MaasEmulator`: the MAAS API, its state and its control API in one aiohttp application."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from botlab.lab.artifacts import ArtifactServer
from botlab.lab.events import EventLog
from botlab.lab.maas.api import MaasApi, request_counters
from botlab.lab.maas.control import ControlApi
from botlab.lab.maas.faults import FaultBook
from botlab.lab.maas.hostbackend import HostBackend
from botlab.lab.maas.model import Cancellable, MaasModel, Machine
from botlab.lab.spec import FaultSpec, LabSpec, load_fault
from botlab.lab.thread import AppThread, StartStop


class _LoopScheduler:
    """Runs model timers on the app's loop, each under the emulator's lock."""

    def __init__(self, loop: asyncio.AbstractEventLoop, lock: threading.RLock) -> None:
        self.loop = loop
        self.lock = lock

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        return self.loop.call_later(delay, self._locked(callback))

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(self._locked(callback))

    def _locked(self, callback: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with self.lock:
                callback()

        return run


class MaasEmulator(StartStop):
    """An emulated MAAS region built from a lab spec.

    Serve `app` yourself, or call `start()` (or use `run_maas`) to serve it from a background
    thread on 127.0.0.1. Every method here may be called from any thread.
    """

    def __init__(self, spec: LabSpec, hosts: HostBackend | None = None) -> None:
        self.spec = spec
        self._lock = threading.RLock()
        self._log = EventLog(request_counters)
        self._faults = FaultBook([m.hostname for m in spec.machines], spec.timings.seed)
        for fault in spec.faults:
            if fault.service == "maas":
                self._faults.add(fault)
        self._api: MaasApi | None = None
        self.model = MaasModel(spec, self._faults, on_event=self._model_event)
        self.model.hosts = hosts
        self._api = api = MaasApi(self.model, self._lock, self._log, self._faults)
        self._service = api.service
        self.app = web.Application()
        self.app.add_routes(api.routes())
        self.app.add_routes(ControlApi(self).routes())
        self.artifacts = ArtifactServer()
        self.app.add_routes(self.artifacts.routes())
        self.app.on_startup.append(self._on_startup)
        self.app.on_cleanup.append(self._on_cleanup)
        self._thread: AppThread | None = None
        self._base: str | None = None

    # --- serving --------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The admin's API key, consumer_key:token_key:token_secret."""
        return self.spec.maas.api_key

    @property
    def url(self) -> str:
        """The MAAS URL a client connects to, e.g. http://127.0.0.1:41234/MAAS/."""
        if self._base is None:
            raise RuntimeError("the MAAS emulator is not serving yet")
        return f"{self._base}/MAAS/"

    @property
    def base_url(self) -> str:
        """Scheme, host and port, e.g. http://127.0.0.1:41234 (the control API is under it)."""
        if self._base is None:
            raise RuntimeError("the MAAS emulator is not serving yet")
        return self._base

    def serving_at(self, base_url: str) -> None:
        """Tell the emulator where it is served when `app` is run by someone else."""
        self._base = base_url.rstrip("/")

    def start(self) -> str:
        """Serve from a background thread on 127.0.0.1:<ephemeral>; return `url`."""
        if self._thread is not None:
            raise RuntimeError("the MAAS emulator is already running")
        self._thread = AppThread(self.app, name="maas-emulator")
        self._base = self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
            self._base = None

    async def _on_startup(self, app: web.Application) -> None:
        with self._lock:
            self.model.attach(_LoopScheduler(asyncio.get_running_loop(), self._lock))

    async def _on_cleanup(self, app: web.Application) -> None:
        with self._lock:
            self.model.detach()

    # --- inspection and faults ------------------------------------------------------------

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Logged events numbered above `since`: requests (seq, time, method, path, op, status,
        mutating, handler, injected) and life-cycle transitions (system_id, hostname, old,
        new, message), plus fired machine faults."""
        return self._log.since(since)

    @property
    def last_seq(self) -> int:
        return self._log.last_seq

    def counters(self) -> dict[str, int]:
        return self._log.counters()

    def inject(self, fault: FaultSpec | Mapping[str, Any]) -> dict[str, Any]:
        """Add a fault now (a FaultSpec, or a dict in the spec's format); return it as the
        control API shows it."""
        spec = fault if isinstance(fault, FaultSpec) else load_fault(fault)
        if spec.service != "maas":
            raise ValueError(f"fault for service {spec.service!r}, not maas")
        added = self._faults.add(spec).describe()
        self._log.record("fault-injected", fault=added)
        return added

    def clear_faults(self) -> None:
        self._faults.clear()
        self._log.record("faults-cleared")

    def active_faults(self) -> list[dict[str, Any]]:
        return self._faults.describe()

    def service_now(self) -> dict[str, Any]:
        return {"state": self._service.state}

    async def switch_service(self, state: str) -> dict[str, Any]:
        """Switch whether the MAAS API answers (`up`, `down`, `hung`: see faults.ServiceState);
        called on the app's loop (the control API). The control API itself keeps answering."""
        previous = self._service.set(state)
        with self._lock:
            self._log.record("service", state=state, previous=previous)
        return {"state": state, "previous": previous}

    def state(self) -> dict[str, Any]:
        """A snapshot of everything the emulator holds, for tests and `/_lab/state`."""
        with self._lock:
            m = self.model
            return {
                "machines": [_machine_state(x) for x in m.machines.values()],
                "unenlisted": m.unenlisted(),
                "tags": sorted(m.tags),
                "zones": sorted(m.zones),
                "pools": sorted(m.pools),
                "ssh_keys": [k.key for k in m.ssh_keys],
                "faults": self._faults.describe(),
                "counters": self._log.counters(),
                "last_seq": self._log.last_seq,
                "hosts": m.hosts.describe() if m.hosts is not None else None,
            }

    def _model_event(self, kind: str, **fields: Any) -> None:
        if self._api is not None:
            self._api.model_event(kind, **fields)
        else:
            self._log.record(kind, **fields)


def _machine_state(m: Machine) -> dict[str, Any]:
    return {
        "system_id": m.system_id,
        "hostname": m.hostname,
        "hardware": m.hardware.hostname if m.hardware else None,
        "status": int(m.status),
        "status_name": m.status.label,
        "status_message": m.status_message,
        "stage": m.stage,
        "macs": m.macs,
        "cpu_count": m.cpu_count,
        "memory": m.memory,
        "owner": m.owner,
        "owner_data": dict(m.owner_data),
        "tags": list(m.tags),
        "ip_addresses": m.ip_addresses,
        "osystem": m.osystem,
        "distro_series": m.distro_series,
        "user_data": _without_private_keys(m.user_data.decode("utf-8", "replace")) if m.user_data else None,
        "power_type": m.power_type,
        "power_parameters": dict(m.power_parameters),
        "power_state": m.power_state,
        "zone": m.zone,
        "pool": m.pool,
        "locked": m.locked,
    }


_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def _without_private_keys(text: str) -> str:
    """user_data as the control API shows it: host private keys (Juju sends them) blanked."""
    return _PRIVATE_KEY.sub("<private key redacted>", text)


@contextmanager
def run_maas(spec: LabSpec) -> Iterator[MaasEmulator]:
    """Serve a MAAS emulator for `spec` from a background thread for the `with` block."""
    with MaasEmulator(spec) as emulator:
        yield emulator
