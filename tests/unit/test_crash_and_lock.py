"""kill -9 at random points never corrupts the checkpoint store, and the next `up` completes;
one writer per lab: a second `up` exits 3 naming the holder; a dead holder's lock is taken over.

These run the real CLI in separate processes (tests/support/cli.py) with test-only stages.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from botlab.state import DONE, LabLock, StateStore
from tests.support.inventory import write_inventory

ROOT = Path(__file__).resolve().parents[2]


def botlab(tmp: Path, *args: str, slow: float | None = None) -> subprocess.Popen[str]:
    world = tmp / "world"
    world.mkdir(exist_ok=True)
    if slow == 0:
        (world / "slow").unlink(missing_ok=True)
    elif slow is not None:  # None: leave it as it is (another process may be using it)
        (world / "slow").write_text(str(slow))
    env = dict(os.environ, BOTLAB_TEST_WORLD=str(world), BOTLAB_TEST_MAAS_KEY="k",
               PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.cli", *args], cwd=tmp, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached before the deadline")


def lock_holder(state_dir: Path) -> int | None:
    try:
        return int(json.loads((state_dir / "lock").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def test_kill_9_at_random_points_never_corrupts_state_and_next_up_completes(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    points = 12  # and 20 more, end to end through MAAS and Juju, in tests/lab/test_chaos.py
    for i in range(points):
        lab = tmp_path / f"lab{i}"
        inv = write_inventory(lab)
        state_dir = inv.parent / ".botlab"
        proc = botlab(lab, "up", slow=0.02)
        # A random point in the run: from interpreter start-up to the last stage.
        time.sleep(rng.uniform(0.0, 0.9))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if (state_dir / "state.db").exists():
            store = StateStore.open_existing(state_dir)
            assert store.integrity_ok(), f"kill point {i}: database corrupted"
            store.close()
        done = botlab(lab, "--output", "json", "up", slow=0)
        out, err = done.communicate(timeout=60)
        assert done.returncode == 0, f"kill point {i}: next up failed: {err}"
        result = json.loads(out)
        assert result["result"] == "done"
        store = StateStore.open_existing(state_dir)
        assert {n: r.status for n, r in store.stages().items()} == {
            "enlist": DONE, "kubernetes": DONE, "loadbalancer": DONE
        }
        assert store.integrity_ok()
        store.close()
        world = lab / "world"
        assert sorted(p.name for p in world.glob("enlist-*")) == [
            "enlist-cp-01", "enlist-gpu-01", "enlist-nfs-01"
        ]


def test_second_up_on_the_same_lab_exits_3_naming_the_holder(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path)
    state_dir = inv.parent / ".botlab"
    first = botlab(tmp_path, "up", slow=0.5)
    try:
        wait_until(lambda: lock_holder(state_dir) == first.pid)
        second = botlab(tmp_path, "up")
        _out, err = second.communicate(timeout=30)
        assert second.returncode == 3
        assert f"locked by pid {first.pid} on " in err
        assert " since " in err
    finally:
        first.kill()
        first.communicate()


def test_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path)
    state_dir = inv.parent / ".botlab"
    first = botlab(tmp_path, "up", slow=0.5)
    wait_until(lambda: lock_holder(state_dir) == first.pid)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert lock_holder(state_dir) == first.pid  # the record is still there
    second = botlab(tmp_path, "--output", "json", "up", slow=0)
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    store = StateStore.open_existing(state_dir)
    events = [e.message for e in store.events()]
    assert any(f"took over the lock left by pid {first.pid}" in m for m in events)
    store.close()


def test_lock_in_process_reports_holder(tmp_path: Path) -> None:
    state_dir = tmp_path / ".botlab"
    held = LabLock(state_dir)
    held.acquire("up")
    try:
        from botlab.errors import LockedError

        with pytest.raises(LockedError, match=rf"locked by pid {os.getpid()} on .* since .*\(up\)"):
            LabLock(state_dir).acquire("down")
    finally:
        held.release()
    again = LabLock(state_dir)
    again.acquire("up")
    again.release()
