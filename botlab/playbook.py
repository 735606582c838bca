"""Host playbooks (playbooks/*.yaml): idempotent steps run on hosts through drivers/ssh.

As pyinfra does, facts are gathered once per host in one round trip, and each step computes
from them, as a pure function, the exact commands it would run; check mode shows those
commands and diffs, a run sends them all in one script. Nothing here talks to a host except
through `SshDriver.run`, and every value reaches the shell through shlex.quote."""

from __future__ import annotations

import ast
import asyncio
import base64
import difflib
import hashlib
import operator
import posixpath
import re
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botlab.errors import InputError, Location, Problem, StageError
from botlab.yamlsource import load_yaml, parse_yaml

if TYPE_CHECKING:
    from botlab.drivers.ssh import SshDriver

KINDS = ("file", "line", "block", "packages", "command")
STEP_KEYS = {
    "file": {"content", "template", "owner", "mode"},
    "line": {"text", "regexp", "owner", "mode"},
    "block": {"text", "marker", "owner", "mode"},
    "packages": set(),
    "command": {"creates", "unless"},
}
COMMON_KEYS = {"name", "when", "notify", "become"}
MODE = re.compile(r"0?[0-7]{3}\Z")
OWNER = re.compile(r"[a-z_][a-z0-9_-]*(:[a-z_][a-z0-9_-]*)?\Z")
PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+\Z")  # Debian policy's package names
SERVICE = re.compile(r"[A-Za-z0-9@._:-]+\Z")
PENDING_DIR = "/var/lib/botlab/handlers"
TAIL = 20  # output lines a step result keeps


# --- the format ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step as written; which fields matter depends on `kind`."""

    index: int
    kind: str
    name: str
    target: str = ""  # file/line/block: the path; command: the command; packages: unused
    content: str | None = None
    template: Path | None = None
    text: str = ""
    regexp: str | None = None
    marker: str = ""
    owner: str | None = None
    mode: str | None = None
    packages: tuple[str, ...] = ()
    creates: str | None = None
    unless: str | None = None
    when: str | None = None
    notify: tuple[str, ...] = ()
    become: bool = False


@dataclass(frozen=True)
class Playbook:
    name: str
    source: str
    steps: tuple[Step, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)

    def pending_file(self, directory: str = PENDING_DIR) -> str:
        """Where a host keeps this playbook's handlers that are owed: written before its
        changes, removed once every handler ran, so a run cut short (a dropped connection,
        botlab killed) still reloads and restarts on the next one. "" when nothing notifies."""
        if not any(step.notify for step in self.steps):
            return ""
        return f"{directory}/{re.sub(r'[^A-Za-z0-9_.-]', '_', self.name)}"

    @classmethod
    def load(cls, path: Path) -> Playbook:
        """Read and check a playbook; bad input raises InputError naming file, line and key."""
        doc = load_yaml(path, what="a playbook")
        return cls._build(doc.data, doc.locations, doc.problems, str(path), path.parent)

    @classmethod
    def parse(cls, text: str, source: str = "<playbook>", base: Path | None = None) -> Playbook:
        doc = parse_yaml(text, source)
        return cls._build(doc.data, doc.locations, doc.problems, source, base or Path.cwd())

    @classmethod
    def _build(cls, data: Any, locations: Mapping[str, Location], problems: list[Problem], source: str,
               base: Path) -> Playbook:
        if problems:
            raise InputError(problems)
        found: list[Problem] = []

        def bad(key: str, message: str) -> None:
            found.append(Problem(locations.get(key, Location(source)), key, message))

        if not isinstance(data, dict):
            raise InputError(Problem(Location(source), "(document)", "expected a mapping with `steps`"))
        for key in data:
            if key not in ("name", "vars", "steps"):
                bad(str(key), "unknown key (expected name, vars, steps)")
        variables = data.get("vars") or {}
        if not isinstance(variables, dict):
            bad("vars", "expected a mapping")
            variables = {}
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            bad("steps", "expected a list of steps")
            raw_steps = []
        steps = []
        for i, raw in enumerate(raw_steps):
            step = _step(i, raw, f"steps[{i}]", base, bad)
            if step is not None:
                steps.append(step)
        if found:
            raise InputError(found)
        return cls(str(data.get("name") or Path(source).stem), source, tuple(steps), dict(variables))


def _step(i: int, raw: Any, where: str, base: Path, bad: Any) -> Step | None:
    if not isinstance(raw, dict):
        bad(where, "expected a mapping")
        return None
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        bad(where, f"expected exactly one of {', '.join(KINDS)}, got {', '.join(kinds) or 'none'}")
        return None
    kind = kinds[0]
    for key in raw:
        if key != kind and key not in STEP_KEYS[kind] | COMMON_KEYS:
            bad(f"{where}.{key}", f"not a key of a `{kind}` step")

    def text_of(key: str, *, required: bool = False) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                bad(f"{where}.{key}", "required")
            return None
        if not isinstance(value, str):
            hint = " (quote it: mode: '0644')" if key == "mode" else ""
            bad(f"{where}.{key}", f"expected a string, got {type(value).__name__} {value!r}{hint}")
            return None
        return value

    notify = raw.get("notify") or []
    notify = [notify] if isinstance(notify, str) else notify
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        bad(f"{where}.notify", "expected a handler or a list of handlers")
        notify = []
    for n in notify:
        if handler_commands(n) is None:
            bad(f"{where}.notify", f"unknown handler {n!r} (expected daemon-reload or `restart SERVICE`)")
    become = raw.get("become", False)
    if not isinstance(become, bool):
        bad(f"{where}.become", "expected true or false")
        become = False
    when = text_of("when")
    if when is not None:
        try:
            _check_expression(when)
        except ValueError as exc:
            bad(f"{where}.when", str(exc))
    mode = text_of("mode")
    if mode is not None and not MODE.match(mode):
        bad(f"{where}.mode", f"expected an octal mode like '0644', got {mode!r}")
    owner = text_of("owner")
    if owner is not None and not OWNER.match(owner):
        bad(f"{where}.owner", f"expected user or user:group, got {owner!r}")
    common: dict[str, Any] = {"index": i, "kind": kind, "when": when, "notify": tuple(notify),
                              "become": become, "mode": _mode(mode) if mode and MODE.match(mode) else None,
                              "owner": owner}
    if kind == "packages":
        names = raw["packages"]
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and PACKAGE.match(n) for n in names):
            bad(f"{where}.packages", f"expected Debian package names, got {names!r}")
            names = []
        return Step(name=str(raw.get("name") or f"packages {' '.join(names)}"), packages=tuple(names), **common)
    target = text_of(kind, required=True) or ""
    name = str(raw.get("name") or f"{kind} {target}")
    if kind in ("file", "line", "block") and target and not target.startswith(("/", "{{")):
        bad(f"{where}.{kind}", f"expected an absolute path, got {target!r}")
    if kind == "file":
        content, template = text_of("content"), text_of("template")
        if (content is None) == (template is None):
            bad(where, "a file step needs exactly one of content, template")
        return Step(name=name, target=target, content=content,
                    template=(base / template) if template is not None else None, **common)
    if kind == "line":
        regexp = text_of("regexp")
        if regexp is not None:
            try:
                re.compile(regexp)
            except re.error as exc:
                bad(f"{where}.regexp", f"not a regular expression: {exc}")
        line = text_of("text", required=True) or ""
        if "\n" in line:
            bad(f"{where}.text", "a line has no newline in it (use a block step)")
        return Step(name=name, target=target, text=line, regexp=regexp, **common)
    if kind == "block":
        return Step(name=name, target=target, text=text_of("text", required=True) or "",
                    marker=text_of("marker") or "botlab", **common)
    return Step(name=name, target=target, creates=text_of("creates"), unless=text_of("unless"), **common)


def _mode(mode: str) -> str:
    return mode.rjust(4, "0")


def handler_commands(name: str) -> str | None:
    """The command a handler runs (as root), or None for an unknown handler."""
    if name == "daemon-reload":
        return "systemctl daemon-reload"
    verb, _, service = name.partition(" ")
    if verb == "restart" and SERVICE.match(service):
        return f"systemctl restart {shlex.quote(service)}"
    return None


# --- `when`: a tiny expression language, never Python's eval ------------------------------------

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_ALLOWED = (ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Name, ast.Load, ast.Constant,
            ast.Tuple, ast.List, *_COMPARE)


def _check_expression(text: str) -> ast.expr:
    """Parse `text` and allow only names, literals, and/or/not and comparisons."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"cannot parse {text!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, _ALLOWED):
            continue
        raise ValueError(f"{text!r}: {type(node).__name__} is not allowed (names, literals, and/or/not,"
                         " ==, !=, in, <, >)")
    return tree


def evaluate(text: str, variables: Mapping[str, Any]) -> bool:
    """`gpu and runtime == 'docker'`, `'storage' in roles`, `not gpu`: True or False; an unknown
    name is an error (a typo must not silently skip a step)."""
    return bool(_eval(_check_expression(text), variables, text))


def _eval(node: ast.expr, env: Mapping[str, Any], text: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ("true", "false"):
            return node.id == "true"
        if node.id not in env:
            raise ValueError(f"when {text!r}: unknown name {node.id!r} (known: {', '.join(sorted(env))})")
        return env[node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(e, env, text) for e in node.elts)
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, env, text)
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, env, text) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, text)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, env, text)
            try:
                ok = _COMPARE[type(op)](left, right)
            except TypeError as exc:
                raise ValueError(f"when {text!r}: {exc}") from None
            if not ok:
                return False
            left = right
        return True
    raise ValueError(f"when {text!r}: not allowed")


# --- facts: one script, one round trip -----------------------------------------------------------


@dataclass(frozen=True)
class FileFact:
    exists: bool
    mode: str = ""  # "0644"
    owner: str = ""  # "root:root"
    content: str | None = None  # None: absent, or not a regular file, or not text

    @property
    def sha256(self) -> str:
        return hashlib.sha256((self.content or "").encode()).hexdigest()


@dataclass(frozen=True)
class GuardFact:
    creates: bool = False  # the `creates` path exists
    unless: int | None = None  # the `unless` command's exit code


@dataclass(frozen=True)
class Facts:
    files: Mapping[str, FileFact] = field(default_factory=dict)
    packages: Mapping[str, str] = field(default_factory=dict)  # installed package -> version
    guards: Mapping[int, GuardFact] = field(default_factory=dict)  # step index -> guard
    pending: tuple[str, ...] = ()  # handlers a run cut short still owes (Playbook.pending_file)


@dataclass(frozen=True)
class Rendered:
    """A step with its values rendered for one host."""

    step: Step
    target: str
    content: str | None = None
    command: str = ""
    creates: str | None = None
    unless: str | None = None


def facts_script(steps: Sequence[Rendered], nonce: str, pending_file: str | None = None) -> str:
    """The shell script that prints every fact `steps` need (and the handlers owed from a run
    cut short, in `pending_file`), in sections marked with `nonce` (random per run, so no
    file's content can fake a section)."""
    out = ["exec 2>/dev/null"]
    if pending_file:
        out.append(f"echo '@@{nonce} pending'; cat -- {shlex.quote(pending_file)}; echo")
    for i, path in enumerate(_paths(steps)):
        q = shlex.quote(path)
        out.append(f"echo '@@{nonce} file {i}'")
        out.append(f"if [ -f {q} ]; then stat -c '%a %U:%G %s' -- {q} && base64 -w0 -- {q}; echo;"
                   f" elif [ -e {q} ]; then echo notfile; else echo absent; fi")
    names = sorted({p for r in steps for p in r.step.packages})
    if names:
        out.append(f"echo '@@{nonce} packages'")
        out.append("dpkg-query -W -f='${Package}\\t${Status}\\t${Version}\\n' " + " ".join(map(shlex.quote, names)))
    for r in steps:
        if r.creates is None and r.unless is None:
            continue
        out.append(f"echo '@@{nonce} guard {r.step.index}'")
        if r.creates is not None:
            out.append(f"if [ -e {shlex.quote(r.creates)} ]; then echo creates=1; else echo creates=0; fi")
        if r.unless is not None:
            out.append(f"sh -c {shlex.quote(r.unless)} >/dev/null 2>&1 </dev/null; echo unless=$?")
    out.append(f"echo '@@{nonce} end'")
    return "\n".join(out) + "\n"


def _paths(steps: Sequence[Rendered]) -> list[str]:
    return sorted({r.target for r in steps if r.step.kind in ("file", "line", "block")})


def read_sections(output: str, nonce: str, operation: str = "facts") -> dict[str, list[str]]:
    """A facts script's output split at its `@@<nonce> <name>` markers: name -> the lines
    after it. A missing `end` marker means the script was cut short (StageError)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(f"@@{nonce} "):
            current = sections.setdefault(line[len(nonce) + 3:], [])
        elif current is not None:
            current.append(line)
    if "end" not in sections:
        raise StageError("the facts script ended early", system="SSH", operation=operation)
    return sections


def parse_facts(output: str, steps: Sequence[Rendered], nonce: str) -> Facts:
    """The facts `facts_script` printed."""
    sections = read_sections(output, nonce)
    files: dict[str, FileFact] = {}
    for i, path in enumerate(_paths(steps)):
        lines = sections.get(f"file {i}", [])
        if not lines or lines[0] == "absent":
            files[path] = FileFact(False)
        elif lines[0] == "notfile":
            files[path] = FileFact(True, content=None)
        else:
            mode, owner, _size = lines[0].split()
            try:
                content: str | None = base64.b64decode(lines[1] if len(lines) > 1 else "").decode()
            except UnicodeDecodeError:
                content = None
            files[path] = FileFact(True, _mode(mode), owner, content)
    packages = {}
    for line in sections.get("packages", []):
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].endswith(" installed"):
            packages[parts[0]] = parts[2]
    guards = {}
    for r in steps:
        if f"guard {r.step.index}" not in sections:
            continue
        pairs = (line.split("=", 1) for line in sections[f"guard {r.step.index}"] if "=" in line)
        values = {k: v for k, v in pairs}
        guards[r.step.index] = GuardFact(values.get("creates") == "1",
                                         int(values["unless"]) if "unless" in values else None)
    owed = [ln.strip() for ln in sections.get("pending", []) if handler_commands(ln.strip()) is not None]
    return Facts(files, packages, guards, tuple(dict.fromkeys(owed)))


# --- steps: facts in, commands out ----------------------------------------------------------------


@dataclass(frozen=True)
class StepPlan:
    """What a step will do on one host: `change` with its commands (and a diff for files),
    `ok` (already so) or `skipped` (its `when` is false), each with a reason."""

    step: Step
    action: str  # change | ok | skipped
    reason: str
    commands: tuple[str, ...] = ()
    diff: str = ""

    @property
    def script(self) -> str:
        """The step's commands as one shell command, run as root when the step becomes."""
        body = "set -e\n" + "\n".join(self.commands)
        return f"sudo -n -- sh -c {shlex.quote(body)}" if self.step.become else f"sh -c {shlex.quote(body)}"


@dataclass(frozen=True)
class HostPlan:
    host: str
    steps: tuple[StepPlan, ...]
    handlers: tuple[str, ...]  # handler names, in the order they run
    pending_file: str = ""  # where the host records handlers owed (Playbook.pending_file); "": nowhere
    owed: tuple[str, ...] = ()  # handlers an earlier run cut short left owed (among `handlers`)

    @property
    def todo(self) -> tuple[StepPlan, ...]:
        return tuple(s for s in self.steps if s.action == "change")

    @property
    def needed(self) -> bool:
        """Whether applying does anything: a step changes, or handlers are owed."""
        return bool(self.todo or self.handlers)


def render(playbook: Playbook, variables: Mapping[str, Any]) -> list[Rendered | StepPlan]:
    """Each step rendered for one host, or its `skipped` plan when `when` is false. Values in
    `command`/`unless` are shell-quoted as they are interpolated (`{{ hostname }}` becomes
    `'node-01'`), so a hostile inventory value stays one inert word."""
    env = {**playbook.vars, **variables}
    out: list[Rendered | StepPlan] = []
    for step in playbook.steps:
        if step.when is not None and not evaluate(step.when, env):
            out.append(StepPlan(step, "skipped", f"when: {step.when} is false"))
            continue
        if step.kind == "command":
            out.append(Rendered(step, step.target, command=_template(step.target, env, shell=True),
                                creates=_template(step.creates, env) if step.creates else None,
                                unless=_template(step.unless, env, shell=True) if step.unless else None))
            continue
        target = _template(step.target, env) if step.target else ""
        if step.kind != "packages" and not target.startswith("/"):
            raise ValueError(f"step {step.name!r}: the path {target!r} is not absolute")
        content = None
        if step.kind == "file":
            content = _template(step.template.read_text(), env) if step.template is not None else step.content
        elif step.kind in ("line", "block"):
            content = _template(step.text, env)
        out.append(Rendered(step, target, content=content))
    return out


def _template(text: str, env: Mapping[str, Any], *, shell: bool = False) -> str:
    """Jinja2 in a sandbox, undefined names an error; for shell text every `{{ }}` value is
    passed through shlex.quote."""
    if "{" not in text:
        return text
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    def finalize(value: Any) -> Any:
        return shlex.quote(str(value)) if shell else value

    jinja = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, finalize=finalize,
                                 autoescape=False)
    return jinja.from_string(text).render(**env)


def plan_host(host: str, items: Sequence[Rendered | StepPlan], facts: Facts, pending_file: str = "") -> HostPlan:
    """Pure: the commands each step would run on `host`, given its facts; handlers owed from
    a run cut short run again even when no step changes."""
    plans = [item if isinstance(item, StepPlan) else plan_step(item, facts) for item in items]
    handlers: list[str] = list(facts.pending)
    for p in plans:
        if p.action == "change":
            handlers.extend(n for n in p.step.notify if n not in handlers)
    handlers.sort(key=lambda n: n != "daemon-reload")  # units reloaded before any restart
    return HostPlan(host, tuple(plans), tuple(handlers), pending_file, facts.pending)


def plan_step(r: Rendered, facts: Facts) -> StepPlan:
    step = r.step
    if step.kind == "packages":
        missing = [p for p in step.packages if p not in facts.packages]
        if not missing:
            return StepPlan(step, "ok", "installed: " + ", ".join(step.packages))
        command = ("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
                   + " ".join(map(shlex.quote, missing)))
        return StepPlan(step, "change", "not installed: " + ", ".join(missing), (command,))
    if step.kind == "command":
        guard = facts.guards.get(step.index, GuardFact())
        if r.creates is not None and guard.creates:
            return StepPlan(step, "ok", f"{r.creates} exists")
        if r.unless is not None and guard.unless == 0:
            return StepPlan(step, "ok", "unless succeeded")
        why = f"{r.creates} is absent" if r.creates else ("unless failed" if r.unless else "a command always runs")
        return StepPlan(step, "change", why, (r.command,))
    fact = facts.files.get(r.target, FileFact(False))
    if fact.exists and fact.content is None:
        return StepPlan(step, "change", f"{r.target} is not a regular text file", (
            f"echo {shlex.quote(r.target + ' is not a regular text file: botlab will not replace it')} >&2",
            "exit 1"))
    old = fact.content if fact.exists else None
    if step.kind == "file":
        new = r.content or ""
    elif step.kind == "line":
        new = ensure_line(old or "", r.content or "", step.regexp)
    else:
        new = ensure_block(old or "", r.content or "", step.marker)
    return _file_plan(step, r.target, fact, old, new)


def ensure_line(text: str, line: str, regexp: str | None) -> str:
    """`text` with `line` in it: replacing the last line `regexp` matches, else appended."""
    lines = text.splitlines()
    if regexp is not None:
        matches = [i for i, existing in enumerate(lines) if re.search(regexp, existing)]
        if matches:
            if lines[matches[-1]] == line:
                return text
            lines[matches[-1]] = line
            return "\n".join(lines) + "\n"
    elif line in lines:
        return text
    return "\n".join([*lines, line]) + "\n"


def ensure_block(text: str, block: str, marker: str) -> str:
    """`text` with `block` between `# BEGIN marker` and `# END marker`, replaced in place or
    appended."""
    begin, end = f"# BEGIN {marker}", f"# END {marker}"
    wanted = [begin, *block.rstrip("\n").splitlines(), end]
    lines = text.splitlines()
    if begin in lines and end in lines[lines.index(begin):]:
        start = lines.index(begin)
        stop = lines.index(end, start)
        if lines[start:stop + 1] == wanted:
            return text
        lines[start:stop + 1] = wanted
    else:
        lines.extend(wanted)
    return "\n".join(lines) + "\n"


def _file_plan(step: Step, path: str, fact: FileFact, old: str | None, new: str) -> StepPlan:
    mode = step.mode or (fact.mode if fact.exists else "0644")
    q = shlex.quote(path)
    if old != new:
        diff = "".join(difflib.unified_diff((old or "").splitlines(keepends=True), new.splitlines(keepends=True),
                                            fromfile=path if old is not None else "/dev/null", tofile=path))
        owner = step.owner or (fact.owner if fact.exists else None)
        if fact.exists:
            # The file must still be what the facts saw: a change since is not overwritten blind.
            guard = (f'[ "$(sha256sum < {q} | cut -c1-64)" = {fact.sha256} ] || '
                     f"{{ echo {shlex.quote(path + ' changed since its facts were read')} >&2; exit 1; }}")
        else:
            guard = (f"[ ! -e {q} ] || {{ echo {shlex.quote(path + ' appeared since its facts were read')} >&2;"
                     " exit 1; }")
        commands = [guard]
        if not fact.exists:
            commands.append(f"mkdir -p -- {shlex.quote(posixpath.dirname(path) or '/')}")
        commands += [f"tmp=$(mktemp {shlex.quote(path + '.botlab.XXXXXX')})",
                     f"printf %s {base64.b64encode(new.encode()).decode()} | base64 -d > \"$tmp\"",
                     f'chmod {mode} "$tmp"']
        if owner:
            commands.append(f'chown {shlex.quote(owner)} "$tmp"')
        commands.append(f'mv -f -- "$tmp" {q}')
        state = "differs" if fact.exists else "absent"
        return StepPlan(step, "change", f"{path} {state}", tuple(commands), diff)
    fixes: list[str] = []
    why: list[str] = []
    if step.mode and step.mode != fact.mode:
        fixes.append(f"chmod {step.mode} -- {q}")
        why.append(f"mode {fact.mode} -> {step.mode}")
    if step.owner and not _same_owner(step.owner, fact.owner):
        fixes.append(f"chown {shlex.quote(step.owner)} -- {q}")
        why.append(f"owner {fact.owner} -> {step.owner}")
    if fixes:
        return StepPlan(step, "change", ", ".join(why), tuple(fixes))
    return StepPlan(step, "ok", f"{path} is as wanted")


def _same_owner(wanted: str, actual: str) -> bool:
    user, _, group = wanted.partition(":")
    a_user, _, a_group = actual.partition(":")
    return user == a_user and (not group or group == a_group)


def apply_script(plan: HostPlan, nonce: str) -> str:
    """Every change and handler of a host in one script: each section marked, its exit code
    printed; the first failure ends the script (later steps and handlers do not run)."""
    out = ["exec 2>&1"]
    if plan.handlers and plan.pending_file:  # owed from here on, until the last handler ran
        q = shlex.quote(plan.pending_file)
        record = f"mkdir -p -- {shlex.quote(plan.pending_file.rsplit('/', 1)[0])} && printf '%s\\n' " + " ".join(
            shlex.quote(n) for n in plan.handlers) + f" > {q}.tmp && mv -f -- {q}.tmp {q}"
        out.append(f"sudo -n -- sh -c {shlex.quote(record)} </dev/null || {{ echo 'cannot record owed handlers';"
                   " exit 0; }")
    for p in plan.todo:
        out.append(f"echo '@@{nonce} step {p.step.index}'")
        out.append(f"{p.script} </dev/null")
        out.append(f"rc=$?; echo; echo \"@@{nonce} rc {p.step.index} $rc\"; [ $rc -eq 0 ] || exit 0")
    for i, name in enumerate(plan.handlers):
        out.append(f"echo '@@{nonce} handler {i}'")
        out.append(f"sudo -n -- sh -c {shlex.quote(handler_commands(name) or 'false')} </dev/null")
        out.append(f"rc=$?; echo; echo \"@@{nonce} hrc {i} $rc\"; [ $rc -eq 0 ] || exit 0")
    if plan.handlers and plan.pending_file:
        out.append(f"sudo -n -- rm -f -- {shlex.quote(plan.pending_file)} </dev/null")
    return "\n".join(out) + "\n"


# --- results (fabric's Result / GroupResult) -------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str  # changed | ok | failed | skipped (in check mode, changed means "would change")
    reason: str = ""
    commands: tuple[str, ...] = ()
    diff: str = ""
    output: str = ""  # the last TAIL lines of its output (stdout and stderr together)


@dataclass
class HostResult:
    host: str
    steps: list[StepResult] = field(default_factory=list)
    handlers: list[StepResult] = field(default_factory=list)
    error: str | None = None  # why the host failed: a step, or the host could not be reached
    round_trips: int = 0

    @property
    def changed(self) -> bool:
        return any(s.status == "changed" for s in self.steps)

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class PlaybookResult:
    """Per host results; the caller (a stage) decides what a failed host means."""

    playbook: str
    check: bool
    hosts: dict[str, HostResult] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, str]:
        return {h: r.error for h, r in self.hosts.items() if r.error is not None}

    @property
    def changed(self) -> list[str]:
        return [h for h, r in self.hosts.items() if r.changed]

    def raise_for_failures(self) -> None:
        """One StageError naming every failed host and its error (like fabric's GroupException)."""
        if self.failed:
            listed = "; ".join(f"{h}: {e}" for h, e in sorted(self.failed.items()))
            raise StageError(f"playbook {self.playbook} failed on {len(self.failed)} of {len(self.hosts)} hosts:"
                             f" {listed}", hint="fix the cause, then run again: done hosts make no changes")


def _tail(text: str) -> str:
    return "\n".join(text.strip("\n").splitlines()[-TAIL:])


# --- running ------------------------------------------------------------------------------------------


async def run_playbook(ssh: SshDriver, playbook: Playbook, hosts: Mapping[str, Mapping[str, Any]], *,
                       check: bool = False, pending_dir: str = PENDING_DIR) -> PlaybookResult:
    """Run `playbook` on every host in `hosts` (hostname -> its variables: gpu, roles, runtime...)
    in parallel, bounded by the driver; one host's failure does not stop the others. Check mode
    gathers facts and reports what would run, changing nothing."""
    result = PlaybookResult(playbook.name, check)
    done = await asyncio.gather(*(run_host(ssh, playbook, h, v, check=check, pending_dir=pending_dir)
                                  for h, v in hosts.items()))
    result.hosts = {r.host: r for r in done}
    return result


async def run_host(ssh: SshDriver, playbook: Playbook, host: str, variables: Mapping[str, Any], *,
                   check: bool = False, pending_dir: str = PENDING_DIR) -> HostResult:
    """At most two round trips: the facts script, then one script with every change."""
    result = HostResult(host)
    before = ssh.round_trips.get(host, 0)
    try:
        await _run_host(ssh, playbook, host, {"hostname": host, **variables}, check, result, pending_dir)
    except StageError as exc:
        result.error = str(exc)
    except (ValueError, OSError) as exc:  # a `when` or template that cannot be evaluated for this host
        result.error = str(exc)
    except Exception as exc:  # a jinja error: the host fails, the others go on
        result.error = f"{type(exc).__name__}: {exc}"
    result.round_trips = ssh.round_trips.get(host, 0) - before
    return result


async def _run_host(ssh: SshDriver, playbook: Playbook, host: str, variables: Mapping[str, Any], check: bool,
                    result: HostResult, pending_dir: str) -> None:
    plan = await check_host(ssh, playbook, host, variables, pending_dir)
    if check or not plan.needed:
        status = {"change": "changed", "ok": "ok", "skipped": "skipped"}
        result.steps = [StepResult(p.step.name, status[p.action], p.reason, p.commands, p.diff) for p in plan.steps]
        result.handlers = [StepResult(n, "changed" if check else "ok", "notified",
                                      (handler_commands(n) or "",)) for n in plan.handlers]
        return
    await apply_host(ssh, plan, result)


async def check_host(ssh: SshDriver, playbook: Playbook, host: str, variables: Mapping[str, Any],
                     pending_dir: str = PENDING_DIR) -> HostPlan:
    """The host's plan from its facts (one round trip; none when no step needs facts): what
    check mode shows and `apply_host` executes. `variables` must hold `hostname`."""
    items = render(playbook, variables)
    rendered = [i for i in items if isinstance(i, Rendered)]
    facts = Facts()
    pending = playbook.pending_file(pending_dir)
    if pending or any(r.step.kind != "command" or r.creates or r.unless for r in rendered):
        nonce = secrets.token_hex(8)
        become = any(r.step.become for r in rendered)
        answer = await ssh.run(host, "sh -s", sudo=become, stdin=facts_script(rendered, nonce, pending))
        if f"@@{nonce} end" not in answer.stdout:
            raise StageError(f"the facts script ended early (exit {answer.exited}): {_tail(answer.stderr)[-300:]}",
                             system="SSH", operation="facts", where=host,
                             hint="with become, the login user needs password-less sudo" if become else None)
        facts = parse_facts(answer.stdout, rendered, nonce)
    return plan_host(host, items, facts, pending)


async def apply_host(ssh: SshDriver, plan: HostPlan, result: HostResult) -> None:
    """Execute exactly `plan` (from `check_host`) in one script; fills `result`."""
    nonce = secrets.token_hex(8)
    host = plan.host
    answer = await ssh.run(host, "sh -s", stdin=apply_script(plan, nonce), timeout=max(ssh.deadlines.call, 300.0))
    outputs, codes = _sections(answer.stdout, nonce)
    failed = False
    for p in plan.steps:
        if p.action != "change":
            result.steps.append(StepResult(p.step.name, p.action, p.reason, p.commands, p.diff))
            continue
        key = str(p.step.index)
        if failed or key not in codes.get("rc", {}):
            why = "an earlier step failed" if failed else "the apply script ended before it"
            result.steps.append(StepResult(p.step.name, "skipped" if failed else "failed", why, p.commands, p.diff,
                                           _tail(outputs.get(f"step {key}", ""))))
            if not failed:
                failed = True
                result.error = f"step {p.step.name!r}: {why} (exit {answer.exited}: {_tail(answer.stdout)[-300:]})"
            continue
        output = _tail(outputs.get(f"step {key}", ""))
        if codes["rc"][key] != 0:
            failed = True
            result.error = f"step {p.step.name!r} failed (exit {codes['rc'][key]}): {output[-300:]}"
            result.steps.append(StepResult(p.step.name, "failed", p.reason, p.commands, p.diff, output))
        else:
            result.steps.append(StepResult(p.step.name, "changed", p.reason, p.commands, p.diff, output))
    for i, name in enumerate(plan.handlers):
        code = codes.get("hrc", {}).get(str(i))
        output = _tail(outputs.get(f"handler {i}", ""))
        if failed and code is None:
            result.handlers.append(StepResult(name, "skipped", "a step failed", (handler_commands(name) or "",)))
        elif code != 0:
            failed = True
            result.error = result.error or f"handler {name!r} failed (exit {code}): {output[-300:]}"
            result.handlers.append(StepResult(name, "failed", "notified", (handler_commands(name) or "",), "", output))
        else:
            result.handlers.append(StepResult(name, "changed", "notified", (handler_commands(name) or "",), "", output))


def _sections(output: str, nonce: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The apply script's output per section, and the exit codes it printed."""
    outputs: dict[str, list[str]] = {}
    codes: dict[str, dict[str, int]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(f"@@{nonce} "):
            words = line.split()
            if words[1] in ("rc", "hrc"):
                codes.setdefault(words[1], {})[words[2]] = int(words[3])
                current = None
            else:
                current = outputs.setdefault(" ".join(words[1:]), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in outputs.items()}, codes
