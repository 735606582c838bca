"""The MAAS emulator and whatever plays its machines' OS (a HostBackend): a deploy is
Deployed only once the host has booted, a host that cannot boot fails the deployment with
its reason, a release powers the host off, and an answer for a boot that was overtaken by a
release is ignored. Driven through python-libmaas; the backend is an in-memory fake of
botlab's own interface, so this needs no root (the real hosts: test_lab_hosts.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from maas.client import connect

from botlab.lab.maas import MaasEmulator
from botlab.lab.maas.hostbackend import BootRequest
from botlab.lab.spec import LabSpec, generate_spec
from tests.lab.conftest import ED25519, FAST, eventually, run, wait_for_status

pytestmark = pytest.mark.lab


class FakeHosts:
    """Records boots and shutdowns; a test answers each boot when it wants to."""

    def __init__(self) -> None:
        self.boots: list[tuple[BootRequest, Callable[[str | None], None]]] = []
        self.shutdowns: list[str] = []
        self.lock = threading.Lock()

    def boot(self, request: BootRequest, done: Callable[[str | None], None]) -> None:
        with self.lock:
            self.boots.append((request, done))

    def shutdown(self, system_id: str) -> None:
        with self.lock:
            self.shutdowns.append(system_id)

    def describe(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{"hostname": r.hostname, "address": r.address} for r, _ in self.boots]


@pytest.fixture
def hosted() -> Iterator[tuple[MaasEmulator, FakeHosts]]:
    spec: LabSpec = generate_spec(2, 1, unenlisted=0, timings=FAST)
    fake = FakeHosts()
    with MaasEmulator(spec, hosts=fake) as maas:
        yield maas, fake


async def deployed_machine(maas: MaasEmulator, hostname: str) -> Any:
    client = await connect(maas.url, apikey=maas.api_key)
    await client.ssh_keys.create(ED25519)
    machine = (await client.machines.list(hostnames=[hostname]))[0]
    await machine.deploy(user_data=b"#cloud-config\nssh_authorized_keys: [k]\n", wait=False)
    return machine


def test_deployed_only_once_the_host_has_booted_with_the_deploys_keys_and_address(
        hosted: tuple[MaasEmulator, FakeHosts]) -> None:
    maas, fake = hosted

    async def scenario() -> None:
        machine = await deployed_machine(maas, "node-02")
        await eventually(lambda: fake.boots, what="a boot request")
        request, done = fake.boots[0]
        await machine.refresh()
        assert machine.status_name == "Deploying"  # installed, but the OS has not answered yet
        assert (request.hostname, request.address) == ("node-02", machine.ip_addresses[0])
        assert request.user_data == b"#cloud-config\nssh_authorized_keys: [k]\n"
        assert request.ssh_keys == (ED25519,)
        assert request.hardware is not None and request.hardware.gpus.count == 8
        done(None)
        await wait_for_status(machine, "Deployed")
        assert maas.state()["hosts"] == [{"hostname": "node-02", "address": machine.ip_addresses[0]}]
        await machine.release(wait=False)
        await wait_for_status(machine, "Ready")
        assert fake.shutdowns == [machine.system_id]

    run(scenario)


def test_a_host_that_cannot_boot_fails_the_deployment_with_its_reason(hosted: tuple[MaasEmulator, FakeHosts]) -> None:
    maas, fake = hosted

    async def scenario() -> None:
        machine = await deployed_machine(maas, "node-01")
        await eventually(lambda: fake.boots, what="a boot request")
        fake.boots[0][1]("sshd exited with code 255 before listening")
        await wait_for_status(machine, "Failed deployment")
        assert machine.status_message == "Failed to boot the deployed OS: sshd exited with code 255 before listening"

    run(scenario)


def test_a_boot_answer_after_a_release_is_ignored(hosted: tuple[MaasEmulator, FakeHosts]) -> None:
    maas, fake = hosted

    async def scenario() -> None:
        machine = await deployed_machine(maas, "node-01")
        await eventually(lambda: fake.boots, what="a boot request")
        await machine.release(wait=False)
        await wait_for_status(machine, "Ready")
        assert fake.shutdowns == [machine.system_id]
        fake.boots[0][1](None)  # the boot finishes late
        await machine.refresh()
        assert machine.status_name == "Ready"
        events = [e for e in maas.events() if e.get("system_id") == machine.system_id and e["kind"] == "transition"]
        assert "Deployed" not in [e["new"] for e in events]

    run(scenario)
