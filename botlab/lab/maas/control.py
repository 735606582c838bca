"""The lab control API under /_lab/ (loopback only, no auth): events, state, faults, counters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botlab.lab.control_api import ControlApiBase
from botlab.lab.spec import SpecError

if TYPE_CHECKING:
    from botlab.lab.maas.emulator import MaasEmulator


class ControlApi(ControlApiBase):
    """GET /_lab/events?since=N, GET /_lab/state, GET /_lab/counters,
    GET|POST|DELETE /_lab/faults, GET|POST /_lab/service ({"state": "up"|"down"|"hung"}:
    "down" cuts every API request's connection unanswered, "hung" holds them unanswered).

    POST /_lab/faults takes one fault as JSON (the spec's fault format), or a list of them."""

    emulator: MaasEmulator

    not_an_object = "a fault is a JSON object"
    fault_errors = (SpecError, ValueError)

    def state_now(self) -> dict[str, Any]:
        return self.emulator.state()
