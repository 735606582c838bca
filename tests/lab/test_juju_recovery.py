"""botlab against what a real Juju 3.6 controller does when placement or allocation fails,
end to end on the virtual lab (no SSH hosts):

- AddUnits adds the unit before it places it, so a failed placement leaves an unassigned
  unit (juju/juju@juju-3.6.1 apiserver/facades/client/application/application.go, addUnits);
  the next `botlab up` removes it and adds the bundle's unit again: one unit per wanted unit.
- Juju's provisioner retries a failed machine start (worker/provisioner/provisioner_task.go;
  10 times, 10 s apart in Juju, fewer and faster here through the lab spec's
  `juju.provisioner_retries` / `juju.provisioner_retry_s`): botlab waits while it retries,
  and fails only once Juju gives up, naming the host, the Juju machine and MAAS's reason.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botlab.lab import control, specs
from botlab.lab.juju.maas_provider import MaasClient
from tests.support.kubelab import KubeLab

pytestmark = pytest.mark.lab


def start(tmp: Path, **juju: Any) -> KubeLab:
    """tests.support.kubelab.start_lab's lab (5 machines, node-04/05 with GPUs, node-03 the NFS
    host), never with hosts, with extra Juju settings."""
    doc = specs.spec_document(None, machines=5, gpus=2, unenlisted=0, commissioning_s=0.1, deploy_s=0.3, seed=11)
    doc["timings"].update(testing_s=0.05, release_s=0.1)
    doc["juju"] = {"destroy_s": 0.05, "charms": {}, **juju}
    lab = KubeLab(tmp, control.start(tmp / "lab", doc, name="alpha", hosts=False))
    lab.edit_inventory(timeout=60)
    return lab


@pytest.fixture
def lab_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[KubeLab] = []

    def make(**juju: Any) -> KubeLab:
        vlab = start(tmp_path, **juju)
        started.append(vlab)
        return vlab

    yield make
    for vlab in started:
        control.stop(vlab.info.dir)


def maas_client(vlab: KubeLab) -> MaasClient:
    key = (vlab.info.dir / "secrets" / "maas-api-key").read_text().strip()
    return MaasClient(vlab.info.maas_url, key)


def hold(vlab: KubeLab, hostname: str) -> str:
    """Someone else allocates `hostname` in MAAS: Juju's allocate for it gets MAAS's 409."""
    async def go() -> str:
        async with maas_client(vlab) as client:
            return str((await client.allocate([("name", hostname)]))["system_id"])
    return asyncio.run(go())


def free(vlab: KubeLab, system_id: str) -> None:
    async def go() -> None:
        async with maas_client(vlab) as client:
            await client.release(system_id, comment="no longer held")
    asyncio.run(go())


def units_by_app(vlab: KubeLab) -> dict[str, list[tuple[str, str]]]:
    async def read(model: Any) -> dict[str, list[tuple[str, str]]]:
        status = await model.get_status()
        return {name: sorted((u, str(unit.machine or "")) for u, unit in (app.units or {}).items())
                for name, app in status.applications.items() if not app.subordinate_to}
    return vlab.on_model(read)


def test_a_failed_placement_then_up_leaves_one_unit_per_wanted_unit(lab_factory: Any) -> None:
    vlab = lab_factory()
    assert vlab.botlab("up", "kubernetes") == 0, vlab.stderr
    before = units_by_app(vlab)
    worker = before["kubernetes-worker"][0]

    async def break_placement(model: Any) -> str:
        from juju.client import client as juju_client
        from juju.errors import JujuAPIError

        facade = juju_client.ApplicationFacade.from_connection(model.connection())
        # The worker's unit goes; its replacement's placement fails (machine 99 is not there):
        # Juju leaves the new unit in the model, on no machine.
        await facade.DestroyUnit(units=[{"unit-tag": "unit-" + worker[0].replace("/", "-"), "force": True,
                                         "destroy-storage": False, "dry-run": False}])
        try:
            await facade.AddUnits(application="kubernetes-worker", num_units=1,
                                  placement=[juju_client.Placement(scope="#", directive="99")], attach_storage=[])
        except JujuAPIError as exc:
            return str(exc.message)
        raise AssertionError("the placement did not fail")

    message = vlab.on_model(break_placement)
    assert message.startswith('acquiring machine to host unit "kubernetes-worker/')
    assert message.endswith("machine 99 not found")
    orphans = [u for u, m in units_by_app(vlab)["kubernetes-worker"] if not m]
    assert len(orphans) == 1

    plan = vlab.json("plan", "kubernetes")
    changes = [c for s in plan["stages"] for c in s.get("changes", [])]
    removal = [c for c in changes if c["action"] == "remove"]
    assert [c["target"] for c in removal] == [f"unit {orphans[0]}"], changes
    assert "failed placement" in removal[0]["reason"]
    assert any(c["action"] == "add" and c["target"].startswith("unit kubernetes-worker") for c in changes)

    assert vlab.botlab("up", "kubernetes") == 0, vlab.stderr
    after = units_by_app(vlab)
    assert {app: len(units) for app, units in after.items()} == {app: len(units) for app, units in before.items()}
    assert all(machine for units in after.values() for _u, machine in units), after
    assert worker[1] in {m for _u, m in after["kubernetes-worker"]}  # back on the host's machine
    assert orphans[0] not in {u for u, _m in after["kubernetes-worker"]}


def test_an_allocation_that_fails_twice_then_succeeds_converges(lab_factory: Any) -> None:
    vlab = lab_factory(provisioner_retries=10, provisioner_retry_s=0.5)
    assert vlab.botlab("up", "enlist") == 0, vlab.stderr
    held = hold(vlab, "node-03")
    retries: list[dict[str, Any]] = []
    done = threading.Event()

    def release_after_two_retries() -> None:
        while not done.wait(0.1):
            retries[:] = [e for e in vlab.juju_events() if e["kind"] == "machine-start-retry"]
            if len(retries) >= 2:
                free(vlab, held)
                return

    helper = threading.Thread(target=release_after_two_retries, daemon=True)
    helper.start()
    try:
        code = vlab.botlab("up", "kubernetes")
    finally:
        done.set()
        helper.join(10)
    assert code == 0, vlab.stderr
    assert len(retries) >= 2
    assert retries[0]["message"].startswith(f"failed to start machine {retries[0]['machine']} (failed to acquire"
                                            " node: No available machine matches constraints")
    assert "retrying in 500ms (10 more attempts)" in retries[0]["message"]
    started = {e["machine"]: e["hostname"] for e in vlab.juju_events() if e["kind"] == "machine-started"}
    assert started[retries[0]["machine"]] == "node-03"


def test_an_allocation_that_never_succeeds_fails_naming_the_machine_and_maas_reason(lab_factory: Any) -> None:
    vlab = lab_factory(provisioner_retries=2, provisioner_retry_s=0.2)
    assert vlab.botlab("up", "enlist") == 0, vlab.stderr
    held = hold(vlab, "node-03")
    try:
        doc = vlab.json("up", "kubernetes")
    finally:
        free(vlab, held)
    assert doc["_code"] == 1
    stage = vlab.stage("kubernetes", doc)
    error = str(stage.get("error") or doc)
    retries = [e for e in vlab.juju_events() if e["kind"] == "machine-start-retry"]
    assert len(retries) == 2  # Juju gave up after its retries, and only then did botlab
    machine = retries[0]["machine"]
    assert f"node-03 (Juju machine {machine}): provisioning error: failed to acquire node: No available machine" \
        " matches constraints" in error, error
