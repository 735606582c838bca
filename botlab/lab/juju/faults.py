"""Faults the Juju emulator injects into RPC traffic.

    {kind: drop}                                   # the next RPC: the connection is cut, no reply
    {kind: drop, facade: ModelConfig, method: ModelGet, count: 2}
    {kind: error, facade: Application, method: Deploy, message: "boom", code: ""}
    {kind: slow, delay_s: 1.5, count: always}
    {kind: swallow, facade: Application, method: AddRelation}               # never answered
    {kind: swallow, facade: Application, method: AddRelation, handle: true} # done, reply lost

- `drop`: instead of answering a matching request the controller aborts the TCP connection
  (as a controller restart or a network cut does); the client sees the connection close.
- `error`: a matching request is answered with a Juju error (`message`, `code`).
- `slow`: a matching request is held `delay_s` seconds before it is handled.
- `swallow`: a matching request is never answered and the connection stays open (a lost
  request, or with `handle: true` a lost reply: the call takes effect, its answer never
  comes), so only a client-side deadline ends the wait.

`facade`, `method`, `version` and `model` (a model name or UUID; "controller" connections have
none) narrow which requests match; `count` (default 1; `always`/null: no limit) is how many
matching requests the fault hits. Admin.Login is matched only when named explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from botlab.lab.faults import ActiveFaults

FAULT_KINDS = ("drop", "error", "slow", "swallow")
_FIELDS = ("kind", "facade", "method", "version", "model", "count", "message", "code", "delay_s", "handle")


class FaultError(ValueError):
    """A fault description is malformed; the message says which field and why."""


@dataclass
class JujuFault:
    kind: str
    facade: str | None = None
    method: str | None = None
    version: int | None = None
    model: str | None = None
    count: int | None = 1  # None: never runs out
    message: str = "injected by botlab"
    code: str = ""
    delay_s: float = 0.0
    handle: bool = False  # swallow: handle the request, then lose its reply
    id: int = 0
    hits: int = field(default=0)

    def matches(self, facade: str, version: int, method: str, model_name: str | None, model_uuid: str | None) -> bool:
        if self.facade is None and facade == "Admin":
            return False  # never break logins by accident; name Admin to target them
        if self.facade is not None and self.facade != facade:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.version is not None and self.version != version:
            return False
        return self.model is None or self.model in (model_name, model_uuid)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "count": self.count, "hits": self.hits}
        for name in ("facade", "method", "version", "model"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.kind == "error":
            out.update(message=self.message, code=self.code)
        if self.kind == "slow":
            out["delay_s"] = self.delay_s
        if self.kind == "swallow":
            out["handle"] = self.handle
        return out


def load_fault(data: Mapping[str, Any]) -> JujuFault:
    """Parse one fault from its dict form; raise FaultError naming the bad field."""
    if not isinstance(data, Mapping):
        raise FaultError("a fault is a mapping")
    unknown = sorted(set(data) - set(_FIELDS) - {"service"})
    if unknown:
        raise FaultError(f"fault.{unknown[0]}: unknown setting (known: {', '.join(_FIELDS)})")
    if data.get("service", "juju") != "juju":
        raise FaultError(f"fault.service: {data.get('service')!r} is not juju")
    kind = data.get("kind")
    if kind not in FAULT_KINDS:
        raise FaultError(f"fault.kind: must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
    count = parse_count(data.get("count", 1), "fault")
    for name in ("facade", "method", "model", "message", "code"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise FaultError(f"fault.{name}: must be a string")
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise FaultError("fault.version: must be an integer")
    delay = data.get("delay_s", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise FaultError("fault.delay_s: must be a number of seconds >= 0")
    if kind == "slow" and delay <= 0:
        raise FaultError("fault.delay_s: a 'slow' fault needs a delay > 0")
    handle = data.get("handle", False)
    if not isinstance(handle, bool):
        raise FaultError("fault.handle: must be true or false")
    return JujuFault(
        kind=str(kind),
        facade=data.get("facade"),
        method=data.get("method"),
        version=version,
        model=data.get("model"),
        count=count,
        message=str(data.get("message") or "injected by botlab"),
        code=str(data.get("code") or ""),
        delay_s=float(delay),
        handle=handle,
    )


class FaultBook(ActiveFaults[JujuFault]):
    """Active faults; `take` consumes one hit of the first fault matching a request."""

    def add(self, fault: JujuFault) -> JujuFault:
        def numbered(fault_id: int) -> JujuFault:
            fault.id = fault_id
            return fault

        return self._add(numbered)

    def take(
        self, facade: str, version: int, method: str, model_name: str | None, model_uuid: str | None
    ) -> list[JujuFault]:
        """The faults that fire for this request (at most one of each kind), used up by one hit."""
        fired: list[JujuFault] = []
        with self._lock:
            for fault in list(self._faults):
                if any(f.kind == fault.kind for f in fired):
                    continue
                if not fault.matches(facade, version, method, model_name, model_uuid):
                    continue
                use_hit(fault, self._faults)
                fired.append(fault)
        return fired


class Hittable(Protocol):
    hits: int
    count: int | None  # None: never runs out


H = TypeVar("H", bound=Hittable)


def use_hit(fault: H, faults: list[H]) -> None:
    """Count one hit of `fault` against its `count`; a fault whose count runs out leaves `faults`."""
    fault.hits += 1
    if fault.count is not None:
        fault.count -= 1
        if fault.count <= 0:
            faults.remove(fault)


def parse_count(raw: Any, where: str) -> int | None:
    """A fault's `count`: an integer >= 1, or "always" or None for no limit (None);
    FaultError naming `where` ("fault", "unit_fault") otherwise."""
    if raw is None or raw == "always":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return raw
    raise FaultError(f"{where}.count: must be an integer >= 1 or 'always', got {raw!r}")
