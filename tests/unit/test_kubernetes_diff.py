"""The kubernetes stage's own diff, on plain data: the rendered bundle read as botlab deploys
it, the plan for an absent, empty, half-deployed and complete model, machine matching by pin
tag, and the settle rules (including the docker runtime's GPU workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from botlab import names
from botlab.drivers.juju import JujuApplication, JujuMachine, JujuRelation, JujuUnit, ModelStatus, charm_name
from botlab.inventory import load_inventory
from botlab.stages.kubernetes import wanted_state
from botlab.stages.kubernetes_diff import (
    BundleProblem,
    Current,
    Placement,
    Wanted,
    diff,
    match_machines,
    option_text,
    read_bundle,
    settle,
    unit_settled,
)
from tests.support.inventory import BASE, write_inventory

KEY = "ssh-ed25519 AAAAC3Nza operator@lab"
PINS = {"cp-01": "demo-pin-cp-01", "gpu-01": "demo-pin-gpu-01", "nfs-01": "demo-pin-nfs-01"}


@pytest.fixture
def wanted(tmp_path: Path) -> Wanted:
    inv = load_inventory(write_inventory(tmp_path))
    return wanted_state(inv, {h: names.pin_tag(inv.name, h) for h in inv.hostnames})


def machine(mid: str, host: str, *, started: bool = True, status: str = "running", message: str = "") -> JujuMachine:
    return JujuMachine(mid, constraints=f"tags=demo-pin-{host}", hostname=host if started else "",
                       instance_status=status, instance_message=message,
                       agent_status="started" if started else "pending", base="ubuntu@22.04")


def unit(name: str, mid: str, workload: str = "active", agent: str = "idle", message: str = "",
         principal: str = "") -> JujuUnit:
    return JujuUnit(name, name.split("/")[0], mid, workload, message, agent, "", principal)


def complete(wanted: Wanted) -> ModelStatus:
    """The model as the built-in bundle leaves it for the support inventory, all settled."""
    st = ModelStatus("demo-k8s", "uuid-1")
    st.machines = {"0": machine("0", "cp-01"), "1": machine("1", "gpu-01"), "2": machine("2", "nfs-01"),
                   "0/lxd/0": JujuMachine("0/lxd/0", agent_status="started", parent="0")}
    for app in wanted.applications.values():
        st.applications[app.name] = JujuApplication(app.name, app.charm, app.channel or "", exposed=app.expose,
                                                    subordinate=app.subordinate)
    units = [unit("easyrsa/0", "0/lxd/0"), unit("etcd/0", "0"), unit("kubernetes-control-plane/0", "0"),
             unit("kubernetes-worker-gpu/0", "1"),
             unit("containerd/0", "0", principal="kubernetes-control-plane/0"),
             unit("calico/0", "0", principal="kubernetes-control-plane/0"),
             unit("containerd-gpu/0", "1", principal="kubernetes-worker-gpu/0"),
             unit("calico/1", "1", principal="kubernetes-worker-gpu/0")]
    st.units = {u.name: u for u in units}
    for rel in wanted.relations:
        a, b = rel.first, rel.second
        subordinate = wanted.applications[a.application].subordinate or wanted.applications[b.application].subordinate
        scope = "container" if subordinate and "etcd" not in (a.application, b.application) else "global"
        st.relations.append(JujuRelation(str(rel), ((a.application, a.name or ""), (b.application, b.name or "")),
                                         scope=scope))
    return st


def configs(wanted: Wanted) -> dict[str, dict[str, object]]:
    return {a.name: dict(a.options) for a in wanted.applications.values()}


# --- reading the bundle ---------------------------------------------------------------------------


def test_bundle_machines_map_to_hosts_through_pin_tags_and_bare_hosts_are_added(wanted: Wanted) -> None:
    by_host = {m.hostname: m for m in wanted.machines}
    assert by_host["cp-01"].bundle_id == "0" and by_host["gpu-01"].bundle_id == "1"
    assert by_host["nfs-01"].bundle_id is None  # no Kubernetes role: added for its OS only
    assert by_host["nfs-01"].constraints == "tags=demo-pin-nfs-01"
    assert {m.base for m in wanted.machines} == {"ubuntu@22.04"}  # the bundle's default-base
    apps = wanted.applications
    assert apps["easyrsa"].placements == (Placement("cp-01", "lxd"),)
    assert apps["kubernetes-worker-gpu"].placements == (Placement("gpu-01"),)
    assert apps["kubernetes-worker-gpu"].expose and apps["containerd-gpu"].subordinate
    assert apps["etcd"].channel == "1.31/stable" and apps["etcd"].options["channel"] == "3.4/stable"
    assert wanted.control_plane() is apps["kubernetes-control-plane"]


@pytest.mark.parametrize(("text", "problem"), [
    ("machines: {'0': {constraints: 'cores=4'}}", "must name exactly one inventory host's pin tag"),
    ("machines: {'0': {constraints: tags=demo-pin-cp-01}, '1': {constraints: tags=demo-pin-cp-01}}",
     "cp-01 is already bundle machine 0"),
    ("machines: {'0': {constraints: tags=demo-pin-cp-01}}\napplications: {a: {charm: a, num_units: 1, to: [new]}}",
     "placement 'new' is not supported"),
    ("machines: {'0': {constraints: tags=demo-pin-cp-01}}\napplications: {a: {charm: a, num_units: 2, to: ['0']}}",
     "num_units is 2 but `to` places 1"),
    ("applications: {a: {charm: a, bindings: {'': alpha}}}", "keys bindings are not supported"),
    ("series: jammy", "bundle keys series are not supported"),
    ("applications: {a: {charm: a}}\nrelations: [[a, b]]", "b is not an application of the bundle"),
])
def test_bundles_botlab_cannot_place_exactly_are_refused(text: str, problem: str) -> None:
    with pytest.raises(BundleProblem, match=problem.replace("(", r"\(").replace(")", r"\)")):
        read_bundle(text, PINS)


# --- the diff ---------------------------------------------------------------------------------


def test_before_the_model_exists_everything_is_to_be_done(wanted: Wanted) -> None:
    d = diff(wanted, Current(), KEY, {})
    assert d.create_model and d.add_key
    assert [m.hostname for m in d.machines] == ["cp-01", "gpu-01", "nfs-01"]
    assert {a.name for a in d.deploy} == set(wanted.applications)
    assert d.units["easyrsa"] == [Placement("cp-01", "lxd")]
    assert "containerd" not in d.units  # subordinates ride on their principals
    assert len(d.relations) == len(wanted.relations)
    assert d.expose == ["kubernetes-worker-gpu"] and d.config == {}
    changes = d.changes("demo-k8s", "lab", "operator@lab")
    assert changes[0].as_dict() == {"action": "create", "target": "model demo-k8s", "reason": "not on controller lab"}
    assert ("add", "machine nfs-01") in {(c.action, c.target) for c in changes}
    assert not any(c.action == "expose" for c in changes)  # said with the deploy
    assert all(not c.is_noop for c in changes)


def test_a_complete_model_needs_nothing(wanted: Wanted) -> None:
    d = diff(wanted, Current(complete(wanted), configs(wanted), [KEY.replace("operator@lab", "x")]), KEY, {})
    assert d.empty, d.changes("m", "c", "k")
    assert d.machine_ids == {"cp-01": "0", "gpu-01": "1", "nfs-01": "2"}
    assert all(c.is_noop for c in d.changes("m", "c", "k"))


def test_a_half_deployed_model_gets_only_what_is_missing(wanted: Wanted) -> None:
    st = complete(wanted)
    del st.machines["2"]  # nfs-01 never added
    del st.units["kubernetes-worker-gpu/0"]
    del st.applications["calico"]
    st.relations = st.relations[:3]
    st.applications["kubernetes-worker-gpu"] = JujuApplication("kubernetes-worker-gpu", "kubernetes-worker",
                                                               "1.31/stable", exposed=False)
    cfg = configs(wanted)
    cfg["containerd-gpu"] = {"gpu_driver": "none"}
    cfg["etcd"] = {}  # an option with no value yet
    d = diff(wanted, Current(st, cfg, [KEY]), KEY, {"cp-01": "0"})
    assert not d.create_model and not d.add_key
    assert [m.hostname for m in d.machines] == ["nfs-01"]
    assert [a.name for a in d.deploy] == ["calico"]
    assert d.units == {"kubernetes-worker-gpu": [Placement("gpu-01")]}
    assert len(d.relations) == len(wanted.relations) - 3
    assert d.expose == ["kubernetes-worker-gpu"]
    assert d.config == {"containerd-gpu": {"gpu_driver": "nvidia"}, "etcd": {"channel": "3.4/stable"}}


def test_a_channel_or_charm_botlab_would_have_to_replace_is_a_conflict(wanted: Wanted) -> None:
    st = complete(wanted)
    st.applications["etcd"] = JujuApplication("etcd", "etcd", "1.30/stable")
    st.applications["easyrsa"] = JujuApplication("easyrsa", "vault", "1.31/stable")
    d = diff(wanted, Current(st, configs(wanted), [KEY]), KEY, {})
    reasons = {c.target: c.reason for c in d.conflicts}
    assert "juju refresh etcd --channel 1.31/stable" in reasons["application etcd"]
    assert "runs charm vault" in reasons["application easyrsa"]
    assert not d.empty


def test_machines_are_matched_by_pin_tag_and_recorded_ids_only_when_they_still_carry_it(wanted: Wanted) -> None:
    st = ModelStatus("m")
    st.machines = {
        "0": machine("0", "gpu-01"),  # a model made again: ids started over
        "3": JujuMachine("3", hardware="arch=amd64 tags=demo,demo-pin-cp-01"),  # MAAS's tags count too
        "5": machine("5", "cp-01"),
        "0/lxd/1": JujuMachine("0/lxd/1", parent="0"),
    }
    ids = match_machines(wanted, st, {"cp-01": "0", "gpu-01": "7"})
    assert ids == {"cp-01": "3", "gpu-01": "0"}
    assert match_machines(wanted, st, {"cp-01": "5"})["cp-01"] == "5"
    assert match_machines(wanted, None, {"cp-01": "0"}) == {}


def test_option_values_compare_as_juju_spells_them() -> None:
    assert option_text(True) == "true" and option_text(False) == "false"
    assert option_text(3) == "3" and option_text("1.31/stable") == "1.31/stable"
    assert charm_name("ch:amd64/jammy/etcd-760") == "etcd"
    assert charm_name("kubernetes-control-plane") == "kubernetes-control-plane"


# --- settling ----------------------------------------------------------------------------------


def test_settled_means_machines_started_units_placed_subordinates_present_and_all_active_idle(
        wanted: Wanted) -> None:
    st = complete(wanted)
    ids = {"cp-01": "0", "gpu-01": "1", "nfs-01": "2"}
    assert settle(wanted, st, ids, docker=False, gpu_hosts=["gpu-01"]).done
    rows = settle(wanted, st, ids, docker=False, gpu_hosts=[]).rows
    assert rows["etcd/0"] == ("active/idle", "etcd on machine 0 (cp-01): -")
    assert rows["nfs-01"] == ("started", "machine 2 (nfs-01)")

    del st.units["calico/1"]
    st.machines["2"] = machine("2", "nfs-01", started=False, status="allocating", message="Deploying")
    st.units["etcd/0"] = unit("etcd/0", "0", "waiting", "executing", "Waiting for certificate authority")
    state = settle(wanted, st, ids, docker=False, gpu_hosts=[])
    assert not state.done and not state.errors
    assert "kubernetes-worker-gpu/0 (no calico subordinate yet)" in state.pending
    assert "nfs-01 (machine 2: allocating: Deploying)" in state.pending
    assert "etcd/0 on machine 0 (cp-01) (waiting/executing: Waiting for certificate authority)" in state.pending


def test_errors_name_the_unit_or_machine_and_what_juju_said(wanted: Wanted) -> None:
    st = complete(wanted)
    st.units["etcd/0"] = unit("etcd/0", "0", "error", "idle", 'hook failed: "install"')
    st.machines["2"] = machine("2", "nfs-01", started=False, status="provisioning error",
                               message="Failed deployment: disk erase failed")
    state = settle(wanted, st, {"cp-01": "0", "gpu-01": "1", "nfs-01": "2"}, docker=False, gpu_hosts=[])
    assert state.errors == {
        "etcd/0": 'etcd/0 on machine 0 (cp-01): hook failed: "install"',
        "nfs-01": "nfs-01 (Juju machine 2): provisioning error: Failed deployment: disk erase failed",
    }
    assert state.machine_errors == {"nfs-01"}


def test_with_docker_gpu_workers_waiting_for_the_nvidia_runtime_count_as_settled() -> None:
    waiting = unit("kubernetes-worker-gpu/0", "1", "waiting", "idle", "Waiting for kubelet to start.")
    assert unit_settled(waiting, docker_gpu_host=True)
    assert not unit_settled(waiting, docker_gpu_host=False)  # containerd, or a host without GPUs
    other = unit("kubernetes-worker-gpu/0", "1", "waiting", "idle", "Waiting for kube-control relation")
    assert not unit_settled(other, docker_gpu_host=True)
    busy = unit("kubernetes-worker-gpu/0", "1", "waiting", "executing", "Waiting for kubelet to start.")
    assert not unit_settled(busy, docker_gpu_host=True)


def test_missing_relations_and_units_keep_the_wait_going(wanted: Wanted) -> None:
    st = complete(wanted)
    st.relations = st.relations[1:]
    del st.units["kubernetes-worker-gpu/0"]
    del st.units["containerd-gpu/0"], st.units["calico/1"]
    state = settle(wanted, st, {"cp-01": "0", "gpu-01": "1", "nfs-01": "2"}, docker=False, gpu_hosts=[])
    assert f"relation {wanted.relations[0]} (not in the model yet)" in state.pending
    assert "application kubernetes-worker-gpu (1 unit(s) not added yet)" in state.pending


def test_pin_tags_are_the_ones_given(tmp_path: Path) -> None:
    # The stage passes the pin tags enlist recorded; the bundle and its reading both use them.
    inv = load_inventory(write_inventory(tmp_path, BASE))
    pins = {h: f"elsewhere-{h}" for h in inv.hostnames}
    assert {m.hostname: m.pin_tag for m in wanted_state(inv, pins).machines} == pins
