"""botlab when a system goes away, on a virtual lab (no SSH hosts) through the real clients:
Juju connections cut while waiting, a call that is never answered, a controller or MAAS that
dies or stops answering. Each `up` runs as its own process, bounded, so a hang fails the test
instead of hanging it, and what it prints is what an operator's terminal shows.

Deadlines are small here through the drivers' knobs (BOTLAB_CALL_TIMEOUT: 1 s per call;
BOTLAB_UNREACHABLE_TIMEOUT: 3 s without reaching a system before giving up)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from botlab.lab import control
from tests.support.kubelab import KubeLab, start_lab

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
RELATIONS = 14  # in the rendered bundle of the lab's five machines
KNOBS = {"BOTLAB_CALL_TIMEOUT": "1", "BOTLAB_UNREACHABLE_TIMEOUT": "3"}
NOISE = ("Task exception was never retrieved", "Traceback", "Task was destroyed")


@dataclass(repr=False)
class Run:
    code: int
    out: str
    seconds: float

    def __repr__(self) -> str:
        return f"exit {self.code} after {self.seconds:.1f}s:\n{self.out}"


def botlab(lab: KubeLab, *args: str, limit: float = 60.0, on_line: Callable[[str], bool] | None = None,
           act: Callable[[], Any] | None = None) -> Run:
    """`botlab -i INVENTORY ARGS` as its own process with the small deadlines; fails the test if
    it has not ended within `limit` seconds. With `on_line` and `act`: `act()` runs once, as soon
    as botlab prints a line `on_line` accepts."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **KNOBS)
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "botlab.cli", "-i", str(lab.inventory), *args], env=env,
                            cwd=lab.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    acted: list[BaseException | None] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if act is not None and on_line is not None and not acted and on_line(line):
                try:
                    act()
                    acted.append(None)
                except BaseException as exc:
                    acted.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        raise AssertionError(f"botlab {' '.join(args)} still running after {limit:.0f}s:\n{''.join(lines)}") from None
    reader.join(5)
    out = "".join(lines)
    if act is not None:
        assert acted, f"botlab {' '.join(args)} never printed the line to act on:\n{out}"
        if acted[0] is not None:
            raise acted[0]
    return Run(proc.returncode, out, time.monotonic() - began)


def stage_status(lab: KubeLab, name: str) -> str:
    """The stage's recorded status; reading it also proves the lock was released (exit 3 if not)."""
    doc = lab.json("status")
    assert doc["_code"] == 0, doc
    return str(lab.stage(name, doc)["status"])


def waiting(line: str) -> bool:
    """A unit's row in the live display: botlab is in the kubernetes stage's wait."""
    return "kubernetes-worker/0:" in line


def service(url: str, state: str) -> Any:
    return KubeLab._call(url + "service", "POST", {"state": state})


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[KubeLab]:
    """Hooks take 2 s, so the settle wait lasts long enough to be interrupted."""
    vlab = start_lab(tmp_path, hosts=False, charms={"install_s": 2.0})
    try:
        vlab.edit_inventory(timeout=30)
        assert vlab.botlab("up", "enlist") == 0, vlab.stdout + vlab.stderr
        yield vlab
    finally:
        control.stop(vlab.info.dir)


def test_every_juju_connection_cut_once_while_waiting_and_up_still_settles(lab: KubeLab) -> None:
    dropped: list[int] = []
    run = botlab(lab, "up", "kubernetes", on_line=waiting,
                 act=lambda: dropped.append(lab._call(lab.juju_url + "drop", "POST", {})["dropped"]))
    assert dropped[0] >= 2  # the controller connection and the model's
    assert run.code == 0, run
    assert not any(noise in run.out for noise in NOISE), run


def test_a_lost_add_relation_reply_fails_within_the_call_deadline_naming_it_and_up_converges(lab: KubeLab) -> None:
    # The controller relates the applications but its answer never comes.
    lab.juju_faults({"kind": "swallow", "facade": "Application", "method": "AddRelation", "handle": True})
    run = botlab(lab, "up", "kubernetes")
    assert run.code == 1, run
    assert "Juju add relation (" in run.out and "no answer from the controller" in run.out, run
    assert "botlab up" in run.out, run
    assert stage_status(lab, "kubernetes") == "failed"

    again = botlab(lab, "up", "kubernetes")
    assert again.code == 0, again
    # Re-planned from the model: the relation the lost call made is not asked for again.
    calls = [e for e in lab.juju_events() if e["kind"] == "rpc" and e["method"] == "AddRelation"]
    assert len(calls) == RELATIONS and not [e for e in calls if e.get("error")], calls


def test_a_killed_controller_is_reported_within_bounds_and_up_resumes_once_it_is_back(lab: KubeLab) -> None:
    run = botlab(lab, "up", "kubernetes", on_line=waiting, act=lambda: service(lab.juju_url, "down"))
    assert run.code == 1, run
    assert "Juju " in run.out and "cannot reach the controller at 127.0.0.1:" in run.out and " since " in run.out, run
    assert "botlab up" in run.out, run
    assert not any(noise in run.out for noise in NOISE), run
    assert stage_status(lab, "kubernetes") == "failed"  # recorded, and the lock released

    service(lab.juju_url, "up")
    again = botlab(lab, "up", "kubernetes")
    assert again.code == 0, again
    added = Counter(e["method"] for e in lab.juju_events() if e["kind"] == "rpc" and e.get("mutating"))
    assert added["AddMachines"] == 1 and added["CreateModel"] == 1


def test_a_controller_that_stops_answering_is_reported_within_bounds(lab: KubeLab) -> None:
    # The watcher goes silent, so the wait reads FullStatus after a quarter of the timeout (3 s).
    lab.edit_inventory(timeout=12)
    run = botlab(lab, "up", "kubernetes", on_line=waiting, act=lambda: service(lab.juju_url, "hung"))
    assert run.code == 1, run
    assert "cannot reach the controller at 127.0.0.1:" in run.out and " since " in run.out, run
    assert not any(noise in run.out for noise in NOISE), run
    assert stage_status(lab, "kubernetes") == "failed"

    service(lab.juju_url, "up")
    assert botlab(lab, "up", "kubernetes").code == 0


@pytest.mark.parametrize("state", ["down", "hung"])
def test_a_maas_that_dies_or_stops_answering_is_reported_within_bounds(tmp_path: Path, state: str) -> None:
    vlab = start_lab(tmp_path, hosts=False)
    try:
        service(vlab.info.control_url, state)
        run = botlab(vlab, "up", "enlist")
        assert run.code == 1, run
        assert "MAAS " in run.out and f"cannot reach MAAS at {vlab.info.maas_url}" in run.out, run
        assert " since " in run.out and "botlab up" in run.out, run
        assert not any(noise in run.out for noise in NOISE), run
        # Never left running, and the lock released (MAAS may be first needed before the stage starts).
        assert stage_status(vlab, "enlist") in ("failed", "pending")

        service(vlab.info.control_url, "up")
        assert botlab(vlab, "up", "enlist").code == 0
    finally:
        control.stop(vlab.info.dir)


def test_creating_what_already_exists_is_idempotent_in_the_drivers(tmp_path: Path) -> None:
    """What the real systems answer, and the emulators with them: MAAS refuses a second tag of a
    name with 400 {"name": ["Tag with this Name already exists."]} (canonical/maas,
    src/maasserver/models/tag.py: `name = CharField(..., unique=True)`, Django's unique check);
    Juju refuses a second model of a name for its owner with `failed to create new model: model
    "X" for admin already exists`, code "already exists" (juju/juju, state/model.go NewModel:
    `errors.AlreadyExistsf("model %q for %s", ...)`, annotated in
    apiserver/facades/client/modelmanager CreateModel). Both count as done."""
    from botlab.drivers import Drivers
    from botlab.inventory import load_inventory

    vlab = start_lab(tmp_path, hosts=False, machines=2, gpus=0)
    try:
        async def scenario() -> None:
            async with Drivers(load_inventory(vlab.inventory), {}) as drivers:
                maas = await drivers.maas()
                await maas.create_tag("alpha-twice", "made by one run")
                await maas.create_tag("alpha-twice", "and again by another")
                assert "alpha-twice" in await maas.tag_names()

                juju = await drivers.juju()
                key = juju.client_key() or ""
                first = await juju.create_model("alpha-twice", "lab-maas", key)
                await first.close()  # as if another run had made it
                again = await juju.create_model("alpha-twice", "lab-maas", key)
                assert again.uuid == first.uuid and not again.closed
                await juju.destroy_model("alpha-twice", timeout=10)

        asyncio.run(scenario())
        rpcs = [e for e in vlab.juju_events() if e["kind"] == "rpc" and e["method"] == "CreateModel"]
        assert [e["error_code"] for e in rpcs] == [None, "already exists"]
        duplicate = [e for e in vlab.maas_events() if e.get("kind") == "request" and e.get("method") == "POST"
                     and e.get("path", "").endswith("/tags/")]
        assert [e["status"] for e in duplicate] == [200, 400]
    finally:
        control.stop(vlab.info.dir)
