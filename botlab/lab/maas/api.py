"""The MAAS 2.0 REST API over aiohttp: routing, OAuth, parameter decoding, faults and the
request log. What each call does lives in `handlers`."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from botlab.lab.events import EventLog
from botlab.lab.faults import ServiceState
from botlab.lab.maas.describe import Handler, describe, find_handler
from botlab.lab.maas.errors import ApiError, bad_request, not_implemented
from botlab.lab.maas.faults import ActiveFault, FaultBook
from botlab.lab.maas.forms import Params, parse_body, parse_query
from botlab.lab.maas.handlers import TABLE, Call
from botlab.lab.maas.model import MaasModel
from botlab.lab.maas.oauth import ApiKey, AuthError, authenticate

log = logging.getLogger(__name__)
PREFIX = "/MAAS/api/2.0/"


def request_counters(kind: str, fields: Mapping[str, Any]) -> list[str]:
    """What a `request` event counts as in the event log: its call ("POST MachineHandler
    op=deploy") and its status."""
    if kind != "request":
        return []
    op = fields.get("op")
    call = f"{fields.get('method')} {fields.get('handler')}"
    return [call if op is None else f"{call} op={op}", f"status {fields.get('status')}"]


class MaasApi:
    """Answers everything under /MAAS/api/2.0/ and logs each request with what it caused."""

    def __init__(self, model: MaasModel, lock: threading.RLock, events: EventLog, faults: FaultBook) -> None:
        self.model = model
        self.lock = lock
        self.events = events
        self.faults = faults
        self.service = ServiceState()  # up, down or hung (the control API's /_lab/service)
        # Life-cycle events caused by the request being handled, logged right after it.
        self._caused: list[tuple[str, dict[str, Any]]] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", PREFIX + "{tail:.*}", self.handle)]

    def model_event(self, kind: str, **fields: Any) -> None:
        """Where the model reports transitions; called with the lock held."""
        if self._caused is not None:
            self._caused.append((kind, fields))
        else:
            self.events.record(kind, **fields)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await self.service.answering()  # held while hung
        if self.service.state == "down":
            return self._cut(request)
        tail = request.match_info["tail"]
        method = request.method
        query = parse_query(request.query_string)
        body = Params()
        body_error: ApiError | None = None
        if method in ("POST", "PUT"):
            try:
                body = parse_body(request.headers.get("Content-Type", ""), await request.read())
            except (ValueError, UnicodeDecodeError) as exc:
                body_error = bad_request(f"Malformed request body: {exc}")
        # Piston takes `op` from the query string, or else from a POST body.
        op = query.get("op") or (body.get("op") if method == "POST" else None)
        found = find_handler(tail)
        handler = found[0] if found else None

        injected = self.faults.request_faults(method, request.path, op)
        for fault in injected:
            if fault.spec.kind == "slow":
                await asyncio.sleep(fault.spec.delay_s)
        unavailable = [f for f in injected if f.spec.kind == "unavailable"]
        caused: list[tuple[str, dict[str, Any]]] = []
        response: web.StreamResponse
        if unavailable:
            response = _unavailable(unavailable[0])
        elif body_error is not None:
            response = _error(body_error)
        else:
            with self.lock:
                self._caused = caused
                try:
                    response = self._respond(
                        request, tail, found, method, op, body if method in ("POST", "PUT") else query
                    )
                finally:
                    self._caused = None
        with self.lock:
            self.events.record(
                "request",
                method=method,
                path=request.path,
                op=op,
                status=response.status,
                mutating=method != "GET",
                handler=handler.name if handler else None,
                injected=[f.spec.kind for f in injected],
            )
            for kind, fields in caused:
                self.events.record(kind, **fields)
        return response

    def _cut(self, request: web.Request) -> web.StreamResponse:
        """As a MAAS whose process died: the connection ends with no answer."""
        if request.transport is not None:
            request.transport.abort()
        with self.lock:
            self.events.record("request", method=request.method, path=request.path, op=None, status=None,
                               mutating=request.method != "GET", handler=None, injected=["down"])
        return web.Response(status=503)  # never reaches the client: the connection is gone

    def _respond(
        self,
        request: web.Request,
        tail: str,
        found: tuple[Handler, dict[str, str]] | None,
        method: str,
        op: str | None,
        params: Params,
    ) -> web.StreamResponse:
        try:
            if tail.rstrip("/") == "describe":
                if method != "GET":
                    raise not_implemented(f"{method} describe")
                return web.json_response(describe(f"{request.scheme}://{request.host}"))
            key: ApiKey | None = None
            if found is None or not found[0].anon:
                key = authenticate(request.headers.get("Authorization"), self.model.keys)
            if found is None:
                raise not_implemented(_call_name(method, tail.rstrip("/") or "/", op))
            handler, args = found
            impl = TABLE.get((handler.name, method, op))
            if impl is None:
                raise not_implemented(_call_name(method, handler.label, op))
            result = impl(Call(self.model, handler, method, op, args, params, key))
        except AuthError as exc:
            return web.Response(
                status=401, text=str(exc), charset="utf-8", headers={"WWW-Authenticate": 'OAuth realm="MAAS API"'}
            )
        except ApiError as exc:
            return _error(exc)
        except Exception as exc:  # a bug in the emulator: answer like Django's debug 500
            log.exception("botlab MAAS emulator failed on %s %s", method, request.path)
            return web.Response(status=500, text=f"botlab MAAS emulator error: {exc!r}", charset="utf-8")
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result)


def _call_name(method: str, where: str, op: str | None) -> str:
    return f"{method} {where}" + (f" op={op}" if op else "")


def _error(exc: ApiError) -> web.Response:
    if isinstance(exc.body, dict):
        return web.json_response(exc.body, status=exc.status)
    return web.Response(status=exc.status, text=exc.body, charset="utf-8")


def _unavailable(fault: ActiveFault) -> web.Response:
    text = fault.spec.message or "Service Unavailable (injected by the botlab lab)"
    headers = {"Retry-After": "1"} if fault.spec.status == 503 else {}
    return web.Response(status=fault.spec.status, text=text, charset="utf-8", headers=headers)
