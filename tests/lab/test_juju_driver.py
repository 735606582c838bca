"""botlab's Juju driver on a virtual lab (no SSH hosts): model handles, two models open at
once with neither's events reaching the other, handles closed by destroy_model and close(),
and the reads the next stages need (host keys, machine addresses)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import yaml

from botlab.drivers import Drivers
from botlab.drivers.juju import JujuDriver, JujuModel, MachineRequest
from botlab.drivers.maas import RELEASE_PENDING, MaasStatus
from botlab.errors import StageError
from botlab.inventory import Inventory, load_inventory
from botlab.lab import control
from tests.support.kubelab import KubeLab, start_lab

pytestmark = pytest.mark.lab
CLOUD = "lab-maas"
WAIT = 10.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    """Two Ready MAAS nodes, a Juju controller with no models; no SSH hosts."""
    vlab = start_lab(tmp_path_factory.mktemp("juju-driver"), machines=2, gpus=0, hosts=False)
    try:
        yield vlab
    finally:
        control.stop(vlab.info.dir)


@pytest.fixture(scope="module")
def inventory(lab: KubeLab) -> Inventory:
    return load_inventory(lab.inventory)


def connections(lab: KubeLab) -> list[dict[str, Any]]:
    """The API connections the Juju emulator holds open."""
    return list(lab._call(lab.juju_url + "connections")["connections"])


def with_juju(inventory: Inventory, work: Callable[[Drivers, JujuDriver], Awaitable[None]]) -> None:
    async def scenario() -> None:
        async with Drivers(inventory, {}) as drivers:
            await work(drivers, await drivers.juju())

    asyncio.run(scenario())


async def quiet(model: JujuModel) -> None:
    """Let the AllWatcher deliver what it has (a new model's first deltas), then clear the event."""
    while await model.changed(0.3):
        pass


async def until(model: JujuModel, condition: Callable[[], bool], what: str) -> None:
    """Wait on `model`'s change event until `condition` holds."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {WAIT}s"
        await model.changed(0.5)


def test_two_models_open_at_once_see_only_their_own_changes(lab: KubeLab, inventory: Inventory) -> None:
    async def work(_drivers: Drivers, juju: JujuDriver) -> None:
        key = juju.client_key()
        assert key is not None
        first = await juju.create_model("alpha-first", CLOUD, key)
        second = await juju.create_model("alpha-second", CLOUD, key)
        assert await juju.open_model("alpha-first") is first
        assert await juju.open_model("alpha-second", second.uuid) is second
        uuids = await juju.model_uuids()
        assert (uuids["alpha-first"], uuids["alpha-second"]) == (first.uuid, second.uuid)
        assert first.uuid != second.uuid
        open_models = sorted(str(c["model"]) for c in connections(lab) if c["kind"] == "model")
        assert open_models == ["alpha-first", "alpha-second"]  # one connection each, both open
        await quiet(first)
        await quiet(second)

        await first.deploy("botlab-test", "botlab-test", channel=None, base=None, config={}, constraints="")
        assert await first.changed(WAIT)
        assert not await second.changed(0.5)
        assert "botlab-test" in first.live().applications and "botlab-test" in (await first.status()).applications
        assert second.live().applications == {} and (await second.status()).applications == {}

        await second.deploy("etcd", "etcd", channel="1.31/stable", base=None, config={}, constraints="")
        assert await second.changed(WAIT)
        assert not await first.changed(0.5)
        assert sorted(second.live().applications) == sorted((await second.status()).applications) == ["etcd"]
        assert sorted(first.live().applications) == sorted((await first.status()).applications) == ["botlab-test"]

        await juju.destroy_model("alpha-second", WAIT)
        assert second.closed and not first.closed
        assert "alpha-second" not in await juju.model_uuids()
        with pytest.raises(RuntimeError, match="model alpha-second is closed"):
            second.live()

        await first.close()
        assert first.closed
        again = await juju.open_model("alpha-first")  # a closed handle is not handed out again
        assert again is not first and again.uuid == first.uuid
        assert list((await again.status()).applications) == ["botlab-test"]
        await juju.destroy_model("alpha-first", WAIT)
        assert again.closed

    with_juju(inventory, work)


def test_close_closes_every_open_model_and_the_controller(lab: KubeLab, inventory: Inventory) -> None:
    handles: list[JujuModel] = []

    async def work(_drivers: Drivers, juju: JujuDriver) -> None:
        key = juju.client_key() or ""
        handles.extend([await juju.create_model("alpha-one", CLOUD, key),
                        await juju.create_model("alpha-two", CLOUD, key)])
        assert len(connections(lab)) == 3  # the controller's and one per model

    with_juju(inventory, work)  # Drivers' exit closes the Juju driver
    assert all(h.closed for h in handles)
    deadline = time.monotonic() + WAIT
    while connections(lab):  # the emulator notices a closed socket a moment later
        assert time.monotonic() < deadline, connections(lab)
        time.sleep(0.05)

    async def cleanup(_drivers: Drivers, juju: JujuDriver) -> None:
        for name in ("alpha-one", "alpha-two"):
            await juju.destroy_model(name, WAIT)

    with_juju(inventory, cleanup)


def test_a_started_machine_has_an_address_and_the_host_key_juju_reports(lab: KubeLab, inventory: Inventory) -> None:
    tag = "alpha-test-pin-node-02"

    async def work(drivers: Drivers, juju: JujuDriver) -> None:
        maas = await drivers.maas()
        node = (await maas.machines(["node-02"]))[0]
        assert node.status == MaasStatus.READY and node.status is MaasStatus.READY
        await maas.create_tag(tag, "botlab driver test")
        await maas.update_tag(tag, add=[node.system_id])
        model = await juju.create_model("alpha-machines", CLOUD, juju.client_key() or "")
        try:
            added = await model.add_machines([MachineRequest(f"tags={tag}", base="ubuntu@22.04")])
            assert added[0].error == "" and added[0].machine == "0"
            with pytest.raises(StageError, match=r"read host keys \(machine 0\): keys not found"):
                await model.host_keys(["0"])  # the agent has not reported them yet

            await until(model, lambda: model.live().machines["0"].agent_status == "started", "machine 0 started")
            deployed = (await maas.machines(["node-02"]))[0]
            assert deployed.status == MaasStatus.DEPLOYED and deployed.ip_addresses
            machine = (await model.status()).machines["0"]
            assert machine.hostname == "node-02" and machine.address == deployed.ip_addresses[0]
            assert model.live().machines["0"].address == machine.address

            keys = await model.host_keys(["0"])
            cloud_init = yaml.safe_load(lab.maas_machines()["node-02"]["user_data"])
            assert keys == {"0": [cloud_init["ssh_keys"]["ed25519_public"]]}  # what the host will present
            assert keys["0"][0].startswith("ssh-ed25519 ")
            assert await model.host_keys([]) == {}
        finally:
            await juju.destroy_model("alpha-machines", WAIT)
            await maas.delete_tag(tag)
        deadline = time.monotonic() + WAIT
        while (await maas.machines(["node-02"]))[0].status in RELEASE_PENDING:  # what `down` waits out
            assert time.monotonic() < deadline, "node-02 not released"
            await asyncio.sleep(0.05)
        assert (await maas.machines(["node-02"]))[0].status == MaasStatus.READY

    with_juju(inventory, work)

