"""Admin and Pinger: logging in and keeping the connection alive."""

from __future__ import annotations

from typing import Any

from botlab.lab.juju.errors import JujuApiError
from botlab.lab.juju.facades import CallContext, facade_method


@facade_method("Admin", 3, "Login", mutating=False)
async def login(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return ctx.conn.server.login(ctx.conn, params)


@facade_method("Admin", 3, "RedirectInfo", mutating=False)
async def redirect_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    # A Juju controller never redirects (only JAAS does).
    raise JujuApiError("not redirected")


@facade_method("Pinger", 1, "Ping", mutating=False)
async def ping(ctx: CallContext, params: dict[str, Any]) -> None:
    return None


@facade_method("Pinger", 1, "Stop", mutating=False)
async def stop_pinger(ctx: CallContext, params: dict[str, Any]) -> None:
    return None
