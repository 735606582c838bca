"""The MAAS emulator driven by unmodified python-libmaas, as botlab drives a real MAAS."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from maas.client import connect
from maas.client.bones import CallError, SessionAPI
from maas.client.enum import NodeStatus
from maas.client.utils import sign
from maas.client.viscera.machines import MachineNotFound

from botlab.lab.maas import MaasEmulator, run_maas
from botlab.lab.spec import FaultSpec, LabSpec, SpecError, dump_spec, generate_spec, load_spec, with_faults
from tests.lab.conftest import ED25519, control_call, run, wait_for, wait_for_status

pytestmark = pytest.mark.lab


async def client_for(maas: MaasEmulator, apikey: str | None = None) -> Any:
    return await connect(maas.url, apikey=apikey or maas.api_key)


def count_gpus(lshw: bytes) -> int:
    """How a client counts GPUs: display-class lshw nodes whose vendor is NVIDIA."""
    root = ET.fromstring(lshw)
    return sum(
        1
        for node in root.iter("node")
        if node.get("class") == "display" and "NVIDIA" in (node.findtext("vendor") or "")
    )


async def enlist(client: Any, spec: LabSpec, hostname: str) -> Any:
    """Add an unenlisted lab machine to MAAS by its first MAC, as botlab's enlist stage does."""
    hw = spec.machine(hostname)
    return await client.machines.create(
        architecture="amd64/generic",
        mac_addresses=[hw.macs[0]],
        power_type="ipmi",
        power_parameters=dict(hw.power_parameters),
        hostname=hostname,
    )


def control(maas: MaasEmulator, path: str, body: Any = None, method: str = "GET") -> Any:
    return control_call(f"{maas.base_url}/_lab/{path}", body, method)


# --- connecting ------------------------------------------------------------------------------


def test_describe_names_the_emulators_own_address_and_needs_no_credentials(maas: MaasEmulator) -> None:
    with urllib.request.urlopen(f"{maas.url}api/2.0/describe/", timeout=5) as response:
        doc = json.loads(response.read())
    uris = [r["auth"]["uri"] for r in doc["resources"] if r["auth"]]
    assert uris and all(u.startswith(f"{maas.base_url}/MAAS/api/2.0/") for u in uris)
    assert {"MachinesHandler", "MachineHandler", "TagsHandler", "VersionHandler"} <= {
        r["name"] for r in doc["resources"]
    }


def test_connect_and_whoami_return_the_admin(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        me = await client.users.whoami()
        assert (me.username, me.is_admin) == ("admin", True)
        assert [u.username for u in await client.users.list()] == ["admin"]
        version = await client.version.get()
        assert version.version == "3.4.2"

    run(scenario)


def test_libmaas_works_synchronously_outside_an_event_loop(maas: MaasEmulator) -> None:
    # libmaas's blocking mode runs on the thread's current loop; after any asyncio.run() in
    # this process there is none, so give it one, as a synchronous caller must.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        client = connect(maas.url, apikey=maas.api_key)
        assert sorted(m.hostname for m in client.machines.list()) == ["node-01", "node-02"]
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_a_wrong_or_missing_key_gets_401(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        consumer, token, _secret = maas.api_key.split(":")
        bad = await client_for(maas, f"{consumer}:{token}:wrong-secret")
        with pytest.raises(CallError) as wrong_secret:
            await bad.machines.list()
        assert wrong_secret.value.status == 401
        assert b"Authorization Error" in wrong_secret.value.content
        unknown = await client_for(maas, "nobody:nothing:nope")
        with pytest.raises(CallError) as unknown_key:
            await unknown.users.whoami()
        assert unknown_key.value.status == 401
        assert unknown_key.value.content == b"Authorization Error: Invalid API key."
        async with aiohttp.ClientSession() as http, http.get(f"{maas.url}api/2.0/machines/") as response:
            assert response.status == 401

    run(scenario)


# --- machines --------------------------------------------------------------------------------


def test_enlisted_machines_are_listed_ready_with_hardware_and_filtered_by_hostname(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machines = await client.machines.list()
        assert [(m.hostname, m.status, m.cpus, m.memory) for m in machines] == [
            ("node-01", NodeStatus.READY, 32, 131072),
            ("node-02", NodeStatus.READY, 32, 131072),
        ]
        only = await client.machines.list(hostnames=["node-02.maas"])
        assert [m.hostname for m in only] == ["node-02"]
        assert len(await client.machines.list(hostnames=["node-09"])) == 0
        got = await client.machines.get(system_id=only[0].system_id)
        assert (got.hostname, got.fqdn, got.architecture, got.power_type) == (
            "node-02",
            "node-02.maas",
            "amd64/generic",
            "ipmi",
        )
        assert got.zone.name == "default" and got.pool.name == "default" and got.domain.name == "maas"
        assert [i.mac_address for i in got.interfaces] == ["52:54:00:00:00:02", "52:54:00:01:00:02"]
        assert got.boot_interface.mac_address == "52:54:00:00:00:02"
        assert got.owner is None and got.owner_data == {} and got.locked is False and got.netboot is True

    run(scenario)


def test_the_machine_list_filters_by_mac_status_and_tags(maas: MaasEmulator, lab_spec: LabSpec) -> None:
    async def scenario() -> None:
        _profile, session = await SessionAPI.connect(maas.url, apikey=maas.api_key)  # libmaas's low level
        client = await client_for(maas)
        node_02_mac = lab_spec.machine("node-02").macs[1]
        assert [m["hostname"] for m in await session.Machines.read(mac_address=node_02_mac)] == ["node-02"]
        await enlist(client, lab_spec, "node-03")
        assert [m["hostname"] for m in await session.Machines.read(status="commissioning")] == ["node-03"]
        assert len(await session.Machines.read(status=["ready", "commissioning"])) == 3
        await client.tags.create("pinned")
        node_01 = (await client.machines.list(hostnames=["node-01"]))[0]
        await node_01.tags.add(await client.tags.get("pinned"))
        assert [m["hostname"] for m in await session.Machines.read(tags="pinned")] == ["node-01"]
        assert [m["hostname"] for m in await session.Machines.read(id=[node_01.system_id])] == ["node-01"]
        with pytest.raises(CallError) as error:
            await session.Machines.read(mac_address="not-a-mac")
        assert error.value.status == 400

    run(scenario)


def test_reading_an_unknown_machine_is_404(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        with pytest.raises(CallError) as error:
            await client.machines.get(system_id="nosuch")
        assert error.value.status == 404
        assert error.value.content == b"No Machine matches the given query."

    run(scenario)


def test_unenlisted_machines_appear_only_once_created_by_mac(maas: MaasEmulator, lab_spec: LabSpec) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        assert maas.state()["unenlisted"] == ["node-03", "node-04"]
        await enlist(client, lab_spec, "node-03")
        assert sorted(m.hostname for m in await client.machines.list()) == ["node-01", "node-02", "node-03"]
        assert maas.state()["unenlisted"] == ["node-04"]

    run(scenario)


def test_a_created_machine_commissions_then_tests_then_is_ready_with_hardware_facts(
    maas: MaasEmulator, lab_spec: LabSpec
) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machine = await enlist(client, lab_spec, "node-03")
        # An admin's new machine starts commissioning by itself; facts are unknown until then.
        assert (machine.status, machine.cpus, machine.memory) == (NodeStatus.COMMISSIONING, 0, 0)
        assert machine.power_type == "ipmi"
        assert await machine.get_power_parameters() == dict(lab_spec.machine("node-03").power_parameters)
        await wait_for_status(machine, "Ready")
        assert (machine.cpus, machine.memory) == (64, 524288)
        assert machine.status_message == "Ready"
        # Commissioning found the second NIC and the disks.
        assert [i.mac_address for i in machine.interfaces] == list(lab_spec.machine("node-03").macs)
        assert [d.name for d in machine.block_devices] == ["sda", "nvme0n1"]
        changes = [(e["old"], e["new"]) for e in maas.events() if e["kind"] == "transition"]
        assert changes == [
            (None, "New"),
            ("New", "Commissioning"),
            ("Commissioning", "Testing"),
            ("Testing", "Ready"),
        ]

    run(scenario)


def test_details_carry_lshw_with_one_display_device_per_gpu(maas: MaasEmulator, lab_spec: LabSpec) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machine = await enlist(client, lab_spec, "node-04")
        assert await machine.get_details() == {"lshw": None, "lldp": None}
        await wait_for_status(machine, "Ready")
        details = await machine.get_details()
        assert count_gpus(details["lshw"]) == 8
        # The onboard BMC VGA is a display device too: counting needs the vendor.
        displays = [n for n in ET.fromstring(details["lshw"]).iter("node") if n.get("class") == "display"]
        assert len(displays) == 9
        assert b"botlab-switch-01" in details["lldp"]
        cpu_only = (await client.machines.list(hostnames=["node-01"]))[0]
        assert count_gpus((await cpu_only.get_details())["lshw"]) == 0

    run(scenario)


def test_a_commissioning_fault_fails_with_a_message_and_recommissioning_succeeds(
    maas: MaasEmulator, lab_spec: LabSpec
) -> None:
    maas.inject(
        {"kind": "fail", "stage": "commissioning", "machines": ["node-03"], "count": 1, "message": "BMC says no"}
    )

    async def scenario() -> None:
        client = await client_for(maas)
        machine = await enlist(client, lab_spec, "node-03")
        await wait_for_status(machine, "Failed commissioning")
        assert machine.status == NodeStatus.FAILED_COMMISSIONING
        assert machine.status_message == "BMC says no"
        await machine.commission(wait=False)
        assert machine.status == NodeStatus.COMMISSIONING
        await wait_for_status(machine, "Ready")
        assert machine.cpus == 64

    run(scenario)


def test_a_testing_fault_from_the_spec_fails_testing(lab_spec: LabSpec) -> None:
    spec = with_faults(lab_spec, FaultSpec(kind="fail", stage="testing", machines=("node-01",), count=None))

    async def scenario(maas: MaasEmulator) -> None:
        client = await client_for(maas)
        machine = (await client.machines.list(hostnames=["node-01"]))[0]
        await machine.commission(wait=False)
        await wait_for_status(machine, "Failed testing")
        assert machine.status_message == "Testing failed (injected by botlab)"
        # MAAS 3.4 does not commission a machine in Failed testing (node_action.py,
        # Commission.actionable_statuses); an admin may override the failed tests.
        with pytest.raises(CallError) as refused:
            await machine.commission(testing_scripts=[], wait=False)
        assert refused.value.status == 400
        assert json.loads(refused.value.content) == {
            "__all__": ["Commission is not available because of the current state of the node."]}
        _profile, session = await SessionAPI.connect(maas.url, apikey=maas.api_key)
        await session.Machine.override_failed_testing(system_id=machine.system_id)
        await wait_for_status(machine, "Ready")

    with run_maas(spec) as maas:
        asyncio.run(scenario(maas))


def test_a_machine_nobody_boots_times_out_commissioning(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machine = await client.machines.create(
            architecture="amd64", mac_addresses=["52:54:00:99:99:99"], power_type="manual"
        )
        assert machine.hostname  # MAAS makes a name up
        await wait_for_status(machine, "Failed commissioning")
        assert "timed out" in machine.status_message

    run(scenario)


def test_creating_a_machine_with_a_mac_in_use_is_rejected(maas: MaasEmulator, lab_spec: LabSpec) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        with pytest.raises(CallError) as error:
            await client.machines.create(
                architecture="amd64/generic", mac_addresses=[lab_spec.machine("node-01").macs[0]], power_type="ipmi"
            )
        assert error.value.status == 400
        assert "already in use on node-01" in json.loads(error.value.content)["mac_addresses"][0]

    run(scenario)


def test_power_parameters_may_come_as_separate_fields(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machine = (await client.machines.list(hostnames=["node-01"]))[0]
        await machine.set_power("redfish", {"power_address": "10.0.0.9", "power_user": "root"})
        await machine.refresh()
        assert machine.power_type == "redfish"
        assert await machine.get_power_parameters() == {"power_address": "10.0.0.9", "power_user": "root"}

    run(scenario)


# --- tags ------------------------------------------------------------------------------------


def test_tags_are_created_added_to_and_removed_from_machines_and_deleted(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        tag = await client.tags.create("gpu", comment="GPU nodes")
        assert [(t.name, t.comment) for t in await client.tags.list()] == [("gpu", "GPU nodes")]
        assert (await client.tags.get("gpu")).comment == "GPU nodes"
        machine = (await client.machines.list(hostnames=["node-02"]))[0]
        await machine.tags.add(tag)  # libmaas: POST tags/gpu/?op=update_nodes add=<system_id>
        await machine.refresh()
        assert [t.name for t in machine.tags] == ["gpu"]
        tagged = await client._origin.Tag._handler.machines(name="gpu")  # what MAAS lists for the tag
        assert [m["hostname"] for m in tagged] == ["node-02"]
        await machine.tags.remove(tag)
        await machine.refresh()
        assert list(machine.tags) == []
        await machine.tags.add(tag)
        await tag.delete()
        await machine.refresh()
        assert list(machine.tags) == []
        with pytest.raises(CallError) as error:
            await client.tags.get("gpu")
        assert error.value.status == 404

    run(scenario)


def test_a_duplicate_tag_is_rejected_like_maas_does(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        await client.tags.create("gpu")
        with pytest.raises(CallError) as error:
            await client.tags.create("gpu")
        assert error.value.status == 400
        assert json.loads(error.value.content) == {"name": ["Tag with this Name already exists."]}

    run(scenario)


# --- allocate, deploy, release ---------------------------------------------------------------


def test_allocate_honours_tags_cpus_and_memory_and_answers_409_when_nothing_matches(
    maas: MaasEmulator, lab_spec: LabSpec
) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        gpu_node = await enlist(client, lab_spec, "node-04")
        await wait_for_status(gpu_node, "Ready")
        gpu = await client.tags.create("gpu")
        await gpu_node.tags.add(gpu)
        with pytest.raises(MachineNotFound) as nothing:
            await client.machines.allocate(tags=["gpu"], cpus=128)
        conflict = nothing.value.__cause__
        assert isinstance(conflict, CallError) and conflict.status == 409
        assert b"No available machine matches constraints" in conflict.content
        got = await client.machines.allocate(tags=["gpu"], cpus=32, memory=262144)
        assert (got.hostname, got.status, got.owner.username) == ("node-04", NodeStatus.ALLOCATED, "admin")
        by_name = await client.machines.allocate(hostname="node-02", cpus=4)
        assert by_name.hostname == "node-02"
        with pytest.raises(MachineNotFound):
            await client.machines.allocate(hostname="node-02")  # already taken
        last = await client.machines.allocate(not_tags=["gpu"])
        assert last.hostname == "node-01"

    run(scenario)


def test_deploy_assigns_addresses_then_release_returns_the_machine_clean(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machine = await client.machines.allocate(hostname="node-01")
        machine.owner_data = {"botlab": "lab-1"}
        await machine.save()
        await machine.deploy(distro_series="jammy", user_data=b"#cloud-config\npackages: [htop]\n", wait=False)
        assert machine.status == NodeStatus.DEPLOYING
        await wait_for_status(machine, "Deployed")
        assert (machine.osystem, machine.distro_series, machine.hwe_kernel) == ("ubuntu", "jammy", "ga-22.04")
        assert machine.ip_addresses == ["10.77.0.10"]
        assert machine.owner_data == {"botlab": "lab-1"}
        state = {m["hostname"]: m for m in maas.state()["machines"]}
        assert state["node-01"]["user_data"] == "#cloud-config\npackages: [htop]\n"
        await machine.release(wait=False)
        await wait_for_status(machine, "Ready")
        assert (machine.owner, machine.owner_data, machine.ip_addresses, machine.distro_series) == (None, {}, [], "")
        await machine.release()  # releasing a Ready machine again is a no-op, as in MAAS
        assert machine.status == NodeStatus.READY

    run(scenario)


def test_allocate_by_zone_and_architecture(lab_spec: LabSpec) -> None:
    doc = dump_spec(lab_spec)
    doc["machines"][1]["zone"] = "rack-2"

    async def scenario(maas: MaasEmulator) -> None:
        client = await client_for(maas)
        assert (await client.machines.allocate(zone="rack-2", architectures=["amd64"])).hostname == "node-02"
        with pytest.raises(MachineNotFound):
            await client.machines.allocate(architectures=["arm64/generic"])
        assert [m.hostname for m in await client.machines.list()] == ["node-01", "node-02"]

    with run_maas(load_spec(doc)) as maas:
        asyncio.run(scenario(maas))


def test_a_ready_machine_is_allocated_by_deploy_and_bad_series_are_refused(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machine = (await client.machines.list(hostnames=["node-02"]))[0]
        with pytest.raises(CallError) as error:
            await machine.deploy(distro_series="warty")
        assert error.value.status == 400
        await machine.deploy(distro_series="noble")
        assert machine.owner.username == "admin"
        await wait_for_status(machine, "Deployed")

    run(scenario)


def test_a_deployment_fault_for_a_fraction_of_machines_fails_deployment(lab_spec: LabSpec) -> None:
    spec = with_faults(lab_spec, FaultSpec(kind="fail", stage="deployment", fraction=1.0, count=None))

    async def scenario(maas: MaasEmulator) -> None:
        client = await client_for(maas)
        machine = await client.machines.allocate()
        await machine.deploy(wait=False)
        await wait_for_status(machine, "Failed deployment")
        assert machine.status_message == "Deployment failed (injected by botlab)"
        await machine.release()
        await wait_for_status(machine, "Ready")

    with run_maas(spec) as maas:
        asyncio.run(scenario(maas))


def test_abort_stops_a_deployment_and_mark_broken_and_fixed_round_trip(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machine = await client.machines.allocate(hostname="node-01")
        await machine.deploy()
        await machine.abort()
        assert (machine.status, machine.ip_addresses) == (NodeStatus.ALLOCATED, [])
        await machine.mark_broken(comment="bad DIMM")
        assert (machine.status_name, machine.status_message) == ("Broken", "bad DIMM")
        assert machine.owner is None  # Node.mark_broken releases it (models/node.py, 3.4.2)
        await machine.mark_fixed()
        assert machine.status == NodeStatus.READY
        with pytest.raises(CallError) as error:
            await machine.abort()
        assert error.value.status == 409
        assert error.value.content.decode() == (
            f"Cannot abort in current state: node {machine.system_id} is in state Ready.")

    run(scenario)


# --- faults, unimplemented calls, the event log ----------------------------------------------


def test_a_503_burst_answers_the_next_requests_then_recovers(maas: MaasEmulator) -> None:
    maas.inject({"kind": "unavailable", "count": 2, "path": "/machines/"})

    async def scenario() -> None:
        client = await client_for(maas)
        assert (await client.users.whoami()).username == "admin"  # other paths are unaffected
        for _ in range(2):
            with pytest.raises(CallError) as error:
                await client.machines.list()
            assert error.value.status == 503
        assert len(await client.machines.list()) == 2

    run(scenario)
    assert [e["status"] for e in maas.events() if e["kind"] == "request" and e["injected"]] == [503, 503]


def test_a_slow_fault_delays_only_matching_calls(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        maas.inject({"kind": "slow", "delay_s": 0.3, "op": "whoami"})
        started = time.monotonic()
        await client.machines.list()
        assert time.monotonic() - started < 0.3
        started = time.monotonic()
        await client.users.whoami()
        assert time.monotonic() - started >= 0.3

    run(scenario)


def test_unimplemented_calls_answer_501_naming_handler_and_op(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        machine = (await client.machines.list())[0]
        with pytest.raises(CallError) as error:
            await machine.enter_rescue_mode()
        assert error.value.status == 501
        assert error.value.content == (
            b"not implemented by the botlab MAAS emulator: POST machines/{system_id} op=rescue_mode"
        )
        # An op MAAS may not even have: still a 501, never a silent success.
        url = f"{maas.url}api/2.0/machines/?op=foo"
        headers: dict[str, str] = {}
        sign(url, headers, maas.api_key.split(":"))
        async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as response:
            assert response.status == 501
            assert await response.text() == "not implemented by the botlab MAAS emulator: POST machines op=foo"

    run(scenario)


def test_urlencoded_bodies_are_read_like_multipart_ones(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        url = f"{maas.url}api/2.0/tags/"
        headers: dict[str, str] = {}
        sign(url, headers, maas.api_key.split(":"))
        form = {"name": "plain", "comment": "a b&c"}
        async with aiohttp.ClientSession() as http, http.post(url, headers=headers, data=form) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["comment"] == "a b&c"
        client = await client_for(maas)
        assert (await client.tags.get("plain")).comment == "a b&c"

    run(scenario)


def test_the_event_log_shows_mutations_and_a_read_only_rerun_adds_none(maas: MaasEmulator) -> None:
    async def converge(client: Any) -> None:
        """An idempotent 'make sure node-01 carries tag gpu' as a provisioning tool does it."""
        if "gpu" not in [t.name for t in await client.tags.list()]:
            await client.tags.create("gpu")
        machine = (await client.machines.list(hostnames=["node-01"]))[0]
        if "gpu" not in [t.name for t in machine.tags]:
            await machine.tags.add(await client.tags.get("gpu"))

    async def scenario() -> None:
        client = await client_for(maas)
        await converge(client)
        first = [(e["method"], e["op"]) for e in maas.events() if e["kind"] == "request" and e["mutating"]]
        assert first == [("POST", None), ("POST", "update_nodes")]
        mark = maas.last_seq
        await converge(client)
        rerun = maas.events(since=mark)
        assert rerun and all(e["kind"] == "request" and not e["mutating"] for e in rerun)

    run(scenario)
    counters = maas.counters()
    assert counters["POST TagHandler op=update_nodes"] == 1
    assert counters["GET TagsHandler"] == 2


def test_the_control_api_serves_events_state_and_faults_over_http(maas: MaasEmulator) -> None:
    added = control(maas, "faults", {"kind": "fail", "stage": "deployment", "fraction": 0.5, "count": "always"}, "POST")
    targets = added["faults"][0]["targets"]
    assert len(targets) == 2 and set(targets) <= {"node-01", "node-02", "node-03", "node-04"}
    assert len(control(maas, "faults")["faults"]) == 1
    control(maas, "faults", method="DELETE")
    assert control(maas, "faults")["faults"] == []
    state = control(maas, "state")
    assert [m["hostname"] for m in state["machines"]] == ["node-01", "node-02"]
    events = control(maas, "events?since=0")
    assert [e["kind"] for e in events["events"]] == ["fault-injected", "faults-cleared"]
    assert control(maas, f"events?since={events['last']}")["events"] == []
    with pytest.raises(urllib.error.HTTPError) as error:
        control(maas, "faults", {"kind": "explode"}, "POST")
    assert error.value.code == 400


# --- keys and account ------------------------------------------------------------------------


def test_ssh_keys_are_listed_and_added_once(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        assert list(await client.ssh_keys.list()) == []
        key = await client.ssh_keys.create(ED25519)
        assert (key.id, key.key) == (1, ED25519)
        assert [k.key for k in await client.ssh_keys.list()] == [ED25519]
        with pytest.raises(CallError) as duplicate:
            await client.ssh_keys.create(ED25519)
        assert duplicate.value.status == 400
        with pytest.raises(CallError) as garbage:
            await client.ssh_keys.create("not a key")
        assert garbage.value.status == 400

    run(scenario)


def test_account_credentials_can_be_made_and_revoked(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        credentials = await client.account.create_credentials()
        second = await client_for(maas, str(credentials))
        assert (await second.users.whoami()).username == "admin"
        await client.account.delete_credentials(credentials)
        with pytest.raises(CallError) as error:
            await second.users.whoami()
        assert error.value.status == 401

    run(scenario)


def test_zones_pools_domains_fabrics_and_subnets_are_listed(maas: MaasEmulator) -> None:
    async def scenario() -> None:
        client = await client_for(maas)
        assert [z.name for z in await client.zones.list()] == ["default"]
        assert [p.name for p in await client.resource_pools.list()] == ["default"]
        assert [d.name for d in await client.domains.list()] == ["maas"]
        assert [f.name for f in await client.fabrics.list()] == ["fabric-0"]
        assert [s.cidr for s in await client.subnets.list()] == ["10.77.0.0/16"]

    run(scenario)


# --- the lab spec ----------------------------------------------------------------------------


def test_a_spec_round_trips_through_yaml_data(lab_spec: LabSpec) -> None:
    assert load_spec(dump_spec(lab_spec)) == lab_spec


def test_generate_spec_puts_gpus_on_the_last_machines_and_leaves_half_unenlisted() -> None:
    spec = generate_spec(10, 3)
    assert [m.hostname for m in spec.machines if m.gpus.count] == ["node-08", "node-09", "node-10"]
    assert [m.hostname for m in spec.machines if not m.enlisted] == [
        "node-06",
        "node-07",
        "node-08",
        "node-09",
        "node-10",
    ]
    assert len({mac for m in spec.machines for mac in m.macs}) == 20


def test_a_spec_loads_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(
        """
maas: {api_key: "k:t:s"}
network: {cidr: 10.99.0.0/24}
timings: {deploy_s: 1, seed: 3}
machines:
  - hostname: gpu-a
    macs: ["52:54:00:AA:00:01"]
    cores: 8
    memory_mib: 16384
    gpus: {count: 4, model: NVIDIA H100 80GB HBM3}
    storage: [100, {name: nvme0n1, size_gb: 2000}]
    enlisted: false
    zone: rack-1
faults:
  - {kind: unavailable, count: always, op: allocate}
juju: {controllers: 1}
"""
    )
    spec = load_spec(path)
    gpu = spec.machine("gpu-a")
    assert (gpu.macs, gpu.gpus.count, gpu.enlisted, gpu.zone) == (("52:54:00:aa:00:01",), 4, False, "rack-1")
    assert [(d.name, d.size_gb) for d in gpu.storage] == [("sda", 100), ("nvme0n1", 2000)]
    assert (spec.maas.api_key, spec.network.gateway_ip, spec.timings.seed) == ("k:t:s", "10.99.0.1", 3)
    assert spec.faults[0].count is None and spec.faults[0].op == "allocate"
    assert spec.extra == {"juju": {"controllers": 1}}  # kept for the other emulators


def test_a_bad_spec_reports_every_problem_at_once() -> None:
    with pytest.raises(SpecError) as error:
        load_spec(
            {
                "timings": {"deploy_s": -1},
                "machines": [{"hostname": "Bad_Name", "macs": ["zz"], "status": "Sleeping", "memroy_mib": 1}],
                "faults": [{"kind": "fail", "stage": "lunch"}],
            }
        )
    text = str(error.value)
    for fragment in ("deploy_s", "hostname", "'zz'", "Sleeping", "memroy_mib: unknown", "stage"):
        assert fragment in text


def test_spec_machines_in_any_status_start_there(lab_spec: LabSpec) -> None:
    doc = dump_spec(lab_spec)
    doc["machines"][0]["status"] = "deployed"
    doc["machines"][1]["status"] = "commissioning"

    async def scenario(maas: MaasEmulator) -> None:
        client = await client_for(maas)
        deployed, commissioning = await client.machines.list()
        assert (deployed.status, deployed.owner.username, deployed.ip_addresses) == (
            NodeStatus.DEPLOYED,
            "admin",
            ["10.77.0.10"],
        )
        assert commissioning.status == NodeStatus.COMMISSIONING
        await wait_for_status(commissioning, "Ready")

    with run_maas(load_spec(doc)) as maas:
        asyncio.run(scenario(maas))


def test_wait_for_reports_the_last_result_on_timeout() -> None:
    async def probe() -> int:
        return 1

    with pytest.raises(AssertionError, match="last result: 1"):
        asyncio.run(wait_for(probe, lambda n: n == 2, timeout=0.05))
