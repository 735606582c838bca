"""Load YAML into plain Python values while remembering where every key and item was written.

It only parses: it knows nothing of the inventory's schema and never raises for bad input;
syntax errors, duplicate keys and unreadable files come back as Problems.
"""

from __future__ import annotations

import gc
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from botlab.errors import Location, Problem

# Keys of problems that concern a whole file rather than a key in it.
SYNTAX_KEY = "yaml"
DOCUMENT_KEY = "(document)"

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"

# Limits on what one file may make us hold in memory. A machine written out in full (as in
# inventory/example) is about 30 YAML nodes and 270 bytes, so 10,000 machines are about
# 300,000 nodes in a 2.7 MB file; these caps leave three times that room. Past them the
# file is refused with one problem, before its values are built.
MAX_FILE_BYTES = 8 * 1024 * 1024  # the default cap of load_yaml; callers choose their own
MAX_NODES = 1_000_000  # values and keys written in one file (aliases not expanded)
MAX_DEPTH = 100  # nesting of collections, through aliases too (an inventory needs about 6)
# Values that aliases add when expanded: `<<: *defaults` in 10,000 machines is well under
# it; a "billion laughs" alias bomb is refused from the node graph, without expanding it.
MAX_ALIAS_EXPANSION = 1_000_000


class LimitError(ComposerError):
    """A file exceeds one of the limits above (a syntax error is not one)."""


class _Counting(Composer):
    """The composer, counting nodes and nesting as it goes, so a huge or deeply nested
    file is refused at the node that crosses the limit, not after it is all in memory."""

    def __init__(self) -> None:
        Composer.__init__(self)
        self.nodes = 0
        self.aliases = 0
        self._depth = 0
        self._marks: dict[int, Mark] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        events: Any = self  # the parser this composer is mixed with
        if events.check_event(AliasEvent):
            self.aliases += 1
            return super().compose_node(parent, index)
        mark: Mark = events.peek_event().start_mark
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LimitError(None, None, f"more than {MAX_NODES:,} values in one file", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise LimitError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:
            return None
        # Only a node's line is read later: one shared mark per line, and no end marks,
        # make the node graph about half as big.
        line = node.start_mark.line
        node.start_mark = self._marks.get(line) or self._marks.setdefault(
            line, Mark(mark.name, mark.index, line, 0, None, 0))
        node.end_mark = None
        return node


class _PureLoader(_Counting, yaml.SafeLoader):
    """PyYAML's own parser: slow, but its error messages are the ones users see."""

    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        _Counting.__init__(self)


_FastLoader: Any = None
if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    class _CLoader(_Counting, CParser, SafeConstructor, Resolver):
        """libyaml's parser (about 5 times faster) under the counting composer."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Counting.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _FastLoader = _CLoader


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
    size: int = 0  # bytes read

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


def load_yaml(path: Path, file: str | None = None, max_bytes: int = MAX_FILE_BYTES,
              what: str = "a YAML file") -> YamlDocument:
    """Read and parse `path`; `file` is the name used in Locations (default: `str(path)`).

    Only a regular file of at most `max_bytes` is read (`what` names such a file in the
    message otherwise): a FIFO, device or socket is refused from its stat, without opening
    it, and no more than `max_bytes + 1` bytes are ever read.
    """
    name = file if file is not None else str(path)
    raw = _read_regular(path, max_bytes, what)
    if isinstance(raw, str):
        return _failed(name, None, raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return _failed(name, line, "is not UTF-8 text", SYNTAX_KEY)
    doc = parse_yaml(text, name)
    doc.size = len(raw)
    return doc


def _read_regular(path: Path, max_bytes: int, what: str) -> bytes | str:
    """The bytes of `path`, or why they were not read."""
    try:
        info = os.stat(path)
        refused = _refuse(info, max_bytes, what)
        if refused:
            return refused
        # O_NONBLOCK: should the file be swapped for a FIFO since the stat, open() must not
        # wait for a writer (the fstat below then refuses it).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return "file does not exist"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    try:
        refused = _refuse(os.fstat(fd), max_bytes, what)
        if refused:
            return refused
        chunks: list[bytes] = []
        left = max_bytes + 1  # one more than allowed tells a file that grew past the cap
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > max_bytes:
        return _too_big(max_bytes, max_bytes, what, more=True)
    return raw


def _refuse(info: os.stat_result, max_bytes: int, what: str) -> str:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
        kind = next((noun for test, noun in kinds if test(mode)), "not a regular file")
        return f"is {kind}, not a regular file: {what} must be a regular file"
    if info.st_size > max_bytes:
        return _too_big(info.st_size, max_bytes, what)
    return ""


def _too_big(size: int, max_bytes: int, what: str, more: bool = False) -> str:
    return f"is {'more than ' if more else ''}{size_text(size)}: {what} may be at most {size_text(max_bytes)}"


def size_text(n: int) -> str:
    """`n` bytes for people: `512 bytes`, `1.5 KiB`, `8 MiB`."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building hundreds of thousands of nodes and
    values (which form no cycles) otherwise triggers it over and over, 40% of the time of
    loading 10,000 machines."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document from `text`; `file` is the name used in Locations.

    A document over the limits above (nodes, nesting, alias expansion) is refused with one
    problem at the line where it crosses the limit, and none of its values are built.
    """
    with gc_paused():
        return _parse(text, file)


def _parse(text: str, file: str) -> YamlDocument:
    try:
        root, aliases = _compose(text)
    except LimitError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        return _failed(file, line, exc.problem or "too large", SYNTAX_KEY)
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
    if aliases:
        too_much = _expansion_problem(root, file)
        if too_much is not None:
            return YamlDocument(file, None, {}, [too_much])
    builder = _Builder(file)
    data = builder.build(root, "", builder.locations)
    # An aliased value is built once per use; report each of its problems once.
    problems = list(dict.fromkeys(builder.problems))
    return YamlDocument(file, data, builder.locations, problems)


def _compose(text: str) -> tuple[Node | None, int]:
    """The node graph of `text` and how many aliases it uses.

    libyaml parses when it is available; a document it refuses is parsed again by PyYAML's
    own parser, so errors read the same with or without libyaml (and whatever one parser
    accepts is not refused for a quirk of the other's).
    """
    loaders = [_PureLoader] if _FastLoader is None else [_FastLoader, _PureLoader]
    for loader_class in loaders:
        try:
            loader = loader_class(text)
        except UnicodeError:  # libyaml takes UTF-8: a lone surrogate cannot be encoded
            continue
        try:
            root: Node | None = loader.get_single_node()
            return root, loader.aliases
        except LimitError:
            raise
        except yaml.YAMLError:
            if loader_class is _PureLoader:
                raise
        finally:
            loader.dispose()
    raise AssertionError("unreachable")


def _expansion_problem(root: Node, file: str) -> Problem | None:
    """A problem if aliases make the document expand past MAX_ALIAS_EXPANSION values or
    MAX_DEPTH levels, found from the node graph without expanding it (an alias bomb of a
    billion values costs as much as its few lines). Cycles count once: the builder
    reports them."""
    size: dict[int, int] = {}  # values a node expands to, itself included
    depth: dict[int, int] = {}  # levels a node expands to
    open_: set[int] = set()  # the nodes on the current path (a child among them: a cycle)
    cap = MAX_ALIAS_EXPANSION + MAX_NODES + 1  # past it, the exact count does not matter
    big: Node | None = None  # the first (innermost) node that alone is too big
    deep: Node | None = None
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            open_.discard(key)
            size[key] = min(cap, 1 + sum(size.get(id(c), 1) for c in children))
            depth[key] = 1 + max((depth.get(id(c), 1) for c in children), default=0)
            if big is None and size[key] > MAX_ALIAS_EXPANSION:
                big = node
            if deep is None and depth[key] > MAX_DEPTH:
                deep = node
            continue
        if key in size or key in open_:
            continue
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size and id(c) not in open_)
    if deep is not None:
        return Problem(Location(file, deep.start_mark.line + 1), SYNTAX_KEY,
                       f"aliases here nest values more than {MAX_DEPTH} levels deep")
    if size[id(root)] - len(size) > MAX_ALIAS_EXPANSION and big is not None:
        return Problem(Location(file, big.start_mark.line + 1), SYNTAX_KEY,
                       f"too many values: aliases here expand to more than {MAX_ALIAS_EXPANSION:,} (an alias bomb?)")
    return None


def _children(node: Node) -> list[Node]:
    """The nodes the builder builds under `node` (mapping keys are read, not built)."""
    if isinstance(node, MappingNode):
        return [value for _key, value in node.value]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _failed(file: str, line: int | None, message: str, key: str = DOCUMENT_KEY) -> YamlDocument:
    return YamlDocument(file, None, {}, [Problem(Location(file, line), key, message)])


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.locations: dict[str, Location] = {}
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()
        self._stack: set[int] = set()
        self._lines: dict[int, Location] = {}

    def loc(self, node: Node) -> Location:
        return self.at(node.start_mark.line + 1)

    def at(self, line: int) -> Location:
        """The Location of `line`, one shared object per line (they are immutable)."""
        found = self._lines.get(line)
        if found is None:
            found = self._lines[line] = Location(self.file, line)
        return found

    def problem(self, node: Node, key: str, message: str) -> None:
        self.problems.append(Problem(self.loc(node), key or DOCUMENT_KEY, message))

    def build(self, node: Node, path: str, locs: dict[str, Location]) -> Any:
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
        # (A plain scalar's style is None from PyYAML's parser, "" from libyaml's.)
        if node.tag in (_INT_TAG, _FLOAT_TAG) and not node.style and ":" in node.value:
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
            locs[key_path] = self.at(line)
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
