"""docs/inventory.md's key tables, generated from the schema so the docs cannot drift from it.

    python -m botlab.inventory.docs --markdown            # print every table
    python -m botlab.inventory.docs --update FILE         # rewrite FILE's tables in place
    python -m botlab.inventory.docs --check FILE          # exit 1 if FILE's tables are stale

A table sits between `<!-- schema: NAME -->` and `<!-- /schema -->`; the prose around it
is the doc's own. Not imported by botlab.inventory: only docs and tests need it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botlab.inventory.schema import (
    ARTIFACTS,
    JUJU,
    KUBEFLOW,
    KUBERNETES,
    MAAS,
    MACHINE,
    METALLB,
    NFS,
    SSH,
    TOP,
    Derived,
    Key,
    Node,
)
from botlab.inventory.values import FrozenMap

# Each generated table, by the name its markers carry.
TABLES: dict[str, Node] = {
    "top": TOP,
    "maas": MAAS,
    "juju": JUJU,
    "ssh": SSH,
    "machines": MACHINE,
    "kubernetes": KUBERNETES,
    "nfs": NFS,
    "metallb": METALLB,
    "kubeflow": KUBEFLOW,
    "artifacts": ARTIFACTS,
}

HEADER = "| key | type | default | meaning |\n|---|---|---|---|"
_BLOCK = re.compile(r"(<!-- schema: (?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- /schema -->)", re.DOTALL)


def rows(node: Node, prefix: str = "", nested: bool = True) -> Iterator[tuple[str, Key]]:
    """Each key of `node` with its dotted name; with `nested`, the keys of mappings
    inside it follow their mapping's row (`hardware`, `hardware.cores`, ...)."""
    for key in node.keys:
        name = prefix + key.name
        yield name, key
        if nested and isinstance(key.type, Node):
            yield from rows(key.type, name + ".")


def type_cell(key: Key) -> str:
    return key.type.label + (", required" if key.required else "")


def default_cell(key: Key) -> str:
    """How the docs show `key`'s default; empty for a required key."""
    if key.required:
        return ""
    if key.shown is not None:
        return key.shown
    if isinstance(key.default, Derived):
        return key.default.shown
    return _literal(key.default)


def _literal(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, tuple):
        return "`[]`" if not value else f"`{list(value)}`"
    if isinstance(value, FrozenMap):
        return "`{}`" if not value else f"`{dict(value)}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(name: str) -> str:
    """The markdown table of generated block `name`."""
    node = TABLES[name]
    lines = [HEADER]
    for key_name, key in rows(node, nested=node is not TOP):
        cells = (f"`{key_name}`", type_cell(key), default_cell(key), key.doc)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def update(text: str) -> str:
    """`text` with every generated table rewritten from the schema."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise ValueError(f"unknown schema table {name!r}; known: {', '.join(TABLES)}")
        return match.group(1) + table(name) + match.group(4)

    return _BLOCK.sub(replace, text)


def tables_in(text: str) -> list[str]:
    """The names of the generated tables in `text`, in order."""
    return [m.group("name") for m in _BLOCK.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m botlab.inventory.docs", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--markdown", action="store_true", help="print every table")
    group.add_argument("--update", metavar="FILE", type=Path, help="rewrite FILE's tables in place")
    group.add_argument("--check", metavar="FILE", type=Path, help="exit 1 if FILE's tables are stale")
    args = parser.parse_args(argv)
    if args.markdown:
        for name in TABLES:
            print(f"<!-- schema: {name} -->\n{table(name)}<!-- /schema -->\n")
        return 0
    path: Path = args.update or args.check
    text = path.read_text()
    fresh = update(text)
    missing = [name for name in TABLES if name not in tables_in(text)]
    if args.check:
        if fresh != text or missing:
            stale = f"; no table for {', '.join(missing)}" if missing else ""
            print(f"{path}: key tables differ from the schema{stale}: run --update {path}", file=sys.stderr)
            return 1
        return 0
    path.write_text(fresh)
    if missing:
        print(f"{path}: no table for {', '.join(missing)}: add `<!-- schema: NAME -->` markers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
