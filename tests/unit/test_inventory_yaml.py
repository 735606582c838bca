"""Reading YAML with the line of every key, so errors can point at it."""

from __future__ import annotations

from pathlib import Path

from botlab.errors import Location
from botlab.yamlsource import load_yaml, parent_keys, parse_yaml

TEXT = """\
# a comment
lab: demo
machines:
  - hostname: a
    hardware:
      gpus: 2
  - {hostname: b, macs: [x, y]}
"""


def test_every_key_and_item_has_its_line() -> None:
    doc = parse_yaml(TEXT, "lab.yaml")
    assert doc.ok
    assert doc.data["machines"][0]["hardware"]["gpus"] == 2
    lines = {key: loc.line for key, loc in doc.locations.items()}
    assert lines == {
        "": 2,
        "lab": 2,
        "machines": 3,
        "machines[0]": 4,
        "machines[0].hostname": 4,
        "machines[0].hardware": 5,
        "machines[0].hardware.gpus": 6,
        "machines[1]": 7,
        "machines[1].hostname": 7,
        "machines[1].macs": 7,
        "machines[1].macs[0]": 7,
        "machines[1].macs[1]": 7,
    }
    assert doc.locations["lab"] == Location("lab.yaml", 2)


def test_duplicate_keys_are_problems_at_the_second_one() -> None:
    doc = parse_yaml("a:\n  b: 1\n  c: 2\n  b: 3\n", "f.yaml")
    assert [str(p) for p in doc.problems] == ["f.yaml:4: a.b: duplicate key (first written at line 2)"]


def test_syntax_errors_carry_the_line() -> None:
    doc = parse_yaml("a: 1\nb: c: d\n", "f.yaml")
    assert doc.data is None
    assert [str(p) for p in doc.problems] == ["f.yaml:2: yaml: mapping values are not allowed here"]


def test_several_documents_are_a_syntax_error() -> None:
    doc = parse_yaml("a: 1\n---\nb: 2\n", "f.yaml")
    assert doc.problems and doc.problems[0].key == "yaml"
    assert doc.problems[0].location.line == 2


def test_empty_documents_are_marked_empty() -> None:
    doc = parse_yaml("# nothing\n", "f.yaml")
    assert doc.empty and doc.data is None and doc.ok


def test_python_tags_are_refused() -> None:
    doc = parse_yaml("a: !!python/object/apply:os.system [echo]\n", "f.yaml")
    assert doc.problems and doc.problems[0].key == "a"


def test_recursive_and_exploding_aliases_are_refused() -> None:
    assert parse_yaml("a: &r [*r]\n", "f.yaml").problems
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    doc = parse_yaml(bomb, "f.yaml")
    assert any("too many values" in p.message for p in doc.problems)


def test_merge_keys_keep_the_anchor_lines() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.data["use"] == {"x": 1, "y": 3}
    assert doc.locations["use.x"].line == 1
    assert doc.locations["use.y"].line == 4


def test_unreadable_input_becomes_a_problem(tmp_path: Path) -> None:
    assert load_yaml(tmp_path / "none.yaml").problems[0].message == "file does not exist"
    assert load_yaml(tmp_path).problems[0].message == "is a folder, not a file"


def test_parent_keys_walk_up_to_the_document() -> None:
    assert list(parent_keys("machines[2].hardware.gpus")) == [
        "machines[2].hardware.gpus",
        "machines[2].hardware",
        "machines[2]",
        "machines",
        "",
    ]
