"""Fidelity of the MAAS emulator to real MAAS 3.4 (the version it reports), call by call.

Each case drives the emulator through unmodified python-libmaas (its low-level `bones`
SessionAPI, or its `viscera` facade where botlab or Juju would use it) and compares what comes
back (HTTP status and body, or the resulting state) with what canonical/maas at tag 3.4.2
answers, citing the source it follows: `SRC` below is https://github.com/canonical/maas/blob/
3.4.2/src/maasserver/. The same table is summarised in docs/lab.md ("## Fidelity", "### MAAS").
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from maas.client import connect
from maas.client.bones import CallError, SessionAPI

from botlab.lab.maas import MaasEmulator, run_maas
from botlab.lab.spec import LabSpec, generate_spec
from tests.lab.conftest import FAST, wait_for

pytestmark = pytest.mark.lab

REPO = "canonical/maas"
TAG = "3.4.2"
SRC = "src/maasserver/"


def fidelity_spec() -> LabSpec:
    """Seven enlisted machines: node-01 (32 cores, 128 GiB) and node-02 (4 cores, 8 GiB) Ready,
    node-03 Failed testing, node-04 Failed deployment, node-05 Deployed, node-06 Failed
    commissioning, node-07 Ready with GPUs (64 cores, 512 GiB)."""
    spec = generate_spec(7, 1, unenlisted=0, timings=FAST)
    statuses = {"node-03": "Failed testing", "node-04": "Failed deployment", "node-05": "Deployed",
                "node-06": "Failed commissioning"}
    machines = []
    for m in spec.machines:
        m = dataclasses.replace(m, status=statuses.get(m.hostname, "Ready"))
        if m.hostname == "node-02":
            m = dataclasses.replace(m, cores=4, memory_mib=8192)
        machines.append(m)
    return dataclasses.replace(spec, machines=tuple(machines))


class Lab:
    """One fresh emulator with a bones session and a facade client on it."""

    def __init__(self, maas: MaasEmulator, session: Any, client: Any) -> None:
        self.maas, self.session, self.client = maas, session, client
        self._ids: dict[str, str] = {}

    async def sid(self, hostname: str) -> str:
        if not self._ids:
            self._ids = {m["hostname"]: m["system_id"] for m in await self.session.Machines.read()}
        return self._ids[hostname]

    async def status(self, hostname: str) -> str:
        return str((await self.session.Machine.read(system_id=await self.sid(hostname)))["status_name"])

    async def settle(self, hostname: str, status_name: str) -> str:
        async def probe() -> str:
            return await self.status(hostname)

        return await wait_for(probe, lambda s: s == status_name)

    async def allocate(self, hostname: str) -> dict[str, Any]:
        return dict(await self.session.Machines.allocate(name=hostname))


async def answer(call: Awaitable[Any]) -> tuple[int, Any]:
    """(HTTP status, body): JSON decoded when it is JSON, text otherwise."""
    try:
        result = await call
    except CallError as error:
        text = error.content.decode("utf-8")
        try:
            return error.status, json.loads(text)
        except ValueError:
            return error.status, text
    return 200, result


def nothing_matches(constraints: str, resolved: str) -> tuple[int, str]:
    # MachinesHandler.allocate (api/machines.py): the request's own parameters, then
    # describe_constraints() of the cleaned form.
    return 409, f'No available machine matches constraints: {constraints} (resolved to "{resolved}")'


@dataclass(frozen=True)
class Case:
    id: str
    source: str  # path under SRC (at tag 3.4.2) and the symbol followed
    run: Callable[[Lab], Awaitable[Any]]
    expect: Any


# --- the cases --------------------------------------------------------------------------------


async def commission(lab: Lab, host: str) -> Any:
    status, body = await answer(lab.session.Machine.commission(system_id=await lab.sid(host)))
    return (status, body["status_name"]) if status == 200 else (status, body)


NOT_AVAILABLE = {"__all__": ["Commission is not available because of the current state of the node."]}


async def deploy(lab: Lab, host: str, **options: str) -> tuple[int, Any]:
    return await answer(lab.session.Machine.deploy(system_id=await lab.sid(host), **options))


async def allocate(lab: Lab, **params: Any) -> tuple[int, Any]:
    status, body = await answer(lab.session.Machines.allocate(**params))
    return (status, body["hostname"]) if status == 200 else (status, body)


async def allocate_cheapest(lab: Lab) -> str:
    return str((await lab.client.machines.allocate()).hostname)


async def allocate_by_speed(lab: Lab) -> tuple[Any, Any]:
    return (await allocate(lab, cpu_speed="2000"), await allocate(lab, cpu_speed="3000"))


async def allocate_by_vlan(lab: Lab) -> tuple[Any, Any]:
    return (await allocate(lab, vlans="vid:42"), await allocate(lab, vlans="vid:0"))


async def allocate_excluding_id(lab: Lab) -> Any:
    return await allocate(lab, not_system_id=await lab.sid("node-02"))


async def allocate_unavailable_id(lab: Lab) -> Any:
    return await allocate(lab, system_id=await lab.sid("node-03"))


async def allocate_libmaas_not_zones(lab: Lab) -> Any:
    # python-libmaas sends `not_zones` as `not_in_zones`, which MAAS does not know.
    try:
        await lab.client.machines.allocate(not_zones=["default"])
    except CallError as error:
        return error.status, json.loads(error.content)
    return 200, "allocated"


async def deploy_kernel(lab: Lab, kernel: str) -> Any:
    status, body = await deploy(lab, "node-01", distro_series="jammy", hwe_kernel=kernel)
    return (status, body["hwe_kernel"]) if status == 200 else (status, body)


async def deploy_options(lab: Lab) -> Any:
    _, plain = await deploy(lab, "node-01", install_kvm="true", enable_hw_sync="true")
    _, ephemeral = await deploy(lab, "node-02", ephemeral_deploy="true")
    return plain["enable_hw_sync"], plain["ephemeral_deploy"], ephemeral["ephemeral_deploy"]


async def machine_op(lab: Lab, host: str, op: str, **params: Any) -> tuple[int, Any]:
    return await answer(getattr(lab.session.Machine, op)(system_id=await lab.sid(host), **params))


async def abort_ready(lab: Lab) -> Any:
    return await machine_op(lab, "node-01", "abort"), await lab.sid("node-01")


async def abort_commissioning(lab: Lab) -> str:
    await machine_op(lab, "node-01", "commission")
    await machine_op(lab, "node-01", "abort")
    return await lab.status("node-01")


async def mark_broken_owned(lab: Lab) -> Any:
    await lab.allocate("node-02")
    status, body = await machine_op(lab, "node-02", "mark_broken", comment="bad DIMM")
    return status, body["status_name"], body["owner"]


async def retest_from_broken(lab: Lab) -> str:
    await lab.allocate("node-02")
    await machine_op(lab, "node-02", "mark_broken")
    await machine_op(lab, "node-02", "test")
    await lab.settle("node-02", "Testing")
    await asyncio.sleep(0.3)
    return await lab.status("node-02")


async def retest_from_failed_testing(lab: Lab) -> str:
    await machine_op(lab, "node-03", "test")
    await lab.settle("node-03", "Testing")
    await asyncio.sleep(0.3)
    return await lab.status("node-03")


async def override_failed_testing(lab: Lab) -> Any:
    status, body = await machine_op(lab, "node-03", "override_failed_testing")
    return (status, body["status_name"]), await machine_op(lab, "node-01", "override_failed_testing")


async def release(lab: Lab, host: str) -> Any:
    status, body = await machine_op(lab, host, "release")
    return (status, body["status_name"]) if status == 200 else (status, body)


async def create_tag(lab: Lab, name: str) -> Any:
    status, body = await answer(lab.session.Tags.create(name=name))
    return (status, body["name"]) if status == 200 else (status, body)


async def duplicate_tag(lab: Lab) -> Any:
    await create_tag(lab, "gpu")
    return await create_tag(lab, "gpu")


async def update_nodes_other_definition(lab: Lab) -> Any:
    await create_tag(lab, "gpu")
    return await answer(lab.session.Tag.update_nodes(name="gpu", add=[await lab.sid("node-01")],
                                                     definition="//node[@class='display']"))


async def update_nodes_counts_found(lab: Lab) -> Any:
    await create_tag(lab, "gpu")
    return await answer(lab.session.Tag.update_nodes(name="gpu", add=[await lab.sid("node-01"), "nosuch"]))


async def list_hostnames(lab: Lab, **filters: Any) -> Any:
    status, body = await answer(lab.session.Machines.read(**filters))
    return (status, sorted(m["hostname"] for m in body)) if status == 200 else (status, body)


async def deploy_ready(lab: Lab) -> Any:
    status, body = await deploy(lab, "node-01")
    return status, body["status_name"], body["owner"]


CASES = [
    # Commissioning: only from New, Failed commissioning, Ready or Broken.
    Case("commission from Failed testing is refused",
         "node_action.py Commission.actionable_statuses; forms/ephemeral.py TestForm.clean; "
         "exceptions.py MAASAPIValidationError", lambda lab: commission(lab, "node-03"), (400, NOT_AVAILABLE)),
    Case("commission from Deployed is refused",
         "node_action.py Commission.actionable_statuses; forms/ephemeral.py TestForm.clean",
         lambda lab: commission(lab, "node-05"), (400, NOT_AVAILABLE)),
    Case("commission from Failed commissioning starts commissioning",
         "node_action.py Commission.actionable_statuses", lambda lab: commission(lab, "node-06"),
         (200, "Commissioning")),
    Case("commission from Ready starts commissioning", "node_action.py Commission.actionable_statuses",
         lambda lab: commission(lab, "node-01"), (200, "Commissioning")),
    Case("abort of commissioning returns the machine to New",
         "models/node.py Node.abort_commissioning, Node._abort_commissioning_async", abort_commissioning, "New"),
    # Testing.
    Case("tests passed from Broken return the machine to Ready",
         "node_action.py Test.actionable_statuses; node_status.py NODE_TESTING_RESET_READY_TRANSITIONS; "
         "metadataserver/api.py _process_testing (src/)", retest_from_broken, "Ready"),
    Case("tests passed from Failed testing return the machine to Ready",
         "node_action.py Test.actionable_statuses; node_status.py NODE_TESTING_RESET_READY_TRANSITIONS",
         retest_from_failed_testing, "Ready"),
    Case("override_failed_testing: Failed testing to Ready; refused elsewhere with 409",
         "api/nodes.py NodeHandler.override_failed_testing; models/node.py Node.override_failed_testing",
         override_failed_testing,
         ((200, "Ready"), (409, "Unable to override node status. Node is not in 'Failed testing' status."))),
    # Deploying.
    Case("deploy from Failed deployment is refused",
         "api/machines.py MachineHandler.deploy; node_status.py NODE_TRANSITIONS",
         lambda lab: deploy(lab, "node-04"), (409, "Can't deploy a machine that is in the 'Failed deployment' state")),
    Case("deploy from Deployed is refused", "api/machines.py MachineHandler.deploy; node_status.py NODE_TRANSITIONS",
         lambda lab: deploy(lab, "node-05"), (409, "Can't deploy a machine that is in the 'Deployed' state")),
    Case("deploy of a Ready machine allocates it to the caller", "api/machines.py MachineHandler.deploy",
         deploy_ready, (200, "Deploying", "admin")),
    Case("deploy with a kernel the series does not have is refused",
         "forms/__init__.py MachineForm.clean; utils/osystems.py get_working_kernel",
         lambda lab: deploy_kernel(lab, "hwe-24.04"),
         (400, {"hwe_kernel": ["hwe-24.04 is not available for ubuntu/jammy on amd64/generic."]})),
    Case("deploy with an available kernel uses it", "utils/osystems.py get_working_kernel",
         lambda lab: deploy_kernel(lab, "hwe-22.04"), (200, "hwe-22.04")),
    Case("deploy options enable_hw_sync and ephemeral_deploy are recorded (install_kvm accepted)",
         "api/machines.py get_allocation_options, MachineHandler.deploy (form.set_ephemeral_deploy, "
         "set_enable_hw_sync); api/machines.py DISPLAYED_MACHINE_FIELDS", deploy_options, (True, False, True)),
    Case("power_on of a machine nobody owns is refused", "api/nodes.py PowerMixin.power_on",
         lambda lab: machine_op(lab, "node-01", "power_on"), (409, "Can't start node: it hasn't been allocated.")),
    # Allocation.
    Case("allocate picks the cheapest match (cpu_count + memory/1024)",
         "node_constraint_filter_forms.py AcquireNodeForm.reorder_nodes_by_cost", allocate_cheapest, "node-02"),
    Case("allocate with an unknown constraint is refused", "node_constraint_filter_forms.py FilterNodeForm.clean",
         lambda lab: allocate(lab, foo="bar"), (400, {"foo": ["No such constraint."]})),
    Case("allocate with an unknown architecture is refused",
         "node_constraint_filter_forms.py FilterNodeForm.clean_arch",
         lambda lab: allocate(lab, arch="sparc"), (400, {"arch": ["Architecture not recognised."]})),
    Case("allocate evaluates not_arch", "node_constraint_filter_forms.py FilterNodeForm.NODE_EXCLUDES",
         lambda lab: allocate(lab, not_arch="amd64/generic"),
         nothing_matches("[('not_arch', ['amd64/generic'])]", "not_arch=amd64/generic")),
    Case("allocate evaluates cpu_speed (at least, in MHz)", "node_constraint_filter_forms.py FilterNodeForm.cpu_speed",
         allocate_by_speed, ((200, "node-02"), nothing_matches("[('cpu_speed', ['3000'])]", "cpu_speed=3000.0"))),
    Case("allocate with an unknown owner is refused", "node_constraint_filter_forms.py FilterNodeForm.clean_owner",
         lambda lab: allocate(lab, owner="nobody"), (400, {"owner": ["No such owner: 'nobody'."]})),
    Case("allocate evaluates owner (available machines have none)",
         "node_constraint_filter_forms.py FilterNodeForm.NODE_FILTERS",
         lambda lab: allocate(lab, owner="admin"), nothing_matches("[('owner', ['admin'])]", "owner=admin")),
    Case("allocate evaluates power_state", "node_constraint_filter_forms.py FilterNodeForm.power_state",
         lambda lab: allocate(lab, power_state="on"), nothing_matches("[('power_state', ['on'])]", "power_state=on")),
    Case("allocate evaluates vlans (unknown specifier refused)",
         "node_constraint_filter_forms.py FilterNodeForm.clean_vlans, _clean_specifiers",
         allocate_by_vlan, ((400, {"vlans": ["No matching VLANs found."]}), (200, "node-02"))),
    Case("allocate refuses not_system_id (in NODE_EXCLUDES but not a field of AcquireNodeForm)",
         "node_constraint_filter_forms.py FilterNodeForm.clean, AcquireNodeForm",
         allocate_excluding_id, (400, {"not_system_id": ["No such constraint."]})),
    Case("allocate refuses python-libmaas's not_zones (sent as not_in_zones)",
         "node_constraint_filter_forms.py FilterNodeForm.clean (the field is not_in_zone)",
         allocate_libmaas_not_zones, (400, {"not_in_zones": ["No such constraint."]})),
    Case("allocate does not check not_tags names", "node_constraint_filter_forms.py FilterNodeForm.not_tags",
         lambda lab: allocate(lab, not_tags="nosuch"), (200, "node-02")),
    Case("allocate with an unknown tag is refused", "node_constraint_filter_forms.py FilterNodeForm.clean_tags",
         lambda lab: allocate(lab, tags="nosuch"), (400, {"tags": ["No such tag(s): 'nosuch'."]})),
    Case("allocate with a non-numeric cpu_count is refused",
         "node_constraint_filter_forms.py FilterNodeForm.cpu_count",
         lambda lab: allocate(lab, cpu_count="many"), (400, {"cpu_count": ["Invalid CPU count: number required."]})),
    Case("a failed allocate's 409 names the request and the cleaned constraints",
         "api/machines.py MachinesHandler.allocate; node_constraint_filter_forms.py describe_constraints",
         lambda lab: allocate(lab, cpu_count="1000"), nothing_matches("[('cpu_count', ['1000'])]",
                                                                        "cpu_count=1000.0")),
    Case("a failed allocate by system_id says which", "api/machines.py MachinesHandler.allocate",
         allocate_unavailable_id, (409, "No machine with system ID {node-03} available.")),
    # Listing.
    Case("machines list with an unknown filter is refused",
         "node_constraint_filter_forms.py ReadNodesForm, FilterNodeForm.clean; api/nodes.py NodesHandler.read",
         lambda lab: list_hostnames(lab, hostnme="node-01"), (400, {"hostnme": ["No such constraint."]})),
    Case("machines list with an unknown tag is refused", "node_constraint_filter_forms.py FilterNodeForm.clean_tags",
         lambda lab: list_hostnames(lab, tags="nosuch"), (400, {"tags": ["No such tag(s): 'nosuch'."]})),
    Case("machines list with an unknown status is refused",
         "node_constraint_filter_forms.py ReadNodesForm.status; forms/__init__.py ConstrainedMultipleChoiceField",
         lambda lab: list_hostnames(lab, status="sleeping"),
         (400, {"status": ["Select a valid choice. sleeping is not one of the available choices."]})),
    Case("machines list filters by status and excludes by not_status", "node_constraint_filter_forms.py READ_CONDs",
         lambda lab: list_hostnames(lab, status="ready", not_hostname="node-07"), (200, ["node-01", "node-02"])),
    # Release, abort, broken, fixed, lock, annotations.
    Case("release of a Ready machine is a no-op success", "api/machines.py MachineHandler.release",
         lambda lab: release(lab, "node-01"), (200, "Ready")),
    Case("release where MAAS cannot is refused", "api/machines.py MachineHandler.release; "
         "models/node.py RELEASABLE_STATUSES", lambda lab: release(lab, "node-06"),
         (409, "Machine cannot be released in its current state ('Failed commissioning').")),
    Case("abort with nothing to abort is refused", "models/node.py Node.abort_operation",
         abort_ready, ((409, "Cannot abort in current state: node {node-01} is in state Ready."), "{node-01}")),
    Case("mark_broken of a machine the caller does not own is forbidden",
         "api/machines.py MachineHandler.mark_broken", lambda lab: machine_op(lab, "node-01", "mark_broken"),
         (403, "")),
    Case("mark_broken of an owned machine releases it", "models/node.py Node.mark_broken", mark_broken_owned,
         (200, "Broken", None)),
    Case("mark_fixed of a machine that is not broken is refused", "models/node.py Node.mark_fixed",
         lambda lab: machine_op(lab, "node-01", "mark_fixed"), (409, "Can't mark a non-broken node as 'Ready'.")),
    Case("lock of a machine not deployed is refused", "models/node.py Node.lock",
         lambda lab: machine_op(lab, "node-01", "lock"), (409, "Can't lock, node is not deployed or deploying")),
    Case("unlock of a machine not locked is refused", "api/machines.py MachineHandler.unlock",
         lambda lab: machine_op(lab, "node-05", "unlock"), (409, "Machine is not locked")),
    Case("workload annotations on a machine not acquired are refused",
         "api/nodes.py NodeHandler.set_workload_annotations",
         lambda lab: machine_op(lab, "node-01", "set_owner_data", juju="x"),
         (409, "Cannot set workload annotation: it hasn't been acquired.")),
    # Tags.
    Case("a tag name outside [a-zA-Z0-9_-] is refused", "models/tag.py Tag._tag_name_regex (RegexValidator)",
         lambda lab: create_tag(lab, "gpü"), (400, {"name": ["Enter a valid value."]})),
    Case("a duplicate tag is refused", "models/tag.py Tag.name (unique)", duplicate_tag,
         (400, {"name": ["Tag with this Name already exists."]})),
    Case("update_nodes with another definition is refused", "api/tags.py TagHandler.update_nodes",
         update_nodes_other_definition,
         (409, "Definition supplied '//node[@class='display']' doesn't match current definition ''")),
    Case("update_nodes counts the machines found", "api/tags.py TagHandler.update_nodes, _get_nodes_for",
         update_nodes_counts_found, (200, {"added": 1, "removed": 0})),
]


async def _resolve(lab: Lab, expected: Any) -> Any:
    """Expected values may name a machine's system_id as {hostname}."""
    if isinstance(expected, str) and "{" in expected:
        for host in [f"node-0{i}" for i in range(1, 8)]:
            expected = expected.replace("{" + host + "}", await lab.sid(host))
        return expected
    if isinstance(expected, tuple):
        return tuple([await _resolve(lab, e) for e in expected])
    return expected


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_lab_answers_as_maas_3_4_does(case: Case) -> None:
    async def scenario(maas: MaasEmulator) -> None:
        _profile, session = await SessionAPI.connect(maas.url, apikey=maas.api_key)
        client = await connect(maas.url, apikey=maas.api_key)
        lab = Lab(maas, session, client)
        got = await case.run(lab)
        assert got == await _resolve(lab, case.expect), f"{REPO}@{TAG} {SRC}{case.source}"

    with run_maas(fidelity_spec()) as maas:
        asyncio.run(scenario(maas))


def test_every_case_cites_its_source() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    for c in CASES:
        assert c.source and (".py" in c.source), c.id
