"""The Juju emulator's control API: plain HTTP on its own loopback port, under /_lab/.

    GET    /_lab/events?since=N     {"events": [...], "last": M}
    GET    /_lab/state              controller, models, connections, faults
    GET    /_lab/counters           calls per method, ok/error, total
    GET    /_lab/faults             active faults
    POST   /_lab/faults             add one fault (JSON object) or several (a list)
    DELETE /_lab/faults             clear them
    GET    /_lab/connections        open API connections
    POST   /_lab/drop               cut connections now: {} for all, {"model": NAME|UUID|"controller"}
    GET    /_lab/unit-faults        active unit faults (hook errors, blocked workloads)
    POST   /_lab/unit-faults        add one (JSON object) or several (a list); see units.py
    DELETE /_lab/unit-faults        clear them (all, or ?application=A / ?unit=U / ?kind=K)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from botlab.lab.juju.faults import FaultError

if TYPE_CHECKING:
    from botlab.lab.juju.emulator import JujuEmulator

LOOPBACK = frozenset({"127.0.0.1", "::1"})


class ControlApi:
    def __init__(self, emulator: JujuEmulator) -> None:
        self.emulator = emulator

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/_lab/events", self.events),
            web.get("/_lab/state", self.state),
            web.get("/_lab/counters", self.counters),
            web.get("/_lab/faults", self.list_faults),
            web.post("/_lab/faults", self.add_faults),
            web.delete("/_lab/faults", self.clear_faults),
            web.get("/_lab/connections", self.connections),
            web.post("/_lab/drop", self.drop),
            web.get("/_lab/unit-faults", self.list_unit_faults),
            web.post("/_lab/unit-faults", self.add_unit_faults),
            web.delete("/_lab/unit-faults", self.clear_unit_faults),
        ])
        return app

    async def events(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="since must be an integer") from None
        events = self.emulator.events(since)
        return web.json_response({"events": events, "last": events[-1]["seq"] if events else max(since, 0)})

    async def state(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.json_response(self.emulator.snapshot_now())

    async def counters(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.json_response(self.emulator.counters())

    async def list_faults(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.json_response({"faults": self.emulator.active_faults()})

    async def add_faults(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        data = await _json(request)
        items = data if isinstance(data, list) else [data]
        try:
            added = [self.emulator.inject(item) for item in items]
        except FaultError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"faults": added})

    async def clear_faults(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        self.emulator.clear_faults()
        return web.json_response({"faults": []})

    async def connections(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        return web.json_response({"connections": self.emulator.connections_now()})

    async def drop(self, request: web.Request) -> web.Response:
        _loopback_only(request)
        data = await _json(request) if request.can_read_body else {}
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text='body: {} or {"model": NAME}')
        return web.json_response({"dropped": self.emulator.drop_connections_now(data.get("model"))})


    async def list_unit_faults(self, request: web.Request) -> web.Response:
        from botlab.lab.juju import units

        _loopback_only(request)
        return web.json_response({"faults": units.unit_faults(self.emulator)})

    async def add_unit_faults(self, request: web.Request) -> web.Response:
        from botlab.lab.juju import units

        _loopback_only(request)
        data = await _json(request)
        items = data if isinstance(data, list) else [data]
        if not all(isinstance(item, dict) for item in items):
            raise web.HTTPBadRequest(text="a unit fault is a JSON object")
        try:
            added = [units.inject_unit_fault(self.emulator, item) for item in items]
        except (FaultError, ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"faults": added})

    async def clear_unit_faults(self, request: web.Request) -> web.Response:
        from botlab.lab.juju import units

        _loopback_only(request)
        match = {k: v for k, v in request.query.items() if k in ("application", "unit", "kind", "hook")}
        return web.json_response({"cleared": units.clear_unit_faults(self.emulator, **match)})


async def _json(request: web.Request) -> Any:
    try:
        return json.loads(await request.text() or "{}")
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None


def _loopback_only(request: web.Request) -> None:
    if request.remote not in LOOPBACK:
        raise web.HTTPForbidden(text="the lab control API answers loopback clients only")
