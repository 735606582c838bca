"""The gpu stage end to end on lab hosts (real OpenSSH servers, the lab's containerd and docker
charms and NVIDIA tools), through `botlab up` with every stage, for each method and runtime:

- ssh with containerd: the drop-in carrying the CRI section, the `imports` line; a second `up`
  changes nothing and restarts nothing; the charm re-rendering config.toml (a config change
  through Juju behind botlab's back) is detected and repaired; an SSH connection cut mid-run is
  retried and converges; a host presenting another host key is refused; an unreachable host
  fails the stage naming it while the other converges, and the next `up` finishes it.
- charm (containerd): gpu_driver through Juju, then the same host checks (the same lab, switched
  from ssh: the charm installs its packages and renders its runtime); gpu_driver switched off
  behind botlab's back is set again and the runtime comes back.
- ssh with docker: test_gpu_stage_docker.py (its own lab: one lab network at a time).

Four machines each: node-03 and node-04 have GPUs and the NVIDIA container toolkit (as the
guide's operators had them); node-01 and node-02 have none and are never touched."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from botlab.lab.hosts.manager import hosts_supported
from tests.support.kubelab import KubeLab, running_lab

WHY_NOT = hosts_supported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=f"lab hosts: {WHY_NOT}")]
GPU = ("node-03", "node-04")
OTHERS = ("node-01", "node-02")
BINARY = "/usr/bin/nvidia-container-runtime"
DROPIN = "/etc/containerd/conf.d/99-nvidia.toml"
FAST_SSH = {"BOTLAB_CALL_TIMEOUT": "3", "BOTLAB_UNREACHABLE_TIMEOUT": "4"}


def actions(doc: dict[str, Any]) -> dict[str, str]:
    return {s["stage"]: s["action"] for s in doc["stages"]}


def gpu_error(doc: dict[str, Any]) -> str:
    return str(next(s for s in doc["stages"] if s["stage"] == "gpu").get("error") or "")


def outputs(lab: KubeLab, stage: str) -> dict[str, Any]:
    status = lab.json("status")
    return dict(next(s for s in status["stages"] if s["stage"] == stage)["outputs"] or {})


def running(lab: KubeLab, host: str, daemon: str = "containerd") -> dict[str, Any]:
    """What the running daemon loaded when it last started (the lab tools' state)."""
    code, out = lab.host_sh(host, f"sudo cat /run/{daemon}/lab-state.json")
    assert code == 0, (host, out)
    return dict(json.loads(out))


def runtimes_now(lab: KubeLab, host: str) -> set[str] | None:
    """The runtimes the running containerd loaded; None while it restarts."""
    code, out = lab.host_sh(host, "sudo cat /run/containerd/lab-state.json")
    return set(json.loads(out)["runtimes"]) if code == 0 else None


def exists(lab: KubeLab, host: str, path: str) -> bool:
    return lab.host_sh(host, f"sudo test -e {path}")[0] == 0


def wait_for(lab: KubeLab, host: str, command: str, what: str) -> None:
    """Until `command` succeeds on the host (a charm hook's effect arrives on its own time)."""
    code, out = lab.host_sh(host, f"for i in $(seq 300); do {command} && exit 0; sleep 0.1; done; exit 1")
    assert code == 0, f"{host}: not {what} within 30s: {out}"


def assert_gpus_schedulable(lab: KubeLab, runtime_class: str | None) -> None:
    """Every GPU Node advertises its GPUs (MAAS's count), no other Node does; the device plugin
    runs on the GPU Nodes only; the RuntimeClass exists only when asked, with that handler; a
    GPU Pod lands on a GPU Node."""
    from kubernetes import client, config

    api = config.new_client_from_config(str(lab.inventory.parent / ".botlab" / "kubeconfig"))
    core = client.CoreV1Api(api)
    enlisted = outputs(lab, "enlist")["machines"]
    nodes = {n.metadata.name: n for n in core.list_node().items}
    advertised = {name: (n.status.allocatable or {}).get("nvidia.com/gpu") for name, n in nodes.items()}
    assert advertised == {**dict.fromkeys(OTHERS), **{h: str(enlisted[h]["hardware"]["gpus"]) for h in GPU}}
    pods = core.list_namespaced_pod("kube-system", label_selector="name=nvidia-device-plugin-ds").items
    assert sorted({p.spec.node_name for p in pods}) == list(GPU)
    daemonset = client.AppsV1Api(api).read_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system")
    assert daemonset.spec.template.spec.runtime_class_name == runtime_class
    classes = {c.metadata.name: c.handler for c in client.NodeV1Api(api).list_runtime_class().items}
    assert classes == ({"nvidia": runtime_class} if runtime_class else {})
    pod = core.create_namespaced_pod("default", {
        "metadata": {"name": "gpu-check"}, "spec": {
            "runtimeClassName": runtime_class, "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
                            "resources": {"limits": {"nvidia.com/gpu": 1}}}]}})
    try:
        wait_until(lambda: core.read_namespaced_pod("gpu-check", "default").spec.node_name, "gpu-check scheduled")
        assert core.read_namespaced_pod(pod.metadata.name, "default").spec.node_name in GPU
    finally:
        core.delete_namespaced_pod("gpu-check", "default")


def wait_until(ok: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"not {what} within {timeout:.0f}s"
        time.sleep(0.2)


def set_config(lab: KubeLab, app: str, config: dict[str, str]) -> None:
    async def work(model: Any) -> None:
        await model.applications[app].set_config(config)

    lab.on_model(work)


def units(lab: KubeLab, prefix: str) -> dict[str, tuple[str, str, str]]:
    async def work(model: Any) -> dict[str, tuple[str, str, str]]:
        status = await model.get_status()
        out = {}
        for app in status.applications.values():
            for name, unit in (app.units or {}).items():
                if name.startswith(prefix):
                    out[name] = (unit.workload_status.status, unit.agent_status.status, unit.workload_status.info)
        return out

    return lab.on_model(work)


def artifact_server(lab: KubeLab, *, serving: bool) -> None:
    lab._call(lab.info.control_url + "artifacts", "POST", {"serving": serving})


# --- containerd: ssh, then charm ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def ctd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    with running_lab(tmp_path_factory.mktemp("gpu-ctd"), machines=4, gpus=2, toolkit=True) as lab:
        lab.edit_inventory(gpu_method="ssh")
        assert lab.botlab("fetch") == 0, lab.stderr
        artifact_server(lab, serving=False)  # an offline site: the run works from botlab's cache
        doc = lab.json("up")
        artifact_server(lab, serving=True)
        assert doc["_code"] == 0, doc
        assert actions(doc) == {"enlist": "ran", "kubernetes": "ran", "gpu": "ran"}, doc
        yield lab


def test_ssh_containerd_registers_the_runtime_on_gpu_hosts_only_and_a_rerun_changes_nothing(ctd: KubeLab) -> None:
    gpu = outputs(ctd, "gpu")
    assert {h: (x["runtime"], x["method"]) for h, x in gpu["hosts"].items()} == dict.fromkeys(GPU, ("nvidia", "ssh"))
    started = {}
    for host in GPU:
        state = running(ctd, host)
        assert state["runtimes"]["nvidia"]["binary_name"] == BINARY, host
        assert state["imports"][-1] == DROPIN, state["imports"]
        # The drop-in carried the charm's whole CRI section (containerd#5837): its settings are still in effect.
        assert state["cri"]["config"]["sandbox_image"] == "rocks.canonical.com:443/cdk/pause:3.6"
        assert state["default_runtime_name"] == "runc"  # nvidia is the default only if the inventory says so
        started[host] = state["started_at"]
    for host in OTHERS:
        assert not exists(ctd, host, DROPIN), host
        assert "nvidia" not in running(ctd, host)["runtimes"]
    assert_gpus_schedulable(ctd, "nvidia")

    mark = ctd.juju_seq()
    again = ctd.json("up")
    assert again["_code"] == 0, again
    assert actions(again) == dict.fromkeys(("enlist", "kubernetes", "gpu"), "verified"), again
    assert ctd.juju_mutations(mark) == []
    assert {h: running(ctd, h)["started_at"] for h in GPU} == started  # zero restarts


def test_the_clusters_api_answers_at_the_control_plane_hosts_address(ctd: KubeLab) -> None:
    """With lab hosts, the API server listens inside the control-plane host's network namespace,
    where the kubeconfig from Juju's get-kubeconfig points."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(ctd.inventory.parent / ".botlab" / "kubeconfig")))
    nodes = {n.metadata.name: n for n in api.list_node().items}
    assert sorted(nodes) == sorted([*GPU, *OTHERS])
    hosts = outputs(ctd, "kubernetes")["hosts"]
    for name, node in nodes.items():
        assert {a.type: a.address for a in node.status.addresses}["InternalIP"] == hosts[name]["address"]


def test_a_pod_in_the_nvidia_runtime_class_on_a_host_without_it_fails_as_kubelet_reports(ctd: KubeLab) -> None:
    """The RuntimeClass names a runtime the GPU hosts have; on node-02 (no NVIDIA runtime, as its
    own containerd shows) a Pod in that class never starts, with kubelet's message."""
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(str(ctd.inventory.parent / ".botlab" / "kubeconfig")))
    core.create_namespaced_pod("default", {"metadata": {"name": "wrong-host"}, "spec": {
        "runtimeClassName": "nvidia", "nodeSelector": {"kubernetes.io/hostname": "node-02"},
        "containers": [{"name": "c", "image": "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"}]}})
    try:
        def failing() -> str:
            events = core.list_namespaced_event("default", field_selector="involvedObject.name=wrong-host").items
            return next((e.message for e in events if e.reason == "FailedCreatePodSandBox"), "")

        wait_until(failing, "wrong-host's sandbox failure reported")
        assert failing() == ("Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox"
                             ' runtime: no runtime for "nvidia" is configured')
        assert core.read_namespaced_pod("wrong-host", "default").status.phase == "Pending"
    finally:
        core.delete_namespaced_pod("wrong-host", "default")


def test_the_charm_rerendering_config_toml_is_detected_and_repaired(ctd: KubeLab) -> None:
    set_config(ctd, "containerd-gpu", {"http_proxy": "http://proxy.lab:3128"})  # behind botlab's back
    for host in GPU:  # the charm renders the whole file again, without the imports line
        wait_for(ctd, host, "! grep -q '^imports' /etc/containerd/config.toml", "re-rendered")
        wait_until(lambda h=host: runtimes_now(ctd, h) == {"runc"}, f"{host}: restarted by the charm")
    plan = ctd.json("plan", "gpu")
    gpu = next(s for s in plan["stages"] if s["stage"] == "gpu")
    assert gpu["note"].startswith("drift:"), gpu
    todo = {(c["action"], c["target"]) for c in gpu["changes"]}
    assert {("write", f"imports line in config.toml on {h}") for h in GPU} <= todo, todo
    assert {("restart", f"restart containerd on {h}") for h in GPU} <= todo, todo
    doc = ctd.json("up")
    assert doc["_code"] == 0, doc
    assert actions(doc)["gpu"] == "reapplied", doc
    for host in GPU:
        state = running(ctd, host)
        assert state["runtimes"]["nvidia"]["binary_name"] == BINARY
        assert state["imports"][-1] == DROPIN
    assert ctd.json("up")["stages"][-1]["action"] == "verified"


def test_an_ssh_connection_cut_mid_run_is_retried_and_converges(ctd: KubeLab) -> None:
    assert ctd.host_sh("node-04", f"sudo rm {DROPIN}")[0] == 0  # drift
    fault = {"drop_ssh": [{"command": "systemctl restart containerd", "times": 1}]}
    code, _ = ctd.host_sh("node-04", f"echo '{json.dumps(fault)}' | sudo tee /etc/botlab-lab/faults.json")
    assert code == 0
    before = running(ctd, "node-04")["started_at"]
    doc = ctd.json("up")
    assert doc["_code"] == 0, doc
    assert actions(doc)["gpu"] == "reapplied", doc
    _, left = ctd.host_sh("node-04", "sudo cat /etc/botlab-lab/faults.json")
    assert json.loads(left)["drop_ssh"][0]["times"] == 0  # the connection was cut at the restart
    state = running(ctd, "node-04")
    assert state["started_at"] > before and state["runtimes"]["nvidia"]["binary_name"] == BINARY
    assert not exists(ctd, "node-04", "/var/lib/botlab/handlers/gpu-containerd")  # nothing owed any more
    assert ctd.json("up")["stages"][-1]["action"] == "verified"


def test_a_host_presenting_another_key_is_refused_while_the_other_converges(ctd: KubeLab) -> None:
    for host in GPU:
        assert ctd.host_sh(host, f"sudo rm {DROPIN}")[0] == 0
    key = "/etc/ssh/ssh_host_ed25519_key"
    swap = (f"sudo cp {key} /root/saved-key && sudo rm -f /tmp/k /tmp/k.pub && ssh-keygen -q -t ed25519 -N '' -f /tmp/k"
            f" && sudo cp /tmp/k {key}")
    assert ctd.host_sh("node-03", swap)[0] == 0  # what a host redeployed behind botlab's back shows
    try:
        doc = ctd.json("up")
        assert doc["_code"] == 1, doc
        error = gpu_error(doc)
        assert "node-03" in error and "presented host key ssh-ed25519 SHA256:" in error, error
        assert "node-04" not in error
        assert exists(ctd, "node-04", DROPIN) and not exists(ctd, "node-03", DROPIN)
    finally:
        ctd.host_sh("node-03", f"sudo cp /root/saved-key {key}")
    doc = ctd.json("up")
    assert doc["_code"] == 0, doc
    assert exists(ctd, "node-03", DROPIN)


def test_an_unreachable_host_fails_the_stage_naming_it_and_the_next_up_finishes_it(
        ctd: KubeLab, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAST_SSH.items():
        monkeypatch.setenv(name, value)
    for host in GPU:
        assert ctd.host_sh(host, f"sudo rm {DROPIN}")[0] == 0
    netns = ctd.host_netns("node-04")
    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    try:
        doc = ctd.json("up")
        assert doc["_code"] == 1, doc
        error = gpu_error(doc)
        assert "node-04" in error and "node-03" not in error, error
        assert exists(ctd, "node-03", DROPIN)
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    doc = ctd.json("up")
    assert doc["_code"] == 0, doc
    assert exists(ctd, "node-04", DROPIN)


def test_an_artifact_with_another_checksum_stops_the_stage_naming_both_sums(ctd: KubeLab) -> None:
    doc = yaml.safe_load(ctd.inventory.read_text())
    real = doc["artifacts"]["nvidia_device_plugin"]["sha256"]
    wrong = "ab" * 32
    doc["artifacts"]["nvidia_device_plugin"]["sha256"] = wrong  # a mirror serving another file, say
    ctd.inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        failed = ctd.json("up")
        assert failed["_code"] == 1 and actions(failed)["gpu"] == "failed", failed
        error = gpu_error(failed)
        assert "nvidia_device_plugin" in error and f"has sha256 {real}, expected {wrong}" in error, error
    finally:
        doc["artifacts"]["nvidia_device_plugin"]["sha256"] = real
        ctd.inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert ctd.json("up")["_code"] == 0


def test_switching_to_the_charm_method_sets_gpu_driver_and_checks_the_hosts(ctd: KubeLab) -> None:
    ctd.edit_inventory(gpu_method="charm")
    doc = ctd.json("up")
    assert doc["_code"] == 0, doc
    gpu = outputs(ctd, "gpu")
    assert {h: x["runtime"] for h, x in gpu["hosts"].items()} == dict.fromkeys(GPU, "nvidia-container-runtime")
    for host in GPU:
        state = running(ctd, host)
        assert state["default_runtime_name"] == "nvidia-container-runtime"
        assert state["runtimes"]["nvidia-container-runtime"]["binary_name"] == BINARY
    for host in OTHERS:
        assert "nvidia-container-runtime" not in running(ctd, host)["runtimes"]
    assert_gpus_schedulable(ctd, None)

    async def read(model: Any) -> Any:
        return (await model.applications["containerd-gpu"].get_config())["gpu_driver"]["value"]

    assert ctd.on_model(read) == "nvidia"
    mark = ctd.juju_seq()
    again = ctd.json("up")
    assert actions(again)["gpu"] == "verified" and ctd.juju_mutations(mark) == []

    set_config(ctd, "containerd-gpu", {"gpu_driver": "none"})  # behind botlab's back: the charm purges
    for host in GPU:
        wait_until(lambda h=host: runtimes_now(ctd, h) == {"runc"}, f"{host}: purged")
    doc = ctd.json("up")
    assert doc["_code"] == 0, doc
    # The bundle says gpu_driver: nvidia with this method, so the kubernetes stage sets it back; gpu verifies.
    assert actions(doc) == {"enlist": "verified", "kubernetes": "reapplied", "gpu": "verified"}, doc
    assert ctd.on_model(read) == "nvidia"
    for host in GPU:
        assert running(ctd, host)["runtimes"]["nvidia-container-runtime"]["binary_name"] == BINARY
