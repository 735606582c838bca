"""A state folder or store botlab cannot use gives one line saying what is wrong and what to do,
with exit 2 when nothing was touched (1 when a write fails once the run has begun), never a
traceback, and never a silent permission change.

Driven through the real CLI with the test-only stages (tests/support/runlab.py). The read-only
and full-disk cases use real mounts (a read-only bind mount, a 64 KiB tmpfs) when running as
root, which the suite does; elsewhere they are skipped.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from botlab.state import StateStore
from tests.support.runlab import Lab

BAD_INPUT, STAGE_FAILED = 2, 1


def state_dir(lab: Lab) -> Path:
    return lab.inventory.parent / ".botlab"


def db_path(lab: Lab) -> Path:
    return state_dir(lab) / "state.db"


def one_line_error(lab: Lab) -> str:
    """The whole of stderr: one `botlab: error:` line, and no traceback."""
    assert "Traceback" not in lab.stderr, lab.stderr
    lines = [ln for ln in lab.stderr.splitlines() if ln.startswith("botlab: error:")]
    assert len(lines) == 1, lab.stderr
    return lines[0]


def move_aside_advised(line: str) -> None:
    assert "restore it from a backup, or move it aside" in line
    assert "mv state.db* broken/" in line
    assert "`botlab plan`" in line


@pytest.fixture
def built(lab: Lab) -> Lab:
    assert lab.run("up") == 0, lab.stderr
    return lab


def checkpoint(lab: Lab) -> None:
    """Fold the WAL into state.db, as a finished run eventually does, so tampering with
    state.db alone is what the next run meets."""
    db = sqlite3.connect(db_path(lab))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


# -- damaged, foreign and newer stores -----------------------------------------------------------


@pytest.mark.parametrize("command", ["up", "status", "logs", "plan", "down --yes"])
def test_truncated_store_is_refused_with_advice(built: Lab, command: str) -> None:
    checkpoint(built)
    data = db_path(built).read_bytes()
    db_path(built).write_bytes(data[: len(data) // 2])
    journal = built.journal()
    assert built.run(*command.split()) == BAD_INPUT
    line = one_line_error(built)
    assert str(db_path(built)) in line and "damaged" in line
    move_aside_advised(line)
    assert built.journal() == journal  # nothing touched


def test_random_bytes_are_not_a_store(built: Lab) -> None:
    db_path(built).write_bytes(os.urandom(8192))
    for name in ("state.db-wal", "state.db-shm"):
        (state_dir(built) / name).unlink(missing_ok=True)
    assert built.run("up") == BAD_INPUT
    line = one_line_error(built)
    assert "damaged or not a database" in line
    move_aside_advised(line)


def test_wrong_schema_is_refused_and_not_altered(lab: Lab) -> None:
    state_dir(lab).mkdir(mode=0o700)
    db = sqlite3.connect(db_path(lab))
    db.execute("CREATE TABLE stages (name TEXT, colour TEXT)")
    db.commit()
    db.close()
    os.chmod(db_path(lab), 0o600)
    assert lab.run("up") == BAD_INPUT
    line = one_line_error(lab)
    assert "not a botlab state store (no meta table)" in line
    move_aside_advised(line)
    db = sqlite3.connect(db_path(lab))
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert tables == {"stages"}  # botlab added nothing to a database that is not its own


def test_a_table_missing_a_column_is_a_wrong_schema(built: Lab) -> None:
    db = sqlite3.connect(db_path(built))
    db.execute("ALTER TABLE events DROP COLUMN level")
    db.commit()
    db.close()
    assert built.run("status") == BAD_INPUT
    assert "wrong schema: table events lacks level" in one_line_error(built)


def test_store_from_a_newer_botlab_is_refused(built: Lab) -> None:
    db = sqlite3.connect(db_path(built))
    db.execute("UPDATE meta SET value='7' WHERE key='schema_version'")
    db.commit()
    db.close()
    assert built.run("up") == BAD_INPUT
    line = one_line_error(built)
    assert "written by a newer botlab (store schema 7; this botlab reads 1)" in line


def test_moving_the_store_aside_as_advised_lets_the_next_run_rebuild(built: Lab) -> None:
    db_path(built).write_bytes(b"garbage" * 100)
    assert built.run("up") == BAD_INPUT
    broken = state_dir(built) / "broken"
    broken.mkdir()
    for path in state_dir(built).glob("state.db*"):
        path.rename(broken / path.name)
    doc = built.json("up")
    assert doc["_code"] == 0, doc  # a new store; every stage re-planned against the world
    assert built.json("status")["stages"][0]["status"] == "done"


# -- permissions: checked, never changed --------------------------------------------------------


@pytest.mark.parametrize("mode, says", [
    (0o755, "open to group or others (mode 0755)"),
    (0o500, "mode 0500: its owner cannot read, write and enter it"),
    (0o000, "mode 0000: its owner cannot read, write and enter it"),
])
def test_state_folder_with_wrong_mode_is_refused_not_chmodded(built: Lab, mode: int, says: str) -> None:
    folder = state_dir(built)
    os.chmod(folder, mode)
    try:
        journal = built.journal()
        assert built.run("up") == BAD_INPUT
        line = one_line_error(built)
        assert says in line and f"chmod 700 {folder}" in line
        assert stat.S_IMODE(folder.stat().st_mode) == mode  # left as the operator set it
        assert built.journal() == journal
    finally:
        os.chmod(folder, 0o700)
    assert built.run("up") == 0


def test_store_file_with_wrong_mode_is_refused(built: Lab) -> None:
    os.chmod(db_path(built), 0o644)
    assert built.run("up") == BAD_INPUT
    assert f"chmod 600 {db_path(built)}" in one_line_error(built)
    assert stat.S_IMODE(db_path(built).stat().st_mode) == 0o644


def test_state_folder_that_is_a_file_is_refused(lab: Lab) -> None:
    state_dir(lab).write_text("not a folder")
    assert lab.run("up") == BAD_INPUT
    assert "not a folder" in one_line_error(lab)


# -- real mounts: a read-only folder, a full disk ----------------------------------------------


def _mount(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting needs root")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")


@pytest.fixture
def read_only_state(built: Lab) -> Iterator[Lab]:
    folder = state_dir(built)
    _mount("--bind", str(folder), str(folder))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield built
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_read_only_state_folder(read_only_state: Lab) -> None:
    lab = read_only_state
    journal = lab.journal()
    assert lab.run("up") == BAD_INPUT
    line = one_line_error(lab)
    assert "read-only" in line and "run it where that folder is writable" in line
    assert lab.journal() == journal
    assert lab.run("status") in (0, BAD_INPUT)  # a reader may or may not manage; never a traceback
    assert "Traceback" not in lab.stderr


def state_disk(lab: Lab, size: str) -> Iterator[Lab]:
    """The state folder on a tmpfs of `size`."""
    folder = state_dir(lab)
    folder.mkdir(mode=0o700)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder))
    try:
        yield lab
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.fixture
def tiny_state_disk(lab: Lab) -> Iterator[Lab]:
    yield from state_disk(lab, "64k")


@pytest.fixture
def small_state_disk(lab: Lab) -> Iterator[Lab]:
    yield from state_disk(lab, "1m")  # room for a store, its WAL and index (-shm: 32 KiB)


def fill(folder: Path) -> None:
    """Fill the file system holding `folder` to the last byte."""
    fd = os.open(folder / "filler", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        for size in (4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_full_disk_before_the_run_exits_2_with_advice(tiny_state_disk: Lab) -> None:
    lab = tiny_state_disk
    fill(state_dir(lab))
    assert lab.run("up") == BAD_INPUT
    line = one_line_error(lab)
    assert "No space left on device" in line or "database or disk is full" in line
    assert "free space on the file system" in line
    assert not lab.world.exists()  # nothing touched


def test_full_disk_at_any_point_is_one_line_with_the_right_exit_and_up_then_resumes(small_state_disk: Lab) -> None:
    """The disk fills at different points of `up --force` (how much room is left decides
    where): exit 2 when the run had not begun (nothing touched), exit 1 when it had (the
    message says `botlab up` resumes); one line, no traceback; once space is freed, `up`
    converges."""
    lab = small_state_disk
    assert lab.run("up", "enlist") == 0, lab.stderr
    folder = state_dir(lab)
    codes = set()
    for room_kib in (16, 48, 96, 160):
        fill(folder)
        (folder / "filler").unlink()
        fs = os.statvfs(folder)
        ballast = folder / "ballast"
        ballast.write_bytes(b"\0" * max(fs.f_bavail * fs.f_frsize - room_kib * 1024, 0))
        journal = lab.journal()
        code = lab.run("up", "--force")
        codes.add(code)
        if code != 0:
            line = one_line_error(lab)
            assert "free space on the file system holding" in line, line
            if code == BAD_INPUT:
                assert lab.journal() == journal  # refused before touching anything
            else:
                assert code == STAGE_FAILED, line
                assert "`botlab up` resumes it" in line
        ballast.unlink()
        doc = lab.json("up")
        assert doc["_code"] == 0, (room_kib, doc)
    assert {BAD_INPUT, STAGE_FAILED} <= codes, codes


def test_a_write_failing_mid_run_exits_1_in_one_line(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic twin of the full-disk case: the store's Nth write fails with SQLite's
    SQLITE_FULL, as a full disk makes it fail, after the run has begun."""
    assert lab.run("up", "enlist") == 0
    real = StateStore.set_progress
    calls = {"n": 0}

    def full(self: StateStore, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] >= 2:
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
            raise self.problem(exc)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(StateStore, "set_progress", full)
    monkeypatch.setattr(StateStore, "stage_failed", lambda self, *a: full(self))
    assert lab.run("up") == STAGE_FAILED
    line = one_line_error(lab)
    assert "database or disk is full" in line and "free space" in line
    assert "the run had begun: once this is fixed, `botlab up` resumes it" in line
    monkeypatch.undo()
    doc = lab.json("up")
    assert doc["_code"] == 0, doc


def test_a_logs_folder_with_wrong_mode_is_refused_before_the_stages(built: Lab) -> None:
    logs = state_dir(built) / "logs"
    os.chmod(logs, 0o755)
    journal = built.journal()
    assert built.run("up") == BAD_INPUT
    assert f"chmod 700 {logs}" in one_line_error(built)
    assert built.journal() == journal
    store = built.store()
    last = store.runs(limit=1)[0]
    store.close()
    assert last.result == "refused"
    os.chmod(logs, 0o700)
    assert built.run("up") == 0


def test_a_store_whose_creation_was_killed_before_its_version_is_started_afresh(lab: Lab) -> None:
    """kill -9 between an earlier botlab's table creation and its version row (they were
    separate transactions) is no damage: nothing was recorded yet."""
    from botlab.state import _SCHEMA

    state_dir(lab).mkdir(mode=0o700)
    db = sqlite3.connect(db_path(lab))
    db.executescript(_SCHEMA)
    db.close()
    os.chmod(db_path(lab), 0o600)
    assert lab.run("status") == 0, lab.stderr
    assert lab.run("up") == 0, lab.stderr
