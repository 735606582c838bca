"""Shared helpers of the lab's host tools (systemctl, dockerd, docker, containerd, nvidia-*).

The tools run *inside* a lab host under the host's own /usr/bin/python3, so this module and
every tool use the standard library only and never import botlab. Every absolute path a tool
touches goes through `host_path`, so tests can run the tools against a plain folder by setting
BOTLAB_HOST_ROOT (on a real lab host it is unset: the host's root is "/").
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

FACTS_PATH = "/etc/botlab-lab/host.json"
JOURNAL_DIR = "/var/log/botlab-lab/journal"
FAULTS_PATH = "/etc/botlab-lab/faults.json"


def root() -> Path:
    return Path(os.environ.get("BOTLAB_HOST_ROOT") or "/")


def host_path(path: str | os.PathLike[str]) -> Path:
    """The file a host path names: `/etc/x` is ROOT/etc/x."""
    text = os.fspath(path)
    if not text.startswith("/"):
        raise ValueError(f"not an absolute path: {text}")
    return root() / text.lstrip("/")


def facts() -> dict[str, Any]:
    """What the lab says this host is: {"hostname", "gpus": [{"index", "model", "uuid",
    "bus_id", "memory_mib"}], "driver_version", "cuda_version"}; an empty host when absent."""
    try:
        data = json.loads(host_path(FACTS_PATH).read_text())
    except FileNotFoundError:
        data = {}
    data.setdefault("gpus", [])
    return data


@functools.cache
def hostname() -> str:
    """The host's name as the lab's facts give it, else the kernel's (what gethostname() returns); read once."""
    return str(facts().get("hostname") or os.uname().nodename)


def journal_path(unit: str) -> str:
    """The host file a unit's journal lines go to (systemctl writes it, journalctl and `systemctl status` read it)."""
    return f"{JOURNAL_DIR}/{unit}.log"


def journal_tail(unit: str, lines: int) -> list[str]:
    """The last `lines` lines of a unit's journal (all of them for 0); none when it has no journal."""
    try:
        content = host_path(journal_path(unit)).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    return content[-lines:] if lines else content


def read_json(path: str) -> Any:
    """A host JSON file's content, or None when it does not exist."""
    try:
        return json.loads(host_path(path).read_text())
    except FileNotFoundError:
        return None


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Write a host file so readers see the old or the new content, never half of it."""
    target = host_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str, data: Any, mode: int = 0o644) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited: it only waits for its parent to reap it. No state: it exited while /proc was read.
    state = process_state(pid)
    return state is not None and state != "Z"


def notify_ready() -> None:
    """Tell systemctl the service is up (the lab's stand-in for sd_notify READY=1): it sets
    BOTLAB_NOTIFY_FILE for Type=notify services and waits for this file."""
    target = os.environ.get("BOTLAB_NOTIFY_FILE")
    if target:
        tmp = f"{target}.{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(f"READY=1\nMAINPID={os.getpid()}\n")
        os.replace(tmp, target)


def serve_until_stopped(cleanup: Any = None) -> NoReturn:
    """Block until SIGTERM or SIGINT, run `cleanup()`, exit 0: what a daemon does once up.
    Call `block_stop_signals()` before `notify_ready()` so a stop that arrives at once is not lost."""
    block_stop_signals()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    if cleanup is not None:
        cleanup()
    sys.exit(0)


def block_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


# --- Additions used by the tools (systemctl, dockerd, containerd, ...) -------------------------

SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (the state letter first), read once; None when there
    is no such process (safe against it exiting)."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_ticks(fields: list[str]) -> int | None:
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def proc_start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), to tell a process from a later one that reuses its pid."""
    fields = _stat_fields(pid)
    return None if fields is None else _start_ticks(fields)


def process_state(pid: int) -> str | None:
    """The state letter of `pid` (R, S, Z, ...), None when there is no such process (safe against it exiting)."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def same_process(pid: int, start_ticks: int | None) -> bool:
    """Whether `pid` is still the live (not zombie) process that had `start_ticks` (state and start from one read)."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or _start_ticks(fields) == start_ticks


def live_state(path: str) -> dict[str, Any] | None:
    """A daemon's state file ({"pid", "pid_start", ...}) if that daemon still runs, else None."""
    data = read_json(path)
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or not same_process(pid, data.get("pid_start")):
        return None
    return data


def remove_own_state(path: str) -> None:
    """On a daemon's way out: remove its state file, unless another instance has written it since."""
    data = read_json(path)
    if isinstance(data, dict) and data.get("pid") == os.getpid():
        host_path(path).unlink(missing_ok=True)


def which(name: str, path_env: str | None = None) -> str | None:
    """The host path `name` resolves to through PATH (absolute names as they are), if executable."""
    dirs = (path_env or SEARCH_PATH).split(":")
    candidates = [name] if "/" in name else [f"{d.rstrip('/')}/{name}" for d in dirs if d]
    for candidate in candidates:
        if not candidate.startswith("/"):
            continue
        real = host_path(candidate)
        if real.is_file() and os.access(real, os.X_OK):
            return candidate
    return None


def quote_escaped(text: str, control_format: str) -> str:
    """`text` in double quotes, with `"` and `\\` backslash-escaped, newline, tab and carriage return as \\n, \\t,
    \\r, and the other control characters and DEL as `control_format.format(code point)`."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(control_format.format(ord(ch)))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_quote(text: str) -> str:
    """Go's strconv.Quote for the ASCII/UTF-8 text our tools log."""
    return quote_escaped(text, "\\x{:02x}")


def logrus_line(level: str, msg: str, **fields: Any) -> str:
    """One line in logrus' text format without a TTY, as dockerd, containerd and nvidia-ctk log:
    time="2024-05-01T10:00:00.123456789Z" level=info msg="..." key=value."""
    now = datetime.datetime.now(datetime.UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"

    def fmt(value: Any) -> str:
        text = str(value)
        if text and all(c.isalnum() or c in "-._/@^+" for c in text):
            return text
        return go_quote(text)

    parts = [f'time="{stamp}"', f"level={level}", f"msg={go_quote(msg)}"]
    parts += [f"{key}={fmt(value)}" for key, value in sorted(fields.items())]
    return " ".join(parts)


def log(level: str, msg: str, **fields: Any) -> None:
    """Log a logrus line to stderr (the journal, under systemctl)."""
    print(logrus_line(level, msg, **fields), file=sys.stderr, flush=True)


# --- injected faults ------------------------------------------------------------------------------


def injected_faults(argv: list[str]) -> None:
    """The host's injected faults (FAULTS_PATH, root's, written by a test as root):
    `{"drop_ssh": [{"command": "systemctl restart containerd", "times": 1}]}` cuts the SSH
    session of a tool run whose command line starts with `command` (the tool does not run, as a
    network blip at that moment would leave it), `times` times. Tools run by other users never
    see the file. Every tool's wrapper calls this first; without the file it costs one open()."""
    try:
        fd = os.open(host_path(FAULTS_PATH), os.O_RDWR)
    except OSError:
        return
    line = " ".join([os.path.basename(argv[0]), *argv[1:]])
    with os.fdopen(fd, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            data = json.load(fh)
        except ValueError:
            return
        hit = next((f for f in data.get("drop_ssh") or [] if int(f.get("times", 1)) > 0
                    and line.startswith(str(f.get("command", "\0")))), None)
        if hit is None:
            return
        hit["times"] = int(hit.get("times", 1)) - 1
        fh.seek(0)
        fh.truncate()
        json.dump(data, fh)
    for pid in _session_sshd():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    sys.exit(255)


def _session_sshd() -> list[int]:
    """This process's per-connection sshd ancestors (`sshd: USER [priv]`, `sshd: USER@notty`), never the
    listener."""
    found = []
    pid = os.getppid()
    while pid > 1:
        fields = _stat_fields(pid)
        if fields is None:
            break
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            break
        if cmdline.startswith("sshd: ") and "[listener]" not in cmdline:
            found.append(pid)
        pid = int(fields[1])
    return found
