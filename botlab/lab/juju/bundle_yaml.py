"""Decoding YAML nodes the way gopkg.in/yaml.v2 fills Go values, for the bundle reader.

Juju reads bundles with yaml.v2 (YAML 1.1 scalars, `yes`/`on` booleans, octal `017`) and fills
string fields with a scalar's text as written. A value of the wrong type anywhere in a bundle
document makes juju/charm's BundleData unmarshaller drop the whole document (Juju then reports
it as having no applications); the helpers here raise `Mismatch` for such values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

T = TypeVar("T")
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NULLS = frozenset({"", "~", "null", "Null", "NULL"})
TRUES = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
FALSES = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}
INT_RE = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?")
_FLATTENER = yaml.SafeLoader("")


class Mismatch(Exception):
    """The node cannot fill the Go type (a yaml.v2 "unmarshal error")."""


def compose_documents(text: str) -> list[Node | None]:
    """The node tree of every document in `text`; yaml.YAMLError if it is not YAML."""
    return list(yaml.compose_all(text, Loader=LOADER))


def is_plain(node: Node) -> bool:
    """Whether `node` is an unquoted scalar (the only kind yaml.v2 resolves to non-strings)."""
    return isinstance(node, ScalarNode) and node.style in (None, "")


def is_null(node: Node | None) -> bool:
    """Whether `node` is absent or a null scalar."""
    return node is None or (is_plain(node) and node.value in NULLS)


def resolve_plain(text: str) -> Any:
    """The value yaml.v2 gives a plain scalar decoded into an interface{}."""
    if text in NULLS:
        return None
    if text in TRUES or text in FALSES:
        return text in TRUES
    if text in SPECIAL_FLOATS:
        return SPECIAL_FLOATS[text]
    if not text or text[0] not in "+-.0123456789" or TIMESTAMP_RE.fullmatch(text):
        return text
    return _resolve_number(text)


def _resolve_number(text: str) -> Any:
    """An int or float as Go's ParseInt(base 0)/ParseFloat read it; else the text."""
    plain = text.replace("_", "")
    match = INT_RE.fullmatch(plain)
    if match is not None:
        sign, digits = match.groups()
        value = _int_digits(digits)
        return -value if sign == "-" else value
    if FLOAT_RE.fullmatch(plain):
        return float(plain)
    return text


def _int_digits(digits: str) -> int:
    """The value of an unsigned Go integer literal (0x, 0o, 0b or leading-zero octal)."""
    prefix = digits[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        return int(digits[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix])
    return int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)


def mapping_items(node: Node) -> Iterator[tuple[Node, Node]]:
    """Key/value node pairs of a mapping, with `<<` merge keys expanded; Mismatch otherwise."""
    if not isinstance(node, MappingNode):
        raise Mismatch
    _FLATTENER.flatten_mapping(node)
    yield from node.value


def to_any(node: Node) -> Any:
    """The value yaml.v2 decodes into an interface{} (maps get string keys)."""
    if isinstance(node, ScalarNode):
        return resolve_plain(node.value) if is_plain(node) else node.value
    if isinstance(node, SequenceNode):
        return [to_any(item) for item in node.value]
    return {str(to_any(k)): to_any(v) for k, v in mapping_items(node)}


def to_str(node: Node) -> str:
    """A string field: the scalar's text as written; null gives ""."""
    if not isinstance(node, ScalarNode):
        raise Mismatch
    return "" if is_null(node) else str(node.value)


def to_int(node: Node) -> int:
    """An int field: integers, or floats truncated; null gives 0."""
    value = to_any(node) if is_plain(node) else node
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise Mismatch
    return int(value)


def to_optional_int(node: Node) -> int | None:
    """A *int field: null gives None."""
    return None if is_null(node) else to_int(node)


def to_bool(node: Node) -> bool:
    """A bool field: YAML 1.1 booleans; null gives False."""
    value = to_any(node) if is_plain(node) else node
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Mismatch
    return value


def to_list(node: Node, item: Callable[[Node], T]) -> list[T]:
    """A slice field; null gives []."""
    if is_null(node):
        return []
    if not isinstance(node, SequenceNode):
        raise Mismatch
    return [item(child) for child in node.value]


def to_optional_list(node: Node, item: Callable[[Node], T]) -> list[T] | None:
    """A slice field where nil and empty differ: null gives None."""
    return None if is_null(node) else to_list(node, item)


def to_map(node: Node, value: Callable[[Node], T]) -> dict[str, T]:
    """A map[string]X field (a later duplicate key wins); null gives {}."""
    if is_null(node):
        return {}
    return {to_str(key): value(item) for key, item in mapping_items(node)}


def to_optional_map(node: Node, value: Callable[[Node], T]) -> dict[str, T] | None:
    """A map field where nil and empty differ: null gives None."""
    return None if is_null(node) else to_map(node, value)


def to_str_map(node: Node) -> dict[str, str]:
    """A map[string]string field."""
    return to_map(node, to_str)


def to_any_map(node: Node) -> dict[str, Any]:
    """A map[string]interface{} field."""
    return to_map(node, to_any)


def to_str_list(node: Node) -> list[str]:
    """A []string field."""
    return to_list(node, to_str)


def presence(node: Node | None) -> dict[str, Any]:
    """The keys present in a mapping node, nested (juju/charm's FieldPresenceMap)."""
    if not isinstance(node, MappingNode):
        return {}
    return {str(k.value): presence(v) if isinstance(v, MappingNode) else None for k, v in mapping_items(node)}


def decode_fields(node: Node, fields: dict[str, tuple[str, Callable[[Node], Any]]], target: Any) -> None:
    """Set `target`'s attributes from a mapping node using {yaml key: (attribute, decoder)};
    unknown keys are ignored, as yaml.v2 does."""
    for key, value in mapping_items(node):
        name = to_str(key)
        if name in fields:
            attribute, decoder = fields[name]
            setattr(target, attribute, decoder(value))
