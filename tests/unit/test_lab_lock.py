"""The lab's lock across folders (botlab/lablock.py), with the in-memory lock store that the
runner tests use (their stages use no MAAS): the policy (refuse a live holder with exit 3
naming it, take over a provably dead one, `botlab unlock --yes`) and release on every way out.
tests/lab/test_lab_lock.py proves the same through the MAAS emulator across processes."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from botlab.app import Environment
from botlab.cli import main
from botlab.context import StageContext
from botlab.lablock import Holder, MemoryLockStore, lock_tag, memory_lock
from tests.support.runlab import Lab
from tests.support.stages import ClusterStage, lab_stages

LOCKED = 3
TAG = lock_tag("demo")


@pytest.fixture(autouse=True)
def no_memory_locks() -> Iterator[None]:
    MemoryLockStore._locks.clear()
    yield
    MemoryLockStore._locks.clear()


def hold(holder: Holder) -> None:
    asyncio.run(MemoryLockStore("demo").create(holder.to_comment()))


def held() -> Holder | None:
    text = MemoryLockStore._locks.get(TAG)
    return Holder.from_comment(text) if text is not None else None


@pytest.fixture
def other_folder(lab: Lab) -> Lab:
    """A second copy of the same inventory in another folder (same lab, same world)."""
    other = Lab(lab.root / "copy")
    shutil.copytree(lab.inventory.parent, other.inventory.parent, dirs_exist_ok=True)
    other.world = lab.world
    other.environ = lab.environ
    return other


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_run_from_another_folder_is_refused_while_the_lab_is_held(
        lab: Lab, other_folder: Lab, live_process: subprocess.Popen[bytes]) -> None:
    assert lab.run("up") == 0
    assert held() is None  # released after the run
    journal = lab.journal()
    from botlab.lablock import _process_start

    holder = replace(Holder.me(lab.inventory.parent, "up"), pid=live_process.pid,
                     started=_process_start(live_process.pid))
    hold(holder)
    for command in (["up"], ["down", "--yes"], ["rebuild", "--yes"]):
        assert other_folder.run(*command) == LOCKED, other_folder.stderr
        assert f"lab 'demo' is locked by pid {live_process.pid} on " in other_folder.stderr
        assert f"in {lab.inventory.parent}" in other_folder.stderr
        assert "`botlab unlock --yes`" in other_folder.stderr
        assert "Traceback" not in other_folder.stderr
    assert lab.journal() == journal  # the other folder touched nothing
    assert held() == holder
    # unlock refuses to remove a holder that provably runs here
    assert other_folder.run("unlock", "--yes") == LOCKED
    assert "running on this host: stop it" in other_folder.stderr
    assert held() == holder


def test_a_dead_holder_on_this_host_is_taken_over(lab: Lab, other_folder: Lab) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()  # its pid is gone
    hold(replace(Holder.me(lab.inventory.parent, "up"), pid=proc.pid))
    doc = other_folder.json("up")
    assert doc["_code"] == 0, doc
    assert held() is None
    store = other_folder.store()
    events = [e.message for e in store.events()]
    store.close()
    assert any(f"took over the lab's lock (in-memory lock {TAG}) left by the dead run pid {proc.pid}" in m
               for m in events), events


def test_a_holder_on_another_host_needs_unlock(lab: Lab, other_folder: Lab) -> None:
    far = replace(Holder.me("/srv/elsewhere/inventory", "down"), host="elsewhere", pid=4242)
    hold(far)
    assert other_folder.run("up") == LOCKED
    assert "locked by pid 4242 on elsewhere" in other_folder.stderr
    assert other_folder.run("unlock") == 2  # not a terminal, no --yes
    assert held() == far
    assert other_folder.run("unlock", "--yes") == 0
    assert "released lab 'demo''s lock, held by pid 4242 on elsewhere" in other_folder.stdout
    assert held() is None
    assert other_folder.run("unlock", "--yes") == 0 and "was not locked" in other_folder.stdout
    assert other_folder.run("up") == 0


def test_a_lock_that_names_no_botlab_run_is_refused(lab: Lab) -> None:
    asyncio.run(MemoryLockStore("demo").create("made by hand"))
    assert lab.run("up") == LOCKED
    assert "names no botlab run ('made by hand')" in lab.stderr
    assert lab.run("unlock", "--yes") == 0
    assert lab.run("up") == 0


def test_the_lock_is_released_when_a_stage_fails_or_crashes(lab: Lab) -> None:
    lab.world.mkdir()
    (lab.world / "fail-kubernetes").write_text("controller unreachable")
    assert lab.run("up") == 1
    assert held() is None
    (lab.world / "fail-kubernetes").unlink()
    lab.environ["BOTLAB_TEST_CRASH"] = "kubernetes"
    assert lab.run("up") == 1
    assert held() is None


def test_the_lock_is_released_on_ctrl_c(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted(self: Any, ctx: StageContext, plan: Any) -> None:
        assert held() is not None  # held while the stage runs
        raise KeyboardInterrupt

    monkeypatch.setattr(ClusterStage, "apply", interrupted)
    out, err = io.StringIO(), io.StringIO()
    env = Environment(cwd=lab.root, environ=lab.environ, stdout=out, stderr=err, stages=lab_stages,
                      lab_lock=memory_lock)
    assert main(["up"], env) == 130
    assert "interrupted" in err.getvalue()
    assert held() is None
    monkeypatch.undo()
    assert lab.run("up") == 0


def test_plan_status_and_logs_take_no_lock(lab: Lab) -> None:
    hold(replace(Holder.me("/elsewhere", "up"), host="elsewhere"))
    for command in (["plan"], ["status"], ["logs"], ["validate"]):
        assert lab.run(*command) == 0, (command, lab.stderr)


def test_lock_comment_round_trips() -> None:
    me = Holder.me(Path("/x/inventory"), "rebuild")
    assert Holder.from_comment(me.to_comment()) == me
    assert Holder.from_comment("botlab lab lock {not json") is None
    assert me.alive_here() and not me.provably_dead()
