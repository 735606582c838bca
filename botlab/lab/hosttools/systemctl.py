"""The lab's systemctl: systemd 252 (Debian 12 / Ubuntu) without a running systemd.

State, all under /run/systemd-lab/ (host paths), changed only while holding an flock on `lock`:
- units.json: the unit definitions as of the last daemon-reload (what "systemd has loaded"); start and
  friends use these, and warn when the files on disk changed since, as systemd does.
- runtime/<unit>.json: active state, main pid, exit statuses of the unit's processes.
- exit/<unit>.<invocation>.json: written by a service's supervisor when its main process exits.

A started service runs under a small supervisor process (forked from systemctl, then detached in its own
session) that waits for it, so exit statuses are known as systemd knows them, and nothing depends on systemctl
staying alive. Output of services and systemd's own messages go to /var/log/botlab-lab/journal/<unit>.log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from typing import Any

import hostlib
import unitfile

STATE_DIR = "/run/systemd-lab"
LOCK_PATH = f"{STATE_DIR}/lock"
SNAPSHOT_PATH = f"{STATE_DIR}/units.json"
EXIT_STATUS_NAMES = {
    0: "SUCCESS", 1: "FAILURE", 2: "INVALIDARGUMENT", 3: "NOTIMPLEMENTED", 4: "NOPERMISSION", 5: "NOTINSTALLED",
    6: "NOTCONFIGURED", 7: "NOTRUNNING", 200: "CHDIR", 203: "EXEC", 226: "NAMESPACE",
}
RESULT_EXPLANATIONS = {
    "resources": "of unavailable resources or another system error",
    "protocol": "the service did not take the steps required by its unit configuration",
    "timeout": "a timeout was exceeded",
    "exit-code": "the control process exited with error code",
    "signal": "a fatal signal was delivered to the control process",
    "core-dump": "a fatal signal was delivered causing the control process to dump core",
    "start-limit-hit": "start of the service was attempted too often",
}
CLEAN_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def now() -> float:
    return time.time()


def format_timestamp(ts: float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def format_relative(ts: float) -> str:
    delta = max(0.0, now() - ts)
    if delta < 1:
        return f"{int(delta * 1000)}ms ago"
    seconds = int(delta)
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}min {seconds % 60}s ago"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}min ago"
    return f"{seconds // 86400} days ago"


def signal_name(status: int) -> str:
    """A signal's name as systemd prints it after a status (TERM, KILL, ...); the number when no signal has it."""
    try:
        return signal.Signals(status).name[3:]
    except ValueError:
        return str(status)


def status_text(code: str | None, status: int) -> str:
    """`code=exited, status=1/FAILURE` as systemd prints a process' end."""
    if code == "exited":
        name = EXIT_STATUS_NAMES.get(status)
        return f"code=exited, status={status}/{name}" if name else f"code=exited, status={status}"
    return f"code={code}, status={status}/{signal_name(status)}"


def socket_of(name: str) -> str:
    """The socket unit that activates a service: docker.service -> docker.socket."""
    return name.rsplit(".", 1)[0] + ".socket"


# --- journal --------------------------------------------------------------------------------------------------------

def journal(unit: str, text: str, ident: str = "systemd[1]") -> None:
    """Append one message as the journal would show it."""
    target = hostlib.host_path(hostlib.journal_path(unit))
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime())
    with open(target, "a") as fh:
        fh.write(f"{stamp} {hostlib.hostname()} {ident}: {text}\n")


# --- the manager's state --------------------------------------------------------------------------------------------

class Manager:
    def __init__(self) -> None:
        self._snapshot: dict[str, Any] | None = None
        self._lock_fd: int | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        path = hostlib.host_path(LOCK_PATH)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
            self._snapshot = None
            yield
        finally:
            self._lock_fd = None
            os.close(fd)

    # -- loaded definitions

    def snapshot(self) -> dict[str, Any]:
        if self._snapshot is None:
            data = hostlib.read_json(SNAPSHOT_PATH)
            self._snapshot = data if isinstance(data, dict) else {"units": {}}
        return self._snapshot

    def save_snapshot(self) -> None:
        if self._lock_fd is not None:
            hostlib.write_json(SNAPSHOT_PATH, self.snapshot())

    def daemon_reload(self) -> None:
        units: dict[str, Any] = {}
        for name in sorted(set(unitfile.all_unit_names()) | set(self.snapshot()["units"])):
            definition = unitfile.load(name)
            if definition["load_state"] == "not-found":
                continue
            units[name] = definition
            self._log_load_messages(definition)
        self._snapshot = {"units": units, "reloaded_at": now()}
        self.save_snapshot()

    def _log_load_messages(self, definition: dict[str, Any]) -> None:
        for _level, text in definition.get("messages", []):
            journal(definition["name"], text)

    def unit(self, name: str) -> dict[str, Any]:
        """The loaded definition; a unit systemd has not loaded yet is loaded from disk now, as systemd does."""
        loaded = self.snapshot()["units"].get(name)
        if loaded is not None:
            return dict(loaded)
        definition = unitfile.load(name)
        if definition["load_state"] != "not-found" and self._lock_fd is not None:
            self._log_load_messages(definition)
            self.snapshot()["units"][name] = definition
            self.save_snapshot()
        return definition

    def need_reload(self, definition: dict[str, Any]) -> bool:
        if definition["load_state"] == "not-found":
            return False
        return bool(definition.get("sources") != unitfile.sources_of(definition["name"]))

    # -- runtime state

    def runtime_path(self, name: str) -> str:
        return f"{STATE_DIR}/runtime/{name}.json"

    def exit_path(self, name: str, invocation: str) -> str:
        return f"{STATE_DIR}/exit/{name}.{invocation}.json"

    def runtime(self, name: str) -> dict[str, Any]:
        data = hostlib.read_json(self.runtime_path(name))
        state: dict[str, Any] = {
            "active_state": "inactive", "sub_state": "dead", "result": "success", "main_pid": 0, "main_start": None,
            "invocation": "", "exec_main": None, "processes": [], "active_enter": None, "inactive_enter": None,
            "state_change": None, "exit_recorded": False,
        }
        if isinstance(data, dict):
            state.update(data)
        self._notice_exit(name, state)
        return state

    def _notice_exit(self, name: str, state: dict[str, Any]) -> None:
        """A main process that died after start (its supervisor recorded how) shows as failed/inactive."""
        if state["active_state"] != "active" or state["sub_state"] != "running" or not state["main_pid"]:
            return
        if hostlib.same_process(state["main_pid"], state["main_start"]):
            return
        record = hostlib.read_json(self.exit_path(name, state["invocation"]))
        deadline = now() + 2
        while record is None and hostlib.same_process(state.get("supervisor") or 0, None) and now() < deadline:
            time.sleep(0.01)  # the supervisor is about to record how the process ended
            record = hostlib.read_json(self.exit_path(name, state["invocation"]))
        if record is None:
            record = {"code": "killed", "status": int(signal.SIGKILL), "exit_time": now()}
        apply_main_exit(name, state, record, log=False)

    def save_runtime(self, name: str, state: dict[str, Any]) -> None:
        state["state_change"] = now()
        hostlib.write_json(self.runtime_path(name), state)

    def enabled_state(self, definition: dict[str, Any]) -> str:
        if definition["load_state"] == "masked":
            return "masked"
        if definition.get("fragment_path") is None:
            return ""
        install = definition.get("install") or {}
        targets = install.get("WantedBy", []) + install.get("RequiredBy", [])
        if not targets and not install.get("Alias") and not install.get("Also"):
            return "static"
        name = definition["name"]
        for target in install.get("WantedBy", []):
            if hostlib.host_path(f"/etc/systemd/system/{target}.wants/{name}").is_symlink():
                return "enabled"
        for target in install.get("RequiredBy", []):
            if hostlib.host_path(f"/etc/systemd/system/{target}.requires/{name}").is_symlink():
                return "enabled"
        return "disabled"


def unit_label(definition: dict[str, Any]) -> str:
    """How systemd 252 names a unit in its status messages: "docker.service - Docker Application ..."."""
    description = (definition.get("unit") or {}).get("Description")
    return f"{definition['name']} - {description}" if description else definition["name"]


def apply_main_exit(name: str, state: dict[str, Any], record: dict[str, Any], log: bool = True) -> None:
    """The main process ended on its own: the unit goes inactive (clean exit) or failed."""
    code, status = record.get("code"), int(record.get("status", 0))
    main = state.get("exec_main") or {}
    main.update(exit_time=record.get("exit_time"), code=code, status=status)
    state["exec_main"] = main
    for proc in state.get("processes", []):
        if proc.get("pid") == main.get("pid") and proc.get("key") == "ExecStart":
            proc.update(code=code, status=status, exit_time=record.get("exit_time"))
    clean = (code == "exited" and status == 0) or (code == "killed" and status in [int(s) for s in CLEAN_SIGNALS])
    state["exit_recorded"] = True
    state["main_pid"] = 0
    state["active_exit"] = now()
    if log:
        journal(name, f"{name}: Main process exited, {status_text(code, status)}")
    if clean and code == "exited":
        state.update(active_state="inactive", sub_state="dead", result="success", inactive_enter=now())
        if log:
            journal(name, f"{name}: Deactivated successfully.")
    else:
        result = "exit-code" if code == "exited" else ("core-dump" if code == "dumped" else "signal")
        state.update(active_state="failed", sub_state="failed", result=result, inactive_enter=now())
        if log:
            journal(name, f"{name}: Failed with result '{result}'.")


# --- processes ------------------------------------------------------------------------------------------------------

def load_env_file(path: str) -> list[str] | None:
    """systemd's EnvironmentFile= format; None when the file is missing."""
    try:
        text = hostlib.host_path(path).read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None
    result: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        stripped = line.strip()
        if not stripped or stripped[0] in "#;" or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if stripped.partition("=")[2].strip()[0] == '"':
                value = value.replace('\\"', '"').replace("\\\\", "\\").replace("\\$", "$").replace("\\`", "`")
        result.append(f"{key}={value}")
    return result


def expand_argv(argv: list[str], env: dict[str, str]) -> list[str]:
    """replace_env_argv(): a word "$FOO" becomes FOO split at whitespace, "${FOO}" is substituted in place."""
    out: list[str] = []
    for word in argv:
        if len(word) > 1 and word[0] == "$" and word[1] != "{" and word[1:].replace("_", "a").isalnum():
            out.extend(env.get(word[1:], "").split())
            continue
        result, i = [], 0
        while i < len(word):
            if word.startswith("$$", i):
                result.append("$")
                i += 2
            elif word.startswith("${", i) and "}" in word[i:]:
                end = word.index("}", i)
                result.append(env.get(word[i + 2:end], ""))
                i = end + 1
            else:
                result.append(word[i])
                i += 1
        out.append("".join(result))
    return out


class ResultError(Exception):
    """A failure that carries systemd's result for it ("exit-code", "timeout", ...)."""

    def __init__(self, result: str) -> None:
        super().__init__(result)
        self.result = result


class ProcessFailure(ResultError):
    """A unit's process failed."""


class Runner:
    """Starts and stops one unit's processes."""

    def __init__(self, manager: Manager, definition: dict[str, Any], state: dict[str, Any]) -> None:
        self.manager = manager
        self.definition = definition
        self.state = state
        self.name: str = definition["name"]
        self.service: dict[str, Any] = definition.get("service") or {}

    # -- environment

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"PATH": hostlib.SEARCH_PATH, "LANG": "C.UTF-8", "INVOCATION_ID": self.state["invocation"]}
        if os.environ.get("BOTLAB_HOST_ROOT"):
            env["BOTLAB_HOST_ROOT"] = os.environ["BOTLAB_HOST_ROOT"]
        for assignment in self.service.get("Environment", []):
            key, _, value = assignment.partition("=")
            env[key] = value
        for entry in self.service.get("EnvironmentFile", []):
            optional = entry.startswith("-")
            loaded = load_env_file(entry[1:] if optional else entry)
            if loaded is None:
                if optional:
                    continue
                journal(self.name, f"{self.name}: Failed to load environment files: No such file or directory")
                journal(self.name, f"{self.name}: Failed to spawn 'start' task: No such file or directory")
                raise ProcessFailure("resources")
            for assignment in loaded:
                key, _, value = assignment.partition("=")
                env[key] = value
        env.update(extra or {})
        return env

    def resolve(self, command: dict[str, Any]) -> str | None:
        return hostlib.which(command["path"])

    def journal_fd(self) -> int:
        target = hostlib.host_path(hostlib.journal_path(self.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        return os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def cwd(self) -> str:
        workdir = (self.definition.get("plain") or {}).get("WorkingDirectory", "/").lstrip("-") or "/"
        return str(hostlib.host_path(workdir if workdir.startswith("/") else "/"))

    def record(self, key: str, command: dict[str, Any], argv: list[str], pid: int) -> dict[str, Any]:
        entry = {"key": key, "path": command["path"], "argv": argv, "ignore": command["ignore"], "pid": pid,
                 "start_time": now(), "exit_time": None, "code": None, "status": 0}
        self.state.setdefault("processes", []).append(entry)
        return entry

    # -- control processes (ExecStartPre=, ExecStop=, ...): run to completion

    def run_control(self, key: str, deadline: float | None, extra_env: dict[str, str] | None = None) -> None:
        for command in (self.definition.get("exec") or {}).get(key, []):
            env = self.environment(extra_env)
            argv = command["argv"] if command["no_env_expand"] else expand_argv(command["argv"], env)
            resolved = self.resolve(command)
            if resolved is None:
                if command["ignore"]:
                    journal(self.name, f"{self.name}: Executable {command['path']} missing, skipping: "
                                       "No such file or directory")
                    continue
                self._exec_failed(command)
                entry = self.record(key, command, argv, 0)
                entry.update(code="exited", status=203, exit_time=now())
                journal(self.name, f"{self.name}: Control process exited, code=exited, status=203/EXEC")
                raise ProcessFailure("exit-code")
            out = self.journal_fd()
            try:
                proc = subprocess.Popen(
                    argv, executable=str(hostlib.host_path(resolved)), env=env, cwd=self.cwd(),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                )
            finally:
                os.close(out)
            entry = self.record(key, command, argv, proc.pid)
            timeout = None if deadline is None else max(0.0, deadline - now())
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                entry.update(code="killed", status=int(signal.SIGKILL), exit_time=now())
                journal(self.name, f"{self.name}: {key.replace('Exec', '')} operation timed out. Terminating.")
                raise ProcessFailure("timeout") from None
            code, status = ("exited", rc) if rc >= 0 else ("killed", -rc)
            entry.update(code=code, status=status, exit_time=now())
            if rc != 0 and not command["ignore"]:
                journal(self.name, f"{self.name}: Control process exited, {status_text(code, status)}")
                raise ProcessFailure("exit-code" if code == "exited" else "signal")

    def _exec_failed(self, command: dict[str, Any]) -> None:
        journal(self.name, f"{self.name}: Failed to locate executable {command['path']}: No such file or directory")
        journal(self.name, f"{self.name}: Failed at step EXEC spawning {command['path']}: No such file or directory")

    # -- the main process

    def spawn_main(self, extra_env: dict[str, str]) -> None:
        """Fork the supervisor, which starts ExecStart= and waits for it; sets state main_pid (0 if exec failed)."""
        command = self.definition["exec"]["ExecStart"][0]
        env = self.environment(extra_env)
        argv = command["argv"] if command["no_env_expand"] else expand_argv(command["argv"], env)
        resolved = self.resolve(command)
        invocation = self.state["invocation"]
        exit_file = self.manager.exit_path(self.name, invocation)
        hostlib.host_path(exit_file).parent.mkdir(parents=True, exist_ok=True)
        if resolved is None:
            self._exec_failed(command)
            entry = self.record("ExecStart", command, argv, 0)
            record = {"pid": 0, "code": "exited", "status": 203, "exit_time": now()}
            entry.update(code="exited", status=203, exit_time=record["exit_time"])
            hostlib.write_json(exit_file, record)
            self.state.update(main_pid=0, main_start=None, exec_main=dict(entry))
            return
        read_end, write_end = os.pipe()
        out = self.journal_fd()
        pid = os.fork()
        if pid == 0:  # the supervisor
            try:
                os.close(read_end)
                supervise(self.name, invocation, argv, str(hostlib.host_path(resolved)), env, self.cwd(), out,
                          write_end, exit_file)
            finally:
                os._exit(0)
        os.close(write_end)
        os.close(out)
        with os.fdopen(read_end) as pipe:
            message = pipe.read().strip()
        main_pid = int(message) if message.isdigit() else 0
        entry = self.record("ExecStart", command, argv, main_pid)
        self.state.update(main_pid=main_pid, main_start=hostlib.proc_start_ticks(main_pid) if main_pid else None,
                          exec_main=dict(entry), supervisor=pid)

    def wait_main(self, deadline: float | None, until_ready: bool) -> dict[str, Any] | None:
        """Wait until the main process notifies readiness (returns None) or exits (returns its exit record)."""
        exit_file = self.manager.exit_path(self.name, self.state["invocation"])
        notify = self.notify_path()
        delay = 0.002
        while True:
            record = hostlib.read_json(exit_file)
            if isinstance(record, dict):
                return record
            if until_ready and hostlib.host_path(notify).exists():
                return None
            if deadline is not None and now() >= deadline:
                raise ProcessFailure("timeout")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def notify_path(self) -> str:
        return f"{STATE_DIR}/notify/{self.name}.{self.state['invocation']}"

    def kill_main(self, sig: int) -> None:
        pid = self.state.get("main_pid") or 0
        if pid <= 0 or not hostlib.same_process(pid, self.state.get("main_start")):
            return
        try:
            if sig == signal.SIGKILL or self.service.get("KillMode") == "control-group":
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def wait_exit(self, deadline: float | None) -> dict[str, Any] | None:
        """Wait for the supervisor's exit record of the current main process."""
        exit_file = self.manager.exit_path(self.name, self.state["invocation"])
        delay = 0.002
        while True:
            record = hostlib.read_json(exit_file)
            if isinstance(record, dict):
                return record
            pid = self.state.get("main_pid") or 0
            supervisor = self.state.get("supervisor") or 0
            main_gone = not hostlib.same_process(pid, self.state.get("main_start"))
            if main_gone and not hostlib.same_process(supervisor, None):
                return {"code": "killed", "status": int(signal.SIGKILL), "exit_time": now()}
            if deadline is not None and now() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def supervise(name: str, invocation: str, argv: list[str], executable: str, env: dict[str, str], cwd: str,
              out: int, pipe_fd: int, exit_file: str) -> None:
    """Runs in the forked supervisor: start the service, report its pid, wait for it, record how it ended."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, pipe_fd)
    os.closerange(pipe_fd + 1, 65536)
    try:
        proc = subprocess.Popen(argv, executable=executable, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=1, stderr=2, start_new_session=True)
    except OSError as exc:
        journal(name, f"{name}: Failed to execute {argv[0]}: {exc.strerror}")
        journal(name, f"{name}: Failed at step EXEC spawning {argv[0]}: {exc.strerror}")
        hostlib.write_json(exit_file, {"pid": 0, "code": "exited", "status": 203, "exit_time": now()})
        os.write(pipe_fd, b"0")
        os.close(pipe_fd)
        return
    os.write(pipe_fd, str(proc.pid).encode())
    os.close(pipe_fd)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _, raw = os.waitpid(proc.pid, 0)
    if os.WIFEXITED(raw):
        record = {"pid": proc.pid, "code": "exited", "status": os.WEXITSTATUS(raw)}
    else:
        sig_no = os.WTERMSIG(raw)
        record = {"pid": proc.pid, "code": "dumped" if os.WCOREDUMP(raw) else "killed", "status": sig_no}
    record["exit_time"] = now()
    hostlib.write_json(exit_file, record)
    manager = Manager()
    with manager.locked():
        state = manager.runtime(name)
        if state["invocation"] != invocation or state.get("exit_recorded"):
            return
        if state["active_state"] in ("activating", "deactivating"):
            return  # the systemctl that starts or stops the unit records it
        apply_main_exit(name, state, record)
        manager.save_runtime(name, state)


# --- jobs -----------------------------------------------------------------------------------------------------------

class JobFailed(ResultError):
    """A job (start, stop) failed."""


class Systemctl:
    def __init__(self, quiet: bool = False) -> None:
        self.manager = Manager()
        self.quiet = quiet

    # -- start

    def start(self, name: str, visited: set[str] | None = None) -> None:
        """Start `name` (and what it Requires=/Wants=); raises JobFailed as the job's result."""
        visited = visited if visited is not None else set()
        if name in visited:
            return
        visited.add(name)
        definition = self.manager.unit(name)
        unit_section = definition.get("unit") or {}
        for dep in unit_section.get("Requires", []) + unit_section.get("BindsTo", []):
            dep_def = self.manager.unit(dep)
            if dep_def["load_state"] == "not-found":
                raise JobFailed(f"missing:{dep}")
            if dep_def["load_state"] != "loaded":
                raise JobFailed("dependency")
            self.start(dep, visited)
        for dep in unit_section.get("Wants", []):
            if self.manager.unit(dep)["load_state"] == "loaded":
                with contextlib.suppress(JobFailed):
                    self.start(dep, visited)
        state = self.manager.runtime(name)
        if state["active_state"] in ("active", "activating", "reloading"):
            return
        kind = definition["kind"]
        if kind != "service":
            state.update(active_state="active", sub_state="listening" if kind == "socket" else "active",
                         active_enter=now(), result="success")
            self.manager.save_runtime(name, state)
            return
        self._start_service(definition, state)

    def _start_service(self, definition: dict[str, Any], state: dict[str, Any]) -> None:
        name = definition["name"]
        service = definition["service"]
        description = unit_label(definition)
        for kind in ("exit", "notify"):  # what earlier invocations left
            folder = hostlib.host_path(f"{STATE_DIR}/{kind}")
            for stale in folder.glob(f"{name}.*") if folder.is_dir() else []:
                stale.unlink(missing_ok=True)
        state.update(invocation=uuid.uuid4().hex, processes=[], exec_main=None, main_pid=0, main_start=None,
                     exit_recorded=False, active_state="activating", sub_state="start", result="success")
        self.manager.save_runtime(name, state)
        journal(name, f"Starting {description}...")
        runner = Runner(self.manager, definition, state)
        timeout = service.get("TimeoutStartUSec")
        deadline = None if timeout is None else now() + timeout / 1e6
        extra: dict[str, str] = {}
        socket_unit = socket_of(name)
        if self.manager.runtime(socket_unit)["active_state"] == "active":
            extra.update(LISTEN_FDS="1", LISTEN_FDNAMES=socket_unit)
        try:
            runner.run_control("ExecCondition", deadline)
            runner.run_control("ExecStartPre", deadline)
            kind = service["Type"]
            if kind == "oneshot":
                runner.run_control("ExecStart", deadline)
                state["exit_recorded"] = True
                if service.get("RemainAfterExit"):
                    state.update(active_state="active", sub_state="exited")
                else:
                    state.update(active_state="inactive", sub_state="dead")
            else:
                if kind == "notify":
                    extra["BOTLAB_NOTIFY_FILE"] = str(hostlib.host_path(runner.notify_path()))
                    hostlib.host_path(runner.notify_path()).parent.mkdir(parents=True, exist_ok=True)
                runner.spawn_main(extra)
                if kind in ("notify", "exec", "forking") or not state["main_pid"]:
                    self._await_main(runner, deadline, until_ready=kind == "notify")
                state.update(active_state="active", sub_state="running")
            runner.run_control("ExecStartPost", deadline, {"MAINPID": str(state["main_pid"])})
        except ProcessFailure as failure:
            self._fail_start(runner, failure.result, description)
            if service["Type"] == "simple" and failure.result == "exit-code" and state.get("exec_main"):
                return  # Type=simple counts as started once spawned, even if the exec then fails
            raise JobFailed(failure.result) from None
        state["active_enter"] = now()
        self.manager.save_runtime(name, state)
        if state["active_state"] == "active" or service["Type"] == "oneshot":
            journal(name, f"Started {description}." if service["Type"] != "oneshot" or
                    service.get("RemainAfterExit") else f"Finished {description}.")

    def _await_main(self, runner: Runner, deadline: float | None, until_ready: bool) -> None:
        kind = runner.service["Type"]
        if kind in ("exec", "simple") and runner.state["main_pid"]:
            return
        try:
            record = runner.wait_main(deadline, until_ready)
        except ProcessFailure:
            journal(runner.name, f"{runner.name}: start operation timed out. Terminating.")
            runner.kill_main(signal.SIGTERM)
            if runner.wait_exit(now() + (runner.service.get("TimeoutStopUSec") or 90e6) / 1e6) is None:
                runner.kill_main(signal.SIGKILL)
                runner.wait_exit(now() + 5)
            runner.state["main_pid"] = 0
            raise
        if record is None:
            return
        if kind == "forking" and record.get("code") == "exited" and record.get("status") == 0:
            return
        main = runner.state.get("exec_main") or {}
        main.update(code=record["code"], status=record["status"], exit_time=record.get("exit_time"))
        for proc in runner.state["processes"]:
            if proc["key"] == "ExecStart":
                proc.update(code=record["code"], status=record["status"], exit_time=record.get("exit_time"))
        runner.state["exit_recorded"] = True
        journal(runner.name, f"{runner.name}: Main process exited, {status_text(record['code'], record['status'])}")
        if record["code"] == "exited" and record["status"] == 0:
            raise ProcessFailure("protocol")
        raise ProcessFailure("exit-code" if record["code"] == "exited" else "signal")

    def _fail_start(self, runner: Runner, result: str, description: str) -> None:
        name = runner.name
        state = runner.state
        state.update(active_state="failed", sub_state="failed", result=result, main_pid=0, inactive_enter=now(),
                     exit_recorded=True)
        self.manager.save_runtime(name, state)
        journal(name, f"{name}: Failed with result '{result}'.")
        journal(name, f"Failed to start {description}.")

    # -- stop

    def stop(self, name: str) -> None:
        definition = self.manager.unit(name)
        state = self.manager.runtime(name)
        if state["active_state"] in ("inactive", "failed") or definition["kind"] != "service":
            if definition["kind"] != "service" and state["active_state"] == "active":
                state.update(active_state="inactive", sub_state="dead", inactive_enter=now())
                self.manager.save_runtime(name, state)
            return
        description = unit_label(definition)
        service = definition.get("service") or {}
        journal(name, f"Stopping {description}...")
        state.update(active_state="deactivating", sub_state="stop")
        self.manager.save_runtime(name, state)
        runner = Runner(self.manager, definition, state)
        timeout = service.get("TimeoutStopUSec")
        deadline = None if timeout is None else now() + timeout / 1e6
        result = "success"
        main_pid = state.get("main_pid") or 0
        try:
            runner.run_control("ExecStop", deadline, {"MAINPID": str(main_pid)})
        except ProcessFailure as failure:
            result = failure.result
        record = None
        if main_pid:
            runner.kill_main(signal.SIGTERM)
            record = runner.wait_exit(deadline)
            if record is None:
                journal(name, f"{name}: State 'stop-sigterm' timed out. Killing.")
                runner.kill_main(signal.SIGKILL)
                record = runner.wait_exit(now() + 10)
                result = "timeout"
        if record is not None:
            main = state.get("exec_main") or {}
            main.update(code=record.get("code"), status=record.get("status", 0), exit_time=record.get("exit_time"))
            state["exec_main"] = main
            if record.get("code") == "exited" and record.get("status") not in (0, None) and result == "success":
                result = "exit-code"
                journal(name, f"{name}: Main process exited, {status_text('exited', int(record['status']))}")
        with contextlib.suppress(ProcessFailure):
            runner.run_control("ExecStopPost", None)
        if result == "success":
            state.update(active_state="inactive", sub_state="dead", result="success")
            journal(name, f"{name}: Deactivated successfully.")
        else:
            state.update(active_state="failed", sub_state="failed", result=result)
            journal(name, f"{name}: Failed with result '{result}'.")
        state.update(main_pid=0, main_start=None, exit_recorded=True, inactive_enter=now())
        self.manager.save_runtime(name, state)
        journal(name, f"Stopped {description}.")


# --- commands -------------------------------------------------------------------------------------------------------

JOB_VERBS = {"start": "start", "stop": "stop", "restart": "restart", "try-restart": "try-restart",
             "reload-or-restart": "reload-or-restart", "condrestart": "try-restart", "force-reload": "try-restart",
             "try-reload-or-restart": "try-restart"}


# Options that take a value (as the next argument, after "=", or attached to the short form): where it goes.
VALUE_OPTIONS = {"-p": "props", "--property": "props", "-t": "type", "--type": "type", "-n": "lines",
                 "--lines": "lines"}


def _set_value_option(opts: dict[str, Any], option: str, value: str) -> None:
    key = VALUE_OPTIONS[option]
    if key == "props":
        opts["props"] += value.split(",")
    else:
        opts[key] = value


def parse_args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    opts: dict[str, Any] = {"quiet": False, "value": False, "props": [], "now": False, "type": None, "all": False,
                            "lines": 10, "boot": False}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-q", "--quiet"):
            opts["quiet"] = True
        elif arg in ("--no-pager", "--no-block", "--no-ask-password", "--full", "-l", "--no-legend", "--system",
                     "--plain", "--no-reload", "--force", "-f"):
            pass
        elif arg == "--value":
            opts["value"] = True
        elif arg == "--now":
            opts["now"] = True
        elif arg in ("-a", "--all"):
            opts["all"] = True
        elif arg == "--lab-boot":
            opts["boot"] = True
        elif arg in VALUE_OPTIONS:
            if i + 1 >= len(argv):
                err(f"systemctl: option '{arg}' requires an argument")
                raise Exit(1)
            i += 1
            _set_value_option(opts, arg, argv[i])
        elif arg.startswith(("--property=", "--type=", "--lines=")) or (arg.startswith(("-p", "-t", "-n")) and
                                                                       len(arg) > 2 and not arg.startswith("--")):
            key, _, value = arg.partition("=") if arg.startswith("--") else (arg[:2], "=", arg[2:])
            _set_value_option(opts, key, value)
        elif arg.startswith("-") and arg != "-":
            err(f"systemctl: unrecognized option '{arg}'")
            raise Exit(1)
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def main(argv: list[str]) -> int:
    try:
        return run(argv[1:])
    except Exit as exc:
        return exc.code


def run(args: list[str]) -> int:
    opts, rest = parse_args(args)
    ctl = Systemctl(opts["quiet"])
    if opts["boot"]:
        return lab_boot(ctl)
    if not rest:
        return list_units(ctl, opts)
    verb, names = rest[0], [unitfile.mangle_name(n) for n in rest[1:]]
    if verb == "daemon-reload":
        with ctl.manager.locked():
            ctl.manager.daemon_reload()
        return 0
    if verb in JOB_VERBS:
        return job_command(ctl, JOB_VERBS[verb], verb, names)
    handlers = {
        "enable": enable_command, "disable": disable_command, "is-active": is_active_command,
        "is-failed": is_failed_command, "is-enabled": is_enabled_command, "status": status_command,
        "show": show_command, "cat": cat_command, "list-units": list_units_command,
    }
    if verb not in handlers:
        err(f"Unknown command verb {verb}.")
        return 1
    if not names and verb not in ("show", "status", "list-units"):
        err("Too few arguments.")
        return 1
    return handlers[verb](ctl, names, opts)


def warn_if_changed(ctl: Systemctl, definition: dict[str, Any]) -> None:
    if ctl.manager.need_reload(definition):
        err(f"Warning: The unit file, source configuration file or drop-ins of {definition['name']} changed on disk. "
            "Run 'systemctl daemon-reload' to reload units.")


def job_command(ctl: Systemctl, job: str, verb: str, names: list[str]) -> int:
    if not names:
        err("Too few arguments.")
        return 1
    code = 0
    with ctl.manager.locked():
        for name in names:
            rc = run_job(ctl, job, verb, name)
            code = code or rc
    return code


def run_job(ctl: Systemctl, job: str, verb: str, name: str) -> int:
    definition = ctl.manager.unit(name)
    state = ctl.manager.runtime(name)
    load_state = definition["load_state"]
    if load_state == "not-found" and not (job == "stop" and state["active_state"] != "inactive"):
        if job == "stop":
            err(f"Failed to stop {name}: Unit {name} not loaded.")
        else:
            err(f"Failed to {verb} {name}: Unit {name} not found.")
        return 5
    if job != "stop" and load_state != "loaded":
        if load_state == "masked":
            err(f"Failed to {verb} {name}: Unit {name} is masked.")
            return 1
        if load_state == "bad-setting":
            err(f"Failed to {verb} {name}: Unit {name} has a bad unit file setting.")
        else:
            err(f"Failed to {verb} {name}: Unit {name} failed to load properly, please adjust/correct and "
                f"reload service manager: {definition['load_error']}")
        err(f"See system logs and 'systemctl status {name}' for details.")
        return 1
    warn_if_changed(ctl, definition)
    trigger = socket_of(name)
    if job == "stop" and definition["kind"] == "service" and ctl.manager.runtime(trigger)["active_state"] == "active":
        err(f"Warning: Stopping {name}, but it can still be activated by:\n  {trigger}")
    try:
        if job == "stop":
            ctl.stop(name)
        elif job == "start":
            ctl.start(name)
        else:
            running = state["active_state"] in ("active", "activating", "reloading")
            if job != "try-restart" or running:
                ctl.stop(name)
                ctl.start(name)
    except JobFailed as failed:
        if failed.result.startswith("missing:"):
            err(f"Failed to {verb} {name}: Unit {failed.result.split(':', 1)[1]} not found.")
            return 5
        if failed.result == "dependency":
            err(f"A dependency job for {name} failed. See 'journalctl -xe' for details.")
            return 1
        explanation = RESULT_EXPLANATIONS.get(failed.result, "the control process exited with error code")
        err(f"Job for {name} failed because {explanation}.\n"
            f"See \"systemctl status {name}\" and \"journalctl -xeu {name}\" for details.")
        return 1
    return 0


def lab_boot(ctl: Systemctl) -> int:
    """What boot does: load every unit, then start what the boot targets want; a failing unit fails alone."""
    with ctl.manager.locked():
        ctl.manager.daemon_reload()
        wanted: list[str] = []
        ignored = unitfile.base_units()
        for target in ("sysinit.target", "sockets.target", "basic.target", "multi-user.target", "graphical.target"):
            for kind in ("wants", "requires"):
                directory = hostlib.host_path(f"/etc/systemd/system/{target}.{kind}")
                if directory.is_dir():
                    wanted += [n for n in sorted(os.listdir(directory)) if n not in wanted and n not in ignored]
        for name in wanted:
            definition = ctl.manager.unit(name)
            if definition["load_state"] != "loaded":
                print(f"[FAILED] Failed to start {name}: unit {definition['load_state']}.")
                continue
            try:
                ctl.start(name)
            except JobFailed:
                print(f"[FAILED] Failed to start {unit_label(definition)}.")
    return 0


def edit_links(ctl: Systemctl, names: list[str], opts: dict[str, Any], edit: Callable[[str], bool | None],
               now_job: str) -> int:
    """What enable and disable share: under the lock, `edit` each unit's install symlinks (True: it changed some;
    None: refused, it has printed why, exit 1), daemon-reload if any changed, then with --now run `now_job`."""
    changed = False
    with ctl.manager.locked():
        for name in names:
            edited = edit(name)
            if edited is None:
                return 1
            changed = edited or changed
        if changed:
            ctl.manager.daemon_reload()
    if opts["now"]:
        return job_command(ctl, now_job, now_job, names)
    return 0


def enable_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    def enable(name: str) -> bool | None:
        fragment = unitfile.find_fragment(name)
        if fragment is None:
            err(f"Failed to enable unit: Unit file {name} does not exist.")
            return None
        definition = unitfile.load(name)
        install = definition.get("install") or {}
        targets = [(t, "wants") for t in install.get("WantedBy", [])]
        targets += [(t, "requires") for t in install.get("RequiredBy", [])]
        if not targets and not install.get("Also"):
            err("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
                "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
                "units). This means they are not meant to be enabled or disabled using systemctl.")
            return False
        changed = False
        for target, kind in targets:
            link = f"/etc/systemd/system/{target}.{kind}/{name}"
            real = hostlib.host_path(link)
            if real.is_symlink():
                continue
            real.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(fragment, real)
            changed = True
            if not opts["quiet"]:
                err(f"Created symlink {link} \u2192 {fragment}.")
        return changed

    return edit_links(ctl, names, opts, enable, "start")


def disable_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    def disable(name: str) -> bool | None:
        if unitfile.find_fragment(name) is None:
            err(f"Failed to disable unit: Unit file {name} does not exist.")
            return None
        changed = False
        for directory in sorted(hostlib.host_path("/etc/systemd/system").glob("*.wants")) + sorted(
                hostlib.host_path("/etc/systemd/system").glob("*.requires")):
            link = directory / name
            if link.is_symlink():
                link.unlink()
                changed = True
                if not opts["quiet"]:
                    err(f'Removed "/etc/systemd/system/{directory.name}/{name}".')
        return changed

    return edit_links(ctl, names, opts, disable, "stop")


def report_states(names: list[str], opts: dict[str, Any], state_of: Callable[[str], str | None],
                  wanted: Collection[str], code_if_none: int) -> int:
    """What the is-* verbs share: print each unit's state (unless --quiet); 0 when any is in `wanted`, else
    `code_if_none`; 1 at once when `state_of` gives None (it has printed why)."""
    code = code_if_none
    for name in names:
        state = state_of(name)
        if state is None:
            return 1
        if not opts["quiet"]:
            print(state)
        if state in wanted:
            code = 0
    return code


def is_active_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    return report_states(names, opts, lambda name: ctl.manager.runtime(name)["active_state"], ("active",), 3)


def is_failed_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    return report_states(names, opts, lambda name: ctl.manager.runtime(name)["active_state"], ("failed",), 1)


def is_enabled_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    def enabled_state(name: str) -> str | None:
        if unitfile.find_fragment(name) is None:
            err(f"Failed to get unit file state for {name}: No such file or directory")
            return None
        return ctl.manager.enabled_state(unitfile.load(name))

    return report_states(names, opts, enabled_state,
                         ("enabled", "static", "alias", "indirect", "generated", "enabled-runtime"), 1)


def exec_property(entry: dict[str, Any], ignore: bool) -> str:
    code = entry.get("code")
    status = int(entry.get("status") or 0)
    sig_part = "" if code == "exited" else "/" + signal_name(status)
    return (f"{{ path={entry['path']} ; argv[]={' '.join(entry['argv'])} ; ignore_errors={'yes' if ignore else 'no'} ; "
            f"start_time=[{format_timestamp(entry.get('start_time')) or 'n/a'}] ; "
            f"stop_time=[{format_timestamp(entry.get('exit_time')) or 'n/a'}] ; pid={entry.get('pid') or 0} ; "
            f"code={code or '(null)'} ; status={status}{sig_part} }}")


def properties(ctl: Systemctl, name: str) -> list[tuple[str, str | list[str]]]:
    definition = ctl.manager.unit(name)
    state = ctl.manager.runtime(name)
    service = definition.get("service") or {}
    unit = definition.get("unit") or {}
    props: list[tuple[str, str | list[str]]] = []
    is_service = definition["kind"] == "service"
    if is_service:
        props += [("Type", service.get("Type") or "simple"), ("Restart", service.get("Restart") or "no")]
        props += [("NotifyAccess", "main" if service.get("Type") == "notify" else "none")]
        props += [("TimeoutStartUSec", unitfile.format_timespan(service.get("TimeoutStartUSec", 90_000_000))),
                  ("TimeoutStopUSec", unitfile.format_timespan(service.get("TimeoutStopUSec", 90_000_000)))]
        props += [("RemainAfterExit", "yes" if service.get("RemainAfterExit") else "no")]
        main = state.get("exec_main") or {}
        props += [("MainPID", str(state.get("main_pid") or 0)), ("ControlPID", "0")]
        props += [("Result", state.get("result") or "success")]
        props += [("ExecMainStartTimestamp", format_timestamp(main.get("start_time"))),
                  ("ExecMainExitTimestamp", format_timestamp(main.get("exit_time"))),
                  ("ExecMainPID", str(main.get("pid") or 0)),
                  ("ExecMainCode", {"exited": "1", "killed": "2", "dumped": "3"}.get(main.get("code") or "", "0")),
                  ("ExecMainStatus", str(main.get("status") or 0))]
        for key in unitfile.EXEC_KEYS:
            commands = (definition.get("exec") or {}).get(key, [])
            ran = [p for p in state.get("processes", []) if p.get("key") == key]
            values = []
            for index, command in enumerate(commands):
                entry = dict(ran[index]) if index < len(ran) else {"path": command["path"], "argv": command["argv"]}
                entry.setdefault("path", command["path"])
                values.append(exec_property(entry, command["ignore"]))
            props.append((key, values))
        props += [("Environment", " ".join(service.get("Environment", []))),
                  ("EnvironmentFiles", [f"{e.lstrip('-')} (ignore_errors={'yes' if e.startswith('-') else 'no'})"
                                        for e in service.get("EnvironmentFile", [])]),
                  ("KillMode", service.get("KillMode") or "control-group"),
                  ("InvocationID", state.get("invocation") or "")]
    props += [
        ("Id", name), ("Names", name), ("Requires", " ".join(unit.get("Requires", []))),
        ("Wants", " ".join(unit.get("Wants", []))), ("After", " ".join(unit.get("After", []))),
        ("Before", " ".join(unit.get("Before", []))),
        ("Description", unit.get("Description") or name),
        ("LoadState", definition["load_state"]), ("ActiveState", state["active_state"]),
        ("SubState", state["sub_state"]),
        ("FragmentPath", definition.get("fragment_path") or ""),
        ("DropInPaths", " ".join(definition.get("dropin_paths", []))),
        ("UnitFileState", ctl.manager.enabled_state(definition)),
        ("ActiveEnterTimestamp", format_timestamp(state.get("active_enter"))),
        ("InactiveEnterTimestamp", format_timestamp(state.get("inactive_enter"))),
        ("StateChangeTimestamp", format_timestamp(state.get("state_change"))),
        ("CanStart", "yes" if definition["load_state"] == "loaded" else "no"), ("CanStop", "yes"),
        ("NeedDaemonReload", "yes" if ctl.manager.need_reload(definition) else "no"),
    ]
    if definition.get("load_error") and definition["load_state"] != "loaded":
        error = "BadUnitSetting" if definition["load_state"] == "bad-setting" else "LoadFailed"
        props.append(("LoadError", f'org.freedesktop.systemd1.{error} "{definition["load_error"]}"'))
    return props


def show_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    wanted = [p for p in opts["props"] if p]
    blocks = []
    for name in names:
        lines = []
        for key, value in properties(ctl, name):
            if wanted and key not in wanted:
                continue
            values = value if isinstance(value, list) else [value]
            if isinstance(value, list) and not value and wanted:
                values = [""]
            for item in values:
                lines.append(item if opts["value"] else f"{key}={item}")
        blocks.append("\n".join(lines))
    if blocks:
        print("\n\n".join(blocks))
    return 0


def status_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    code = 0
    outputs = []
    for name in names:
        definition = ctl.manager.unit(name)
        state = ctl.manager.runtime(name)
        if definition["load_state"] == "not-found" and state["active_state"] == "inactive":
            err(f"Unit {name} could not be found.")
            code = code or 4
            continue
        outputs.append(render_status(ctl, definition, state, int(opts["lines"])))
        if state["active_state"] != "active":
            code = code or 3
    print("\n\n".join(outputs))
    return code


def render_status(ctl: Systemctl, definition: dict[str, Any], state: dict[str, Any], lines: int) -> str:
    name = definition["name"]
    unit = definition.get("unit") or {}
    active = state["active_state"]
    dot = {"active": "\u25cf", "failed": "\u00d7", "activating": "\u25cf", "deactivating": "\u25cf"}.get(active,
                                                                                                        "\u25cb")
    out = [f"{dot} {unit_label(definition)}"]
    load_state = definition["load_state"]
    if load_state == "loaded":
        enabled = ctl.manager.enabled_state(definition)
        extra = f"; {enabled}; preset: enabled" if enabled in ("enabled", "disabled") else f"; {enabled}"
        out.append(f"     Loaded: loaded ({definition['fragment_path']}{extra})")
    elif load_state == "bad-setting":
        out.append(f"     Loaded: bad-setting (Reason: Unit {name} has a bad unit file setting.)")
    elif load_state == "error":
        out.append(f"     Loaded: error (Reason: {definition['load_error']})")
    else:
        out.append(f"     Loaded: {load_state}")
    dropins: dict[str, list[str]] = {}
    for path in definition.get("dropin_paths", []):
        directory, _, base = path.rpartition("/")
        dropins.setdefault(directory, []).append(base)
    for index, (directory, files) in enumerate(dropins.items()):
        out.append(f"    {'Drop-In: ' if index == 0 else '         '}{directory}")
        out.append(f"             \u2514\u2500{', '.join(files)}")
    sub = state["sub_state"]
    since = state.get("active_enter") if active == "active" else state.get("inactive_enter")
    when = f" since {format_timestamp(since)}; {format_relative(since)}" if since else ""
    if active == "failed":
        out.append(f"     Active: failed (Result: {state.get('result')}){when}")
    elif active == "inactive":
        out.append(f"     Active: inactive (dead){when}")
    else:
        out.append(f"     Active: {active} ({sub}){when}")
    docs = unit.get("Documentation", [])
    for index, doc in enumerate(docs):
        out.append(f"       {'Docs: ' if index == 0 else '      '}{doc}")
    main = state.get("exec_main") or {}
    for proc in state.get("processes", []):
        if proc.get("code") is None or (proc.get("key") == "ExecStart" and proc.get("pid") == main.get("pid")
                                        and proc.get("pid")):
            continue
        out.append(f"    Process: {proc.get('pid') or 0} {proc['key']}={' '.join(proc['argv'])} "
                   f"({status_text(proc['code'], int(proc['status']))})")
    if state.get("main_pid"):
        comm = main.get("argv", ["?"])[0].rsplit("/", 1)[-1] if main else "?"
        out.append(f"   Main PID: {state['main_pid']} ({comm})")
        out.append(f"     CGroup: /system.slice/{name}")
        out.append(f"             \u2514\u2500{state['main_pid']} {' '.join(main.get('argv', []))}")
    elif main.get("code"):
        if main.get("key") == "ExecStart" or main.get("pid"):
            out.append(f"    Process: {main.get('pid') or 0} ExecStart={' '.join(main.get('argv', []))} "
                       f"({status_text(main['code'], int(main.get('status') or 0))})")
        out.append(f"   Main PID: {main.get('pid') or 0} ({status_text(main['code'], int(main.get('status') or 0))})")
    tail = hostlib.journal_tail(name, lines)
    if tail:
        out.append("")
        out += tail
    if ctl.manager.need_reload(definition):
        out.append("")
        out.append(f"Warning: The unit file, source configuration file or drop-ins of {name} changed on disk. "
                   "Run 'systemctl daemon-reload' to reload units.")
    return "\n".join(out)


def cat_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    chunks = []
    for name in names:
        fragment = unitfile.find_fragment(name)
        paths = ([fragment] if fragment else []) + unitfile.find_dropins(name)
        if not paths:
            err(f"No files found for {name}.")
            return 1
        definition = ctl.manager.unit(name)
        if ctl.manager.need_reload(definition):
            chunks.append(f"# Warning: {name} changed on disk, the version systemd has loaded is outdated.\n"
                          "# This output shows the current version of the unit's original fragment and drop-in "
                          "files.\n# If fragments or drop-ins were added or removed, they are not properly "
                          "reflected in this output.\n# Run 'systemctl daemon-reload' to reload units.")
        for path in paths:
            text = hostlib.host_path(path).read_text(errors="replace")
            chunks.append(f"# {path}\n{text.rstrip(chr(10))}")
    print("\n\n".join(chunks))
    return 0


def list_units_command(ctl: Systemctl, names: list[str], opts: dict[str, Any]) -> int:
    return list_units(ctl, opts)


def list_units(ctl: Systemctl, opts: dict[str, Any]) -> int:
    kind = (opts.get("type") or "").strip()
    rows = []
    for name in sorted(set(ctl.manager.snapshot()["units"]) | set(unitfile.all_unit_names())):
        if kind and unitfile.unit_suffix(name) != kind:
            continue
        definition = ctl.manager.unit(name)
        state = ctl.manager.runtime(name)
        if not opts["all"] and state["active_state"] == "inactive" and definition["load_state"] == "loaded":
            continue
        description = (definition.get("unit") or {}).get("Description") or name
        marker = "\u25cf" if state["active_state"] == "failed" or definition["load_state"] != "loaded" else " "
        rows.append((marker, name, definition["load_state"], state["active_state"], state["sub_state"], description))
    widths = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(("", "UNIT", "LOAD", "ACTIVE", "SUB"))]
    header = ("", "UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION")
    print(f"{header[0]:<{widths[0]}} " + " ".join(f"{header[i]:<{widths[i]}}" for i in range(1, 5)) + " DESCRIPTION")
    for row in rows:
        print(f"{row[0]:<{widths[0]}} " + " ".join(f"{row[i]:<{widths[i]}}" for i in range(1, 5)) + f" {row[5]}")
    print()
    print("LOAD   = Reflects whether the unit definition was properly loaded.")
    print("ACTIVE = The high-level unit activation state, i.e. generalization of SUB.")
    print("SUB    = The low-level unit activation state, values depend on unit type.")
    print(f"{len(rows)} loaded units listed." + ("" if opts["all"] else
                                                 " Pass --all to see loaded but inactive units, too."))
    print("To show all installed unit files use 'systemctl list-unit-files'.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
