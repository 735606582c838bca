"""Applications, charms, units, relations, config, annotations, expose, actions, resources and
bundle deploys in the emulated Juju controller, driven by unmodified python-libjuju against the
MAAS emulator (units land on machines Juju's MAAS provider deploys) and the lab's Charmhub
emulator (what libjuju asks Charmhub itself)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from juju.application import ExposedEndpoint
from juju.client import client as juju_client
from juju.errors import JujuAPIError, JujuError, JujuUnitError
from juju.model import Model
from maas.client import connect as maas_connect

from botlab.lab.juju import JujuEmulator, catalogue, units
from botlab.lab.juju.charmhub import CharmhubEmulator, run_charmhub
from botlab.lab.maas import MaasEmulator, run_maas
from botlab.lab.spec import LabSpec, Timings, generate_spec
from tests.lab.conftest import control_call, eventually, run, wait_for, wait_until_ready
from tests.support.libjuju import fresh_model

pytestmark = pytest.mark.lab

TIMINGS = Timings(commissioning_s=0.1, testing_s=0.1, deploy_s=0.25, release_s=0.05, jitter=0.1, seed=5)
WAIT = 20.0  # deadline for any condition; the steps themselves take tenths of a second
IDLE = 0.3  # wait_for_idle's idle_period: many times the lab's hook time


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[LabSpec, MaasEmulator]]:
    """Six Ready nodes: node-01..04 without GPUs, node-05/06 with 8 GPUs each."""
    spec = dataclasses.replace(generate_spec(6, 2, unenlisted=0, timings=TIMINGS), extra={"juju": {"destroy_s": 0.05}})
    with run_maas(spec) as maas:
        yield spec, maas


@pytest.fixture(scope="module")
def charmhub() -> Iterator[CharmhubEmulator]:
    with run_charmhub() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def clean_lab(juju: JujuEmulator, lab: tuple[LabSpec, MaasEmulator], juju_data_dir: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with every MAAS node Ready (the previous test's model released them)
    and no faults."""
    maas = lab[1]
    monkeypatch.setenv("JUJU_DATA", str(juju_data_dir))
    juju.clear_faults()
    units.clear_unit_faults(juju)
    wait_until_ready(maas, WAIT)
    yield
    units.clear_unit_faults(juju)


async def until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll `condition` until it is true; fail naming `what` once `timeout` passes."""
    return await eventually(condition, timeout, what)


@asynccontextmanager
async def lab_model(name: str, charmhub: CharmhubEmulator, **config: str) -> AsyncIterator[Model]:
    """A fresh model whose charmhub-url is the lab's Charmhub; destroyed afterwards (its
    applications removed, its machines released in MAAS)."""
    async with fresh_model(name, WAIT, config={"charmhub-url": charmhub.url, **config}) as (_controller, model):
        yield model


async def finished(model: Model, action: Any) -> Any:
    """`action.wait()`, once the AllWatcher says it ended (wait() itself polls every second)."""

    def status() -> str:
        history = model.state.state.get("action", {}).get(action.entity_id)
        return str(history[-1].get("status")) if history and history[-1] else ""

    await model.block_until(lambda: status() in ("completed", "failed"), timeout=WAIT)
    return await action.wait()


def hook_failures(juju: JujuEmulator, model: str) -> list[dict[str, Any]]:
    return [e for e in juju.events() if e["kind"] == "unit-hook-failed" and e.get("model") == model]


def set_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, {}) and k != "unknown_fields"}


def workload(model: Model, unit: str) -> tuple[str, str]:
    found = model.units.get(unit)
    return (found.workload_status, found.workload_status_message) if found else ("", "")


# --- deploying from Charmhub -------------------------------------------------------------------


def test_deploy_from_charmhub_settles_units_on_maas_machines(
    juju: JujuEmulator, charmhub: CharmhubEmulator, lab: tuple[LabSpec, MaasEmulator]
) -> None:
    async def scenario() -> None:
        async with lab_model("ch-deploy", charmhub) as model:
            etcd = await model.deploy("etcd", channel="1.31/stable", config={"channel": "3.4/stable"})
            assert etcd.name == "etcd" and etcd.charm_name == "etcd"
            # Without a certificate authority etcd blocks, as the charm does.
            await model.block_until(lambda: workload(model, "etcd/0")[0] == "blocked", timeout=WAIT)
            assert workload(model, "etcd/0") == ("blocked", "Missing relation to certificate authority.")

            await model.deploy("easyrsa", channel="1.31/stable", base="ubuntu@22.04")
            await model.integrate("etcd:certificates", "easyrsa:client")
            await model.wait_for_idle(status="active", timeout=WAIT, idle_period=IDLE)
            assert workload(model, "etcd/0") == ("active", "Healthy with 1 known peer")
            assert workload(model, "easyrsa/0") == ("active", "Certificate Authority connected.")

            await etcd.add_unit(count=1)
            await model.wait_for_idle(["etcd"], status="active", timeout=WAIT, idle_period=IDLE,
                                      wait_for_exact_units=2)
            assert sorted(u.name for u in etcd.units) == ["etcd/0", "etcd/1"]
            await model.block_until(lambda: workload(model, "etcd/0")[1] == "Healthy with 2 known peers",
                                    timeout=WAIT)

            status = await model.get_status()
            app = status.applications["etcd"]
            assert (app.charm_channel, app.charm_rev, app.status.status) == ("1.31/stable", 760, "active")
            assert app.charm == "ch:amd64/noble/etcd-760" and app.base.name == "ubuntu" and app.base.channel == "24.04"
            assert app.relations["certificates"] == ["easyrsa"] and app.relations["cluster"] == ["etcd"]
            leader = [n for n, u in app.units.items() if u.leader]
            assert leader == ["etcd/0"]
            unit0 = app.units["etcd/0"]
            assert unit0.machine in status.machines and unit0.agent_status.status == "idle"
            assert unit0.public_address == status.machines[unit0.machine].dns_name
            assert unit0.workload_version == "3.4.33"
            assert status.applications["easyrsa"].base.channel == "22.04"
            assert status.applications["easyrsa"].charm == "ch:amd64/jammy/easyrsa-60"
            keys = sorted(r.key for r in status.relations)
            assert keys == ["etcd:certificates easyrsa:client", "etcd:cluster"]
            assert (await etcd.get_config())["channel"]["value"] == "3.4/stable"

    run(scenario)
    asked = [r for r in charmhub.requests() if r["path"] == "/v2/charms/info/etcd"]
    assert asked and "subordinate" in asked[0]["query"]["fields"]
    calls = {e["method"] for e in juju.events() if e["kind"] == "rpc" and e.get("model") == "ch-deploy"}
    assert {"ResolveCharms", "AddCharm", "DeployFromRepository", "AddUnits", "AddRelation"} <= calls
    kinds = [e["kind"] for e in juju.events() if e.get("model") == "ch-deploy"]
    assert {"application-deployed", "unit-started", "relation-created", "units-added"} <= set(kinds)


# --- config, constraints, expose, annotations ---------------------------------------------------


def test_config_constraints_expose_and_annotations(juju: JujuEmulator, charmhub: CharmhubEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("cfg-apps", charmhub) as model:
            app = await model.deploy("botlab-test", config={"replicas": 3}, constraints={"cores": 2})
            await model.wait_for_idle(status="active", timeout=WAIT, idle_period=IDLE)
            assert workload(model, "botlab-test/0") == ("active", "ready")

            await app.set_config({"message": "hello", "ratio": "0.75", "enabled": "true"})
            config = await app.get_config()
            assert config["message"] == {"default": "ready", "description": "The active status message.",
                                         "source": "user", "type": "string", "value": "hello"}
            assert config["replicas"]["value"] == 3 and config["ratio"]["value"] == 0.75
            assert config["token"]["source"] == "unset" and "value" not in config["token"]
            await model.block_until(lambda: workload(model, "botlab-test/0") == ("active", "hello"), timeout=WAIT)
            with pytest.raises(JujuError, match='option "replicas" expected int, got "many"'):
                await app.set_config({"replicas": "many"})
            with pytest.raises(JujuError, match='unknown option "colour"'):
                await app.set_config({"colour": "red"})
            await app.set_config({"enabled": "false"})  # the charm blocks on it
            await model.block_until(lambda: workload(model, "botlab-test/0")[0] == "blocked", timeout=WAIT)
            await app.reset_config(["enabled", "message"])
            await model.block_until(lambda: workload(model, "botlab-test/0") == ("active", "ready"), timeout=WAIT)
            assert (await app.get_config())["message"]["source"] == "default"

            assert set_values(await app.get_constraints()) == {"cores": 2}
            await app.set_constraints({"mem": 4096, "tags": ["gpu"]})
            assert set_values(await app.get_constraints()) == {"mem": 4096, "tags": ["gpu"]}

            await app.expose({"website": ExposedEndpoint(to_cidrs=["10.0.0.0/8"])})
            await model.block_until(lambda: app.exposed, timeout=WAIT)
            status = await model.get_status()
            assert status.applications["botlab-test"].exposed
            assert status.applications["botlab-test"].exposed_endpoints["website"].expose_to_cidrs == ["10.0.0.0/8"]
            await app.unexpose()
            await model.block_until(lambda: not app.exposed, timeout=WAIT)

            await app.set_annotations({"botlab/role": "probe"})
            assert await app.get_annotations() == {"botlab/role": "probe"}
            unit = app.units[0]
            await unit.set_annotations({"botlab/slot": "1"})
            assert await unit.get_annotations() == {"botlab/slot": "1"}
            machine = model.machines[unit.machine.id]
            await machine.set_annotations({"botlab/rack": "r1"})
            assert await machine.get_annotations() == {"botlab/rack": "r1"}

            info = await app.get_actions()
            assert info == {"echo": "Return the message given.", "fail": "Fail with the message given."}
            resources = await app.get_resources()
            assert (resources["payload"].type_, resources["payload"].origin) == ("file", "store")

            # A second unit placed on the first one's machine (`to=`), as `juju add-unit --to 0`.
            [second] = await app.add_unit(to=unit.machine.id)
            await model.wait_for_idle(status="active", timeout=WAIT, idle_period=IDLE, wait_for_exact_units=2)
            assert second.machine.id == unit.machine.id and len(model.machines) == 1

    run(scenario)
    mutating = [(e["facade"], e["method"]) for e in juju.events()
                if e["kind"] == "rpc" and e.get("model") == "cfg-apps" and e["mutating"] and not e["error"]]
    assert {("Application", "SetConfigs"), ("Application", "Expose"), ("Application", "SetConstraints"),
            ("Annotations", "Set"), ("Application", "UnsetApplicationsConfig")} <= set(mutating)
    logged = {e["kind"] for e in juju.events() if e.get("model") == "cfg-apps"}
    assert {"application-config-set", "application-exposed", "application-unexposed",
            "application-constraints-set", "application-config-unset"} <= logged


# --- relations ---------------------------------------------------------------------------------


def test_relations_are_added_inferred_and_removed(juju: JujuEmulator, charmhub: CharmhubEmulator) -> None:
    async def scenario() -> None:
        async with lab_model("rels", charmhub) as model:
            probe = await model.deploy("botlab-test")
            etcd = await model.deploy("etcd", channel="1.31/stable")
            relation = await model.integrate("botlab-test", "etcd")  # inferred: botlab-test:db etcd:db
            assert relation.key == "botlab-test:db etcd:db"
            assert (relation.requires.application_name, relation.provides.application_name) == ("botlab-test",
                                                                                                    "etcd")
            assert relation.provides.interface == "etcd"
            with pytest.raises(JujuAPIError, match="no relations found"):
                await model.integrate("botlab-test:website", "etcd")
            with pytest.raises(JujuAPIError, match='application "nope" not found'):
                await model.integrate("nope", "etcd")
            with pytest.raises(JujuAPIError, match="already exists"):
                await model.integrate("botlab-test:db", "etcd:db")
            await model.wait_for_idle(["botlab-test"], status="active", timeout=WAIT, idle_period=IDLE)
            status = await model.get_status()
            assert status.applications["botlab-test"].relations == {"cluster": ["botlab-test"], "db": ["etcd"]}
            db = next(r for r in status.relations if r.key == "botlab-test:db etcd:db")
            assert (db.interface, db.scope, db.status.status) == ("etcd", "global", "joined")

            await probe.destroy_relation("db", "etcd:db", block_until_done=True)
            assert [r.key for r in model.relations if not r.is_peer] == []
            with pytest.raises(JujuAPIError, match="not found"):
                await probe.destroy_relation("db", "etcd:db")
            assert sorted(a for a in (await model.get_status()).applications) == ["botlab-test", "etcd"]
            assert etcd.relations[0].is_peer

    run(scenario)
    kinds = [e["kind"] for e in juju.events() if e.get("model") == "rels"]
    assert kinds.count("relation-created") == 1 and "relation-destroyed" in kinds


# --- actions -----------------------------------------------------------------------------------


def test_actions_run_on_units_and_get_kubeconfig_returns_a_kubeconfig(
    juju: JujuEmulator, charmhub: CharmhubEmulator
) -> None:
    async def scenario() -> None:
        async with lab_model("acts", charmhub) as model:
            cp = await model.deploy("kubernetes-control-plane", channel="1.31/stable")
            probe = await model.deploy("botlab-test")
            await model.wait_for_idle(timeout=WAIT, idle_period=IDLE)  # the control plane waits for relations
            assert workload(model, "kubernetes-control-plane/0") == ("blocked", "Missing required certificates "
                                                                                "relation")
            unit = cp.units[0]
            action = await finished(model, await unit.run_action("get-kubeconfig"))
            assert action.status == "completed"
            kubeconfig = json.loads(action.results["kubeconfig"])
            assert kubeconfig["kind"] == "Config" and kubeconfig["current-context"] == "juju-context"
            cluster = kubeconfig["clusters"][0]["cluster"]
            assert cluster["server"] == f"https://{unit.public_address}:6443"
            assert "BEGIN CERTIFICATE" in __import__("base64").b64decode(
                cluster["certificate-authority-data"]).decode()
            output = await model.get_action_output(action.entity_id)
            assert output["kubeconfig"] == action.results["kubeconfig"]

            echo = await finished(model, await probe.units[0].run_action("echo", message="hi"))
            assert (echo.status, echo.results) == ("completed", {"echo": "hi"})
            failed = await finished(model, await probe.units[0].run_action("fail", message="no"))
            assert failed.status == "failed"
            # Juju 3.6 answers an undefined action without the "not found" code libjuju looks for
            # (state/unit.go: errors.Errorf), so libjuju raises its "Unknown action error".
            with pytest.raises(Exception, match=r'action .*nope.* not defined on unit'):
                await probe.units[0].run_action("nope")

            facade = juju_client.ActionFacade.from_connection(model.connection())
            ops = await facade.ListOperations(actions=["get-kubeconfig"])
            assert [o.operation for o in ops.results] == ["operation-1"] and ops.results[0].status == "completed"
            assert ops.results[0].actions[0].action.tag == "action-2"

    run(scenario)
    done = [e for e in juju.events() if e["kind"] == "action-finished" and e.get("model") == "acts"]
    assert [(e["name"], e["status"]) for e in done] == [
        ("get-kubeconfig", "completed"), ("echo", "completed"), ("fail", "failed")
    ]


# --- faults ------------------------------------------------------------------------------------


def control(juju: JujuEmulator, method: str, path: str, body: Any = None) -> Any:
    """One call to the Juju emulator's loopback control API."""
    return control_call(juju.control_url + path, body, method, timeout=10)


def test_a_unit_hook_error_shows_in_full_status_and_is_resolved(
    juju: JujuEmulator, charmhub: CharmhubEmulator
) -> None:
    fault = units.inject_unit_fault(juju, {"kind": "error", "hook": "install", "application": "botlab-test",
                                           "count": "always"})
    assert fault["hook"] == "install" and fault["count"] is None

    async def scenario() -> None:
        async with lab_model("faulty", charmhub, **{"automatically-retry-hooks": "false"}) as model:
            app = await model.deploy("botlab-test")

            async def errored() -> bool:
                status = await model.get_status()
                unit = status.applications["botlab-test"].units.get("botlab-test/0")
                return bool(unit and unit.workload_status.status == "error")

            await wait_for(errored, bool, timeout=WAIT)  # the unit shows the hook error
            status = await model.get_status()
            unit_status = status.applications["botlab-test"].units["botlab-test/0"]
            assert unit_status.workload_status.info == 'hook failed: "install"'
            assert unit_status.agent_status.status == "idle"
            assert status.applications["botlab-test"].status.status == "error"
            with pytest.raises(JujuUnitError):
                await model.wait_for_idle(timeout=WAIT, idle_period=IDLE)

            unit = app.units[0]
            await unit.resolved(retry=True)  # the fault is still there: the hook fails again
            await until(lambda: len(hook_failures(juju, "faulty")) == 2, "the retried hook failing again")
            await model.block_until(lambda: workload(model, "botlab-test/0")[0] == "error", timeout=WAIT)
            assert units.clear_unit_faults(juju, application="botlab-test") == 1
            await unit.resolved(retry=True)
            await model.wait_for_idle(status="active", timeout=WAIT, idle_period=IDLE)
            with pytest.raises(JujuError, match="is not in an error state"):
                await unit.resolved()

            # A config-changed failure, and a blocked workload, injected at run time.
            units.inject_unit_fault(juju, {"kind": "error", "hook": "config-changed", "unit": "botlab-test/0"})
            await app.set_config({"message": "again"})
            await model.block_until(lambda: workload(model, "botlab-test/0") == ("error",
                                                                                  'hook failed: "config-changed"'),
                                    timeout=WAIT)
            await unit.resolved(retry=True)  # count 1: used up, the retry succeeds
            await model.block_until(lambda: workload(model, "botlab-test/0") == ("active", "again"), timeout=WAIT)
            # Through the control API, as a test driving a lab in another process does.
            control(juju, "POST", "unit-faults", {"kind": "blocked", "unit": "botlab-test/0",
                                                  "message": "no GPU driver"})
            await model.block_until(lambda: workload(model, "botlab-test/0") == ("blocked", "no GPU driver"),
                                    timeout=WAIT)
            assert control(juju, "GET", "unit-faults")["faults"][0]["message"] == "no GPU driver"
            assert control(juju, "DELETE", "unit-faults?unit=botlab-test/0") == {"cleared": 1}
            await model.block_until(lambda: workload(model, "botlab-test/0") == ("active", "again"), timeout=WAIT)

    run(scenario)
    kinds = [e["kind"] for e in juju.events() if e.get("model") == "faulty"]
    assert "unit-hook-failed" in kinds and "unit-resolved" in kinds


def test_a_failed_hook_is_retried_automatically_as_juju_does(juju: JujuEmulator, charmhub: CharmhubEmulator) -> None:
    units.inject_unit_fault(juju, {"kind": "error", "hook": "start", "application": "botlab-test", "count": 2})

    async def scenario() -> None:
        async with lab_model("retrying", charmhub) as model:
            await model.deploy("botlab-test")
            await model.wait_for_idle(status="active", timeout=WAIT, idle_period=IDLE, raise_on_error=False)

    run(scenario)
    retried = [e for e in juju.events() if e["kind"] == "unit-hook-retried" and e.get("model") == "retrying"]
    assert [(e["hook"], e["automatic"]) for e in retried] == [("start", True), ("start", True)]


# --- bundles -----------------------------------------------------------------------------------

CK_BUNDLE = """
description: A Charmed Kubernetes-like cluster on the lab's MAAS
default-base: ubuntu@22.04
machines:
  "0": {constraints: tags=control}
  "1": {constraints: tags=gpu}
  "2": {constraints: tags=gpu}
applications:
  kubernetes-control-plane:
    charm: kubernetes-control-plane
    channel: 1.31/stable
    num_units: 1
    to: ["0"]
    options: {channel: 1.31/stable}
    annotations: {gui-x: "800", gui-y: "850"}
  kubernetes-worker:
    charm: kubernetes-worker
    channel: 1.31/stable
    num_units: 2
    to: ["1", "2"]
    expose: true
    options: {channel: 1.31/stable}
  containerd:
    charm: containerd
    channel: 1.31/stable
    options: {gpu_driver: nvidia}
  etcd:
    charm: etcd
    channel: 1.31/stable
    num_units: 1
    to: ["lxd:0"]
    options: {channel: 3.4/stable}
  easyrsa:
    charm: easyrsa
    channel: 1.31/stable
    num_units: 1
    to: ["lxd:0"]
  kubeapi-load-balancer:
    charm: kubeapi-load-balancer
    channel: 1.31/stable
    num_units: 1
    to: ["lxd:0"]
    expose: true
  calico:
    charm: calico
    channel: 1.31/stable
    options: {vxlan: Always}
relations:
- [kubernetes-control-plane:loadbalancer-external, kubeapi-load-balancer:lb-consumers]
- [kubernetes-control-plane:loadbalancer-internal, kubeapi-load-balancer:lb-consumers]
- [kubernetes-control-plane:kube-control, kubernetes-worker:kube-control]
- [kubernetes-control-plane:certificates, easyrsa:client]
- [etcd:certificates, easyrsa:client]
- [kubernetes-control-plane:etcd, etcd:db]
- [kubernetes-worker:certificates, easyrsa:client]
- [kubeapi-load-balancer:certificates, easyrsa:client]
- [calico:etcd, etcd:db]
- [calico:cni, kubernetes-control-plane:cni]
- [calico:cni, kubernetes-worker:cni]
- [containerd:containerd, kubernetes-worker:container-runtime]
- [containerd:containerd, kubernetes-control-plane:container-runtime]
"""


async def tag_nodes(maas: MaasEmulator, tags: dict[str, list[str]]) -> None:
    """Tag MAAS nodes through the MAAS API, as an operator does before deploying."""
    client = await maas_connect(maas.url, apikey=maas.api_key)
    existing = {t.name for t in await client.tags.list()}
    for name, hostnames in tags.items():
        tag = await client.tags.get(name) if name in existing else await client.tags.create(name)
        for machine in await client.machines.list(hostnames=hostnames):
            if name not in [t.name for t in machine.tags]:
                await machine.tags.add(tag)


def test_a_charmed_kubernetes_bundle_deploys_settles_and_goes_with_its_model(
    juju: JujuEmulator, charmhub: CharmhubEmulator, lab: tuple[LabSpec, MaasEmulator], tmp_path: Path
) -> None:
    _spec, maas = lab
    bundle = tmp_path / "bundle.yaml"
    bundle.write_text(CK_BUNDLE)
    runtime_ready = {"value": False}

    def kubelet_probe(check: catalogue.HostCheck) -> bool:
        """The GPU hosts' container runtime is not ready until the test says so."""
        gpu_host = check.hostname in ("node-05", "node-06")
        return check.gate != "kubelet" or not gpu_host or runtime_ready["value"]

    catalogue.register_host_probe(kubelet_probe)

    async def scenario() -> None:
        await tag_nodes(maas, {"control": ["node-01"], "gpu": ["node-05", "node-06"]})
        async with lab_model("ck", charmhub) as model:
            deployed = await model.deploy(str(bundle))
            assert sorted(a.name for a in deployed) == sorted(yaml.safe_load(CK_BUNDLE)["applications"])
            # The workers settle everything but the kubelet, which waits for the host's runtime.
            await model.block_until(
                lambda: workload(model, "kubernetes-worker/0") == ("waiting", "Waiting for kubelet to start."),
                timeout=WAIT)
            runtime_ready["value"] = True
            units.recheck(juju)
            await model.wait_for_idle(status="active", timeout=WAIT, idle_period=IDLE)

            status = await model.get_status()
            assert {n: a.status.status for n, a in status.applications.items()} == dict.fromkeys(
                yaml.safe_load(CK_BUNDLE)["applications"], "active")
            hosts = {m.id_: m.hostname for m in status.machines.values()}
            assert hosts == {"0": "node-01", "1": "node-05", "2": "node-06"}
            assert sorted(status.machines["0"].containers) == ["0/lxd/0", "0/lxd/1", "0/lxd/2"]
            workers = status.applications["kubernetes-worker"]
            assert sorted(u.machine for u in workers.units.values()) == ["1", "2"]
            assert workers.exposed and status.applications["kubeapi-load-balancer"].exposed
            for unit in workers.units.values():
                assert sorted(s.split("/")[0] for s in unit.subordinates) == ["calico", "containerd"]
                assert unit.workload_status.info == "Ready"
            assert status.applications["containerd"].subordinate_to == ["kubernetes-control-plane",
                                                                         "kubernetes-worker"]
            assert status.applications["containerd"].units == {}
            assert status.applications["etcd"].units["etcd/0"].machine.startswith("0/lxd/")
            assert status.applications["etcd"].units["etcd/0"].workload_status.info == "Healthy with 1 known peer"
            assert len(status.relations) == 13 + 4  # the bundle's, and the peer relations Juju adds itself
            assert (await model.applications["containerd"].get_config())["gpu_driver"]["value"] == "nvidia"
            cp_app = model.applications["kubernetes-control-plane"]
            assert (await cp_app.get_annotations())["gui-x"] == "800"

            # get-kubeconfig goes through the load balancer, as in Charmed Kubernetes.
            action = await finished(model, await cp_app.units[0].run_action("get-kubeconfig"))
            server = json.loads(action.results["kubeconfig"])["clusters"][0]["cluster"]["server"]
            lb_unit = model.applications["kubeapi-load-balancer"].units[0]
            assert server == f"https://{lb_unit.public_address}:443"

            # What the controller computed for the bundle: Juju 3.6 keeps series next to base.
            facade = juju_client.BundleFacade.from_connection(model.connection())
            plan = await facade.GetChangesMapArgs(bundleurl="", yaml=CK_BUNDLE)
            machines = [c.args for c in plan.changes if c.method == "addMachines"]
            assert machines[0]["series"] == "jammy" and machines[0]["base"].startswith("ubuntu@22.04")

    try:
        run(scenario)
    finally:
        catalogue.unregister_host_probe(kubelet_probe)
    events = juju.events()
    rpc = [(e["facade"], e["method"]) for e in events if e["kind"] == "rpc" and e.get("model") == "ck"]
    assert {("Bundle", "GetChangesMapArgs"), ("Charms", "AddCharm"), ("Application", "Deploy"),
            ("MachineManager", "AddMachines"), ("Application", "AddUnits"), ("Application", "AddRelation"),
            ("Application", "Expose"), ("Annotations", "Set"), ("Resources", "AddPendingResources")} <= set(rpc)
    removed = [e["application"] for e in events if e["kind"] == "application-removed" and e.get("model") == "ck"]
    assert sorted(removed) == sorted(yaml.safe_load(CK_BUNDLE)["applications"])
    wait_until_ready(maas, WAIT)  # the model's machines go back to MAAS


# --- removing ----------------------------------------------------------------------------------


def test_destroying_units_moves_leadership_and_destroying_an_application_removes_it(
    juju: JujuEmulator, charmhub: CharmhubEmulator
) -> None:
    async def scenario() -> None:
        async with lab_model("gone", charmhub) as model:
            app = await model.deploy("botlab-test", num_units=2)
            other = await model.deploy("etcd", application_name="kv", channel="1.31/stable")
            await model.integrate("botlab-test:db", "kv:db")
            await model.wait_for_idle(["botlab-test"], status="active", timeout=WAIT, idle_period=IDLE,
                                      wait_for_exact_units=2)
            facade = juju_client.ApplicationFacade.from_connection(model.connection())
            assert (await facade.Leader(tag="application-botlab-test")).result == "botlab-test/0"

            await model.destroy_unit("botlab-test/0")
            await model.block_until(lambda: "botlab-test/0" not in model.units, timeout=WAIT)
            assert (await facade.Leader(tag="application-botlab-test")).result == "botlab-test/1"
            status = await model.get_status()
            assert [n for n, u in status.applications["botlab-test"].units.items() if u.leader] == ["botlab-test/1"]

            await app.destroy()
            await model.block_until(lambda: "botlab-test" not in model.applications, timeout=WAIT)
            assert [r.key for r in model.relations] == ["kv:cluster"]  # its relations went with it
            assert sorted((await model.get_status()).applications) == ["kv"]
            assert other.name == "kv" and other.charm_name == "etcd"
            with pytest.raises(JujuError, match='application "botlab-test" not found'):
                await facade.Get(application="botlab-test")

    run(scenario)
    kinds = [e["kind"] for e in juju.events() if e.get("model") == "gone"]
    assert "unit-leader-elected" in kinds and "application-removed" in kinds


# --- the pieces, without a controller ----------------------------------------------------------


def test_charm_config_options_coerce_as_juju_does() -> None:
    charm = catalogue.CATALOGUE["etcd"]
    port = charm.options["port"]
    assert (port.type, port.default) == ("int", 2379)
    assert port.parse("2380") == 2380 and port.parse("") is None
    with pytest.raises(catalogue.OptionError, match='option "port" expected int, got "x"'):
        port.parse("x")
    flag = charm.options["bind_to_all_interfaces"]
    assert flag.parse("false") is False and flag.parse("True") is True
    assert catalogue.CATALOGUE["containerd"].options["gpu_driver"].default == "auto"
    assert catalogue.CATALOGUE["kubernetes-worker"].options["channel"].type == "string"
    assert "get-kubeconfig" in catalogue.CATALOGUE["kubernetes-control-plane"].actions
    assert catalogue.CATALOGUE["containerd"].subordinate and not catalogue.CATALOGUE["etcd"].subordinate


def test_channels_resolve_and_bases_have_series() -> None:
    etcd = catalogue.CATALOGUE["etcd"]
    assert etcd.resolve("1.31/stable") == ("1.31/stable", 760)
    assert etcd.resolve("1.31/candidate") == ("1.31/candidate", 760)  # falls back to stable
    assert etcd.resolve(None) == ("latest/stable", etcd.channels["latest/stable"])
    with pytest.raises(KeyError, match=r'channel "1\.99/stable"'):
        etcd.resolve("1.99/stable")
    assert etcd.url(760, "amd64", "ubuntu@22.04") == "ch:amd64/jammy/etcd-760"
    assert catalogue.normalize_base("ubuntu@22.04/stable") == "ubuntu@22.04"
    assert catalogue.base_series("ubuntu@24.04") == "noble" and catalogue.normalize_base("focal") == "ubuntu@20.04"
    assert catalogue.charm_name("ch:amd64/jammy/kubernetes-worker-310") == "kubernetes-worker"


def test_bundle_changes_keep_the_series_a_juju_3_6_controller_sends() -> None:
    from botlab.lab.juju.bundlechanges import get_changes_map_args
    from botlab.lab.juju.charms import add_series

    changes, problems = get_changes_map_args(CK_BUNDLE)
    assert not any(problems)
    add_series(changes)
    for change in changes:
        if change["method"] in ("addCharm", "deploy", "addMachines"):
            assert change["args"]["series"] == "jammy", change
        else:
            assert "series" not in change["args"], change
