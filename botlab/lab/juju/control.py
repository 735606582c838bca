"""The Juju emulator's control API: plain HTTP on its own loopback port, under /_lab/.

    GET    /_lab/events?since=N     {"events": [...], "last": M}
    GET    /_lab/state              controller, models, connections, faults
    GET    /_lab/counters           calls per method, ok/error, total
    GET    /_lab/faults             active faults
    POST   /_lab/faults             add one fault (JSON object) or several (a list)
    DELETE /_lab/faults             clear them
    GET    /_lab/connections        open API connections
    POST   /_lab/drop               cut connections now: {} for all, {"model": NAME|UUID|"controller"}
    GET    /_lab/service            {"state": "up"|"down"|"hung"}
    POST   /_lab/service            {"state": "down"}: kill the controller (listener closed, connections
                                    cut); "hung": accept, never answer; "up": back on the same port
    GET    /_lab/unit-faults        active unit faults (hook errors, blocked workloads)
    POST   /_lab/unit-faults        add one (JSON object) or several (a list); see units.py
    DELETE /_lab/unit-faults        clear them (all, or ?application=A / ?unit=U / ?kind=K)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from botlab.lab.control_api import ControlApiBase, added, json_body, json_items, loopback_only
from botlab.lab.juju.faults import FaultError

if TYPE_CHECKING:
    from botlab.lab.juju.emulator import JujuEmulator


class ControlApi(ControlApiBase):
    emulator: JujuEmulator
    empty_body = "{}"
    fault_errors = (FaultError,)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(self.routes())
        return app

    def routes(self) -> list[web.RouteDef]:
        return [
            *super().routes(),
            web.get("/_lab/connections", self.connections),
            web.post("/_lab/drop", self.drop),
            web.get("/_lab/unit-faults", self.list_unit_faults),
            web.post("/_lab/unit-faults", self.add_unit_faults),
            web.delete("/_lab/unit-faults", self.clear_unit_faults),
        ]

    def state_now(self) -> dict[str, Any]:
        return self.emulator.snapshot_now()

    async def connections(self, request: web.Request) -> web.Response:
        loopback_only(request)
        return web.json_response({"connections": self.emulator.connections_now()})

    async def drop(self, request: web.Request) -> web.Response:
        loopback_only(request)
        data = await json_body(request, "{}") if request.can_read_body else {}
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text='body: {} or {"model": NAME}')
        return web.json_response({"dropped": self.emulator.drop_connections_now(data.get("model"))})

    async def list_unit_faults(self, request: web.Request) -> web.Response:
        from botlab.lab.juju import units

        loopback_only(request)
        return web.json_response({"faults": units.unit_faults(self.emulator)})

    async def add_unit_faults(self, request: web.Request) -> web.Response:
        from botlab.lab.juju import units

        loopback_only(request)
        items = await json_items(request, empty_body="{}", not_an_object="a unit fault is a JSON object")
        return added(items, lambda item: units.inject_unit_fault(self.emulator, item),
                     (FaultError, ValueError, TypeError))

    async def clear_unit_faults(self, request: web.Request) -> web.Response:
        from botlab.lab.juju import units

        loopback_only(request)
        match = {k: v for k, v in request.query.items() if k in ("application", "unit", "kind", "hook")}
        return web.json_response({"cleared": units.clear_unit_faults(self.emulator, **match)})
