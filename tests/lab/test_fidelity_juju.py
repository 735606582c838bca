"""Fidelity of the Juju emulator: table-driven checks, each following what Juju 3.6 does (the
source cited per case) and run through unmodified python-libjuju against the emulated
controller on the MAAS emulator.

Sources: github.com/juju/juju (3.6 line; the paths below; where the search index held another
revision of a file, the fact checked is one the 3.6 code keeps) and
github.com/juju/python-libjuju (issue #958). docs/lab.md, "Fidelity / Juju", lists the cases.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from juju.client import client as juju_client
from juju.errors import JujuAPIError, JujuError
from juju.model import Model

from botlab.lab.juju import JujuEmulator
from botlab.lab.juju.charmhub import CharmhubEmulator, run_charmhub
from botlab.lab.juju.maas_provider import MaasClient
from botlab.lab.maas import MaasEmulator, run_maas
from botlab.lab.spec import LabSpec, Timings, generate_spec
from tests.lab.conftest import eventually, run, wait_until_ready
from tests.support.libjuju import fresh_model

pytestmark = pytest.mark.lab

TIMINGS = Timings(commissioning_s=0.1, testing_s=0.1, deploy_s=0.25, release_s=0.05, jitter=0.0, seed=7)
WAIT = 20.0
RETRIES = 2  # juju.provisioner_retries in this lab (Juju: 10)
RETRY_S = 0.3  # juju.provisioner_retry_s in this lab (Juju: 10s); Go prints it as "300ms"
JUJU = "juju/juju@juju-3.6.1"


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[LabSpec, MaasEmulator]]:
    spec = dataclasses.replace(
        generate_spec(5, 1, unenlisted=0, timings=TIMINGS),
        extra={"juju": {"destroy_s": 0.05, "provisioner_retries": RETRIES, "provisioner_retry_s": RETRY_S}})
    with run_maas(spec) as maas:
        yield spec, maas


@pytest.fixture(scope="module")
def charmhub() -> Iterator[CharmhubEmulator]:
    with run_charmhub() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def clean_lab(juju: JujuEmulator, lab: tuple[LabSpec, MaasEmulator], juju_data_dir: Path,
              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUJU_DATA", str(juju_data_dir))
    juju.clear_faults()
    lab[1].clear_faults()
    wait_until_ready(lab[1], WAIT)


@dataclass
class World:
    model: Model
    maas: MaasEmulator
    juju: JujuEmulator


@asynccontextmanager
async def world(name: str, lab: tuple[LabSpec, MaasEmulator], juju: JujuEmulator,
                charmhub: CharmhubEmulator) -> AsyncIterator[World]:
    async with fresh_model(name, WAIT, config={"charmhub-url": charmhub.url}) as (_controller, model):
        yield World(model, lab[1], juju)


async def api_error(work: Awaitable[Any]) -> JujuAPIError:
    try:
        await work
    except JujuAPIError as exc:
        return exc
    raise AssertionError("Juju accepted the call")


def machine_manager(model: Model) -> Any:
    return juju_client.MachineManagerFacade.from_connection(model.connection())


async def add_placed_machine(model: Model, hostname: str) -> str:
    """MachineManager.AddMachines placed on a MAAS node by name (what botlab's hosts get)."""
    result = await machine_manager(model).AddMachines(params=[juju_client.AddMachineParams(
        placement=juju_client.Placement(scope=model.info.uuid, directive=hostname), jobs=["JobHostUnits"],
        base=juju_client.Base(name="ubuntu", channel="24.04"))])
    assert not result.machines[0].error, result.machines[0].error
    return str(result.machines[0].machine)


async def hold_node(maas: MaasEmulator, hostname: str) -> str:
    """Someone else allocates `hostname` in MAAS, so Juju's allocate gets MAAS's 409."""
    async with MaasClient(maas.url, maas.api_key) as client:
        node = await client.allocate([("name", hostname)])
    return str(node["system_id"])


async def free_node(maas: MaasEmulator, system_id: str) -> None:
    async with MaasClient(maas.url, maas.api_key) as client:
        await client.release(system_id, comment="held by a fidelity test")


# --- the cases ---------------------------------------------------------------------------------


async def machine_delta_has_base_no_series(w: World) -> None:
    mid = await add_placed_machine(w.model, "node-01")
    machine = await eventually(lambda: w.model.machines.get(mid), WAIT, "the machine delta")
    assert machine.safe_data["base"] == "ubuntu@24.04"
    assert "series" not in machine.safe_data
    with pytest.raises(KeyError):
        _ = machine.series  # libjuju reads safe_data["series"]: python-libjuju#958


async def unit_delta_has_base_no_series(w: World) -> None:
    await w.model.deploy("botlab-test", num_units=0)
    facade = juju_client.ApplicationFacade.from_connection(w.model.connection())
    await facade.AddUnits(application="botlab-test", num_units=1, placement=[], attach_storage=[])
    unit = await eventually(lambda: w.model.units.get("botlab-test/0"), WAIT, "the unit delta")
    assert unit.safe_data["base"].startswith("ubuntu@") and "series" not in unit.safe_data


async def add_units_failed_placement_leaves_the_unit(w: World) -> None:
    await w.model.deploy("botlab-test", num_units=0)
    facade = juju_client.ApplicationFacade.from_connection(w.model.connection())
    exc = await api_error(facade.AddUnits(application="botlab-test", num_units=1,
                                          placement=[juju_client.Placement(scope="#", directive="42")],
                                          attach_storage=[]))
    assert exc.message == 'acquiring machine to host unit "botlab-test/0": machine 42 not found'
    assert exc.error_code == "not found"
    unit = await eventually(lambda: w.model.units.get("botlab-test/0"), WAIT, "the unassigned unit")
    assert unit.safe_data["machine-id"] == ""  # added, never assigned
    status = await w.model.get_status()
    assert "botlab-test/0" in status.applications["botlab-test"].units


async def failed_start_is_retried_with_junos_message(w: World) -> None:
    held = await hold_node(w.maas, "node-02")
    try:
        mid = await add_placed_machine(w.model, "node-02")
        pattern = (rf"failed to start machine {mid} \(failed to acquire node: No available machine matches "
                   rf"constraints: .*\), retrying in 300ms \({RETRIES} more attempts\)")
        machine = await eventually(lambda: w.model.machines.get(mid), WAIT, "the machine")
        await eventually(lambda: re.fullmatch(pattern, machine.safe_data["instance-status"]["message"]), WAIT,
                         "the first retry message")
        assert machine.safe_data["instance-status"]["current"] == "provisioning"
        await eventually(lambda: machine.safe_data["instance-status"]["current"] == "provisioning error", WAIT,
                         "Juju giving up")
        message = machine.safe_data["instance-status"]["message"]
        assert message.startswith("failed to acquire node: No available machine matches constraints")
        retries = [e for e in w.juju.events() if e["kind"] == "machine-start-retry" and e["machine"] == mid]
        assert [e["attempts_left"] for e in retries] == list(range(RETRIES - 1, -1, -1))
    finally:
        await free_node(w.maas, held)


async def a_start_that_succeeds_on_a_retry_converges(w: World) -> None:
    held = await hold_node(w.maas, "node-03")
    try:
        mid = await add_placed_machine(w.model, "node-03")
        machine = await eventually(lambda: w.model.machines.get(mid), WAIT, "the machine")
        await eventually(lambda: machine.safe_data["instance-status"]["current"] == "provisioning", WAIT,
                         "a retry")
    finally:
        await free_node(w.maas, held)
    await eventually(lambda: machine.safe_data["agent-status"]["current"] == "started", WAIT, "the machine start")
    assert machine.safe_data["display-name"] == "node-03"


async def relate_unknown_endpoint(w: World) -> None:
    await w.model.deploy("botlab-test", num_units=0)
    await w.model.deploy("etcd", channel="1.31/stable", num_units=0)
    exc = await api_error(w.model.integrate("botlab-test:nope", "etcd"))
    assert exc.message == 'application "botlab-test" has no "nope" relation'
    assert exc.error_code == ""


async def relate_existing_relation(w: World) -> None:
    await w.model.deploy("botlab-test", num_units=0)
    await w.model.deploy("etcd", channel="1.31/stable", num_units=0)
    await w.model.integrate("botlab-test:db", "etcd:db")
    exc = await api_error(w.model.integrate("botlab-test:db", "etcd:db"))
    key = "botlab-test:db etcd:db"
    assert exc.message == f'cannot add relation "{key}": relation {key} already exists'
    assert exc.error_code == "already exists"


async def undefined_action(w: World) -> None:
    await w.model.deploy("botlab-test", num_units=0)
    facade = juju_client.ActionFacade.from_connection(w.model.connection())
    facade_app = juju_client.ApplicationFacade.from_connection(w.model.connection())
    await facade_app.AddUnits(application="botlab-test", num_units=1, placement=[], attach_storage=[])
    got = await facade.EnqueueOperation(actions=[juju_client.Action(receiver="unit-botlab-test-0", name="nope",
                                                                      parameters={})])
    error = got.actions[0].error
    assert error.message == 'action "nope" not defined on unit "botlab-test/0"' and error.code == ""


async def annotations_of_a_missing_machine(w: World) -> None:
    # libjuju raises JujuError with the results' messages for a bulk answer holding errors
    facade = juju_client.AnnotationsFacade.from_connection(w.model.connection())
    with pytest.raises(JujuError) as caught:
        await facade.Set(annotations=[juju_client.EntityAnnotations(entity="machine-99", annotations={"a": "b"})])
    assert caught.value.args[0] == ['while setting annotations to "machine-99": permission denied']
    read = await facade.Get(entities=[{"tag": "machine-99"}])
    error = read.results[0].error.error
    assert (error.message, error.code) == ('while getting annotations to "machine-99": permission denied',
                                           "unauthorized access")


async def failed_allocate_as_juju_reports_it(w: World) -> None:
    result = await machine_manager(w.model).AddMachines(params=[juju_client.AddMachineParams(
        constraints=juju_client.Value(cores=1000), jobs=["JobHostUnits"])])
    mid = str(result.machines[0].machine)
    machine = await eventually(lambda: w.model.machines.get(mid), WAIT, "the machine")
    await eventually(lambda: machine.safe_data["instance-status"]["current"] == "provisioning error", WAIT,
                     "Juju giving up")
    assert re.fullmatch(r"failed to acquire node: No available machine matches constraints: .*cpu_count.*",
                        machine.safe_data["instance-status"]["message"])
    assert machine.safe_data["agent-status"]["current"] == "pending"


async def unknown_user_login(w: World) -> None:
    from juju.controller import Controller

    controller = Controller()
    with pytest.raises(JujuError, match=r"invalid entity name or password"):
        await controller.connect(endpoint=w.juju.endpoint, username="nobody", password="nope",
                                 cacert=w.juju.certs.ca_cert, retries=0)
    await controller.disconnect()


async def add_units_to_unknown_application(w: World) -> None:
    facade = juju_client.ApplicationFacade.from_connection(w.model.connection())
    exc = await api_error(facade.AddUnits(application="nope", num_units=1, placement=[], attach_storage=[]))
    assert (exc.message, exc.error_code) == ('application "nope" not found', "not found")


async def destroy_unknown_unit(w: World) -> None:
    await w.model.deploy("botlab-test", num_units=0)
    facade = juju_client.ApplicationFacade.from_connection(w.model.connection())
    with pytest.raises(JujuError) as caught:
        await facade.DestroyUnit(units=[{"unit-tag": "unit-botlab-test-9", "destroy-storage": False,
                                         "force": False, "dry-run": False}])
    assert caught.value.args[0] == ['unit "botlab-test/9" not found']


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # repository@tag:path (what the check follows)
    check: Callable[[World], Awaitable[None]]
    agreed_before: bool  # whether the emulator agreed before issue 13's fixes


CASES = [
    Case("machine-delta-base-no-series", f"{JUJU}:apiserver/params/multiwatcher.go (MachineInfo); "
         "juju/python-libjuju#958", machine_delta_has_base_no_series, False),
    Case("unit-delta-base-no-series", f"{JUJU}:apiserver/params/multiwatcher.go (UnitInfo)",
         unit_delta_has_base_no_series, False),
    Case("add-units-failed-placement", f"{JUJU}:apiserver/facades/client/application/application.go "
         "(addUnits: AddUnit, then AssignWithPlacement; 'acquiring machine to host unit')",
         add_units_failed_placement_leaves_the_unit, False),
    Case("provisioner-retries-a-failed-start", f"{JUJU}:worker/provisioner/provisioner_task.go "
         "(doStartMachine retry loop), worker/provisioner/provisioner.go (retryStrategyCount 10, "
         "retryStrategyDelay 10s), provider/maas/environ.go ('failed to acquire node')",
         failed_start_is_retried_with_junos_message, False),
    Case("provisioner-retry-then-start", f"{JUJU}:worker/provisioner/provisioner_task.go",
         a_start_that_succeeds_on_a_retry_converges, False),
    Case("relate-unknown-endpoint", f"{JUJU}:state/application.go (Application.Endpoint: errors.Errorf)",
         relate_unknown_endpoint, False),
    Case("relate-existing-relation", f"{JUJU}:state/relation.go / state/state.go (AddRelation: "
         "AlreadyExistsf under 'cannot add relation %q')", relate_existing_relation, False),
    Case("undefined-action", f"{JUJU}:state/unit.go (prepareActionPayload: errors.Errorf)",
         undefined_action, False),
    Case("annotations-missing-machine", f"{JUJU}:apiserver/facades/client/annotations/client.go "
         "(findEntity: NotFound -> ErrPerm; annotateError)", annotations_of_a_missing_machine, False),
    Case("failed-allocate-409", f"{JUJU}:provider/maas/environ.go (StartInstance: 'failed to acquire node'), "
         "worker/provisioner/provisioner_task.go (setErrorStatus: ProvisioningError)",
         failed_allocate_as_juju_reports_it, True),
    Case("login-unknown-user", f"{JUJU}:apiserver/errors/errors.go (ErrBadCreds, CodeUnauthorized)",
         unknown_user_login, True),
    Case("add-units-unknown-application", f"{JUJU}:state/application.go (errors.NotFoundf('application %q'))",
         add_units_to_unknown_application, True),
    Case("destroy-unknown-unit", f"{JUJU}:state/unit.go via apiserver/facades/client/application "
         "(DestroyUnit: NotFoundf('unit %q'))", destroy_unknown_unit, True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_juju_fidelity(case: Case, lab: tuple[LabSpec, MaasEmulator], juju: JujuEmulator,
                       charmhub: CharmhubEmulator) -> None:
    async def scenario() -> None:
        async with world(f"fid-{case.name[:20].rstrip('-')}", lab, juju, charmhub) as w:
            await case.check(w)

    run(scenario)
