"""`botlab down` without a state folder, end to end on the virtual lab (no SSH hosts): the
lab's model and tags are named after the lab, so down finds them in Juju and MAAS, removes
them, says what it found, and leaves another lab's tags alone."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from botlab.drivers.maas import MaasDriver
from botlab.inventory import load_inventory
from tests.support.kubelab import KubeLab, running_lab

pytestmark = pytest.mark.lab
OTHER_LAB = ("alpha2", "alpha2-pin-node-01", "alpha2-role-worker", "alphabet")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[KubeLab]:
    with running_lab(tmp_path, hosts=False) as vlab:
        yield vlab


def maas_tags(lab: KubeLab) -> set[str]:
    return set(lab._call(lab.info.control_url + "state")["tags"])


def make_tags(lab: KubeLab, tags: dict[str, str], tag_machine: str | None = None) -> None:
    """Create tags (name -> comment) through python-libmaas, as another lab or user would."""
    inventory = load_inventory(lab.inventory)

    async def scenario() -> None:
        maas = await MaasDriver.connect(inventory, dict(os.environ))
        for name, comment in tags.items():
            await maas.create_tag(name, comment)
        if tag_machine:
            sid = lab.maas_machines()[tag_machine]["system_id"]
            for name in tags:
                await maas.update_tag(name, add=[sid])

    asyncio.run(scenario())


def test_down_without_state_finds_the_model_and_the_tags_by_name_and_removes_only_those(lab: KubeLab) -> None:
    assert lab.botlab("up", "kubernetes") == 0, lab.stdout + lab.stderr
    make_tags(lab, dict.fromkeys(OTHER_LAB, "botlab lab alpha2"), tag_machine="node-01")
    make_tags(lab, {"alpha-pin-node-09": "botlab lab alpha"})  # a host that left the inventory
    shutil.rmtree(lab.inventory.parent / ".botlab")

    doc = lab.json("down", "--yes")
    assert doc["_code"] == 0, doc
    reasons = {s["stage"]: s["reason"] for s in doc["stages"]}
    assert "found model alpha-k8s with 5 machine(s)" in reasons["kubernetes"], reasons
    assert "alpha-pin-node-05" in reasons["enlist"] and "alpha-pin-node-09" in reasons["enlist"], reasons
    assert "alpha-k8s" not in lab.juju_models()
    assert {m["status_name"] for m in lab.maas_machines().values()} == {"Ready"}
    tags = maas_tags(lab)
    assert not {t for t in tags if t == "alpha" or t.startswith(("alpha-pin-", "alpha-role-"))}, tags
    assert set(OTHER_LAB) <= tags
    assert "alpha2" in lab.maas_machines()["node-01"]["tags"]

    # Nothing left: down says so, and still touches nothing of the other lab.
    shutil.rmtree(lab.inventory.parent / ".botlab")
    maas_mark, juju_mark = lab.maas_seq(), lab.juju_seq()
    assert lab.botlab("down", "--yes") == 0, lab.stdout + lab.stderr
    assert "nothing of lab alpha found in Juju or MAAS" in lab.stderr, lab.stderr
    assert lab.maas_mutations(maas_mark) == [] and lab.juju_mutations(juju_mark) == []
    assert set(OTHER_LAB) <= maas_tags(lab)
