"""The lab's lock across folders, through the MAAS emulator and python-libmaas: two copies of
one inventory (two folders, two processes) exclude each other with the MAAS tag `<lab>_lock`;
a holder killed with -9 on this host is taken over; a holder elsewhere needs
`botlab unlock --yes`; a free lock costs one create and one delete per run."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from botlab.app import Environment
from botlab.cli import main
from botlab.drivers import Drivers
from botlab.inventory import load_inventory
from botlab.lablock import Holder, lock_tag
from tests.support.kubelab import KubeLab, running_lab

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
TAG = lock_tag("alpha")
LOCKED = 3


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[KubeLab]:
    with running_lab(tmp_path, hosts=False) as vlab:
        yield vlab


@pytest.fixture
def copy(lab: KubeLab) -> Path:
    """A second copy of the lab's inventory folder (its relative paths still resolve)."""
    folder = lab.inventory.parent.parent / "inventory-b"
    shutil.copytree(lab.inventory.parent, folder, ignore=shutil.ignore_patterns(".botlab"))
    return folder / "lab.yaml"


def run_in(lab: KubeLab, inventory: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(cwd=lab.tmp, environ=dict(os.environ), stdout=out, stderr=err)
    code = main(["-i", str(inventory), *args], env)
    return code, out.getvalue(), err.getvalue()


def spawn(inventory: Path, *args: str) -> subprocess.Popen[str]:
    """botlab in a process of its own, as a second operator runs it."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from botlab.cli import main; sys.exit(main())",
         "-i", str(inventory), *args],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As an operator's terminal has it: Ctrl-C delivered (a test run in the background
        # inherits SIGINT ignored, and Python then keeps ignoring it).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def tags(lab: KubeLab) -> set[str]:
    return set(lab._call(lab.info.control_url + "state")["tags"])


def slow_maas(lab: KubeLab, seconds: float, count: int) -> None:
    """MAAS answers the next `count` machine listings `seconds` late: a run that holds the lock
    for a while."""
    lab._call(lab.info.control_url + "faults", "POST",
              {"kind": "slow", "delay_s": seconds, "path": "/machines/", "method": "GET", "count": count})


def wait_until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.05)


def maas_call(inventory: Path, work: object) -> object:
    async def scenario() -> object:
        async with Drivers(load_inventory(inventory), dict(os.environ)) as drivers:
            return await work(await drivers.maas())  # type: ignore[operator]

    return asyncio.run(scenario())


def lock_requests(lab: KubeLab, since: int) -> list[tuple[str, str, int]]:
    return [(e["method"], e["path"], e["status"]) for e in lab.maas_events(since)
            if e.get("kind") == "request" and "/tags/" in str(e.get("path"))
            and ((e["method"] == "POST" and not e.get("op")) or TAG in str(e.get("path")))]


def test_two_folders_exclude_each_other_through_maas(lab: KubeLab, copy: Path) -> None:
    assert lab.botlab("up", "enlist") == 0, lab.stderr
    slow_maas(lab, 1.5, 3)
    first = spawn(lab.inventory, "up", "enlist", "--force")
    try:
        wait_until(lambda: TAG in tags(lab))
        comment = maas_call(lab.inventory, lambda maas: maas.tag_comment(TAG))
        holder = Holder.from_comment(str(comment))
        assert holder is not None and holder.pid == first.pid and holder.folder == str(lab.inventory.parent)

        mark = lab.maas_seq()
        code, _out, err = run_in(lab, copy, "up", "enlist")
        assert code == LOCKED, err
        assert f"lab 'alpha' is locked by pid {first.pid} on " in err
        assert f"(up) in {lab.inventory.parent} (MAAS tag {TAG})" in err
        assert "`botlab unlock --yes`" in err and "Traceback" not in err
        code, _out, err = run_in(lab, copy, "down", "--yes")
        assert code == LOCKED, err
        assert lab.maas_mutations(mark) == []  # refused before touching anything
        assert TAG in tags(lab) and "alpha" in tags(lab)
    finally:
        _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert TAG not in tags(lab)  # released at the end of the run

    code, _out, err = run_in(lab, copy, "up", "enlist")
    assert code == 0, err
    assert TAG not in tags(lab)


def test_a_holder_killed_on_this_host_is_taken_over(lab: KubeLab, copy: Path) -> None:
    assert lab.botlab("up", "enlist") == 0, lab.stderr
    slow_maas(lab, 5.0, 2)
    first = spawn(lab.inventory, "up", "enlist", "--force")
    wait_until(lambda: TAG in tags(lab))
    first.kill()
    first.communicate()
    assert TAG in tags(lab)  # left behind by kill -9
    lab._call(lab.info.control_url + "faults", "DELETE")

    code, _out, err = run_in(lab, copy, "up", "enlist")
    assert code == 0, err
    assert TAG not in tags(lab)
    store = load_inventory(copy).state_dir
    from botlab.state import StateStore

    events = [e.message for e in StateStore.open_existing(store).events()]
    assert any(f"took over the lab's lock (MAAS tag {TAG}) left by the dead run pid {first.pid}" in m
               for m in events), events


def test_a_holder_elsewhere_needs_unlock_and_a_free_lock_costs_two_requests(lab: KubeLab, copy: Path) -> None:
    far = replace(Holder.me("/home/ops/inventory", "rebuild"), host="ci-runner-7", pid=31337)
    assert maas_call(lab.inventory, lambda maas: maas.create_tag_if_absent(TAG, far.to_comment())) is True
    code, _out, err = run_in(lab, copy, "up", "enlist")
    assert code == LOCKED
    assert "locked by pid 31337 on ci-runner-7" in err and "(rebuild) in /home/ops/inventory" in err

    code, out, err = run_in(lab, copy, "unlock", "--yes")
    assert code == 0, err
    assert "released lab 'alpha''s lock, held by pid 31337 on ci-runner-7" in out
    assert TAG not in tags(lab)
    code, out, _err = run_in(lab, copy, "--output", "json", "unlock", "--yes")
    assert code == 0 and json.loads(out)["was_locked"] is False

    assert lab.botlab("up", "enlist") == 0, lab.stderr
    mark = lab.maas_seq()
    assert lab.botlab("up", "enlist") == 0, lab.stderr  # converged: the lock is all it changes
    assert lock_requests(lab, mark) == [("POST", "/MAAS/api/2.0/tags/", 200),
                                        ("DELETE", f"/MAAS/api/2.0/tags/{TAG}/", 204)]
    assert lab.maas_mutations(mark) == []


def test_ctrl_c_releases_the_lab_lock_in_maas(lab: KubeLab) -> None:
    assert lab.botlab("up", "enlist") == 0, lab.stderr
    slow_maas(lab, 3.0, 2)
    run = spawn(lab.inventory, "up", "enlist", "--force")
    wait_until(lambda: TAG in tags(lab))
    run.send_signal(signal.SIGINT)
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert TAG not in tags(lab)  # deleted on the way out, while the run was being cancelled
