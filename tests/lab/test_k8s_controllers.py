"""The lab's Kubernetes API server with its controllers attached, driven by the official `kubernetes`
client and kubectl as botlab drives a real cluster: rollouts that finish, DaemonSets on the right nodes,
GPU pods scheduled only where GPUs are advertised (else the scheduler's real message), a RuntimeClass
whose handler the node lacks leaving its pod Pending with the kubelet's event, and the NVIDIA device
plugin stand-in making GPU nodes advertise their count.

No lab hosts: the server runs on 127.0.0.1 from a thread; the controllers run on its loop. Expectations
follow kubernetes v1.31 (pkg/controller, pkg/scheduler, pkg/kubelet) and containerd v1.7's CRI plugin;
see botlab/lab/k8s/controllers/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from botlab.lab.k8s import K8sApiServer, run_k8s
from botlab.lab.k8s.controllers import Delays, with_controllers
from tests.support.polling import eventually

pytestmark = pytest.mark.lab

KUBECTL = shutil.which("kubectl")
GPU = "nvidia.com/gpu"

# What the lab would read from its hosts: the containerd runtimes configured, the GPUs present.
RUNTIMES: dict[str, tuple[set[str], str]] = {"cp-1": ({"runc"}, "runc"), "w-1": ({"runc"}, "runc"),
                                             "gpu-1": ({"runc", "nvidia"}, "nvidia")}
GPUS = {"gpu-1": 8}


@pytest.fixture(scope="module")
def server() -> Iterator[K8sApiServer]:
    controllers = with_controllers(runtimes_of=RUNTIMES.get, gpus_of=lambda node: GPUS.get(node, 0),
                                   delays=Delays(pod_start_s=0.1, tick_s=0.02))
    with run_k8s(controllers=controllers) as srv:
        yield srv


@pytest.fixture(scope="module")
def kubeconfig(server: K8sApiServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture(scope="module", autouse=True)
def nodes(core: client.CoreV1Api) -> None:
    """Three kubelets register: a control-plane node, a worker and a GPU worker (labelled by the gpu stage)."""
    for index, (name, labels) in enumerate((("cp-1", {"node-role.kubernetes.io/control-plane": ""}),
                                            ("w-1", {}), ("gpu-1", {"nvidia.com/gpu.present": "true"}))):
        core.create_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
                          "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                                     "addresses": [{"type": "InternalIP", "address": f"10.10.0.{index + 10}"}],
                                     "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                                     "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "t-" + request.node.name.replace("_", "-").lower()[:50].strip("-")
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    home = tmp_path_factory.mktemp("kubectl-home")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}
        result = subprocess.run([str(KUBECTL), f"--cache-dir={home / 'cache'}", *args], env=env, capture_output=True,
                                text=True, timeout=90)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


def conditions(obj: Any) -> dict[str, Any]:
    return {c.type: c for c in obj.status.conditions or []}


def test_deployment_rolls_out_and_kubectl_waits_for_it(apps: client.AppsV1Api, core: client.CoreV1Api,
                                                       namespace: str, kubectl: Callable[..., Any]) -> None:
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}})
    waited = kubectl("-n", namespace, "wait", "--for=condition=Available", "deployment/web", "--timeout=30s")
    assert waited.stdout.strip() == "deployment.apps/web condition met"
    rollout = kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=30s")
    assert 'deployment "web" successfully rolled out' in rollout.stdout
    d = apps.read_namespaced_deployment("web", namespace)
    assert d.status.ready_replicas == d.spec.replicas == 3
    assert d.status.updated_replicas == d.status.available_replicas == 3
    assert d.status.observed_generation == d.metadata.generation
    found = conditions(d)
    assert (found["Available"].status, found["Available"].reason) == ("True", "MinimumReplicasAvailable")
    assert (found["Progressing"].status, found["Progressing"].reason) == ("True", "NewReplicaSetAvailable")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 3 and all(p.status.phase == "Running" for p in pods)
    assert all(p.status.pod_ip and p.status.host_ip for p in pods)
    table = kubectl("-n", namespace, "get", "deployment", "web").stdout.splitlines()
    assert table[1].split()[:4] == ["web", "3/3", "3", "3"]


def test_daemonset_with_a_node_selector_runs_only_on_matching_nodes(apps: client.AppsV1Api, core: client.CoreV1Api,
                                                                    namespace: str) -> None:
    apps.create_namespaced_daemon_set(namespace, {
        "metadata": {"name": "gpu-agent"},
        "spec": {"selector": {"matchLabels": {"app": "gpu-agent"}},
                 "template": {"metadata": {"labels": {"app": "gpu-agent"}},
                              "spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
                                       "containers": [{"name": "agent", "image": "busybox"}]}}}})
    ds = eventually(lambda: apps.read_namespaced_daemon_set("gpu-agent", namespace),
                    lambda d: d.status.number_ready == 1)
    assert (ds.status.desired_number_scheduled, ds.status.current_number_scheduled,
            ds.status.updated_number_scheduled, ds.status.number_available) == (1, 1, 1, 1)
    pods = core.list_namespaced_pod(namespace).items
    assert [p.spec.node_name for p in pods] == ["gpu-1"]


def test_gpu_pod_is_unschedulable_until_the_device_plugin_advertises_gpus(apps: client.AppsV1Api,
                                                                          core: client.CoreV1Api,
                                                                          namespace: str) -> None:
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "smoke"},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "smoke", "image": "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
                                 "resources": {"limits": {GPU: 1}}}]}})
    message = ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: "
               "3 No preemption victims found for incoming pod..")
    pod = eventually(lambda: core.read_namespaced_pod("smoke", namespace),
                     lambda p: "PodScheduled" in conditions(p))
    scheduled = conditions(pod)["PodScheduled"]
    assert (scheduled.status, scheduled.reason, scheduled.message) == ("False", "Unschedulable", message)
    events = eventually(lambda: core.list_namespaced_event(namespace, field_selector="reason=FailedScheduling").items,
                        lambda items: len(items) == 1)
    assert (events[0].type, events[0].message, events[0].reporting_component) == (
        "Warning", message, "default-scheduler")

    # The device plugin (its upstream manifest's shape) in kube-system: gpu-1's default runtime is nvidia.
    apps.create_namespaced_daemon_set("kube-system", {
        "metadata": {"name": "nvidia-device-plugin-daemonset"},
        "spec": {"selector": {"matchLabels": {"name": "nvidia-device-plugin-ds"}},
                 "template": {"metadata": {"labels": {"name": "nvidia-device-plugin-ds"}},
                              "spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
                                       "priorityClassName": "system-node-critical",
                                       "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
                                       "containers": [{"name": "nvidia-device-plugin-ctr",
                                                       "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"}]}}}})
    try:
        node = eventually(lambda: core.read_node("gpu-1"), lambda n: GPU in (n.status.allocatable or {}))
        assert (node.status.capacity[GPU], node.status.allocatable[GPU]) == ("8", "8")
        assert GPU not in (core.read_node("w-1").status.allocatable or {})
        pod = eventually(lambda: core.read_namespaced_pod("smoke", namespace), lambda p: p.status.phase == "Running")
        assert pod.spec.node_name == "gpu-1"
    finally:
        apps.delete_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system")
    node = eventually(lambda: core.read_node("gpu-1"), lambda n: n.status.allocatable.get(GPU) == "0")
    assert node.status.capacity[GPU] == "8"  # kept through the device manager's grace period


def test_runtimeclass_handler_missing_on_the_node_leaves_the_pod_pending(core: client.CoreV1Api,
                                                                         api: client.ApiClient,
                                                                         namespace: str) -> None:
    node_api = client.NodeV1Api(api)
    node_api.create_runtime_class({"metadata": {"name": "nvidia-test"}, "handler": "nvidia"})
    try:
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": "in-nvidia"},
            "spec": {"runtimeClassName": "nvidia-test", "nodeSelector": {"kubernetes.io/hostname": "w-1"},
                     "containers": [{"name": "main", "image": "busybox"}]}})
        message = ("Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: "
                   'no runtime for "nvidia" is configured')
        events = eventually(
            lambda: core.list_namespaced_event(namespace, field_selector="reason=FailedCreatePodSandBox").items,
            lambda items: len(items) == 1)
        assert (events[0].type, events[0].message, events[0].source.component, events[0].source.host) == (
            "Warning", message, "kubelet", "w-1")
        time.sleep(0.3)  # well past pod_start_s: still not started
        pod = core.read_namespaced_pod("in-nvidia", namespace)
        assert pod.status.phase == "Pending" and pod.spec.node_name == "w-1"
        assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    finally:
        node_api.delete_runtime_class("nvidia-test")


def test_a_pod_naming_a_missing_runtimeclass_is_refused(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(namespace, {"metadata": {"name": "nope"}, "spec": {
            "runtimeClassName": "no-such-class", "containers": [{"name": "main", "image": "busybox"}]}})
    assert refused.value.status == 403
    assert 'pods \\"nope\\" is forbidden: pod rejected: RuntimeClass \\"no-such-class\\" not found' in \
        refused.value.body
