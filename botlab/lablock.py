"""The lab's lock in the shared systems: one writing run per lab, whichever folder it runs from.

The local lock (botlab.state.LabLock, an flock on `.botlab/lock`) serialises runs from one
inventory folder. Two copies of the inventory (a colleague's checkout, a CI workspace) share
no folder, yet drive the same MAAS machines, tags and Juju model; so `up`, `down` and
`rebuild` also take a lock where every copy looks: a MAAS tag `<lab>_lock`.

- Taking it is creating the tag. MAAS refuses a second tag of the same name (HTTP 400 "Tag with
  this Name already exists."), so creation is an atomic test-and-set: of two runs, exactly one
  creates it. The tag's comment names the holder (host, pid, folder, command, since, and what
  proves the process is the same: boot id, pid namespace, process start time).
- Releasing it is deleting the tag, in every exit path of the run (a failed stage, an error,
  Ctrl-C). A free lock costs one create and one delete per run.
- A tag left by a holder that is provably dead is taken over: same host, same boot and pid
  namespace, and the pid gone or now another process (or the same machine booted since).
  Anything else (a live holder, another host, a comment that names no botlab run) is refused
  with exit 3 naming the holder and `botlab unlock --yes`, which removes the tag.
- The name is `<lab>_lock`, not `<lab>-lock`: it starts with the lab's name like everything
  botlab creates, but no lab's own tags (`<lab>`, `<lab>-role-...`, `<lab>-pin-...`; lab names
  have no `_`) can be it, so the enlist stage's "tags of this lab" never include the lock (a
  saved plan observes those tags, and teardown removes them) and no lab `<lab>-lock` collides.

Residual window: two runs that both find the same dead holder may both delete and re-create;
each re-reads the holder just before deleting, which narrows the window to one round trip, and
it needs a dead holder plus two simultaneous runs on the same host from different folders.

The store of the lock is pluggable (`Environment.lab_lock`): MAAS by default; `MemoryLockStore`
for runner tests whose test-only stages use no MAAS.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from botlab.errors import LockedError

if TYPE_CHECKING:
    from botlab.drivers import Drivers
    from botlab.inventory import Inventory

MARK = "botlab lab lock "  # what a comment written by botlab starts with


def lock_tag(lab: str) -> str:
    """The MAAS tag that is lab `lab`'s lock."""
    return f"{lab}_lock"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), which
    tells a live holder from another process that was given the same pid later."""
    text = _read(f"/proc/{pid}/stat")
    try:
        return text.rsplit(")", 1)[1].split()[19]
    except IndexError:
        return ""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a lab's lock, as written in the lock's comment."""

    host: str
    pid: int
    folder: str
    command: str
    since: str
    machine: str = ""  # /etc/machine-id
    boot: str = ""  # /proc/sys/kernel/random/boot_id
    pidns: str = ""  # /proc/self/ns/pid
    started: str = ""  # the process's start time, in ticks since boot
    token: str = ""  # this run's, to recognise our own lock

    @classmethod
    def me(cls, folder: Path | str, command: str) -> Holder:
        pid = os.getpid()
        return cls(
            host=socket.gethostname(), pid=pid, folder=str(folder), command=command,
            since=time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine=_read("/etc/machine-id"),
            boot=_read("/proc/sys/kernel/random/boot_id"), pidns=_pid_namespace(),
            started=_process_start(pid), token=uuid.uuid4().hex,
        )

    def to_comment(self) -> str:
        return MARK + json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_comment(cls, text: str) -> Holder | None:
        """The holder a lock's comment names; None if it names no botlab run."""
        if not text.startswith(MARK):
            return None
        try:
            data = json.loads(text[len(MARK):])
            return cls(host=str(data["host"]), pid=int(data["pid"]), folder=str(data["folder"]),
                       command=str(data["command"]), since=str(data["since"]),
                       machine=str(data.get("machine", "")), boot=str(data.get("boot", "")),
                       pidns=str(data.get("pidns", "")), started=str(data.get("started", "")),
                       token=str(data.get("token", "")))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.since} ({self.command}) in {self.folder}"

    def provably_dead(self) -> bool:
        """Whether this holder's process certainly no longer runs. Only a holder on this host
        can be proven dead; one elsewhere, or one whose identity cannot be checked, cannot."""
        me = Holder.me("", "")
        if self.host != me.host:
            return False
        if self.machine and self.machine == me.machine and self.boot and me.boot and self.boot != me.boot:
            return True  # this machine booted since: every process of that boot is gone
        if not (self.boot and self.boot == me.boot and self.pidns and self.pidns == me.pidns):
            return False  # another machine of the same name, or another pid namespace
        if not _running(self.pid):
            return True
        return bool(self.started) and _process_start(self.pid) not in ("", self.started)

    def alive_here(self) -> bool:
        """Whether this holder certainly runs: on this host, in this pid namespace, same process."""
        me = Holder.me("", "")
        return (self.host == me.host and self.boot == me.boot and self.pidns == me.pidns
                and _running(self.pid) and (not self.started or _process_start(self.pid) == self.started))


class LockStore(Protocol):
    """Where a lab's lock lives. `create` must be atomic: of two concurrent creates, one wins."""

    where: str  # for messages: "MAAS tag alpha_lock"

    async def create(self, comment: str) -> bool:
        """Create the lock with `comment`; False if it already exists."""

    async def read(self) -> str | None:
        """The lock's comment; None if there is no lock."""

    async def delete(self) -> bool:
        """Remove the lock; False if there was none."""


class MaasLockStore:
    """The lock as a MAAS tag, through the run's MAAS driver."""

    def __init__(self, lab: str, drivers: Drivers) -> None:
        self.name = lock_tag(lab)
        self.where = f"MAAS tag {self.name}"
        self._drivers = drivers

    async def create(self, comment: str) -> bool:
        return await (await self._drivers.maas()).create_tag_if_absent(self.name, comment)

    async def read(self) -> str | None:
        return await (await self._drivers.maas()).tag_comment(self.name)

    async def delete(self) -> bool:
        return await (await self._drivers.maas()).delete_tag_if_present(self.name)


class MemoryLockStore:
    """The lock in this process's memory, shared by every store of the same lab: for runner
    tests whose test-only stages use no MAAS (two folders in one process still exclude)."""

    _locks: dict[str, str] = {}
    _mutex = threading.Lock()

    def __init__(self, lab: str) -> None:
        self.name = lock_tag(lab)
        self.where = f"in-memory lock {self.name}"

    async def create(self, comment: str) -> bool:
        with self._mutex:
            if self.name in self._locks:
                return False
            self._locks[self.name] = comment
            return True

    async def read(self) -> str | None:
        with self._mutex:
            return self._locks.get(self.name)

    async def delete(self) -> bool:
        with self._mutex:
            return self._locks.pop(self.name, None) is not None


def maas_lock(inventory: Inventory, drivers: Drivers) -> LockStore:
    return MaasLockStore(inventory.name, drivers)


def memory_lock(inventory: Inventory, drivers: Drivers) -> LockStore:
    return MemoryLockStore(inventory.name)


class SharedLabLock:
    """One run's hold on its lab's lock (see the module's docstring for the policy)."""

    def __init__(self, lab: str, store: LockStore) -> None:
        self.lab = lab
        self.store = store
        self.held: Holder | None = None
        self.taken_over: Holder | None = None  # a dead holder whose lock this run took

    async def acquire(self, folder: Path | str, command: str) -> None:
        me = Holder.me(folder, command)
        for _ in range(3):
            if await self.store.create(me.to_comment()):
                self.held = me
                return
            text = await self.store.read()
            if text is None:
                continue  # released meanwhile: try again
            holder = Holder.from_comment(text)
            if holder is not None and holder.token == me.token:
                self.held = me  # our own create, whose answer was lost and retried
                return
            if holder is None:
                raise LockedError(
                    f"lab '{self.lab}' is locked: {self.store.where} exists but names no botlab run"
                    f" ({text[:80]!r}); if no botlab run holds this lab, remove it with"
                    " `botlab unlock --yes`, then run again"
                )
            if not holder.provably_dead():
                raise LockedError(self._held_by(holder))
            if await self.store.read() != text:
                continue  # someone else took it over meanwhile: look again
            await self.store.delete()
            self.taken_over = holder
        raise LockedError(f"lab '{self.lab}': {self.store.where} changed hands repeatedly; run again")

    def _held_by(self, holder: Holder) -> str:
        return (
            f"lab '{self.lab}' is locked by {holder.describe()} ({self.store.where}); wait for that run"
            " to finish; if it is gone (its machine crashed or is off), release the lock with"
            " `botlab unlock --yes`, then run again"
        )

    async def release(self) -> None:
        """Delete the lock if this run holds it (one request)."""
        if self.held is None:
            return
        self.held = None
        await self.store.delete()

    async def unlock(self) -> Holder | str | None:
        """Remove the lab's lock whoever holds it, unless the holder provably runs on this
        host (LockedError, exit 3: stop it instead). Returns the holder removed (its comment when it
        names no botlab run), or None if the lab was not locked."""
        text = await self.store.read()
        if text is None:
            return None
        holder = Holder.from_comment(text)
        if holder is not None and holder.alive_here():
            raise LockedError(
                f"lab '{self.lab}' is locked by {holder.describe()}, which is running on this host:"
                " stop it (or let it finish) instead of unlocking"
            )
        await self.store.delete()
        return holder if holder is not None else text
