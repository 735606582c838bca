"""The enlist stage end to end: botlab (through unmodified python-libmaas) against the MAAS
emulator of a virtual lab started with `botlab lab start`'s machinery, as a separate
process. What MAAS saw is read back from the emulator's control API (event log, state)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from botlab.app import Environment
from botlab.cli import main
from botlab.lab import control, specs
from botlab.state import StateStore
from tests.support.kubelab import without_lock

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


class VirtualLab:
    def __init__(self, tmp: Path, info: control.LabInfo) -> None:
        self.tmp = tmp
        self.info = info
        self.inventory = info.inventory
        self.stdout = self.stderr = ""

    # -- the emulator's control API -----------------------------------------------------------

    def _get(self, what: str) -> Any:
        with urllib.request.urlopen(self.info.control_url + what, timeout=10) as answer:
            return json.loads(answer.read())

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        doc = self._get(f"events?since={since}")
        return doc["events"] if isinstance(doc, dict) else doc

    def last_seq(self) -> int:
        return int(self._get("state")["last_seq"])

    def machines(self) -> dict[str, dict[str, Any]]:
        return {m["hostname"]: m for m in self._get("state")["machines"]}

    def tags(self) -> list[str]:
        return list(self._get("state")["tags"])

    def inject(self, **fault: Any) -> None:
        req = urllib.request.Request(self.info.control_url + "faults", method="POST",
                                     data=json.dumps(fault).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10):
            pass

    def mutations(self, since: int) -> list[dict[str, Any]]:
        """Mutating requests since `since`, the lab's lock apart."""
        return without_lock([e for e in self.events(since) if e.get("kind") == "request" and e.get("mutating")],
                            self.info.name)

    # -- botlab ---------------------------------------------------------------------------------

    def botlab(self, *args: str, inventory: Path | None = None) -> int:
        out, err = io.StringIO(), io.StringIO()
        env = Environment(cwd=self.tmp, environ=dict(os.environ), stdout=out, stderr=err)
        code = main(["-i", str(inventory or self.inventory), *args], env)
        self.stdout, self.stderr = out.getvalue(), err.getvalue()
        return code

    def json(self, *args: str, inventory: Path | None = None) -> dict[str, Any]:
        code = self.botlab("--output", "json", *args, inventory=inventory)
        doc: dict[str, Any] = json.loads(self.stdout)
        doc["_code"] = code
        return doc

    def edit_inventory(self, change: Any, path: Path | None = None) -> None:
        path = path or self.inventory
        doc = yaml.safe_load(path.read_text())
        change(doc)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def store(self) -> StateStore:
        return StateStore.open_existing(self.inventory.parent / ".botlab")


def start_lab(tmp: Path, *, machines: int = 5, gpus: int = 2, unenlisted: int = 2,
              commissioning_s: float = 0.3, name: str = "alpha", faults: list[Any] | None = None
              ) -> VirtualLab:
    doc = specs.spec_document(None, machines=machines, gpus=gpus, unenlisted=unenlisted,
                              commissioning_s=commissioning_s, deploy_s=0.3, seed=7)
    doc["timings"]["testing_s"] = 0.1
    if faults:
        doc["faults"] = faults
    info = control.start(tmp / "lab", doc, name=name, hosts=False)  # enlist never deploys: no SSH hosts
    return VirtualLab(tmp, info)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[VirtualLab]:
    vlab = start_lab(tmp_path)
    try:
        yield vlab
    finally:
        control.stop(vlab.info.dir)


def requests_by_host(events: list[dict[str, Any]], machines: dict[str, dict[str, Any]]) -> Counter[str]:
    """Mutating MAAS calls per (hostname, op), from the request log."""
    by_id = {m["system_id"]: h for h, m in machines.items()}
    out: Counter[str] = Counter()
    for e in events:
        if e.get("kind") != "request" or not e.get("mutating"):
            continue
        path, op = str(e.get("path", "")), e.get("op") or "create"
        host = next((h for sid, h in by_id.items() if f"/{sid}/" in path), None)
        if host is None and op == "create" and path.rstrip("/").endswith("/machines"):
            host = "(new machine)"
        if host:
            out[f"{host} {op}"] += 1
    return out


def test_fresh_enlist_creates_commissions_checks_and_tags(lab: VirtualLab) -> None:
    before = lab.machines()
    assert len(before) == 3  # two of the five are powered on but unknown to MAAS
    doc = lab.json("up", "enlist")
    assert doc["_code"] == 0, doc
    after = lab.machines()
    assert len(after) == 5
    assert {m["status_name"] for m in after.values()} == {"Ready"}
    for host, m in after.items():
        assert "alpha" in m["tags"]
        assert f"alpha-pin-{host}" in m["tags"]
    gpu_hosts = {h for h, m in after.items() if "alpha-role-gpu" in m["tags"]}
    assert gpu_hosts == {"node-04", "node-05"}
    assert "alpha-role-control-plane" in after["node-01"]["tags"]
    creates = [e for e in lab.events() if e.get("kind") == "request" and e.get("mutating")
               and e.get("method") == "POST" and not e.get("op")
               and str(e.get("path", "")).rstrip("/").endswith("/machines")]
    assert len(creates) == 2
    store = lab.store()
    ids = store.identities("maas-machine")
    assert ids == {h: m["system_id"] for h, m in after.items()}
    outputs = store.stage("enlist").outputs  # type: ignore[union-attr]
    assert outputs["machines"]["node-05"]["hardware"]["gpus"] == 8
    assert outputs["machines"]["node-02"]["pin_tag"] == "alpha-pin-node-02"


def test_a_rerun_changes_nothing_in_maas(lab: VirtualLab) -> None:
    assert lab.botlab("up", "enlist") == 0
    mark = lab.last_seq()
    doc = lab.json("up", "enlist")
    assert doc["stages"][0]["action"] == "verified"
    assert lab.mutations(mark) == []
    doc = lab.json("up", "enlist", "--force")  # apply itself is idempotent too
    assert doc["stages"][0]["action"] == "ran"
    assert lab.mutations(mark) == []


def test_a_commissioning_failure_is_retried(lab: VirtualLab) -> None:
    lab.inject(kind="fail", stage="commissioning", machines=["node-05"], count=1,
               message="power on failed: BMC timeout")
    doc = lab.json("up", "enlist")
    assert doc["_code"] == 0, doc
    machines = lab.machines()
    assert machines["node-05"]["status_name"] == "Ready"
    calls = requests_by_host(lab.events(), machines)
    assert calls["node-05 commission"] == 1  # created (auto-commissioned), failed, retried once


def test_commissioning_that_keeps_failing_stops_the_stage_naming_the_machine(lab: VirtualLab) -> None:
    lab.inject(kind="fail", stage="commissioning", machines=["node-05"], count=None,
               message="cannot power on: BMC unreachable")
    doc = lab.json("up", "enlist")
    assert doc["_code"] == 1
    error = doc["stages"][0]["error"]
    assert "node-05" in error and "Failed commissioning" in error and "BMC unreachable" in error
    calls = requests_by_host(lab.events(), lab.machines())
    # Created (MAAS commissions it), then the two retries the inventory allows by default.
    assert calls["node-05 commission"] == 2
    assert lab.botlab("up", "enlist") == 1
    assert "Fix the cause, then run `botlab up` again: it resumes at 'enlist'." in lab.stdout


def test_a_machine_that_fails_testing_is_tested_again_as_maas_3_4_allows(lab: VirtualLab) -> None:
    """MAAS 3.4 commissions only New, Failed commissioning, Ready or Broken machines
    (canonical/maas 3.4.2 src/maasserver/node_action.py, Commission.actionable_statuses) and
    lets only a machine's owner mark it broken (src/maasserver/api/machines.py, mark_broken),
    so enlist retries Failed testing with `op=test` (Test.actionable_statuses includes it;
    passed tests return it to Ready: src/metadataserver/api.py, _process_testing)."""
    lab.inject(kind="fail", stage="testing", machines=["node-05"], count=1, message="memtest: 3 bad pages")
    # node-05 is unknown to MAAS: botlab creates it, MAAS commissions then tests it, the tests
    # fail once. Commissioning it again (what enlist used to do) is a 400 on MAAS and the lab.
    mark = lab.last_seq()
    doc = lab.json("up", "enlist")
    assert doc["_code"] == 0, doc
    machines = lab.machines()
    assert machines["node-05"]["status_name"] == "Ready"
    calls = requests_by_host(lab.events(mark), machines)
    assert calls["node-05 commission"] == 0 and calls["node-05 test"] == 1
    refused = [e for e in lab.events(mark) if e.get("kind") == "request" and (e.get("status") or 0) >= 400]
    assert refused == []
    transitions = [(e["old"], e["new"]) for e in lab.events(mark)
                   if e.get("kind") == "transition" and e.get("hostname") == "node-05"]
    assert ("Testing", "Failed testing") in transitions and ("Failed testing", "Testing") in transitions
    assert transitions[-1] == ("Testing", "Ready")


def test_testing_that_keeps_failing_stops_within_the_retry_bound(lab: VirtualLab) -> None:
    lab.inject(kind="fail", stage="testing", machines=["node-05"], count=None, message="memtest: 3 bad pages")
    doc = lab.json("up", "enlist")
    assert doc["_code"] == 1
    error = doc["stages"][0]["error"]
    assert "node-05" in error and "Failed testing" in error and "3 bad pages" in error
    calls = requests_by_host(lab.events(), lab.machines())
    # Created (MAAS commissions and tests it), then tested again twice: 1 + the two retries
    # maas.commission_retries allows by default, never commissioned from Failed testing.
    assert (calls["node-05 commission"], calls["node-05 test"]) == (0, 2)
    assert lab.machines()["node-05"]["status_name"] == "Failed testing"


def test_a_hardware_mismatch_names_the_host_and_both_values(lab: VirtualLab) -> None:
    def fewer_gpus(doc: dict[str, Any]) -> None:
        for m in doc["machines"]:
            if m["hostname"] == "node-04":
                m["hardware"]["gpus"] = 4

    lab.edit_inventory(fewer_gpus)
    doc = lab.json("up", "enlist")
    assert doc["_code"] == 1
    error = doc["stages"][0]["error"]
    assert "node-04: hardware mismatch: gpus: inventory says 4, MAAS commissioning found 8" in error
    assert "lab.yaml:" in error
    assert lab.json("status")["stages"][0]["status"] == "failed"
    status = lab.json("status")["stages"][0]["progress"]
    assert status["node-04"]["status"] == "hardware mismatch"
    assert status["node-05"]["status"] == "done"


def test_a_wrong_api_key_fails_naming_where_the_key_came_from(lab: VirtualLab) -> None:
    key_file = lab.info.dir / "secrets" / "maas-api-key"
    key_file.write_text("botlab:labtoken:wrongsecret\n")
    doc = lab.json("up", "enlist")
    assert doc["_code"] == 1
    # The key is first used to take the lab's lock in MAAS, before any stage starts.
    error = doc["error"][0]
    assert "401" in error and f"file {key_file}" in error
    assert "wrongsecret" not in lab.stdout


def test_503_bursts_are_retried(lab: VirtualLab) -> None:
    lab.inject(kind="unavailable", count=3, status=503)
    assert lab.botlab("up", "enlist") == 0, lab.stdout
    assert any(e.get("status") == 503 for e in lab.events())


def test_plan_before_anything_exists_and_after(lab: VirtualLab) -> None:
    mark = lab.last_seq()
    doc = lab.json("plan", "enlist")
    assert doc["_code"] == 0
    changes = {(c["action"], c["target"]) for c in doc["stages"][0]["changes"]}
    assert ("create", "machine node-05") in changes
    assert ("tag", "machine node-01") in changes
    assert ("create", "tag alpha-pin-node-01") in changes
    assert lab.mutations(mark) == []
    assert not (lab.inventory.parent / ".botlab").exists()
    assert lab.botlab("up", "enlist") == 0
    doc = lab.json("plan", "enlist")
    assert {c["action"] for c in doc["stages"][0]["changes"]} == {"ok"}
    assert doc["stages"][0]["runs"] is False


def test_kill_9_mid_commissioning_then_up_creates_and_commissions_nothing_twice(tmp_path: Path) -> None:
    vlab = start_lab(tmp_path, machines=6, gpus=1, unenlisted=3, commissioning_s=3.0)
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-m", "botlab.cli", "-i", str(vlab.inventory), "up",
                                 "enlist"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = {m["status_name"] for m in vlab.machines().values()}
            if len(vlab.machines()) == 6 and "Commissioning" in states:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("botlab never got the machines commissioning")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert vlab.botlab("up", "enlist") == 0, vlab.stdout + vlab.stderr
        machines = vlab.machines()
        assert {m["status_name"] for m in machines.values()} == {"Ready"}
        calls = requests_by_host(vlab.events(), machines)
        assert calls["(new machine) create"] == 3
        assert not any(k.endswith(" commission") for k in calls)
    finally:
        control.stop(vlab.info.dir)


def test_two_labs_on_one_maas_do_not_touch_each_others_tags(lab: VirtualLab) -> None:
    beta_dir = lab.tmp / "beta"
    beta_dir.mkdir()
    beta = beta_dir / "lab.yaml"
    doc = yaml.safe_load(lab.inventory.read_text())
    doc["lab"] = "beta"
    for section in ("maas", "ssh"):
        for key, value in list(doc[section].items()):
            if isinstance(value, dict) and "file" in value:
                value["file"] = str((lab.inventory.parent / value["file"]).resolve())
            elif key.endswith("_key"):
                doc[section][key] = str((lab.inventory.parent / value).resolve())
    doc["machines"] = [m for m in doc["machines"] if m["hostname"] in ("node-01", "node-02")]
    for m in doc["machines"]:
        m["power"]["parameters"]["power_pass"] = {
            "file": str((lab.inventory.parent / "../secrets/power-pass").resolve())}
        m["roles"] = ["control-plane", "etcd", "worker"] if m["hostname"] == "node-01" else ["worker"]
    doc.pop("nfs", None)
    beta.write_text(yaml.safe_dump(doc, sort_keys=False))

    def drop_two(d: dict[str, Any]) -> None:
        d["machines"] = [m for m in d["machines"] if m["hostname"] not in ("node-01", "node-02")]
        d["machines"][0]["roles"] = ["control-plane", "etcd", "worker", "nfs"]

    lab.edit_inventory(drop_two)
    assert lab.botlab("up", "enlist") == 0, lab.stdout + lab.stderr
    assert lab.botlab("up", "enlist", inventory=beta) == 0, lab.stdout + lab.stderr
    tags = lab.tags()
    assert "alpha-pin-node-03" in tags and "beta-pin-node-01" in tags
    machines = lab.machines()
    assert not any(t.startswith("alpha") for t in machines["node-01"]["tags"])
    assert not any(t.startswith("beta") for t in machines["node-03"]["tags"])

    assert lab.botlab("down", "--yes") == 0
    tags = lab.tags()
    assert not any(t == "alpha" or t.startswith("alpha-") for t in tags)
    assert "beta-pin-node-01" in tags and "beta" in tags
    assert len(lab.machines()) == 5  # machines stay enlisted
    assert lab.botlab("up", "enlist", inventory=beta) == 0  # beta still verifies


def test_a_timeout_names_the_machines_still_pending_with_their_maas_status(tmp_path: Path) -> None:
    vlab = start_lab(tmp_path, machines=3, gpus=0, unenlisted=1, commissioning_s=60.0)
    try:
        vlab.edit_inventory(lambda d: d["maas"].update(timeout=1))
        doc = vlab.json("up", "enlist")
        assert doc["_code"] == 1
        error = doc["stages"][0]["error"]
        assert "timed out after 1s waiting for: node-03 (Commissioning)" in error
        assert "botlab up" in error  # says how to resume
        assert "node-01" not in error.split("waiting for:")[1]
    finally:
        control.stop(vlab.info.dir)
