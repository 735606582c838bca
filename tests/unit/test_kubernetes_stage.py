"""The kubernetes stage's apply/verify/destroy logic against an in-memory fake of botlab's
own Juju driver interface (not of libjuju): resume without adding machines twice, the wait's
timeout and error messages, retrying failed hooks, conflicts, the kubeconfig and teardown.
The end-to-end proof against the emulators is tests/lab/test_kubernetes_stage.py."""

from __future__ import annotations

import asyncio
import json
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from botlab.context import RunContext, StageContext
from botlab.drivers.juju import (
    ActionResult,
    AddedMachine,
    JujuApplication,
    JujuMachine,
    JujuRelation,
    JujuUnit,
    MachineRequest,
    ModelStatus,
    constraint_values,
)
from botlab.drivers.maas import MaasMachine, MaasStatus
from botlab.errors import StageError
from botlab.inventory import load_inventory
from botlab.outputs import KubernetesOutputs
from botlab.report import SilentReporter
from botlab.stages.kubernetes import IDENTITY, KubernetesStage
from botlab.state import StateStore
from tests.support.inventory import BASE, write_inventory

SUBORDINATE_CHARMS = {"containerd", "calico", "flannel", "cilium"}
CLIENT_KEY = "ssh-ed25519 AAAAclient juju-client"  # JUJU_DATA's key, which a new model authorizes


class FakeJuju:
    """Botlab's Juju driver interface over an in-memory model. Units settle at once unless
    `stuck` (application -> (workload, message)) or `failing` (application -> message) says
    otherwise; subordinates appear on the principals they are related to."""

    def __init__(self) -> None:
        self.status_: ModelStatus | None = None
        self.name = ""
        self.calls: list[str] = []
        self.keys: list[str] = []
        self.config: dict[str, dict[str, Any]] = {}
        self.stuck: dict[str, tuple[str, str]] = {}
        self.failing: dict[str, str] = {}
        self.resolved: list[str] = []
        self.destroyed: list[str] = []
        self.machine_state: dict[str, tuple[str, str]] = {}  # hostname -> (instance-status, message)
        self._seq: dict[str, int] = {}  # application -> its last unit number
        self._subs: dict[tuple[str, str], str] = {}
        self._next = {"machine": 0}

    # reading
    async def model_uuids(self) -> dict[str, str]:
        return {self.name: self.status_.uuid} if self.status_ else {}

    def client_key(self) -> str | None:
        return CLIENT_KEY

    @property
    def uuid(self) -> str:
        assert self.status_ is not None
        return self.status_.uuid

    async def open_model(self, name: str, uuid: str | None = None) -> FakeJuju:
        """The fake is its own model handle."""
        assert self.status_ is not None and name == self.name
        return self

    async def status(self) -> ModelStatus:
        return self.live()

    def live(self) -> ModelStatus:
        assert self.status_ is not None
        st = self.status_
        for name, u in list(st.units.items()):
            if u.principal:
                continue
            if u.application in self.failing:
                st.units[name] = replace(u, workload="error", workload_message=self.failing[u.application])
            elif u.workload != "error" and u.application in self.stuck:
                workload, message = self.stuck[u.application]
                st.units[name] = replace(u, workload=workload, workload_message=message)
            elif u.workload != "error":
                st.units[name] = replace(u, workload="active", workload_message="Ready")
        for rel in st.relations:
            if rel.scope != "container":
                continue
            (a, _), (b, _) = rel.endpoints
            principal, sub = (a, b) if st.applications[b].subordinate else (b, a)
            for u in [u for u in list(st.units.values()) if u.application == principal and not u.principal]:
                if (u.name, sub) not in self._subs:
                    self._subs[(u.name, sub)] = f"{sub}/{len([k for k in self._subs if k[1] == sub])}"
                    name = self._subs[(u.name, sub)]
                    st.units[name] = JujuUnit(name, sub, u.machine, "active", "Ready", "idle", "", u.name)
        return st

    async def changed(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)  # nothing changes in this world unless a test changes it
        return False

    async def ssh_keys(self) -> list[str]:
        return list(self.keys)

    async def application_config(self, application: str) -> dict[str, Any]:
        return dict(self.config.get(application, {}))

    # changing
    async def create_model(self, name: str, cloud: str, authorized_keys: str,
                           config: Mapping[str, str] | None = None) -> FakeJuju:
        self.calls.append(f"create_model {name}")
        self.name, self.status_ = name, ModelStatus(name, f"uuid-{name}")
        self.keys = [k for k in authorized_keys.splitlines() if k]
        return self

    async def host_keys(self, machine_ids: Sequence[str]) -> dict[str, list[str]]:
        return {mid: [f"ssh-ed25519 AAAAhost{mid}"] for mid in machine_ids}

    async def add_ssh_key(self, key: str) -> None:
        self.calls.append("add_ssh_key")
        self.keys.append(key)

    async def add_machines(self, requests: Sequence[MachineRequest]) -> list[AddedMachine]:
        assert self.status_ is not None
        self.calls.append(f"add_machines {len(requests)}")
        out = []
        for req in requests:
            mid = str(self._next["machine"])
            self._next["machine"] += 1
            host = constraint_values(req.constraints, "tags")[0].split("-pin-")[1]
            instance, message = self.machine_state.get(host, ("running", ""))
            self.status_.machines[mid] = JujuMachine(mid, constraints=req.constraints, hostname=host,
                                                     instance_status=instance, instance_message=message,
                                                     agent_status="started" if instance == "running" else "pending")
            out.append(AddedMachine(mid))
        return out

    async def annotate(self, entities: Mapping[str, Mapping[str, str]]) -> None:
        self.calls.append(f"annotate {len(entities)}")

    async def deploy(self, application: str, charm: str, *, channel: str | None, base: str | None,
                     config: Mapping[str, str], constraints: str) -> None:
        assert self.status_ is not None
        self.calls.append(f"deploy {application}")
        self.status_.applications[application] = JujuApplication(
            application, charm, channel or "", subordinate=charm in SUBORDINATE_CHARMS)
        self.config[application] = dict(config)

    async def add_units(self, application: str, placements: Sequence[str]) -> list[str]:
        assert self.status_ is not None
        self.calls.append(f"add_units {application} {list(placements)}")
        names = []
        for p in placements:
            # Juju never reuses a unit number: the next after the highest ever given
            n = max([self._seq.get(application, -1)] + [int(u.split("/")[1]) for u in self.status_.units
                                                        if u.startswith(application + "/")]) + 1
            self._seq[application] = n
            name = f"{application}/{n}"
            mid = p
            if p.startswith("lxd:"):
                mid = f"{p[4:]}/lxd/0"
                self.status_.machines[mid] = JujuMachine(mid, agent_status="started", parent=p[4:])
            self.status_.units[name] = JujuUnit(name, application, mid, "waiting", "allocating", "idle",
                                                leader=n == 0)
            names.append(name)
        return names

    async def remove_units(self, units: Sequence[str]) -> None:
        assert self.status_ is not None
        self.calls.append(f"remove_units {list(units)}")
        for unit in units:
            self.status_.units.pop(unit, None)

    async def relate(self, first: str, second: str) -> None:
        assert self.status_ is not None
        self.calls.append(f"relate {first} {second}")
        ends = tuple((e.split(":")[0], e.split(":")[1] if ":" in e else "") for e in (first, second))
        apps = self.status_.applications
        scoped = any(apps[a].subordinate for a, _ in ends) and "etcd" not in (ends[0][0], ends[1][0])
        scope = "container" if scoped else "global"
        self.status_.relations.append(JujuRelation(f"{first} {second}", ends, scope=scope))

    async def expose(self, application: str) -> None:
        assert self.status_ is not None
        self.calls.append(f"expose {application}")
        self.status_.applications[application] = replace(self.status_.applications[application], exposed=True)

    async def set_config(self, application: str, options: Mapping[str, str]) -> None:
        self.calls.append(f"set_config {application} {dict(options)}")
        self.config.setdefault(application, {}).update(options)

    async def resolve(self, unit: str) -> None:
        assert self.status_ is not None
        self.calls.append(f"resolve {unit}")
        self.resolved.append(unit)
        self.status_.units[unit] = replace(self.status_.units[unit], workload="maintenance")

    async def run_action(self, unit: str, action: str, timeout: float, **params: Any) -> ActionResult:
        self.calls.append(f"run_action {unit} {action}")
        return ActionResult("completed", {"kubeconfig": json.dumps({"clusters": [{"name": "juju"}]})})

    async def destroy_model(self, name: str, timeout: float) -> None:
        self.calls.append(f"destroy_model {name}")
        self.destroyed.append(name)
        self.status_, self.name = None, ""

    async def close(self) -> None:
        pass


class FakeMaas:
    def __init__(self, hosts: Sequence[str]) -> None:
        self.hosts = hosts

    async def machines(self, hostnames: Sequence[str] | None = None) -> list[MaasMachine]:
        return [MaasMachine(f"id-{h}", h, MaasStatus.READY, "Ready", "", 4, 8192, (), None, ())
                for h in hostnames or self.hosts]

    async def close(self) -> None:
        pass


class FakeDrivers:
    def __init__(self, juju: FakeJuju, maas: FakeMaas) -> None:
        self._juju, self._maas = juju, maas

    async def juju(self) -> FakeJuju:
        return self._juju

    async def maas(self) -> FakeMaas:
        return self._maas

    async def close(self) -> None:
        pass


class Rows(SilentReporter):
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str]] = {}

    def progress(self, stage: str, key: str, status: str, detail: str) -> None:
        self.rows[key] = (status, detail)


class Lab:
    def __init__(self, tmp: Path, text: str = BASE) -> None:
        self.inventory = load_inventory(write_inventory(tmp, text))
        self.juju = FakeJuju()
        self.store = StateStore(self.inventory.state_dir)
        self.reporter = Rows()
        self.stage = KubernetesStage(settle_s=0.0)

    def ctx(self) -> StageContext:
        run = RunContext(self.inventory, self.store, self.reporter,
                         FakeDrivers(self.juju, FakeMaas(self.inventory.hostnames)),  # type: ignore[arg-type]
                         {}, run_id=self.store.run_started("up"))
        return run.for_stage("kubernetes")

    def apply(self) -> KubernetesOutputs:
        """plan, then apply that plan, as `botlab up` does."""

        async def run() -> KubernetesOutputs:
            ctx = self.ctx()
            return await self.stage.apply(ctx, await self.stage.plan(ctx))

        return asyncio.run(run())


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path, BASE.replace("  container_runtime: containerd\n",
                                      "  container_runtime: containerd\n  timeout: 1\n"))


def test_a_first_apply_adds_one_pinned_machine_per_host_and_records_it(lab: Lab) -> None:
    outputs = lab.apply()
    assert lab.juju.calls[:3] == ["create_model demo-k8s", "add_ssh_key", "add_machines 3"]
    assert lab.store.identities(IDENTITY) == {"cp-01": "0", "gpu-01": "1", "nfs-01": "2"}
    assert {h: x.machine for h, x in outputs.hosts.items()} == {"cp-01": "0", "gpu-01": "1", "nfs-01": "2"}
    assert outputs.hosts["nfs-01"].units == () and outputs.hosts["gpu-01"].units == ("kubernetes-worker-gpu/0",)
    assert outputs.hosts["gpu-01"].host_keys == ("ssh-ed25519 AAAAhost1",)
    assert "add_units easyrsa ['lxd:0']" in lab.juju.calls
    # The live display names application, unit, machine (and host) and the workload message.
    assert lab.reporter.rows["kubernetes-worker-gpu/0"] == (
        "active/idle", "kubernetes-worker-gpu on machine 1 (gpu-01): Ready")
    assert lab.reporter.rows["nfs-01"] == ("started", "machine 2 (nfs-01)")


def test_machines_juju_added_before_a_crash_are_found_by_pin_tag_not_added_again(lab: Lab) -> None:
    asyncio.run(lab.juju.create_model("demo-k8s", "lab-maas", ""))
    asyncio.run(lab.juju.add_machines([MachineRequest("tags=demo-pin-gpu-01"), MachineRequest("tags=demo-pin-cp-01")]))
    lab.juju.calls.clear()
    assert lab.store.identities(IDENTITY) == {}  # killed before botlab recorded them
    lab.apply()
    assert "add_machines 1" in lab.juju.calls  # nfs-01 only
    assert lab.store.identities(IDENTITY) == {"gpu-01": "0", "cp-01": "1", "nfs-01": "2"}
    lab.juju.calls.clear()
    lab.apply()  # and a run with nothing to do changes nothing
    assert lab.juju.calls == []


def test_a_timeout_names_the_stuck_units_with_their_messages_and_how_to_resume(lab: Lab) -> None:
    lab.juju.stuck["etcd"] = ("waiting", "Waiting for certificate authority")
    with pytest.raises(StageError) as caught:
        lab.apply()
    text = str(caught.value)
    assert "timed out after 1s waiting for: etcd/0 on machine 0 (cp-01) (waiting/idle: Waiting for certificate" \
           " authority)" in text
    assert "kubernetes.timeout" in text and "`botlab up`" in text and "adds nothing twice" in text
    assert "kubernetes-control-plane/0" not in text  # settled units are not named
    assert lab.store.progress("kubernetes")["cp-01"].data == {"machine": "0"}


def test_a_failed_hook_stops_the_wait_and_is_retried_by_the_next_run(lab: Lab) -> None:
    lab.juju.failing["kubernetes-worker-gpu"] = 'hook failed: "install"'
    with pytest.raises(StageError) as caught:
        lab.apply()
    text = str(caught.value)
    assert 'kubernetes-worker-gpu/0 on machine 1 (gpu-01): hook failed: "install"' in text
    assert "juju resolved" in text and "juju debug-log -m lab:demo-k8s" in text
    del lab.juju.failing["kubernetes-worker-gpu"]
    lab.juju.calls.clear()
    lab.apply()
    assert lab.juju.resolved == ["kubernetes-worker-gpu/0"]
    assert not any(c.startswith(("add_machines", "deploy", "add_units")) for c in lab.juju.calls)


def test_a_model_that_runs_another_channel_stops_the_stage_before_any_change(lab: Lab) -> None:
    lab.apply()
    st = lab.juju.status_
    assert st is not None
    st.applications["etcd"] = replace(st.applications["etcd"], channel="1.30/stable")
    del st.units["easyrsa/0"]
    lab.juju.calls.clear()
    with pytest.raises(StageError, match=re.escape("juju refresh etcd --channel 1.31/stable")):
        lab.apply()
    assert lab.juju.calls == []


def test_the_kubeconfig_is_private_and_fetched_again_only_when_needed(lab: Lab) -> None:
    outputs = lab.apply()
    assert outputs.kubeconfig is not None
    path = Path(outputs.kubeconfig)
    assert path == lab.inventory.state_dir / "kubeconfig"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"clusters": [{"name": "juju"}]}
    assert [c for c in lab.juju.calls if c.startswith("run_action")] == [
        "run_action kubernetes-control-plane/0 get-kubeconfig"]
    lab.juju.calls.clear()
    lab.apply()
    assert lab.juju.calls == []  # same model, nothing added, file there
    path.unlink()
    lab.apply()
    assert lab.juju.calls == ["run_action kubernetes-control-plane/0 get-kubeconfig"]


def test_verify_checks_the_bundle_the_units_and_the_kubeconfig(lab: Lab) -> None:
    ctx = lab.ctx()
    checks = asyncio.run(lab.stage.verify(ctx))
    assert [(c.name, c.ok) for c in checks] == [("model demo-k8s", False)]
    lab.apply()
    checks = asyncio.run(lab.stage.verify(lab.ctx()))
    assert all(c.ok for c in checks), checks
    lab.juju.stuck["etcd"] = ("blocked", "Missing relation to certificate authority.")
    lab.juju.config["containerd-gpu"]["gpu_driver"] = "none"
    checks = {c.name: c for c in asyncio.run(lab.stage.verify(lab.ctx()))}
    assert not checks["units"].ok and "Missing relation to certificate authority." in checks["units"].detail
    assert not checks["bundle"].ok and "config application containerd-gpu" in checks["bundle"].detail


def test_destroy_removes_the_model_the_records_and_the_kubeconfig(lab: Lab) -> None:
    outputs = lab.apply()
    asyncio.run(lab.stage.destroy(lab.ctx()))
    assert lab.juju.destroyed == ["demo-k8s"]
    assert lab.store.identities(IDENTITY) == {}
    assert outputs.kubeconfig is not None and not Path(outputs.kubeconfig).exists()
    asyncio.run(lab.stage.destroy(lab.ctx()))  # nothing left: nothing to do
    assert lab.juju.destroyed == ["demo-k8s"]


def test_plan_before_the_model_exists_lists_everything_and_changes_nothing(lab: Lab) -> None:
    changes = asyncio.run(lab.stage.plan(lab.ctx())).changes
    assert changes[0].target == "model demo-k8s" and changes[1].target == "ssh key test"
    assert lab.juju.calls == []


def test_pin_tags_are_read_from_enlists_record_through_the_context(lab: Lab) -> None:
    from botlab.outputs import EnlistedMachine, EnlistOutputs, Hardware

    hw = Hardware(cores=4, memory_mib=8192, gpus=0)
    recorded = EnlistOutputs(lab_tag="demo", machines={
        h: EnlistedMachine(f"id-{h}", (), (), f"site-tag-{h}", hw) for h in lab.inventory.hostnames})
    lab.store.stage_started("enlist", "f", {}, 1)
    lab.store.stage_done("enlist", recorded.to_data())
    plan = asyncio.run(lab.stage.plan(lab.ctx()))
    adds = [c.reason for c in plan.todo if c.action == "add" and c.target.startswith("machine ")]
    assert adds == ["bundle machine 0; constraints tags=site-tag-cp-01", "bundle machine 1; constraints"
                    " tags=site-tag-gpu-01", "no Kubernetes role: for its OS; constraints tags=site-tag-nfs-01"]


def test_a_unit_left_on_no_machine_by_a_failed_placement_is_removed_and_its_unit_added_again(lab: Lab) -> None:
    """Juju adds a unit before placing it (AddUnits), so a failed placement leaves it in the
    model, unassigned; Juju's client API cannot assign it, so the next run removes it and adds
    the bundle's unit again: never two units where the bundle wants one."""
    lab.apply()
    st = lab.juju.status_
    assert st is not None
    del st.units["kubernetes-worker-gpu/0"]
    st.units["kubernetes-worker-gpu/1"] = JujuUnit("kubernetes-worker-gpu/1", "kubernetes-worker-gpu", "",
                                                   "waiting", "waiting for machine", "allocating")
    lab.juju._seq["kubernetes-worker-gpu"] = 1  # as Juju's AddUnits numbered it
    lab.juju.calls.clear()

    async def planned() -> list[Any]:
        return (await lab.stage.plan(lab.ctx())).todo

    todo = asyncio.run(planned())
    shown = [(c.action, c.target) for c in todo]
    assert ("remove", "unit kubernetes-worker-gpu/1") in shown
    assert ("add", "unit kubernetes-worker-gpu on gpu-01") in shown
    removal = next(c for c in todo if c.action == "remove")
    assert type(removal).__name__ == "RemoveUnit" and "failed placement" in removal.reason
    assert "added again" in removal.reason
    outputs = lab.apply()
    assert lab.juju.calls.index("remove_units ['kubernetes-worker-gpu/1']") < lab.juju.calls.index(
        "add_units kubernetes-worker-gpu ['1']")
    units = [u for u in st.units.values() if u.application == "kubernetes-worker-gpu"]
    assert [(u.name, u.machine) for u in units] == [("kubernetes-worker-gpu/2", "1")]
    assert outputs.hosts["gpu-01"].units == ("kubernetes-worker-gpu/2",)


RETRYING = ("failed to start machine 1 (failed to acquire node: No available machine matches constraints: "
            "[('tags', ['demo-pin-gpu-01'])]), retrying in 10s (9 more attempts)")


def test_while_juju_retries_an_allocation_the_wait_shows_it_pending_with_juju_s_message(lab: Lab) -> None:
    lab.juju.machine_state["gpu-01"] = ("provisioning", RETRYING)
    with pytest.raises(StageError) as caught:
        lab.apply()
    text = str(caught.value)
    assert "timed out after 1s waiting for:" in text  # not a failure while Juju retries
    assert f"gpu-01 (machine 1: provisioning: {RETRYING})" in text
    assert lab.reporter.rows["gpu-01"] == ("provisioning", f"machine 1: {RETRYING}")


def test_once_juju_gives_up_an_allocation_the_wait_fails_naming_the_machine_and_maas_reason(lab: Lab) -> None:
    reason = "failed to acquire node: No available machine matches constraints: [('tags', ['demo-pin-gpu-01'])]"
    lab.juju.machine_state["gpu-01"] = ("provisioning error", reason)
    with pytest.raises(StageError) as caught:
        lab.apply()
    text = str(caught.value)
    assert f"gpu-01 (Juju machine 1): provisioning error: {reason}" in text
    assert "timed out" not in text and "juju remove-machine" in text


def test_the_watcher_view_reads_base_and_never_series() -> None:
    """Juju 3.x AllWatcher deltas for machines and units carry `base` and no `series`
    (libjuju's `machine.series` raises KeyError there: python-libjuju#958)."""
    from types import SimpleNamespace

    from botlab.drivers.juju import status_from_watcher

    class Strict(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            assert key != "series", "botlab read `series`"
            return super().__getitem__(key)

        def get(self, key: str, default: Any = None) -> Any:
            assert key != "series", "botlab read `series`"
            return super().get(key, default)

    machine = Strict({"id": "0", "base": "ubuntu@22.04", "hostname": "cp-01", "instance-id": "abc",
                      "instance-status": {"current": "running", "message": "Deployed"},
                      "agent-status": {"current": "started", "message": ""},
                      "addresses": [{"value": "10.0.0.5", "scope": "local-cloud"}]})
    unit = Strict({"name": "etcd/0", "application": "etcd", "base": "ubuntu@22.04", "machine-id": "0",
                   "workload-status": {"current": "active", "message": "Ready"},
                   "agent-status": {"current": "idle", "message": ""}, "principal": ""})
    model = SimpleNamespace(machines={"0": SimpleNamespace(safe_data=machine)}, applications={},
                            units={"etcd/0": SimpleNamespace(safe_data=unit)}, relations=[])
    status = status_from_watcher("m", "uuid", model)
    assert status.machines["0"].base == "ubuntu@22.04" and status.machines["0"].address == "10.0.0.5"
    assert status.units["etcd/0"].machine == "0"
