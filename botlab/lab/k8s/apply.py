"""Server-side apply and managed fields, as a Kubernetes 1.31 API server computes them.

A port of what decides the outcome in sigs.k8s.io/structured-merge-diff v4.4.1 (typed/merge.go, compare.go,
tofieldset.go, remove.go, merge/update.go, fieldpath/serialize*.go) and of the field-manager chain in
k8s.io/apimachinery v0.31.14 pkg/util/managedfields/internal (fieldmanager.go, skipnonapplied.go,
capmanagers.go, buildmanagerinfo.go, managedfieldsupdater.go, stripmeta.go, structuredmerge.go, conflict.go,
managedfields.go):

* an Apply merges the configuration into the live object (associative lists by their keys, atomic lists and
  maps replaced whole), gives the applier the configuration's field set, prunes what the applier applied last
  time and no longer applies (unless another manager owns it), and fails with a 409 conflict on fields other
  managers own whose value changes -- unless forced, which takes them over;
* an ordinary write gives its manager the fields it added or changed (operation ``Update``), taking them from
  the others; objects that exist without managed fields are not tracked by updates (skipnonapplied.go), and the
  first apply to such an object makes a ``before-first-apply`` manager own what was there;
* an apply that changes nothing leaves the object, and the manager's time, as they were;
* FieldsV1 is encoded as the real server does (``f:``, ``k:{...}``, ``v:``, ``i:``, ``.``), entries sorted by
  operation, time, manager.

The typed shape of built-in kinds comes from the 1.31 OpenAPI (x-kubernetes-list-type / -list-map-keys /
-map-type, else the patch strategy, else atomic: kube-openapi pkg/schemaconv/smd.go), and the Go zero values
that a typed round trip adds (``status: {}``, ``resources: {}``, ``creationTimestamp: null``) from
`_ZERO_FIELDS`. Custom resources: maps are granular with named fields, lists atomic (no CRD schema here).

Not done: the kubectl client-side-apply upgrade path (lastappliedmanager.go / lastappliedupdater.go), version
conversion between managers of different apiVersions (one version per kind here), subresources.
"""

from __future__ import annotations

import copy
import functools
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from botlab.lab.k8s import validation as v

# ---------------------------------------------------------------------------------------------------------
# Errors.


class ApplyConflict(Exception):
    """409 Conflict: the apply changes fields other managers own (apierrors.NewApplyConflict).

    ``causes`` are StatusCause dicts as on the wire: ``{"reason": "FieldManagerConflict", "message": "conflict
    with \\"kubectl-client-side-apply\\" using apps/v1", "field": ".spec.replicas"}``.
    """

    status = 409
    reason = "Conflict"

    def __init__(self, message: str, causes: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.causes = causes


class ApplyError(Exception):
    """Other refusals of an apply: 400 (wrong apiVersion, managedFields set in the configuration) or 500 (a
    configuration the typed converter rejects: ``... .spec.foo: field not declared in schema``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = {400: "BadRequest"}.get(status, "")


# ---------------------------------------------------------------------------------------------------------
# Shapes: what structured-merge-diff's schema says about a node (kube-openapi pkg/schemaconv/smd.go).

_SCALAR_DEFS = (v.QUANTITY, v.INT_OR_STRING, *v.TIMES)

# Defaults of associative-list key fields that the applied configuration may omit: the "+default" markers of
# the 1.31 types (kubernetes/api v0.31.14 core/v1/types.go:2194 ContainerPort.protocol, :5579
# ServicePort.protocol), which SMD uses (typed/helpers.go getAssociativeKeyDefault).
_KEY_DEFAULTS = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
}


class Shape:
    """A node's type: a scalar, a list (atomic, a set, or a map keyed by fields), a map (a struct with named
    fields, or string-keyed values; atomic or granular)."""

    def __init__(
        self,
        kind: str,
        *,
        atomic: bool = False,
        keys: tuple[str, ...] = (),
        associative: bool = False,
        elem: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        named: bool = False,
        key_defaults: dict[str, Any] | None = None,
        deduced: bool = False,
        scalar: str = "untyped",
        open_fields: bool = False,
    ) -> None:
        self.kind = kind
        self.atomic = atomic
        self.keys = keys
        self.associative = associative
        self.elem = elem
        self.fields = fields
        self.named = named  # keys are struct fields (FindField succeeds)
        self.key_defaults = key_defaults or {}
        self.deduced = deduced
        self.scalar = scalar  # numeric | string | boolean | untyped
        self.open_fields = open_fields  # a struct whose other keys are named fields of deduced type (CR roots)

    def field(self, key: str) -> Shape:
        """The shape of a map entry / struct field."""
        if self.deduced:
            return DEDUCED
        if self.fields is not None and key in self.fields:
            return shape_of(self.fields[key])
        if self.fields is not None and self.elem is None:
            return DEDUCED
        return shape_of(self.elem)

    def item(self) -> Shape:
        if self.deduced:
            return DEDUCED  # resolved against each item
        return shape_of(self.elem)

    def has_field(self, key: str) -> bool:
        return self.deduced or self.open_fields or (self.fields is not None and key in self.fields)


DEDUCED = Shape("map", named=True, deduced=True)
_SCALAR = Shape("scalar")
_SCALARS = {name: Shape("scalar", scalar=name) for name in ("numeric", "string", "boolean")}
_DEDUCED_LIST = Shape("list", atomic=True, deduced=True)
# Shapes by schema node. Keyed by id() for speed, so each entry keeps its node (an id is only
# unique while its object lives: a collected node's id may be reused by another dict).
_SHAPES: dict[int, tuple[dict[str, Any], Shape]] = {}


def _resolve(shape: Shape, *values: Any) -> Shape:
    """A deduced (schemaless) node takes the shape of its value: granular map, atomic list or scalar."""
    if not shape.deduced:
        return shape
    present = [x for x in values if x is not _ABSENT and x is not None]
    if present and all(isinstance(x, dict) for x in present):
        return DEDUCED
    if present and all(isinstance(x, list) for x in present):
        return _DEDUCED_LIST
    return _SCALAR if present else DEDUCED


def shape_of(node: dict[str, Any] | None) -> Shape:
    if node is None:
        return DEDUCED
    cached = _SHAPES.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    shape = _compute_shape(node)
    _SHAPES[id(node)] = (node, shape)
    return shape


def _compute_shape(node: dict[str, Any]) -> Shape:
    name, schema = v.deref(node)
    if name in _SCALAR_DEFS:
        return _SCALAR
    if schema is None:
        return DEDUCED
    ext = {k: val for k, val in schema.items() if k.startswith("x-kubernetes-")}
    ext.update({k: val for k, val in node.items() if k.startswith("x-kubernetes-")})
    types = v.schema_types(schema)
    if "array" in types:
        elem = v.items_schema(schema)
        list_type = ext.get("x-kubernetes-list-type")
        strategy = ext.get("x-kubernetes-patch-strategy")
        keys: tuple[str, ...] = ()
        if list_type == "map":
            keys = tuple(ext.get("x-kubernetes-list-map-keys") or ())
            associative = True
        elif list_type == "set":
            associative = True
        elif list_type is None and strategy in ("merge", "merge,retainKeys"):
            key = ext.get("x-kubernetes-patch-merge-key")
            keys = (key,) if key else ()
            associative = True
        else:
            associative = False
        item_def, _ = v.deref(elem)
        defaults = {k: d for (defn, k), d in _KEY_DEFAULTS.items() if defn == item_def}
        return Shape("list", atomic=not associative, associative=associative, keys=keys, elem=elem,
                     key_defaults=defaults)
    if "object" in types:
        atomic = ext.get("x-kubernetes-map-type") == "atomic"
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is not None:
            return Shape("map", atomic=atomic, fields=props, named=True,
                         elem=extra if isinstance(extra, dict) else None)
        if isinstance(extra, dict):
            return Shape("map", atomic=atomic, elem=extra)
        return Shape("map", atomic=atomic, named=True, deduced=not atomic)
    if "integer" in types or "number" in types:
        return _SCALARS["numeric"]
    if "string" in types:
        return _SCALARS["string"]
    if "boolean" in types:
        return _SCALARS["boolean"]
    return _SCALAR


_OBJECT_META: dict[str, Any] = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


@functools.cache
def _definition_ref(name: str) -> dict[str, Any]:
    """One reference node per definition, so the shape cache sees the same node each time."""
    return {"$ref": "#/$defs/" + name}


def root_shape(obj: dict[str, Any]) -> Shape:
    name = v.definition_name(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if name is not None:
        return shape_of(_definition_ref(name))
    return Shape("map", fields={"metadata": _OBJECT_META}, named=True, open_fields=True)


# ---------------------------------------------------------------------------------------------------------
# Values and path elements (sigs.k8s.io/structured-merge-diff v4.4.1 value/, fieldpath/).

_ABSENT: Any = object()


def _canon(value: Any) -> str:
    """The compact JSON SMD writes for a value in a path element (jsoniter, HTML-escaped)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


PE = tuple[Any, ...]  # ("f", name) | ("k", ((name, canon), ...)) | ("v", canon) | ("i", index)
Path = tuple[PE, ...]


def _value_key(value: Any) -> tuple[Any, ...]:
    """value.Compare's total order: numbers, strings, bools, lists, maps, null."""
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, (int, float)):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_key(x) for x in value))
    if isinstance(value, dict):
        return (4, tuple((k, _value_key(value[k])) for k in sorted(value)))
    return (5,)


def _pe_key(pe: PE) -> tuple[Any, ...]:
    """PathElement.Compare: field names < keys < values < indices."""
    tag = pe[0]
    if tag == "f":
        return (0, pe[1])
    if tag == "k":
        return (1, tuple((name, _value_key(json.loads(c))) for name, c in pe[1]))
    if tag == "v":
        return (2, _value_key(json.loads(pe[1])))
    return (3, pe[1])


def _to_string(value: Any) -> str:
    """value.ToString."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return v.go_number(value)
    if isinstance(value, str):
        return v.go_quote(value)
    if isinstance(value, list):
        return "[" + ",".join(_to_string(x) for x in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_to_string(value[k])}" for k in value)
    return str(value)


def pe_string(pe: PE) -> str:
    """PathElement.String(): .name, [key=value,...], [=value], [index]."""
    tag = pe[0]
    if tag == "f":
        return "." + pe[1]
    if tag == "k":
        return "[" + ",".join(f"{name}={_to_string(json.loads(c))}" for name, c in pe[1]) + "]"
    if tag == "v":
        return "[=" + _to_string(json.loads(pe[1])) + "]"
    return f"[{pe[1]}]"


def path_string(path: Path) -> str:
    return "".join(pe_string(pe) for pe in path)


def _pe_field_key(pe: PE) -> str:
    """serializePathElement: the FieldsV1 key of a path element."""
    tag = pe[0]
    if tag == "f":
        return "f:" + pe[1]
    if tag == "k":
        return "k:{" + ",".join(f"{_canon(name)}:{c}" for name, c in pe[1]) + "}"
    if tag == "v":
        return "v:" + pe[1]
    return f"i:{pe[1]}"


def _parse_pe(key: str) -> PE:
    """DeserializePathElement."""
    tag, _, rest = key.partition(":")
    if tag == "f":
        return ("f", rest)
    if tag == "k":
        fields = json.loads(rest)
        return ("k", tuple(sorted((name, _canon(val)) for name, val in fields.items())))
    if tag == "v":
        return ("v", _canon(json.loads(rest)))
    if tag == "i":
        return ("i", int(rest))
    raise ValueError(f"unknown path element type: {key}")


def _equal(a: Any, b: Any) -> bool:
    """value.Equals: deep, numbers compared numerically, bools only with bools."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


class _TypedError(Exception):
    """A value the typed converter rejects (typed/validate.go, typed/helpers.go messages)."""


def _item_pe(shape: Shape, item: Any) -> PE:
    """listItemToPathElement."""
    if shape.keys:
        if item is None:
            raise _TypedError("associative list with keys may not have a null element")
        if not isinstance(item, dict):
            raise _TypedError("associative list with keys may not have non-map elements")
        fields = []
        for key in shape.keys:
            if key in item:
                fields.append((key, _canon(item[key])))
            elif key in shape.key_defaults:
                fields.append((key, _canon(shape.key_defaults[key])))
            else:
                raise _TypedError(
                    f'associative list with keys has an element that omits key field "{key}" (and doesn\'t have '
                    "default value)"
                )
        return ("k", tuple(sorted(fields)))
    if isinstance(item, dict):
        raise _TypedError("associative list without keys has an element that's a map type")
    if isinstance(item, list):
        raise _TypedError("not supported: associative list with lists as elements")
    if item is None:
        raise _TypedError("associative list without keys has an element that's an explicit null")
    return ("v", _canon(item))


# ---------------------------------------------------------------------------------------------------------
# Field sets: a set of paths. The tree form (members and children) only matters for encoding and ordering.


def _split(paths: Iterable[Path]) -> tuple[set[PE], dict[PE, set[Path]]]:
    members: set[PE] = set()
    children: dict[PE, set[Path]] = defaultdict(set)
    for path in paths:
        if len(path) == 1:
            members.add(path[0])
        elif path:
            children[path[0]].add(path[1:])
    return members, children


def iterate(paths: Iterable[Path]) -> Iterator[Path]:
    """Set.Iterate: at each level the members in order, then each child's paths in order."""
    members, children = _split(paths)
    for pe in sorted(members, key=_pe_key):
        yield (pe,)
    for pe in sorted(children, key=_pe_key):
        for sub in iterate(children[pe]):
            yield (pe, *sub)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """Set.ToJSON (fieldpath/serialize.go emitContentsV1) as a dict in the serialized key order."""
    members, children = _split(paths)
    out: dict[str, Any] = {}
    for pe in sorted(members | set(children), key=_pe_key):
        if pe in children:
            inner: dict[str, Any] = {".": {}} if pe in members else {}
            inner.update(to_fields_v1(children[pe]))
            out[_pe_field_key(pe)] = inner
        else:
            out[_pe_field_key(pe)] = {}
    return out


def from_fields_v1(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    """Set.FromJSON."""
    paths: set[Path] = set()
    for key, sub in fields.items():
        if key == ".":
            if prefix:
                paths.add(prefix)
            continue
        path = (*prefix, _parse_pe(key))
        if isinstance(sub, dict) and sub:
            paths |= from_fields_v1(sub, path)
        else:
            paths.add(path)
    return paths


def _recursive_difference(paths: set[Path], other: set[Path]) -> set[Path]:
    """Set.RecursiveDifference: drop the paths of `other` and everything under them."""
    if not other:
        return set(paths)
    return {p for p in paths if not any(p[:i] in other for i in range(1, len(p) + 1))}


def _shape_at(root: Shape, path: Path) -> Shape | None:
    shape: Shape | None = root
    for pe in path:
        if shape is None:
            return None
        if pe[0] == "f":
            shape = shape.field(pe[1]) if shape.kind == "map" else None
        else:
            shape = shape.item() if shape.kind == "list" else None
    return shape


def _ensure_named_fields(paths: set[Path], root: Shape) -> set[Path]:
    """Set.EnsureNamedFieldsAreMembers: a path under struct field a.b also makes a.b itself a member."""
    out = set(paths)
    for path in paths:
        shape: Shape | None = root
        for i, pe in enumerate(path[:-1]):
            if shape is None:
                break
            if pe[0] == "f" and shape.kind == "map" and shape.has_field(pe[1]):
                out.add(path[: i + 1])
            shape = _shape_at(shape, (pe,))
    return out


# ---------------------------------------------------------------------------------------------------------
# Walkers over a value and its shape.


def _is_empty(value: Any) -> bool:
    return value is _ABSENT or value is None or (isinstance(value, (dict, list)) and not value)


def to_field_set(value: Any, shape: Shape, path: Path = ()) -> set[Path]:
    """TypedValue.ToFieldSet (typed/tofieldset.go)."""
    out: set[Path] = set()
    _field_set(value, shape, path, out)
    return out


def _field_set(value: Any, shape: Shape, path: Path, out: set[Path]) -> None:
    shape = _resolve(shape, value)
    if shape.kind == "list" and (isinstance(value, list) or value is None):
        if shape.atomic:
            out.add(path)
            return
        if not value:
            return
        seen: set[PE] = set()
        duplicates: set[PE] = set()
        pes = []
        for item in value:
            pe = _item_pe(shape, item)
            pes.append(pe)
            if pe in seen and pe not in duplicates:
                out.add((*path, pe))
                duplicates.add(pe)
            seen.add(pe)
        for pe, item in zip(pes, value, strict=True):
            if pe in duplicates:
                continue
            _field_set(item, shape.item(), (*path, pe), out)
            out.add((*path, pe))
        return
    if shape.kind == "map" and (isinstance(value, dict) or value is None):
        if shape.atomic:
            out.add(path)
            return
        for key, sub in (value or {}).items():
            child = (*path, ("f", key))
            _field_set(sub, shape.field(key), child, out)
            if sub is None or (isinstance(sub, dict) and not sub) or not shape.has_field(key):
                out.add(child)
        return
    out.add(path)


def _index_items(shape: Shape, items: list[Any] | None, allow_duplicates: bool) -> tuple[list[PE], dict[PE, Any]]:
    pes: list[PE] = []
    observed: dict[PE, Any] = {}
    for i, item in enumerate(items or ()):
        try:
            pe = _item_pe(shape, item)
        except _TypedError as exc:
            raise _TypedError(f"element {i}: {exc}") from None
        if pe in observed:
            if not allow_duplicates:
                raise _TypedError(f"duplicate entries for key {pe_string(pe)}")
            observed[pe] = None
        else:
            observed[pe] = item
        pes.append(pe)
    return pes, observed


def merge(lhs: Any, rhs: Any, shape: Shape) -> Any:
    """TypedValue.Merge with ruleKeepRHS (typed/merge.go): `rhs` (the applied configuration) wins on leaves,
    granular maps and associative lists are merged item by item. Returns _ABSENT for "no value"."""
    if rhs is _ABSENT:
        return copy.deepcopy(lhs)
    if lhs is _ABSENT:
        return copy.deepcopy(rhs)
    shape = _resolve(shape, lhs, rhs)
    if shape.kind == "list" and _list_like(lhs) and _list_like(rhs):
        if shape.atomic or (not lhs and not rhs):
            return copy.deepcopy(rhs)
        return _merge_list(lhs or [], rhs or [], shape)
    if shape.kind == "map" and _map_like(lhs) and _map_like(rhs):
        if shape.atomic or (not lhs and not rhs):
            return copy.deepcopy(rhs)
        out: dict[str, Any] = {}
        left, right = lhs or {}, rhs or {}
        for key in [*left, *[k for k in right if k not in left]]:
            merged = merge(left.get(key, _ABSENT), right.get(key, _ABSENT), shape.field(key))
            if merged is not _ABSENT:
                out[key] = merged
        return out if out else _ABSENT
    return copy.deepcopy(rhs)


def _list_like(value: Any) -> bool:
    return value is None or isinstance(value, list)


def _map_like(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _merge_list(lhs: list[Any], rhs: list[Any], shape: Shape) -> Any:
    """mergingWalker.visitListItems: the result keeps the configuration's order for its items and slots the
    live-only items in where they were."""
    rhs_pes, observed_rhs = _index_items(shape, rhs, False)
    lhs_pes, observed_lhs = _index_items(shape, lhs, True)
    shared = [pe for pe in rhs_pes if pe in observed_lhs]
    next_shared = shared.pop(0) if shared else None
    merged_rhs: set[PE] = set()
    out: list[Any] = []
    item = shape.item()
    li = ri = 0
    while li < len(lhs_pes) or ri < len(rhs_pes):
        if li < len(lhs_pes) and ri < len(rhs_pes):
            pe = lhs_pes[li]
            if pe == rhs_pes[ri]:
                merged_rhs.add(pe)
                result = merge(observed_lhs[pe], observed_rhs[pe], item)
                if result is not _ABSENT:
                    out.append(result)
                li += 1
                ri += 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in observed_rhs and next_shared is not None and next_shared != lhs_pes[li]:
                li += 1
                continue
        if li < len(lhs_pes):
            pe = lhs_pes[li]
            if pe not in observed_rhs:
                result = merge(lhs[li], _ABSENT, item)
                if result is not _ABSENT:
                    out.append(result)
                li += 1
                continue
            if pe in merged_rhs:
                li += 1
        if ri < len(rhs_pes):
            pe = rhs_pes[ri]
            merged_rhs.add(pe)
            result = merge(observed_lhs.get(pe, _ABSENT), observed_rhs[pe], item)
            if result is not _ABSENT:
                out.append(result)
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop(0) if shared else None
    return out if out else _ABSENT


class Comparison:
    """typed.Comparison: the paths removed, modified and added between two values."""

    def __init__(self) -> None:
        self.removed: set[Path] = set()
        self.modified: set[Path] = set()
        self.added: set[Path] = set()

    def exclude(self, ignored: set[Path]) -> None:
        self.removed = _recursive_difference(self.removed, ignored)
        self.modified = _recursive_difference(self.modified, ignored)
        self.added = _recursive_difference(self.added, ignored)

    def is_same(self) -> bool:
        return not (self.removed or self.modified or self.added)


def compare(lhs: Any, rhs: Any, shape: Shape) -> Comparison:
    """TypedValue.Compare (typed/compare.go)."""
    result = Comparison()
    _compare(lhs, rhs, shape, (), result)
    return result


def _leaf(lhs: Any, rhs: Any, path: Path, result: Comparison) -> None:
    if lhs is _ABSENT:
        result.added.add(path)
    elif rhs is _ABSENT:
        result.removed.add(path)
    elif not _equal(lhs, rhs):
        result.modified.add(path)


def _granular(lhs: Any, rhs: Any, shape: Shape) -> bool:
    """Whether compare/merge descend into the node rather than treating it as one leaf: a granular map or an
    associative list, with both sides of that kind and not both empty (emptyPromoteToLeaf)."""
    present = [x for x in (lhs, rhs) if x is not _ABSENT]
    if shape.atomic or all(not x for x in present):
        return False
    if shape.kind == "list":
        return all(_list_like(x) for x in present)
    if shape.kind == "map":
        return all(_map_like(x) for x in present)
    return False


def _compare(lhs: Any, rhs: Any, shape: Shape, path: Path, result: Comparison) -> None:
    shape = _resolve(shape, lhs, rhs)
    if not _granular(lhs, rhs, shape):
        _leaf(lhs, rhs, path, result)
        return
    if shape.kind == "list":
        _compare_list([] if lhs is _ABSENT else lhs or [], [] if rhs is _ABSENT else rhs or [], shape, path, result)
    else:
        left = {} if lhs is _ABSENT else lhs or {}
        right = {} if rhs is _ABSENT else rhs or {}
        for key in [*left, *[k for k in right if k not in left]]:
            _compare(left.get(key, _ABSENT), right.get(key, _ABSENT), shape.field(key), (*path, ("f", key)), result)
    if lhs is _ABSENT:
        result.added.add(path)
    elif rhs is _ABSENT:
        result.removed.add(path)


def _compare_list(lhs: list[Any], rhs: list[Any], shape: Shape, path: Path, result: Comparison) -> None:
    order: list[PE] = []
    left: dict[PE, list[Any]] = {}
    right: dict[PE, list[Any]] = {}
    for item in lhs:
        pe = _item_pe(shape, item)
        if pe not in left:
            order.append(pe)
        left.setdefault(pe, []).append(item)
    for item in rhs:
        pe = _item_pe(shape, item)
        if pe not in right and pe not in left:
            order.append(pe)
        right.setdefault(pe, []).append(item)
    item_shape = shape.item()
    for pe in order:
        lefts, rights = left.get(pe, []), right.get(pe, [])
        child = (*path, pe)
        if len(lefts) <= 1 and len(rights) <= 1:
            _compare(lefts[0] if lefts else _ABSENT, rights[0] if rights else _ABSENT, item_shape, child, result)
        elif len(lefts) >= 2 and len(rights) >= 2:
            if len(lefts) != len(rights) or not all(_equal(a, b) for a, b in zip(lefts, rights, strict=True)):
                result.modified.add(child)
        elif len(lefts) >= 2:
            if rights:
                _compare(_ABSENT, rights[0], item_shape, child, result)
            result.removed.add(child)
        else:
            if lefts:
                _compare(lefts[0], _ABSENT, item_shape, child, result)
            result.added.add(child)


def remove_items(value: Any, paths: set[Path], shape: Shape) -> Any:
    """TypedValue.RemoveItems (typed/remove.go): drop each path of the set, with everything under it. A map or
    list left empty by the removal is dropped too (the real walker leaves a null that the typed object omits)."""
    if not paths:
        return value
    shape = _resolve(shape, value)
    if shape.kind == "list" and isinstance(value, list):
        if not value or shape.atomic:
            return _ABSENT
        out_list = []
        for item in value:
            pe = _item_pe(shape, item)
            if (pe,) in paths:
                continue
            sub = {p[1:] for p in paths if p[0] == pe and len(p) > 1}
            if sub:
                item = remove_items(item, sub, shape.item())
                if item is _ABSENT:
                    item = None
            out_list.append(item)
        return out_list if out_list else _ABSENT
    if shape.kind == "map" and isinstance(value, dict):
        if not value or shape.atomic:
            return _ABSENT
        out: dict[str, Any] = {}
        for key, sub_value in value.items():
            pe = ("f", key)
            if (pe,) in paths:
                continue
            sub = {p[1:] for p in paths if p[0] == pe and len(p) > 1}
            if sub:
                sub_value = remove_items(sub_value, sub, shape.field(key))
                if sub_value is _ABSENT:
                    continue
            out[key] = sub_value
        return out if out else _ABSENT
    return value


def _validate_config(value: Any, shape: Shape, path: str, errors: list[str]) -> None:
    """TypedValue validation of the applied configuration (typed/validate.go): unknown fields, wrong kinds,
    duplicate or keyless list items."""
    if value is None:
        return
    shape = _resolve(shape, value)
    if shape.kind == "scalar":
        wrapped = f"&{{{v.go_v(value)}}}"
        if shape.scalar == "numeric" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            go_type = {str: "string", bool: "bool", dict: "map[string]interface {}", list: "[]interface {}"}
            errors.append(f"{path}: expected numeric (int or float), got {go_type[type(value)]}")
        elif shape.scalar == "string" and not isinstance(value, str):
            errors.append(f"{path}: expected string, got &value.valueUnstructured{{Value:{v.go_v(value)}}}")
        elif shape.scalar == "boolean" and not isinstance(value, bool):
            errors.append(f"{path}: expected boolean, got {wrapped}")
        elif isinstance(value, (dict, list)):
            errors.append(f"{path}: expected any scalar, got {wrapped}")
        return
    if shape.kind == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected list, got &{{{v.go_v(value)}}}")
            return
        if shape.associative:
            try:
                _index_items(shape, value, False)
            except _TypedError as exc:
                errors.append(f"{path}: {exc}")
                return
        for item in value:
            _validate_config(item, shape.item(), path + (pe_string(_item_pe(shape, item)) if shape.associative
                                                         else ""), errors)
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected map, got &{{{v.go_v(value)}}}")
        return
    if shape.atomic:
        return
    for key, sub in value.items():
        if shape.fields is not None and key not in shape.fields and shape.elem is None and not shape.has_field(key):
            errors.append(f"{path}.{key}: field not declared in schema")
            break  # the real walker stops visiting this map at its first unknown field
        _validate_config(sub, shape.field(key), f"{path}.{key}", errors)


# ---------------------------------------------------------------------------------------------------------
# Typed round trip: the fields a Go struct's zero value marshals (non-omitempty fields, and struct-typed fields,
# which omitempty does not omit), generated from the json tags of kubernetes/api v0.31.14 */types.go and
# kubernetes/apimachinery v0.31.14 pkg/apis/meta/v1/types.go for the structs reachable from the kinds botlab
# uses. "@def" is a nested struct, "..." an inlined one; None marshals as null (a nil pointer, slice or map
# without omitempty, or a zero metav1.Time). Keys are OpenAPI definitions without "io.k8s.api." (and
# "io.k8s.apimachinery.pkg.apis.meta.v1." written "meta.v1.").
_ZERO_FIELDS: dict[str, dict[str, Any]] = {
    "apps.v1.DaemonSet": {"metadata": "@meta.v1.ObjectMeta", "spec": "@apps.v1.DaemonSetSpec", "status": "@apps.v1.DaemonSetStatus"},  # noqa: E501
    "apps.v1.DaemonSetCondition": {"type": "", "status": "", "lastTransitionTime": None},
    "apps.v1.DaemonSetSpec": {"selector": None, "template": "@core.v1.PodTemplateSpec", "updateStrategy": "@apps.v1.DaemonSetUpdateStrategy"},  # noqa: E501
    "apps.v1.DaemonSetStatus": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0},  # noqa: E501
    "apps.v1.Deployment": {"metadata": "@meta.v1.ObjectMeta", "spec": "@apps.v1.DeploymentSpec", "status": "@apps.v1.DeploymentStatus"},  # noqa: E501
    "apps.v1.DeploymentCondition": {"type": "", "status": "", "lastUpdateTime": None, "lastTransitionTime": None},
    "apps.v1.DeploymentSpec": {"selector": None, "template": "@core.v1.PodTemplateSpec", "strategy": "@apps.v1.DeploymentStrategy"},  # noqa: E501
    "apps.v1.StatefulSet": {"metadata": "@meta.v1.ObjectMeta", "spec": "@apps.v1.StatefulSetSpec", "status": "@apps.v1.StatefulSetStatus"},  # noqa: E501
    "apps.v1.StatefulSetCondition": {"type": "", "status": "", "lastTransitionTime": None},
    "apps.v1.StatefulSetOrdinals": {"start": 0},
    "apps.v1.StatefulSetSpec": {"selector": None, "template": "@core.v1.PodTemplateSpec", "serviceName": "", "updateStrategy": "@apps.v1.StatefulSetUpdateStrategy"},  # noqa: E501
    "apps.v1.StatefulSetStatus": {"replicas": 0, "availableReplicas": 0},
    "core.v1.AWSElasticBlockStoreVolumeSource": {"volumeID": ""},
    "core.v1.AppArmorProfile": {"type": ""},
    "core.v1.AttachedVolume": {"name": "", "devicePath": ""},
    "core.v1.AzureDiskVolumeSource": {"diskName": "", "diskURI": ""},
    "core.v1.AzureFileVolumeSource": {"secretName": "", "shareName": ""},
    "core.v1.CSIVolumeSource": {"driver": ""},
    "core.v1.CephFSVolumeSource": {"monitors": None},
    "core.v1.CinderVolumeSource": {"volumeID": ""},
    "core.v1.ClusterTrustBundleProjection": {"path": ""},
    "core.v1.ConfigMap": {"metadata": "@meta.v1.ObjectMeta"},
    "core.v1.ConfigMapEnvSource": {"...": "core.v1.LocalObjectReference"},
    "core.v1.ConfigMapKeySelector": {"...": "core.v1.LocalObjectReference", "key": ""},
    "core.v1.ConfigMapNodeConfigSource": {"namespace": "", "name": "", "kubeletConfigKey": ""},
    "core.v1.ConfigMapProjection": {"...": "core.v1.LocalObjectReference"},
    "core.v1.ConfigMapVolumeSource": {"...": "core.v1.LocalObjectReference"},
    "core.v1.Container": {"name": "", "resources": "@core.v1.ResourceRequirements"},
    "core.v1.ContainerImage": {"names": None},
    "core.v1.ContainerPort": {"containerPort": 0},
    "core.v1.ContainerResizePolicy": {"resourceName": "", "restartPolicy": ""},
    "core.v1.ContainerStateRunning": {"startedAt": None},
    "core.v1.ContainerStateTerminated": {"exitCode": 0, "startedAt": None, "finishedAt": None},
    "core.v1.ContainerStatus": {"name": "", "state": "@core.v1.ContainerState", "lastState": "@core.v1.ContainerState", "ready": False, "restartCount": 0, "image": "", "imageID": ""},  # noqa: E501
    "core.v1.DaemonEndpoint": {"Port": 0},
    "core.v1.DownwardAPIVolumeFile": {"path": ""},
    "core.v1.EnvVar": {"name": ""},
    "core.v1.EphemeralContainer": {"...": "core.v1.EphemeralContainerCommon"},
    "core.v1.EphemeralContainerCommon": {"name": "", "resources": "@core.v1.ResourceRequirements"},
    "core.v1.FlexVolumeSource": {"driver": ""},
    "core.v1.GCEPersistentDiskVolumeSource": {"pdName": ""},
    "core.v1.GRPCAction": {"port": 0, "service": None},
    "core.v1.GitRepoVolumeSource": {"repository": ""},
    "core.v1.GlusterfsVolumeSource": {"endpoints": "", "path": ""},
    "core.v1.HTTPGetAction": {"port": 0},
    "core.v1.HTTPHeader": {"name": "", "value": ""},
    "core.v1.HostAlias": {"ip": ""},
    "core.v1.HostIP": {"ip": ""},
    "core.v1.HostPathVolumeSource": {"path": ""},
    "core.v1.ISCSIVolumeSource": {"targetPortal": "", "iqn": "", "lun": 0},
    "core.v1.KeyToPath": {"key": "", "path": ""},
    "core.v1.LinuxContainerUser": {"uid": 0, "gid": 0},
    "core.v1.ModifyVolumeStatus": {"status": ""},
    "core.v1.NFSVolumeSource": {"server": "", "path": ""},
    "core.v1.Namespace": {"metadata": "@meta.v1.ObjectMeta", "spec": "@core.v1.NamespaceSpec", "status": "@core.v1.NamespaceStatus"},  # noqa: E501
    "core.v1.NamespaceCondition": {"type": "", "status": "", "lastTransitionTime": None},
    "core.v1.Node": {"metadata": "@meta.v1.ObjectMeta", "spec": "@core.v1.NodeSpec", "status": "@core.v1.NodeStatus"},
    "core.v1.NodeAddress": {"type": "", "address": ""},
    "core.v1.NodeCondition": {"type": "", "status": "", "lastHeartbeatTime": None, "lastTransitionTime": None},
    "core.v1.NodeDaemonEndpoints": {"kubeletEndpoint": "@core.v1.DaemonEndpoint"},
    "core.v1.NodeRuntimeHandler": {"name": ""},
    "core.v1.NodeSelector": {"nodeSelectorTerms": None},
    "core.v1.NodeSelectorRequirement": {"key": "", "operator": ""},
    "core.v1.NodeStatus": {"daemonEndpoints": "@core.v1.NodeDaemonEndpoints", "nodeInfo": "@core.v1.NodeSystemInfo"},
    "core.v1.NodeSystemInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "", "containerRuntimeVersion": "", "kubeletVersion": "", "kubeProxyVersion": "", "operatingSystem": "", "architecture": ""},  # noqa: E501
    "core.v1.ObjectFieldSelector": {"fieldPath": ""},
    "core.v1.PersistentVolumeClaim": {"metadata": "@meta.v1.ObjectMeta", "spec": "@core.v1.PersistentVolumeClaimSpec", "status": "@core.v1.PersistentVolumeClaimStatus"},  # noqa: E501
    "core.v1.PersistentVolumeClaimCondition": {"type": "", "status": "", "lastProbeTime": None, "lastTransitionTime": None},  # noqa: E501
    "core.v1.PersistentVolumeClaimSpec": {"resources": "@core.v1.VolumeResourceRequirements"},
    "core.v1.PersistentVolumeClaimTemplate": {"metadata": "@meta.v1.ObjectMeta", "spec": "@core.v1.PersistentVolumeClaimSpec"},  # noqa: E501
    "core.v1.PersistentVolumeClaimVolumeSource": {"claimName": ""},
    "core.v1.PhotonPersistentDiskVolumeSource": {"pdID": ""},
    "core.v1.Pod": {"metadata": "@meta.v1.ObjectMeta", "spec": "@core.v1.PodSpec", "status": "@core.v1.PodStatus"},
    "core.v1.PodAffinityTerm": {"topologyKey": ""},
    "core.v1.PodCondition": {"type": "", "status": "", "lastProbeTime": None, "lastTransitionTime": None},
    "core.v1.PodIP": {"ip": ""},
    "core.v1.PodOS": {"name": ""},
    "core.v1.PodReadinessGate": {"conditionType": ""},
    "core.v1.PodResourceClaim": {"name": ""},
    "core.v1.PodResourceClaimStatus": {"name": ""},
    "core.v1.PodSchedulingGate": {"name": ""},
    "core.v1.PodSpec": {"containers": None},
    "core.v1.PodTemplateSpec": {"metadata": "@meta.v1.ObjectMeta", "spec": "@core.v1.PodSpec"},
    "core.v1.PortStatus": {"port": 0, "protocol": ""},
    "core.v1.PortworxVolumeSource": {"volumeID": ""},
    "core.v1.PreferredSchedulingTerm": {"weight": 0, "preference": "@core.v1.NodeSelectorTerm"},
    "core.v1.Probe": {"...": "core.v1.ProbeHandler"},
    "core.v1.ProjectedVolumeSource": {"sources": None},
    "core.v1.QuobyteVolumeSource": {"registry": "", "volume": ""},
    "core.v1.RBDVolumeSource": {"monitors": None, "image": ""},
    "core.v1.ResourceClaim": {"name": ""},
    "core.v1.ResourceFieldSelector": {"resource": "", "divisor": '0'},
    "core.v1.ResourceHealth": {"resourceID": ""},
    "core.v1.ResourceStatus": {"name": ""},
    "core.v1.ScaleIOVolumeSource": {"gateway": "", "system": "", "secretRef": None},
    "core.v1.SeccompProfile": {"type": ""},
    "core.v1.Secret": {"metadata": "@meta.v1.ObjectMeta"},
    "core.v1.SecretEnvSource": {"...": "core.v1.LocalObjectReference"},
    "core.v1.SecretKeySelector": {"...": "core.v1.LocalObjectReference", "key": ""},
    "core.v1.SecretProjection": {"...": "core.v1.LocalObjectReference"},
    "core.v1.Service": {"metadata": "@meta.v1.ObjectMeta", "spec": "@core.v1.ServiceSpec", "status": "@core.v1.ServiceStatus"},  # noqa: E501
    "core.v1.ServiceAccount": {"metadata": "@meta.v1.ObjectMeta"},
    "core.v1.ServiceAccountTokenProjection": {"path": ""},
    "core.v1.ServicePort": {"port": 0, "targetPort": 0},
    "core.v1.ServiceStatus": {"loadBalancer": "@core.v1.LoadBalancerStatus"},
    "core.v1.SleepAction": {"seconds": 0},
    "core.v1.Sysctl": {"name": "", "value": ""},
    "core.v1.TCPSocketAction": {"port": 0},
    "core.v1.Taint": {"key": "", "effect": ""},
    "core.v1.TopologySelectorLabelRequirement": {"key": "", "values": None},
    "core.v1.TopologySpreadConstraint": {"maxSkew": 0, "topologyKey": "", "whenUnsatisfiable": ""},
    "core.v1.TypedLocalObjectReference": {"apiGroup": None, "kind": "", "name": ""},
    "core.v1.TypedObjectReference": {"apiGroup": None, "kind": "", "name": ""},
    "core.v1.Volume": {"name": "", "...": "core.v1.VolumeSource"},
    "core.v1.VolumeDevice": {"name": "", "devicePath": ""},
    "core.v1.VolumeMount": {"name": "", "mountPath": ""},
    "core.v1.VolumeMountStatus": {"name": "", "mountPath": ""},
    "core.v1.VsphereVirtualDiskVolumeSource": {"volumePath": ""},
    "core.v1.WeightedPodAffinityTerm": {"weight": 0, "podAffinityTerm": "@core.v1.PodAffinityTerm"},
    "node.v1.RuntimeClass": {"metadata": "@meta.v1.ObjectMeta", "handler": ""},
    "rbac.v1.ClusterRole": {"metadata": "@meta.v1.ObjectMeta", "rules": None},
    "rbac.v1.ClusterRoleBinding": {"metadata": "@meta.v1.ObjectMeta", "roleRef": "@rbac.v1.RoleRef"},
    "rbac.v1.PolicyRule": {"verbs": None},
    "rbac.v1.Role": {"metadata": "@meta.v1.ObjectMeta", "rules": None},
    "rbac.v1.RoleBinding": {"metadata": "@meta.v1.ObjectMeta", "roleRef": "@rbac.v1.RoleRef"},
    "rbac.v1.RoleRef": {"apiGroup": "", "kind": "", "name": ""},
    "rbac.v1.Subject": {"kind": "", "name": ""},
    "storage.v1.StorageClass": {"metadata": "@meta.v1.ObjectMeta", "provisioner": ""},
    "meta.v1.Condition": {"type": "", "status": "", "lastTransitionTime": None, "reason": "", "message": ""},
    "meta.v1.LabelSelectorRequirement": {"key": "", "operator": ""},
    "meta.v1.ObjectMeta": {"creationTimestamp": None},
    "meta.v1.OwnerReference": {"apiVersion": "", "kind": "", "name": "", "uid": ""},
}


def _def_key(definition: str) -> str:
    return definition.replace("io.k8s.api.", "").replace("io.k8s.apimachinery.pkg.apis.meta.v1.", "meta.v1.")


def _zero_fields(definition: str | None) -> dict[str, Any]:
    if definition is None:
        return {}
    entries = dict(_ZERO_FIELDS.get(_def_key(definition), {}))
    inline = entries.pop("...", None)
    if inline is not None:
        entries = {**_ZERO_FIELDS.get(inline, {}), **entries}
    return entries


def _zero_value(spec: Any) -> Any:
    if isinstance(spec, str) and spec.startswith("@"):
        return _typed_struct({}, spec[1:])
    return spec


def _typed_struct(value: dict[str, Any], key: str) -> dict[str, Any]:
    out = dict(value)
    entries = dict(_ZERO_FIELDS.get(key, {}))
    inline = entries.pop("...", None)
    if inline is not None:
        entries = {**_ZERO_FIELDS.get(inline, {}), **entries}
    for field, spec in entries.items():
        if field not in out:
            out[field] = _zero_value(spec)
    return out


def typed(value: Any, node: dict[str, Any] | None) -> Any:
    """What a built-in value looks like after a trip through its Go type: unknown fields and nulls dropped,
    the zero-value fields of every struct present (`_ZERO_FIELDS`)."""
    name, schema = v.deref(node)
    if schema is None or name in _SCALAR_DEFS:
        return value
    if isinstance(value, dict):
        if v.is_struct(schema):
            props = schema["properties"]
            out = {k: typed(sub, props[k]) for k, sub in value.items() if k in props and sub is not None}
            if name is not None:
                out = _typed_struct(out, _def_key(name))
            return out
        extra = schema.get("additionalProperties")
        return {k: typed(sub, extra if isinstance(extra, dict) else None) for k, sub in value.items()
                if sub is not None}
    if isinstance(value, list):
        return [typed(item, v.items_schema(schema)) for item in value]
    return value


def _typed_object(obj: dict[str, Any] | None, api_version: str, kind: str) -> dict[str, Any]:
    """The typed form of an object (or of the empty object of its kind, for None) without managedFields."""
    name = v.definition_name(api_version, kind)
    source = copy.deepcopy(obj) if obj is not None else {"apiVersion": api_version, "kind": kind}
    meta = source.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    if name is None:
        return source
    result = typed(source, {"$ref": "#/$defs/" + name})
    if not isinstance(result, dict):
        return {}
    top = result.get("metadata")
    if isinstance(top, dict) and top.get("creationTimestamp") is None:
        # The server stamps the object itself on create (rest.BeforeCreate); a null here would only be in the way.
        top.pop("creationTimestamp", None)
    return result


# Fields a write to the main resource does not own (the strategies' GetResetFields in k8s.io/kubernetes v1.31
# pkg/registry/*/*/strategy.go: status is only written through the status subresource).
_RESET_STATUS_KINDS = {
    "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Pod", "Service", "Namespace", "Node",
    "PersistentVolumeClaim",
}


def _ignored(obj: dict[str, Any]) -> set[Path]:
    builtin = v.definition_name(str(obj.get("apiVersion", "")), str(obj.get("kind", ""))) is not None
    return {(("f", "status"),)} if builtin and obj.get("kind") in _RESET_STATUS_KINDS else set()


# Never owned by anyone (stripmeta.go NewStripMetaManager).
_STRIPPED: set[Path] = {
    (("f", "apiVersion"),),
    (("f", "kind"),),
    (("f", "metadata"),),
    *((("f", "metadata"), ("f", name)) for name in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
        "managedFields", "resourceVersion",
    )),
}


# ---------------------------------------------------------------------------------------------------------
# Managed fields (k8s.io/apimachinery v0.31.14 pkg/util/managedfields/internal/managedfields.go).


class _Managed:
    """The decoded managedFields: identifier -> (paths, apiVersion, applied), identifier -> time."""

    def __init__(self) -> None:
        self.fields: dict[str, tuple[set[Path], str, bool]] = {}
        self.times: dict[str, str | None] = {}


def _identifier(manager: str, operation: str, api_version: str, subresource: str = "") -> str:
    """BuildManagerIdentifier: the entry without time and fields (and without apiVersion for Apply), as JSON."""
    entry: dict[str, str] = {"manager": manager, "operation": operation}
    if operation != "Apply" and api_version:
        entry["apiVersion"] = api_version
    if subresource:
        entry["subresource"] = subresource
    return json.dumps({k: val for k, val in entry.items() if val}, separators=(",", ":"))


def _decode_managed(entries: Any) -> _Managed:
    """DecodeManagedFields; ValueError for an entry the real decoder refuses."""
    managed = _Managed()
    for i, entry in enumerate(entries or ()):
        if not isinstance(entry, dict):
            raise ValueError(f"invalid managed fields entry {i}")
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        if not entry.get("apiVersion"):
            raise ValueError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType", "")
        if fields_type == "":
            raise ValueError(f"missing fieldsType in managed fields entry {i}")
        if fields_type != "FieldsV1":
            raise ValueError(f'invalid fieldsType "{fields_type}" in managed fields entry {i}')
        key = _identifier(str(entry.get("manager", "")), operation, str(entry["apiVersion"]),
                          str(entry.get("subresource", "")))
        managed.fields[key] = (from_fields_v1(entry.get("fieldsV1") or {}), str(entry["apiVersion"]),
                               operation == "Apply")
        managed.times[key] = entry.get("time")
    return managed


def _seconds(time: str | None) -> float:
    if not time:
        return 0
    try:
        return int(datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _encode_managed(managed: _Managed) -> list[dict[str, Any]] | None:
    """encodeManagedFields + sortEncodedManagedFields: None when nobody manages anything."""
    if not managed.fields:
        return None
    entries = []
    for key, (paths, api_version, applied) in managed.fields.items():
        ident = json.loads(key)
        entry: dict[str, Any] = {
            "manager": ident.get("manager", ""),
            "operation": "Apply" if applied else ident.get("operation", "Update"),
            "apiVersion": api_version,
        }
        if managed.times.get(key):
            entry["time"] = managed.times[key]
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = to_fields_v1(paths)
        if ident.get("subresource"):
            entry["subresource"] = ident["subresource"]
        entries.append(entry)
    entries.sort(key=lambda e: (e["operation"], _seconds(e.get("time")), e["manager"], e["apiVersion"],
                                e.get("subresource", "")))
    return entries


def _print_manager(key: str) -> str:
    """conflict.go printManager."""
    ident = json.loads(key)
    text = v.go_quote(ident.get("manager", ""))
    if ident.get("subresource"):
        text += f" with subresource {v.go_quote(ident['subresource'])}"
    if ident.get("operation") == "Update":
        text += f" using {ident.get('apiVersion', '')}"
    return text


def _conflict(conflicts: dict[str, set[Path]]) -> ApplyConflict:
    """NewConflictError / getConflictMessage (conflict.go)."""
    pairs = [(manager, path) for manager in sorted(conflicts) for path in iterate(conflicts[manager])]
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {_print_manager(m)}", "field": path_string(p)}
        for m, p in pairs
    ]
    if len(pairs) == 1:
        manager, path = pairs[0]
        message = f"Apply failed with 1 conflict: conflict with {_print_manager(manager)}: {path_string(path)}"
    else:
        lines = []
        for manager in sorted(conflicts):
            lines.append(f"conflicts with {_print_manager(manager)}:")
            lines.extend(f"- {path_string(p)}" for m, p in pairs if m == manager)
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return ApplyConflict(message, causes)


# ---------------------------------------------------------------------------------------------------------
# The updater (sigs.k8s.io/structured-merge-diff v4.4.1 merge/update.go).


def _update_managers(
    old: Any, new: Any, shape: Shape, managed: _Managed, workflow: str, force: bool, ignored: set[Path]
) -> Comparison:
    """Updater.update: other managers lose the fields this write changes (or it conflicts) and the removed ones."""
    comparison = compare(old, new, shape)
    comparison.exclude(ignored)
    changed = comparison.modified | comparison.added
    conflicts: dict[str, set[Path]] = {}
    for manager, (paths, _, _) in managed.fields.items():
        if manager == workflow:
            continue
        overlap = paths & changed
        if overlap:
            conflicts[manager] = overlap
    if conflicts and not force:
        raise _conflict(conflicts)
    for manager in list(managed.fields):
        if manager == workflow:
            continue
        paths, api_version, applied = managed.fields[manager]
        paths = paths - conflicts.get(manager, set()) - comparison.removed
        managed.fields[manager] = (paths, api_version, applied)
    for manager in [m for m, (paths, _, _) in managed.fields.items() if not paths]:
        del managed.fields[manager]
    return comparison


def _smd_update(old: Any, new: Any, shape: Shape, managed: _Managed, manager: str, api_version: str,
                ignored: set[Path]) -> None:
    """Updater.Update."""
    comparison = _update_managers(old, new, shape, managed, manager, True, ignored)
    previous = managed.fields.get(manager, (set(), api_version, False))[0]
    paths = (previous - comparison.removed) | comparison.modified | comparison.added
    paths = _recursive_difference(paths, ignored)
    if paths:
        managed.fields[manager] = (paths, api_version, False)
    else:
        managed.fields.pop(manager, None)


def _strip(managed: _Managed, manager: str) -> None:
    """stripMetaManager.stripFields."""
    if manager not in managed.fields:
        return
    paths, api_version, applied = managed.fields[manager]
    paths = paths - _STRIPPED
    if paths:
        managed.fields[manager] = (paths, api_version, applied)
    else:
        del managed.fields[manager]


def _tracked_update(old: Any, new: Any, shape: Shape, managed: _Managed, manager: str, api_version: str,
                    now: str, ignored: set[Path], subresource: str = "") -> None:
    """capManagers(buildManagerInfo(managedFieldsUpdater(stripMeta(structuredMerge)))).Update."""
    ident = _identifier(manager or "unknown", "Update", api_version, subresource)
    current = "current-operation"
    _smd_update(old, new, shape, managed, current, api_version, ignored)
    _strip(managed, current)
    if current in managed.fields:
        paths, version, applied = managed.fields.pop(current)
        previous = managed.fields.get(ident)
        if previous is not None:
            paths = paths | previous[0]
        managed.fields[ident] = (paths, version, applied)
        managed.times[ident] = now
    _cap_update_managers(managed)


def _cap_update_managers(managed: _Managed, limit: int = 10) -> None:
    """capmanagers.go: beyond ten Update managers the oldest are folded into "ancient-changes"."""
    updaters = [m for m, (_, _, applied) in managed.fields.items() if not applied]
    if len(updaters) <= limit:
        return
    updaters.sort(key=lambda m: (_seconds(managed.times.get(m)), m))
    first_by_version: dict[str, str] = {}
    length = len(updaters)
    for manager in updaters:
        if length <= limit:
            break
        paths, version, applied = managed.fields[manager]
        bucket = _identifier("ancient-changes", "Update", version)
        if version in first_by_version:
            first = first_by_version[version]
            if bucket not in managed.fields:
                managed.fields[bucket] = managed.fields.pop(first)
            managed.fields[bucket] = (paths | managed.fields[bucket][0], version, applied)
            del managed.fields[manager]
            length -= 1
            managed.times[bucket] = managed.times.get(manager)
        else:
            first_by_version[version] = manager


# ---------------------------------------------------------------------------------------------------------
# Public API.


def default_manager(user_agent: str) -> str:
    """The manager name the API server uses when a write names none: the User-Agent up to its first '/',
    without unprintable characters, at most 128 bytes (k8s.io/apiserver v0.31.14 pkg/endpoints/handlers/
    create.go prefixFromUserAgent). kubectl sends "kubectl/v1.31.0 (...)": "kubectl"; the python client
    "OpenAPI-Generator/31.0.0/python": "OpenAPI-Generator"."""
    prefix = user_agent.split("/", 1)[0]
    out = ""
    for ch in prefix:
        if not ch.isprintable():  # unicode.IsPrint: Go drops other spaces too
            continue
        if len((out + ch).encode()) > 128:
            break
        out += ch
    return out


def update_managed_fields(
    old: dict[str, Any] | None, new: dict[str, Any], manager: str, now: str, *, subresource: str = ""
) -> dict[str, Any]:
    """`new` (a create, replace or patch result) with the metadata.managedFields the server stores with it.

    The fields this write adds or changes become `manager`'s (operation "Update", time `now`); other managers
    lose them, and everyone loses the fields it removes. Managed fields come from `new` when it carries valid
    ones (a client may send them back; an empty list resets them), else from `old`. An existing object without
    managed fields stays untracked (skipnonapplied.go). `old` is None for a create.

    ``subresource="status"`` records a status write: the entry carries ``"subresource": "status"``, managed
    fields are taken from `old` only (decodeLiveOrNew), and only status changes are owned (an approximation of
    the status strategies' reset fields, which put back everything else anyway).
    """
    api_version, kind = str(new.get("apiVersion", "")), str(new.get("kind", ""))
    result = copy.deepcopy(new)
    meta = result.setdefault("metadata", {})
    sent = meta.pop("managedFields", None)
    if subresource:
        sent = None
    managed = _Managed()
    if sent is not None and (sent == [] or sent == [{}]):
        managed = _Managed()  # isResetManagedFields
    else:
        try:
            managed = _decode_managed(sent)
        except ValueError:
            managed = _Managed()
        if not managed.fields:
            try:
                managed = _decode_managed((old or {}).get("metadata", {}).get("managedFields"))
            except ValueError:
                managed = _Managed()
    old_uid = ((old or {}).get("metadata") or {}).get("uid")
    if not managed.fields and old is not None and old_uid:
        return result  # an existing object nobody manages: not tracked
    shape = root_shape(result)
    before = _typed_object(old, api_version, kind)
    after = _typed_object(result, api_version, kind)
    ignored = _ignored(result)
    if subresource:
        ignored = {(("f", key),) for key in {*before, *after} if key != subresource}
    try:
        _tracked_update(before, after, shape, managed, manager, api_version, now, ignored, subresource)
    except _TypedError:
        return result  # UpdateNoErrors: the object is stored without managed fields
    entries = _encode_managed(managed)
    if entries is not None:
        meta["managedFields"] = entries
    return result


def server_side_apply(
    live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool, now: str
) -> dict[str, Any]:
    """The object after `manager` applies the configuration `applied` (None `live`: the apply creates it).

    Raises ApplyConflict (409) when the configuration changes fields other managers own and `force` is not
    set, ApplyError for configurations the server refuses before merging. The result is in typed form (the
    server still has to default it); when nothing changes it is `live` itself, managedFields and times
    included.
    """
    api_version, kind = str(applied.get("apiVersion", "")), str(applied.get("kind", ""))
    endpoint = (live.get("apiVersion"), live.get("kind")) if live is not None else None
    if endpoint is not None and endpoint[0] and endpoint != (api_version, kind):
        # versioncheck.go: the configuration must be of the endpoint's group, version and kind.
        raise ApplyError(400, f"invalid object type: {_gvk_string(api_version, kind)}")
    if (applied.get("metadata") or {}).get("managedFields") is not None:
        raise ApplyError(400, "metadata.managedFields must be nil")
    try:
        managed = _decode_managed(((live or {}).get("metadata") or {}).get("managedFields"))
    except ValueError as exc:
        raise ApplyError(500, f"failed to decode managed fields: {exc}") from None
    shape = root_shape(applied)
    ignored = _ignored(applied)
    _check_config(applied, shape)
    live_typed = _typed_object(live, api_version, kind)
    if not managed.fields and live is not None:
        # skipnonapplied.go: what is there belongs to "before-first-apply".
        empty = _typed_object(None, api_version, kind)
        _tracked_update(empty, live_typed, shape, managed, "before-first-apply", api_version, now, ignored)
    ident = _identifier(manager or "unknown", "Apply", api_version)
    config = copy.deepcopy(applied)
    merged = merge(live_typed, config, shape)
    merged = {} if merged is _ABSENT else merged
    last = managed.fields.get(ident)
    config_set = _recursive_difference(to_field_set(config, shape), ignored)
    managed.fields[ident] = (config_set, api_version, True)
    merged = _prune(merged, managed, ident, last, shape)
    _update_managers(live_typed, merged, shape, managed, ident, force, ignored)
    _strip(managed, ident)
    if _equal(live_typed, merged):
        result = copy.deepcopy(live) if live is not None else merged
    else:
        managed.times[ident] = now
        result = _typed_object(merged, api_version, kind)
    meta = result.setdefault("metadata", {})
    meta.pop("managedFields", None)
    entries = _encode_managed(managed)
    if entries is not None:
        meta["managedFields"] = entries
    return result


def _gvk_string(api_version: str, kind: str) -> str:
    """schema.GroupVersionKind.String(): "apps/v1, Kind=Deployment", "/v1, Kind=Pod"."""
    group, version = v.split_api_version(api_version)
    return f"{group}/{version}, Kind={kind}"


def _check_config(applied: dict[str, Any], shape: Shape) -> None:
    """typeConverter.ObjectToTyped(patchObj) for the configuration: 500 "failed to create typed patch object"."""
    errors: list[str] = []
    _validate_config(applied, shape, "", errors)
    if not errors:
        return
    meta = applied.get("metadata") or {}
    gvk = _gvk_string(str(applied.get("apiVersion", "")), str(applied.get("kind", "")))
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}; {gvk}"
    detail = errors[0] if len(errors) == 1 else "errors:\n" + "\n".join("  " + e for e in errors)
    raise ApplyError(500, f"failed to create typed patch object ({where}): {detail}")


def _prune(merged: Any, managed: _Managed, ident: str, last: tuple[set[Path], str, bool] | None,
           shape: Shape) -> Any:
    """Updater.prune: remove what `ident` applied last time and not now, unless someone else owns it."""
    if last is None or not last[0]:
        return merged
    last_set = _ensure_named_fields(last[0], shape)
    pruned = remove_items(merged, last_set, shape)
    pruned = {} if pruned is _ABSENT else pruned
    # addBackOwnedItems
    owned: set[Path] = set()
    for paths, _, _ in managed.fields.values():
        owned |= paths
    merged_set = _ensure_named_fields(to_field_set(merged, shape), shape)
    pruned_set = _ensure_named_fields(to_field_set(pruned, shape), shape)
    owned = _ensure_named_fields(owned, shape)
    pruned = remove_items(merged, merged_set - (pruned_set | owned), shape)
    pruned = {} if pruned is _ABSENT else pruned
    # addBackDanglingItems
    pruned_set = _ensure_named_fields(to_field_set(pruned, shape), shape)
    result = remove_items(merged, (merged_set - pruned_set) & last_set, shape)
    return {} if result is _ABSENT else result
