"""Saved plans end to end: `botlab plan --out` on an empty virtual lab, reviewed, then `botlab
up --plan` builds exactly that (enlist through python-libmaas, kubernetes through
python-libjuju); a machine released in MAAS behind botlab's back makes the next saved plan be
refused, naming the machine, before anything is touched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from botlab.inventory import load_inventory
from tests.support.kubelab import KubeLab, running_lab

pytestmark = pytest.mark.lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[KubeLab]:
    with running_lab(tmp_path, hosts=False) as vlab:
        yield vlab


def release_in_maas(lab: KubeLab, hostname: str) -> None:
    """What someone at the MAAS UI does: release a deployed machine."""
    from maas.client import connect

    inv = load_inventory(lab.inventory)
    key = inv.secret("maas.api_key").reveal()

    async def release() -> None:
        client = await connect(inv.maas.url, apikey=key)
        machine = next(m for m in await client.machines.list() if m.hostname == hostname)
        await machine.release()

    asyncio.run(release())


def test_a_reviewed_plan_builds_the_lab_and_a_world_changed_since_is_refused(lab: KubeLab) -> None:
    shown = lab.json("plan", "--out", "reviewed.json")
    assert shown["_code"] == 0, shown
    saved = json.loads((lab.tmp / "reviewed.json").read_text())
    assert [s["stage"] for s in saved["stages"]] == ["enlist", "kubernetes"]
    assert saved["stages"][1]["observed"] == {"model": None}  # what was read: no model yet

    done = lab.json("up", "--plan", "reviewed.json")
    assert done["_code"] == 0, done
    assert [s["action"] for s in done["stages"]] == ["ran", "ran"]
    for ran, planned in zip(done["stages"], shown["stages"], strict=True):
        assert ran["changes"] == planned["changes"]  # exactly the reviewed changes
    assert {m["status_name"] for m in lab.maas_machines().values()} == {"Deployed"}

    # A converged lab's plan only verifies; then a machine is released behind botlab's back.
    assert lab.botlab("plan", "--out", "converged.json") == 0
    juju_mark, maas_mark = lab.juju_seq(), lab.maas_seq()
    release_in_maas(lab, "node-02")
    released = lab.maas_seq()
    assert lab.botlab("up", "--plan", "converged.json") == 2
    assert "enlist: the world changed: machines.node-02.status was \"Deployed\", now" in lab.stderr
    assert "botlab plan --out" in lab.stderr
    # Refused before anything was touched: no change asked of MAAS or Juju since the release.
    assert lab.maas_mutations(released) == []
    assert [m for m in lab.juju_mutations(juju_mark)] == []
    assert lab.maas_mutations(maas_mark)  # (the release itself was seen by MAAS)
