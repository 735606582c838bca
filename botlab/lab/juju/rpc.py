"""The Juju API server: websocket connections at `wss://HOST:PORT/api` (controller) and
`/model/<uuid>/api` (model), Juju's JSON-RPC framing, login, dispatch and fault injection.

Wire format (juju/rpc/jsoncodec, version 1)::

    -> {"request-id": 7, "type": "Client", "version": 8, "id": "", "request": "FullStatus", "params": {...}}
    <- {"request-id": 7, "response": {...}}
    <- {"request-id": 7, "error": "message", "error-code": "not found", "error-info": {...}, "response": {}}

Each request is handled in its own task, so a blocked call (an AllWatcher.Next waiting for
changes) never holds up the others on the same connection; replies go out as they finish.

Before login only Admin answers. After it, a controller login may use the controller and
common facades, a model login everything but the controller facades, as in Juju
(apiserver/restrict_*.go). Handlers, their registration and what they can reach are
described in facades.py; this module calls them:

0. while the controller is `hung` (the control API's /_lab/service), nothing is answered:
   requests and new connections are held until it is `up` again;
1. faults (`drop`: abort the connection without a reply; `error`; `slow`; `swallow`: no
   reply ever, the request handled first or not) are applied;
2. the method is looked up (or the error a real controller gives is returned);
3. the handler runs with a `CallContext`; `JujuApiError` becomes an error reply, any other
   exception an "internal error" reply naming the call (and a logged traceback);
4. the reply is checked against libjuju's type for the call (check.py);
5. an `rpc` event is logged: facade, version, method, mutating, model, user, error,
   injected faults, duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from botlab.lab.faults import ServiceState
from botlab.lab.juju import errors
from botlab.lab.juju.check import check_reply
from botlab.lab.juju.errors import JujuApiError
from botlab.lab.juju.facades import (
    CallContext,
    ConnectionKind,
    FacadeRegistry,
    guess_mutating,
    is_controller_facade,
    is_model_facade,
)
from botlab.lab.juju.faults import FaultBook
from botlab.lab.juju.state import iso_time

if TYPE_CHECKING:
    from botlab.lab.juju.state import ControllerState, ModelState

log = logging.getLogger("botlab.lab.juju")

MAX_MESSAGE = 64 * 1024 * 1024  # libjuju's frame limit


def rpc_counters(kind: str, fields: Mapping[str, Any]) -> list[str]:
    """What an `rpc` event counts as in the event log: its method ("Client(8).FullStatus")
    and ok or error."""
    if kind != "rpc":
        return []
    return [f"{fields.get('facade')}({fields.get('version')}).{fields.get('method')}",
            "error" if fields.get("error") else "ok"]


class RpcConnection:
    """One client websocket connection and what it has done: login, watchers, calls in flight."""

    def __init__(self, server: ApiServer, conn_id: int, path_model: str | None, peer: str) -> None:
        self.server = server
        self.id = conn_id
        self.path_model = path_model  # the UUID in /model/<uuid>/api, None for /api
        self.peer = peer
        self.kind: ConnectionKind = "model" if path_model else "controller"
        self.model_uuid: str | None = None
        self.username = ""
        self.logged_in = False
        self.opened = time.time()
        self.ws: web.WebSocketResponse | None = None
        self.transport: asyncio.Transport | None = None
        self.dropped = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.watchers: dict[str, Any] = {}
        self._watcher_ids = itertools.count(1)
        self._send_lock = asyncio.Lock()

    @property
    def controller(self) -> ControllerState:
        return self.server.controller

    @property
    def model(self) -> ModelState:
        """The model this connection serves (the controller model on a controller login)."""
        uuid = self.model_uuid or self.path_model
        model = self.controller.models.get(uuid or "")
        if model is None:
            raise errors.not_found(f'model "{uuid}" not found')
        return model

    @property
    def model_name(self) -> str | None:
        model = self.controller.models.get(self.model_uuid or self.path_model or "")
        return model.name if model is not None else None

    # -- watchers --

    def add_watcher(self, watcher: Any) -> str:
        """Register a watcher object (anything with `stop()`); returns its id for the client."""
        watcher_id = str(next(self._watcher_ids))
        self.watchers[watcher_id] = watcher
        return watcher_id

    def watcher(self, watcher_id: str) -> Any:
        try:
            return self.watchers[watcher_id]
        except KeyError:
            raise errors.not_found("unknown watcher id") from None

    def remove_watcher(self, watcher_id: str) -> None:
        watcher = self.watchers.pop(watcher_id, None)
        if watcher is not None:
            watcher.stop()

    # -- sending and closing --

    async def send(self, message: dict[str, Any]) -> None:
        ws = self.ws
        if ws is None or ws.closed or self.dropped:
            return
        text = json.dumps(message)
        async with self._send_lock:
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.send_str(text)

    def drop(self) -> None:
        """Cut the connection as a crash or a network fault does: no close frame, no replies."""
        if self.dropped:
            return
        self.dropped = True
        if self.transport is not None:
            self.transport.abort()
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()

    async def close(self) -> None:
        """Close the websocket cleanly (as the controller does when a model goes away)."""
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "model": self.model_name,
            "model_uuid": self.model_uuid or self.path_model,
            "user": self.username,
            "logged_in": self.logged_in,
            "in_flight": len(self.tasks),
            "watchers": len(self.watchers),
            "opened": self.opened,
        }


class ApiServer:
    """Serves Juju's API over websockets for one ControllerState."""

    def __init__(
        self,
        controller: ControllerState,
        registry: FacadeRegistry,
        faults: FaultBook,
        *,
        check_replies: bool = True,
    ) -> None:
        self.controller = controller
        self.registry = registry
        self.faults = faults
        self.check_replies = check_replies
        self.connections: dict[int, RpcConnection] = {}
        self.service = ServiceState()  # up, down (the emulator closes the listener) or hung
        self._ids = itertools.count(1)
        controller.on_model_removed.append(self._model_removed)

    @property
    def events(self) -> Any:
        return self.controller.events

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api", self.handle),
            web.get("/model/{uuid}/api", self.handle),
        ]

    # -- connections --

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await self.service.answering()  # a hung controller never completes the upgrade
        path_model = request.match_info.get("uuid")
        conn = RpcConnection(self, next(self._ids), path_model, str(request.remote))
        # timeout: how long a close waits for the client's close frame.
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=False, autoping=True, timeout=2.0)
        await ws.prepare(request)
        conn.ws = ws
        conn.transport = request.transport
        self.connections[conn.id] = conn
        self.events.record("connect", conn=conn.id, path=request.path, conn_kind=conn.kind, model_uuid=path_model)
        reason = "client closed"
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._start_request(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._start_request(conn, msg.data.decode("utf-8", "replace"))
                elif msg.type == WSMsgType.ERROR:
                    reason = f"error: {ws.exception()}"
                    break
        except ConnectionResetError:
            reason = "reset"
        except asyncio.CancelledError:
            reason = "server shutting down"
            raise
        finally:
            if conn.dropped:
                reason = "dropped by fault injection"
            await self._cleanup(conn)
            self.events.record("disconnect", conn=conn.id, reason=reason)
        return ws

    async def _cleanup(self, conn: RpcConnection) -> None:
        self.connections.pop(conn.id, None)
        for watcher_id in list(conn.watchers):
            conn.remove_watcher(watcher_id)
        tasks = [t for t in conn.tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not conn.dropped:
            await conn.close()

    def drop_connections(self, model: str | None = None) -> int:
        """Cut every connection (to `model`, a name or UUID; "controller" for controller
        logins); returns how many."""
        count = 0
        for conn in list(self.connections.values()):
            if model is not None:
                if model == "controller":
                    if conn.kind != "controller":
                        continue
                elif model not in (conn.model_name, conn.model_uuid, conn.path_model):
                    continue
            conn.drop()
            count += 1
        return count

    async def close_all(self) -> None:
        await asyncio.gather(*(conn.close() for conn in list(self.connections.values())), return_exceptions=True)

    def _model_removed(self, model: ModelState) -> None:
        for conn in list(self.connections.values()):
            if conn.kind == "model" and model.uuid in (conn.model_uuid, conn.path_model):
                self.controller.spawn(conn.close(), name=f"close-conn-{conn.id}")

    # -- requests --

    def _start_request(self, conn: RpcConnection, text: str) -> None:
        task = asyncio.get_running_loop().create_task(self._request(conn, text), name=f"juju-rpc-{conn.id}")
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _request(self, conn: RpcConnection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or not isinstance(msg.get("request-id"), int):
            # Juju's codec gives up on the connection when it cannot read a request.
            self.events.record("bad-message", conn=conn.id, text=text[:200])
            await conn.close()
            return
        request_id = int(msg["request-id"])
        facade = str(msg.get("type") or "")
        method = str(msg.get("request") or "")
        raw_version = msg.get("version", 0)
        version = raw_version if isinstance(raw_version, int) and not isinstance(raw_version, bool) else 0
        object_id = str(msg.get("id") or msg.get("Id") or "")
        params = msg.get("params")
        if not isinstance(params, dict):
            params = {}

        started = time.monotonic()
        entry = None
        injected: list[str] = []
        reply: dict[str, Any]
        error: JujuApiError | None = None
        swallow: bool | None = None  # None: answer; False: lose the request; True: lose the reply
        try:
            await self.service.answering()
            for fault in self.faults.take(facade, version, method, conn.model_name, conn.model_uuid or conn.path_model):
                injected.append(fault.kind)
                if fault.kind == "drop":
                    raise _Dropped
                if fault.kind == "swallow":
                    swallow = fault.handle
                    if not swallow:
                        raise _Swallowed
                if fault.kind == "slow":
                    await asyncio.sleep(fault.delay_s)
                if fault.kind == "error":
                    raise JujuApiError(fault.message, fault.code)
            entry = self._resolve(conn, facade, version, method)
            ctx = CallContext(conn, facade, version, method, request_id, object_id)
            result = await entry.handler(ctx, params)
            response = {} if result is None else result
            if self.check_replies:
                problems = check_reply(facade, version, method, response)
                if problems:
                    self.events.record("invalid-reply", conn=conn.id, facade=facade, version=version,
                                       method=method, problems=problems)
                    raise JujuApiError(
                        f"botlab Juju emulator bug: the reply to {facade}({version}).{method} would not decode"
                        f" in libjuju: {'; '.join(problems[:5])}"
                    )
            reply = {"request-id": request_id, "response": response}
        except _Dropped:
            self._log_rpc(conn, facade, version, method, entry, request_id, started, injected,
                          JujuApiError("connection dropped (injected fault)", "dropped"))
            conn.drop()
            return
        except _Swallowed:
            self._log_rpc(conn, facade, version, method, entry, request_id, started, injected,
                          JujuApiError("request swallowed (injected fault): never handled or answered", "swallowed"))
            return
        except asyncio.CancelledError:
            self._log_rpc(conn, facade, version, method, entry, request_id, started, injected,
                          JujuApiError("cancelled: the connection closed", "cancelled"))
            raise
        except JujuApiError as exc:
            error = exc
            reply = {"request-id": request_id, "error": exc.message, "error-code": exc.code, "response": {}}
            if exc.info:
                reply["error-info"] = exc.info
        except Exception as exc:
            log.exception("internal error in %s(%s).%s", facade, version, method)
            error = JujuApiError(
                f"botlab Juju emulator: internal error in {facade}({version}).{method}: {type(exc).__name__}: {exc}"
            )
            reply = {"request-id": request_id, "error": error.message, "error-code": "", "response": {}}
        self._log_rpc(conn, facade, version, method, entry, request_id, started, injected, error)
        if swallow:
            return  # handled, but its reply is lost
        await conn.send(reply)

    def _resolve(self, conn: RpcConnection, facade: str, version: int, method: str) -> Any:
        if not conn.logged_in:
            if facade != "Admin":
                raise errors.unknown_version(facade, version)
            if version != 3:
                raise JujuApiError("this version of Juju does not support login from old clients",
                                   errors.CODE_NOT_SUPPORTED)
        elif conn.kind == "controller" and not is_controller_facade(facade):
            raise JujuApiError(f'facade "{facade}" not supported for controller API connection',
                               errors.CODE_NOT_SUPPORTED)
        elif conn.kind == "model" and not is_model_facade(facade):
            raise JujuApiError(f'facade "{facade}" not supported for model API connection',
                               errors.CODE_NOT_SUPPORTED)
        return self.registry.lookup(facade, version, method)

    def _log_rpc(
        self,
        conn: RpcConnection,
        facade: str,
        version: int,
        method: str,
        entry: Any,
        request_id: int,
        started: float,
        injected: list[str],
        error: JujuApiError | None,
    ) -> None:
        self.events.record(
            "rpc",
            conn=conn.id,
            request_id=request_id,
            facade=facade,
            version=version,
            method=method,
            mutating=entry.mutating if entry is not None else guess_mutating(method),
            conn_kind=conn.kind,
            model=conn.model_name,
            model_uuid=conn.model_uuid or conn.path_model,
            user=conn.username or None,
            error=None if error is None else error.message,
            error_code=None if error is None else error.code,
            injected=injected,
            duration_s=round(time.monotonic() - started, 6),
        )

    # -- login --

    def login(self, conn: RpcConnection, params: dict[str, Any]) -> dict[str, Any]:
        """Admin(3).Login: check the password, bind the connection to its model, answer with
        the servers, facades and user info libjuju reads."""
        if conn.logged_in:
            raise JujuApiError("already logged in")
        controller = self.controller
        if conn.path_model is not None and conn.path_model not in controller.models:
            raise JujuApiError(f'unknown model: "{conn.path_model}"', errors.CODE_MODEL_NOT_FOUND)
        auth_tag = str(params.get("auth-tag") or "")
        password = params.get("credentials")
        if not auth_tag.startswith("user-"):
            raise errors.bad_credentials()
        username = auth_tag[len("user-") :]
        if username.endswith("@local"):
            username = username[: -len("@local")]
        if not password:
            if params.get("macaroons"):
                raise JujuApiError("macaroon login is not supported by the botlab Juju emulator",
                                   errors.CODE_NOT_SUPPORTED)
            raise JujuApiError("no credentials provided", errors.CODE_NO_CREDS)
        user = controller.user(username)
        if user is None or user.password != password:
            raise errors.bad_credentials()
        if user.disabled:
            raise JujuApiError("user has been disabled", errors.CODE_UNAUTHORIZED)
        previous = user.last_connection
        now = time.time()
        user.last_connection = now
        conn.username = username
        conn.logged_in = True
        if conn.kind == "model":
            conn.model_uuid = conn.path_model
        else:
            conn.model_uuid = controller.controller_model().uuid
        model = controller.models[conn.model_uuid or ""]
        model.last_connection = now
        user_info: dict[str, Any] = {
            "identity": user.tag,
            "display-name": user.display_name,
            "controller-access": user.access,
            "model-access": "admin" if conn.kind == "model" else "",
        }
        if previous is not None:
            user_info["last-connection"] = iso_time(previous)
        servers = []
        for address in controller.api_addresses:
            host, _, port = address.rpartition(":")
            servers.append({"value": host, "type": "ipv4", "scope": "local-machine", "port": int(port)})
        result: dict[str, Any] = {
            "servers": [servers],
            "controller-tag": f"controller-{controller.uuid}",
            "user-info": user_info,
            "facades": self.registry.describe(conn.kind),
            "server-version": controller.version,
            "public-dns-name": "",
        }
        if conn.kind == "model":
            result["model-tag"] = model.tag
        return result


class _Dropped(Exception):
    """Raised inside a request to abort its connection (a `drop` fault)."""


class _Swallowed(Exception):
    """Raised inside a request that is never handled nor answered (a `swallow` fault)."""
