"""API errors carrying the HTTP status and body MAAS would answer with."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: `body` is text (sent as text/plain) or a mapping (sent as JSON)."""

    def __init__(self, status: int, body: str | dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"{status}: {body}")


def not_found(model: str) -> ApiError:
    # Django's get_object_or_404 wording, which MAAS passes through.
    return ApiError(404, f"No {model} matches the given query.")


def bad_request(body: str | dict[str, Any]) -> ApiError:
    return ApiError(400, body)


def invalid(field: str, message: str) -> ApiError:
    """A form validation error, as MAAS sends them: {"field": ["message"]}."""
    return ApiError(400, {field: [message]})


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, message)


def not_implemented(what: str) -> ApiError:
    return ApiError(501, f"not implemented by the botlab MAAS emulator: {what}")
