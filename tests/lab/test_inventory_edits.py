"""Inventory edits between runs, end to end through python-libmaas and python-libjuju on the
virtual lab (no SSH hosts): removing a deployed host, renaming one, reverting either edit, and
a commissioning failure fixed between runs. What MAAS and Juju hold is read back from the
emulators' control APIs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from botlab.lab import control, specs
from tests.support.kubelab import KubeLab, running_lab

pytestmark = pytest.mark.lab
LAB_TAGS = {"alpha", "alpha-role-worker", "alpha-role-gpu", "alpha-pin-node-05"}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[KubeLab]:
    with running_lab(tmp_path, hosts=False) as vlab:
        yield vlab


def edit_machines(lab: KubeLab, change: Any) -> None:
    doc = yaml.safe_load(lab.inventory.read_text())
    change(doc["machines"])
    lab.inventory.write_text(yaml.safe_dump(doc, sort_keys=False))


def todo(lab: KubeLab, doc: dict[str, Any], stage: str) -> list[dict[str, str]]:
    return [c for c in lab.stage(stage, doc)["changes"] if c["action"] != "ok"]


def juju_machines(lab: KubeLab) -> dict[str, dict[str, Any]]:
    state = lab._call(lab.juju_url + "state")
    model = next(m for m in state["models"] if m["name"] == "alpha-k8s")
    return {str(m["id"]): m for m in model.get("machines", []) if "/" not in str(m["id"])}


def machines_added(lab: KubeLab) -> int:
    return sum(1 for e in lab.juju_events() if e["kind"] == "machine-added" and not e.get("parent"))


def test_removing_a_deployed_host_is_planned_refused_then_removed_only_when_asked_and_restoring_converges(
        lab: KubeLab) -> None:
    assert lab.botlab("up", "kubernetes") == 0, lab.stdout + lab.stderr
    original = lab.inventory.read_text()
    assert set(lab.maas_machines()["node-05"]["tags"]) >= LAB_TAGS
    edit_machines(lab, lambda ms: ms.remove(next(m for m in ms if m["hostname"] == "node-05")))

    # plan says what removing it does: its tags, its Juju machine and the units on it.
    plan = lab.json("plan")
    assert plan["_code"] == 0, plan
    enlist = todo(lab, plan, "enlist")
    assert [(c["action"], c["target"]) for c in enlist] == [("refused", "machine node-05")], enlist
    assert "alpha-pin-node-05" in enlist[0]["reason"] and "--remove node-05" in enlist[0]["reason"]
    kube = todo(lab, plan, "kubernetes")
    assert [(c["action"], c["target"]) for c in kube] == [("refused", "machine node-05")], kube
    assert "kubernetes-worker-gpu/" in kube[0]["reason"] and "Juju machine" in kube[0]["reason"]

    # up refuses (exit 2), touching nothing: the worker keeps its tags.
    maas_mark, juju_mark = lab.maas_seq(), lab.juju_seq()
    doc = lab.json("up")
    assert doc["_code"] == 2, doc
    assert "--remove node-05" in doc["refused"]
    assert lab.maas_mutations(maas_mark) == [] and lab.juju_mutations(juju_mark) == []
    assert set(lab.maas_machines()["node-05"]["tags"]) >= LAB_TAGS

    # Restoring the inventory converges at once: nothing was stripped.
    lab.inventory.write_text(original)
    doc = lab.json("up")
    assert doc["_code"] == 0, doc
    assert lab.maas_mutations(maas_mark) == [] and lab.juju_mutations(juju_mark) == []

    # With the explicit switch: the tags go, botlab forgets the host, the model keeps it.
    edit_machines(lab, lambda ms: ms.remove(next(m for m in ms if m["hostname"] == "node-05")))
    doc = lab.json("up", "--remove", "node-05")
    assert doc["_code"] == 0, doc
    assert not any(t.startswith("alpha") for t in lab.maas_machines()["node-05"]["tags"])
    assert lab.maas_machines()["node-05"]["status_name"] == "Deployed"
    store = lab.store()
    assert "node-05" not in store.identities("maas-machine")
    assert "node-05" not in store.identities("juju-machine")
    assert "node-05" not in store.stage("kubernetes").outputs["hosts"]  # type: ignore[union-attr]
    store.close()
    assert lab.json("plan")["_code"] == 0
    assert all(not todo(lab, lab.json("plan"), s) for s in ("enlist", "kubernetes"))

    # ... and putting it back makes it this lab's again: no "another lab may own it", no
    # second Juju machine.
    added = machines_added(lab)
    lab.inventory.write_text(original)
    doc = lab.json("up")
    assert doc["_code"] == 0, doc
    assert set(lab.maas_machines()["node-05"]["tags"]) >= LAB_TAGS
    assert machines_added(lab) == added
    store = lab.store()
    assert "node-05" in store.stage("kubernetes").outputs["hosts"]  # type: ignore[union-attr]
    store.close()


def test_a_removal_of_a_host_not_in_the_inventory_is_a_usage_error(lab: KubeLab) -> None:
    assert lab.botlab("up", "--remove", "node-05", "enlist") == 2
    assert "node-05 is in the inventory" in lab.stderr


def test_renaming_a_host_moves_its_tags_keeps_its_juju_machine_and_reverting_converges(lab: KubeLab) -> None:
    assert lab.botlab("up", "kubernetes") == 0, lab.stdout + lab.stderr
    original = lab.inventory.read_text()
    sid = lab.maas_machines()["node-05"]["system_id"]
    store = lab.store()
    machine = store.identities("juju-machine")["node-05"]
    store.close()
    added = machines_added(lab)

    def rename(old: str, new: str) -> None:
        def change(ms: list[dict[str, Any]]) -> None:
            next(m for m in ms if m["hostname"] == old)["hostname"] = new
        edit_machines(lab, change)

    rename("node-05", "gpu-05")
    plan = lab.json("plan")
    assert plan["_code"] == 0, plan
    enlist = todo(lab, plan, "enlist")
    assert [(c["action"], c["target"]) for c in enlist][-1] == ("rename", "machine gpu-05"), enlist
    assert "was node-05" in enlist[-1]["reason"] and sid in enlist[-1]["reason"]
    kube = todo(lab, plan, "kubernetes")
    assert [(c["action"], c["target"]) for c in kube] == [("rename", "machine gpu-05")], kube
    assert f"Juju machine {machine}" in kube[0]["reason"]

    doc = lab.json("up")
    assert doc["_code"] == 0, doc
    tags = set(lab.maas_machines()["node-05"]["tags"])  # MAAS still calls it node-05
    assert {"alpha", "alpha-role-worker", "alpha-role-gpu", "alpha-pin-gpu-05"} <= tags
    assert "alpha-pin-node-05" not in tags
    assert machines_added(lab) == added
    store = lab.store()
    assert store.identities("maas-machine").get("gpu-05") == sid and "node-05" not in store.identities("maas-machine")
    assert store.identities("juju-machine").get("gpu-05") == machine
    assert "node-05" not in store.identities("juju-machine")
    hosts = store.stage("kubernetes").outputs["hosts"]  # type: ignore[union-attr]
    assert hosts["gpu-05"]["machine"] == machine and hosts["gpu-05"]["units"]
    store.close()
    plan = lab.json("plan")
    assert not todo(lab, plan, "enlist") and not todo(lab, plan, "kubernetes"), plan

    # Reverting converges the same way.
    lab.inventory.write_text(original)
    doc = lab.json("up")
    assert doc["_code"] == 0, doc
    tags = set(lab.maas_machines()["node-05"]["tags"])
    assert tags >= LAB_TAGS and "alpha-pin-gpu-05" not in tags
    assert machines_added(lab) == added
    store = lab.store()
    assert store.identities("juju-machine").get("node-05") == machine
    store.close()
    plan = lab.json("plan")
    assert not todo(lab, plan, "enlist") and not todo(lab, plan, "kubernetes"), plan


def test_commissioning_that_failed_past_its_budget_is_retried_by_the_next_up(tmp_path: Path) -> None:
    doc = specs.spec_document(None, machines=5, gpus=2, unenlisted=1, commissioning_s=0.1, deploy_s=0.3, seed=7)
    doc["timings"]["testing_s"] = 0.05
    lab = KubeLab(tmp_path, control.start(tmp_path / "lab", doc, name="alpha", hosts=False))
    try:
        faults = lab.info.control_url + "faults"
        lab._call(faults, "POST", {"kind": "fail", "stage": "commissioning", "machines": ["node-05"],
                                    "count": None, "message": "cannot power on: BMC unreachable"})
        doc = lab.json("up", "enlist")
        assert doc["_code"] == 1, doc
        error = lab.stage("enlist", doc)["error"]
        assert "node-05" in error and "BMC unreachable" in error
        assert "run `botlab up` again" in error and "maas.commission_retries" in error
        assert lab.maas_machines()["node-05"]["status_name"] == "Failed commissioning"

        # A new run is a new attempt episode: up --force (and up) contact MAAS again.
        mark = lab.maas_seq()
        assert lab.json("up", "enlist", "--force")["_code"] == 1
        assert Counter(e.get("op") for e in lab.maas_mutations(mark))["commission"] == 3

        # The cause is fixed: plan says it retries, and up really does.
        lab._call(faults, "DELETE")
        plan = lab.json("plan", "enlist")
        assert ("commission", "machine node-05") in {(c["action"], c["target"]) for c in todo(lab, plan, "enlist")}
        mark = lab.maas_seq()
        doc = lab.json("up", "enlist")
        assert doc["_code"] == 0, doc
        assert Counter(e.get("op") for e in lab.maas_mutations(mark))["commission"] == 1
        assert lab.maas_machines()["node-05"]["status_name"] == "Ready"
    finally:
        control.stop(lab.info.dir)
