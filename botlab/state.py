"""The checkpoint store: what botlab did and decided, in SQLite under `<inventory>/.botlab/`.

It records stage status, fingerprints and outputs, fine-grained progress, learned identities
and a history of runs and events. Every write is one transaction, so a kill -9 at any point
leaves the last committed state intact. It holds no secrets: every JSON value is redacted
on the way in. It never talks to MAAS, Juju, SSH or Kubernetes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botlab.errors import LockedError
from botlab.secrets import redact

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
    return redact(json.dumps(value, sort_keys=True, separators=(",", ":")))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def ensure_private_dir(path: Path) -> Path:
    """Create `path` mode 0700 (and tighten it if it exists)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class StateStore:
    """One lab's checkpoint store. Writers hold the lab lock (see `LabLock`)."""

    def __init__(self, state_dir: Path, *, create: bool = True) -> None:
        self.dir = state_dir
        self.path = state_dir / "state.db"
        self._mutex = threading.Lock()
        if create:
            ensure_private_dir(state_dir)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            os.chmod(self.path, 0o600)
        self._db: sqlite3.Connection | None = None
        if self.path.exists():
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode is durable against process death (kill -9); only power loss can
        # drop the last commits, and it never corrupts the database.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        with db:
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        return db

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
        with self._mutex:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._db is None:
            return []
        with self._mutex:
            return list(self._db.execute(sql, args).fetchall())

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
                (FAILED, time.time(), redact(error), name),
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
                (stage, key, status, redact(detail), _dump(data or {}), time.time()),
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
                (run_id, stage, time.time(), level, redact(message)),
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
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
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
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
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
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> LabLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
