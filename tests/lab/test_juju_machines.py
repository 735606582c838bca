"""Juju's MAAS provider in the emulated controller: unmodified python-libjuju adds, watches,
inspects and removes machines, and the MAAS emulator (driven over HTTP with OAuth, as Juju's
provider drives a real MAAS) allocates, deploys and releases the nodes behind them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from juju.client import client as juju_client
from juju.controller import Controller
from juju.errors import JujuError
from juju.model import Model
from maas.client import connect as maas_connect

from botlab.lab.juju import JujuEmulator, machines
from botlab.lab.juju.errors import JujuApiError
from botlab.lab.juju.facades import CallContext
from botlab.lab.juju.maas_provider import MaasClient, MaasError, oauth_header
from botlab.lab.maas import MaasEmulator, run_maas
from botlab.lab.spec import LabSpec, Timings, generate_spec
from tests.lab.conftest import eventually, run, wait_until_ready
from tests.support.libjuju import fresh_model

pytestmark = pytest.mark.lab

TIMINGS = Timings(commissioning_s=0.1, testing_s=0.1, deploy_s=0.3, release_s=0.1, jitter=0.0, seed=3)
WAIT = 10.0  # deadline for any condition below; the steps themselves take tenths of a second


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[LabSpec, MaasEmulator]]:
    """Five Ready nodes: node-01..03 with 32 cores / 128 GiB, node-04/05 with 64 cores / 512 GiB
    and 8 GPUs."""
    # provisioner_retries 0: a failed start is final at once (Juju's retries: test_fidelity_juju.py)
    spec = dataclasses.replace(generate_spec(5, 2, unenlisted=0, timings=TIMINGS),
                               extra={"juju": {"destroy_s": 0.05, "provisioner_retries": 0}})
    with run_maas(spec) as maas:
        yield spec, maas


@pytest.fixture
def maas(lab: tuple[LabSpec, MaasEmulator]) -> MaasEmulator:
    return lab[1]


@pytest.fixture(autouse=True)
def clean_lab(juju: JujuEmulator, maas: MaasEmulator, juju_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with every MAAS node Ready (the previous test's model released them)."""
    monkeypatch.setenv("JUJU_DATA", str(juju_data_dir))
    juju.clear_faults()
    maas.clear_faults()
    wait_until_ready(maas, WAIT)


def node(maas: MaasEmulator, hostname: str) -> dict[str, Any]:
    return next(m for m in maas.state()["machines"] if m["hostname"] == hostname)


async def until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll `condition` until it is true; fail naming `what` once `timeout` passes."""
    return await eventually(condition, timeout, what)


def lab_model(name: str) -> AbstractAsyncContextManager[tuple[Controller, Model]]:
    """A fresh model, destroyed (its machines released in MAAS) afterwards."""
    return fresh_model(name, WAIT)


async def tag_node(maas: MaasEmulator, hostname: str, tag_name: str) -> None:
    """Tag a MAAS node through the MAAS API (python-libmaas), as an operator would."""
    client = await maas_connect(maas.url, apikey=maas.api_key)
    names = [t.name for t in await client.tags.list()]
    tag = await client.tags.get(tag_name) if tag_name in names else await client.tags.create(tag_name)
    found = (await client.machines.list(hostnames=[hostname]))[0]
    await found.tags.add(tag)


async def started(model: Model, machine: Any) -> None:
    await model.block_until(lambda: machine.agent_status == "started", timeout=WAIT, wait_period=0.02)


async def in_error(model: Model, machine: Any) -> None:
    await model.block_until(lambda: machine.status == "provisioning error", timeout=WAIT, wait_period=0.02)


def juju_events(juju: JujuEmulator, kind: str, model: str, since: int = 0) -> list[dict[str, Any]]:
    return [e for e in juju.events(since) if e["kind"] == kind and e.get("model") == model]


# --- provisioning ----------------------------------------------------------------------------


def test_a_tag_constraint_deploys_exactly_the_tagged_node_with_the_models_keys(
    juju: JujuEmulator, maas: MaasEmulator, juju_data_dir: Path
) -> None:
    client_key = (juju_data_dir / "ssh/juju_id_rsa.pub").read_text().strip()

    async def scenario() -> None:
        await tag_node(maas, "node-02", "x-pin-node-02")
        maas.inject({"kind": "unavailable", "count": 1, "op": "allocate"})  # Juju retries a 503
        async with lab_model("tagged") as (controller, model):
            machine = await model.add_machine(constraints={"tags": ["x-pin-node-02"]})
            assert machine.id == "0" and machine.agent_status == "pending"
            await started(model, machine)
            maas_node = node(maas, "node-02")
            assert maas_node["status_name"] == "Deployed" and maas_node["distro_series"] == "noble"
            assert maas_node["owner_data"]["juju-model-uuid"] == model.info.uuid
            assert maas_node["owner_data"]["juju-controller-uuid"] == juju.controller_uuid
            assert maas_node["user_data"].startswith("#cloud-config")
            assert client_key in maas_node["user_data"]  # the model's authorized keys
            assert machine.status == "running" and machine.status_message == "Deployed"
            assert machine.safe_data["instance-id"] == maas_node["system_id"]
            assert machine.dns_name == maas_node["ip_addresses"][0] and machine.hostname == "node-02"
            # Juju 3.x machine deltas carry `base`, no `series` (python-libjuju#958)
            assert "series" not in machine.safe_data and machine.safe_data["base"] == "ubuntu@24.04"
            assert machine.safe_data["hardware-characteristics"] == {
                "arch": "amd64", "mem": 131072, "cpu-cores": 32, "tags": ["x-pin-node-02"],
                "availability-zone": "default",
            }
            assert str(machine.agent_version) == "3.6.1"
            assert [m["status_name"] for m in maas.state()["machines"]].count("Deployed") == 1
            info = await controller.get_model_info(model_uuid=model.info.uuid)
            assert info.machines[0].hardware.cores == 32  # ModelInfo names cpu-cores "cores"

            async def converge() -> None:  # add a machine on the tagged node only if none is there
                if not any("x-pin-node-02" in (m.safe_data.get("hardware-characteristics") or {}).get("tags", [])
                           for m in model.machines.values()):
                    await model.add_machine(constraints={"tags": ["x-pin-node-02"]})

            before = juju.last_seq
            await converge()
            assert juju_events(juju, "machine-added", "tagged", before) == []
            assert [e for e in juju.events(before) if e["kind"] == "rpc" and e["mutating"]] == []

            await machine.destroy()  # libjuju waits for the machine's removal
            assert "0" not in model.machines
            await until(lambda: node(maas, "node-02")["status_name"] == "Ready", "node-02 is Ready again")
            assert node(maas, "node-02")["owner_data"] == {} and node(maas, "node-02")["user_data"] is None

    run(scenario)
    kinds = [e["kind"] for e in juju.events() if e.get("model") == "tagged" and e["kind"].startswith("machine-")]
    assert kinds == ["machine-added", "machine-allocated", "machine-deploying", "machine-started",
                     "machine-dying", "machine-released", "machine-removed"]
    allocations = [e for e in maas.events() if e["kind"] == "request" and e["op"] == "allocate"]
    assert [e["status"] for e in allocations[-2:]] == [503, 200]


def test_placement_by_maas_hostname_and_cores_mem_constraints(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("placed") as (controller, model):
            # `juju add-machine node-03` on MAAS: the directive scoped to the model (by UUID or name).
            by_name = await model.add_machine(f"{model.info.uuid}:node-03")
            big = await model.add_machine(constraints={"cores": 48, "mem": 256 * 1024})
            also = await model.add_machine("placed:node-01")
            # A bare hostname is not a placement Juju understands (libjuju sends it as the scope).
            with pytest.raises(ValueError, match='invalid model name "node-02"'):
                await model.add_machine("node-02")
            with pytest.raises(ValueError, match="unknown placement directive: rack=7"):
                await model.add_machine(f"{model.info.uuid}:rack=7")
            for machine in (by_name, big, also):
                await started(model, machine)
            assert (by_name.hostname, big.hostname, also.hostname) == ("node-03", "node-04", "node-01")
            assert big.safe_data["hardware-characteristics"]["cpu-cores"] == 64
            assert [m.id for m in (by_name, big, also)] == ["0", "1", "2"]  # failed adds took no id
            assert node(maas, "node-04")["status_name"] == "Deployed"

            status = await model.get_status()  # FullStatus decodes into libjuju's types
            st = status.machines["1"]
            assert (st.id_, st.instance_id, st.display_name, st.hostname) == (
                "1", node(maas, "node-04")["system_id"], "node-04", "node-04")
            assert st.agent_status.status == "started" and st.instance_status.status == "running"
            assert st.dns_name == big.dns_name and st.ip_addresses == [big.dns_name]
            assert st.constraints == "cores=48 mem=262144M"
            assert st.hardware == "arch=amd64 cores=64 mem=524288M availability-zone=default"
            assert (st.base.name, st.base.channel) == ("ubuntu", "24.04/stable")
            assert st.jobs == ["JobHostUnits"] and st.containers == {}
            assert next(iter(st.network_interfaces.values())).ip_addresses == [big.dns_name]

            info = await controller.get_model_info(model_uuid=model.info.uuid)  # ModelInfo's machines
            assert [(m.id_, m.instance_id, m.status) for m in info.machines] == [
                ("0", by_name.safe_data["instance-id"], "started"), ("1", st.instance_id, "started"),
                ("2", also.safe_data["instance-id"], "started"),
            ]
            assert info.machines[1].hardware.arch == "amd64" and info.machines[1].hardware.mem == 524288

    run(scenario)


def test_no_matching_node_is_a_provisioning_error_and_retry_provisioning_recovers(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("nomatch") as (_controller, model):
            before = maas.state()["machines"]
            huge = await model.add_machine(constraints={"cores": 1000})
            await in_error(model, huge)
            assert huge.status_message.startswith("failed to acquire node: No available machine matches constraints")
            assert "cpu_count=1000" in huge.status_message
            assert huge.agent_status == "pending" and huge.safe_data["instance-id"] == ""
            assert maas.state()["machines"] == before  # nothing was allocated

            later = await model.add_machine(constraints={"tags": ["x-later"]})
            await in_error(model, later)
            assert huge.status_message != later.status_message
            assert "No such tag(s): 'x-later'" in later.status_message

            status = await model.get_status()
            assert status.machines["0"].instance_status.status == "provisioning error"
            assert status.machines["0"].instance_id == "pending"

            await tag_node(maas, "node-05", "x-later")  # the operator fixes MAAS, then retries
            facade = juju_client.MachineManagerFacade.from_connection(model.connection())
            with pytest.raises(JujuError) as unknown:  # libjuju raises for any error in results
                await facade.RetryProvisioning(all_=False, machines=["machine-1", "machine-9"])
            assert unknown.value.errors == ["machine 9 not found"]
            await started(model, later)
            assert later.hostname == "node-05" and later.status == "running"

            await huge.destroy()  # never got a node: nothing to release
            assert set(model.machines) == {"1"}

    run(scenario)


def test_a_maas_deployment_fault_surfaces_as_a_provisioning_error_with_maass_message(
    juju: JujuEmulator, maas: MaasEmulator
) -> None:
    async def scenario() -> None:
        maas.inject({"kind": "fail", "stage": "deployment", "machines": ["node-01"], "message": "curtin: disk sda"})
        async with lab_model("faulty") as (_controller, model):
            machine = await model.add_machine(f"{model.info.uuid}:node-01")
            await in_error(model, machine)
            assert machine.status_message == "Failed deployment: curtin: disk sda"
            assert machine.agent_status == "pending"
            assert machine.safe_data["instance-id"] == node(maas, "node-01")["system_id"]
            assert node(maas, "node-01")["status_name"] == "Failed deployment"
            await machine.destroy()
            await until(lambda: node(maas, "node-01")["status_name"] == "Ready", "node-01 is released")

    run(scenario)
    errors = juju_events(juju, "machine-provisioning-error", "faulty")
    assert errors[0]["message"] == "Failed deployment: curtin: disk sda"


def test_destroying_the_model_releases_every_machine_in_maas(juju: JujuEmulator, maas: MaasEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("doomed") as (_controller, model):
            first = await model.add_machine()
            second = await model.add_machine(constraints={"cores": 64})
            await started(model, first)
            await started(model, second)
            assert sum(m["status_name"] == "Deployed" for m in maas.state()["machines"]) == 2
        # lab_model destroyed it: Juju released both nodes, MAAS takes them back to Ready.
        await until(lambda: all(m["status_name"] == "Ready" for m in maas.state()["machines"]), "all nodes Ready")

    run(scenario)
    released = juju_events(juju, "machine-released", "doomed")
    assert sorted(e["machine"] for e in released) == ["0", "1"]
    kinds = [e["kind"] for e in juju.events() if e.get("model") == "doomed"]
    assert kinds.index("model-dying") < kinds.index("machine-released") < kinds.index("model-removed")


# --- containers --------------------------------------------------------------------------------


def test_an_lxd_container_starts_after_its_host_and_goes_with_it(juju: JujuEmulator, maas: MaasEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("nested") as (_controller, model):
            host = await model.add_machine(f"{model.info.uuid}:node-02")
            container = await model.add_machine("lxd:0")
            assert container.id == "0/lxd/0" and container.agent_status == "pending"
            assert container.safe_data["container-type"] == "lxd"
            await started(model, container)
            assert host.agent_status == "started"
            assert container.dns_name and container.dns_name != host.dns_name
            assert container.hostname == f"juju-{model.info.uuid[-6:]}-0-lxd-0"
            assert host.safe_data["supported-containers"] == ["lxd"]

            fresh = await model.add_machine("lxd")  # a container on a new machine
            assert fresh.id == "1/lxd/0" and "1" in model.machines
            with pytest.raises(ValueError, match="machine 7 not found"):
                await model.add_machine("lxd:7")

            status = await model.get_status()
            nested = status.machines["0"].containers["0/lxd/0"]
            assert nested.instance_id == container.hostname and nested.dns_name == container.dns_name
            assert set(status.machines) == {"0", "1"}

            facade = juju_client.MachineManagerFacade.from_connection(model.connection())
            with pytest.raises(JujuError) as refused:
                await facade.DestroyMachineWithParams(machine_tags=["machine-0"], force=False)
            assert refused.value.errors == ['machine 0 is hosting containers "0/lxd/0"']
            forced = await facade.DestroyMachineWithParams(machine_tags=["machine-0"], force=True)
            assert forced.results[0].info.destroyed_containers[0].info.machine_id == "0/lxd/0"
            await model.block_until(lambda: "0" not in model.machines and "0/lxd/0" not in model.machines,
                                    timeout=WAIT, wait_period=0.02)
            await until(lambda: node(maas, "node-02")["status_name"] == "Ready", "node-02 released")

    run(scenario)
    started_at = {e["machine"]: e["seq"] for e in juju_events(juju, "machine-started", "nested")}
    assert started_at["0"] < started_at["0/lxd/0"]
    calls = [e for e in maas.events() if e["kind"] == "request" and e["op"] in ("allocate", "deploy")]
    assert not any("lxd" in e["path"] for e in calls)


# --- SSH host keys and addresses ----------------------------------------------------------------


def test_ssh_client_public_keys_are_the_host_keys_of_started_machines(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("keyed") as (_controller, model):
            machine = await model.add_machine()
            ssh = juju_client.SSHClientFacade.from_connection(model.connection())
            with pytest.raises(JujuError) as early:
                await ssh.PublicKeys(entities=[{"tag": "machine-0"}])
            assert early.value.errors == ["keys not found"]
            await started(model, machine)
            with pytest.raises(JujuError) as one_unknown:
                await ssh.PublicKeys(entities=[{"tag": "machine-0"}, {"tag": "machine-5"}])
            assert one_unknown.value.errors == ["machine 5 not found"]
            answer = await ssh.PublicKeys(entities=[{"tag": "machine-0"}])
            keys = answer.results[0].public_keys
            assert len(keys) == 1 and keys[0].startswith("ssh-ed25519 ") and keys[0].endswith(f"@{machine.hostname}")

            uuid = model.info.uuid
            held = juju.call(lambda: machines.host_keys(juju.state.models[uuid], "0"))
            private = juju.call(lambda: machines.host_private_key(juju.state.models[uuid], "0"))
            assert held == keys and private is not None
            loaded = serialization.load_ssh_private_key(private.encode(), password=None)
            assert isinstance(loaded, Ed25519PrivateKey)
            public = serialization.load_ssh_public_key(" ".join(keys[0].split()[:2]).encode())
            assert isinstance(public, Ed25519PublicKey)
            assert loaded.public_key().public_bytes_raw() == public.public_bytes_raw()

            address = await ssh.PublicAddress(entities=[{"tag": "machine-0"}])
            assert address.results[0].address == machine.dns_name
            private_address = await ssh.PrivateAddress(entities=[{"tag": "machine-0"}])
            assert private_address.results[0].address == machine.dns_name

    run(scenario)


# --- the contract for the applications module -----------------------------------------------------


def test_the_module_contract_add_wait_and_fail_on_the_emulators_loop(juju: JujuEmulator, maas: MaasEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("contract") as (_controller, model):
            uuid = model.info.uuid
            conn = juju.call(lambda: next(c for c in juju.server.connections.values() if c.model_uuid == uuid))

            async def on_the_loop() -> dict[str, Any]:
                ctx = CallContext(conn=conn, facade="Application", version=20, method="Deploy", request_id=0, id="")
                state = juju.state.models[uuid]
                ok = await machines.add_machine(ctx, state, constraints={"cores": 64}, base={"name": "ubuntu",
                                                                                           "channel": "22.04"})
                bad = await machines.add_machine(ctx, state, constraints={"tags": ["x-nowhere"]})
                was_started = machines.is_started(state, ok)
                await asyncio.wait_for(machines.wait_started(state, ok), WAIT)
                with pytest.raises(machines.MachineFailed, match="No such tag"):
                    await asyncio.wait_for(machines.wait_started(state, bad), WAIT)
                with pytest.raises(JujuApiError, match='invalid model name "elsewhere"'):
                    await machines.add_machine(ctx, state, placement={"scope": "elsewhere", "directive": "node-01"})
                data = machines.machine(state, ok)
                assert data is not None
                return {"ok": ok, "bad": bad, "was_started": was_started, "data": data,
                        "keys": machines.host_keys(state, ok), "none": machines.machine(state, "42")}

            got = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(on_the_loop(), juju.loop))
            assert (got["ok"], got["bad"], got["was_started"], got["none"]) == ("0", "1", False, None)
            assert got["data"]["instance-status"]["current"] == "running" and got["data"]["base"] == "ubuntu@22.04"
            assert got["keys"][0].startswith("ssh-ed25519 ")
            assert node(maas, got["data"]["display-name"])["distro_series"] == "jammy"
            await model.block_until(lambda: "1" in model.machines, timeout=WAIT, wait_period=0.02)

    run(scenario)


# --- the MAAS client ---------------------------------------------------------------------------------


def test_the_maas_client_signs_with_oauth_plaintext_and_reports_maas_errors(maas: MaasEmulator) -> None:
    header = oauth_header("consumer:token:s3cr&t")
    assert 'oauth_signature_method="PLAINTEXT"' in header and 'oauth_signature="%26s3cr%2526t"' in header

    async def scenario() -> None:
        async with MaasClient(maas.url, maas.api_key) as client:
            system_id = node(maas, "node-01")["system_id"]
            assert (await client.machine(system_id))["hostname"] == "node-01"
            with pytest.raises(MaasError) as missing:
                await client.machine("nope")
            assert missing.value.status == 404 and "No Machine matches" in missing.value.message
        async with MaasClient(maas.url, "wrong:key:here") as stranger:
            with pytest.raises(MaasError) as refused:
                await stranger.machine(system_id)
            assert refused.value.status == 401 and refused.value.message == "Authorization Error: Invalid API key."
        async with MaasClient("http://127.0.0.1:9/MAAS/", maas.api_key, attempts=2, retry_s=0.01) as nowhere:
            with pytest.raises(MaasError, match="cannot reach MAAS") as unreachable:
                await nowhere.machine(system_id)
            assert unreachable.value.status == 0 and unreachable.value.transient

    run(scenario)
    with pytest.raises(ValueError, match="consumer_key:token_key:token_secret"):
        MaasClient(maas.url, "not-a-key")


def test_destroy_machine_refuses_bad_tags_and_unknown_machines(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("refusals") as (_controller, model):
            facade = juju_client.MachineManagerFacade.from_connection(model.connection())
            with pytest.raises(JujuError) as refused:
                await facade.DestroyMachineWithParams(machine_tags=["machine-3", "unit-x-0", "machine-0-kvm"])
            assert refused.value.errors == [
                "machine 3 not found", '"unit-x-0" is not a valid machine tag',
                '"machine-0-kvm" is not a valid machine tag',
            ]
            added = await facade.AddMachines(params=[
                {"parent-id": "0", "jobs": ["JobHostUnits"]},
                {"constraints": {"cores": "many"}, "jobs": ["JobHostUnits"]},
                {"container-type": "kvm", "jobs": ["JobHostUnits"]},
                {"base": {"name": "centos", "channel": "9"}, "jobs": ["JobHostUnits"]},
            ])
            messages = [r.error.message for r in added.machines]
            assert messages[0] == "parent machine specified without container type"
            assert "cannot unmarshal" in messages[1]
            assert 'container type "kvm" is not supported' in messages[2]
            assert 'base "centos@9" is not supported' in messages[3]
            assert all(r.machine == "" for r in added.machines) and model.machines == {}

    run(scenario)


def test_a_machine_with_units_is_kept_unless_forced_and_removal_hooks_run(
    juju: JujuEmulator, maas: MaasEmulator
) -> None:
    removed: list[str] = []

    @machines.machine_removal_hook
    async def remove_units(controller: Any, model: Any, machine_id: str) -> None:  # what units.py does
        removed.append(machine_id)
        for name, unit in list(model.entities("unit").items()):
            if unit.get("machine-id") == machine_id:
                model.remove_entity("unit", name)

    async def scenario() -> None:
        async with lab_model("occupied") as (_controller, model):
            first = await model.add_machine(f"{model.info.uuid}:node-01")
            second = await model.add_machine(f"{model.info.uuid}:node-02")
            await started(model, first)
            await started(model, second)
            uuid = model.info.uuid
            juju.call(lambda: juju.state.models[uuid].put_entity(
                "unit", {"name": "ubuntu/0", "application": "ubuntu", "machine-id": "0", "life": "alive"}))
            facade = juju_client.MachineManagerFacade.from_connection(model.connection())
            with pytest.raises(JujuError) as refused:
                await facade.DestroyMachineWithParams(machine_tags=["machine-0"])
            assert refused.value.errors == ['machine 0 has unit "ubuntu/0" assigned']
            dry = await facade.DestroyMachineWithParams(machine_tags=["machine-0"], force=True, dry_run=True)
            assert [u.tag for u in dry.results[0].info.destroyed_units] == ["unit-ubuntu-0"]
            assert "0" in model.machines and first.safe_data["life"] == "alive"

            await first.destroy(force=True)
            assert removed == ["0"] and juju.call(lambda: juju.state.models[uuid].entities("unit")) == {}
            await until(lambda: node(maas, "node-01")["status_name"] == "Ready", "node-01 released")

            await facade.DestroyMachineWithParams(machine_tags=["machine-1"], keep=True)  # keep the instance
            await model.block_until(lambda: "1" not in model.machines, timeout=WAIT, wait_period=0.02)
            assert node(maas, "node-02")["status_name"] == "Deployed"
        # The model is gone; the kept node is the operator's to release.
        async with MaasClient(maas.url, maas.api_key) as client:
            await client.release(node(maas, "node-02")["system_id"])

    try:
        run(scenario)
    finally:
        machines.MACHINE_REMOVAL_HOOKS.remove(remove_units)
    assert "1" in removed
