"""What the emulators' control APIs (plain HTTP under /_lab/, loopback only, no auth) share:

    GET    /_lab/events?since=N     {"events": [...], "last": M}: events numbered above N
    GET    /_lab/state              the emulator's snapshot
    GET    /_lab/counters           the event log's counters
    GET    /_lab/faults             {"faults": [...]}: active faults
    POST   /_lab/faults             add one fault (JSON object) or several (a list)
    DELETE /_lab/faults             clear them
    GET    /_lab/service            {"state": "up"|"down"|"hung"}: whether the service answers
    POST   /_lab/service            {"state": ...}: switch it (see faults.ServiceState)

and the helpers their own routes use: `loopback_only`, `json_body`, `json_items`, `added`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

LOOPBACK = frozenset({"127.0.0.1", "::1"})


class Emulator(Protocol):
    """What the shared routes ask of an emulator."""

    def events(self, since: int = 0) -> list[dict[str, Any]]: ...

    def counters(self) -> dict[str, int]: ...

    def active_faults(self) -> list[dict[str, Any]]: ...

    def inject(self, fault: Mapping[str, Any]) -> dict[str, Any]: ...

    def clear_faults(self) -> None: ...

    def service_now(self) -> dict[str, Any]: ...

    async def switch_service(self, state: str) -> dict[str, Any]: ...


class ControlApiBase:
    """The routes above for `emulator`; a subclass names its emulator's type, says what its
    state is and how its fault bodies are checked, and adds its own routes."""

    # POST /_lab/faults: what an empty body reads as ("": not JSON), the 400 answer when an
    # item is not a JSON object (None: left to `inject`), and the errors `inject` raises for
    # a bad fault (answered 400 with their message).
    empty_body = ""
    not_an_object: str | None = None
    fault_errors: tuple[type[Exception], ...] = ()

    emulator: Emulator

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_lab/events", self.events),
            web.get("/_lab/state", self.state),
            web.get("/_lab/counters", self.counters),
            web.get("/_lab/faults", self.list_faults),
            web.post("/_lab/faults", self.add_faults),
            web.delete("/_lab/faults", self.clear_faults),
            web.get("/_lab/service", self.service),
            web.post("/_lab/service", self.switch_service),
        ]

    def state_now(self) -> dict[str, Any]:
        """GET /_lab/state's answer."""
        raise NotImplementedError

    async def events(self, request: web.Request) -> web.Response:
        loopback_only(request)
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="since must be an integer") from None
        events = self.emulator.events(since)
        last = events[-1]["seq"] if events else max(since, 0)
        return web.json_response({"events": events, "last": last})

    async def state(self, request: web.Request) -> web.Response:
        loopback_only(request)
        return web.json_response(self.state_now())

    async def counters(self, request: web.Request) -> web.Response:
        loopback_only(request)
        return web.json_response(self.emulator.counters())

    async def list_faults(self, request: web.Request) -> web.Response:
        loopback_only(request)
        return web.json_response({"faults": self.emulator.active_faults()})

    async def add_faults(self, request: web.Request) -> web.Response:
        loopback_only(request)
        items = await json_items(request, empty_body=self.empty_body, not_an_object=self.not_an_object)
        return added(items, self.emulator.inject, self.fault_errors)

    async def clear_faults(self, request: web.Request) -> web.Response:
        loopback_only(request)
        self.emulator.clear_faults()
        return web.json_response({"faults": []})

    async def service(self, request: web.Request) -> web.Response:
        loopback_only(request)
        return web.json_response(self.emulator.service_now())

    async def switch_service(self, request: web.Request) -> web.Response:
        loopback_only(request)
        data = await json_body(request)
        if not isinstance(data, dict) or not isinstance(data.get("state"), str):
            raise web.HTTPBadRequest(text='body: {"state": "up" | "down" | "hung"}')
        try:
            return web.json_response(await self.emulator.switch_service(data["state"]))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None


def loopback_only(request: web.Request) -> None:
    # The emulators bind to 127.0.0.1 anyway; this guards a daemon bound elsewhere by mistake.
    if request.remote not in LOOPBACK:
        raise web.HTTPForbidden(text="the lab control API answers loopback clients only")


async def json_body(request: web.Request, empty_body: str = "") -> Any:
    """The request's JSON body (an empty one read as `empty_body`); 400 if it is not JSON."""
    try:
        return json.loads(await request.text() or empty_body)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None


async def json_items(request: web.Request, *, empty_body: str = "", not_an_object: str | None = None) -> list[Any]:
    """The JSON body as a list of items: a list as it is, anything else as a list of one;
    400 with `not_an_object` (when given) if an item is not a JSON object."""
    data = await json_body(request, empty_body)
    items = data if isinstance(data, list) else [data]
    if not_an_object is not None and not all(isinstance(item, dict) for item in items):
        raise web.HTTPBadRequest(text=not_an_object)
    return items


def added(
    items: list[Any], add: Callable[[Any], dict[str, Any]], errors: tuple[type[Exception], ...]
) -> web.Response:
    """{"faults": [add(item), ...]}; 400 with the message of the first of `errors` raised."""
    try:
        faults = [add(item) for item in items]
    except errors as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response({"faults": faults})
