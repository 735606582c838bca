"""The lab control API under /_lab/ (loopback only, no auth): events, state, faults, counters."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from botlab.lab.spec import SpecError

if TYPE_CHECKING:
    from botlab.lab.maas.emulator import MaasEmulator

LOOPBACK = frozenset({"127.0.0.1", "::1"})


class ControlApi:
    """GET /_lab/events?since=N, GET /_lab/state, GET /_lab/counters,
    GET|POST|DELETE /_lab/faults."""

    def __init__(self, emulator: MaasEmulator) -> None:
        self.emulator = emulator

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_lab/events", self.events),
            web.get("/_lab/state", self.state),
            web.get("/_lab/counters", self.counters),
            web.get("/_lab/faults", self.list_faults),
            web.post("/_lab/faults", self.add_faults),
            web.delete("/_lab/faults", self.clear_faults),
        ]

    async def events(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="since must be an integer") from None
        events = self.emulator.events(since)
        last = events[-1]["seq"] if events else max(since, 0)
        return web.json_response({"events": events, "last": last})

    async def state(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.json_response(self.emulator.state())

    async def counters(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.json_response(self.emulator.counters())

    async def list_faults(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.json_response({"faults": self.emulator.active_faults()})

    async def add_faults(self, request: web.Request) -> web.Response:
        """Body: one fault as JSON (the spec's fault format), or a list of them."""
        _loopback_only(request)
        try:
            data: Any = json.loads(await request.text())
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None
        items = data if isinstance(data, list) else [data]
        if not all(isinstance(item, dict) for item in items):
            raise web.HTTPBadRequest(text="a fault is a JSON object")
        try:
            added = [self.emulator.inject(item) for item in items]
        except (SpecError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"faults": added})

    async def clear_faults(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        self.emulator.clear_faults()
        return web.json_response({"faults": []})


def _loopback_only(request: web.Request) -> None:
    # The emulator binds to 127.0.0.1 anyway; this guards a daemon bound elsewhere by mistake.
    if request.remote not in LOOPBACK:
        raise web.HTTPForbidden(text="the lab control API answers loopback clients only")
