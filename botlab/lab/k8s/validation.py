"""What a Kubernetes 1.31 API server says about an object it is asked to store, for the virtual lab.

Three stages, in the order the real server runs them (k8s.io/apiserver v0.31.14
pkg/endpoints/handlers/create.go: decode, then default, then validate):

1. Decoding. Built-in kinds are decoded strictly typed (sigs.k8s.io/json, encoding/json's fork), so a wrong
   JSON type is a **400 BadRequest** from the decoder, not a validation error:
   ``Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct
   field DeploymentSpec.spec.replicas of type int32`` (handlers/rest.go transformDecodeError). Unknown fields are
   dropped; with ``fieldValidation=Warn`` (the server default, handlers/rest.go fieldValidation()) each becomes a
   warning ``unknown field "spec.foo"``; with ``Strict`` the request fails with 400 ``... cannot be handled as a
   Deployment: strict decoding error: unknown field "spec.foo"``. `decode_error`, `unknown_fields`,
   `drop_unknown_fields`.
2. Defaulting: not here (the server's resources module owns defaults); call `validate` on the defaulted object.
3. Validation: hand-written Go per kind (k8s.io/kubernetes pkg/apis/*/validation), a **422 Invalid**
   ``Deployment.apps "web" is invalid: [spec.selector: Required value, ...]``. Only the checks the lab's stages can
   hit are ported (see `_VALIDATORS`); the OpenAPI ``required`` lists stand in for the rest, as
   ``<path>: Required value`` -- the form the hand-written code uses for nearly every required field.

Custom resources are validated against their CRD's openAPIV3Schema when `validate` is given it, with the
apiextensions-apiserver message forms (``spec.replicas: Invalid value: "string": spec.replicas in body must be of
type integer: "string"``; note the real server quotes the JSON *type* it saw, not the value).

Not exact: Go's named string types (``v1.Protocol``) are reported as ``string`` in decoder messages; number
literals are re-rendered from the decoded float (``1e3`` becomes ``1000``); metav1.Time strings are not parsed;
only the first error a Go decoder would report is produced, as Go does.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

from botlab.lab.hosttools.gojson import go_float, go_type_name

# The OpenAPI definitions of Kubernetes 1.31, as kubernetes-validate==1.31.0 ships them (converted to JSON
# schema, with the x-kubernetes-* extensions kept). patching.py and apply.py navigate objects with them too.
SCHEMA_DIR = "kubernetes-json-schema/v1.31.0-local"

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIMES = ("io.k8s.apimachinery.pkg.apis.meta.v1.Time", "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime")


@functools.lru_cache(maxsize=1)
def definitions() -> dict[str, dict[str, Any]]:
    """The ``$defs`` of the 1.31 schema, keyed by OpenAPI definition name (io.k8s.api.apps.v1.Deployment)."""
    path = resources.files("kubernetes_validate").joinpath(SCHEMA_DIR, "_definitions.json")
    data: dict[str, dict[str, Any]] = json.loads(path.read_text())["$defs"]
    return data


@functools.lru_cache(maxsize=1)
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, node in definitions().items():
        for gvk in node.get("x-kubernetes-group-version-kind", ()):
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return index


def split_api_version(api_version: str) -> tuple[str, str]:
    """("apps", "v1") for "apps/v1", ("", "v1") for "v1"."""
    group, _, version = api_version.rpartition("/")
    return group, version


def definition_name(api_version: str, kind: str) -> str | None:
    """The OpenAPI definition of a built-in kind, or None for kinds the 1.31 API does not serve (CRs)."""
    group, version = split_api_version(api_version or "")
    if kind in ("List", "Status", "DeleteOptions", "WatchEvent"):
        return None
    return _gvk_index().get((group, version, kind))


def deref(node: dict[str, Any] | None) -> tuple[str | None, dict[str, Any] | None]:
    """Follow a ``$ref``: (definition name, its schema); (None, node) for an inline schema."""
    if node is None:
        return None, None
    ref = node.get("$ref")
    if not ref:
        return None, node
    name = ref.rsplit("/", 1)[-1]
    return name, definitions().get(name)


def schema_types(node: dict[str, Any] | None) -> set[str]:
    """The JSON types a schema node allows, without "null"."""
    if node is None:
        return set()
    raw = node.get("type")
    if raw is None:
        return set()
    types = {raw} if isinstance(raw, str) else set(raw)
    types.discard("null")
    return types


def is_struct(node: dict[str, Any] | None) -> bool:
    """A Go struct: an object schema with named properties."""
    return node is not None and "properties" in node


def child_schema(node: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The (unresolved) schema of field `key` of an object schema: its property, else its map values."""
    if node is None:
        return None
    props = node.get("properties")
    if props is not None:
        return props.get(key)
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def items_schema(node: dict[str, Any] | None) -> dict[str, Any] | None:
    """The (unresolved) schema of the elements of an array schema."""
    if node is None:
        return None
    items = node.get("items")
    return items if isinstance(items, dict) else None


# ---------------------------------------------------------------------------------------------------------
# Go formatting helpers shared by the three modules.


def go_quote(text: str) -> str:
    """strconv.Quote (fmt's %q of a string)."""
    out = ['"']
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in escapes:
            out.append(escapes[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def go_number(value: float) -> str:
    """fmt's %v of a decoded JSON number (int64 when integral, as the apiserver's decoders preserve ints)."""
    if isinstance(value, int):
        return str(value)
    return go_float(value)


def go_v(value: Any) -> str:
    """fmt's %v of a value decoded into interface{} (maps print as map[k:v ...] with sorted keys)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return go_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_v(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def go_string_map(value: dict[str, str] | None) -> str:
    """fmt's %#v of a map[string]string."""
    if value is None:
        return "map[string]string(nil)"
    return "map[string]string{" + ", ".join(f"{go_quote(k)}:{go_quote(str(value[k]))}" for k in sorted(value)) + "}"


# ---------------------------------------------------------------------------------------------------------
# Errors.


class Invalid(Exception):
    """A request the API server refuses for its content.

    ``status`` is 422 (reason ``Invalid``, field errors in ``causes``) for validation, 400 (reason
    ``BadRequest``, no causes) for decoding failures. ``causes`` are StatusCause dicts as they appear on the wire:
    ``{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"}``.
    """

    def __init__(
        self,
        message: str,
        *,
        causes: list[dict[str, str]] | None = None,
        kind: str = "",
        name: str = "",
        group: str = "",
        status: int = 422,
        reason: str = "Invalid",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.causes = causes or []
        self.kind = kind
        self.name = name
        self.group = group
        self.status = status
        self.reason = reason


# field.ErrorType values (CauseType on the wire) and their String() (k8s.io/apimachinery v0.31.14
# pkg/util/validation/field/errors.go).
_ERROR_TYPES = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "InternalError": "Internal error",
    "FieldValueTypeInvalid": "Invalid value",
}
_NO_VALUE = ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError")


class FieldError:
    """field.Error: a path, a type, the bad value as Go's ErrorBody() prints it, a detail."""

    def __init__(self, kind: str, path: str, value: str | None = None, detail: str = "") -> None:
        self.type = kind
        self.field = path
        self.value = value  # already rendered (%q of a string, %v of a number, %#v of a map ...)
        self.detail = detail

    def body(self) -> str:
        """field.Error.ErrorBody()."""
        text = _ERROR_TYPES[self.type]
        if self.type not in _NO_VALUE and self.value is not None:
            text += ": " + self.value
        if self.detail:
            text += ": " + self.detail
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def _render(value: Any) -> str:
    """The bad value as field.Error.ErrorBody() formats simple values (%q strings, %v numbers and bools)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return go_number(value)
    return go_v(value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, detail=detail)


def invalid(path: str, value: Any, detail: str, *, rendered: str | None = None) -> FieldError:
    return FieldError("FieldValueInvalid", path, rendered if rendered is not None else _render(value), detail)


def aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate(errs).Error(): one message bare, several deduplicated in brackets."""
    seen: list[str] = []
    for message in messages:
        if message not in seen:
            seen.append(message)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


def invalid_error(kind: str, group: str, name: str, errors: list[FieldError]) -> Invalid:
    """apierrors.NewInvalid (k8s.io/apimachinery v0.31.14 pkg/api/errors/errors.go): 422 with one cause per error."""
    qualified = f"{kind}.{group}" if group else kind
    message = f"{qualified} {go_quote(name)} is invalid"
    if errors:
        message += ": " + aggregate([str(e) for e in errors])
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errors]
    return Invalid(message, causes=causes, kind=kind, name=name, group=group)


# ---------------------------------------------------------------------------------------------------------
# 1. Decoding (sigs.k8s.io/json bc3834ca7abd internal/golang/encoding/json/decode.go, the decoder
#    k8s.io/apimachinery v0.31.14's json serializer uses for built-in types).


class _DirectError(Exception):
    """An error a custom UnmarshalJSON returns: it aborts decoding and wins over saved type errors."""


_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_QUANTITY_SUFFIXES = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"}
# k8s.io/apimachinery v0.31.14 pkg/api/resource/quantity.go ErrFormatWrong / ErrSuffix.
_QUANTITY_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_QUANTITY_SUFFIX = "unable to parse quantity's suffix"


def quantity_error(value: Any) -> str | None:
    """resource.ParseQuantity's error for what a Quantity field was given, or None when it parses."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        text = json.dumps(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        text = go_number(value)
    match = _QUANTITY_RE.match(text)
    if not text or not match:
        return _QUANTITY_FORMAT
    number, suffix = match.group(1), match.group(2)
    if number.count(".") > 1 or number.strip("+-") in ("", "."):
        return _QUANTITY_FORMAT
    if suffix not in _QUANTITY_SUFFIXES and not re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
        return _QUANTITY_SUFFIX
    return None


def _go_base64_error(text: str) -> str | None:
    """base64.StdEncoding.Decode's CorruptInputError for `text` (Go 1.22 encoding/base64 decodeQuantum), as
    encoding/json reports it for a []byte field such as Secret.data values."""
    src = text.encode()
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    si = 0
    while True:
        j = 0
        while j < 4:
            if si == len(src):
                if j == 0:
                    return None
                return f"illegal base64 data at input byte {si - j}"
            ch = src[si]
            si += 1
            if ch in alphabet:
                j += 1
                continue
            if ch in b"\r\n":
                continue
            if ch != ord("="):
                return f"illegal base64 data at input byte {si - 1}"
            if j in (0, 1):
                return f"illegal base64 data at input byte {si - 1}"
            if j == 2:
                while si < len(src) and src[si] in b"\r\n":
                    si += 1
                if si == len(src):
                    return f"illegal base64 data at input byte {len(src)}"
                if src[si] != ord("="):
                    return f"illegal base64 data at input byte {si - 1}"
                si += 1
            while si < len(src) and src[si] in b"\r\n":
                si += 1
            if si < len(src):
                return f"illegal base64 data at input byte {si}"
            return None


def go_type(node: dict[str, Any] | None) -> str:
    """The Go type (reflect.Type.String()) of the field a schema node describes, as UnmarshalTypeError names it."""
    name, schema = deref(node)
    if name is not None:
        if name == INT_OR_STRING:
            return "int32"
        if name in TIMES or name == QUANTITY:
            return "string"
        short = name.rsplit(".", 1)[-1]
        return f"v1.{short}" if is_struct(schema) else _scalar_type(schema)
    return _scalar_type(schema)


def _scalar_type(schema: dict[str, Any] | None) -> str:
    types = schema_types(schema)
    if "array" in types:
        return "[]" + go_type(items_schema(schema))
    if "object" in types:
        extra = (schema or {}).get("additionalProperties")
        return "map[string]" + (go_type(extra) if isinstance(extra, dict) else "interface {}")
    if "integer" in types:
        return "int64" if (schema or {}).get("format") == "int64" else "int32"
    if "number" in types:
        return "float64"
    if "boolean" in types:
        return "bool"
    if "string" in types:
        return "[]uint8" if (schema or {}).get("format") == "byte" else "string"
    return "interface {}"


class _Decoder:
    """Walks a JSON value against the schema the way the Go decoder walks it into the typed struct."""

    def __init__(self) -> None:
        self.saved: str | None = None
        self.unknown: list[str] = []

    def type_error(self, value_kind: str, go: str, struct: str | None, stack: list[str]) -> str:
        if struct is not None or stack:
            field = f"{struct or ''}.{'.'.join(stack)}"
            return f"json: cannot unmarshal {value_kind} into Go struct field {field} of type {go}"
        return f"json: cannot unmarshal {value_kind} into Go value of type {go}"

    def save(self, message: str) -> None:
        if self.saved is None:
            self.saved = message

    def strict(self, path: str) -> None:
        message = f"unknown field {json.dumps(path)}"
        if message not in self.unknown and len(self.unknown) < 100:
            self.unknown.append(message)

    def walk(self, value: Any, node: dict[str, Any] | None, struct: str | None, stack: list[str], spath: str) -> None:
        if node is None or value is None:
            return
        name, schema = deref(node)
        if name == INT_OR_STRING:
            if isinstance(value, str):
                return
            if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
                return
            kind = go_type_name(value)
            if kind == "number":
                kind = "number " + go_number(value)
            raise _DirectError(self.type_error(kind, "int32", struct, stack))
        if name == QUANTITY:
            error = quantity_error(value)
            if error:
                raise _DirectError(error)
            return
        if name in TIMES:
            if not isinstance(value, str):
                raise _DirectError(self.type_error(go_type_name(value), "string", struct, stack))
            return
        if schema is None:
            return
        types = schema_types(schema)
        if is_struct(schema):
            if not isinstance(value, dict):
                self.save(self.type_error(go_type_name(value), go_type(node), struct, stack))
                return
            short = (name or "").rsplit(".", 1)[-1]
            props = schema["properties"]
            for key, sub in value.items():
                sub_path = f"{spath}.{key}" if spath else key
                if key not in props:
                    self.strict(sub_path)
                    continue
                self.walk(sub, props[key], short, [*stack, key], sub_path)
            return
        if "object" in types:
            if not isinstance(value, dict):
                self.save(self.type_error(go_type_name(value), go_type(node), struct, stack))
                return
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                for key, sub in value.items():
                    self.walk(sub, extra, struct, stack, f"{spath}.{key}" if spath else key)
            return
        if "array" in types:
            if not isinstance(value, list):
                self.save(self.type_error(go_type_name(value), go_type(node), struct, stack))
                return
            for index, sub in enumerate(value):
                self.walk(sub, items_schema(schema), struct, stack, f"{spath}[{index}]")
            return
        if "string" in types:
            if not isinstance(value, str):
                self.save(self.type_error(go_type_name(value), go_type(node), struct, stack))
            elif schema.get("format") == "byte":
                error = _go_base64_error(value)
                if error:
                    self.save(error)
            return
        if "integer" in types:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.save(self.type_error(go_type_name(value), go_type(node), struct, stack))
                return
            bits = 64 if schema.get("format") == "int64" else 32
            if not isinstance(value, int) or not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                self.save(self.type_error("number " + go_number(value), go_type(node), struct, stack))
            return
        if "number" in types:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.save(self.type_error(go_type_name(value), go_type(node), struct, stack))
            return
        if "boolean" in types and not isinstance(value, bool):
            self.save(self.type_error(go_type_name(value), go_type(node), struct, stack))


def _root(obj: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    name = definition_name(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    return name, (definitions().get(name) if name else None)


def _decode(obj: dict[str, Any]) -> _Decoder:
    name, schema = _root(obj)
    decoder = _Decoder()
    if schema is None:
        return decoder
    try:
        decoder.walk(obj, {"$ref": "#/$defs/" + name} if name else None, None, [], "")
    except _DirectError as exc:
        decoder.saved = str(exc)
        decoder.unknown = []
    return decoder


def _cannot_be_handled(obj: dict[str, Any], error: str) -> Invalid:
    """handlers/rest.go transformDecodeError: 400 "<Kind> in version "<v>" cannot be handled as a <Kind>: <err>"."""
    kind = str(obj.get("kind", ""))
    _, version = split_api_version(str(obj.get("apiVersion", "")))
    message = f"{kind} in version {go_quote(version)} cannot be handled as a {kind}: {error}"
    return Invalid(message, kind=kind, name=_name(obj), status=400, reason="BadRequest")


def decode_error(obj: dict[str, Any]) -> str | None:
    """The error the typed decoder reports for a built-in object (wrong JSON types, bad quantities, bad base64
    in Secret data), or None. Unknown kinds: None."""
    return _decode(obj).saved


def unknown_fields(obj: dict[str, Any]) -> list[str]:
    """The strict-decoding errors of a built-in object, ``unknown field "spec.foo"`` each (the warnings the
    server returns under fieldValidation=Warn), in document order; [] for unknown kinds."""
    return list(_decode(obj).unknown)


def drop_unknown_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a built-in object without the fields its Go type does not have (what decoding keeps)."""
    name, schema = _root(obj)
    if schema is None:
        return json.loads(json.dumps(obj))
    pruned = _prune(obj, {"$ref": "#/$defs/" + str(name)})
    return pruned if isinstance(pruned, dict) else {}


def _prune(value: Any, node: dict[str, Any] | None) -> Any:
    name, schema = deref(node)
    if schema is None or name in (INT_OR_STRING, QUANTITY, *TIMES):
        return json.loads(json.dumps(value))
    if isinstance(value, dict):
        if is_struct(schema):
            props = schema["properties"]
            return {k: _prune(v, props[k]) for k, v in value.items() if k in props}
        extra = schema.get("additionalProperties")
        return {k: _prune(v, extra if isinstance(extra, dict) else None) for k, v in value.items()}
    if isinstance(value, list):
        return [_prune(v, items_schema(schema)) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------------
# 3. Validation. Name rules from k8s.io/apimachinery v0.31.14 pkg/util/validation/validation.go.

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + "(\\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """validation.RegexError."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    msg += " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            msg += " or "
        msg += f"'{example}', "
    return msg + f"regex used for validation is '{fmt}')"


def _full(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def is_dns1123_label(value: str) -> list[str]:
    """validation.IsDNS1123Label."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _full(_DNS1123_LABEL, value):
        if _full(_DNS1123_SUBDOMAIN, value):
            errs.append("must not contain dots")
        else:
            errs.append(
                _regex_error(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                    "start and end with an alphanumeric character",
                    _DNS1123_LABEL,
                    "my-name",
                    "123-abc",
                )
            )
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """validation.IsDNS1123Subdomain."""
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _full(_DNS1123_SUBDOMAIN, value):
        errs.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                "must start and end with an alphanumeric character",
                _DNS1123_SUBDOMAIN,
                "example.com",
            )
        )
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """validation.IsDNS1035Label."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _full(_DNS1035_LABEL, value):
        errs.append(
            _regex_error(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character",
                _DNS1035_LABEL,
                "my-name",
                "abc-123",
            )
        )
    return errs


def is_path_segment_name(value: str) -> list[str]:
    """path.IsValidPathSegmentName (k8s.io/apimachinery v0.31.14 pkg/api/validation/path/name.go): RBAC names."""
    for illegal in (".", ".."):
        if value == illegal:
            return [f"may not be '{illegal}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value]


def is_qualified_name(value: str) -> list[str]:
    """validation.IsQualifiedName (label keys, annotation keys, finalizers)."""
    errs: list[str] = []
    parts = value.split("/")
    example = _regex_error(
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character",
        _QUALIFIED_NAME,
        "MyName",
        "my.name",
        "123-abc",
    )
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + example + " with an optional DNS subdomain prefix and '/' (e.g. "
                "'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not _full(_QUALIFIED_NAME, name):
        errs.append("name part " + example)
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _full(_LABEL_VALUE, value):
        errs.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character",
                _LABEL_VALUE,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return errs


_NameFn = Callable[[str], list[str]]


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def _validate_labels(labels: Any, path: str) -> Iterator[FieldError]:
    """metav1 validation.ValidateLabels (k8s.io/apimachinery v0.31.14 pkg/apis/meta/v1/validation/validation.go)."""
    if not isinstance(labels, dict):
        return
    for key in sorted(labels):  # Go ranges over the map; sorted gives a stable order
        for msg in is_qualified_name(key):
            yield invalid(path, key, msg)
        for msg in is_valid_label_value(str(labels[key])):
            yield invalid(path, str(labels[key]), msg)


def _validate_object_meta(obj: dict[str, Any], name_fn: _NameFn, path: str = "metadata") -> Iterator[FieldError]:
    """ValidateObjectMetaAccessor (k8s.io/apimachinery v0.31.14 pkg/api/validation/objectmeta.go), without the
    namespace rules (the server sets or clears metadata.namespace from the URL before validating)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    generate = meta.get("generateName") or ""
    if generate:
        for msg in name_fn(_mask_trailing_dash(str(generate))):
            yield invalid(f"{path}.generateName", str(generate), msg)
    name = meta.get("name") or ""
    if not name:
        yield required(f"{path}.name", "name or generateName is required")
    else:
        for msg in name_fn(str(name)):
            yield invalid(f"{path}.name", str(name), msg)
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        yield invalid(f"{path}.generation", generation, "must be greater than or equal to 0")
    yield from _validate_labels(meta.get("labels"), f"{path}.labels")
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        for key in sorted(annotations):
            for msg in is_qualified_name(key.lower()):
                yield invalid(f"{path}.annotations", key, msg)
    for finalizer in meta.get("finalizers") or ():
        for msg in is_qualified_name(str(finalizer)):
            yield invalid(f"{path}.finalizers", str(finalizer), msg)


def _mask_trailing_dash(name: str) -> str:
    """generic.go maskTrailingDash: a generateName prefix may end in '-'."""
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


def label_selector_matches(selector: dict[str, Any] | None, labels: dict[str, Any]) -> bool:
    """metav1.LabelSelectorAsSelector(selector).Matches(labels); a nil selector selects nothing."""
    if selector is None:
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return True  # labels.Everything()
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in expressions:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _go_label_selector(selector: dict[str, Any]) -> str:
    """%#v of a metav1.LabelSelector (the bad value of "empty selector is invalid")."""
    labels = selector.get("matchLabels")
    exprs = selector.get("matchExpressions")
    rendered_labels = "map[string]string(nil)" if labels is None else go_string_map(labels)
    rendered_exprs = "[]v1.LabelSelectorRequirement(nil)" if exprs is None else "[]v1.LabelSelectorRequirement{}"
    return f"v1.LabelSelector{{MatchLabels:{rendered_labels}, MatchExpressions:{rendered_exprs}}}"


def _validate_containers(
    containers: Any, path: str, *, require: bool, volumes: set[str] | None = None
) -> Iterator[FieldError]:
    """validateContainers / validateContainerCommon / ValidateVolumeMounts (k8s.io/kubernetes v1.31
    pkg/apis/core/validation/validation.go): name required, a DNS-1123 label, unique across the pod's
    containers; image required; a volume mount names one of the pod's volumes."""
    if not containers:
        if require:
            yield required(path)
        return
    seen: set[str] = set()
    for index, ctr in enumerate(containers):
        if not isinstance(ctr, dict):
            continue
        item = f"{path}[{index}]"
        name = str(ctr.get("name") or "")
        if not name:
            yield required(f"{item}.name")
        else:
            for msg in is_dns1123_label(name):
                yield invalid(f"{item}.name", name, msg)
            if name in seen:
                yield FieldError("FieldValueDuplicate", f"{item}.name", go_quote(name))
            seen.add(name)
        if not ctr.get("image"):
            yield required(f"{item}.image")
        for index_m, mount in enumerate(ctr.get("volumeMounts") or ()):
            mount_name = mount.get("name") if isinstance(mount, dict) else None
            if mount_name and volumes is not None and mount_name not in volumes:
                yield FieldError("FieldValueNotFound", f"{item}.volumeMounts[{index_m}].name", go_quote(mount_name))


def _validate_pod_spec(spec: Any, path: str) -> Iterator[FieldError]:
    if not isinstance(spec, dict):
        spec = {}
    volumes = {str(vol.get("name")) for vol in spec.get("volumes") or () if isinstance(vol, dict)}
    yield from _validate_containers(spec.get("containers"), f"{path}.containers", require=True, volumes=volumes)
    yield from _validate_containers(spec.get("initContainers"), f"{path}.initContainers", require=False,
                                    volumes=volumes)


def _validate_pod_template(template: Any, path: str) -> Iterator[FieldError]:
    template = template if isinstance(template, dict) else {}
    meta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    # ValidatePodTemplateSpec reports the template's labels under "<path>.labels" (no "metadata").
    yield from _validate_labels(meta.get("labels"), f"{path}.labels")
    yield from _validate_pod_spec(template.get("spec"), f"{path}.spec")


def _validate_workload(obj: dict[str, Any], kind: str) -> Iterator[FieldError]:
    """ValidateDeploymentSpec / ValidateReplicaSetSpec / ValidateStatefulSetSpec / ValidateDaemonSetSpec
    (k8s.io/kubernetes v1.31 pkg/apis/apps/validation/validation.go): replicas >= 0, selector required (not for
    DaemonSets) and non-empty, the selector matches the template's labels (a nil selector matches nothing), then
    the pod template (StatefulSets validate only the template's labels: ValidatePodTemplateSpecForStatefulSet)."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0 and kind != "DaemonSet":
        yield invalid("spec.replicas", replicas, "must be greater than or equal to 0")
    selector = spec.get("selector") if isinstance(spec.get("selector"), dict) else None
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    assert isinstance(template, dict)
    tmeta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    assert isinstance(tmeta, dict)
    labels = tmeta.get("labels") if isinstance(tmeta.get("labels"), dict) else None
    empty = selector is not None and not selector.get("matchLabels") and not selector.get("matchExpressions")
    # ReplicaSetSpec's message says "deployment" in the real source too.
    noun = {"ReplicaSet": "deployment"}.get(kind, kind.lower())
    empty_error = invalid("spec.selector", None, f"empty selector is invalid for {noun}",
                          rendered=_go_label_selector(selector or {}))
    mismatch = invalid("spec.template.metadata.labels", None, "`selector` does not match template `labels`",
                       rendered=go_string_map(labels))
    matches = label_selector_matches(selector, labels or {})
    if kind == "DaemonSet":
        if selector is not None:
            yield from _validate_labels(selector.get("matchLabels"), "spec.selector.matchLabels")
        if not matches:
            yield mismatch
        if empty:
            yield empty_error
    else:
        if selector is None:
            yield required("spec.selector")
        else:
            yield from _validate_labels(selector.get("matchLabels"), "spec.selector.matchLabels")
            if empty:
                yield empty_error
        if not empty and not matches:
            yield mismatch
    if kind == "StatefulSet":
        yield from _validate_labels(labels, "spec.template.labels")
    else:
        yield from _validate_pod_template(template, "spec.template")
    tspec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    assert isinstance(tspec, dict)
    restart = tspec.get("restartPolicy")
    if restart not in (None, "Always"):
        yield FieldError("FieldValueNotSupported", "spec.template.spec.restartPolicy", go_quote(str(restart)),
                         'supported values: "Always"')


def _validate_runtime_class(obj: dict[str, Any]) -> Iterator[FieldError]:
    """ValidateRuntimeClass (k8s.io/kubernetes v1.31 pkg/apis/node/validation/validation.go): handler is a
    DNS-1123 label."""
    handler = str(obj.get("handler") or "")
    for msg in is_dns1123_label(handler):
        yield invalid("handler", handler, msg)


def is_config_map_key(value: str) -> list[str]:
    """validation.IsConfigMapKey (ConfigMap and Secret data keys)."""
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _full("[-._a-zA-Z0-9]+", value):
        errs.append(_regex_error("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                                 "[-._a-zA-Z0-9]+", "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _validate_data_keys(obj: dict[str, Any], fields: tuple[str, ...]) -> Iterator[FieldError]:
    """ValidateConfigMap / ValidateSecret (pkg/apis/core/validation/validation.go): every data key is a config
    map key, reported at data[<key>] (a Secret's stringData is merged into data before validation)."""
    keys: dict[str, str] = {}
    for name in fields:
        section = obj.get(name)
        if isinstance(section, dict):
            for key in section:
                keys.setdefault(key, "binaryData" if name == "binaryData" else "data")
    for key in sorted(keys):
        for msg in is_config_map_key(key):
            yield invalid(f"{keys[key]}[{key}]", key, msg)


def _validate_storage_class(obj: dict[str, Any]) -> Iterator[FieldError]:
    """ValidateStorageClass (pkg/apis/storage/validation): provisioner is required."""
    if not obj.get("provisioner"):
        yield required("provisioner")


# kind -> (group, name rule, extra checks). Name rules: ValidateDeploymentName / ValidateDaemonSetName
# (DNS subdomain), ValidateStatefulSetName (DNS label since v1.27, kubernetes PR #114172), ValidateServiceName
# (DNS-1035 label), ValidateNamespaceName (DNS label), ValidateRBACName (path segment); all others DNS subdomain
# (k8s.io/kubernetes v1.31 pkg/apis/*/validation).
_VALIDATORS: dict[str, tuple[str, _NameFn, Callable[[dict[str, Any]], Iterator[FieldError]] | None]] = {
    "Deployment": ("apps", is_dns1123_subdomain, lambda o: _validate_workload(o, "Deployment")),
    "ReplicaSet": ("apps", is_dns1123_subdomain, lambda o: _validate_workload(o, "ReplicaSet")),
    "DaemonSet": ("apps", is_dns1123_subdomain, lambda o: _validate_workload(o, "DaemonSet")),
    "StatefulSet": ("apps", is_dns1123_label, lambda o: _validate_workload(o, "StatefulSet")),
    "Pod": ("", is_dns1123_subdomain, lambda o: _validate_pod_spec(o.get("spec"), "spec")),
    "Service": ("", is_dns1035_label, None),
    "ConfigMap": ("", is_dns1123_subdomain, lambda o: _validate_data_keys(o, ("data", "binaryData"))),
    "Secret": ("", is_dns1123_subdomain, lambda o: _validate_data_keys(o, ("data", "stringData"))),
    "Namespace": ("", is_dns1123_label, None),
    "Node": ("", is_dns1123_subdomain, None),
    "ServiceAccount": ("", is_dns1123_subdomain, None),
    "PersistentVolumeClaim": ("", is_dns1123_subdomain, None),
    "RuntimeClass": ("node.k8s.io", is_dns1123_subdomain, _validate_runtime_class),
    "StorageClass": ("storage.k8s.io", is_dns1123_subdomain, _validate_storage_class),
    "Role": ("rbac.authorization.k8s.io", is_path_segment_name, None),
    "ClusterRole": ("rbac.authorization.k8s.io", is_path_segment_name, None),
    "RoleBinding": ("rbac.authorization.k8s.io", is_path_segment_name, None),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", is_path_segment_name, None),
}

# The OpenAPI "required" fields whose absence the hand-written 1.31 validation reports as a bare
# "<path>: Required value" (k8s.io/kubernetes v1.31 pkg/apis/core/validation/validation.go ValidateEnv,
# ValidateVolumeMounts, ValidateVolumes, validateObjectFieldSelector, validateConfigMapKeySelector,
# validateSecretKeySelector; pkg/apis/rbac/validation ValidateRoleBindingSubject). Other required fields are
# checked in other words (or not at all: StatefulSetSpec.serviceName) and are left alone.
_REQUIRED_AS_REQUIRED = {
    ("io.k8s.api.core.v1.EnvVar", "name"),
    ("io.k8s.api.core.v1.VolumeMount", "name"),
    ("io.k8s.api.core.v1.VolumeMount", "mountPath"),
    ("io.k8s.api.core.v1.Volume", "name"),
    ("io.k8s.api.core.v1.ObjectFieldSelector", "fieldPath"),
    ("io.k8s.api.core.v1.ConfigMapKeySelector", "key"),
    ("io.k8s.api.core.v1.SecretKeySelector", "key"),
    ("io.k8s.api.rbac.v1.Subject", "name"),
}


def _schema_required(value: Any, node: dict[str, Any] | None, path: str) -> Iterator[FieldError]:
    """``<path>: Required value`` for each property an OpenAPI schema requires and the object lacks."""
    name, schema = deref(node)
    if schema is None:
        return
    if is_struct(schema) and isinstance(value, dict):
        for key in schema.get("required", ()):
            if (name, key) in _REQUIRED_AS_REQUIRED and value.get(key) in (None, ""):
                yield required(f"{path}.{key}" if path else key)
        for key, sub_value in value.items():
            if key in schema["properties"]:
                yield from _schema_required(sub_value, schema["properties"][key], f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _schema_required(item, items_schema(schema), f"{path}[{index}]")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, sub_value in value.items():
            yield from _schema_required(sub_value, schema["additionalProperties"], f"{path}[{key}]")


def validate(obj: dict[str, Any], schema: dict[str, Any] | None = None, *, field_validation: str = "Ignore") -> None:
    """Raise `Invalid` when the 1.31 API server would refuse `obj` (a create or an update body, defaulted).

    Built-in kinds: decoder errors (400), then -- with ``field_validation="Strict"`` -- unknown fields (400),
    then the kind's validation (422). Unknown kinds: validated against `schema` (a CRD version's
    openAPIV3Schema) when given, else accepted.
    """
    kind = str(obj.get("kind", ""))
    name, _ = _root(obj)
    if name is None:
        if schema is not None:
            _validate_custom(obj, schema)
        return
    decoder = _decode(obj)
    if decoder.saved is not None:
        raise _cannot_be_handled(obj, decoder.saved)
    if field_validation == "Strict" and decoder.unknown:
        raise _cannot_be_handled(obj, "strict decoding error: " + ", ".join(decoder.unknown))
    group, name_fn, extra = _VALIDATORS.get(kind, (split_api_version(str(obj.get("apiVersion", "")))[0],
                                                   is_dns1123_subdomain, None))
    errors = list(_validate_object_meta(obj, name_fn))
    if extra is not None:
        errors.extend(extra(obj))
    errors.extend(_schema_required(obj, {"$ref": "#/$defs/" + name}, ""))
    if errors:
        raise invalid_error(kind, group, _name(obj), errors)


# ---------------------------------------------------------------------------------------------------------
# Custom resources: k8s.io/apiextensions-apiserver v0.31.14 pkg/apiserver/validation/validation.go
# kubeOpenAPIResultToFieldErrors, with kube-openapi's validate messages (pkg/validation/errors/schema.go).


def _openapi_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _custom_errors(value: Any, schema: dict[str, Any], path: str) -> Iterator[FieldError]:
    expected = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    actual = _openapi_type(value)
    if value is None:
        if expected and not schema.get("nullable"):
            yield FieldError("FieldValueTypeInvalid", path, go_quote("null"),
                             f"{path} in body must be of type {expected}: \"null\"")
        return
    if int_or_string:
        if actual not in ("integer", "string"):
            yield FieldError("FieldValueTypeInvalid", path, go_quote(actual),
                             f"{path} in body must be of type integer,string: {go_quote(actual)}")
        return
    if expected:
        ok = actual == expected or (expected == "number" and actual == "integer")
        if not ok:
            yield FieldError("FieldValueTypeInvalid", path, go_quote(actual),
                             f"{path} in body must be of type {expected}: {go_quote(actual)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        values = ", ".join(go_quote(v if isinstance(v, str) else json.dumps(v)) for v in schema["enum"])
        yield FieldError("FieldValueNotSupported", path, _render(value), f"supported values: {values}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                yield required(f"{path}.{key}" if path else key)
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            sub_schema = props.get(key)
            if sub_schema is None and isinstance(extra, dict):
                sub_schema = extra
            if sub_schema is not None:
                yield from _custom_errors(sub, sub_schema, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _custom_errors(item, schema["items"], f"{path}[{index}]")


def _validate_custom(obj: dict[str, Any], schema: dict[str, Any]) -> None:
    kind = str(obj.get("kind", ""))
    group = split_api_version(str(obj.get("apiVersion", "")))[0]
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k not in ("apiVersion", "kind", "metadata")}
    errors = list(_validate_object_meta(obj, is_dns1123_subdomain))
    errors.extend(_custom_errors(body, {**schema, "properties": props, "type": "object"}, ""))
    if errors:
        raise invalid_error(kind, group, _name(obj), errors)
