"""PATCH bodies as a Kubernetes 1.31 API server applies them: JSON merge patch, JSON patch, strategic merge patch.

Ported from what the real server runs (k8s.io/apiserver v0.31.14 pkg/endpoints/handlers/patch.go):

* ``application/merge-patch+json``: gopkg.in/evanphx/json-patch.v4 (v4.12.0) merge.go MergePatch (RFC 7386).
* ``application/json-patch+json``: the same library's patch.go (RFC 6902), with its v4 quirks: ``replace`` of a
  missing object key adds it, ``test`` with ``"value": null`` matches a missing key, negative array indices count
  from the end, and a failed operation is answered with the API server's *generic* 422 text ("the server rejected
  our request due to an error in our request", apierrors.NewGenericServerResponse) -- the library's own message
  is kept in `PatchError.detail`, it never reaches the client.
* ``application/strategic-merge-patch+json``: k8s.io/apimachinery v0.31.14 pkg/util/strategicpatch/patch.go
  (mergeMap and friends), with the patch metadata of the Go struct tags in `MERGE_STRATEGIES`. Custom resources
  refuse it with 415, as apiextensions-apiserver's handler does.

After the patch, the server decodes the result into the Go type; a wrong type there is a 422 whose single cause
is on the field ``patch`` (for JSON/merge patches the Go decoder's message, for strategic merge patches the
unstructured converter's ``unrecognized type: int32`` family). That decoding check is done here for built-in
kinds. Unknown fields are kept (the server drops them with warnings: see validation.unknown_fields).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from botlab.lab.hosttools.gojson import syntax_error
from botlab.lab.k8s import validation as v

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# The patch types each kind of endpoint accepts, in the order the 415 message lists them:
# k8s.io/apiserver v0.31.14 pkg/endpoints/installer.go:874 and
# k8s.io/apiextensions-apiserver v0.31.14 pkg/apiserver/customresource_handler.go:322.
BUILTIN_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
CUSTOM_RESOURCE_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

# Strategic-merge metadata: (OpenAPI definition, JSON field) -> (patchStrategy, patchMergeKey, source line), from
# the Go struct tags ``patchStrategy:"merge" patchMergeKey:"name"`` of the 1.31 API types. Lists not in this
# table are replaced whole by a strategic merge patch (e.g. PodSpec.tolerations, Container.args, RBAC rules).
# EphemeralContainerCommon is inlined into EphemeralContainer, whose definition carries its fields.
MERGE_STRATEGIES: dict[tuple[str, str], tuple[str, str | None, str]] = {
    ("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 core/v1/types.go:729"),  # noqa: E501
    ("io.k8s.api.core.v1.Container", "ports"): ("merge", "containerPort", "kubernetes/api v0.31.14 core/v1/types.go:2751"),  # noqa: E501
    ("io.k8s.api.core.v1.Container", "env"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:2768"),
    ("io.k8s.api.core.v1.Container", "volumeMounts"): ("merge", "mountPath", "kubernetes/api v0.31.14 core/v1/types.go:2804"),  # noqa: E501
    ("io.k8s.api.core.v1.Container", "volumeDevices"): ("merge", "devicePath", "kubernetes/api v0.31.14 core/v1/types.go:2811"),  # noqa: E501
    ("io.k8s.api.core.v1.ContainerStatus", "volumeMounts"): ("merge", "mountPath", "kubernetes/api v0.31.14 core/v1/types.go:3089"),  # noqa: E501
    ("io.k8s.api.core.v1.ContainerStatus", "allocatedResourcesStatus"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:3102"),  # noqa: E501
    ("io.k8s.api.core.v1.PodSpec", "volumes"): ("merge,retainKeys", "name", "kubernetes/api v0.31.14 core/v1/types.go:3729"),  # noqa: E501
    ("io.k8s.api.core.v1.PodSpec", "initContainers"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:3747"),  # noqa: E501
    ("io.k8s.api.core.v1.PodSpec", "containers"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:3756"),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:3766"),  # noqa: E501
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:3859"),  # noqa: E501
    ("io.k8s.api.core.v1.PodSpec", "hostAliases"): ("merge", "ip", "kubernetes/api v0.31.14 core/v1/types.go:3886"),
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints"): ("merge", "topologyKey", "kubernetes/api v0.31.14 core/v1/types.go:3949"),  # noqa: E501
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:4015"),  # noqa: E501
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims"): ("merge,retainKeys", "name", "kubernetes/api v0.31.14 core/v1/types.go:4032"),  # noqa: E501
    ("io.k8s.api.core.v1.EphemeralContainer", "ports"): ("merge", "containerPort", "kubernetes/api v0.31.14 core/v1/types.go:4582"),  # noqa: E501
    ("io.k8s.api.core.v1.EphemeralContainer", "env"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:4599"),  # noqa: E501
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts"): ("merge", "mountPath", "kubernetes/api v0.31.14 core/v1/types.go:4623"),  # noqa: E501
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices"): ("merge", "devicePath", "kubernetes/api v0.31.14 core/v1/types.go:4630"),  # noqa: E501
    ("io.k8s.api.core.v1.PodStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 core/v1/types.go:4756"),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs"): ("merge", "ip", "kubernetes/api v0.31.14 core/v1/types.go:4788"),
    ("io.k8s.api.core.v1.PodStatus", "podIPs"): ("merge", "ip", "kubernetes/api v0.31.14 core/v1/types.go:4803"),
    ("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses"): ("merge,retainKeys", "name", "kubernetes/api v0.31.14 core/v1/types.go:4846"),  # noqa: E501
    ("io.k8s.api.core.v1.ReplicationControllerStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 core/v1/types.go:5025"),  # noqa: E501
    ("io.k8s.api.core.v1.ServiceStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 core/v1/types.go:5232"),  # noqa: E501
    ("io.k8s.api.core.v1.ServiceSpec", "ports"): ("merge", "port", "kubernetes/api v0.31.14 core/v1/types.go:5324"),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets"): ("merge", "name", "kubernetes/api v0.31.14 core/v1/types.go:5703"),  # noqa: E501
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs"): ("merge", None, "kubernetes/api v0.31.14 core/v1/types.go:5885"),
    ("io.k8s.api.core.v1.NodeStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 core/v1/types.go:6101"),
    ("io.k8s.api.core.v1.NodeStatus", "addresses"): ("merge", "type", "kubernetes/api v0.31.14 core/v1/types.go:6117"),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 core/v1/types.go:6415"),  # noqa: E501
    ("io.k8s.api.core.v1.ComponentStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 core/v1/types.go:7439"),  # noqa: E501
    ("io.k8s.api.apps.v1.StatefulSetStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 apps/v1/types.go:311"),  # noqa: E501
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"): ("retainKeys", None, "kubernetes/api v0.31.14 apps/v1/types.go:395"),  # noqa: E501
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 apps/v1/types.go:517"),  # noqa: E501
    ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 apps/v1/types.go:727"),  # noqa: E501
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions"): ("merge", "type", "kubernetes/api v0.31.14 apps/v1/types.go:903"),  # noqa: E501
    ("io.k8s.api.storage.v1.CSINodeSpec", "drivers"): ("merge", "name", "kubernetes/api v0.31.14 storage/v1/types.go:530"),  # noqa: E501
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences"): ("merge", "uid", "kubernetes/apimachinery v0.31.14 pkg/apis/meta/v1/types.go:241"),  # noqa: E501
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers"): ("merge", None, "kubernetes/apimachinery v0.31.14 pkg/apis/meta/v1/types.go:259"),  # noqa: E501
}

# The generic text apierrors.NewGenericServerResponse puts on a 422 (k8s.io/apimachinery v0.31.14
# pkg/api/errors/errors.go), which is all a client sees when a JSON patch operation or some strategic merge
# patches fail.
GENERIC_422 = "the server rejected our request due to an error in our request"


class PatchError(Exception):
    """A PATCH the API server refuses.

    ``status``/``reason``: 400 BadRequest (malformed body), 415 UnsupportedMediaType (patch type not accepted
    here), 422 Invalid (a patch that cannot be applied, or whose result does not decode), 500 (the errors the
    strategic-merge code returns unwrapped, e.g. ``unknown patch type: merge in map: ...``). ``message`` is the
    Status message the real server sends; ``causes`` its StatusCause dicts; ``detail`` the underlying library
    error when the server hides it behind a generic message.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str | None = None,
        causes: list[dict[str, str]] | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason if reason is not None else _REASONS.get(status, "")
        self.causes = causes or []
        self.detail = detail or message


_REASONS = {400: "BadRequest", 415: "UnsupportedMediaType", 422: "Invalid", 500: ""}


def _unprocessable(detail: str) -> PatchError:
    return PatchError(422, GENERIC_422, detail=detail)


# ---------------------------------------------------------------------------------------------------------
# Entry point.


def apply_patch(live: dict[str, Any], body: bytes, content_type: str, kind: str) -> dict[str, Any]:
    """The object `live` becomes under a PATCH with this body and Content-Type; `live` is left untouched.

    `kind` is the object's kind; whether it is built in is decided with ``live["apiVersion"]`` (a kind the 1.31
    API does not serve is a custom resource, which refuses strategic merge patches with 415).
    """
    patch_type = content_type.split(";", 1)[0].strip()
    api_version = str(live.get("apiVersion", ""))
    definition = v.definition_name(api_version, kind) if api_version else _builtin_by_kind(kind)
    accepted = BUILTIN_PATCH_TYPES if definition is not None else CUSTOM_RESOURCE_PATCH_TYPES
    if patch_type not in accepted or patch_type == APPLY_PATCH:
        if patch_type == APPLY_PATCH:
            raise PatchError(415, "apply patches are server-side apply: use botlab.lab.k8s.apply.server_side_apply")
        raise PatchError(
            415,
            "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
        )
    text = body.decode("utf-8", errors="replace")
    if patch_type == MERGE_PATCH:
        result = merge_patch(live, text)
        _check_decodes(result, definition, json_text=_go_marshal(result))
    elif patch_type == JSON_PATCH:
        result = json_patch(live, text)
        _check_decodes(result, definition, json_text=_go_marshal(result))
    else:
        patch = _decode_patch_map(text)
        result = strategic_merge_patch(live, patch, definition)
        if isinstance(result, dict):
            _check_converts(result, definition, patch)
    if not isinstance(result, dict):
        raise _decode_failure(_go_marshal(result), _not_an_object(result))
    return result


def _builtin_by_kind(kind: str) -> str | None:
    """The definition of a v1 built-in kind named `kind`, for objects stored without apiVersion."""
    for group in ("", "apps", "rbac.authorization.k8s.io", "storage.k8s.io", "node.k8s.io", "batch"):
        name = v.definition_name(f"{group}/v1" if group else "v1", kind)
        if name is not None:
            return name
    return None


def _go_marshal(value: Any) -> str:
    """json.Marshal of a decoded document: sorted keys, compact, <>& escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _not_an_object(value: Any) -> str:
    """The serializer's error for a patched document that is not a JSON object (json.go SimpleMetaFactory)."""
    kind = {list: "array", str: "string", bool: "bool", int: "number", float: "number"}.get(type(value), "null")
    return (
        f"couldn't get version/kind; json parse error: json: cannot unmarshal {kind} into Go value of type "
        'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
    )


def _decode_failure(bad_value: str, error: str) -> PatchError:
    """NewInvalid(schema.GroupKind{}, "", field.Invalid(field.NewPath("patch"), ...)) (handlers/patch.go)."""
    body = f"Invalid value: {v.go_quote(bad_value)}: {error}"
    message = f' "" is invalid: patch: {body}'
    return PatchError(422, message, causes=[{"reason": "FieldValueInvalid", "message": body, "field": "patch"}])


def _check_decodes(result: Any, definition: str | None, *, json_text: str) -> None:
    if definition is None or not isinstance(result, dict):
        return
    error = v.decode_error(result)
    if error is not None:
        raise _decode_failure(json_text, error)


# ---------------------------------------------------------------------------------------------------------
# RFC 7386 merge patch: json-patch v4.12.0 merge.go.


def merge_patch(doc: dict[str, Any], text: str) -> Any:
    """MergePatch(doc, patch): 400 "Invalid JSON Patch" for a body that is not JSON, null, or a scalar."""
    if syntax_error(text) is not None:
        raise PatchError(400, "Invalid JSON Patch")
    patch = json.loads(text)
    if patch is None:
        raise PatchError(400, "Invalid JSON Patch")
    if isinstance(patch, list):
        # Not an error in the library: an array patch replaces the document (and then fails to decode).
        return [_prune_nulls(item) for item in patch]
    if not isinstance(patch, dict):
        raise PatchError(400, "Invalid JSON Patch")
    result = copy.deepcopy(doc)
    _merge_docs(result, patch)
    return result


def _merge_docs(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        elif isinstance(value, dict) and isinstance(doc.get(key), dict):
            _merge_docs(doc[key], value)
        else:
            doc[key] = _prune_nulls(copy.deepcopy(value))


def _prune_nulls(value: Any) -> Any:
    """pruneNulls: nulls vanish from objects (at any depth), stay in arrays."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(item) if item is not None else None for item in value]
    return value


# ---------------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch: json-patch v4.12.0 patch.go.

_MISSING = "missing value"
_TEST_FAILED = "test failed"
_BAD_INDEX = "invalid index referenced"


class _OpError(Exception):
    pass


def _decode_pointer(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _go_atoi(key: str) -> int:
    """strconv.Atoi, with its error text."""
    stripped = key[1:] if key[:1] in "+-" else key
    if not stripped or not stripped.isdigit() or not stripped.isascii():
        raise _OpError(f'strconv.Atoi: parsing {v.go_quote(key)}: invalid syntax')
    return int(key)


class _Container:
    """A dict or a list the patch operates on, with the library's get/set/add/remove semantics."""

    def __init__(self, value: dict[str, Any] | list[Any]) -> None:
        self.value = value

    def get(self, key: str) -> tuple[bool, Any]:
        if isinstance(self.value, dict):
            return key in self.value, self.value.get(key)
        idx = _go_atoi(key)
        size = len(self.value)
        if idx < 0:
            if idx < -size:
                raise _OpError(f"Unable to access invalid index: {idx}: {_BAD_INDEX}")
            idx += size
        if idx >= size:
            raise _OpError(f"Unable to access invalid index: {idx}: {_BAD_INDEX}")
        return True, self.value[idx]

    def set(self, key: str, val: Any) -> None:
        if isinstance(self.value, dict):
            self.value[key] = val
            return
        idx = _go_atoi(key)
        if idx < 0:
            if idx < -len(self.value):
                raise _OpError(f"Unable to access invalid index: {idx}: {_BAD_INDEX}")
            idx += len(self.value)
        self.value[idx] = val

    def add(self, key: str, val: Any) -> None:
        if isinstance(self.value, dict):
            self.value[key] = val
            return
        if key == "-":
            self.value.append(val)
            return
        try:
            idx = _go_atoi(key)
        except _OpError as exc:
            raise _OpError(f"value was not a proper array index: '{key}': {exc}") from None
        size = len(self.value) + 1
        if idx >= size:
            raise _OpError(f"Unable to access invalid index: {idx}: {_BAD_INDEX}")
        if idx < 0:
            if idx < -size:
                raise _OpError(f"Unable to access invalid index: {idx}: {_BAD_INDEX}")
            idx += size
        self.value.insert(idx, val)

    def remove(self, key: str) -> None:
        if isinstance(self.value, dict):
            if key not in self.value:
                raise _OpError(f"Unable to remove nonexistent key: {key}: {_MISSING}")
            del self.value[key]
            return
        idx = _go_atoi(key)
        size = len(self.value)
        if idx >= size:
            raise _OpError(f"Unable to access invalid index: {idx}: {_BAD_INDEX}")
        if idx < 0:
            if idx < -size:
                raise _OpError(f"Unable to access invalid index: {idx}: {_BAD_INDEX}")
            idx += size
        del self.value[idx]


def _find_object(doc: Any, path: str) -> tuple[_Container | None, str]:
    """findObject: the container holding the last token of `path`, walking every token but the first and last."""
    split = path.split("/")
    if len(split) < 2:
        return None, ""
    node = doc
    for part in split[1:-1]:
        if not isinstance(node, (dict, list)):
            return None, ""
        try:
            found, nxt = _Container(node).get(_decode_pointer(part))
        except _OpError:
            return None, ""
        if not found or not isinstance(nxt, (dict, list)):
            return None, ""
        node = nxt
    if not isinstance(node, (dict, list)):
        return None, ""
    return _Container(node), _decode_pointer(split[-1])


def _json_equal(a: Any, b: Any) -> bool:
    """lazyNode.equal: structural for objects and arrays, byte-wise for scalars (1 != 1.0, true != 1)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return json.dumps(a) == json.dumps(b)


def _op_string(op: dict[str, Any], field: str, missing: str) -> str:
    """Operation.Path() / From(): the string, or the library's error."""
    if field not in op or op[field] is None:
        raise _OpError(missing)
    value = op[field]
    if not isinstance(value, str):
        kind = {bool: "bool", list: "array", dict: "object"}.get(type(value), "number")
        raise _OpError(f"json: cannot unmarshal {kind} into Go value of type string")
    return value


_NO_PATH = f"operation missing path field: {_MISSING}"
_NO_FROM = f"operation, missing from field: {_MISSING}"


def json_patch(doc: dict[str, Any], text: str) -> Any:
    """Patch.Apply: the patched document; PatchError 400 for an undecodable body, 422 for a failed operation."""
    error = syntax_error(text)
    if error is not None:
        raise PatchError(400, error)
    ops = json.loads(text)
    if not isinstance(ops, list):
        kind = {dict: "object", str: "string", bool: "bool", type(None): "null"}.get(type(ops), "number")
        if ops is None:
            ops = []
        else:
            raise PatchError(400, f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")
    for op in ops:
        if op is not None and not isinstance(op, dict):
            kind = {str: "string", bool: "bool", list: "array"}.get(type(op), "number")
            raise PatchError(400, f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Operation")
    if len(ops) > 10000:
        message = f"The allowed maximum operations in a JSON patch is 10000, got {len(ops)}"
        raise PatchError(413, message, reason="RequestEntityTooLarge")
    root: list[Any] = [copy.deepcopy(doc)]  # a cell, so "replace" of "" can swap the whole document
    for op in ops:
        try:
            _apply_op(root, op or {})
        except _OpError as exc:
            raise _unprocessable(str(exc)) from None
    return root[0]


def _apply_op(root: list[Any], op: dict[str, Any]) -> None:
    kind = op.get("op") if isinstance(op.get("op"), str) else "unknown"
    has_value = "value" in op
    value = copy.deepcopy(op.get("value"))
    if kind == "add":
        try:
            path = _op_string(op, "path", _NO_PATH)
        except _OpError:
            raise _OpError(f"add operation failed to decode path: {_MISSING}") from None
        con, key = _find_object(root[0], path)
        if con is None:
            raise _OpError(f'add operation does not apply: doc is missing path: "{path}": {_MISSING}')
        try:
            con.add(key, value)
        except _OpError as exc:
            raise _OpError(f"error in add for path: '{path}': {exc}") from None
    elif kind == "remove":
        try:
            path = _op_string(op, "path", _NO_PATH)
        except _OpError:
            raise _OpError(f"remove operation failed to decode path: {_MISSING}") from None
        con, key = _find_object(root[0], path)
        if con is None:
            raise _OpError(f'remove operation does not apply: doc is missing path: "{path}": {_MISSING}')
        try:
            con.remove(key)
        except _OpError as exc:
            raise _OpError(f"error in remove for path: '{path}': {exc}") from None
    elif kind == "replace":
        try:
            path = _op_string(op, "path", _NO_PATH)
        except _OpError as exc:
            raise _OpError(f"replace operation failed to decode path: {exc}") from None
        if path == "":
            if isinstance(value, (dict, list)):
                root[0] = value
            return  # the library wraps a nil error for other values: a silent no-op
        con, key = _find_object(root[0], path)
        if con is None:
            raise _OpError(f"replace operation does not apply: doc is missing path: {path}: {_MISSING}")
        try:
            con.get(key)
        except _OpError:
            raise _OpError(f"replace operation does not apply: doc is missing key: {path}: {_MISSING}") from None
        try:
            con.set(key, value)
        except _OpError as exc:
            raise _OpError(f"error in remove for path: '{path}': {exc}") from None
    elif kind == "move":
        try:
            source = _op_string(op, "from", _NO_FROM)
        except _OpError as exc:
            raise _OpError(f"move operation failed to decode from: {exc}") from None
        con, key = _find_object(root[0], source)
        if con is None:
            raise _OpError(f"move operation does not apply: doc is missing from path: {source}: {_MISSING}")
        try:
            _, moved = con.get(key)
            con.remove(key)
        except _OpError as exc:
            raise _OpError(f"error in move for path: '{key}': {exc}") from None
        try:
            path = _op_string(op, "path", _NO_PATH)
        except _OpError as exc:
            raise _OpError(f"move operation failed to decode path: {exc}") from None
        con, key = _find_object(root[0], path)
        if con is None:
            raise _OpError(f"move operation does not apply: doc is missing destination path: {path}: {_MISSING}")
        try:
            con.add(key, moved)
        except _OpError as exc:
            raise _OpError(f"error in move for path: '{path}': {exc}") from None
    elif kind == "test":
        try:
            path = _op_string(op, "path", _NO_PATH)
        except _OpError as exc:
            raise _OpError(f"test operation failed to decode path: {exc}") from None
        failed = f"testing value {path} failed: {_TEST_FAILED}"
        if path == "":
            if not (has_value and value is not None and _json_equal(root[0], value)):
                raise _OpError(failed)
            return
        con, key = _find_object(root[0], path)
        if con is None:
            raise _OpError(f"test operation does not apply: is missing path: {path}: {_MISSING}")
        try:
            _, current = con.get(key)
        except _OpError as exc:
            raise _OpError(f"error in test for path: '{path}': {exc}") from None
        if current is None:
            # A missing key or a null matches "value": null (and, in the library, an absent "value" panics).
            if has_value and value is None:
                return
            raise _OpError(failed)
        if not has_value or value is None or not _json_equal(current, value):
            raise _OpError(failed)
    elif kind == "copy":
        try:
            source = _op_string(op, "from", _NO_FROM)
        except _OpError as exc:
            raise _OpError(f"copy operation failed to decode from: {exc}") from None
        con, key = _find_object(root[0], source)
        if con is None:
            raise _OpError(f"copy operation does not apply: doc is missing from path: {source}: {_MISSING}")
        try:
            _, copied = con.get(key)
        except _OpError as exc:
            raise _OpError(f"error in copy for from: '{source}': {exc}") from None
        try:
            path = _op_string(op, "path", _NO_PATH)
        except _OpError:
            raise _OpError(f"copy operation failed to decode path: {_MISSING}") from None
        con, key = _find_object(root[0], path)
        if con is None:
            raise _OpError(f"copy operation does not apply: doc is missing destination path: {path}: {_MISSING}")
        try:
            con.add(key, copy.deepcopy(copied))
        except _OpError as exc:
            raise _OpError(f"error while adding value during copy: {exc}") from None
    else:
        raise _OpError(f"Unexpected kind: {kind}")


# ---------------------------------------------------------------------------------------------------------
# Strategic merge patch: k8s.io/apimachinery v0.31.14 pkg/util/strategicpatch/patch.go, applied with
# MergeParallelList and IgnoreUnmatchedNulls (StrategicMergeMapPatchUsingLookupPatchMeta).

_DIRECTIVE = "$patch"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_RETAIN_KEYS = "$retainKeys"
_SET_ELEMENT_ORDER = "$setElementOrder"

# mergepatch errors (k8s.io/apimachinery v0.31.14 pkg/util/mergepatch/errors.go) and the status
# interpretStrategicMergePatchError (handlers/patch.go) gives each.
_ERR_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
_ERR_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
_ERR_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
_ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"
_ERR_RETAIN_KEYS_MISMATCH = "patch content doesn't match retainKeys list"
_BAD_REQUEST_ERRORS = {_ERR_BAD_PRIMITIVE_LIST, _ERR_BAD_RETAIN_KEYS, _ERR_BAD_SET_ELEMENT_ORDER}
_UNPROCESSABLE_ERRORS = {_ERR_NO_LIST_OF_LISTS, _ERR_RETAIN_KEYS_MISMATCH}


class _SmpError(Exception):
    pass


class _Meta:
    """Where a strategic merge is in the Go type: the OpenAPI definition (None for maps and unknown fields)."""

    def __init__(self, definition: str | None, node: dict[str, Any] | None) -> None:
        self.definition = definition
        self.node = node

    def child(self, key: str) -> tuple[_Meta, str, str | None]:
        """(schema of the field, its patch strategy, its merge key): LookupPatchMetadataForStruct/ForSlice."""
        strategy, merge_key = "", None
        if self.definition is not None and v.is_struct(self.node):
            entry = MERGE_STRATEGIES.get((self.definition, key))
            if entry is not None:
                strategy, merge_key = entry[0], entry[1]
        name, node = v.deref(v.child_schema(self.node, key))
        if node is not None and "array" in v.schema_types(node):
            name, node = v.deref(v.items_schema(node))
        return _Meta(name, node), strategy, merge_key

    def name(self) -> str:
        return self.definition.rsplit(".", 1)[-1] if self.definition else ""


def _go_type_name(value: Any) -> str:
    """reflect.TypeOf(x).String() for a decoded JSON value."""
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "string"


def _bad_arg_type(expected: str, actual: Any) -> _SmpError:
    return _SmpError(f"expected a {expected}, but received a {_go_type_name(actual)}")


def _no_merge_key(item: dict[str, Any], key: str) -> _SmpError:
    return _SmpError(f"map: {v.go_v(item)} does not contain declared merge key: {key}")


def _category(value: Any) -> str:
    """What reflect.TypeOf tells apart here: maps, slices, and each scalar type (int64 vs float64)."""
    return _go_type_name(value)


def _same(a: Any, b: Any) -> bool:
    """Go's == on two interface{} values holding scalars."""
    return _category(a) == _category(b) and a == b


def _decode_patch_map(text: str) -> dict[str, Any]:
    """kjson.UnmarshalCaseSensitivePreserveInts into map[string]interface{}: 400 with the decoder's error."""
    error = syntax_error(text)
    if error is not None:
        raise PatchError(400, error)
    patch = json.loads(text)
    if patch is None:
        return {}
    if not isinstance(patch, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(patch), "number")
        raise PatchError(400, f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    return patch


def strategic_merge_patch(live: dict[str, Any], patch: dict[str, Any], definition: str | None) -> dict[str, Any]:
    """StrategicMergeMapPatch(live, patch, <Go type of definition>); a custom resource (definition None) gets the
    415 its endpoint answers."""
    if definition is None:
        raise PatchError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(CUSTOM_RESOURCE_PATCH_TYPES),
        )
    original = copy.deepcopy(live)
    try:
        return _merge_map(original, copy.deepcopy(patch), _Meta(definition, v.definitions().get(definition)))
    except _SmpError as exc:
        message = str(exc)
        if message in _BAD_REQUEST_ERRORS:
            raise PatchError(400, message) from None
        if message in _UNPROCESSABLE_ERRORS:
            raise _unprocessable(message) from None
        raise PatchError(500, message) from None


def _handle_directive_in_merge_map(directive: Any, patch: dict[str, Any]) -> dict[str, Any]:
    if directive == "replace":
        patch.pop(_DIRECTIVE, None)
        return patch
    if directive == "delete":
        return {}
    raise _SmpError(f"unknown patch type: {v.go_v(directive)} in map: {v.go_v(patch)}")


def _extract_key(key: str, prefix: str) -> str:
    parts = key.split("/", 1)
    if len(parts) <= 1 or parts[0] != prefix:
        if prefix == _DELETE_FROM_PRIMITIVE_LIST:
            raise _SmpError(_ERR_BAD_PRIMITIVE_LIST)
        if prefix == _SET_ELEMENT_ORDER:
            raise _SmpError(_ERR_BAD_SET_ELEMENT_ORDER)
        raise _SmpError(f'fail to find unknown prefix "{prefix}" in {key}\n')
    return parts[1]


def _strategies(strategy: str) -> tuple[bool, str]:
    """extractRetainKeysPatchStrategy: (has retainKeys, the other strategy)."""
    parts = [p for p in strategy.split(",") if p]
    retain = "retainKeys" in parts
    others = [p for p in parts if p != "retainKeys"]
    return retain, others[0] if others else ""


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _SmpError(_ERR_BAD_RETAIN_KEYS)
    keep = [k for k in retain if isinstance(k, str)]
    for key, value in patch.items():
        if value is None or key.startswith(_DELETE_FROM_PRIMITIVE_LIST) or key.startswith(_SET_ELEMENT_ORDER):
            continue
        if key not in keep:
            raise _SmpError(_ERR_BAD_RETAIN_KEYS)
    for key in list(original):
        if key not in keep:
            del original[key]


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """removeDirectives: drop maps that carry $patch (and everything under them); keep the rest."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        for key in list(value):
            new, keep = _remove_directives(value[key])
            if keep:
                value[key] = new
            else:
                del value[key]
        return value, True
    if isinstance(value, list):
        out = []
        for item in value:
            new, keep = _remove_directives(item)
            if keep:
                out.append(new)
        return out, True
    return value, True


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in list(value):
            if value[key] is None:
                del value[key]
            else:
                _discard_nulls(value[key])
    elif isinstance(value, list):
        for item in value:
            _discard_nulls(item)


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], meta: _Meta) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        return _handle_directive_in_merge_map(patch[_DIRECTIVE], patch)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_patch_into_original(original, patch, meta)
    for key in list(patch):
        if key not in patch:
            continue
        patch_value = patch[key]
        is_delete_list = False
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            key = _extract_key(key, _DELETE_FROM_PRIMITIVE_LIST)
            is_delete_list = True
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not is_delete_list:
                _discard_nulls(patch_value)
                new, keep = _remove_directives(patch_value)
                if keep:
                    original[key] = new
            continue
        if _category(original[key]) != _category(patch_value):
            if not is_delete_list:
                _discard_nulls(patch_value)
                new, keep = _remove_directives(patch_value)
                if keep:
                    original[key] = new
                else:
                    del original[key]
            continue
        if isinstance(patch_value, dict):
            sub, strategy, _ = meta.child(key)
            _, other = _strategies(strategy)
            if other != "replace":
                original[key] = _merge_map(original[key], patch_value, sub)
            else:
                original[key] = patch_value
        elif isinstance(patch_value, list):
            sub, strategy, merge_key = meta.child(key)
            _, other = _strategies(strategy)
            original[key] = _merge_slice_handler(original[key], patch_value, sub, other, merge_key, is_delete_list)
        else:
            new, keep = _remove_directives(patch_value)
            if keep:
                original[key] = new
            else:
                del original[key]
    return original


def _merge_slice_handler(
    original: list[Any], patch: list[Any], meta: _Meta, strategy: str, merge_key: str | None, is_delete_list: bool
) -> list[Any]:
    if strategy == "merge" or is_delete_list:
        return _merge_slice(original, patch, meta, merge_key or "", is_delete_list)
    return patch


def _slice_element_category(*lists: list[Any]) -> str:
    """sliceElementType: the one element type of the lists (an error for lists of lists or mixed types)."""
    found: str | None = None
    for items in lists:
        for item in items:
            current = _category(item)
            if found is None:
                found = current
                if isinstance(item, list):
                    raise _SmpError(_ERR_NO_LIST_OF_LISTS)
            elif found != current:
                raise _SmpError(f"list element types are not identical: {v.go_v(list(lists))}")
    if found is None:
        raise _SmpError("no elements in any of the given slices")
    return found


def _merge_slice(original: list[Any], patch: list[Any], meta: _Meta, merge_key: str, is_delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    element = _slice_element_category(original, patch)
    is_map = element == "map[string]interface {}"
    if not is_map:
        if is_delete_list:
            return [item for item in original if not any(_same(item, d) for d in patch)]
        merged: list[Any] = []
        for item in original + patch:
            if not any(_same(item, seen) for seen in merged):
                merged.append(item)
    else:
        if not merge_key:
            raise _SmpError(f"cannot merge lists without merge key for {meta.name()}")
        original, patch = _merge_slice_with_special_elements(original, patch, merge_key)
        merged = _merge_slice_without_special_elements(list(original), patch, merge_key, meta)
    if not merge_key:
        patch_items = [item for item in merged if any(_same(item, p) for p in patch)]
        server_only = [item for item in merged if not any(_same(item, p) for p in patch)]
    else:
        patch_items, server_only = _partition_maps(merged, patch, merge_key)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, is_map)


def _merge_slice_with_special_elements(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    without: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            without.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            original = [o for o in original if not (isinstance(o, dict) and _same(o.get(merge_key), item[merge_key])
                                                    and merge_key in o)]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _SmpError("merging lists cannot yet be specified in the patch")
        else:
            raise _SmpError(f"unknown patch type: {v.go_v(directive)} in map: {v.go_v(item)}")
    if replace:
        return without, []
    return original, without


def _find_by_key(items: list[Any], merge_key: str, value: Any) -> int:
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _SmpError(f"value for key {index} is not a map")
        if merge_key in item and _same(item[merge_key], value):
            return index
    return -1


def _merge_slice_without_special_elements(
    original: list[Any], patch: list[Any], merge_key: str, meta: _Meta
) -> list[Any]:
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        index = _find_by_key(original, merge_key, item[merge_key])
        if index >= 0:
            original[index] = _merge_map(original[index], item, meta)
        else:
            original.append(item)
    return original


def _partition_maps(merged: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    patch_items, server_only = [], []
    for item in merged:
        if not isinstance(item, dict):
            raise _bad_arg_type("map[string]interface {}", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        if _find_by_key(patch, merge_key, item[merge_key]) >= 0:
            patch_items.append(item)
        else:
            server_only.append(item)
    return patch_items, server_only


def _index(items: list[Any], value: Any, merge_key: str, is_map: bool) -> int:
    """index(): position of `value` in `items`, by merge key for maps."""

    def key_of(item: Any) -> Any:
        if is_map:
            return item.get(merge_key) if isinstance(item, dict) else None
        return item

    wanted = key_of(value)
    for position, item in enumerate(items):
        if _same(key_of(item), wanted):
            return position
    return -1


def _normalize_slice_order(items: list[Any], order: list[Any], merge_key: str, is_map: bool) -> list[Any]:
    to_delete: list[Any] = []
    if is_map:
        for item in [*items, *order]:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
        keep = [i for i in items if i.get(_DIRECTIVE) != "delete"]
        to_delete = [i for i in items if i.get(_DIRECTIVE) == "delete"]
        items = keep
    positions = [_index(order, item, merge_key, is_map) for item in items]
    ranked = sorted(range(len(items)), key=lambda i: positions[i] if positions[i] >= 0 else len(order))
    return [items[i] for i in ranked] + to_delete


def _normalize_element_order(
    patch: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any], merge_key: str,
    is_map: bool,
) -> list[Any]:
    """normalizeElementOrder + mergeSortedSlice: patch items in patch order, server-only items in live order,
    interleaved where the live order relates them; otherwise patch items come first."""
    patch = _normalize_slice_order(patch, patch_order, merge_key, is_map)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, is_map)
    left, right = server_only, patch
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, is_map)
            ri = _index(server_order, right[j], merge_key, is_map)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _merge_patch_into_original(original: dict[str, Any], patch: dict[str, Any], meta: _Meta) -> None:
    """mergePatchIntoOriginal: the $setElementOrder/<list> directives, each with its list."""
    for key in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _bad_arg_type("[]interface {}", order)
        list_key = _extract_key(key, _SET_ELEMENT_ORDER)
        found_original, found_patch = list_key in original, list_key in patch
        original_list: list[Any] = []
        patch_list: list[Any] = []
        if found_original:
            if not isinstance(original[list_key], list):
                raise _bad_arg_type("[]interface {}", original[list_key])
            original_list = original[list_key]
        if found_patch:
            if not isinstance(patch[list_key], list):
                raise _bad_arg_type("[]interface {}", patch[list_key])
            patch_list = patch[list_key]
        sub, strategy, merge_key = meta.child(list_key)
        _, other = _strategies(strategy)
        _validate_set_order(patch_list, order, merge_key or "")
        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged, _ = _remove_directives(patch_list)
        elif found_original and found_patch:
            merged = _merge_slice_handler(original_list, patch_list, sub, other, merge_key, False)
        else:
            continue
        if not merge_key:
            patch_items = [i for i in merged if any(_same(i, o) for o in order)]
            server_only = [i for i in merged if not any(_same(i, o) for o in order)]
        else:
            patch_items, server_only = _partition_maps(merged, order, merge_key)
        is_map = _slice_element_category(original_list, patch_list) == "map[string]interface {}"
        original[list_key] = _normalize_element_order(patch_items, server_only, order, original_list,
                                                      merge_key or "", is_map)
        patch.pop(list_key, None)


def _validate_set_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """validatePatchWithSetOrderList: the patch's items appear in the $setElementOrder list, in its order."""
    if not order or not patch_list:
        return
    items = [i for i in patch_list if not (isinstance(i, dict) and i.get(_DIRECTIVE) == "delete")] \
        if merge_key else patch_list
    p = s = 0
    while p < len(items) and s < len(order):
        if isinstance(items[p], dict) and _DIRECTIVE in items[p]:
            p += 1
            continue
        if merge_key:
            left, right = items[p], order[s]
            if not isinstance(left, dict):
                raise _bad_arg_type("map[string]interface {}", left)
            if not isinstance(right, dict):
                raise _bad_arg_type("map[string]interface {}", right)
            if merge_key not in left:
                raise _no_merge_key(left, merge_key)
            if merge_key not in right:
                raise _no_merge_key(right, merge_key)
            equal = _same(left[merge_key], right[merge_key])
        else:
            equal = _same(items[p], order[s])
        if equal:
            p += 1
        s += 1
    if p < len(items) and s >= len(order):
        raise _SmpError(
            f"The order in patch list:\n{v.go_v(patch_list)}\n doesn't match {_SET_ELEMENT_ORDER} list:\n"
            f"{v.go_v(order)}\n"
        )


# After a strategic merge patch the server converts the map into the Go type with the unstructured converter
# (k8s.io/apimachinery v0.31.14 pkg/runtime/converter.go fromUnstructured), whose errors differ from the JSON
# decoder's.


def _kind_name(value: Any) -> str:
    """reflect.Kind of a decoded value."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    return "string"


def _convert_error(value: Any, node: dict[str, Any] | None) -> str | None:
    if value is None or node is None:
        return None
    name, schema = v.deref(node)
    if name == v.QUANTITY:
        return v.quantity_error(value)
    if name == v.INT_OR_STRING:
        # FromUnstructured marshals the value and hands it to IntOrString.UnmarshalJSON.
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return None
        kind = {bool: "bool", dict: "object", list: "array"}.get(type(value), "number " + v.go_number(value))
        return f"json: cannot unmarshal {kind} into Go value of type int32"
    if name in v.TIMES:
        if isinstance(value, str):
            return None
        kind = {bool: "bool", dict: "object", list: "array"}.get(type(value), "number")
        return f"json: cannot unmarshal {kind} into Go value of type string"
    if schema is None:
        return None
    types = v.schema_types(schema)
    if v.is_struct(schema):
        if not isinstance(value, dict):
            return f"cannot restore struct from: {_kind_name(value)}"
        for key, sub in value.items():
            error = _convert_error(sub, schema["properties"].get(key))
            if error:
                return error
        return None
    if "object" in types:
        if not isinstance(value, dict):
            return f"cannot restore map from {_kind_name(value)}"
        extra = schema.get("additionalProperties")
        for sub in value.values():
            error = _convert_error(sub, extra if isinstance(extra, dict) else None)
            if error:
                return error
        return None
    if "array" in types:
        if not isinstance(value, list):
            return f"cannot restore slice from {_kind_name(value)}"
        for sub in value:
            error = _convert_error(sub, v.items_schema(schema))
            if error:
                return error
        return None
    target = v.go_type(node)
    if "string" in types and schema.get("format") == "byte":
        if isinstance(value, str):
            error = v._go_base64_error(value)
            return f"error decoding from json: {error}" if error else None
        return f"cannot restore slice from {_kind_name(value)}"
    if isinstance(value, (dict, list)):
        return f"unrecognized type: {target}"
    if "string" in types:
        if isinstance(value, str):
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"cannot convert {_kind_name(value)} to {target}"
        return f"unrecognized type: {target}"
    if "integer" in types or "number" in types:
        if isinstance(value, (bool, str)):
            return f"unrecognized type: {target}"
        if isinstance(value, float) and "integer" in types and not value.is_integer():
            return f"cannot convert float64 to {target}"
        return None
    if "boolean" in types and not isinstance(value, bool):
        return f"unrecognized type: {target}"
    return None


def _check_converts(result: dict[str, Any], definition: str | None, patch: dict[str, Any]) -> None:
    if definition is None:
        return
    error = _convert_error(result, {"$ref": "#/$defs/" + definition})
    if error is not None:
        raise _decode_failure(v.go_v(patch), error)
