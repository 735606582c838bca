"""Inventory edits, retry episodes, idempotent tag creation and teardown from the world, as
pure logic and against in-memory fakes of botlab's own driver interfaces (MAAS and Juju; not
of python-libmaas or python-libjuju). The end-to-end proofs on the virtual lab are
tests/lab/test_inventory_edits.py and tests/lab/test_down_from_world.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from botlab import names
from botlab.context import Consent, RunContext, StageContext
from botlab.drivers.juju import JujuMachine, JujuUnit, ModelStatus
from botlab.drivers.maas import MaasMachine, MaasStatus
from botlab.errors import StageError
from botlab.identity import IDENTITY, REMOVED, resolve
from botlab.inventory import load_inventory
from botlab.outputs import EnlistedMachine, EnlistOutputs, Hardware
from botlab.pipeline import REFUSED, Change, Check, Pipeline, Plan, Stage
from botlab.report import SilentReporter
from botlab.stages.enlist import TAG_IDENTITY, EnlistStage, Untag
from botlab.stages.kubernetes import IDENTITY as JUJU_IDENTITY
from botlab.stages.kubernetes import KubernetesStage
from botlab.stages.kubernetes_diff import ForgetMachine, RenameMachine, inventory_edits, match_machines
from botlab.state import StateStore
from tests.support.inventory import BASE, write_inventory
from tests.unit.test_kubernetes_stage import FakeJuju
from tests.unit.test_kubernetes_stage import FakeMaas as ReleasedMaas

MACS = {"cp-01": "52:54:00:00:00:01", "gpu-01": "52:54:00:00:00:02", "nfs-01": "52:54:00:00:00:03"}
HARDWARE = {"cp-01": (4, 8192, 0), "gpu-01": (8, 16384, 1), "nfs-01": (2, 4096, 0)}


def inventory_text(*, rename: dict[str, str] | None = None, drop: Sequence[str] = (), lab: str = "demo") -> str:
    text = BASE.replace("lab: demo", f"lab: {lab}")
    for host, mac in MACS.items():
        text = text.replace(f"  - hostname: {host}\n", f"  - hostname: {host}\n    macs: ['{mac}']\n")
    for old, new in (rename or {}).items():
        text = text.replace(f"hostname: {old}\n", f"hostname: {new}\n")
    for host in drop:
        start = text.index(f"  - hostname: {host}\n")
        following = text.find("  - hostname:", start + 1)
        end = following if following >= 0 else text.index("kubernetes:")
        text = text[:start] + text[end:]
    return text


class FakeMaas:
    """Botlab's MAAS driver interface over in-memory machines and tags. Commissioning ends at
    once: Ready, or Failed commissioning for the system ids in `failing`."""

    def __init__(self) -> None:
        self.by_id: dict[str, MaasMachine] = {}
        self.tags: dict[str, str] = {}  # name -> comment
        self.gpus: dict[str, int] = {}
        self.failing: set[str] = set()
        self.calls: list[str] = []
        self.created_meanwhile: dict[str, str] = {}  # tag -> comment: "another run" makes it first

    def add(self, host: str, status: MaasStatus = MaasStatus.READY, tags: Sequence[str] = (),
            owner: str | None = None) -> MaasMachine:
        cores, memory, gpus = HARDWARE[host]
        m = MaasMachine(f"id-{host}", host, status, status.name.replace("_", " ").capitalize(), "", cores, memory,
                        tuple(tags), owner, (MACS[host],))
        self.by_id[m.system_id] = m
        self.gpus[m.system_id] = gpus
        return m

    def machine(self, host: str) -> MaasMachine:
        return next(m for m in self.by_id.values() if m.hostname == host)

    def _set(self, sid: str, **changes: Any) -> MaasMachine:
        self.by_id[sid] = replace(self.by_id[sid], **changes)
        return self.by_id[sid]

    async def machines(self, hostnames: Sequence[str] | None = None) -> list[MaasMachine]:
        return [m for m in self.by_id.values() if hostnames is None or m.hostname in hostnames]

    async def commission(self, system_id: str, hostname: str) -> MaasMachine:
        self.calls.append(f"commission {hostname}")
        if system_id in self.failing:
            return self._set(system_id, status=MaasStatus.FAILED_COMMISSIONING, status_name="Failed commissioning",
                             status_message="BMC unreachable")
        return self._set(system_id, status=MaasStatus.READY, status_name="Ready", status_message="")

    async def gpu_count(self, system_id: str, hostname: str) -> int:
        return self.gpus[system_id]

    async def tag_names(self) -> set[str]:
        return set(self.tags)

    async def create_tag_if_absent(self, name: str, comment: str) -> bool:
        if name in self.created_meanwhile:
            self.tags[name] = self.created_meanwhile.pop(name)
        if name in self.tags:
            return False
        self.calls.append(f"create tag {name}")
        self.tags[name] = comment
        return True

    async def tag_comment(self, name: str) -> str | None:
        return self.tags.get(name)

    async def update_tag(self, name: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        self.calls.append(f"update tag {name} +{','.join(add)} -{','.join(remove)}")
        for sid in add:
            self._set(sid, tags=tuple(sorted({*self.by_id[sid].tags, name})))
        for sid in remove:
            self._set(sid, tags=tuple(t for t in self.by_id[sid].tags if t != name))

    async def delete_tag_if_present(self, name: str) -> bool:
        self.calls.append(f"delete tag {name}")
        for sid, m in list(self.by_id.items()):
            self._set(sid, tags=tuple(t for t in m.tags if t != name))
        return self.tags.pop(name, None) is not None

    async def close(self) -> None:
        pass


class Drivers:
    def __init__(self, maas: Any, juju: Any = None) -> None:
        self._maas, self._juju = maas, juju

    async def maas(self) -> Any:
        return self._maas

    async def juju(self) -> Any:
        return self._juju

    async def close(self) -> None:
        pass


class Notes(SilentReporter):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, stage: str, message: str) -> None:
        self.notes.append(message)


class Lab:
    """One inventory folder, its store, a fake MAAS (and Juju) and the stages, run as `up` does."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.maas = FakeMaas()
        self.juju = FakeJuju()
        self.reporter = Notes()
        self.write(inventory_text())
        self.store = StateStore(self.inventory.state_dir)
        self.consent = Consent()  # what `--remove HOST` gives

    def write(self, text: str) -> None:
        self.inventory = load_inventory(write_inventory(self.tmp, text))

    def run(self) -> RunContext:
        return RunContext(self.inventory, self.store, self.reporter, Drivers(self.maas, self.juju),  # type: ignore[arg-type]
                          {}, run_id=self.store.run_started("up"), consent=self.consent)

    def ctx(self, stage: str = "enlist") -> StageContext:
        return self.run().for_stage(stage)

    def plan(self, stage: Stage[Any]) -> Plan:
        return asyncio.run(stage.plan(self.ctx(stage.name)))

    def up(self, stage: Stage[Any]) -> Any:
        """plan, then apply that plan, as `botlab up` does; the outputs are recorded as done."""

        async def run() -> Any:
            ctx = self.ctx(stage.name)
            outputs = await stage.apply(ctx, await stage.plan(ctx))
            self.store.stage_started(stage.name, "f", {}, ctx.run.run_id)
            self.store.stage_done(stage.name, outputs.to_data())
            return outputs

        return asyncio.run(run())


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    vlab = Lab(tmp_path)
    for host in MACS:
        vlab.maas.add(host)
    return vlab


def todo(plan: Plan) -> list[tuple[str, str]]:
    return [(c.action, c.target) for c in plan.todo]


def deploy(lab: Lab) -> None:
    """Enlist, then mark every machine Deployed as Juju's MAAS provider would."""
    lab.up(EnlistStage())
    for m in list(lab.maas.by_id.values()):
        lab.maas._set(m.system_id, status=MaasStatus.DEPLOYED, status_name="Deployed", owner="admin")


# --- names and identity ------------------------------------------------------------------------


def test_a_labs_tags_are_exactly_its_own_names_never_another_labs_with_a_longer_name() -> None:
    assert names.is_lab_tag("lab", "lab") and names.is_lab_tag("lab", "lab-pin-node-01")
    assert names.is_lab_tag("lab", "lab-role-gpu")
    for other in ("lab2", "lab2-pin-node-01", "lab2-role-gpu", "lab-pin-", "lab-other", "lab_lock", "labs"):
        assert not names.is_lab_tag("lab", other), other
    assert names.pinned_host("lab", "lab-pin-node-01") == "node-01"
    assert names.pinned_host("lab", "lab2-pin-node-01") is None


def test_a_rename_is_recognised_from_the_recorded_system_id_and_the_macs(tmp_path: Path) -> None:
    maas = FakeMaas()
    for host in MACS:
        maas.add(host, tags=("demo", f"demo-pin-{host}"))
    inv = load_inventory(write_inventory(tmp_path, inventory_text(rename={"gpu-01": "gpu-99"})))
    found = resolve(inv, asyncio.run(maas.machines()), {h: f"id-{h}" for h in MACS})
    assert found.found["gpu-99"] == maas.machine("gpu-01") and found.how["gpu-99"] == f"MAC {MACS['gpu-01']}"
    assert found.renamed == {"gpu-99": "gpu-01"} and found.stale == {"gpu-01": "id-gpu-01"}
    assert found.departed == {}
    # Without any record (a lost state folder), the old pin tag says the same.
    assert resolve(inv, asyncio.run(maas.machines()), {}).renamed == {"gpu-99": "gpu-01"}


def test_a_machine_that_left_is_found_by_its_record_or_this_labs_tags_not_another_labs(tmp_path: Path) -> None:
    maas = FakeMaas()
    maas.add("cp-01", tags=("demo", "demo-pin-cp-01"))
    maas.add("nfs-01", tags=("demo", "demo-pin-nfs-01"))
    maas.add("gpu-01", tags=("demo2", "demo2-pin-gpu-01"))  # lab demo2's machine
    inv = load_inventory(write_inventory(tmp_path, inventory_text(drop=["nfs-01", "gpu-01"]).replace(
        "nfs:\n  server: nfs-01\n  allowed_network: 10.0.0.0/24\n", "")))
    found = resolve(inv, asyncio.run(maas.machines()), {})
    assert set(found.departed) == {"nfs-01"}
    assert found.departed["nfs-01"].tags == ("demo", "demo-pin-nfs-01")
    assert "id-gpu-01" not in found.ours


# --- enlist: removal, rename, restore -----------------------------------------------------------


def test_removing_a_deployed_host_is_refused_without_consent_and_untagged_with_it(lab: Lab) -> None:
    deploy(lab)
    lab.write(inventory_text(drop=["gpu-01"]))
    plan = lab.plan(EnlistStage())
    refused = [c for c in plan.changes if isinstance(c, Untag)]
    assert [(c.action, c.target) for c in refused] == [(REFUSED, "machine gpu-01")]
    assert "demo-pin-gpu-01" in refused[0].reason and "`botlab up --remove gpu-01`" in refused[0].reason
    assert plan.refusals == refused

    stage = EnlistStage()
    lab.consent = Consent(remove=frozenset({"gpu-01"}))
    plan = lab.plan(stage)
    assert todo(plan) == [("untag", "machine gpu-01")]
    lab.maas.calls.clear()
    lab.up(stage)
    assert not any(names.is_lab_tag("demo", t) for t in lab.maas.machine("gpu-01").tags)
    assert lab.maas.machine("gpu-01").status == MaasStatus.DEPLOYED  # stays deployed
    assert "gpu-01" not in lab.store.identities(IDENTITY)
    assert lab.store.identities(REMOVED) == {"gpu-01": "id-gpu-01"}

    # Back in the inventory, it is this lab's again (no "another lab may own it").
    lab.write(inventory_text())
    plan = lab.plan(EnlistStage())
    assert todo(plan) == [("tag", "machine gpu-01")]
    lab.up(EnlistStage())
    assert {"demo", "demo-pin-gpu-01", "demo-role-gpu"} <= set(lab.maas.machine("gpu-01").tags)
    assert lab.store.identities(REMOVED) == {}


def test_a_ready_host_that_left_is_untagged_without_asking(lab: Lab) -> None:
    lab.up(EnlistStage())
    lab.write(inventory_text(drop=["gpu-01"]))
    assert todo(lab.plan(EnlistStage())) == [("untag", "machine gpu-01")]
    lab.up(EnlistStage())
    assert not any(names.is_lab_tag("demo", t) for t in lab.maas.machine("gpu-01").tags)
    assert lab.store.identities(REMOVED) == {}


def test_a_deployed_machine_not_this_labs_is_blocked_in_the_plan(lab: Lab) -> None:
    lab.maas._set("id-gpu-01", status=MaasStatus.DEPLOYED, status_name="Deployed", owner="bob")
    plan = lab.plan(EnlistStage())
    blocked = [c for c in plan.changes if c.action == "blocked"]
    assert [c.target for c in blocked] == ["machine gpu-01"] and "another user or lab" in blocked[0].reason


def test_a_renamed_deployed_host_keeps_its_machine_and_its_tags_move(lab: Lab) -> None:
    deploy(lab)
    lab.write(inventory_text(rename={"gpu-01": "gpu-99"}).replace("server: nfs-01", "server: nfs-01"))
    plan = lab.plan(EnlistStage())
    assert ("rename", "machine gpu-99") in todo(plan)
    step = next(c for c in plan.changes if c.target == "machine gpu-99")
    assert "was gpu-01" in step.reason and "+demo-pin-gpu-99" in step.reason and "-demo-pin-gpu-01" in step.reason
    outputs = lab.up(EnlistStage())
    tags = set(lab.maas.machine("gpu-01").tags)
    assert {"demo", "demo-role-gpu", "demo-pin-gpu-99"} <= tags and "demo-pin-gpu-01" not in tags
    assert lab.store.identities(IDENTITY) == {"cp-01": "id-cp-01", "gpu-99": "id-gpu-01", "nfs-01": "id-nfs-01"}
    assert outputs.machines["gpu-99"].system_id == "id-gpu-01"
    assert not lab.plan(EnlistStage()).todo

    lab.write(inventory_text())  # reverting converges the same way
    assert ("rename", "machine gpu-01") in todo(lab.plan(EnlistStage()))
    lab.up(EnlistStage())
    tags = set(lab.maas.machine("gpu-01").tags)
    assert "demo-pin-gpu-01" in tags and "demo-pin-gpu-99" not in tags
    assert lab.store.identities(IDENTITY)["gpu-01"] == "id-gpu-01" and "gpu-99" not in lab.store.identities(IDENTITY)
    assert not lab.plan(EnlistStage()).todo


# --- enlist: retry episodes and tag creation -----------------------------------------------------


def test_each_run_is_a_new_commissioning_episode(lab: Lab) -> None:
    lab.maas._set("id-gpu-01", status=MaasStatus.NEW, status_name="New")
    lab.maas.failing.add("id-gpu-01")
    with pytest.raises(StageError) as caught:
        lab.up(EnlistStage())
    assert lab.maas.calls.count("commission gpu-01") == 3  # 1 + maas.commission_retries (2)
    text = str(caught.value)
    assert "after 3 attempt(s) in this run" in text and "run `botlab up` again" in text
    assert "maas.commission_retries" in text
    # The attempts recorded by the last run do not use up the next run's budget.
    lab.maas.failing.clear()
    lab.up(EnlistStage())
    assert lab.maas.calls.count("commission gpu-01") == 4
    assert lab.maas.machine("gpu-01").status == MaasStatus.READY


def test_a_tag_created_meanwhile_is_used_and_is_ours_only_with_this_labs_comment(lab: Lab) -> None:
    lab.maas.created_meanwhile = {"demo-role-gpu": "botlab lab demo", "demo-pin-gpu-01": "made by hand"}
    lab.up(EnlistStage())
    ours = lab.store.identities(TAG_IDENTITY)
    assert "demo-role-gpu" in ours and "demo-pin-gpu-01" not in ours and "demo" in ours
    assert "demo-pin-gpu-01" in lab.maas.machine("gpu-01").tags  # used all the same


# --- kubernetes: rename and removal in the model ----------------------------------------------


def enlisted(lab: Lab, hosts: dict[str, str]) -> None:
    """Record enlist's outputs: inventory hostname -> system id."""
    hw = Hardware(cores=4, memory_mib=8192, gpus=0)
    record = EnlistOutputs(lab_tag="demo", machines={
        h: EnlistedMachine(sid, (), (), f"demo-pin-{h}", hw) for h, sid in hosts.items()})
    lab.store.stage_started("enlist", "f", {}, 1)
    lab.store.stage_done("enlist", record.to_data())


@pytest.fixture
def cluster(tmp_path: Path) -> Lab:
    vlab = Lab(tmp_path)
    vlab.maas = ReleasedMaas(vlab.inventory.hostnames)  # type: ignore[assignment]
    enlisted(vlab, {h: f"id-{h}" for h in MACS})
    vlab.up(KubernetesStage(settle_s=0.0))
    status = vlab.juju.status_
    assert status is not None
    for mid, m in list(status.machines.items()):  # Juju's MAAS provider: instance id = system id
        if not m.parent:
            status.machines[mid] = replace(m, instance_id=f"id-{m.hostname}")
    return vlab


def test_a_renamed_host_keeps_its_juju_machine_recorded_under_the_new_name(cluster: Lab) -> None:
    cluster.write(inventory_text(rename={"gpu-01": "gpu-99"}))
    enlisted(cluster, {"cp-01": "id-cp-01", "gpu-99": "id-gpu-01", "nfs-01": "id-nfs-01"})
    plan = cluster.plan(KubernetesStage(settle_s=0.0))
    assert todo(plan) == [("rename", "machine gpu-99")]
    cluster.juju.calls.clear()
    outputs = cluster.up(KubernetesStage(settle_s=0.0))
    assert not any(c.startswith(("add_machines", "add_units", "deploy")) for c in cluster.juju.calls)
    assert cluster.store.identities(JUJU_IDENTITY) == {"cp-01": "0", "gpu-99": "1", "nfs-01": "2"}
    assert outputs.hosts["gpu-99"].machine == "1" and outputs.hosts["gpu-99"].units == ("kubernetes-worker-gpu/0",)
    assert not cluster.plan(KubernetesStage(settle_s=0.0)).todo  # the old pin tag in its constraints is fine


def test_a_host_that_left_while_its_machine_runs_units_is_refused_then_forgotten_with_consent(cluster: Lab) -> None:
    cluster.write(inventory_text(drop=["nfs-01"]).replace("nfs:\n  server: nfs-01\n  allowed_network: 10.0.0.0/24\n",
                                                         ""))
    plan = cluster.plan(KubernetesStage(settle_s=0.0))
    assert todo(plan) == [(REFUSED, "machine nfs-01")]
    assert "Juju machine 2 still is deployed" in plan.todo[0].reason and "--remove nfs-01" in plan.todo[0].reason
    stage = KubernetesStage(settle_s=0.0)
    cluster.consent = Consent(remove=frozenset({"nfs-01"}))
    assert todo(cluster.plan(stage)) == [("forget", "machine nfs-01")]
    outputs = cluster.up(stage)
    assert "nfs-01" not in cluster.store.identities(JUJU_IDENTITY) and "nfs-01" not in outputs.hosts
    assert "destroy_model demo-k8s" not in cluster.juju.calls and "2" in cluster.juju.status_.machines  # type: ignore[union-attr]
    assert not cluster.plan(KubernetesStage(settle_s=0.0)).todo  # remembered: not asked about again


def test_inventory_edits_list_the_units_on_a_departed_machine() -> None:
    status = ModelStatus("m", "u", machines={"4": JujuMachine("4", constraints="tags=lab-pin-node-05",
                                                                agent_status="started")},
                         units={"kubernetes-worker-gpu/1": JujuUnit("kubernetes-worker-gpu/1", "kubernetes-worker-gpu",
                                                                    "4"),
                                "containerd-gpu/1": JujuUnit("containerd-gpu/1", "containerd-gpu", "4",
                                                             principal="kubernetes-worker-gpu/1")})
    from botlab.stages.kubernetes_diff import Wanted

    wanted = Wanted((), {}, ())
    [change] = inventory_edits("lab", wanted, status, {}, {}, Consent())  # no record: found by its pin tag
    assert isinstance(change, ForgetMachine) and change.action == REFUSED and change.hostname == "node-05"
    assert change.units == ("containerd-gpu/1", "kubernetes-worker-gpu/1")
    assert not inventory_edits("lab2", wanted, status, {}, {}, Consent())  # another lab's pin tag


def test_a_pinned_machine_on_another_maas_machine_is_not_the_hosts() -> None:
    from botlab.stages.kubernetes_diff import Wanted, WantedMachine

    wanted = Wanted((WantedMachine("gpu-99", "lab-pin-gpu-99", "tags=lab-pin-gpu-99"),), {}, ())
    status = ModelStatus("m", "u", machines={
        "1": JujuMachine("1", constraints="tags=lab-pin-gpu-01", instance_id="sid-a"),
        "2": JujuMachine("2", constraints="tags=lab-pin-gpu-99", instance_id="sid-b")})
    assert match_machines(wanted, status, {}, {"gpu-99": "sid-a"}) == {"gpu-99": "1"}
    assert match_machines(wanted, status, {}, {}) == {"gpu-99": "2"}
    edits = inventory_edits("lab", wanted, status, {"gpu-01": "1"}, {"gpu-99": "1"}, Consent())
    assert [type(c) for c in edits] == [RenameMachine]  # machine 2 is left alone: botlab removes nothing


# --- the runner: refusals and teardown from the world ------------------------------------------


class Probe(Stage[Plan]):
    """A stage whose plan and teardown a test sets."""

    def __init__(self, name: str, changes: list[Change] | None = None, found: str | None = None,
                 systems: tuple[str, ...] = ()) -> None:
        self.name = name  # type: ignore[misc]
        self.systems = systems  # type: ignore[misc]
        self._changes = changes or []
        self._found = found
        self.applied = self.destroyed = 0

    async def plan(self, ctx: StageContext) -> Plan:
        return Plan(list(self._changes))

    async def apply(self, ctx: StageContext, plan: Plan) -> None:
        self.applied += 1

    async def verify(self, ctx: StageContext) -> list[Check]:
        return []

    async def destroy(self, ctx: StageContext) -> str | None:
        self.destroyed += 1
        return self._found


def test_a_refused_change_stops_up_before_the_stage_starts(lab: Lab) -> None:
    stage = Probe("enlist", [Change(REFUSED, "machine x", "needs --remove x")])
    result = asyncio.run(Pipeline([stage]).up(lab.run(), [stage]))
    assert result.refused == "enlist: machine x: needs --remove x" and not result.failed
    assert stage.applied == 0 and lab.store.stage("enlist") is None


def test_down_asks_stages_without_a_record_and_says_when_nothing_was_found(lab: Lab) -> None:
    first, second = Probe("enlist", systems=("MAAS",)), Probe("kubernetes", systems=("Juju",))
    result = asyncio.run(Pipeline([first, second]).down(lab.run()))
    assert (first.destroyed, second.destroyed) == (1, 1)
    assert [o.action for o in result.outcomes] == ["nothing found", "nothing found"]
    assert lab.reporter.notes[-1] == "nothing of lab demo found in Juju or MAAS"

    lab.reporter.notes.clear()
    found = Probe("kubernetes", found="found model demo-k8s with 3 machine(s)", systems=("Juju",))
    result = asyncio.run(Pipeline([Probe("enlist"), found]).down(lab.run()))
    assert result.outcomes[0].reason == "found model demo-k8s with 3 machine(s)"
    assert not any("nothing of lab" in n for n in lab.reporter.notes)


def test_enlist_teardown_without_state_deletes_this_labs_tags_only(lab: Lab) -> None:
    lab.up(EnlistStage())
    lab.maas.tags.update({"demo-pin-old-01": "botlab lab demo", "demo2": "botlab lab demo2",
                          "demo2-pin-cp-01": "botlab lab demo2", "demo-pin-by-hand": "made by hand",
                          "demo_lock": "a run"})
    for tag in list(lab.store.identities(TAG_IDENTITY)):
        lab.store.forget_identity(TAG_IDENTITY, tag)
    found = asyncio.run(EnlistStage().destroy(lab.ctx()))
    assert set(lab.maas.tags) == {"demo2", "demo2-pin-cp-01", "demo-pin-by-hand", "demo_lock"}
    assert found is not None and "demo-pin-old-01" in found and "demo2" not in found.replace("demo-", "")
    assert asyncio.run(EnlistStage().destroy(lab.ctx())) is None


def test_kubernetes_teardown_without_a_record_finds_the_model_by_name(cluster: Lab) -> None:
    cluster.store.stage_reset("kubernetes")
    for host in cluster.store.identities(JUJU_IDENTITY):
        cluster.store.forget_identity(JUJU_IDENTITY, host)
    found = asyncio.run(KubernetesStage().destroy(cluster.ctx("kubernetes")))
    assert found is not None and found.startswith("found model demo-k8s with 3 machine(s)")
    assert cluster.juju.destroyed == ["demo-k8s"]
    assert asyncio.run(KubernetesStage().destroy(cluster.ctx("kubernetes"))) is None
