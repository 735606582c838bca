"""Juju API errors as a real controller sends them: a message and an error code.

A handler raises `JujuApiError`; the RPC layer answers `{"request-id", "error", "error-code",
"error-info"?, "response": {}}`. For per-entity failures inside a bulk call (results lists),
put `error_result(exc)` in the result's `error` field instead of raising: `bulk` (or
`bulk_async`) runs such a call's per-entity body and does that.

Codes and wording follow juju/apiserver/errors and juju/rpc (Juju 3.6); libjuju shows the
message and keeps the code in `JujuAPIError.error_code`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

_Item = TypeVar("_Item")

# Error codes from juju/rpc/params/apierror.go (the ones the emulator uses).
CODE_NOT_FOUND = "not found"
CODE_UNAUTHORIZED = "unauthorized access"
CODE_NO_CREDS = "no credentials provided"
CODE_NOT_IMPLEMENTED = "not implemented"
CODE_NOT_SUPPORTED = "not supported"
CODE_ALREADY_EXISTS = "already exists"
CODE_BAD_REQUEST = "bad request"
CODE_NOT_VALID = "not valid"
CODE_STOPPED = "stopped"
CODE_MODEL_NOT_FOUND = "model not found"
CODE_FORBIDDEN = "forbidden"


class JujuApiError(Exception):
    """An error a Juju controller returns for a call (or, via `error_result`, for one entity)."""

    def __init__(self, message: str, code: str = "", info: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.info = info

    def to_error(self) -> dict[str, Any]:
        """The `params.Error` shape used inside results: {"message", "code", "info"?}."""
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.info:
            out["info"] = self.info
        return out

    def __repr__(self) -> str:
        return f"JujuApiError({self.message!r}, code={self.code!r})"


def error_result(exc: JujuApiError) -> dict[str, Any]:
    """`exc` as the `error` member of a bulk call's result."""
    return exc.to_error()


def _only_error(item: Any, error: dict[str, Any]) -> dict[str, Any]:
    return {"error": error}


def bulk(
    items: Iterable[_Item],
    one: Callable[[_Item], dict[str, Any]],
    failed: Callable[[_Item, dict[str, Any]], dict[str, Any]] = _only_error,
    key: str = "results",
) -> dict[str, list[dict[str, Any]]]:
    """A bulk call's answer, `{key: [...]}`: `one(item)` for each item in order, or, where it
    raises `JujuApiError`, `failed(item, error_result(exc))` (by default `{"error": ...}`)."""
    results: list[dict[str, Any]] = []
    for item in items:
        try:
            results.append(one(item))
        except JujuApiError as exc:
            results.append(failed(item, error_result(exc)))
    return {key: results}


async def bulk_async(
    items: Iterable[_Item],
    one: Callable[[_Item], Awaitable[dict[str, Any]]],
    failed: Callable[[_Item, dict[str, Any]], dict[str, Any]] = _only_error,
    key: str = "results",
) -> dict[str, list[dict[str, Any]]]:
    """`bulk` for a body that awaits: the items still run one after another."""
    results: list[dict[str, Any]] = []
    for item in items:
        try:
            results.append(await one(item))
        except JujuApiError as exc:
            results.append(failed(item, error_result(exc)))
    return {key: results}


def not_found(message: str) -> JujuApiError:
    return JujuApiError(message, CODE_NOT_FOUND)


def bad_request(message: str) -> JujuApiError:
    return JujuApiError(message, CODE_BAD_REQUEST)


def not_valid(message: str) -> JujuApiError:
    return JujuApiError(message, CODE_NOT_VALID)


def already_exists(message: str) -> JujuApiError:
    return JujuApiError(message, CODE_ALREADY_EXISTS)


def permission_denied() -> JujuApiError:
    return JujuApiError("permission denied", CODE_UNAUTHORIZED)


def bad_credentials() -> JujuApiError:
    # apiservererrors.ErrBadCreds; libjuju shows "invalid entity name or password (unauthorized access)".
    return JujuApiError("invalid entity name or password", CODE_UNAUTHORIZED)


def unknown_facade(facade: str) -> JujuApiError:
    # rpcreflect.CallNotImplementedError without a version.
    return JujuApiError(f'unknown object type "{facade}"', CODE_NOT_IMPLEMENTED)


def unknown_version(facade: str, version: int) -> JujuApiError:
    # rpcreflect.CallNotImplementedError{RootMethod, Version}: what Juju answers for a facade
    # version it does not serve (and, before login, for any facade but Admin).
    return JujuApiError(f'unknown version ({version}) of interface "{facade}"', CODE_NOT_IMPLEMENTED)


def method_not_implemented(facade: str, version: int, method: str) -> JujuApiError:
    # Juju's wording for an unknown method, naming facade, version and method, plus who says so.
    return JujuApiError(
        f"no such request - method {facade}({version}).{method} is not implemented by the botlab Juju emulator",
        CODE_NOT_IMPLEMENTED,
        {"facade": facade, "version": version, "method": method},
    )
