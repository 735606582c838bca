"""Load YAML into plain Python values while remembering where every key and item was written.

It only parses: it knows nothing of the inventory's schema and never raises for bad input;
syntax errors, duplicate keys and unreadable files come back as Problems.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from botlab.errors import Location, Problem

# Keys of problems that concern a whole file rather than a key in it.
SYNTAX_KEY = "yaml"
DOCUMENT_KEY = "(document)"

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"

# Alias expansion can blow a small file up exponentially ("billion laughs"); an inventory
# never needs anywhere near this many values.
_MAX_VALUES = 200_000


@dataclass
class YamlDocument:
    """One parsed YAML file.

    `data` holds plain values (dict, list, str, int, float, bool, None, dates); it is None
    for an empty file or one that failed to parse. `locations` maps every key path written
    in the file (`machines[2].hardware.gpus`, `""` for the document itself) to its
    Location. `problems` lists duplicate keys, unsupported tags, syntax and read errors.
    """

    file: str
    data: Any = None
    locations: dict[str, Location] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    empty: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def join_key(parent: str, key: str | int) -> str:
    """The key path of `key` under `parent`: `a.b`, `a[3]`, or `b` at the top."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def parent_keys(path: str) -> Iterator[str]:
    """`path` and then each of its parents up to (and including) the document's `""`."""
    while True:
        yield path
        if not path:
            return
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""


def subtree(locations: Mapping[str, Location], path: str) -> dict[str, Location]:
    """The entries of `locations` at `path` or below it."""
    if not path:
        return dict(locations)
    return {k: v for k, v in locations.items() if k == path or k.startswith(path + ".") or k.startswith(path + "[")}


def load_yaml(path: Path, file: str | None = None) -> YamlDocument:
    """Read and parse `path`; `file` is the name used in Locations (default: `str(path)`)."""
    name = file if file is not None else str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _failed(name, None, "file does not exist")
    except IsADirectoryError:
        return _failed(name, None, "is a folder, not a file")
    except OSError as exc:
        return _failed(name, None, f"cannot be read: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _failed(name, line, "is not UTF-8 text", SYNTAX_KEY)
    return parse_yaml(text, name)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document from `text`; `file` is the name used in Locations."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = exc.problem or "invalid YAML"
        if exc.context:
            context = exc.context
            start = exc.context_mark
            if start is not None and mark is not None and start.line != mark.line:
                context = f"{context} started at line {start.line + 1}"
            message = f"{message} ({context})"
        return _failed(file, line, message, SYNTAX_KEY)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        char = exc.character
        code = char if isinstance(char, int) else ord(char)
        return _failed(file, line, f"invalid character U+{code:04X}", SYNTAX_KEY)
    except yaml.YAMLError as exc:
        return _failed(file, None, str(exc), SYNTAX_KEY)
    if root is None:
        return YamlDocument(file, None, {"": Location(file, 1)}, empty=True)
    builder = _Builder(file)
    data = builder.build(root, "", builder.locations)
    # An aliased value is built once per use; report each of its problems once.
    problems = list(dict.fromkeys(builder.problems))
    return YamlDocument(file, data, builder.locations, problems)


def _failed(file: str, line: int | None, message: str, key: str = DOCUMENT_KEY) -> YamlDocument:
    return YamlDocument(file, None, {}, [Problem(Location(file, line), key, message)])


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.locations: dict[str, Location] = {}
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._stack: set[int] = set()
        self._count = 0
        self._too_big = False

    def loc(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1)

    def problem(self, node: Node, key: str, message: str) -> None:
        self.problems.append(Problem(self.loc(node), key or DOCUMENT_KEY, message))

    def build(self, node: Node, path: str, locs: dict[str, Location]) -> Any:
        self._count += 1
        if self._count > _MAX_VALUES:
            if not self._too_big:
                self._too_big = True
                self.problem(node, path, "too many values (runaway alias expansion?)")
            return None
        locs.setdefault(path, self.loc(node))
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self._stack:
            self.problem(node, path, "an alias refers to a value that contains it")
            return None
        self._stack.add(id(node))
        try:
            if isinstance(node, MappingNode):
                if node.tag != _MAP_TAG:
                    self.problem(node, path, f"unsupported tag {node.tag}")
                return self.mapping(node, path, locs)
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ_TAG:
                    self.problem(node, path, f"unsupported tag {node.tag}")
                return [self.build(item, join_key(path, i), locs) for i, item in enumerate(node.value)]
        finally:
            self._stack.discard(id(node))
        self.problem(node, path, "unsupported YAML node")
        return None

    def scalar(self, node: ScalarNode, path: str) -> Any:
        # YAML 1.1 reads unquoted 52:54:00:00:00:01 or 12:30 as base-60 numbers; nobody
        # means that in an inventory (YAML 1.2 dropped it), so keep such scalars as text.
        if node.tag in (_INT_TAG, _FLOAT_TAG) and node.style is None and ":" in node.value:
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.problem(node, path, exc.problem or "invalid value")
            return None

    def mapping(self, node: MappingNode, path: str, locs: dict[str, Location]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, path, "keys must be plain strings")
                continue
            key = str(key_node.value)
            key_path = join_key(path, key)
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.problems.append(
                    Problem(
                        Location(self.file, line),
                        key_path,
                        f"duplicate key (first written at line {first_line[key]})",
                    )
                )
            else:
                first_line[key] = line
            locs[key_path] = Location(self.file, line)
            result[key] = self.build(value_node, key_path, locs)
        for key, value in self.merged(merges, path).items():
            if key not in result:
                value_path = join_key(path, key)
                result[key] = value[0]
                locs.update(subtree(value[1], value_path))
        return result

    def merged(self, merges: list[Node], path: str) -> dict[str, tuple[Any, dict[str, Location]]]:
        """Values from `<<: *anchor` merge keys; an earlier source wins, as in YAML."""
        sources: list[Node] = []
        for node in merges:
            if isinstance(node, SequenceNode):
                sources.extend(node.value)
            else:
                sources.append(node)
        found: dict[str, tuple[Any, dict[str, Location]]] = {}
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem(source, join_key(path, "<<"), "a merge key needs a mapping")
                continue
            locs: dict[str, Location] = {}
            values = self.build(source, path, locs)
            if not isinstance(values, dict):
                continue
            for key, value in values.items():
                if key not in found:
                    found[key] = (value, subtree(locs, join_key(path, key)))
        return found
