"""SSH to deployed hosts through fabric/paramiko: one connection per host per run, host keys
checked strictly against the ones the caller recorded, connection faults retried under the
shared policy, a deadline on every call. No policy about *what* to run lives here.

fabric and paramiko are imported lazily, so `botlab --help` never pays for them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import shlex
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from botlab.drivers.retry import Deadlines, NoAnswer, RetryPolicy, Sleep, answer_within, retry_call
from botlab.errors import StageError

if TYPE_CHECKING:
    from botlab.inventory import Inventory

log = logging.getLogger("botlab.ssh")
T = TypeVar("T")

CONCURRENCY = 64  # hosts worked on at once: the bound
TAIL_LINES = 20  # what a Result keeps of stderr (and a failure shows of the output)
# 5 tries, waits 0.2, 0.4, 0.8, 1.6 s plus jitter: a host whose sshd restarts gets a few seconds.
RETRY = RetryPolicy(attempts=5, initial=0.2, maximum=4.0, jitter=0.2)


@dataclass(frozen=True)
class Target:
    """Where a host is and which host keys it must present (OpenSSH `type base64` lines)."""

    host: str
    address: str
    host_keys: tuple[str, ...]
    port: int = 22


@dataclass(frozen=True)
class Result:
    """One command's outcome, as fabric's Result: what ran, its exit code and output."""

    host: str
    command: str
    exited: int
    stdout: str
    stderr: str  # its last TAIL_LINES lines

    @property
    def ok(self) -> bool:
        return self.exited == 0


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def fingerprint(key_type: str, blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint (what `ssh-keygen -lf` and ssh's prompts print)."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"{key_type} SHA256:{digest}"


def _key_blob(line: str) -> tuple[str, bytes]:
    """`ssh-ed25519 AAAA... [comment]` (known_hosts' key part, as Juju reports keys)."""
    parts = line.split()
    if len(parts) < 2:
        raise ValueError(f"not an OpenSSH public key line: {line[:40]!r}")
    return parts[0], base64.b64decode(parts[1])


def sudo_command(command: str) -> str:
    """`command` run by root through password-less sudo; never prompts (-n), so a missing sudo
    right fails at once instead of hanging to the deadline."""
    return f"sudo -n -- sh -c {shlex.quote(command)}"


def _transient(exc: Exception) -> bool:
    """Connection refused/reset, no route, timeouts, a banner never read (sshd restarting):
    worth another try. Authentication and host-key failures never are."""
    import paramiko

    if isinstance(exc, (paramiko.AuthenticationException, paramiko.BadHostKeyException)):
        return False
    if isinstance(exc, (TimeoutError, socket.timeout, ConnectionError, EOFError, NoAnswer)):
        return True
    if isinstance(exc, OSError):  # paramiko's NoValidConnectionsError (refused) is one
        return True
    if isinstance(exc, paramiko.SSHException):
        text = str(exc)
        return "banner" in text or "reset" in text.lower() or "closed" in text.lower()
    return False


class ConnectionLost(StageError):
    """The connection broke while a command ran: it may or may not have run (in part). The
    caller decides whether reading the host again and going on is safe."""


def _lost(exc: Exception) -> bool:
    """A connection that broke (reset, closed, EOF), not a command that outran its deadline."""
    return _transient(exc) and not isinstance(exc, (TimeoutError, socket.timeout, NoAnswer))


class SshDriver:
    """The run's SSH connections, one per host, opened on a host's first call and reused by
    every later one; blocking fabric work runs in worker threads, at most `concurrency` at once."""

    def __init__(self, user: str, key_file: Path | str, *, concurrency: int = CONCURRENCY,
                 deadlines: Deadlines | None = None, retry: RetryPolicy = RETRY,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.user = user
        self.key_file = str(key_file)
        self.deadlines = deadlines or Deadlines()
        self._retry = retry if retry.within is not None else replace(retry, within=self.deadlines.unreachable)
        self._sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="botlab-ssh")
        self._targets: dict[str, Target] = {}
        self._open: dict[str, Any] = {}  # host -> fabric Connection
        self._opening: dict[str, asyncio.Lock] = {}
        self.round_trips: dict[str, int] = {}  # host -> commands sent (what the playbook tests count)
        self.connections: dict[str, int] = {}  # host -> connections opened (1 per run unless one dropped)

    @classmethod
    def connect(cls, inventory: Inventory, environ: Mapping[str, str]) -> SshDriver:
        """Nothing is reached yet: hosts are connected on their first call."""
        return cls(inventory.ssh.user, inventory.ssh.private_key, deadlines=Deadlines.from_environ(environ))

    def know(self, host: str, address: str, host_keys: Sequence[str], port: int = 22) -> None:
        """Where `host` is and the keys it must present (KubernetesOutputs.hosts[h])."""
        self._targets[host] = Target(host, address, tuple(host_keys), port)

    def target(self, host: str) -> Target:
        try:
            return self._targets[host]
        except KeyError:
            raise StageError("no address or host keys known for this host", system="SSH", where=host,
                             hint="run `botlab up kubernetes` so botlab records them") from None

    # -- calls -------------------------------------------------------------------------------

    async def run(self, host: str, command: str, *, sudo: bool = False, stdin: str | None = None,
                  timeout: float | None = None) -> Result:
        """Run `command` (already quoted by the caller) on `host`; never raises for a non-zero
        exit, only when the host cannot be reached or the deadline passes. A command is never
        sent twice: only opening the connection is retried."""
        line = sudo_command(command) if sudo else command
        conn = await self._connection(host)
        seconds = timeout or self.deadlines.call
        self.round_trips[host] = self.round_trips.get(host, 0) + 1
        try:
            result = await self._thread(seconds, partial(self._run_blocking, conn, line, stdin, seconds))
        except Exception as exc:  # the connection is in doubt: the next call opens a fresh one
            self._drop(host)
            error = self._error(host, "run", exc)
            if _lost(exc):
                raise ConnectionLost(f"the connection broke during the command: {error.message}", system="SSH",
                                     operation="run", where=host, hint=error.hint) from None
            raise error from None
        return Result(host, line, result.exited, result.stdout, tail(result.stderr))

    async def put(self, host: str, path: str, content: str, *, mode: str = "0644", owner: str | None = None,
                  sudo: bool = False) -> Result:
        """Write `content` to `path` atomically: a temporary file beside it, then `mv`, so a
        reader never sees half a file. Fails (non-zero Result) rather than raising."""
        result = await self.run(host, write_file_command(path, mode, owner), sudo=sudo, stdin=content)
        return result

    async def read(self, host: str, path: str, *, sudo: bool = False) -> str | None:
        """The file's text, or None when it does not exist."""
        q = shlex.quote(path)
        result = await self.run(host, f"if [ -e {q} ]; then cat -- {q}; else exit 3; fi", sudo=sudo)
        if result.exited == 3:
            return None
        if not result.ok:
            raise StageError(f"cannot read {path}: {result.stderr or result.exited}", system="SSH",
                             operation="read", where=host)
        return result.stdout

    async def close(self) -> None:
        """Close every connection; never raises."""
        opened, self._open = self._open, {}
        for host, conn in opened.items():
            try:
                conn.close()
            except Exception as exc:  # closing must not hide the run's own error
                log.debug("closing SSH to %s: %s", host, exc)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- connections ----------------------------------------------------------------------------

    async def _connection(self, host: str) -> Any:
        target = self.target(host)
        lock = self._opening.setdefault(host, asyncio.Lock())
        async with lock:
            conn = self._open.get(host)
            if conn is not None and conn.is_connected:
                return conn
            self._drop(host)

            async def attempt() -> Any:
                fresh = self._new_connection(target)
                try:
                    await self._thread(self.deadlines.call, fresh.open)
                except BaseException:
                    fresh.close()
                    raise
                return fresh

            conn = await retry_call(self._retry, attempt, transient=_transient, log=log,
                                    what=f"SSH connect {host}", error=lambda exc: self._error(host, "connect", exc),
                                    sleep=self._sleep)
            self._open[host] = conn
            self.connections[host] = self.connections.get(host, 0) + 1
            return conn

    def _new_connection(self, target: Target) -> Any:
        """A fabric Connection that trusts only `target.host_keys` (RejectPolicy over a HostKeys
        holding just them) and reads no ~/.ssh/config, agent or default keys: what it does
        depends on the inventory alone."""
        import paramiko
        from fabric import Config, Connection

        config = Config(ssh_config=paramiko.SSHConfig())
        conn = Connection(target.address, user=self.user, port=target.port, config=config,
                          connect_timeout=max(1, int(self.deadlines.call)),
                          connect_kwargs={"key_filename": self.key_file, "look_for_keys": False,
                                          "allow_agent": False, "banner_timeout": self.deadlines.call,
                                          "auth_timeout": self.deadlines.call})
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        known = client.get_host_keys()
        name = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
        for line in target.host_keys:
            key_type, blob = _key_blob(line)
            known.add(name, key_type, paramiko.PKey.from_type_string(key_type, blob))
        conn.client = client
        return conn

    def _drop(self, host: str) -> None:
        conn = self._open.pop(host, None)
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:
                log.debug("closing SSH to %s: %s", host, exc)

    async def _thread(self, seconds: float, fn: Any) -> Any:
        """`fn()` in a worker thread, holding a slot, within `seconds` (plus a grace: the
        thread's own timeouts end it first; this bound is for a call that ignores them)."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            return await answer_within(seconds + 5, lambda: loop.run_in_executor(self._pool, fn))

    @staticmethod
    def _run_blocking(conn: Any, line: str, stdin: str | None, seconds: float) -> Result:
        """One exec channel on the host's open transport. stdin is fed by its own thread and
        stderr drained by another, so a large script or output can never deadlock on a full
        SSH window; the whole call ends within `seconds`. (fabric's `run` with an in_stream
        races its stdin thread against the channel's close; the channel is simpler.)"""
        transport = conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionResetError("the SSH connection closed")
        deadline = time.monotonic() + seconds
        chan = transport.open_session(timeout=seconds)
        try:
            chan.settimeout(seconds)
            chan.exec_command(line)
            if stdin is None:
                chan.shutdown_write()
            else:
                threading.Thread(target=_feed, args=(chan, stdin.encode()), daemon=True).start()
            errors: list[bytes] = []
            drain = threading.Thread(target=_drain, args=(chan, errors), daemon=True)
            drain.start()
            out: list[bytes] = []
            while data := chan.recv(65536):
                out.append(data)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the command ran longer than {seconds:g}s")
            drain.join(max(0.0, deadline - time.monotonic()))
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no exit status within {seconds:g}s")
            exited = chan.recv_exit_status()
            if exited == -1 and not transport.is_active():  # closed with no exit status: the connection died
                raise ConnectionResetError("the SSH connection closed before the command's exit status")
        finally:
            chan.close()
        text = b"".join(out).decode("utf-8", "replace")
        return Result("", line, exited, text, b"".join(errors).decode("utf-8", "replace"))

    # -- errors ---------------------------------------------------------------------------------

    def _error(self, host: str, operation: str, exc: Exception) -> StageError:
        """What the operator reads: which host, which address, what came back, what to do."""
        import paramiko

        target = self._targets.get(host)
        address = target.address if target else "?"
        if isinstance(exc, paramiko.BadHostKeyException):
            expected = ", ".join(fingerprint(*_key_blob(k)) for k in (target.host_keys if target else ()))
            presented = fingerprint(exc.key.get_name(), exc.key.asbytes())
            return StageError(
                f"{address} presented host key {presented}, expected {expected}; refusing to connect",
                system="SSH", operation=operation, where=host,
                hint=f"if {host} was redeployed, run `botlab up kubernetes` so botlab records its new keys from"
                     " Juju; otherwise something else answers at that address: do not go on until you know what")
        if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
            return StageError(f"{address} presented a host key of a type botlab has no record of; refusing",
                              system="SSH", operation=operation, where=host,
                              hint="run `botlab up kubernetes` so botlab records the host's keys from Juju")
        if isinstance(exc, paramiko.AuthenticationException):
            return StageError(f"{address} refused the key {self.key_file} for user {self.user}: {exc}",
                              system="SSH", operation=operation, where=host,
                              hint="check ssh.private_key and ssh.user in the inventory")
        if isinstance(exc, (NoAnswer, TimeoutError, socket.timeout)):
            return StageError(f"{address}: no answer within the deadline ({exc})", system="SSH",
                              operation=operation, where=host,
                              hint="check that the host is up and reachable (BOTLAB_CALL_TIMEOUT sets the deadline)")
        return StageError(f"{address}: {type(exc).__name__}: {exc}", system="SSH", operation=operation, where=host,
                          hint="check that the host is up and its sshd listens")


def _feed(chan: Any, data: bytes) -> None:
    try:
        chan.sendall(data)
        chan.shutdown_write()
    except OSError:  # the command ended without reading all of it: its exit code says what happened
        pass


def _drain(chan: Any, into: list[bytes]) -> None:
    try:
        while data := chan.recv_stderr(65536):
            into.append(data)
    except OSError:
        pass


def write_file_command(path: str, mode: str, owner: str | None) -> str:
    """Shell text writing stdin to `path` atomically (temp file in the same folder, then mv),
    every value quoted."""
    q = shlex.quote(path)
    steps = [f"tmp=$(mktemp {shlex.quote(path + '.botlab.XXXXXX')})", 'cat > "$tmp"',
             f'chmod {shlex.quote(mode)} "$tmp"']
    if owner:
        steps.append(f'chown {shlex.quote(owner)} "$tmp"')
    steps.append(f'mv -f -- "$tmp" {q}')
    return "set -e; " + "; ".join(steps)
