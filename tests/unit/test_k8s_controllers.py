"""The lab cluster's controllers, scheduler, kubelets and device plugin (botlab/lab/k8s/controllers/),
driven pass by pass over a store with a fake clock.

Expectations follow kubernetes/kubernetes v1.31: pkg/controller/{deployment,replicaset,daemon,
statefulset,nodelifecycle,podgc}, pkg/scheduler (FitError, the filter plugins, DefaultPreemption),
pkg/kubelet (kuberuntime, lifecycle/predicate.go, cm/devicemanager), the Priority, DefaultTolerationSeconds
and RuntimeClass admission plugins; containerd v1.7's CRI plugin for the sandbox runtime error; NVIDIA's
k8s-device-plugin v0.20.0 for its NVML failure.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from botlab.lab.k8s import K8sApiServer, errors
from botlab.lab.k8s.controllers import (
    Controllers,
    Delays,
    fit_error,
    pod_requests,
    quantity,
    template_hash,
)
from botlab.lab.k8s.store import Store

GPU = "nvidia.com/gpu"
NS = "default"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Cluster:
    """A store (with the API server's validation and admission), controllers over it, and the
    hosts' facts they ask about."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.store: Store = K8sApiServer(store=Store(clock=self.clock)).store
        self.runtimes: dict[str, tuple[set[str], str]] = {}
        self.gpus: dict[str, int] = {}
        self.controllers = Controllers(self.store, runtimes_of=self.runtimes.get,
                                       gpus_of=lambda node: self.gpus.get(node, 0),
                                       delays=Delays(pod_start_s=2.0, device_plugin_grace_s=300.0))

    def t(self, plural: str) -> Any:
        group = {"deployments": "apps", "replicasets": "apps", "daemonsets": "apps", "statefulsets": "apps",
                 "controllerrevisions": "apps", "runtimeclasses": "node.k8s.io",
                 "priorityclasses": "scheduling.k8s.io"}.get(plural, "")
        return self.store.type_of(group, plural)

    def node(self, name: str, *, labels: dict[str, str] | None = None, ready: str = "True", cpu: str = "8",
             memory: str = "32Gi", pods: str = "110", taints: list[dict[str, Any]] | None = None,
             address: str | None = None) -> dict[str, Any]:
        """A Node as a kubelet registers it."""
        index = len(self.list("nodes")) + 1
        body: dict[str, Any] = {
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints} if taints else {},
            "status": {"conditions": [{"type": "Ready", "status": ready}],
                       "addresses": [{"type": "InternalIP", "address": address or f"10.0.0.{index}"},
                                     {"type": "Hostname", "address": name}],
                       "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                       "allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}}
        return self.store.create(self.t("nodes"), None, body)

    def create(self, plural: str, body: dict[str, Any], namespace: str | None = NS) -> dict[str, Any]:
        t = self.t(plural)
        return self.store.create(t, namespace if t.namespaced else None, copy.deepcopy(body))

    def get(self, plural: str, name: str, namespace: str | None = NS) -> dict[str, Any]:
        t = self.t(plural)
        return self.store.get(t, namespace if t.namespaced else None, name)

    def find(self, plural: str, name: str, namespace: str | None = NS) -> dict[str, Any] | None:
        t = self.t(plural)
        return self.store.find(t, namespace if t.namespaced else None, name)

    def list(self, plural: str, namespace: str | None = None, labels: str = "") -> list[dict[str, Any]]:
        return self.store.list_objects(self.t(plural), namespace, labels)[0]

    def update(self, plural: str, obj: dict[str, Any], subresource: str = "") -> dict[str, Any]:
        t = self.t(plural)
        meta = obj["metadata"]
        return self.store.update(t, meta.get("namespace"), meta["name"], obj, subresource=subresource)[0]

    def delete(self, plural: str, name: str, namespace: str | None = NS) -> None:
        t = self.t(plural)
        self.store.delete(t, namespace if t.namespaced else None, name)

    def settle(self) -> None:
        self.controllers.settle()

    def advance(self, seconds: float) -> None:
        self.settle()
        self.clock.now += seconds
        self.settle()

    def events(self, name: str, namespace: str = NS) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in self.list("events", namespace)
                if e["involvedObject"]["name"] == name]

    def pods(self, namespace: str = NS, labels: str = "") -> list[dict[str, Any]]:
        return self.list("pods", namespace, labels)


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_]
    assert len(found) == 1, (type_, obj.get("status"))
    return found[0]


def deployment(name: str = "web", replicas: int = 3, image: str = "nginx:1.25", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}, **spec}}


def pod(name: str, *, gpus: int = 0, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"}
    if gpus:
        container["resources"] = {"limits": {GPU: gpus}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], **spec}}


PLUGIN = {
    "apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": {"name": "nvidia-device-plugin-daemonset"},
    "spec": {"selector": {"matchLabels": {"name": "nvidia-device-plugin-ds"}},
             "template": {"metadata": {"labels": {"name": "nvidia-device-plugin-ds"}},
                          "spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
                                   "priorityClassName": "system-node-critical",
                                   "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
                                   "containers": [{"name": "nvidia-device-plugin-ctr",
                                                   "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"}]}}},
}


def gpu_cluster(cluster: Cluster) -> None:
    """cp-1 (no GPU), w-1 (no GPU), gpu-1 (4 GPUs, labelled by the gpu stage)."""
    cluster.node("cp-1", labels={"node-role.kubernetes.io/control-plane": ""})
    cluster.node("w-1")
    cluster.node("gpu-1", labels={"nvidia.com/gpu.present": "true"})
    cluster.gpus["gpu-1"] = 4


# --- Deployments -----------------------------------------------------------------------------


def test_deployment_rolls_out_through_a_replicaset_to_available(cluster: Cluster) -> None:
    for name in ("n1", "n2", "n3"):
        cluster.node(name)
    created = cluster.create("deployments", deployment())
    cluster.settle()
    [rs] = cluster.list("replicasets", NS)
    hash_ = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{hash_}"
    assert rs["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                  "uid": created["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hash_}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == hash_
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    pods = cluster.pods()
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["name"].startswith(f"web-{hash_}-") and len(p["metadata"]["name"]) == len(
            f"web-{hash_}-") + 5
        assert p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert p["spec"]["nodeName"] in ("n1", "n2", "n3")
        assert cond(p, "PodScheduled")["status"] == "True"
        assert p["status"]["phase"] == "Pending"
        assert p["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["n1", "n2", "n3"]  # spread over the nodes
    d = cluster.get("deployments", "web")
    assert cond(d, "Available")["status"] == "False"
    assert cond(d, "Available")["reason"] == "MinimumReplicasUnavailable"
    assert cond(d, "Progressing")["status"] == "True"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    cluster.advance(2.0)
    d = cluster.get("deployments", "web")
    assert {k: d["status"].get(k) for k in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                            "availableReplicas", "unavailableReplicas")} == {
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "unavailableReplicas": None}
    available, progressing = cond(d, "Available"), cond(d, "Progressing")
    assert (available["status"], available["reason"], available["message"]) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "True", "NewReplicaSetAvailable", f'ReplicaSet "web-{hash_}" has successfully progressed.')
    rs = cluster.get("replicasets", f"web-{hash_}")
    assert rs["status"] == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
                            "observedGeneration": 1}
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set web-{hash_} to 3") in cluster.events("web")
    assert not cluster.controllers.sync()  # settled: nothing more to do


def test_running_pod_status_is_what_the_kubelet_reports(cluster: Cluster) -> None:
    cluster.node("n1", address="10.0.0.7")
    cluster.create("pods", pod("p", containers=[{"name": "web", "image": "nginx"}]))
    cluster.advance(2.0)
    p = cluster.get("pods", "p")
    status = p["status"]
    assert status["phase"] == "Running"
    assert status["hostIP"] == "10.0.0.7" and status["hostIPs"] == [{"ip": "10.0.0.7"}]
    assert status["podIP"].startswith("192.168.") and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["startTime"]
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", "True"),
        ("ContainersReady", "True"), ("PodScheduled", "True")]
    [container] = status["containerStatuses"]
    assert container["image"] == "docker.io/library/nginx:latest"
    assert container["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert container["containerID"].startswith("containerd://")
    assert (container["ready"], container["started"], container["restartCount"]) == (True, True, 0)
    assert "startedAt" in container["state"]["running"]
    reasons = [r for _t, r, _m in cluster.events("p")]
    assert reasons == ["Scheduled", "Pulled", "Created", "Started"]
    assert ("Normal", "Scheduled", "Successfully assigned default/p to n1") in cluster.events("p")


def test_template_change_rolls_out_a_new_replicaset_within_surge_and_unavailability(cluster: Cluster) -> None:
    for name in ("n1", "n2"):
        cluster.node(name)
    cluster.create("deployments", deployment(replicas=4))
    cluster.advance(2.0)
    [old] = cluster.list("replicasets", NS)
    d = cluster.get("deployments", "web")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    cluster.update("deployments", d)
    most = 0
    for _ in range(20):  # maxSurge 25% of 4 = 1, maxUnavailable 25% of 4 = 1
        cluster.settle()
        most = max(most, len(cluster.pods()))
        available = sum(1 for p in cluster.pods() if p["status"].get("phase") == "Running")
        assert available >= 3 or most == 0
        cluster.clock.now += 2.0
    assert most <= 5
    rss = {rs["metadata"]["name"]: rs for rs in cluster.list("replicasets", NS)}
    assert len(rss) == 2
    new = next(rs for name, rs in rss.items() if name != old["metadata"]["name"])
    assert rss[old["metadata"]["name"]]["spec"]["replicas"] == 0
    assert new["spec"]["replicas"] == 4
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    d = cluster.get("deployments", "web")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert d["status"]["observedGeneration"] == 2
    assert (d["status"]["updatedReplicas"], d["status"]["availableReplicas"]) == (4, 4)
    assert cond(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert all(p["spec"]["containers"][0]["image"] == "nginx:1.27" for p in cluster.pods())


def test_recreate_scales_the_old_replicaset_down_before_creating_the_new(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.create("deployments", deployment(replicas=2, strategy={"type": "Recreate"}))
    cluster.advance(2.0)
    d = cluster.get("deployments", "web")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    cluster.update("deployments", d)
    cluster.controllers.sync()
    [old] = cluster.list("replicasets", NS)  # no new one while old pods run
    assert old["spec"]["replicas"] == 0
    cluster.settle()
    assert len(cluster.list("replicasets", NS)) == 2
    cluster.advance(2.0)
    d = cluster.get("deployments", "web")
    assert (d["status"]["updatedReplicas"], d["status"]["availableReplicas"]) == (2, 2)
    assert cond(d, "Available")["status"] == "True"


def test_scaling_down_and_deleting_a_deployment_removes_its_pods(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.create("deployments", deployment(replicas=3))
    cluster.advance(2.0)
    d = cluster.get("deployments", "web")
    d["spec"]["replicas"] = 1
    cluster.update("deployments", d)
    cluster.settle()
    assert len(cluster.pods()) == 1
    d = cluster.get("deployments", "web")
    assert (d["status"]["replicas"], d["status"]["availableReplicas"]) == (1, 1)
    cluster.delete("deployments", "web")
    cluster.settle()
    assert cluster.pods() == [] and cluster.list("replicasets", NS) == []


def test_deployment_times_out_progressing_when_its_pods_cannot_be_scheduled(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.create("deployments", deployment(replicas=1, progressDeadlineSeconds=30,
                                             template={"metadata": {"labels": {"app": "web"}},
                                                       "spec": {"nodeSelector": {"gpu": "true"},
                                                                "containers": [{"name": "m", "image": "x"}]}}))
    cluster.advance(10)
    assert cond(cluster.get("deployments", "web"), "Progressing")["status"] == "True"
    cluster.advance(40)
    progressing = cond(cluster.get("deployments", "web"), "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"].endswith("has timed out progressing.")


def test_a_missing_runtimeclass_fails_the_replicaset_with_the_admission_error(cluster: Cluster) -> None:
    cluster.node("n1")
    body = deployment(replicas=1)
    body["spec"]["template"]["spec"]["runtimeClassName"] = "nvidia"
    cluster.create("deployments", body)
    cluster.settle()
    [rs] = cluster.list("replicasets", NS)
    name = rs["metadata"]["name"]
    message = f'pods "{name}-" is forbidden: pod rejected: RuntimeClass "nvidia" not found'
    failure = cond(rs, "ReplicaFailure")
    assert (failure["status"], failure["reason"], failure["message"]) == ("True", "FailedCreate", message)
    assert cluster.events(name) == [("Warning", "FailedCreate", f"Error creating: {message}")]
    d_failure = cond(cluster.get("deployments", "web"), "ReplicaFailure")
    assert (d_failure["reason"], d_failure["message"]) == ("FailedCreate", message)
    cluster.create("runtimeclasses", {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                                      "metadata": {"name": "nvidia"}, "handler": "nvidia"}, None)
    cluster.advance(2.0)
    assert "conditions" not in cluster.get("replicasets", name)["status"]
    assert cond(cluster.get("deployments", "web"), "Available")["status"] == "True"


# --- admission ----------------------------------------------------------------------------------


def test_pod_admission_sets_priority_tolerations_and_refuses_unknown_classes(cluster: Cluster) -> None:
    made = cluster.create("pods", pod("plain"))
    assert made["spec"]["priority"] == 0 and made["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    assert made["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}]
    critical = cluster.create("pods", pod("critical", priorityClassName="system-node-critical"))
    assert critical["spec"]["priority"] == 2000001000
    with pytest.raises(errors.ApiError) as missing:
        cluster.create("pods", pod("nope", priorityClassName="gold"))
    assert (missing.value.code, missing.value.message) == (
        403, 'pods "nope" is forbidden: no PriorityClass with name gold was found')
    with pytest.raises(errors.ApiError) as no_class:
        cluster.create("pods", {**pod("x", runtimeClassName="nvidia"), "metadata": {"generateName": "x-"}})
    assert (no_class.value.code, no_class.value.message) == (
        403, 'pods "x-" is forbidden: pod rejected: RuntimeClass "nvidia" not found')
    cluster.create("runtimeclasses", {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                                      "metadata": {"name": "nvidia"}, "handler": "nvidia",
                                      "overhead": {"podFixed": {"cpu": "250m"}},
                                      "scheduling": {"nodeSelector": {"gpu": "true"}}}, None)
    with_class = cluster.create("pods", pod("y", runtimeClassName="nvidia"))
    assert with_class["spec"]["overhead"] == {"cpu": "250m"}
    assert with_class["spec"]["nodeSelector"] == {"gpu": "true"}


# --- DaemonSets ---------------------------------------------------------------------------------


def test_daemonset_runs_a_pod_on_each_eligible_node(cluster: Cluster) -> None:
    cluster.node("gpu-1", labels={"gpu": "true", "zone": "a"})
    cluster.node("gpu-2", labels={"gpu": "true", "zone": "b"})
    cluster.node("cpu-1", labels={"zone": "a"})
    cluster.node("gpu-tainted", labels={"gpu": "true", "zone": "a"},
                 taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}])
    cluster.node("gpu-down", labels={"gpu": "true", "zone": "a"}, ready="False")
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                              {"key": "legacy", "operator": "DoesNotExist"}]}]}}}
    cluster.create("daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                                  "spec": {"selector": {"matchLabels": {"app": "agent"}},
                                           "template": {"metadata": {"labels": {"app": "agent"}},
                                                        "spec": {"nodeSelector": {"gpu": "true"},
                                                                 "affinity": affinity,
                                                                 "containers": [{"name": "a", "image": "agent"}]}}}})
    cluster.advance(2.0)
    pods = cluster.pods()
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["gpu-1", "gpu-2"]
    for p in pods:
        node = p["spec"]["nodeName"]
        assert p["metadata"]["name"].startswith("agent-")
        terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
        keys = {(t["key"], t["effect"]) for t in p["spec"]["tolerations"]}
        assert {("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"), ("node.kubernetes.io/memory-pressure",
                                                                    "NoSchedule"),
                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule")} <= keys
        assert p["metadata"]["labels"]["controller-revision-hash"]
        assert p["metadata"]["labels"]["pod-template-generation"] == "1"
        assert p["status"]["phase"] == "Running"
    ds = cluster.get("daemonsets", "agent")
    assert ds["status"] == {"currentNumberScheduled": 2, "numberMisscheduled": 0, "desiredNumberScheduled": 2,
                            "numberReady": 2, "observedGeneration": 1, "updatedNumberScheduled": 2,
                            "numberAvailable": 2}
    assert cluster.get("nodes", "gpu-down", None)["spec"]["taints"] == [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    [revision] = cluster.list("controllerrevisions", NS)
    assert revision["revision"] == 1 and revision["metadata"]["name"].startswith("agent-")

    # The node comes up: the not-ready taint goes, and the DaemonSet follows.
    node = cluster.get("nodes", "gpu-down", None)
    node["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    cluster.update("nodes", node, "status")
    cluster.advance(2.0)
    assert "taints" not in cluster.get("nodes", "gpu-down", None)["spec"]
    assert sorted(p["spec"]["nodeName"] for p in cluster.pods()) == ["gpu-1", "gpu-2", "gpu-down"]
    # A label gone: its pod goes.
    node = cluster.get("nodes", "gpu-2", None)
    del node["metadata"]["labels"]["gpu"]
    cluster.update("nodes", node)
    cluster.settle()
    assert sorted(p["spec"]["nodeName"] for p in cluster.pods()) == ["gpu-1", "gpu-down"]
    cluster.delete("daemonsets", "agent")
    cluster.settle()
    assert cluster.pods() == []


def test_daemonset_rolling_update_replaces_one_pod_at_a_time(cluster: Cluster) -> None:
    for name in ("n1", "n2", "n3"):
        cluster.node(name)
    cluster.create("daemonsets", {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                                  "spec": {"selector": {"matchLabels": {"app": "agent"}},
                                           "template": {"metadata": {"labels": {"app": "agent"}},
                                                        "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}})
    cluster.advance(2.0)
    ds = cluster.get("daemonsets", "agent")
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    cluster.update("daemonsets", ds)
    cluster.settle()
    images = [p["spec"]["containers"][0]["image"] for p in cluster.pods()]
    assert sorted(images) == ["a:1", "a:1", "a:2"]  # maxUnavailable 1
    for _ in range(3):
        cluster.advance(2.0)
    assert [p["spec"]["containers"][0]["image"] for p in cluster.pods()] == ["a:2"] * 3
    status = cluster.get("daemonsets", "agent")["status"]
    assert (status["updatedNumberScheduled"], status["numberAvailable"], status["observedGeneration"]) == (3, 3, 2)
    assert len(cluster.list("controllerrevisions", NS)) == 2


# --- StatefulSets -------------------------------------------------------------------------------


def test_statefulset_creates_pods_in_order_once_each_is_ready(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.create("statefulsets", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "db", "image": "postgres"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                           "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}]}})
    cluster.settle()
    assert [p["metadata"]["name"] for p in cluster.pods()] == ["db-0"]
    db0 = cluster.get("pods", "db-0")
    assert (db0["spec"]["hostname"], db0["spec"]["subdomain"]) == ("db-0", "db")
    assert db0["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert db0["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "0"
    assert db0["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}}]
    assert cluster.find("persistentvolumeclaims", "data-db-0") is not None
    cluster.advance(2.0)
    assert [p["metadata"]["name"] for p in cluster.pods()] == ["db-0", "db-1"]
    cluster.advance(2.0)
    cluster.advance(2.0)
    assert [p["metadata"]["name"] for p in cluster.pods()] == ["db-0", "db-1", "db-2"]
    status = cluster.get("statefulsets", "db")["status"]
    revision = cluster.get("pods", "db-2")["metadata"]["labels"]["controller-revision-hash"]
    assert revision.startswith("db-")
    assert status == {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3,
                      "updatedReplicas": 3, "availableReplicas": 3, "currentRevision": revision,
                      "updateRevision": revision, "collisionCount": 0}
    sts = cluster.get("statefulsets", "db")
    sts["spec"]["replicas"] = 1
    cluster.update("statefulsets", sts)
    cluster.controllers.sync()
    assert [p["metadata"]["name"] for p in cluster.pods()] == ["db-0", "db-1"]  # from the highest, one at a time
    cluster.settle()
    assert [p["metadata"]["name"] for p in cluster.pods()] == ["db-0"]
    assert cluster.find("persistentvolumeclaims", "data-db-2") is not None  # retained


# --- the scheduler ------------------------------------------------------------------------------


def test_gpu_pod_waits_with_the_schedulers_message_until_a_node_advertises_gpus(cluster: Cluster) -> None:
    gpu_cluster(cluster)
    cluster.create("pods", pod("smoke", gpus=1))
    cluster.settle()
    p = cluster.get("pods", "smoke")
    message = ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: "
               "3 No preemption victims found for incoming pod..")
    scheduled = cond(p, "PodScheduled")
    assert (scheduled["status"], scheduled["reason"], scheduled["message"]) == ("False", "Unschedulable", message)
    assert "nodeName" not in p["spec"]
    [event] = [e for e in cluster.list("events", NS) if e["reason"] == "FailedScheduling"]
    assert (event["type"], event["message"], event["reportingComponent"], event["action"]) == (
        "Warning", message, "default-scheduler", "Scheduling")
    assert event["reportingInstance"] == "default-scheduler-cp-1"

    cluster.create("daemonsets", PLUGIN, "kube-system")
    cluster.advance(2.0)
    node = cluster.get("nodes", "gpu-1", None)
    assert (node["status"]["capacity"][GPU], node["status"]["allocatable"][GPU]) == ("4", "4")
    assert GPU not in cluster.get("nodes", "w-1", None)["status"]["allocatable"]
    p = cluster.get("pods", "smoke")
    assert p["spec"]["nodeName"] == "gpu-1"
    assert cond(p, "PodScheduled")["status"] == "True"


def test_unschedulable_message_counts_each_nodes_first_failing_filter(cluster: Cluster) -> None:
    gpu_cluster(cluster)
    cluster.gpus["gpu-1"] = 0
    node = cluster.get("nodes", "gpu-1", None)
    node["status"]["allocatable"][GPU] = "0"
    cluster.update("nodes", node, "status")
    cluster.create("pods", pod("smoke", gpus=1, nodeSelector={"nvidia.com/gpu.present": "true"}))
    cluster.settle()
    assert cond(cluster.get("pods", "smoke"), "PodScheduled")["message"] == (
        "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node "
        "affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling..")
    node = cluster.get("nodes", "w-1", None)
    node["spec"]["unschedulable"] = True
    cluster.update("nodes", node)
    cluster.create("nodes", {"metadata": {"name": "x-1"}, "spec": {"taints": [
        {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}, None)
    cluster.create("pods", pod("big", containers=[{"name": "m", "image": "x",
                                                   "resources": {"requests": {"cpu": "16", "memory": "1Gi"}}}]))
    cluster.settle()
    assert cond(cluster.get("pods", "big"), "PodScheduled")["message"] == (
        "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: ml}, 1 node(s) were unschedulable, "
        "2 Insufficient cpu. preemption: 0/4 nodes are available: 2 No preemption victims found for incoming pod, "
        "2 Preemption is not helpful for scheduling..")


def test_fit_error_sorts_the_counted_reasons_as_strings() -> None:
    statuses = {f"n{i}": ("Unschedulable", ["Insufficient cpu"]) for i in range(10)}
    statuses.update({"m1": ("Unschedulable", ["Insufficient memory", "Insufficient cpu"]),
                     "m2": ("Unschedulable", ["Insufficient memory"])})
    assert fit_error(12, statuses) == "0/12 nodes are available: 11 Insufficient cpu, 2 Insufficient memory."
    assert fit_error(0, {}) == "0/0 nodes are available:"


def test_not_ready_nodes_and_no_nodes(cluster: Cluster) -> None:
    cluster.create("pods", pod("early"))
    cluster.settle()
    scheduled = cond(cluster.get("pods", "early"), "PodScheduled")
    assert (scheduled["reason"], scheduled["message"]) == ("SchedulerError", "no nodes available to schedule pods")
    cluster.node("n1", ready="False")
    cluster.settle()
    assert cond(cluster.get("pods", "early"), "PodScheduled")["message"] == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }. preemption: "
        "0/1 nodes are available: 1 Preemption is not helpful for scheduling..")
    node = cluster.get("nodes", "n1", None)
    node["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    cluster.update("nodes", node, "status")
    cluster.settle()
    assert cluster.get("pods", "early")["spec"]["nodeName"] == "n1"


def test_a_higher_priority_pod_preempts_a_lower_one(cluster: Cluster) -> None:
    gpu_cluster(cluster)
    cluster.create("daemonsets", PLUGIN, "kube-system")
    cluster.advance(2.0)
    cluster.create("pods", pod("low", gpus=4))
    cluster.advance(2.0)
    assert cluster.get("pods", "low")["spec"]["nodeName"] == "gpu-1"
    for name, policy in (("high", "PreemptLowerPriority"), ("high-polite", "Never")):
        cluster.create("priorityclasses", {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                           "metadata": {"name": name}, "value": 1000, "preemptionPolicy": policy},
                       None)
    cluster.create("pods", pod("polite", gpus=1, priorityClassName="high-polite"))
    cluster.settle()
    assert cond(cluster.get("pods", "polite"), "PodScheduled")["message"] == (
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: not eligible due to "
        "preemptionPolicy=Never..")
    cluster.delete("pods", "polite")
    cluster.create("pods", pod("high", gpus=2, priorityClassName="high"))
    cluster.controllers.sync()
    assert cluster.find("pods", "low") is None
    high = cluster.get("pods", "high")
    assert high["status"]["nominatedNodeName"] == "gpu-1"
    assert cond(high, "PodScheduled")["message"] == "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    cluster.settle()
    assert cluster.get("pods", "high")["spec"]["nodeName"] == "gpu-1"
    assert ("Normal", "Preempted", f"Preempted by pod {high['metadata']['uid']} on node gpu-1") in \
        cluster.events("low")


# --- kubelets and runtimes ----------------------------------------------------------------------


def test_a_runtimeclass_handler_the_node_lacks_leaves_the_pod_creating(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.runtimes["n1"] = ({"runc"}, "runc")
    cluster.create("runtimeclasses", {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                                      "metadata": {"name": "nvidia"}, "handler": "nvidia"}, None)
    cluster.create("pods", pod("smoke", runtimeClassName="nvidia"))
    cluster.advance(30)
    p = cluster.get("pods", "smoke")
    assert p["spec"]["nodeName"] == "n1"
    assert p["status"]["phase"] == "Pending"
    assert p["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert cond(p, "PodReadyToStartContainers")["status"] == "False"
    message = ("Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: "
               'no runtime for "nvidia" is configured')
    warnings = [e for e in cluster.list("events", NS) if e["reason"] == "FailedCreatePodSandBox"]
    assert [(e["type"], e["message"], e["source"], e["involvedObject"]["name"]) for e in warnings] == [
        ("Warning", message, {"component": "kubelet", "host": "n1"}, "smoke")]
    # The runtime gets configured (the gpu stage's work): the kubelet's next try succeeds.
    cluster.runtimes["n1"] = ({"runc", "nvidia"}, "runc")
    cluster.advance(2.0)
    assert cluster.get("pods", "smoke")["status"]["phase"] == "Running"


def test_node_default_runtime_missing_and_unknown_runtimes(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.node("n2")
    cluster.runtimes["n1"] = ({"runc"}, "nvidia-container-runtime")  # a default that names no runtime section
    cluster.create("pods", pod("a", nodeName="n1"))
    cluster.create("pods", pod("b", nodeName="n2"))  # n2: unknown runtimes, anything goes
    cluster.advance(2.0)
    assert cluster.get("pods", "a")["status"]["phase"] == "Pending"
    assert ("Warning", "FailedCreatePodSandBox", "Failed to create pod sandbox: rpc error: code = Unknown desc = "
            'failed to get sandbox runtime: no runtime for "nvidia-container-runtime" is configured') in \
        cluster.events("a")
    assert cluster.get("pods", "b")["status"]["phase"] == "Running"


def test_kubelet_rejects_a_pod_bound_by_hand_to_a_node_without_gpus(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.create("pods", pod("direct", gpus=1, nodeName="n1"))
    cluster.settle()
    p = cluster.get("pods", "direct")
    assert (p["status"]["phase"], p["status"]["reason"], p["status"]["message"]) == (
        "Failed", "OutOfnvidia.com/gpu",
        "Pod was rejected: Node didn't have enough resource: nvidia.com/gpu, requested: 1, used: 0, capacity: 0")


def test_a_node_going_not_ready_marks_its_pods_not_ready(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.create("deployments", deployment(replicas=1))
    cluster.advance(2.0)
    node = cluster.get("nodes", "n1", None)
    node["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    cluster.update("nodes", node, "status")
    cluster.settle()
    [p] = cluster.pods()
    assert cond(p, "Ready")["status"] == "False"
    assert cond(cluster.get("deployments", "web"), "Available")["status"] == "False"
    assert cluster.get("nodes", "n1", None)["spec"]["taints"] == [
        {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    node = cluster.get("nodes", "n1", None)
    node["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    cluster.update("nodes", node, "status")
    cluster.settle()
    assert cond(cluster.pods()[0], "Ready")["status"] == "True"
    assert cond(cluster.get("deployments", "web"), "Available")["status"] == "True"


def test_pods_bound_to_a_deleted_node_are_collected_after_the_quarantine(cluster: Cluster) -> None:
    cluster.node("n1")
    cluster.create("pods", pod("p"))
    cluster.advance(2.0)
    cluster.delete("nodes", "n1", None)
    cluster.advance(10)
    assert cluster.find("pods", "p") is not None
    cluster.advance(40)
    assert cluster.find("pods", "p") is None


# --- the NVIDIA device plugin -------------------------------------------------------------------


def test_device_plugin_advertises_gpus_and_withdraws_them_as_the_kubelet_does(cluster: Cluster) -> None:
    gpu_cluster(cluster)
    cluster.create("daemonsets", PLUGIN, "kube-system")
    cluster.settle()
    assert GPU not in cluster.get("nodes", "gpu-1", None)["status"]["allocatable"]  # not started yet
    cluster.advance(2.0)
    [plugin] = cluster.pods("kube-system")
    assert plugin["spec"]["nodeName"] == "gpu-1" and plugin["spec"]["priority"] == 2000001000
    status = cluster.get("nodes", "gpu-1", None)["status"]
    assert (status["capacity"][GPU], status["allocatable"][GPU]) == ("4", "4")
    assert "Registered device plugin for 'nvidia.com/gpu' with Kubelet" in cluster.controllers.container_log(
        "kube-system", plugin["metadata"]["name"], "nvidia-device-plugin-ctr")
    # The plugin goes away: its devices are unhealthy at once, gone after the stop grace period.
    cluster.delete("daemonsets", "nvidia-device-plugin-daemonset", "kube-system")
    cluster.settle()
    status = cluster.get("nodes", "gpu-1", None)["status"]
    assert (status["capacity"][GPU], status["allocatable"][GPU]) == ("4", "0")
    cluster.advance(301)
    status = cluster.get("nodes", "gpu-1", None)["status"]
    assert (status["capacity"][GPU], status["allocatable"][GPU]) == ("0", "0")


def test_device_plugin_without_an_nvidia_runtime_crashes_on_nvml(cluster: Cluster) -> None:
    gpu_cluster(cluster)
    cluster.runtimes["gpu-1"] = ({"runc", "nvidia"}, "runc")  # the ssh methods: nvidia is not the default
    cluster.create("daemonsets", PLUGIN, "kube-system")
    cluster.advance(2.0)
    [plugin] = cluster.pods("kube-system")
    name = plugin["metadata"]["name"]
    assert plugin["status"]["phase"] == "Running"
    [container] = plugin["status"]["containerStatuses"]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["state"]["waiting"]["message"] == (
        f"back-off 10s restarting failed container=nvidia-device-plugin-ctr "
        f"pod={name}_kube-system({plugin['metadata']['uid']})")
    assert container["lastState"]["terminated"]["exitCode"] == 1 and container["ready"] is False
    assert cond(plugin, "Ready")["status"] == "False"
    assert GPU not in cluster.get("nodes", "gpu-1", None)["status"]["allocatable"]
    log = cluster.controllers.container_log("kube-system", name, "nvidia-device-plugin-ctr")
    assert "nvml init failed: ERROR_LIBRARY_NOT_FOUND" in log
    assert ("Warning", "BackOff", f"Back-off restarting failed container nvidia-device-plugin-ctr in pod "
            f"{name}_kube-system({plugin['metadata']['uid']})") in cluster.events(name, "kube-system")
    ds = cluster.get("daemonsets", "nvidia-device-plugin-daemonset", "kube-system")
    assert (ds["status"]["desiredNumberScheduled"], ds["status"]["numberReady"]) == (1, 0)

    # The gpu stage's RuntimeClass puts the plugin in the NVIDIA runtime: it starts and registers.
    cluster.create("runtimeclasses", {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                                      "metadata": {"name": "nvidia"}, "handler": "nvidia"}, None)
    ds["spec"]["template"]["spec"]["runtimeClassName"] = "nvidia"
    cluster.update("daemonsets", ds)
    cluster.advance(2.0)
    cluster.advance(2.0)
    [plugin] = cluster.pods("kube-system")
    assert plugin["spec"]["runtimeClassName"] == "nvidia" and plugin["status"]["phase"] == "Running"
    assert cluster.get("nodes", "gpu-1", None)["status"]["allocatable"][GPU] == "4"


# --- pieces ----------------------------------------------------------------------------------------


def test_quantities_and_pod_requests() -> None:
    assert quantity("500m") == quantity("0.5") and quantity("1Gi") == 2**30 and quantity("1e3") == 1000
    assert quantity("2k") == 2000 and quantity(3) == 3
    spec = {"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi",
                                                                                                GPU: "2"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "250m"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "overhead": {"cpu": "100m"}}
    assert pod_requests(spec) == {"cpu": 2100, "memory": 2**30, GPU: 2}


def test_template_hash_is_stable_and_safe() -> None:
    one = template_hash({"spec": {"containers": [{"name": "a"}]}})
    assert one == template_hash({"spec": {"containers": [{"name": "a"}]}})
    assert set(one) <= set("bcdfghjklmnpqrstvwxz2456789") and one != template_hash({"spec": {}})
    assert template_hash({"a": 1}, 1) != template_hash({"a": 1})


def test_run_reacts_to_store_changes() -> None:
    """run() on a loop: a pod is bound as soon as it is created and running after pod_start_s."""

    async def scenario() -> None:
        store = K8sApiServer().store
        controllers = Controllers(store, delays=Delays(pod_start_s=0.05, tick_s=0.01))
        task = asyncio.get_running_loop().create_task(controllers.run())
        try:
            store.create(store.type_of("", "nodes"), None, {
                "metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                       "allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}})
            store.create(store.type_of("", "pods"), NS, pod("p"))
            deadline = time.monotonic() + 5
            while store.get(store.type_of("", "pods"), NS, "p")["status"].get("phase") != "Running":
                assert time.monotonic() < deadline, store.get(store.type_of("", "pods"), NS, "p")["status"]
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert controllers.store.listeners == []

    asyncio.run(scenario())

