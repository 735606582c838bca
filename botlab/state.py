"""The checkpoint store: what botlab did and decided, in SQLite under `<inventory>/.botlab/`.

It records stage status, fingerprints and outputs, fine-grained progress, learned identities
and a history of runs and events. Every write is one transaction, so a kill -9 at any point
leaves the last committed state intact. It holds no secrets: every JSON value is redacted
on the way in. It never talks to MAAS, Juju, SSH or Kubernetes.

A store or folder that cannot be used (damaged, not botlab's, from a newer botlab, unreadable,
read-only, on a full disk, with unsafe permissions) is a `StateError`: one line saying what is
wrong and what to do, never a traceback. The state folder's permissions are checked, never
changed behind the operator's back: botlab creates it 0700 and refuses one that is open to
group or others or that its owner cannot use.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botlab.errors import LockedError, StateError
from botlab.sanitize import one_line
from botlab.secrets import redact, redact_data

SCHEMA_VERSION = 1

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stages (
    name TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    fingerprint TEXT,
    inputs TEXT,
    outputs TEXT,
    started_at REAL,
    ended_at REAL,
    error TEXT,
    run_id INTEGER
);
CREATE TABLE IF NOT EXISTS progress (
    stage TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    data TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (stage, key)
);
CREATE TABLE IF NOT EXISTS identities (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    command TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    result TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER,
    stage TEXT,
    ts REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_stage ON events (stage, run_id);
"""


@dataclass(frozen=True)
class StageRecord:
    name: str
    status: str
    fingerprint: str | None
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    started_at: float | None
    ended_at: float | None
    error: str | None
    run_id: int | None


@dataclass(frozen=True)
class ProgressRecord:
    stage: str
    key: str
    status: str
    detail: str
    data: dict[str, Any]
    updated_at: float


@dataclass(frozen=True)
class Event:
    id: int
    run_id: int | None
    stage: str | None
    ts: float
    level: str
    message: str


@dataclass(frozen=True)
class Run:
    id: int
    command: str
    pid: int
    host: str
    started_at: float
    ended_at: float | None
    result: str | None


def _dump(value: Any) -> str:
    return redact(json.dumps(redact_data(value), sort_keys=True, separators=(",", ":")))


def _text(value: str) -> str:
    """Free text for the store (an event, a progress detail, an error): secrets redacted and
    control characters escaped, so what `status` and `logs` print later is safe too."""
    return one_line(redact(value))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# -- what is wrong with a state folder, and what to do ------------------------------------------


def move_aside_advice(state_dir: Path) -> str:
    return (
        "restore it from a backup, or move it aside with its -wal and -shm files"
        f" (`cd {state_dir} && mkdir -p broken && mv state.db* broken/`): the next `botlab up`"
        " then starts a new store and re-plans every stage against MAAS and Juju"
        " (`botlab plan` shows first what it would do)"
    )


def os_problem(path: Path, exc: OSError, *, during_run: bool = False) -> StateError:
    """A StateError for an OSError met on the state folder or a file in it."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = (
            f"{path}: cannot write: {reason}; free space on the file system holding {path.parent}"
            " (old run logs are in .botlab/logs/), then run botlab again"
        )
    elif code == errno.EROFS:
        what = (f"{path}: cannot write: read-only file system; botlab records what it does in its state"
                " folder before touching the lab: run it where that folder is writable")
    elif code in (errno.EACCES, errno.EPERM):
        what = (f"{path}: permission denied; botlab must read and write its state folder: run it as the"
                f" folder's owner (`ls -ld {path.parent}`), or fix the owner and mode (700)")
    elif code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        what = f"{path}: {reason}: the state folder must be a folder; move what is there aside"
    else:
        what = f"{path}: {reason}"
    return StateError(what, during_run=during_run)


def ensure_private_dir(path: Path) -> Path:
    """Create `path` mode 0700 if it is absent. An existing one is checked, never changed:
    a folder open to group or others, or one its owner cannot read, write and enter, is
    refused (StateError, exit 2) with the `chmod` that fixes it."""
    try:
        try:
            info = path.stat()
        except FileNotFoundError:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)  # ours, just made: exactly 0700 whatever the umask
            return path
    except OSError as exc:
        raise os_problem(path, exc) from None
    if not stat.S_ISDIR(info.st_mode):
        raise StateError(f"{path}: not a folder; botlab keeps its state there: move it aside, then run again")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise StateError(
            f"{path}: open to group or others (mode {mode:04o}), and it holds host keys, the kubeconfig"
            f" and run logs: `chmod 700 {path}`, then run again"
        )
    if mode & 0o700 != 0o700:
        raise StateError(
            f"{path}: mode {mode:04o}: its owner cannot read, write and enter it, and botlab records"
            f" what it does there: `chmod 700 {path}` if that was not intended, then run again"
        )
    return path


def _expected_columns() -> dict[str, set[str]]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(_SCHEMA)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in tables
                if not t.startswith("sqlite_")}
    finally:
        db.close()


_EXPECTED = _expected_columns()


class StateStore:
    """One lab's checkpoint store. Writers hold the lab lock (see `LabLock`)."""

    def __init__(self, state_dir: Path, *, create: bool = True) -> None:
        self.dir = state_dir
        self.path = state_dir / "state.db"
        self._mutex = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if create:
            ensure_private_dir(state_dir)
            self._check_file_mode()
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
                os.close(fd)
            except OSError as exc:
                raise os_problem(self.path, exc) from None
        try:
            exists = self.path.exists()
        except OSError as exc:
            raise os_problem(self.path, exc) from None
        if exists:
            self._db = self._open(write=create)

    def _check_file_mode(self) -> None:
        """An existing state.db must be the owner's alone and usable by its owner (0600)."""
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise os_problem(self.path, exc) from None
        if mode & 0o077:
            raise StateError(f"{self.path}: open to group or others (mode {mode:04o}): `chmod 600 {self.path}`,"
                             " then run again")
        if mode & 0o600 != 0o600:
            raise StateError(f"{self.path}: mode {mode:04o}: its owner cannot read and write it:"
                             f" `chmod 600 {self.path}` if that was not intended, then run again")

    def _open(self, *, write: bool) -> sqlite3.Connection | None:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self.problem(exc) from None
        try:
            fresh = self._validate(db)
            if fresh and not write:  # created but never written: reads as empty
                db.close()
                return None
            if write:
                db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode is durable against process death (kill -9); only power loss
                # can drop the last commits, and it never corrupts the database.
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
            if fresh:
                # One transaction, so a kill -9 never leaves tables without their version.
                db.executescript(
                    f"BEGIN IMMEDIATE; {_SCHEMA} INSERT OR IGNORE INTO meta (key, value)"
                    f" VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
                )
        except StateError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise self.problem(exc) from None
        return db

    def _validate(self, db: sqlite3.Connection) -> bool:
        """Check that `db` is an intact botlab store this botlab reads, before anything is
        read or written; True for an empty file (a store not created yet)."""
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        tables = {t for t in tables if not t.startswith("sqlite_")}
        if not tables:
            return True
        check = db.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise self._unusable(f"damaged ({'; '.join(str(r[0]) for r in check[:3])})")
        if "meta" not in tables:
            raise self._unusable("not a botlab state store (no meta table)")
        rows = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchall()
        try:
            version = int(rows[0][0]) if rows else None
        except (TypeError, ValueError):
            version = None
        if version is None and not rows and self._ours(db, tables) and not db.execute("SELECT 1 FROM meta").fetchall():
            # Tables created, version not yet written: a creation that an earlier botlab ran in
            # several transactions, killed in between. Nothing was recorded yet: start afresh.
            return True
        if version is None:
            raise self._unusable("not a botlab state store (no schema version)")
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: written by a newer botlab (store schema {version}; this botlab reads"
                f" {SCHEMA_VERSION}): run that version of botlab, or restore a backup this one wrote"
            )
        if version < SCHEMA_VERSION:
            raise self._unusable(f"store schema {version}, which no botlab release wrote")
        for table, wanted in _EXPECTED.items():
            if table not in tables:
                raise self._unusable(f"wrong schema: table {table} is missing")
            have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            if wanted - have:
                missing = ", ".join(sorted(wanted - have))
                raise self._unusable(f"wrong schema: table {table} lacks {missing}")
        return False

    @staticmethod
    def _ours(db: sqlite3.Connection, tables: set[str]) -> bool:
        """Whether `tables` are exactly botlab's, with botlab's columns."""
        if not tables <= set(_EXPECTED):
            return False
        return all({r[1] for r in db.execute(f"PRAGMA table_info({t})")} == _EXPECTED[t] for t in tables)

    def _unusable(self, what: str) -> StateError:
        return StateError(f"{self.path}: {what}; {move_aside_advice(self.dir)}")

    def _disk_full(self) -> bool:
        """Whether the state folder's file system is (nearly) full: SQLite reports a write
        that hit ENOSPC in its WAL or index as an I/O error, not as SQLITE_FULL."""
        try:
            fs = os.statvfs(self.dir)
        except OSError:
            return False
        return fs.f_bavail * fs.f_frsize < 64 * 1024

    def problem(self, exc: sqlite3.Error) -> StateError:
        """What an SQLite error on this store means to the operator, and what to do."""
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text or "malformed" in text:
            return self._unusable(f"damaged or not a database ({text})")
        if name.startswith("SQLITE_FULL") or "disk is full" in text:
            return os_problem(self.path, OSError(errno.ENOSPC, "database or disk is full"))
        if name.startswith("SQLITE_READONLY") or "readonly" in text:
            return StateError(
                f"{self.path}: cannot write ({text}): the file or its folder is read-only; botlab records"
                f" what it does there before touching the lab: make {self.dir} writable by its owner,"
                " then run again"
            )
        if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")) or "unable to open" in text:
            return StateError(
                f"{self.path}: cannot open ({text}): botlab must read and write its state folder; check"
                f" its owner and mode (`ls -la {self.dir}`: the folder 700, state.db 600, owned by the"
                " user running botlab)"
            )
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StateError(f"{self.path}: busy ({text}): another process holds it; wait, then run again")
        if name.startswith("SQLITE_IOERR") and self._disk_full():
            return os_problem(self.path, OSError(errno.ENOSPC, f"no space left on device ({text})"))
        if name.startswith("SQLITE_IOERR"):
            return StateError(f"{self.path}: I/O error ({text}): check the disk holding {self.dir}"
                              " (full? failing?), then run again")
        return StateError(f"{self.path}: {text}")

    @classmethod
    def open_existing(cls, state_dir: Path) -> StateStore:
        """Open for reading without creating anything: an absent store reads as empty."""
        return cls(state_dir, create=False)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._db is None:
            raise RuntimeError("state store opened read-only and does not exist yet")
        db = self._db
        with self._mutex:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.problem(exc) from None
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.problem(exc) from None
                raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._db is None:
            return []
        with self._mutex:
            try:
                return list(self._db.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise self.problem(exc) from None

    # -- stages ---------------------------------------------------------------------------

    def stage(self, name: str) -> StageRecord | None:
        rows = self._query(
            "SELECT name, status, fingerprint, inputs, outputs, started_at, ended_at, error,"
            " run_id FROM stages WHERE name = ?",
            (name,),
        )
        if not rows:
            return None
        r = rows[0]
        return StageRecord(r[0], r[1], r[2], _load(r[3]), _load(r[4]), r[5], r[6], r[7], r[8])

    def stages(self) -> dict[str, StageRecord]:
        names = [r[0] for r in self._query("SELECT name FROM stages")]
        return {n: rec for n in names if (rec := self.stage(n)) is not None}

    def stage_started(self, name: str, fingerprint: str, inputs: dict[str, Any], run_id: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO stages (name, status, fingerprint, inputs, started_at, ended_at,"
                " error, run_id) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)"
                " ON CONFLICT(name) DO UPDATE SET status=excluded.status,"
                " fingerprint=excluded.fingerprint, inputs=excluded.inputs,"
                " started_at=excluded.started_at, ended_at=NULL, error=NULL,"
                " run_id=excluded.run_id",
                (name, RUNNING, fingerprint, _dump(inputs), time.time(), run_id),
            )

    def stage_done(self, name: str, outputs: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE stages SET status=?, outputs=?, ended_at=?, error=NULL WHERE name=?",
                (DONE, _dump(outputs), time.time(), name),
            )

    def stage_failed(self, name: str, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE stages SET status=?, ended_at=?, error=? WHERE name=?",
                (FAILED, time.time(), _text(error), name),
            )

    def stage_reset(self, name: str) -> None:
        """Forget a torn-down stage: status pending, no outputs, no progress."""
        with self._tx() as db:
            db.execute("DELETE FROM stages WHERE name=?", (name,))
            db.execute("DELETE FROM progress WHERE stage=?", (name,))

    # -- progress -------------------------------------------------------------------------

    def set_progress(
        self,
        stage: str,
        key: str,
        status: str,
        detail: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO progress (stage, key, status, detail, data, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(stage, key) DO UPDATE SET"
                " status=excluded.status, detail=excluded.detail, data=excluded.data,"
                " updated_at=excluded.updated_at",
                (stage, key, _text(status), _text(detail), _dump(data or {}), time.time()),
            )

    def progress(self, stage: str) -> dict[str, ProgressRecord]:
        rows = self._query(
            "SELECT stage, key, status, detail, data, updated_at FROM progress WHERE stage=? ORDER BY key",
            (stage,),
        )
        return {r[1]: ProgressRecord(r[0], r[1], r[2], r[3], _load(r[4]) or {}, r[5]) for r in rows}

    def clear_progress(self, stage: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM progress WHERE stage=?", (stage,))

    # -- identities -----------------------------------------------------------------------

    def set_identity(self, kind: str, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO identities (kind, key, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(kind, key) DO UPDATE SET value=excluded.value,"
                " updated_at=excluded.updated_at",
                (kind, key, value, time.time()),
            )

    def identities(self, kind: str) -> dict[str, str]:
        rows = self._query("SELECT key, value FROM identities WHERE kind=? ORDER BY key", (kind,))
        return {r[0]: r[1] for r in rows}

    def forget_identity(self, kind: str, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM identities WHERE kind=? AND key=?", (kind, key))

    # -- runs and events ------------------------------------------------------------------

    def run_started(self, command: str) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO runs (command, pid, host, started_at) VALUES (?, ?, ?, ?)",
                (command, os.getpid(), socket.gethostname(), time.time()),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def run_ended(self, run_id: int, result: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET ended_at=?, result=? WHERE id=?", (time.time(), result, run_id))

    def run(self, run_id: int) -> Run | None:
        rows = self._query(
            "SELECT id, command, pid, host, started_at, ended_at, result FROM runs WHERE id=?",
            (run_id,),
        )
        return Run(*rows[0]) if rows else None

    def runs(self, limit: int = 20) -> list[Run]:
        rows = self._query(
            "SELECT id, command, pid, host, started_at, ended_at, result FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [Run(*r) for r in rows]

    def add_event(self, run_id: int | None, stage: str | None, message: str, level: str = "info") -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (run_id, stage, ts, level, message) VALUES (?, ?, ?, ?, ?)",
                (run_id, stage, time.time(), level, _text(message)),
            )

    def events(self, *, run_id: int | None = None, stage: str | None = None) -> list[Event]:
        sql = "SELECT id, run_id, stage, ts, level, message FROM events WHERE 1=1"
        args: list[Any] = []
        if run_id is not None:
            sql += " AND run_id=?"
            args.append(run_id)
        if stage is not None:
            sql += " AND stage=?"
            args.append(stage)
        return [Event(*r) for r in self._query(sql + " ORDER BY id", tuple(args))]

    def last_run_of_stage(self, stage: str) -> int | None:
        rows = self._query("SELECT MAX(run_id) FROM events WHERE stage=?", (stage,))
        return rows[0][0] if rows and rows[0][0] is not None else None

    def integrity_ok(self) -> bool:
        """SQLite's full integrity check; a store never written (nothing to check) is intact."""
        if self._db is None:
            return True
        rows = self._query("PRAGMA integrity_check")
        return bool(rows) and rows[0][0] == "ok"


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    since: str
    command: str


class LabLock:
    """One writer per lab: an flock on `<state dir>/lock`, released by the kernel when the
    holder dies, so a lock left by a killed process is simply taken over."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._fd: int | None = None
        self.stale: LockHolder | None = None  # set when we took over a dead holder's lock

    def acquire(self, command: str) -> None:
        ensure_private_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise os_problem(self.path, exc) from None
        try:
            self._take(fd, command)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise

    def _take(self, fd: int, command: str) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            who = (
                f"pid {holder.pid} on {holder.host} since {holder.since} ({holder.command})"
                if holder
                else "another process"
            )
            raise LockedError(
                f"{self.path.parent.parent}: locked by {who}; wait for it to finish or stop it, then run again"
            ) from None
        self.stale = self._read(fd)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except OSError as exc:
            raise os_problem(self.path, exc) from None
        self._fd = fd

    @staticmethod
    def _read(fd: int) -> LockHolder | None:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"null")
            return LockHolder(int(data["pid"]), str(data["host"]), str(data["since"]), str(data["command"]))
        except (ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):  # closing the file releases the flock anyway
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> LabLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
