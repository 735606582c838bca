"""Chaos on the virtual lab (no SSH hosts), through the real clients: `botlab up` killed with
SIGKILL at random moments across enlist and kubernetes, and the Juju controller's connections
cut (or the controller stopped for a moment) at random moments; each next `up` resumes from
where the last one stopped, the last converges, and no machine is ever allocated twice.

A "moment" is a random number of lines of botlab's own progress output, so kills land at
points of real progress (a machine created, a tag added, a machine added to Juju, a unit
settling ...) rather than at wall-clock times that depend on the machine's speed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from botlab.lab import control
from botlab.state import StateStore
from tests.support.kubelab import KubeLab, start_lab

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("node-01", "node-02", "node-03", "node-04", "node-05")
KNOBS = {"BOTLAB_CALL_TIMEOUT": "2", "BOTLAB_UNREACHABLE_TIMEOUT": "5"}
LIMIT_S = 90.0  # no single run may take longer: a hang fails the test instead of hanging it


def up_until(lab: KubeLab, lines: int, act: Callable[[subprocess.Popen[str]], Any]) -> tuple[int, str]:
    """`botlab up kubernetes` (the lab has no hosts for the gpu stage's SSH) as its own process;
    `act(process)` runs once botlab has printed `lines` lines. Returns its exit code and output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **KNOBS)
    proc = subprocess.Popen([sys.executable, "-m", "botlab.cli", "-i", str(lab.inventory), "up", "kubernetes"],
                            env=env, cwd=lab.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if len(seen) == lines:
                act(proc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"`botlab up` still running after {LIMIT_S:.0f}s:\n{''.join(seen)}") from None
    reader.join(5)
    return proc.returncode, "".join(seen)


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)


def assert_converged_once_each(lab: KubeLab) -> None:
    """The lab is built, each host was allocated and added to Juju exactly once, and the
    state store is intact."""
    code = lab.botlab("--output", "json", "up")
    assert code == 0, lab.stdout + lab.stderr
    assert {h: m["status_name"] for h, m in lab.maas_machines().items()} == dict.fromkeys(HOSTS, "Deployed")
    events = lab.juju_events()
    added = Counter(",".join(e["constraints"].get("tags") or []) for e in events
                    if e["kind"] == "machine-added" and not e.get("parent"))
    assert added == Counter(f"alpha-pin-{h}" for h in HOSTS), added
    allocated = Counter(e["hostname"] for e in events if e["kind"] == "machine-allocated")
    assert allocated == Counter(HOSTS), allocated
    store = StateStore.open_existing(lab.inventory.parent / ".botlab")
    try:
        assert store.integrity_ok()
        assert {n: r.status for n, r in store.stages().items()} == {"enlist": "done", "kubernetes": "done"}
    finally:
        store.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[KubeLab]:
    # Three machines MAAS does not know yet (created, then commissioned), hooks of 0.3 s.
    vlab = start_lab(tmp_path, hosts=False, unenlisted=3, charms={"install_s": 0.3})
    try:
        yield vlab
    finally:
        control.stop(vlab.info.dir)


def test_kill_9_at_20_random_moments_then_up_converges_without_double_allocation(lab: KubeLab) -> None:
    rng = random.Random(20261204)
    killed_in: Counter[str] = Counter()
    for i in range(20):
        # Each run resumes where the last one stopped and is killed after a random number of
        # its own lines: early on within enlist's first lines, then further, into kubernetes.
        code, out = up_until(lab, rng.randint(2, 20) if i < 10 else rng.randint(10, 60), kill)
        assert "Traceback" not in out, out
        if code == -signal.SIGKILL:
            stages = [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("==> ")]
            killed_in[stages[-1] if stages else "start-up"] += 1
    # The kills really landed mid-way, in both stages.
    assert killed_in["enlist"] >= 3 and killed_in["kubernetes"] >= 3, killed_in
    assert_converged_once_each(lab)


def test_juju_controller_cut_at_random_moments_then_up_converges(lab: KubeLab) -> None:
    assert lab.botlab("up", "enlist") == 0, lab.stdout + lab.stderr
    rng = random.Random(4)

    def cut(proc: subprocess.Popen[str]) -> None:
        lab._call(lab.juju_url + "drop", "POST", {})

    def restart(proc: subprocess.Popen[str]) -> None:
        lab._call(lab.juju_url + "service", "POST", {"state": "down"})
        time.sleep(0.5)  # the controller is away for half a second (a restart), not a sync
        lab._call(lab.juju_url + "service", "POST", {"state": "up"})

    outcomes = []
    acted: list[int] = []
    for i in range(6):
        fault = cut if i % 2 == 0 else restart
        code, out = up_until(lab, rng.randint(3, 30), lambda proc, f=fault, n=i: (acted.append(n), f(proc)))
        # Either it rode through the cut, or it failed saying so and how to resume: never a
        # hang (up_until bounds it), never a traceback, never another exit code.
        assert code in (0, 1), out
        assert "Traceback" not in out and "Task exception was never retrieved" not in out, out
        if code == 1:
            assert "botlab up" in out, out
        outcomes.append(code)
    assert len(acted) >= 4, (acted, outcomes)  # the faults really hit runs in progress
    assert_converged_once_each(lab)
