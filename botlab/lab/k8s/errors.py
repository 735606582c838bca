"""Status objects, as a Kubernetes 1.31 API server writes them for a failed request.

Each constructor follows its namesake in kubernetes/kubernetes (tag v1.31.x)
staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go: same code, reason, message and
details. A resource is named by its qualified resource, `<plural>` in the core group and
`<plural>.<group>` elsewhere (schema.GroupResource.String()); `details.kind` carries the
plural too ("Yes we set Kind field to resource", as the source says).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the API refuses, answered with `status` (a v1 Status) and its `code`."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", ""))
        self.status = status

    @property
    def code(self) -> int:
        return int(self.status["code"])

    @property
    def reason(self) -> str:
        return str(self.status.get("reason", ""))

    @property
    def message(self) -> str:
        return str(self.status.get("message", ""))


def qualified(resource: str, group: str) -> str:
    """schema.GroupResource.String(): "configmaps", "deployments.apps"."""
    return f"{resource}.{group}" if group else resource


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None) -> ApiError:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        status["details"] = details
    status["code"] = code
    return ApiError(status)


def _details(group: str, kind: str, name: str = "", **more: Any) -> dict[str, Any]:
    """StatusDetails as JSON: empty fields are omitted (`omitempty`)."""
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    if kind:
        out["kind"] = kind
    out.update({k: v for k, v in more.items() if v})
    return out


def not_found(resource: str, group: str, name: str) -> ApiError:
    """NewNotFound: 404 `<resource> "<name>" not found`."""
    return _status(404, "NotFound", f'{qualified(resource, group)} "{name}" not found', _details(group, resource, name))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    """NewAlreadyExists: 409 `<resource> "<name>" already exists`."""
    return _status(
        409, "AlreadyExists", f'{qualified(resource, group)} "{name}" already exists', _details(group, resource, name)
    )


OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"
"""registry/generic/registry/store.go OptimisticLockErrorMsg: the reason of a stale update."""


def conflict(resource: str, group: str, name: str, why: str = OPTIMISTIC_LOCK) -> ApiError:
    """NewConflict: 409 `Operation cannot be fulfilled on <resource> "<name>": <why>`."""
    return _status(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        _details(group, resource, name),
    )


def apply_conflict(message: str, causes: list[dict[str, Any]]) -> ApiError:
    """NewApplyConflict: 409 Conflict whose details carry only the field manager conflicts."""
    return _status(409, "Conflict", message, {"causes": [cause(c) for c in causes]})


def field_error(kind: str, field: str, detail: str, value: Any = None, *, with_value: bool = True) -> dict[str, Any]:
    """A StatusCause made from a field.Error (validation/field/errors.go ErrorBody):
    `kind` is its type ("Required value", "Invalid value", "Forbidden", ...)."""
    if with_value:
        shown = f'"{value}"' if isinstance(value, str) else _go_value(value)
        body = f"{kind}: {shown}: {detail}" if detail else f"{kind}: {shown}"
    else:
        body = f"{kind}: {detail}" if detail else kind
    return {"reason": _CAUSE_TYPES.get(kind, kind), "message": body, "field": field}


def cause(item: dict[str, Any]) -> dict[str, Any]:
    """A StatusCause as JSON (`reason`, `message`, `field`; empty ones omitted), from a dict
    that names its type `reason` or `type`."""
    out = {"reason": item.get("reason") or item.get("type") or "", "message": item.get("message") or "",
           "field": item.get("field") or ""}
    return {k: v for k, v in out.items() if v}


# field.ErrorType.String() -> the CauseType the cause carries (field/errors.go).
_CAUSE_TYPES = {
    "Not found": "FieldValueNotFound",
    "Required value": "FieldValueRequired",
    "Duplicate value": "FieldValueDuplicate",
    "Invalid value": "FieldValueInvalid",
    "Unsupported value": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
    "Too long": "FieldValueTooLong",
    "Too many": "FieldValueTooMany",
    "Internal error": "InternalError",
    "Invalid type": "FieldValueTypeInvalid",
}


def _go_value(value: Any) -> str:
    """How field.Error prints a non-string value (%#v for the common cases)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:#x}" if value >= 0 else str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    return repr(value)


def invalid(kind: str, group: str, name: str, causes: list[dict[str, Any]], message: str | None = None) -> ApiError:
    """NewInvalid: 422 `<Kind>.<group> "<name>" is invalid: <field>: <error>[, ...]` (with
    several errors the aggregate is printed as `[a, b]`)."""
    if message is None:
        who = f"{kind}.{group}" if group else kind
        bodies = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
        if not bodies:
            message = f'{who} "{name}" is invalid'
        elif len(bodies) == 1:
            message = f'{who} "{name}" is invalid: {bodies[0]}'
        else:
            message = f'{who} "{name}" is invalid: [{", ".join(bodies)}]'
    return _status(422, "Invalid", message, _details(group, kind, name, causes=[cause(c) for c in causes]))


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    """NewForbidden: 403 `<resource> "<name>" is forbidden: <why>`."""
    if not resource:
        message = f"forbidden: {why}"
    elif not name:
        message = f"{qualified(resource, group)} is forbidden: {why}"
    else:
        message = f'{qualified(resource, group)} "{name}" is forbidden: {why}'
    return _status(403, "Forbidden", message, _details(group, resource, name))


def unauthorized() -> ApiError:
    """What the authentication filter answers for a missing or wrong credential
    (endpoints/handlers/responsewriters + filters/authentication.go: NewUnauthorized("Unauthorized"))."""
    return _status(401, "Unauthorized", "Unauthorized", None)


def method_not_supported(resource: str, group: str, action: str) -> ApiError:
    """NewMethodNotSupported: 405 `<action> is not supported on resources of kind "<resource>"`."""
    return _status(
        405,
        "MethodNotAllowed",
        f'{action} is not supported on resources of kind "{qualified(resource, group)}"',
        _details(group, resource),
    )


def bad_request(message: str) -> ApiError:
    """NewBadRequest: 400 with the message as given."""
    return _status(400, "BadRequest", message, None)


def unsupported_media_type(accepted: list[str]) -> ApiError:
    """negotiation.NewUnsupportedMediaTypeError: 415."""
    return _status(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
        None,
    )


def not_acceptable(accepted: list[str]) -> ApiError:
    """negotiation.NewNotAcceptableError: 406."""
    return _status(
        406, "NotAcceptable", "only the following media types are accepted: " + ", ".join(accepted), None
    )


def expired(message: str) -> ApiError:
    """NewResourceExpired: 410 Expired (a watch from a compacted resourceVersion)."""
    return _status(410, "Expired", message, None)


def internal(message: str) -> ApiError:
    """NewInternalError: 500 `Internal error occurred: <message>`."""
    return _status(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def unknown(code: int, message: str) -> ApiError:
    """What responsewriters.ErrorToAPIStatus makes of an error that is not a Status: the
    message as is, an empty (Unknown) reason."""
    status = _status(code, "", message, None)
    del status.status["reason"]
    return status


def not_implemented(what: str) -> ApiError:
    """The lab's own answer for a call it does not serve yet: loud, and naming the call."""
    return _status(500, "InternalError", f"not implemented in the lab yet: {what}", None)


def path_not_found(*, restful: bool) -> ApiError:
    """An unknown path. Under an installed built-in group version, go-restful's service error
    handler answers NewGenericServerResponse(404, ...) (server/handler.go), whose details are
    present but empty; anywhere else the notfoundhandler answers without details
    (util/notfoundhandler/not_found_handler.go). Same message either way."""
    return _status(404, "NotFound", "the server could not find the requested resource", {} if restful else None)


def method_not_allowed() -> ApiError:
    """go-restful's 405 for a path served with other methods
    (NewGenericServerResponse(405, ...) via server/handler.go serviceErrorHandler)."""
    return _status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})
