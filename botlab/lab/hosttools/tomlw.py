"""A tiny TOML writer laid out as go-toml v1 writes containerd's config (`containerd config dump` and
nvidia-ctk): keys sorted, plain values before sub-tables, a blank line and two spaces of indent per level."""

from __future__ import annotations

import datetime
import re
from typing import Any

import hostlib

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def key(name: str) -> str:
    return name if BARE_KEY.fullmatch(name) else string(name)


def string(text: str) -> str:
    """A TOML basic string: control characters other than \\n, \\t, \\r as \\uXXXX."""
    return hostlib.quote_escaped(text, "\\u{:04X}")


def value(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        text = repr(item)
        return text if ("." in text or "e" in text or "inf" in text or "nan" in text) else text + ".0"
    if isinstance(item, str):
        return string(item)
    if isinstance(item, (datetime.datetime, datetime.date, datetime.time)):
        return item.isoformat()
    if isinstance(item, list):
        return "[" + ", ".join(value(v) for v in item) + "]"
    if isinstance(item, dict):
        return "{" + ", ".join(f"{key(k)} = {value(v)}" for k, v in sorted(item.items())) + "}"
    raise TypeError(f"cannot write {type(item).__name__} as TOML")


def _is_table(item: Any) -> bool:
    return isinstance(item, dict)


def dumps(data: dict[str, Any]) -> str:
    lines: list[str] = []

    def table(node: dict[str, Any], path: list[str]) -> None:
        indent = "  " * len(path)
        for name in sorted(k for k, v in node.items() if not _is_table(v)):
            lines.append(f"{indent}{key(name)} = {value(node[name])}")
        for name in sorted(k for k, v in node.items() if _is_table(v)):
            lines.append("")
            lines.append(f"{'  ' * len(path)}[{'.'.join(key(p) for p in [*path, name])}]")
            table(node[name], [*path, name])

    table(data, [])
    while lines and lines[0] == "":
        lines.pop(0)
    return "\n".join(lines) + "\n"
