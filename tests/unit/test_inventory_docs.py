"""docs/inventory.md documents exactly the schema's keys, with their defaults and requiredness."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from botlab.inventory import docs
from botlab.inventory.schema import TOP, Items, Key, Node

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "inventory.md"
_ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<type>.*?) \| (?P<default>.*?) \| (?P<meaning>.*) \|$")
_HEADING = re.compile(r"^### `(?P<key>[a-z_]+)` \((?P<what>[^)]*)\)$", re.MULTILINE)


def declared() -> dict[str, dict[str, Key]]:
    """Each generated table's keys by dotted name, as the schema declares them."""
    return {name: dict(docs.rows(node, nested=node is not TOP)) for name, node in docs.TABLES.items()}


def documented() -> dict[str, dict[str, dict[str, str]]]:
    """Each generated table's rows in the doc, by key: type, default and meaning cells."""
    text = DOC.read_text()
    tables: dict[str, dict[str, dict[str, str]]] = {}
    for match in re.finditer(r"<!-- schema: (\w+) -->\n(.*?)<!-- /schema -->", text, re.DOTALL):
        rows = [_ROW.match(line) for line in match.group(2).splitlines()[2:]]
        assert all(rows), f"malformed row in table {match.group(1)}"
        tables[match.group(1)] = {r["key"]: r.groupdict() for r in rows if r}
    return tables


def test_the_key_tables_are_generated_from_the_current_schema() -> None:
    text = DOC.read_text()
    assert docs.update(text) == text, "run: python -m botlab.inventory.docs --update docs/inventory.md"
    out = subprocess.run(
        [sys.executable, "-m", "botlab.inventory.docs", "--check", str(DOC)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr


def test_every_mapping_of_the_schema_has_a_table() -> None:
    def mappings(node: Node) -> list[Node]:
        found = [node]
        for key in node.keys:
            inner = key.type.node if isinstance(key.type, Items) else key.type
            # a machine's mappings, and each artifact's, are in their parent's table
            if isinstance(inner, Node) and node not in (docs.MACHINE, docs.ARTIFACTS):
                found += mappings(inner)
        return found

    tabled = set(docs.TABLES.values())
    assert [n for n in mappings(TOP) if n not in tabled] == []
    assert sorted(documented()) == sorted(docs.TABLES)


def test_every_declared_key_is_documented_with_its_default_and_requiredness() -> None:
    tables = documented()
    for name, keys in declared().items():
        for key_name, key in keys.items():
            row = tables[name].get(key_name)
            assert row is not None, f"{name}: {key_name} is not documented"
            assert row["type"].endswith(", required") == key.required, f"{name}: {key_name} requiredness"
            if key.required:
                assert row["default"] == "", f"{name}: {key_name} is required but shows a default"
            else:
                assert row["default"] == docs.default_cell(key).replace("|", "\\|") != "", key_name
            assert row["meaning"], f"{name}: {key_name} has no meaning"


def test_the_doc_documents_no_key_the_schema_lacks() -> None:
    tables = documented()
    schema_keys = declared()
    for name, rows in tables.items():
        extra = sorted(set(rows) - set(schema_keys[name]))
        assert extra == [], f"{name}: documented but not declared: {extra}"
    # and no hand-written key table hides outside the generated ones
    keys_section = DOC.read_text().split("## Keys", 1)[1].split("\n## ", 1)[0]
    outside = re.sub(r"<!-- schema: \w+ -->\n.*?<!-- /schema -->", "", keys_section, flags=re.DOTALL)
    assert "| key | type |" not in outside


def test_section_headings_agree_with_the_schema() -> None:
    headings = {m["key"]: m["what"] for m in _HEADING.finditer(DOC.read_text())}
    assert set(headings) == set(TOP.names)
    for name, what in headings.items():
        assert ("required" in what) == TOP.key(name).required, f"### `{name}` ({what})"


def test_update_refuses_an_unknown_table() -> None:
    try:
        docs.update("<!-- schema: nope -->\n<!-- /schema -->\n")
    except ValueError as exc:
        assert "unknown schema table 'nope'" in str(exc)
    else:
        raise AssertionError("an unknown table was accepted")
