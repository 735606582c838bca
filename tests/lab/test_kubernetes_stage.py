"""The kubernetes stage end to end: botlab (through unmodified python-libjuju and
python-libmaas) against a virtual lab started with `botlab lab start`'s machinery, as a
separate process: the Juju controller emulator deploys every machine through the MAAS
emulator. What Juju and MAAS saw is read back from the emulators' control APIs (event logs)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from botlab.lab import control
from tests.support.kubelab import KubeLab, start_lab

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("node-01", "node-02", "node-03", "node-04", "node-05")
RELATIONS = 14  # in the rendered bundle of the lab's five machines


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[KubeLab]:
    vlab = start_lab(tmp_path)
    try:
        yield vlab
    finally:
        control.stop(vlab.info.dir)


def machines_added(events: list[dict[str, Any]]) -> dict[str, str]:
    """Juju machine id -> the pin tag it was added with, from the controller's event log."""
    out = {}
    for e in events:
        if e["kind"] == "machine-added" and not e.get("parent"):
            out[str(e["machine"])] = ",".join(e["constraints"].get("tags") or [])
    return out


def test_first_deploy_pins_each_host_then_reruns_and_option_changes_touch_nothing_else(lab: KubeLab) -> None:
    doc = lab.json("up", "kubernetes")
    assert doc["_code"] == 0, doc
    events = lab.juju_events()
    added = machines_added(events)
    # One Juju machine per inventory host, each constrained by that host's pin tag ...
    assert sorted(added.values()) == [f"alpha-pin-{h}" for h in HOSTS]
    # ... and Juju's MAAS provider deployed exactly that host for it.
    allocated = {str(e["machine"]): e["hostname"] for e in events if e["kind"] == "machine-allocated"}
    assert {m: f"alpha-pin-{allocated[m]}" for m in added} == added
    machines = lab.maas_machines()
    assert {h: m["status_name"] for h, m in machines.items()} == dict.fromkeys(HOSTS, "Deployed")
    deployed = Counter(e["hostname"] for e in lab.maas_events() if e.get("kind") == "transition"
                       and e.get("new") == "Deployed")
    assert deployed == Counter(HOSTS)
    # The operator's key was authorized before any machine was added.
    rpcs = [(e["seq"], e["method"]) for e in events if e["kind"] == "rpc" and e.get("mutating")]
    first = {method: seq for seq, method in reversed(rpcs)}
    assert first["AddKeys"] < first["AddMachines"]
    assert [m for _, m in rpcs].count("AddMachines") == 1

    store = lab.store()
    ids = store.identities("juju-machine")
    assert {h: f"alpha-pin-{h}" for h in ids} == {h: added[ids[h]] for h in ids}
    outputs = store.stage("kubernetes").outputs  # type: ignore[union-attr]
    hosts = outputs["hosts"]
    assert {h: x["machine"] for h, x in hosts.items()} == ids and outputs["model"] == "alpha-k8s"
    assert hosts["node-04"]["units"] in (["kubernetes-worker-gpu/0"], ["kubernetes-worker-gpu/1"])
    assert hosts["node-03"]["units"] == []  # the NFS host: its OS only
    # What the gpu and storage stages connect to: each host's address and Juju's host key for it.
    for host, machine in lab.maas_machines().items():
        assert hosts[host]["address"] in machine["ip_addresses"], (host, hosts[host], machine)
        assert hosts[host]["host_keys"] and all(k.startswith("ssh-") for k in hosts[host]["host_keys"])
    kubeconfig = Path(outputs["kubeconfig"])
    assert kubeconfig == lab.inventory.parent / ".botlab" / "kubeconfig"
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"].startswith("https://")
    store.close()

    # Nothing changed: verified only, and neither Juju nor MAAS was asked to change anything.
    juju_mark, maas_mark = lab.juju_seq(), lab.maas_seq()
    doc = lab.json("up", "kubernetes")
    assert [s["action"] for s in doc["stages"]] == ["verified", "verified"], doc
    doc = lab.json("up", "kubernetes", "--force")  # apply itself finds nothing to do
    assert lab.stage("kubernetes", doc)["action"] == "ran", doc
    assert lab.juju_mutations(juju_mark) == []
    assert lab.maas_mutations(maas_mark) == []

    # An option change is applied as config, and nothing else.
    lab.edit_inventory(gpu_method="ssh")  # containerd-gpu's gpu_driver: nvidia -> none
    plan = lab.json("plan", "kubernetes")
    todo = [c for c in lab.stage("kubernetes", plan)["changes"] if c["action"] != "ok"]
    assert todo == [{"action": "config", "target": "application containerd-gpu", "reason": "set gpu_driver=none"}]
    doc = lab.json("up", "kubernetes")
    assert doc["_code"] == 0, doc
    assert lab.juju_mutations(juju_mark) == ["Application.SetConfigs"]
    assert lab.maas_mutations(maas_mark) == []
    sets = [e for e in lab.juju_events(juju_mark) if e["kind"] == "application-config-set"]
    assert [e.get("application") or e.get("name") for e in sets] == ["containerd-gpu"]

    # down: the model goes, and its machines go back to Ready in MAAS.
    assert lab.botlab("down", "--yes") == 0, lab.stdout + lab.stderr
    assert "alpha-k8s" not in lab.juju_models()
    assert {m["status_name"] for m in lab.maas_machines().values()} == {"Ready"}
    assert not kubeconfig.exists()
    store = lab.store()
    assert store.identities("juju-machine") == {}
    store.close()


def test_a_unit_error_names_the_unit_and_its_message_and_resumes_once_cleared(tmp_path: Path) -> None:
    # Juju's own automatic hook retry is slowed down, so the resumed run is what retries.
    vlab = start_lab(tmp_path, charms={"retry_s": 120})
    try:
        vlab.unit_faults({"kind": "error", "hook": "install", "application": "kubernetes-worker",
                          "count": "always"})
        doc = vlab.json("up", "kubernetes")
        assert doc["_code"] == 1
        error = vlab.stage("kubernetes", doc)["error"]
        assert 'kubernetes-worker/0 on machine' in error and '(node-02): hook failed: "install"' in error
        assert "botlab up" in error and "juju debug-log" in error

        mark = vlab.juju_seq()
        vlab.unit_faults(None)
        assert vlab.botlab("up", "kubernetes") == 0, vlab.stdout + vlab.stderr
        events = vlab.juju_events(mark)
        assert [e["unit"] for e in events if e["kind"] == "unit-resolved"] == ["kubernetes-worker/0"]
        assert "AddMachines" not in [e["method"] for e in events if e["kind"] == "rpc"]
        assert "Deploy" not in {e["method"] for e in events if e["kind"] == "rpc"}
    finally:
        control.stop(vlab.info.dir)


def test_kill_9_while_waiting_then_up_adds_no_machine_twice(tmp_path: Path) -> None:
    vlab = start_lab(tmp_path, deploy_s=1.5, charms={"install_s": 2.0})
    try:
        assert vlab.botlab("up", "enlist") == 0
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-m", "botlab.cli", "-i", str(vlab.inventory), "up",
                                 "kubernetes"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # every relation added: botlab is waiting for units
                kinds = Counter(e["kind"] for e in vlab.juju_events())
                if kinds["relation-created"] >= RELATIONS:
                    break
                assert proc.poll() is None, "botlab ended before it was killed"
                time.sleep(0.05)
            else:
                raise AssertionError("botlab never got to the wait")
            assert "action-enqueued" not in kinds  # still waiting: no kubeconfig asked for yet
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert vlab.json("status")["stages"][1]["status"] == "running"
        doc = vlab.json("up", "kubernetes")
        assert doc["_code"] == 0, doc
        assert "interrupted" in vlab.stage("kubernetes", doc)["reason"]
        events = vlab.juju_events()
        assert sorted(machines_added(events).values()) == [f"alpha-pin-{h}" for h in HOSTS]
        rpcs = Counter(e["method"] for e in events if e["kind"] == "rpc" and e.get("mutating"))
        assert rpcs["AddMachines"] == 1 and rpcs["CreateModel"] == 1
        allocations = [e for e in vlab.maas_events() if e.get("op") == "allocate" and e.get("mutating")]
        assert len(allocations) == len(HOSTS)
    finally:
        control.stop(vlab.info.dir)


def test_plan_before_the_model_exists_and_on_a_half_deployed_model(lab: KubeLab) -> None:
    assert lab.botlab("up", "enlist") == 0
    mark = lab.juju_seq()
    doc = lab.json("plan", "kubernetes")
    assert doc["_code"] == 0, doc
    changes = {(c["action"], c["target"]) for c in lab.stage("kubernetes", doc)["changes"]}
    assert ("create", "model alpha-k8s") in changes
    assert {("add", f"machine {h}") for h in HOSTS} <= changes
    assert ("deploy", "application kubernetes-worker-gpu") in changes
    assert ("add", "unit easyrsa in a new lxd container on node-01") in changes
    assert ("relate", "relation etcd:certificates easyrsa:client") in changes
    assert lab.juju_mutations(mark) == []
    assert "alpha-k8s" not in lab.juju_models()

    # Half deployed: every relation is refused, so machines, applications and units are there.
    lab.juju_faults({"kind": "error", "facade": "Application", "method": "AddRelation", "count": "always",
                     "message": "relations are switched off"})
    doc = lab.json("up", "kubernetes")
    assert doc["_code"] == 1
    assert "relations are switched off" in lab.stage("kubernetes", doc)["error"]
    doc = lab.json("plan", "kubernetes")
    changes = lab.stage("kubernetes", doc)["changes"]
    todo = {(c["action"], c["target"]) for c in changes if c["action"] != "ok"}
    assert todo == {("relate", f"relation {c['target'].removeprefix('relation ')}") for c in changes
                    if c["action"] == "relate"}
    assert len(todo) == RELATIONS
    in_place = {c["target"] for c in changes if c["action"] == "ok"}
    assert {f"machine {h}" for h in HOSTS} | {"application etcd", "ssh key"} <= in_place

    lab.juju_faults(None)
    assert lab.botlab("up", "kubernetes") == 0, lab.stdout + lab.stderr
    # The live display: one row per unit with its status, application, machine, host, message.
    assert "kubernetes-worker/0: active/idle (kubernetes-worker on machine " in lab.stderr
    assert "(node-02): Ready) [" in lab.stderr
    rpcs = Counter(e["method"] for e in lab.juju_events() if e["kind"] == "rpc" and e.get("mutating"))
    assert rpcs["AddMachines"] == 1 and rpcs["AddUnits"] == 5  # one request per placed application
    plan = lab.json("plan", "kubernetes")
    assert {c["action"] for c in lab.stage("kubernetes", plan)["changes"]} == {"ok"}


def test_a_controller_password_from_the_inventory_is_used_and_a_wrong_one_is_named(lab: KubeLab) -> None:
    accounts = yaml.safe_load((lab.info.dir / "juju" / "accounts.yaml").read_text())
    secret = lab.info.dir / "secrets" / "juju-password"
    secret.write_text(accounts["controllers"]["botlab-lab"]["password"] + "\n")
    secret.chmod(0o600)
    doc = yaml.safe_load(lab.inventory.read_text())
    doc["juju"]["password"] = {"file": "../secrets/juju-password"}
    lab.inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    doc = lab.json("plan", "kubernetes")
    assert doc["_code"] == 0, doc
    secret.write_text("not-the-password\n")
    assert lab.botlab("plan", "kubernetes") == 1
    assert "the controller refused the login" in lab.stdout + lab.stderr
    assert "not-the-password" not in lab.stdout + lab.stderr
