"""The cluster behind the lab's Kubernetes API server: controllers, a scheduler, kubelets and
the NVIDIA device plugin, so that what botlab's stages wait for really happens (issue 15).

`Controllers(store, runtimes_of=..., gpus_of=..., delays=Delays())` runs on the API server's
event loop (the store belongs to it). Each pass (`step()`, or `sync()` without a loop) reads the
objects and reconciles every controller once, as the real ones do from their informers; `run()`
repeats passes whenever the store changes (a `Store.listeners` hook) and every `delays.tick_s`
(for the modelled delays). Attach it to a server with `K8sApiServer(..., controllers=with_controllers(...))`
(or `run_k8s(controllers=...)`): the server starts `run()` with its application and stops it
with it.

What each part follows (kubernetes/kubernetes at tag v1.31.x unless said otherwise):

- **Deployments** (pkg/controller/deployment: sync.go, rolling.go, recreate.go, progress.go,
  util/deployment_util.go): a ReplicaSet `<name>-<pod-template-hash>` per pod template (labels,
  selector and template carry `pod-template-hash`; annotations `deployment.kubernetes.io/revision`,
  `desired-replicas`, `max-replicas`; controller ownerReference), RollingUpdate (maxSurge /
  maxUnavailable, default 25% each, NewRSNewReplicas, cleanupUnhealthyReplicas,
  scaleDownOldReplicaSetsForRollingUpdate) and Recreate (old ReplicaSets to 0, wait for their
  pods to go, then the new one to full size); scaling (FindActiveOrLatest); paused; status
  observedGeneration, replicas, updatedReplicas, readyReplicas, availableReplicas,
  unavailableReplicas and the conditions Available (MinimumReplicasAvailable /
  MinimumReplicasUnavailable), Progressing (NewReplicaSetCreated, FoundNewReplicaSet,
  ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded after
  progressDeadlineSeconds, DeploymentPaused / DeploymentResumed) and ReplicaFailure (copied
  from the new ReplicaSet); revisionHistoryLimit cleanup; ScalingReplicaSet events.
- **ReplicaSets** (pkg/controller/replicaset): pods `<rs>-<5 chars>` from the template
  (controller.GetPodFromTemplate), surplus deleted in getPodsToDelete's order; status replicas,
  fullyLabeledReplicas, readyReplicas, availableReplicas (minReadySeconds), observedGeneration,
  the ReplicaFailure condition (FailedCreate with the API's refusal); SuccessfulCreate,
  SuccessfulDelete, FailedCreate (`Error creating: ...`) events.
- **DaemonSets** (pkg/controller/daemon: daemon_controller.go NodeShouldRunDaemonPod /
  predicates, update.go, util/daemonset_util.go): a pod per node that matches the template's
  nodeSelector and required node affinity and whose NoSchedule / NoExecute taints the pod
  tolerates, with the standard DaemonSet tolerations added (not-ready and unreachable NoExecute;
  disk-, memory-, pid-pressure and unschedulable NoSchedule; network-unavailable for host
  network pods); pods carry `controller-revision-hash` and `pod-template-generation` and the
  node affinity `matchFields metadata.name In [<node>]`
  (ReplaceDaemonSetPodNodeNameNodeAffinity) -- the scheduler binds them; failed pods are
  deleted and recreated; RollingUpdate (maxUnavailable, default 1; maxSurge 0) and OnDelete;
  a ControllerRevision per template; status desiredNumberScheduled, currentNumberScheduled,
  numberMisscheduled, numberReady, numberAvailable, numberUnavailable, updatedNumberScheduled,
  observedGeneration.
- **StatefulSets** (pkg/controller/statefulset): pods `<name>-<ordinal>` (hostname, subdomain =
  serviceName, labels `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`,
  `controller-revision-hash: <name>-<hash>`), OrderedReady (the next ordinal only once the
  previous ones are Running and Ready; scale down from the highest, one at a time) or Parallel;
  a PersistentVolumeClaim `<template>-<name>-<ordinal>` per volumeClaimTemplate (retained, as
  the default persistentVolumeClaimRetentionPolicy says); RollingUpdate from the highest ordinal
  down to the partition, one pod at a time, and OnDelete; status replicas, readyReplicas,
  currentReplicas, updatedReplicas, availableReplicas, currentRevision, updateRevision,
  observedGeneration, collisionCount.
- **Node lifecycle** (pkg/controller/nodelifecycle doNoScheduleTaintingPass, TaintNodesByCondition):
  NoSchedule taints `node.kubernetes.io/not-ready` (Ready False), `unreachable` (Ready Unknown
  or not posted), `memory-pressure`, `disk-pressure`, `pid-pressure`, `network-unavailable`,
  `unschedulable` (spec.unschedulable), removed when the condition clears. This is how a node
  that is not Ready stops taking pods, as in the real scheduler, which does not read conditions.
- **Scheduler** (pkg/scheduler: schedule_one.go, framework/types.go FitError,
  framework/plugins/{nodeunschedulable,tainttoleration,nodeaffinity,nodeports,noderesources},
  framework/preemption, plugins/defaultpreemption): pods without spec.nodeName whose
  schedulerName is default-scheduler, highest priority first; the filters in the default
  profile's order, each node reporting the first that rejects it: `node(s) were
  unschedulable`, `node(s) had untolerated taint {key: value}`, `node(s) didn't match Pod's
  node affinity/selector`, `node(s) didn't have free ports for the requested pod ports`,
  `Too many pods` / `Insufficient <resource>` (the pod's requests -- limits standing in for
  missing requests, init containers and overhead as resourcehelper.PodRequests counts them --
  against allocatable minus the requests of the node's pods that have not terminated).
  Bound through the pods/binding subresource (`Store.bind_pod`: nodeName and PodScheduled True)
  with a `Scheduled` event. Unschedulable: PodScheduled False, reason Unschedulable, and a
  FailedScheduling event, with the FitError message, the preemption attempt included:
  `0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node
  affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for
  incoming pod, 2 Preemption is not helpful for scheduling..` -- the doubled full stop is the
  real one (FitError appends " %v." to the PostFilter message, which is itself a FitError
  ending in "."); a node that failed on an UnschedulableAndUnresolvable filter (taints,
  affinity, unschedulable) is "Preemption is not helpful", one that failed on resources or
  ports and holds no lower-priority pod is "No preemption victims found for incoming pod".
  When removing lower-priority pods would make room, they are deleted (preemption) and the
  pod's status.nominatedNodeName set. No nodes at all: PodScheduled False, reason
  SchedulerError, `no nodes available to schedule pods`. Scheduling gates:
  SchedulingGated. The node is chosen by a weighted score (preferred node affinity,
  PreferNoSchedule taints, least allocated cpu/memory with the scheduler's non-zero defaults,
  spreading the pods of one controller), ties broken by node name rather than at random.
- **Kubelet** (pkg/kubelet: kubelet.go, kuberuntime/kuberuntime_manager.go,
  kuberuntime_sandbox.go, status/, lifecycle/predicate.go; the runtime answers as containerd
  v1.7's CRI plugin, pkg/cri/server/sandbox_run.go and helpers.go getSandboxRuntime): on a
  node whose Ready condition is True, a bound pod first gets startTime, hostIP (the node's
  InternalIP), conditions PodReadyToStartContainers False, Initialized True, Ready and
  ContainersReady False (ContainersNotReady) and container state waiting ContainerCreating;
  `pod_start_s` later it is Running: podIP (host network pods: the node's address), Ready and
  ContainersReady True, containerStatuses with containerID, the image as containerd reports it
  (`docker.io/library/` added to short names), imageID, ready, started, state.running,
  restartCount 0, and the Pulled / Created / Started events. A pod whose RuntimeClass handler
  (or, without one, the node's default handler) is not among the handlers `runtimes_of(node)`
  names never starts: it stays Pending, ContainerCreating, with the Warning event
  FailedCreatePodSandBox `Failed to create pod sandbox: rpc error: code = Unknown desc = failed
  to get sandbox runtime: no runtime for "nvidia" is configured` (it starts once the handler is
  configured); a RuntimeClass deleted after admission gives `Failed to create pod sandbox:
  runtimeclass.node.k8s.io "x" not found`. A pod bound (spec.nodeName set by its author) to a
  node without room is rejected by kubelet admission: phase Failed, reason `OutOf<resource>`,
  message `Pod was rejected: Node didn't have enough resource: <r>, requested: N, used: N,
  capacity: N`.
- **NVIDIA device plugin** (NVIDIA/k8s-device-plugin v0.20.0 cmd/nvidia-device-plugin,
  internal/plugin/factory.go getResourceManagers; kubelet pkg/kubelet/cm/devicemanager
  manager.go GetCapacity / PluginDisconnected / endpointStopGracePeriod and
  pkg/kubelet/nodestatus/setters.go): while a pod whose container image starts with
  `nvcr.io/nvidia/k8s-device-plugin` is Running and ready on a node, the node's
  status.capacity and status.allocatable carry `nvidia.com/gpu: "<gpus_of(node)>"`. The plugin
  sees GPUs only in an NVIDIA runtime on a node that has some: when `runtimes_of(node)` is known
  and the handler the pod runs in (its RuntimeClass's, else the node's default) does not contain
  "nvidia", or `gpus_of(node)` is 0, NVML cannot be loaded and the plugin exits 1 (its
  fail-on-init-error flag defaults to true): the pod is Running but its container is in
  CrashLoopBackOff (lastState terminated, exit code 1, reason Error; a BackOff event), and the
  log it would print (`nvml init failed: ERROR_LIBRARY_NOT_FOUND` ...) is kept for
  `container_log()`. When the plugin goes away, allocatable drops to "0" at once (its devices
  are marked unhealthy) and capacity keeps the count; after the device manager's 5-minute stop
  grace period (`device_plugin_grace_s`) capacity is "0" too.
- **Pod garbage collection** (pkg/controller/podgc): a pod bound to a node that does not exist is
  deleted after `orphan_pod_gc_s` (the 40 s quarantine).
- **Admission** (`admission(store)`, installed on the store by K8sApiServer and by Controllers;
  plugin/pkg/admission/{priority,defaulttolerationseconds,runtimeclass}): pods get
  spec.priority and spec.preemptionPolicy from their PriorityClass (system-node-critical and
  system-cluster-critical built in; a global default honoured; a missing one is 403 `no
  PriorityClass with name x was found`), the not-ready / unreachable NoExecute tolerations for
  300 s, and from their RuntimeClass its overhead and scheduling (nodeSelector merged,
  tolerations added); a RuntimeClass that does not exist is 403 `pods "x" is forbidden: pod
  rejected: RuntimeClass "x" not found` (the generateName in place of the name for controller
  pods, as admission sees them).

Simplified: no proportional scaling of several active ReplicaSets, no adoption or release of
pods by label, no PodDisruptionBudgets, no pod topology spread or inter-pod affinity filters,
volumes are not checked by the scheduler (PVCs stay Pending: there is no provisioner), no
taint-based eviction (NoExecute taints are not added to nodes, pods are not evicted), pods do
not terminate by themselves (restartPolicy Never pods stay Running), probes are not run (a
started container is ready at once), restart counts do not grow, events are not aggregated
into series (each distinct message is recorded once), pods recreated by a StatefulSet always
take the update revision, pod-template-hash is a hash of the template's JSON (not Go's
DeepHashObject, so the names differ from a real cluster's), and the scheduler picks among
equally scored nodes by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import hashlib
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.resources import ResourceType
from botlab.lab.k8s.store import Event, Obj, Store

log = logging.getLogger(__name__)

# runtimes_of(node) -> (the runtime handlers configured on the node's host, the default handler),
# or None when unknown (every handler then counts as configured). A bare set is accepted too
# (its default then unknown).
RuntimesOf = Callable[[str], "tuple[set[str], str] | set[str] | None"]
GpusOf = Callable[[str], int]

GPU = "nvidia.com/gpu"
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin"
DEFAULT_SCHEDULER = "default-scheduler"
HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DESIRED_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_ANNOTATION = "deployment.kubernetes.io/max-replicas"
STS_POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
STS_POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
# scheduling/types.go: the built-in PriorityClasses the API server creates at start.
SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
MAX_INT32 = 2**31 - 1

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
# nodelifecycle nodeConditionToTaintKeyStatusMap.
CONDITION_TAINTS = (("MemoryPressure", "True", MEMORY_PRESSURE), ("DiskPressure", "True", DISK_PRESSURE),
                    ("PIDPressure", "True", PID_PRESSURE), ("NetworkUnavailable", "True", NETWORK_UNAVAILABLE))
CONDITION_TAINT_KEYS = {NOT_READY, UNREACHABLE, UNSCHEDULABLE, MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE,
                        NETWORK_UNAVAILABLE}

# Filter outcomes (framework.Code): preemption can help only with the first.
UNSCHEDULABLE_CODE = "Unschedulable"
UNRESOLVABLE_CODE = "UnschedulableAndUnresolvable"

# Calico's default pool, as Charmed Kubernetes deploys it: a /24 per node here.
POD_NETWORK = "192.168"
# The scheduler's defaults for containers without requests (pkg/scheduler/util/pod_resources.go).
NON_ZERO_CPU = 100
NON_ZERO_MEMORY = 200 * 1024 * 1024


@dataclass(frozen=True)
class Delays:
    """How long things take (seconds)."""

    pod_start_s: float = 0.3  # a bound pod's sandbox, image and containers: Pending -> Running
    tick_s: float = 0.1  # how often run() looks again when nothing changed (for the delays)
    device_plugin_grace_s: float = 300.0  # devicemanager endpointStopGracePeriod: capacity kept that long
    crash_backoff_s: float = 10.0  # kubelet's first restart back-off (named in CrashLoopBackOff)
    orphan_pod_gc_s: float = 40.0  # podgc quarantineTime for pods bound to missing nodes


# --- small helpers ---------------------------------------------------------------------------


_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery/pkg/util/rand SafeEncodeString


def safe_encode(text: str) -> str:
    return "".join(_ALPHANUMS[ord(c) % len(_ALPHANUMS)] for c in text)


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: Any, collision_count: int = 0) -> str:
    """controller.ComputeHash's shape (fnv32a, SafeEncodeString of the decimal sum) over the
    template's canonical JSON (and the collision count, when there is one)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def _rfc3339(ts: float) -> str:
    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(stamp: Any) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    **{s: Fraction(1 << (10 * (i + 1))) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
}


def quantity(value: Any) -> Fraction:
    """A resource.Quantity's exact value ("500m", "1Gi", "2", "1e3", 4)."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(Decimal(repr(value)))
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"not a quantity: {value!r}")
    try:
        number = Fraction(Decimal(match[1]))
    except InvalidOperation:
        raise ValueError(f"not a quantity: {value!r}") from None
    if match[2]:
        return number * Fraction(10) ** int(match[2][1:])
    return number * _SUFFIXES[match[3] or ""]


def amount(resource: str, value: Any) -> int:
    """What the scheduler counts: millicores for cpu, whole units (rounded up) for the rest."""
    try:
        q = quantity(value)
    except ValueError:
        return 0
    return math.ceil(q * 1000) if resource == "cpu" else math.ceil(q)


def pod_requests(spec: dict[str, Any]) -> Counter[str]:
    """resourcehelper.PodRequests: the containers' requests summed, restartable init containers
    (sidecars) added, the largest init container's needs taken when larger, overhead added.
    Limits stand in for missing requests (SetDefaults_Pod copies them)."""

    def of(container: dict[str, Any]) -> Counter[str]:
        res = container.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return Counter({k: amount(k, v) for k, v in merged.items()})

    total: Counter[str] = Counter()
    for c in spec.get("containers") or []:
        total.update(of(c))
    sidecars: Counter[str] = Counter()
    init_max: Counter[str] = Counter()
    for c in spec.get("initContainers") or []:
        need = of(c)
        if c.get("restartPolicy") == "Always":
            total.update(need)
            sidecars.update(need)
            need = Counter(sidecars)
        else:
            need.update(sidecars)
        for k, v in need.items():
            init_max[k] = max(init_max[k], v)
    for k, v in init_max.items():
        total[k] = max(total[k], v)
    for k, v in (spec.get("overhead") or {}).items():
        total[k] += amount(k, v)
    return total


def _non_zero(spec: dict[str, Any]) -> tuple[int, int]:
    """cpu and memory as the scoring counts them (schedutil.GetNonzeroRequests per container)."""
    cpu = memory = 0
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        cpu += amount("cpu", req["cpu"]) if "cpu" in req else NON_ZERO_CPU
        memory += amount("memory", req["memory"]) if "memory" in req else NON_ZERO_MEMORY
    return cpu, memory


def int_or_percent(value: Any, total: int, round_up: bool, default: Any) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        try:
            percent = int(text[:-1])
        except ValueError:
            return 0
        scaled = Fraction(percent * total, 100)
        return math.ceil(scaled) if round_up else math.floor(scaled)
    try:
        return int(text)
    except ValueError:
        return 0


def _meta(obj: Obj) -> dict[str, Any]:
    meta: dict[str, Any] = obj.setdefault("metadata", {})
    return meta


def _spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: Obj) -> dict[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _labels(obj: Obj) -> dict[str, str]:
    return dict(_meta(obj).get("labels") or {})


def _uid(obj: Obj) -> str:
    return str(_meta(obj).get("uid", ""))


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def _namespace(obj: Obj) -> str:
    return str(_meta(obj).get("namespace", ""))


def _deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def controller_uid(obj: Obj) -> str | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid", ""))
    return None


def owner_reference(owner: Obj, api_version: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": _name(owner), "uid": _uid(owner), "controller": True,
            "blockOwnerDeletion": True}


def condition(obj: Obj, type_: str) -> dict[str, Any] | None:
    """The object's status condition of that type."""
    for c in _status(obj).get("conditions") or []:
        if c.get("type") == type_:
            found: dict[str, Any] = c
            return found
    return None


def pod_active(pod: Obj) -> bool:
    """controller.IsPodActive: not Succeeded, not Failed, not being deleted."""
    return _status(pod).get("phase") not in ("Succeeded", "Failed") and not _deleting(pod)


def pod_terminated(pod: Obj) -> bool:
    return _status(pod).get("phase") in ("Succeeded", "Failed")


def pod_ready(pod: Obj) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """podutil.IsPodAvailable: Ready for at least minReadySeconds."""
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since = _parse_time(ready.get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def running_and_ready(pod: Obj) -> bool:
    return _status(pod).get("phase") == "Running" and pod_ready(pod)


# --- node selection: affinity, taints, tolerations ------------------------------------------


def _requirement_matches(req: dict[str, Any], labels: dict[str, str]) -> bool:
    """A NodeSelectorRequirement on labels (nodeaffinity / labels.Requirement)."""
    key, op, values = req.get("key", ""), req.get("operator", ""), [str(v) for v in req.get("values") or []]
    has = key in labels
    if op == "In":
        return has and labels[key] in values
    if op == "NotIn":
        return not has or labels[key] not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and len(values) == 1:
        try:
            number, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return number > bound if op == "Gt" else number < bound
    return False


def _field_matches(req: dict[str, Any], node: Obj) -> bool:
    """matchFields: only metadata.name, with In / NotIn."""
    if req.get("key") != "metadata.name":
        return False
    return _requirement_matches(req, {"metadata.name": _name(node)})


def node_selector_term_matches(term: dict[str, Any], node: Obj) -> bool:
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    labels = _labels(node)
    return all(_requirement_matches(r, labels) for r in exprs) and all(_field_matches(r, node) for r in fields)


def node_matches(spec: dict[str, Any], node: Obj) -> bool:
    """nodeaffinity.GetRequiredNodeAffinity(pod).Match(node): spec.nodeSelector and the required
    node affinity's terms (ORed)."""
    labels = _labels(node)
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """v1.Toleration.ToleratesTaint."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taint(taints: Iterable[dict[str, Any]], tolerations: list[dict[str, Any]],
                      effects: tuple[str, ...]) -> dict[str, Any] | None:
    """v1helper.FindMatchingUntoleratedTaint over the taints with one of `effects`."""
    for taint in taints:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _add_or_update_toleration(spec: dict[str, Any], toleration: dict[str, Any]) -> None:
    """v1helper.AddOrUpdateTolerationInPodSpec."""
    existing = spec.get("tolerations") or []

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:  # MatchToleration
        return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "effect", "operator", "value"))

    out, updated = [], False
    for t in existing:
        if same(toleration, t):
            if t == toleration:
                return
            out.append(dict(toleration))
            updated = True
        else:
            out.append(t)
    if not updated:
        out.append(dict(toleration))
    spec["tolerations"] = out


def add_daemon_tolerations(spec: dict[str, Any]) -> None:
    """daemonset util.AddOrUpdateDaemonPodTolerations."""
    for key, effect in ((NOT_READY, "NoExecute"), (UNREACHABLE, "NoExecute"), (DISK_PRESSURE, "NoSchedule"),
                        (MEMORY_PRESSURE, "NoSchedule"), (PID_PRESSURE, "NoSchedule"), (UNSCHEDULABLE, "NoSchedule")):
        _add_or_update_toleration(spec, {"key": key, "operator": "Exists", "effect": effect})
    if spec.get("hostNetwork"):
        _add_or_update_toleration(spec, {"key": NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"})


def daemon_target_node(pod: Obj) -> str | None:
    """daemon util.GetTargetNodeName: spec.nodeName, else the matchFields metadata.name term."""
    spec = _spec(pod)
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and len(req.get("values") or []) == 1:
                return str(req["values"][0])
    return None


def node_address(node: Obj, kind: str = "InternalIP") -> str:
    for address in _status(node).get("addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address", ""))
    return ""


def node_ready(node: Obj) -> bool:
    ready = condition(node, "Ready")
    return ready is not None and ready.get("status") == "True"


# --- admission ----------------------------------------------------------------------------------


def _forbidden(name: str, why: str) -> errors.ApiError:
    """admission.NewForbidden for a pod (the name as admission sees it)."""
    return errors.forbidden("pods", "", name, why)


def admission(store: Store) -> Callable[[ResourceType, Obj, str], None]:
    """The API server's pod admission plugins, in their order (pkg/kubeapiserver/options/plugins.go):
    Priority, DefaultTolerationSeconds, RuntimeClass. For `Store.admit`."""

    def admit(t: ResourceType, obj: Obj, name: str) -> None:
        if t.key != ("", "pods"):
            return
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        _admit_priority(store, spec, name)
        _admit_default_tolerations(spec)
        _admit_runtime_class(store, spec, name)

    return admit


def _admit_priority(store: Store, spec: dict[str, Any], name: str) -> None:
    """plugin/pkg/admission/priority: spec.priority and preemptionPolicy from the PriorityClass
    (or the global default one; none: 0 and PreemptLowerPriority)."""
    t = store.type_of("scheduling.k8s.io", "priorityclasses")
    class_name = spec.get("priorityClassName") or ""
    policy = "PreemptLowerPriority"
    if not class_name:
        defaults = [pc for pc in store.list_objects(t, None)[0] if pc.get("globalDefault")]
        if defaults:
            chosen = min(defaults, key=lambda pc: int(pc.get("value", 0)))
            spec["priorityClassName"] = _name(chosen)
            priority = int(chosen.get("value", 0))
            policy = chosen.get("preemptionPolicy") or policy
        else:
            priority = 0
    else:
        found = store.find(t, None, class_name)
        if found is not None:
            priority = int(found.get("value", 0))
            policy = found.get("preemptionPolicy") or policy
        elif class_name in SYSTEM_PRIORITY_CLASSES:
            priority = SYSTEM_PRIORITY_CLASSES[class_name]
        else:
            raise _forbidden(name, f"no PriorityClass with name {class_name} was found")
    if spec.get("priority") is not None and spec["priority"] != priority:
        raise _forbidden(name, f"the integer value of priority ({spec['priority']}) must not be provided in pod "
                               f"spec; priority admission controller computed {priority} from the given "
                               "PriorityClass name")
    if spec.get("preemptionPolicy") and spec["preemptionPolicy"] != policy:
        raise _forbidden(name, f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
                               f"provided in pod spec; priority admission controller computed {policy} from the "
                               "given PriorityClass name")
    spec["priority"] = priority
    spec["preemptionPolicy"] = policy


def _admit_default_tolerations(spec: dict[str, Any]) -> None:
    """plugin/pkg/admission/defaulttolerationseconds: tolerate not-ready and unreachable
    NoExecute for 300 s, unless already tolerated."""
    tolerations = list(spec.get("tolerations") or [])
    for key in (NOT_READY, UNREACHABLE):
        if not any((not t.get("key") or t.get("key") == key) and (not t.get("effect") or t.get("effect") == "NoExecute")
                   for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    spec["tolerations"] = tolerations


def _admit_runtime_class(store: Store, spec: dict[str, Any], name: str) -> None:
    """plugin/pkg/admission/runtimeclass Admit: the RuntimeClass must exist; its overhead and
    scheduling (nodeSelector, tolerations) go into the pod."""
    class_name = spec.get("runtimeClassName")
    if not class_name:
        return
    rc = store.find(store.type_of("node.k8s.io", "runtimeclasses"), None, class_name)
    if rc is None:
        raise _forbidden(name, f'pod rejected: RuntimeClass "{class_name}" not found')
    overhead = (rc.get("overhead") or {}).get("podFixed")
    if overhead:
        if spec.get("overhead") and spec["overhead"] != overhead:
            raise _forbidden(name, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
        spec["overhead"] = copy.deepcopy(overhead)
    scheduling = rc.get("scheduling") or {}
    selector = scheduling.get("nodeSelector") or {}
    if selector:
        merged = dict(spec.get("nodeSelector") or {})
        for key, value in selector.items():
            if key in merged and merged[key] != value:
                raise _forbidden(name, f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; "
                                       f"pod.spec.nodeSelector[{key}] = {merged[key]}")
            merged[key] = value
        spec["nodeSelector"] = merged
    extra = scheduling.get("tolerations") or []
    if extra:
        tolerations = list(spec.get("tolerations") or [])
        for toleration in extra:  # tolerations.MergeTolerations (duplicates dropped)
            if toleration not in tolerations:
                tolerations.append(copy.deepcopy(toleration))
        spec["tolerations"] = tolerations


# --- the controllers ------------------------------------------------------------------------


def _find(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def _set_condition(conditions: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """deploymentutil.SetDeploymentCondition (and the ReplicaSet one): unchanged when status and
    reason are the same; the transition time kept when the status is; moved to the end."""
    current = _find(conditions, new["type"])
    if current is not None and current.get("status") == new["status"] and current.get("reason") == new.get("reason"):
        return conditions
    if current is not None and current.get("status") == new["status"] and "lastTransitionTime" in current:
        new = {**new, "lastTransitionTime": current["lastTransitionTime"]}
    return [c for c in conditions if c.get("type") != new["type"]] + [new]


def _image_ref(image: str) -> str:
    """The image as containerd reports it: docker.io/library/ for short names, :latest when no tag."""
    name = image
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    last = name.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        name += ":latest"
    return name


def _image_id(image: str) -> str:
    ref = _image_ref(image)
    repo = ref.split("@", 1)[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


class Controllers:
    """The cluster's controllers, scheduler, kubelets and device plugin over one `Store` (see the
    module doc). `step()` is one pass; `run()` passes until cancelled.

    `runtimes_of(node)`: the host's configured runtime handlers and its default one, or None
    (unknown: any handler counts as configured). `gpus_of(node)`: how many GPUs the host has
    (what the device plugin advertises). `clock`: seconds, default the store's.
    """

    def __init__(self, store: Store, *, runtimes_of: RuntimesOf | None = None, gpus_of: GpusOf | None = None,
                 delays: Delays | None = None, clock: Callable[[], float] | None = None) -> None:
        self.store = store
        self.runtimes_of = runtimes_of
        self.gpus_of = gpus_of
        self.delays = delays or Delays()
        self.clock = clock or store.clock
        if store.admit is None:
            store.admit = admission(store)
        t = store.type_of
        self.pods, self.nodes, self.events = t("", "pods"), t("", "nodes"), t("", "events")
        self.pvcs = t("", "persistentvolumeclaims")
        self.deployments, self.replicasets = t("apps", "deployments"), t("apps", "replicasets")
        self.daemonsets, self.statefulsets = t("apps", "daemonsets"), t("apps", "statefulsets")
        self.revisions = t("apps", "controllerrevisions")
        self.runtimeclasses = t("node.k8s.io", "runtimeclasses")
        self._kubelet_since: dict[str, float] = {}  # pod uid -> when its kubelet began to start it
        self._orphaned_since: dict[str, float] = {}  # pod uid -> when its node was first found missing
        self._unregistered: dict[str, float] = {}  # node -> when its GPU device plugin went away
        self._recorded: set[tuple[str, str, str]] = set()  # (uid, reason, message) of events recorded once
        self._node_index: dict[str, int] = {}  # node -> its pod network /24
        self._event_serial = 0
        self._ips_taken: set[str] = set()
        self._facts: dict[tuple[str, str], Any] = {}
        self._logs: dict[tuple[str, str, str], str] = {}
        self.passes = 0

    # --- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile until cancelled: after every change to the store, and every tick."""
        wake = asyncio.Event()

        def changed(_event: Event) -> None:
            wake.set()

        self.store.listeners.append(changed)
        failed = ""
        try:
            while True:
                wake.clear()
                try:
                    await self.step()
                    failed = ""
                except Exception as exc:  # a lab bug: logged (once while it repeats), the next pass tries again
                    if repr(exc) != failed:
                        log.exception("the lab's Kubernetes controllers failed a pass")
                    failed = repr(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.delays.tick_s)
        finally:
            if changed in self.store.listeners:
                self.store.listeners.remove(changed)

    async def step(self) -> bool:
        """One reconcile pass over everything; True if it changed something."""
        return self.sync()

    def sync(self) -> bool:
        """`step()` without an event loop (the store must not be in use elsewhere)."""
        self.passes += 1
        self._facts = {}  # runtimes_of / gpus_of asked at most once per node and pass
        now = self.clock()
        if self.passes % 500 == 0:
            self._forget()
        changed = False
        for part in (self._node_lifecycle, self._deployments, self._replicasets, self._daemonsets,
                     self._statefulsets, self._scheduler, self._kubelet, self._device_plugin, self._pod_gc):
            if part(now):
                changed = True
        return changed

    def _forget(self) -> None:
        """Drop what is remembered about objects that are gone."""
        uids = {_uid(o) for t in (self.pods, self.replicasets, self.daemonsets, self.statefulsets)
                for o in self._list(t)}
        self._recorded = {key for key in self._recorded if key[0] in uids}
        live = {(_namespace(p), _name(p)) for p in self._list(self.pods)}
        self._logs = {key: text for key, text in self._logs.items() if key[:2] in live}

    def settle(self, passes: int = 100) -> int:
        """Pass until nothing changes (at most `passes`); the number of passes that changed something."""
        for done in range(passes):
            if not self.sync():
                return done
        raise RuntimeError(f"the lab's Kubernetes controllers did not settle in {passes} passes")

    def container_log(self, namespace: str, pod: str, container: str) -> str:
        """What a container printed, where the lab models it (the device plugin's failure)."""
        return self._logs.get((namespace, pod, container), "")

    # --- store access ---------------------------------------------------------------------

    def _list(self, t: ResourceType, namespace: str | None = None) -> list[Obj]:
        return self.store.list_objects(t, namespace)[0]

    def _write_status(self, t: ResourceType, obj: Obj, status: dict[str, Any]) -> bool:
        if obj.get("status") == status:
            return False
        # Unconditional (no resourceVersion): passes run synchronously, nothing can interleave.
        new = {**obj, "metadata": {k: v for k, v in _meta(obj).items() if k != "resourceVersion"}, "status": status}
        try:
            self.store.update(t, _namespace(obj) or None, _name(obj), new, subresource="status")
        except errors.ApiError as exc:
            if exc.code in (404, 409):
                return False  # gone or changed meanwhile: the next pass sees it
            raise
        return True

    def _write(self, t: ResourceType, obj: Obj) -> Obj | None:
        try:
            return self.store.update(t, _namespace(obj) or None, _name(obj), obj)[0]
        except errors.ApiError as exc:
            if exc.code in (404, 409):
                return None
            raise

    def _delete(self, t: ResourceType, obj: Obj) -> bool:
        try:
            self.store.delete(t, _namespace(obj) or None, _name(obj))
        except errors.ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def _record(self, obj: Obj, kind: str, api_version: str, type_: str, reason: str, message: str, *,
                component: str, host: str = "", field_path: str = "", once: bool = False,
                action: str = "") -> bool:
        """An Event about `obj`. Controllers and the kubelet write core/v1 events as client-go's
        tools/record makes them (source, first/lastTimestamp, count); the scheduler writes
        events.k8s.io/v1 ones (client-go tools/events), seen here as core/v1 would serve them
        (eventTime, action, reportingComponent/Instance, an empty source). `once`: not again
        for the same object, reason and message."""
        key = (_uid(obj), reason, message)
        if once and key in self._recorded:
            return False
        meta = _meta(obj)
        now = self.clock()
        self._event_serial += 1
        stamp_ns = int(now * 1e9) + self._event_serial
        ref = {"kind": kind, "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
               "uid": meta.get("uid", ""), "apiVersion": api_version,
               "resourceVersion": meta.get("resourceVersion", "")}
        if not ref["namespace"]:
            del ref["namespace"]
        if field_path:
            ref["fieldPath"] = field_path
        event: Obj = {"apiVersion": "v1", "kind": "Event",
                      "metadata": {"name": f"{meta.get('name', '')}.{stamp_ns:x}",
                                   "namespace": meta.get("namespace") or "default"},
                      "involvedObject": ref, "reason": reason, "message": message, "type": type_}
        if action:  # events.k8s.io/v1
            event.update({"eventTime": _micro_time(now), "action": action, "reportingComponent": component,
                          "reportingInstance": host or component, "source": {}})
        else:
            source = {"component": component, **({"host": host} if host else {})}
            event.update({"source": source, "firstTimestamp": _rfc3339(now), "lastTimestamp": _rfc3339(now),
                          "count": 1, "reportingComponent": component, "reportingInstance": host})
        try:
            self.store.create(self.events, event["metadata"]["namespace"], event)
        except errors.ApiError as exc:  # e.g. the namespace is going away
            log.debug("event not recorded: %s", exc)
            return False
        self._recorded.add(key)
        return True

    # --- node lifecycle -------------------------------------------------------------------

    def _node_lifecycle(self, now: float) -> bool:
        """doNoScheduleTaintingPass: the NoSchedule taints for the nodes' conditions."""
        changed = False
        for node in self._list(self.nodes):
            want: set[str] = set()
            ready = condition(node, "Ready")
            if ready is None or ready.get("status") not in ("True", "False"):
                want.add(UNREACHABLE)
            elif ready.get("status") == "False":
                want.add(NOT_READY)
            for type_, status, key in CONDITION_TAINTS:
                found = condition(node, type_)
                if found is not None and found.get("status") == status:
                    want.add(key)
            if _spec(node).get("unschedulable"):
                want.add(UNSCHEDULABLE)
            taints = list(_spec(node).get("taints") or [])
            kept = [t for t in taints
                    if not (t.get("key") in CONDITION_TAINT_KEYS and t.get("effect") == "NoSchedule")
                    or t.get("key") in want]
            have = {t.get("key") for t in kept if t.get("effect") == "NoSchedule"}
            new_taints = kept + [{"key": key, "effect": "NoSchedule"} for key in sorted(want - have)]
            if new_taints != taints:
                new = copy.deepcopy(node)
                if new_taints:
                    new.setdefault("spec", {})["taints"] = new_taints
                else:
                    new.setdefault("spec", {}).pop("taints", None)
                if self._write(self.nodes, new) is not None:
                    changed = True
        return changed

    # --- owned objects --------------------------------------------------------------------

    @staticmethod
    def _by_controller(objs: Iterable[Obj]) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for obj in objs:
            uid = controller_uid(obj)
            if uid:
                out.setdefault(uid, []).append(obj)
        return out

    def _create_pod(self, owner: Obj, owner_kind: str, template: dict[str, Any], *, name: str = "",
                    extra_labels: dict[str, str] | None = None,
                    mutate: Callable[[dict[str, Any]], None] | None = None) -> Obj:
        """controller.GetPodFromTemplate: labels, annotations and finalizers of the template,
        generateName `<owner>-` (or `name`), the controller reference, the template's spec."""
        tmeta = template.get("metadata") or {}
        meta: dict[str, Any] = {"labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
                                "ownerReferences": [owner_reference(owner, "apps/v1", owner_kind)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            meta["finalizers"] = list(tmeta["finalizers"])
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = f"{_name(owner)}-"
        spec = copy.deepcopy(template.get("spec") or {})
        if mutate is not None:
            mutate(spec)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        return self.store.create(self.pods, _namespace(owner), pod)

    # --- Deployments ----------------------------------------------------------------------

    def _deployments(self, now: float) -> bool:
        changed = False
        rs_by_owner = self._by_controller(self._list(self.replicasets))
        pods_by_owner = self._by_controller(self._list(self.pods))
        for d in self._list(self.deployments):
            if _deleting(d):
                continue
            if self._sync_deployment(d, rs_by_owner.get(_uid(d), []), pods_by_owner, now):
                changed = True
        return changed

    @staticmethod
    def _replicas(obj: Obj) -> int:
        value = _spec(obj).get("replicas")
        return 1 if value is None else int(value)

    @staticmethod
    def _rolling(d: Obj) -> bool:
        return ((_spec(d).get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"

    def _surge_unavailable(self, d: Obj) -> tuple[int, int]:
        """deploymentutil.ResolveFenceposts (25% / 25% when not given, as the API defaults them)."""
        rolling = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
        desired = self._replicas(d)
        surge = int_or_percent(rolling.get("maxSurge"), desired, True, "25%")
        unavailable = int_or_percent(rolling.get("maxUnavailable"), desired, False, "25%")
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable

    def _max_unavailable(self, d: Obj) -> int:
        replicas = self._replicas(d)
        if not self._rolling(d) or replicas == 0:
            return 0
        return min(self._surge_unavailable(d)[1], replicas)

    def _max_surge(self, d: Obj) -> int:
        return self._surge_unavailable(d)[0] if self._rolling(d) else 0

    @staticmethod
    def _same_template(rs: Obj, template: dict[str, Any]) -> bool:
        """deploymentutil.EqualIgnoreHash (Semantic.DeepEqual: empty and missing maps alike)."""

        def normal(t: dict[str, Any]) -> str:
            t = copy.deepcopy(t)
            meta = t.get("metadata") or {}
            labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
            meta = {k: v for k, v in meta.items() if k != "labels" and v not in (None, {}, [])}
            if labels:
                meta["labels"] = labels
            t = {k: v for k, v in t.items() if k != "metadata"}
            if meta:
                t["metadata"] = meta
            return json.dumps(t, sort_keys=True)

        return normal(_spec(rs).get("template") or {}) == normal(template)

    @staticmethod
    def _revision(rs: Obj) -> int:
        try:
            return int((_meta(rs).get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
        except ValueError:
            return 0

    def _sync_deployment(self, d: Obj, rss: list[Obj], pods_by_owner: dict[str, list[Obj]], now: float) -> bool:
        spec = _spec(d)
        template = spec.get("template") or {}
        rss = [rs for rs in rss if not _deleting(rs)]
        rss.sort(key=lambda rs: (_meta(rs).get("creationTimestamp", ""), _name(rs)))
        new_rs = next((rs for rs in rss if self._same_template(rs, template)), None)
        old = [rs for rs in rss if rs is not new_rs]
        conditions = list(_status(d).get("conditions") or [])
        # checkPausedConditions.
        progressing = _find(conditions, "Progressing")
        if progressing is None or progressing.get("reason") != "ProgressDeadlineExceeded":
            paused_cond = progressing is not None and progressing.get("reason") == "DeploymentPaused"
            if spec.get("paused") and not paused_cond:
                conditions = _set_condition(conditions, self._dcond("Progressing", "Unknown", "DeploymentPaused",
                                                                    "Deployment is paused", now))
            elif not spec.get("paused") and paused_cond:
                conditions = _set_condition(conditions, self._dcond("Progressing", "Unknown", "DeploymentResumed",
                                                                    "Deployment is resumed", now))
        acted = False
        if spec.get("paused") or self._scaling_event(d, new_rs, old):
            acted = self._scale_deployment(d, new_rs, old)
        elif not self._rolling(d):
            acted, new_rs, conditions = self._rollout_recreate(d, new_rs, old, pods_by_owner, conditions, now)
        else:
            acted, new_rs, conditions = self._rollout_rolling(d, new_rs, old, conditions, now)
        if acted:
            fresh = self.store.find(self.deployments, _namespace(d), _name(d))
            if fresh is None:
                return True
            d = fresh
            rss = [rs for rs in (self._owned(self.replicasets, d)) if not _deleting(rs)]
            new_rs = next((rs for rs in rss if self._same_template(rs, template)), None)
        if new_rs is not None and self._sync_revision_annotation(d, new_rs, rss):
            acted = True
            d = self.store.find(self.deployments, _namespace(d), _name(d)) or d
        status = self._deployment_status(d, rss, new_rs, conditions, now, progress=not spec.get("paused"))
        if self._write_status(self.deployments, d, status):
            acted = True
        return acted

    def _owned(self, t: ResourceType, owner: Obj) -> list[Obj]:
        uid = _uid(owner)
        return [o for o in self._list(t, _namespace(owner) or None) if controller_uid(o) == uid]

    def _dcond(self, type_: str, status: str, reason: str, message: str, now: float) -> dict[str, Any]:
        stamp = _rfc3339(now)
        return {"type": type_, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                "reason": reason, "message": message}

    def _scaling_event(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> bool:
        """isScalingEvent: an active ReplicaSet's desired-replicas annotation is not spec.replicas."""
        for rs in ([new_rs] if new_rs else []) + old:
            if self._replicas(rs) > 0:
                desired = (_meta(rs).get("annotations") or {}).get(DESIRED_ANNOTATION)
                if desired is not None and desired != str(self._replicas(d)):
                    return True
        return False

    def _scale_deployment(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> bool:
        """sync -> scale: the only active (or the newest) ReplicaSet to spec.replicas; old ones
        to 0 once the new one is saturated. Proportional scaling is not modelled."""
        replicas = self._replicas(d)
        everything = ([new_rs] if new_rs else []) + sorted(old, key=lambda rs: _meta(rs).get("creationTimestamp", ""),
                                                           reverse=True)
        if not everything:
            return False
        active = [rs for rs in everything if self._replicas(rs) > 0]
        if len(active) <= 1:
            target = active[0] if active else everything[0]
            return self._scale_rs(d, target, replicas)
        if new_rs is not None and self._replicas(new_rs) == replicas and \
                int(_status(new_rs).get("availableReplicas") or 0) == replicas:
            changed = False
            for rs in old:
                if self._replicas(rs) > 0 and self._scale_rs(d, rs, 0):
                    changed = True
            return changed
        return False

    def _scale_rs(self, d: Obj, rs: Obj, count: int) -> bool:
        """scaleReplicaSetAndRecordEvent: spec.replicas and the desired/max annotations."""
        before = self._replicas(rs)
        annotations = dict(_meta(rs).get("annotations") or {})
        want = {DESIRED_ANNOTATION: str(self._replicas(d)), MAX_ANNOTATION: str(self._replicas(d) + self._max_surge(d))}
        if before == count and all(annotations.get(k) == v for k, v in want.items()):
            return False
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = count
        _meta(new)["annotations"] = {**annotations, **want}
        if self._write(self.replicasets, new) is None:
            return False
        if before != count:
            direction = "up" if count > before else "down"
            self._record(d, "Deployment", "apps/v1", "Normal", "ScalingReplicaSet",
                         f"Scaled {direction} replica set {_name(rs)} to {count} from {before}",
                         component="deployment-controller")
        return True

    def _create_replicaset(self, d: Obj, old: list[Obj], replicas: int, conditions: list[dict[str, Any]],
                           now: float) -> tuple[Obj | None, list[dict[str, Any]]]:
        """getNewReplicaSet with createIfNotExisted: `<deployment>-<hash>`, revision max(old) + 1."""
        spec = _spec(d)
        collisions = int(_status(d).get("collisionCount") or 0)
        template = copy.deepcopy(spec.get("template") or {})
        hash_ = template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_
        revision = max([self._revision(rs) for rs in old] + [0]) + 1
        annotations = {k: v for k, v in (_meta(d).get("annotations") or {}).items()
                       if k != "kubectl.kubernetes.io/last-applied-configuration"
                       and not k.startswith("deployment.kubernetes.io/")}
        annotations.update({DESIRED_ANNOTATION: str(self._replicas(d)),
                            MAX_ANNOTATION: str(self._replicas(d) + self._max_surge(d)),
                            REVISION_ANNOTATION: str(revision)})
        name = f"{_name(d)}-{hash_}"
        body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": name, "labels": dict(template["metadata"]["labels"]),
                             "annotations": annotations,
                             "ownerReferences": [owner_reference(d, "apps/v1", "Deployment")]},
                "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                         "selector": selector, "template": template}}
        try:
            created = self.store.create(self.replicasets, _namespace(d), body)
        except errors.ApiError as exc:
            if exc.code != 409:
                raise
            existing = self.store.find(self.replicasets, _namespace(d), name)
            if existing is not None and controller_uid(existing) == _uid(d) and \
                    self._same_template(existing, spec.get("template") or {}):
                return existing, conditions
            # A hash collision: count it, a new name next time (getNewReplicaSet).
            status = {**_status(d), "collisionCount": collisions + 1}
            self._write_status(self.deployments, d, status)
            return None, conditions
        if replicas > 0:
            self._record(d, "Deployment", "apps/v1", "Normal", "ScalingReplicaSet",
                         f"Scaled up replica set {name} to {replicas}", component="deployment-controller")
        conditions = _set_condition(conditions, self._dcond(
            "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name}"', now))
        return created, conditions

    def _found_new(self, new_rs: Obj, conditions: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        if _find(conditions, "Progressing") is None:
            conditions = _set_condition(conditions, self._dcond(
                "Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{_name(new_rs)}"', now))
        return conditions

    def _rollout_rolling(self, d: Obj, new_rs: Obj | None, old: list[Obj], conditions: list[dict[str, Any]],
                         now: float) -> tuple[bool, Obj | None, list[dict[str, Any]]]:
        """rolloutRolling: scale the new ReplicaSet up if possible, else the old ones down."""
        replicas = self._replicas(d)
        if new_rs is None:
            new_rs, conditions = self._create_replicaset(
                d, old, self._new_rs_replicas(d, old, 0), conditions, now)
            return True, new_rs, conditions
        conditions = self._found_new(new_rs, conditions, now)
        current = self._replicas(new_rs)
        if current != replicas:
            target = replicas if current > replicas else self._new_rs_replicas(d, old, current)
            if target != current and self._scale_rs(d, new_rs, target):
                return True, new_rs, conditions
        if self._reconcile_old(d, new_rs, old):
            return True, new_rs, conditions
        if self._complete(d, _status(d)):
            self._cleanup(d, old)
        return False, new_rs, conditions

    def _new_rs_replicas(self, d: Obj, old: list[Obj], current: int) -> int:
        """deploymentutil.NewRSNewReplicas for RollingUpdate (`current`: the new ReplicaSet's size)."""
        replicas = self._replicas(d)
        total = sum(self._replicas(rs) for rs in old) + current
        max_total = replicas + self._max_surge(d)
        if total >= max_total:
            return current
        return current + min(max_total - total, replicas - current)

    def _reconcile_old(self, d: Obj, new_rs: Obj, old: list[Obj]) -> bool:
        """reconcileOldReplicaSets: cleanupUnhealthyReplicas, then
        scaleDownOldReplicaSetsForRollingUpdate, within maxUnavailable."""
        active_old = sorted([rs for rs in old if self._replicas(rs) > 0],
                            key=lambda rs: (_meta(rs).get("creationTimestamp", ""), _name(rs)))
        if not active_old:
            return False
        all_count = sum(self._replicas(rs) for rs in [*old, new_rs])
        min_available = self._replicas(d) - self._max_unavailable(d)
        new_unavailable = self._replicas(new_rs) - int(_status(new_rs).get("availableReplicas") or 0)
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        changed = False
        scaled = 0
        sizes = {_uid(rs): self._replicas(rs) for rs in active_old}
        for rs in active_old:
            if scaled >= max_scaled_down:
                break
            available = int(_status(rs).get("availableReplicas") or 0)
            if sizes[_uid(rs)] == 0 or sizes[_uid(rs)] == available:
                continue
            down = min(max_scaled_down - scaled, sizes[_uid(rs)] - available)
            if self._scale_rs(d, rs, sizes[_uid(rs)] - down):
                changed = True
            sizes[_uid(rs)] -= down
            scaled += down
        available_all = sum(int(_status(rs).get("availableReplicas") or 0) for rs in [*old, new_rs])
        if available_all <= min_available:
            return changed
        to_scale = available_all - min_available
        done = 0
        for rs in active_old:
            if done >= to_scale:
                break
            if sizes[_uid(rs)] == 0:
                continue
            down = min(sizes[_uid(rs)], to_scale - done)
            if self._scale_rs(d, rs, sizes[_uid(rs)] - down):
                changed = True
            sizes[_uid(rs)] -= down
            done += down
        return changed

    def _rollout_recreate(self, d: Obj, new_rs: Obj | None, old: list[Obj], pods_by_owner: dict[str, list[Obj]],
                          conditions: list[dict[str, Any]], now: float
                          ) -> tuple[bool, Obj | None, list[dict[str, Any]]]:
        """rolloutRecreate: old ReplicaSets to 0; once their pods are gone, the new one to full size."""
        changed = False
        for rs in old:
            if self._replicas(rs) > 0 and self._scale_rs(d, rs, 0):
                changed = True
        if changed:
            return True, new_rs, conditions
        if sum(int(_status(rs).get("replicas") or 0) for rs in old) > 0 or any(
                not pod_terminated(p) for rs in old for p in pods_by_owner.get(_uid(rs), [])):
            return False, new_rs, conditions  # oldPodsRunning
        if new_rs is None:
            new_rs, conditions = self._create_replicaset(d, old, self._replicas(d), conditions, now)
            return True, new_rs, conditions
        conditions = self._found_new(new_rs, conditions, now)
        if self._replicas(new_rs) != self._replicas(d) and self._scale_rs(d, new_rs, self._replicas(d)):
            return True, new_rs, conditions
        if self._complete(d, _status(d)):
            self._cleanup(d, old)
        return False, new_rs, conditions

    def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        """cleanupDeployment: old ReplicaSets beyond revisionHistoryLimit (default 10), oldest
        revision first, only those scaled to 0."""
        limit = _spec(d).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        cleanable = sorted([rs for rs in old if not _deleting(rs)], key=self._revision)
        for rs in cleanable[:max(len(cleanable) - limit, 0)]:
            if int(_status(rs).get("replicas") or 0) == 0 and self._replicas(rs) == 0:
                self._delete(self.replicasets, rs)

    def _sync_revision_annotation(self, d: Obj, new_rs: Obj, rss: list[Obj]) -> bool:
        """getAllReplicaSetsAndSyncRevision: the new ReplicaSet's revision above the old ones',
        and the Deployment's annotation equal to it."""
        changed = False
        old_max = max([self._revision(rs) for rs in rss if _uid(rs) != _uid(new_rs)] + [0])
        revision = self._revision(new_rs)
        if revision <= old_max:
            revision = old_max + 1
            new = copy.deepcopy(new_rs)
            _meta(new).setdefault("annotations", {})[REVISION_ANNOTATION] = str(revision)
            changed = self._write(self.replicasets, new) is not None
        annotations = _meta(d).get("annotations") or {}
        if annotations.get(REVISION_ANNOTATION) != str(revision):
            fresh = self.store.find(self.deployments, _namespace(d), _name(d))
            if fresh is not None:
                _meta(fresh).setdefault("annotations", {})[REVISION_ANNOTATION] = str(revision)
                changed = self._write(self.deployments, fresh) is not None or changed
        return changed

    def _complete(self, d: Obj, status: dict[str, Any]) -> bool:
        """deploymentutil.DeploymentComplete."""
        replicas = self._replicas(d)
        return (int(status.get("updatedReplicas") or 0) == replicas and int(status.get("replicas") or 0) == replicas
                and int(status.get("availableReplicas") or 0) == replicas
                and int(status.get("observedGeneration") or 0) >= int(_meta(d).get("generation") or 0))

    def _deployment_status(self, d: Obj, rss: list[Obj], new_rs: Obj | None, conditions: list[dict[str, Any]],
                           now: float, *, progress: bool) -> dict[str, Any]:
        """calculateStatus and syncRolloutStatus (progress.go)."""
        spec, old_status = _spec(d), _status(d)
        replicas = self._replicas(d)

        def total(field: str, of: list[Obj]) -> int:
            return sum(int(_status(rs).get(field) or 0) for rs in of)

        available = total("availableReplicas", rss)
        unavailable = max(sum(self._replicas(rs) for rs in rss) - available, 0)
        status: dict[str, Any] = {
            "observedGeneration": int(_meta(d).get("generation") or 1),
            "replicas": total("replicas", rss),
            "updatedReplicas": total("replicas", [new_rs] if new_rs else []),
            "readyReplicas": total("readyReplicas", rss),
            "availableReplicas": available,
            "unavailableReplicas": unavailable,
        }
        if available >= replicas - self._max_unavailable(d):
            conditions = _set_condition(conditions, self._dcond(
                "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now))
        else:
            conditions = _set_condition(conditions, self._dcond(
                "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.",
                now))
        current = _find(conditions, "Progressing")
        deadline = spec.get("progressDeadlineSeconds")
        deadline = 600 if deadline is None else int(deadline)
        complete_before = (status["replicas"] == status["updatedReplicas"] and current is not None
                           and current.get("reason") == "NewReplicaSetAvailable")
        what = f'ReplicaSet "{_name(new_rs)}"' if new_rs else f'Deployment "{_name(d)}"'
        if progress and deadline != MAX_INT32 and not complete_before:
            old_old = int(old_status.get("replicas") or 0) - int(old_status.get("updatedReplicas") or 0)
            new_old = status["replicas"] - status["updatedReplicas"]
            if self._complete(d, status):
                conditions = _set_condition(conditions, self._dcond(
                    "Progressing", "True", "NewReplicaSetAvailable", f"{what} has successfully progressed.", now))
            elif (status["updatedReplicas"] > int(old_status.get("updatedReplicas") or 0) or new_old < old_old
                  or status["readyReplicas"] > int(old_status.get("readyReplicas") or 0)
                  or available > int(old_status.get("availableReplicas") or 0)):
                cond = self._dcond("Progressing", "True", "ReplicaSetUpdated", f"{what} is progressing.", now)
                if current is not None and current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
                conditions = [c for c in conditions if c.get("type") != "Progressing"] + [cond]
            elif current is not None and current.get("reason") != "NewReplicaSetAvailable":
                since = _parse_time(current.get("lastUpdateTime"))
                if current.get("reason") == "ProgressDeadlineExceeded" or (
                        since is not None and since + deadline < now):
                    conditions = _set_condition(conditions, self._dcond(
                        "Progressing", "False", "ProgressDeadlineExceeded", f"{what} has timed out progressing.",
                        now))
        failure = condition(new_rs, "ReplicaFailure") if new_rs is not None else None
        if failure is not None and failure.get("status") == "True":
            conditions = _set_condition(conditions, self._dcond(
                "ReplicaFailure", "True", failure.get("reason", ""), failure.get("message", ""), now))
        else:
            conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
        out = {k: v for k, v in status.items() if v}  # omitempty
        if old_status.get("collisionCount"):
            out["collisionCount"] = old_status["collisionCount"]
        if conditions:
            out["conditions"] = conditions
        return out

    # --- ReplicaSets ----------------------------------------------------------------------

    def _replicasets(self, now: float) -> bool:
        changed = False
        pods_by_owner = self._by_controller(self._list(self.pods))
        for rs in self._list(self.replicasets):
            if _deleting(rs):
                continue
            if self._sync_replicaset(rs, pods_by_owner.get(_uid(rs), []), now):
                changed = True
        return changed

    def _sync_replicaset(self, rs: Obj, owned: list[Obj], now: float) -> bool:
        spec = _spec(rs)
        template = spec.get("template") or {}
        active = [p for p in owned if pod_active(p)]
        want = self._replicas(rs)
        changed = False
        error: str | None = None
        if len(active) < want:
            for _ in range(want - len(active)):
                try:
                    pod = self._create_pod(rs, "ReplicaSet", template)
                except errors.ApiError as exc:
                    error = exc.message
                    self._record(rs, "ReplicaSet", "apps/v1", "Warning", "FailedCreate", f"Error creating: {error}",
                                 component="replicaset-controller", once=True)
                    break
                changed = True
                self._record(rs, "ReplicaSet", "apps/v1", "Normal", "SuccessfulCreate", f"Created pod: {_name(pod)}",
                             component="replicaset-controller")
        elif len(active) > want:
            for pod in sorted(active, key=self._deletion_rank)[:len(active) - want]:
                if self._delete(self.pods, pod):
                    changed = True
                    self._record(rs, "ReplicaSet", "apps/v1", "Normal", "SuccessfulDelete",
                                 f"Deleted pod: {_name(pod)}", component="replicaset-controller")
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = (template.get("metadata") or {}).get("labels") or {}
        status: dict[str, Any] = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for p in active
                                        if all(_labels(p).get(k) == v for k, v in template_labels.items())),
            "readyReplicas": sum(1 for p in active if pod_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_available(p, min_ready, now)),
            "observedGeneration": int(_meta(rs).get("generation") or 1),
        }
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        conditions = list(_status(rs).get("conditions") or [])
        failure = _find(conditions, "ReplicaFailure")
        if error is not None and failure is None:
            conditions.append({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": _rfc3339(now),
                               "reason": "FailedCreate", "message": error})
        elif error is None and failure is not None:
            conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
        if conditions:
            status["conditions"] = conditions
        if self._write_status(self.replicasets, rs, status):
            changed = True
        return changed

    @staticmethod
    def _deletion_rank(pod: Obj) -> tuple[Any, ...]:
        """getPodsToDelete's order (controller.ActivePods): unassigned, Pending, not ready, newest first."""
        phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(_status(pod).get("phase", ""), 0)
        created = _parse_time(_meta(pod).get("creationTimestamp")) or 0.0
        return (bool(_spec(pod).get("nodeName")), phase, pod_ready(pod), -created, _name(pod))

    # --- ControllerRevisions ----------------------------------------------------------------

    def _history(self, owner: Obj, kind: str, now: float) -> tuple[str, int]:
        """The owner's ControllerRevision for its current template (pkg/controller/history,
        daemon/update.go constructHistory, statefulset getStatefulSetRevisions): named
        `<owner>-<hash>`, data the template as a replacing patch, revision one above the
        highest; (hash, revision)."""
        template = copy.deepcopy(_spec(owner).get("template") or {})
        data = {"spec": {"template": {**template, "$patch": "replace"}}}
        collisions = int(_status(owner).get("collisionCount") or 0)
        hash_ = template_hash(data, collisions)
        name = f"{_name(owner)}-{hash_}"
        existing = self._owned(self.revisions, owner)
        top = max([int(r.get("revision") or 0) for r in existing] + [0])
        mine = next((r for r in existing if _name(r) == name), None)
        if mine is not None:
            return hash_, int(mine.get("revision") or 0)
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["controller.kubernetes.io/hash" if kind == "StatefulSet" else REVISION_LABEL] = hash_
        body = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": name, "labels": labels,
                             "ownerReferences": [owner_reference(owner, "apps/v1", kind)]},
                "data": data, "revision": top + 1}
        try:
            self.store.create(self.revisions, _namespace(owner), body)
        except errors.ApiError as exc:
            if exc.code != 409:
                raise
        return hash_, top + 1

    # --- DaemonSets -----------------------------------------------------------------------

    def _daemonsets(self, now: float) -> bool:
        changed = False
        nodes = self._list(self.nodes)
        pods_by_owner = self._by_controller(self._list(self.pods))
        for ds in self._list(self.daemonsets):
            if _deleting(ds):
                continue
            if self._sync_daemonset(ds, nodes, pods_by_owner.get(_uid(ds), []), now):
                changed = True
        return changed

    @staticmethod
    def _should_run(ds: Obj, node: Obj) -> tuple[bool, bool]:
        """NodeShouldRunDaemonPod: (shouldRun, shouldContinueRunning)."""
        spec = copy.deepcopy(_spec(ds).get("template", {}).get("spec") or {})
        if spec.get("nodeName") and spec["nodeName"] != _name(node):
            return False, False
        add_daemon_tolerations(spec)
        if not node_matches(spec, node):
            return False, False
        taints = _spec(node).get("taints") or []
        tolerations = spec.get("tolerations") or []
        if untolerated_taint(taints, tolerations, ("NoSchedule", "NoExecute")) is not None:
            return False, untolerated_taint(taints, tolerations, ("NoExecute",)) is None
        return True, True

    def _sync_daemonset(self, ds: Obj, nodes: list[Obj], owned: list[Obj], now: float) -> bool:
        spec = _spec(ds)
        hash_, generation = self._history(ds, "DaemonSet", now)
        template = copy.deepcopy(spec.get("template") or {})
        min_ready = int(spec.get("minReadySeconds") or 0)
        by_node: dict[str, list[Obj]] = {}
        for pod in owned:
            if _deleting(pod):
                continue
            target = daemon_target_node(pod)
            if target is not None:
                by_node.setdefault(target, []).append(pod)
        for pods in by_node.values():
            pods.sort(key=lambda p: (_meta(p).get("creationTimestamp", ""), _name(p)))
        node_names = {_name(n) for n in nodes}
        create: list[str] = []
        delete: list[Obj] = []
        wanted: list[str] = []
        for node in sorted(nodes, key=_name):
            should_run, should_continue = self._should_run(ds, node)
            if should_run:
                wanted.append(_name(node))
            here = by_node.get(_name(node), [])
            if should_run and not here:
                create.append(_name(node))
            elif should_continue:
                failed = [p for p in here if _status(p).get("phase") == "Failed"]
                for pod in failed:
                    self._record(ds, "DaemonSet", "apps/v1", "Warning", "FailedDaemonPod",
                                 f"Found failed daemon pod {_namespace(pod)}/{_name(pod)} on node {_name(node)}, "
                                 "will try to kill it", component="daemonset-controller")
                delete.extend(failed)
                running = [p for p in here if p not in failed]
                delete.extend(running[1:])  # more than one: keep the oldest
            else:
                delete.extend(here)
        delete.extend(p for name, pods in by_node.items() if name not in node_names for p in pods)
        strategy = spec.get("updateStrategy") or {}
        if (strategy.get("type") or "RollingUpdate") == "RollingUpdate":
            delete.extend(p for p in self._daemon_rolling(ds, by_node, wanted, hash_, now) if p not in delete)
        changed = False
        for pod in delete:
            if self._delete(self.pods, pod):
                changed = True
                self._record(ds, "DaemonSet", "apps/v1", "Normal", "SuccessfulDelete", f"Deleted pod: {_name(pod)}",
                             component="daemonset-controller")
        labels = {REVISION_LABEL: hash_, TEMPLATE_GENERATION_LABEL: str(generation)}
        for node_name in create:
            def on_node(pod_spec: dict[str, Any], node_name: str = node_name) -> None:
                add_daemon_tolerations(pod_spec)
                affinity = pod_spec.setdefault("affinity", {})
                node_affinity = affinity.setdefault("nodeAffinity", {})
                required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
                required["nodeSelectorTerms"] = [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]

            try:
                pod = self._create_pod(ds, "DaemonSet", template, extra_labels=labels, mutate=on_node)
            except errors.ApiError as exc:
                self._record(ds, "DaemonSet", "apps/v1", "Warning", "FailedCreate", f"Error creating: {exc.message}",
                             component="daemonset-controller", once=True)
                break
            changed = True
            self._record(ds, "DaemonSet", "apps/v1", "Normal", "SuccessfulCreate", f"Created pod: {_name(pod)}",
                         component="daemonset-controller")
        # updateDaemonSetStatus, from what this pass started with.
        desired = current = misscheduled = ready = available = updated = 0
        for node in nodes:
            should_run, _ = self._should_run(ds, node)
            here = [p for p in by_node.get(_name(node), []) if pod_active(p)]
            if should_run:
                desired += 1
                if here:
                    current += 1
                    pod = here[0]
                    if pod_ready(pod):
                        ready += 1
                        if pod_available(pod, min_ready, now):
                            available += 1
                    if _labels(pod).get(REVISION_LABEL) == hash_:
                        updated += 1
            elif here:
                misscheduled += 1
        status: dict[str, Any] = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                                  "desiredNumberScheduled": desired, "numberReady": ready,
                                  "observedGeneration": int(_meta(ds).get("generation") or 1)}
        for key, value in (("updatedNumberScheduled", updated), ("numberAvailable", available),
                           ("numberUnavailable", desired - available)):
            if value:
                status[key] = value
        if _status(ds).get("collisionCount"):
            status["collisionCount"] = _status(ds)["collisionCount"]
        if self._write_status(self.daemonsets, ds, status):
            changed = True
        return changed

    def _daemon_rolling(self, ds: Obj, by_node: dict[str, list[Obj]], wanted: list[str], hash_: str,
                        now: float) -> list[Obj]:
        """daemon/update.go rollingUpdate with maxSurge 0: old pods to delete, within maxUnavailable
        (a node that should run a pod and has none counts as unavailable: updatedDesiredNodeCounts)."""
        spec = _spec(ds)
        min_ready = int(spec.get("minReadySeconds") or 0)
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
        max_unavailable = int_or_percent(rolling.get("maxUnavailable"), len(wanted), True, 1)
        unavailable = 0
        replace: list[Obj] = []
        candidates: list[Obj] = []
        for name in sorted(set(by_node) | set(wanted)):
            pods = [p for p in by_node.get(name, []) if pod_active(p)]
            new = [p for p in pods if _labels(p).get(REVISION_LABEL) == hash_]
            old = [p for p in pods if _labels(p).get(REVISION_LABEL) != hash_]
            if len(new) > 1 or len(old) > 1 or (new and old) or not pods:
                unavailable += 1
            elif new:
                if not pod_available(new[0], min_ready, now):
                    unavailable += 1
            elif not pod_available(old[0], min_ready, now):
                replace.append(old[0])
            elif unavailable < max_unavailable:
                candidates.append(old[0])
        room = max(min(max_unavailable - unavailable, len(candidates)), 0)
        return replace + candidates[:room]

    # --- StatefulSets ---------------------------------------------------------------------

    def _statefulsets(self, now: float) -> bool:
        changed = False
        pods_by_owner = self._by_controller(self._list(self.pods))
        for sts in self._list(self.statefulsets):
            if _deleting(sts):
                continue
            if self._sync_statefulset(sts, pods_by_owner.get(_uid(sts), []), now):
                changed = True
        return changed

    def _sync_statefulset(self, sts: Obj, owned: list[Obj], now: float) -> bool:
        spec = _spec(sts)
        name = _name(sts)
        replicas = self._replicas(sts)
        ordered = (spec.get("podManagementPolicy") or "OrderedReady") == "OrderedReady"
        strategy = spec.get("updateStrategy") or {}
        rolling = (strategy.get("type") or "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        min_ready = int(spec.get("minReadySeconds") or 0)
        hash_, _revision = self._history(sts, "StatefulSet", now)
        update_revision = f"{name}-{hash_}"
        current_revision = _status(sts).get("currentRevision") or update_revision
        pods: dict[int, Obj] = {}
        for pod in owned:
            match = re.fullmatch(re.escape(name) + r"-(\d+)", _name(pod))
            if match and not _deleting(pod):
                pods[int(match[1])] = pod
        changed = False
        # Failed pods are deleted (recreated on a later pass).
        for ordinal, failed in sorted(pods.items()):
            if pod_terminated(failed) and self._delete(self.pods, failed):
                changed = True
                self._record(sts, "StatefulSet", "apps/v1", "Normal", "SuccessfulDelete",
                             f"delete Pod {_name(failed)} in StatefulSet {name} successful",
                             component="statefulset-controller")
                del pods[ordinal]
        blocked = False
        for ordinal in range(replicas):
            found = pods.get(ordinal)
            if found is None:
                if self._create_sts_pod(sts, ordinal, update_revision):
                    changed = True
                if ordered:
                    blocked = True
                    break
                continue
            if ordered and not running_and_ready(found):
                blocked = True
                break
        condemned = sorted((o for o in pods if o >= replicas), reverse=True)
        healthy = all(running_and_ready(p) for o, p in pods.items() if o < replicas)
        if condemned and not blocked and (not ordered or healthy):
            for ordinal in condemned[:1] if ordered else condemned:
                if self._delete(self.pods, pods[ordinal]):
                    changed = True
                    self._record(sts, "StatefulSet", "apps/v1", "Normal", "SuccessfulDelete",
                                 f"delete Pod {_name(pods[ordinal])} in StatefulSet {name} successful",
                                 component="statefulset-controller")
        elif rolling and not blocked and not condemned and healthy and len(pods) == replicas:
            # Rolling update: the highest ordinal not at the update revision, one at a time.
            for ordinal in sorted((o for o in pods if o >= partition), reverse=True):
                if _labels(pods[ordinal]).get(REVISION_LABEL) != update_revision:
                    if self._delete(self.pods, pods[ordinal]):
                        changed = True
                    break
        active = [p for p in pods.values() if pod_active(p)]
        status: dict[str, Any] = {
            "observedGeneration": int(_meta(sts).get("generation") or 1),
            "replicas": len(active),
            "readyReplicas": sum(1 for p in active if running_and_ready(p)),
            "currentReplicas": sum(1 for p in active if _labels(p).get(REVISION_LABEL) == current_revision),
            "updatedReplicas": sum(1 for p in active if _labels(p).get(REVISION_LABEL) == update_revision),
            "availableReplicas": sum(1 for p in active if running_and_ready(p)
                                     and pod_available(p, min_ready, now)),
            "currentRevision": current_revision,
            "updateRevision": update_revision,
            "collisionCount": int(_status(sts).get("collisionCount") or 0),
        }
        if rolling and status["updatedReplicas"] == status["replicas"] and \
                status["readyReplicas"] == status["replicas"]:  # completeRollingUpdate
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = update_revision
        status = {k: v for k, v in status.items() if v or k in ("replicas", "availableReplicas", "collisionCount")}
        if self._write_status(self.statefulsets, sts, status):
            changed = True
        return changed

    def _create_sts_pod(self, sts: Obj, ordinal: int, revision: str) -> bool:
        """newVersionedStatefulSetPod, with its claims created first (createPersistentVolumeClaims)."""
        spec = _spec(sts)
        name = _name(sts)
        pod_name = f"{name}-{ordinal}"
        claims: dict[str, str] = {}
        for claim in spec.get("volumeClaimTemplates") or []:
            cname = (claim.get("metadata") or {}).get("name", "")
            claim_name = f"{cname}-{pod_name}"
            claims[cname] = claim_name
            if self.store.find(self.pvcs, _namespace(sts), claim_name) is None:
                labels = {**((claim.get("metadata") or {}).get("labels") or {}),
                          **((spec.get("selector") or {}).get("matchLabels") or {})}
                body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim_name, "labels": labels},
                        "spec": copy.deepcopy(claim.get("spec") or {})}
                try:
                    self.store.create(self.pvcs, _namespace(sts), body)
                except errors.ApiError as exc:
                    self._record(sts, "StatefulSet", "apps/v1", "Warning", "FailedCreate",
                                 f"create Claim {claim_name} for Pod {pod_name} in StatefulSet {name} failed error: "
                                 f"{exc.message}", component="statefulset-controller", once=True)
                    return False
                self._record(sts, "StatefulSet", "apps/v1", "Normal", "SuccessfulCreate",
                             f"create Claim {claim_name} Pod {pod_name} in StatefulSet {name} success",
                             component="statefulset-controller")

        def identity(pod_spec: dict[str, Any]) -> None:
            pod_spec["hostname"] = pod_name
            if spec.get("serviceName"):
                pod_spec["subdomain"] = spec["serviceName"]
            volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
            volumes += [{"name": c, "persistentVolumeClaim": {"claimName": n}} for c, n in claims.items()]
            if volumes:
                pod_spec["volumes"] = volumes

        labels = {STS_POD_NAME_LABEL: pod_name, STS_POD_INDEX_LABEL: str(ordinal), REVISION_LABEL: revision}
        try:
            self._create_pod(sts, "StatefulSet", spec.get("template") or {}, name=pod_name, extra_labels=labels,
                             mutate=identity)
        except errors.ApiError as exc:
            self._record(sts, "StatefulSet", "apps/v1", "Warning", "FailedCreate",
                         f"create Pod {pod_name} in StatefulSet {name} failed error: {exc.message}",
                         component="statefulset-controller", once=True)
            return False
        self._record(sts, "StatefulSet", "apps/v1", "Normal", "SuccessfulCreate",
                     f"create Pod {pod_name} in StatefulSet {name} successful", component="statefulset-controller")
        return True

    # --- scheduler ------------------------------------------------------------------------

    def _node_infos(self, nodes: list[Obj], pods: list[Obj]) -> dict[str, NodeInfo]:
        infos = {_name(n): NodeInfo(n) for n in nodes}
        for pod in pods:
            node = _spec(pod).get("nodeName")
            if node in infos and not pod_terminated(pod):
                infos[node].add(pod)
        return infos

    def _scheduler(self, now: float) -> bool:
        """schedule_one.go: each pending pod (PrioritySort order) filtered over every node."""
        pods = self._list(self.pods)
        pending = [p for p in pods if not _spec(p).get("nodeName") and not _deleting(p) and not pod_terminated(p)
                   and (_spec(p).get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER]
        if not pending:
            return False
        nodes = self._list(self.nodes)
        infos = self._node_infos(nodes, pods)
        pending.sort(key=lambda p: (-int(_spec(p).get("priority") or 0), _meta(p).get("creationTimestamp", ""),
                                    _name(p)))
        # Pods nominated by a preemption hold their place on that node for the others
        # (RunFilterPluginsWithNominatedPods, simplified: whatever their priority).
        for pod in pending:
            nominated = _status(pod).get("nominatedNodeName")
            if nominated in infos:
                infos[nominated].add(pod)
        changed = False
        for pod in pending:
            nominated = _status(pod).get("nominatedNodeName")
            if nominated in infos:
                infos[nominated].remove(pod)
            if self._schedule(pod, infos, now):
                changed = True
        return changed

    def _instance(self, infos: dict[str, NodeInfo]) -> str:
        """The scheduler's reportingInstance: default-scheduler-<its host>."""
        control = sorted(n for n, i in infos.items() if "node-role.kubernetes.io/control-plane" in i.labels)
        return f"{DEFAULT_SCHEDULER}-{control[0]}" if control else DEFAULT_SCHEDULER

    def _unschedulable(self, pod: Obj, reason: str, message: str, infos: dict[str, NodeInfo], now: float,
                       nominated: str | None = None) -> bool:
        """handleSchedulingFailure: PodScheduled False (and nominatedNodeName), a FailedScheduling
        event when the message is new."""
        status = copy.deepcopy(_status(pod))
        conditions = status.setdefault("conditions", [])
        current = _find(conditions, "PodScheduled")
        wanted = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                  "lastTransitionTime": _rfc3339(now), "reason": reason, "message": message}
        if current is not None and current.get("status") == "False":
            wanted["lastTransitionTime"] = current.get("lastTransitionTime", wanted["lastTransitionTime"])
        if current is not None:
            conditions[conditions.index(current)] = wanted
        else:
            conditions.append(wanted)
        if nominated:
            status["nominatedNodeName"] = nominated
        changed = self._write_status(self.pods, pod, status)
        if changed and (current is None or current.get("message") != message) and reason != "SchedulingGated":
            self._record(pod, "Pod", "v1", "Warning", "FailedScheduling", message, component=DEFAULT_SCHEDULER,
                         host=self._instance(infos), action="Scheduling")
        return changed

    def _schedule(self, pod: Obj, infos: dict[str, NodeInfo], now: float) -> bool:
        spec = _spec(pod)
        if spec.get("schedulingGates"):
            return self._unschedulable(pod, "SchedulingGated", "Scheduling is blocked due to non-empty scheduling "
                                       "gates", infos, now)
        if not infos:
            return self._unschedulable(pod, "SchedulerError", "no nodes available to schedule pods", infos, now)
        requests = pod_requests(spec)
        feasible: list[NodeInfo] = []
        statuses: dict[str, tuple[str, list[str]]] = {}
        for name in sorted(infos):
            rejected = infos[name].filter(pod, requests)
            if rejected is None:
                feasible.append(infos[name])
            else:
                statuses[name] = rejected
        if feasible:
            chosen = self._pick(pod, feasible)
            try:
                self.store.bind_pod(_namespace(pod), _name(pod), chosen.name)
            except errors.ApiError as exc:
                if exc.code in (404, 409):
                    return False
                raise
            chosen.add({**pod, "spec": {**spec, "nodeName": chosen.name}})
            self._record(pod, "Pod", "v1", "Normal", "Scheduled",
                         f"Successfully assigned {_namespace(pod)}/{_name(pod)} to {chosen.name}",
                         component=DEFAULT_SCHEDULER, host=self._instance(infos), action="Binding")
            return True
        message = fit_error(len(infos), statuses)
        post, victims, node = self._preempt(pod, requests, infos, statuses)
        if victims:
            for victim in victims:
                if self._delete(self.pods, victim):
                    self._record(victim, "Pod", "v1", "Normal", "Preempted",
                                 f"Preempted by pod {_uid(pod)} on node {node}", component=DEFAULT_SCHEDULER,
                                 host=self._instance(infos), action="Preempting")
                    infos[str(node)].remove(victim)
        elif post:
            message += f" {post}."
        changed = self._unschedulable(pod, "Unschedulable", message, infos, now, nominated=node)
        nominated = node or _status(pod).get("nominatedNodeName")
        if nominated in infos:
            infos[str(nominated)].add(pod)
        return changed or bool(victims)

    def _pick(self, pod: Obj, feasible: list[NodeInfo]) -> NodeInfo:
        """The score plugins, roughly: preferred node affinity (weight 2), PreferNoSchedule taints
        not tolerated (3), least allocated cpu and memory (1), spreading the pods of one
        controller (2); normalised to 0..100 as the framework does."""
        spec = _spec(pod)
        preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution") or []
        tolerations = spec.get("tolerations") or []
        owner = controller_uid(pod)
        cpu, memory = _non_zero(spec)
        raw: dict[str, tuple[float, float, float, float]] = {}
        for info in feasible:
            affinity = sum(int(term.get("weight") or 0) for term in preferred
                           if node_selector_term_matches(term.get("preference") or {}, info.node))
            intolerable = sum(1 for t in info.taints if t.get("effect") == "PreferNoSchedule"
                              and not any(tolerates(tol, t) for tol in tolerations))
            least = 0.0
            for used, alloc in ((info.nonzero_cpu + cpu, info.allocatable.get("cpu", 0)),
                                (info.nonzero_memory + memory, info.allocatable.get("memory", 0))):
                least += (alloc - used) * 100 / alloc / 2 if alloc and used <= alloc else 0.0
            siblings = sum(1 for p in info.pods if owner and controller_uid(p) == owner)
            raw[info.name] = (affinity, intolerable, least, siblings)

        def normal(values: list[float], reverse: bool) -> list[float]:
            top = max(values) if values else 0
            if top <= 0:
                return [100.0 if reverse else 0.0 for _ in values]
            return [(100 - v * 100 / top) if reverse else v * 100 / top for v in values]

        names = [i.name for i in feasible]
        aff = normal([raw[n][0] for n in names], False)
        taint = normal([raw[n][1] for n in names], True)
        spread = normal([raw[n][3] for n in names], True)
        scores = {n: 2 * aff[i] + 3 * taint[i] + raw[n][2] + 2 * spread[i] for i, n in enumerate(names)}
        best = max(scores.values())
        return next(i for i in feasible if scores[i.name] == best)

    def _preempt(self, pod: Obj, requests: Counter[str], infos: dict[str, NodeInfo],
                 statuses: dict[str, tuple[str, list[str]]]) -> tuple[str, list[Obj], str | None]:
        """DefaultPreemption PostFilter: (its message, the victims, the nominated node)."""
        spec = _spec(pod)
        if (spec.get("preemptionPolicy") or "PreemptLowerPriority") == "Never":
            return "preemption: not eligible due to preemptionPolicy=Never.", [], None
        priority = int(spec.get("priority") or 0)
        results: dict[str, tuple[str, list[str]]] = {}
        candidates: list[tuple[tuple[int, int, int, str], str, list[Obj]]] = []
        for name, (code, _reasons) in statuses.items():
            if code == UNRESOLVABLE_CODE:
                results[name] = (UNRESOLVABLE_CODE, ["Preemption is not helpful for scheduling"])
                continue
            info = infos[name]
            lower = [p for p in info.pods if int(_spec(p).get("priority") or 0) < priority]
            if not lower:
                results[name] = (UNRESOLVABLE_CODE, ["No preemption victims found for incoming pod"])
                continue
            trial = info.without(lower)
            rejected = trial.filter(pod, requests)
            if rejected is not None:
                results[name] = rejected
                continue
            # Reprieve as many as possible, most important first (SelectVictimsOnNode).
            victims = []
            for victim in sorted(lower, key=lambda p: -int(_spec(p).get("priority") or 0)):
                trial.add(victim)
                if trial.filter(pod, requests) is not None:
                    trial.remove(victim)
                    victims.append(victim)
            top = max(int(_spec(v).get("priority") or 0) for v in victims) if victims else 0
            total = sum(int(_spec(v).get("priority") or 0) for v in victims)
            candidates.append(((top, total, len(victims), name), name, victims))
        if candidates:
            _key, node, victims = min(candidates, key=lambda c: c[0])
            return "", victims, node
        return "preemption: " + fit_error(len(statuses), results), [], None

    # --- kubelet --------------------------------------------------------------------------

    def _runtime(self, node: str) -> tuple[set[str], str] | None:
        if self.runtimes_of is None:
            return None
        if ("runtimes", node) not in self._facts:
            self._facts[("runtimes", node)] = self.runtimes_of(node)
        found = self._facts[("runtimes", node)]
        if found is None:
            return None
        if isinstance(found, tuple):
            handlers, default = found
            return set(handlers), str(default or "")
        return set(found), ""

    def _gpus(self, node: str) -> int:
        if self.gpus_of is None:
            return 0
        if ("gpus", node) not in self._facts:
            self._facts[("gpus", node)] = int(self.gpus_of(node))
        return int(self._facts[("gpus", node)])

    def _handler(self, pod: Obj) -> tuple[str | None, str]:
        """The pod's runtime handler (kuberuntime LookupRuntimeHandler): "" for the default, and
        the error when its RuntimeClass is gone."""
        class_name = _spec(pod).get("runtimeClassName")
        if not class_name:
            return "", ""
        rc = self.store.find(self.runtimeclasses, None, class_name)
        if rc is None:
            return None, f'runtimeclass.node.k8s.io "{class_name}" not found'
        return str(rc.get("handler") or ""), ""

    def _pod_ip(self, node: str) -> str:
        """An address from the node's /24 of the pod network, not taken by a pod."""
        if node not in self._node_index:
            self._node_index[node] = len(self._node_index) % 256
        prefix = f"{POD_NETWORK}.{self._node_index[node]}."
        for host in range(2, 255):
            if prefix + str(host) not in self._ips_taken:
                self._ips_taken.add(prefix + str(host))
                return prefix + str(host)
        return prefix + "254"

    def _kubelet(self, now: float) -> bool:
        """Each Ready node's kubelet: admit, start after pod_start_s, report status."""
        nodes = {_name(n): n for n in self._list(self.nodes)}
        pods = self._list(self.pods)
        infos = self._node_infos(list(nodes.values()), [])
        self._ips_taken = {str(_status(p).get("podIP")) for p in pods if _status(p).get("podIP")}
        changed = False
        live = set()
        for pod in sorted(pods, key=lambda p: (_meta(p).get("creationTimestamp", ""), _name(p))):
            live.add(_uid(pod))
            node_name = _spec(pod).get("nodeName")
            if not node_name or node_name not in nodes or pod_terminated(pod) or _deleting(pod):
                continue
            node = nodes[node_name]
            if not node_ready(node):
                # The kubelet is not posting; the node lifecycle controller marks its pods not
                # ready (nodelifecycle MarkPodsNotReady).
                ready = condition(pod, "Ready")
                if ready is not None and ready.get("status") == "True":
                    status = copy.deepcopy(_status(pod))
                    for c in status.get("conditions") or []:
                        if c.get("type") == "Ready":
                            c.update({"status": "False", "lastTransitionTime": _rfc3339(now)})
                    changed = self._write_status(self.pods, pod, status) or changed
                continue
            info = infos[node_name]
            if not _status(pod).get("startTime"):
                # Kubelet admission (lifecycle/predicate.go): the node's resources.
                short = info.insufficient(pod_requests(_spec(pod)))
                if short:
                    changed = self._reject(pod, node_name, short[0], now) or changed
                    continue
            info.add(pod)
            if self._kubelet_pod(pod, node, now):
                changed = True
        for uid in list(self._kubelet_since):
            if uid not in live:
                del self._kubelet_since[uid]
        return changed

    def _reject(self, pod: Obj, node_name: str, short: tuple[str, int, int, int], now: float) -> bool:
        """kubelet rejectPod: phase Failed, reason OutOf<resource> (lifecycle/predicate.go)."""
        resource, requested, used, capacity = short
        reason = f"OutOf{resource}"
        message = f"Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, " \
                  f"capacity: {capacity}"
        rejected = {**copy.deepcopy(_status(pod)), "phase": "Failed", "reason": reason,
                    "message": f"Pod was rejected: {message}", "startTime": _rfc3339(now)}
        changed = self._write_status(self.pods, pod, rejected)
        if changed:
            self._record(pod, "Pod", "v1", "Warning", reason, message, component="kubelet", host=node_name)
        return changed

    def _kubelet_pod(self, pod: Obj, node: Obj, now: float) -> bool:
        uid = _uid(pod)
        node_name = _name(node)
        since = self._kubelet_since.setdefault(uid, now)
        handler, lookup_error = self._handler(pod)
        error = ""
        if lookup_error:
            error = f"Failed to create pod sandbox: {lookup_error}"
        else:
            runtimes = self._runtime(node_name)
            if runtimes is not None:
                configured, default = runtimes
                effective = handler or default
                if effective and effective not in configured:
                    error = ("Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox "
                             f'runtime: no runtime for "{effective}" is configured')
        running = _status(pod).get("phase") == "Running"
        if running:
            return self._resync_ready(pod, now)
        if error or now - since < self.delays.pod_start_s:
            changed = self._write_status(self.pods, pod, self._waiting_status(pod, node, now))
            if error:
                self._record(pod, "Pod", "v1", "Warning", "FailedCreatePodSandBox", error, component="kubelet",
                             host=node_name, once=True)
            return changed
        crash = self._plugin_failure(pod, node_name, handler or "")
        new = self._running_status(pod, node, now, crash)
        if not self._write_status(self.pods, pod, new):
            return False
        for c in _spec(pod).get("containers") or []:
            path = f"spec.containers{{{c.get('name', '')}}}"
            self._record(pod, "Pod", "v1", "Normal", "Pulled",
                         f'Container image "{c.get("image", "")}" already present on machine', component="kubelet",
                         host=node_name, field_path=path)
            self._record(pod, "Pod", "v1", "Normal", "Created", f"Created container {c.get('name', '')}",
                         component="kubelet", host=node_name, field_path=path)
            self._record(pod, "Pod", "v1", "Normal", "Started", f"Started container {c.get('name', '')}",
                         component="kubelet", host=node_name, field_path=path)
            if crash is not None and c.get("name") == crash[0]:
                self._record(pod, "Pod", "v1", "Warning", "BackOff",
                             f"Back-off restarting failed container {crash[0]} in pod "
                             f"{_name(pod)}_{_namespace(pod)}({uid})", component="kubelet", host=node_name,
                             field_path=path)
        return True

    def _resync_ready(self, pod: Obj, now: float) -> bool:
        """A running pod's Ready conditions as its containers say (after its node was not ready)."""
        statuses = _status(pod).get("containerStatuses") or []
        not_ready = [str(s.get("name", "")) for s in statuses if not s.get("ready")]
        ready = condition(pod, "Ready")
        if ready is None or (ready.get("status") == "True") == (not not_ready):
            return False
        status = copy.deepcopy(_status(pod))
        status["conditions"] = self._pod_conditions(pod, now, sandbox=True, ready=not not_ready, not_ready=not_ready)
        return self._write_status(self.pods, pod, status)

    @staticmethod
    def _pod_conditions(pod: Obj, now: float, *, sandbox: bool, ready: bool,
                        not_ready: list[str]) -> list[dict[str, Any]]:
        """The kubelet's pod conditions (status/generate.go), transition times kept when unchanged."""
        before = {c.get("type"): c for c in _status(pod).get("conditions") or []}
        stamp = _rfc3339(now)

        def cond(type_: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
            c: dict[str, Any] = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None,
                                 "lastTransitionTime": stamp}
            old = before.get(type_)
            if old is not None and old.get("status") == c["status"]:
                c["lastTransitionTime"] = old.get("lastTransitionTime", stamp)
            if not ok and reason:
                c["reason"], c["message"] = reason, message
            return c

        unready = f"containers with unready status: [{' '.join(not_ready)}]"
        out = [cond("PodReadyToStartContainers", sandbox), cond("Initialized", True),
               cond("Ready", ready, "ContainersNotReady", unready),
               cond("ContainersReady", ready, "ContainersNotReady", unready)]
        scheduled = before.get("PodScheduled")
        out.append(scheduled if scheduled is not None else cond("PodScheduled", True))
        return out

    def _base_status(self, pod: Obj, node: Obj, now: float) -> dict[str, Any]:
        status = copy.deepcopy(_status(pod))
        host_ip = node_address(node)
        status.update({"phase": "Pending", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}] if host_ip else [],
                       "startTime": status.get("startTime") or _rfc3339(now)})
        if not host_ip:
            status.pop("hostIP")
            status.pop("hostIPs")
        return status

    def _waiting_status(self, pod: Obj, node: Obj, now: float) -> dict[str, Any]:
        status = self._base_status(pod, node, now)
        names = [c.get("name", "") for c in _spec(pod).get("containers") or []]
        status["conditions"] = self._pod_conditions(pod, now, sandbox=False, ready=False, not_ready=names)
        status["containerStatuses"] = [
            {"image": c.get("image", ""), "imageID": "", "lastState": {}, "name": c.get("name", ""), "ready": False,
             "restartCount": 0, "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
            for c in _spec(pod).get("containers") or []]
        if _spec(pod).get("initContainers"):
            status["initContainerStatuses"] = [
                {"image": c.get("image", ""), "imageID": "", "lastState": {}, "name": c.get("name", ""),
                 "ready": False, "restartCount": 0, "started": False,
                 "state": {"waiting": {"reason": "PodInitializing"}}} for c in _spec(pod)["initContainers"]]
        return status

    def _running_status(self, pod: Obj, node: Obj, now: float, crash: tuple[str, str] | None) -> dict[str, Any]:
        spec = _spec(pod)
        status = self._base_status(pod, node, now)
        status["phase"] = "Running"
        ip = status.get("hostIP", "") if spec.get("hostNetwork") else self._pod_ip(_name(node))
        if ip:
            status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
        stamp = _rfc3339(now)

        def container(c: dict[str, Any], state: dict[str, Any], ready: bool, **more: Any) -> dict[str, Any]:
            image = str(c.get("image", ""))
            digest = hashlib.sha256(f"{_uid(pod)}/{c.get('name')}".encode()).hexdigest()
            return {"containerID": f"containerd://{digest}", "image": _image_ref(image), "imageID": _image_id(image),
                    "lastState": more.get("last", {}), "name": c.get("name", ""), "ready": ready,
                    "restartCount": more.get("restarts", 0), "started": ready, "state": state}

        statuses = []
        not_ready = []
        for c in spec.get("containers") or []:
            if crash is not None and c.get("name") == crash[0]:
                not_ready.append(crash[0])
                backoff = int(self.delays.crash_backoff_s)
                statuses.append(container(
                    c, {"waiting": {"reason": "CrashLoopBackOff",
                                    "message": f"back-off {backoff}s restarting failed container={crash[0]} "
                                               f"pod={_name(pod)}_{_namespace(pod)}({_uid(pod)})"}}, False,
                    last={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": stamp, "finishedAt": stamp,
                                         "containerID": f"containerd://{hashlib.sha256(_uid(pod).encode()).hexdigest()}"}},
                    restarts=1))
                if c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
                    statuses[-1]["lastState"]["terminated"]["message"] = crash[1]
            else:
                statuses.append(container(c, {"running": {"startedAt": stamp}}, True))
        status["containerStatuses"] = statuses
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [
                container(c, {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp,
                                             "finishedAt": stamp}}, False) for c in spec["initContainers"]]
        status["conditions"] = self._pod_conditions(pod, now, sandbox=True, ready=not not_ready, not_ready=not_ready)
        return status

    # --- NVIDIA device plugin -------------------------------------------------------------

    def _plugin_failure(self, pod: Obj, node: str, handler: str) -> tuple[str, str] | None:
        """Whether the device plugin in `pod` fails to start on `node`: (container, its log)."""
        plugin = next((c for c in _spec(pod).get("containers") or []
                       if str(c.get("image", "")).startswith(DEVICE_PLUGIN_IMAGE)), None)
        if plugin is None:
            return None
        runtimes = self._runtime(node)
        effective = handler or (runtimes[1] if runtimes is not None else "")
        # Unknown runtimes, or an unknown default handler: taken as able to see the GPUs.
        sees_gpus = self._gpus(node) > 0 and (runtimes is None or not effective or "nvidia" in effective.lower())
        name = str(plugin.get("name", ""))
        key = (_namespace(pod), _name(pod), name)
        if sees_gpus:
            self._logs[key] = (f"Starting FS watcher for /var/lib/kubelet/device-plugins\nStarting OS watcher.\n"
                               f"Starting Plugins.\nLoading configuration.\nDetected platform: nvml\n"
                               f"Using device discovery strategy: nvml\n"
                               f"Registered device plugin for '{GPU}' with Kubelet\n")
            return None
        text = ("Starting FS watcher for /var/lib/kubelet/device-plugins\nStarting OS watcher.\nStarting Plugins.\n"
                "Loading configuration.\nUpdating config with default resource matching patterns.\n"
                "Retrieving plugins.\nDetected platform: unknown\nUnsupported platform detected; defaulting to nvml\n"
                "Using device discovery strategy: nvml\n"
                "Failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND.\n"
                "If this is a GPU node, did you set the docker default runtime to `nvidia`?\n"
                "You can check the prerequisites at: https://github.com/NVIDIA/k8s-device-plugin#prerequisites\n"
                "You can learn how to set the runtime at: https://github.com/NVIDIA/k8s-device-plugin#quick-start\n"
                "If this is not a GPU node, you should set up a toleration or nodeSelector to only deploy this "
                "plugin on GPU nodes\n"
                "error starting plugins: error getting plugins: unable to create plugins: failed to construct "
                "resource managers: nvml init failed: ERROR_LIBRARY_NOT_FOUND\n")
        self._logs[key] = text
        return name, text

    def _device_plugin(self, now: float) -> bool:
        """What each kubelet's device manager puts in its node's status for nvidia.com/gpu."""
        healthy: set[str] = set()
        for pod in self._list(self.pods):
            node = _spec(pod).get("nodeName")
            if not node or _status(pod).get("phase") != "Running" or _deleting(pod):
                continue
            for c in _spec(pod).get("containers") or []:
                if not str(c.get("image", "")).startswith(DEVICE_PLUGIN_IMAGE):
                    continue
                cs = next((s for s in _status(pod).get("containerStatuses") or [] if s.get("name") == c.get("name")),
                          None)
                if cs is not None and cs.get("ready") and "running" in (cs.get("state") or {}):
                    healthy.add(str(node))
        changed = False
        for node in self._list(self.nodes):
            name = _name(node)
            if not node_ready(node):
                continue  # its kubelet is not posting status
            status = copy.deepcopy(_status(node))
            capacity = dict(status.get("capacity") or {})
            allocatable = dict(status.get("allocatable") or {})
            if name in healthy:
                count = str(self._gpus(name))
                capacity[GPU] = allocatable[GPU] = count
                self._unregistered.pop(name, None)
            elif GPU in capacity:
                allocatable[GPU] = "0"
                since = self._unregistered.setdefault(name, now)
                if now - since >= self.delays.device_plugin_grace_s:
                    capacity[GPU] = "0"
            else:
                continue
            status["capacity"], status["allocatable"] = capacity, allocatable
            if self._write_status(self.nodes, node, status):
                changed = True
        return changed

    # --- pod garbage collection -----------------------------------------------------------

    def _pod_gc(self, now: float) -> bool:
        """podgc gcOrphaned: pods bound to a node that does not exist, after the quarantine."""
        nodes = {_name(n) for n in self._list(self.nodes)}
        changed = False
        seen = set()
        for pod in self._list(self.pods):
            node = _spec(pod).get("nodeName")
            if not node or node in nodes:
                continue
            seen.add(_uid(pod))
            since = self._orphaned_since.setdefault(_uid(pod), now)
            if now - since >= self.delays.orphan_pod_gc_s and self._delete(self.pods, pod):
                changed = True
        for uid in list(self._orphaned_since):
            if uid not in seen:
                del self._orphaned_since[uid]
        return changed


# --- the scheduler's view of a node ---------------------------------------------------------


def fit_error(nodes: int, statuses: dict[str, tuple[str, list[str]]]) -> str:
    """framework.FitError.Error: `0/N nodes are available: <count> <reason>, ... .` with the
    reasons counted over the nodes and sorted as strings."""
    counts = Counter(reason for _code, reasons in statuses.values() for reason in reasons)
    parts = sorted(f"{count} {reason}" for reason, count in counts.items())
    message = f"0/{nodes} nodes are available:"
    if parts:
        message += f" {', '.join(parts)}."
    return message


class NodeInfo:
    """framework.NodeInfo: a node, its pods, what they request, the host ports they use."""

    def __init__(self, node: Obj) -> None:
        self.node = node
        self.name = _name(node)
        self.labels = _labels(node)
        self.taints: list[dict[str, Any]] = list(_spec(node).get("taints") or [])
        self.allocatable = Counter({k: amount(k, v) for k, v in (_status(node).get("allocatable") or {}).items()})
        self.pods: list[Obj] = []
        self.requested: Counter[str] = Counter()
        self.nonzero_cpu = 0
        self.nonzero_memory = 0

    def add(self, pod: Obj) -> None:
        self.pods.append(pod)
        self.requested.update(pod_requests(_spec(pod)))
        cpu, memory = _non_zero(_spec(pod))
        self.nonzero_cpu += cpu
        self.nonzero_memory += memory

    def remove(self, pod: Obj) -> None:
        kept = [p for p in self.pods if _uid(p) != _uid(pod)]
        if len(kept) == len(self.pods):
            return
        self.pods = []
        self.requested = Counter()
        self.nonzero_cpu = self.nonzero_memory = 0
        for p in kept:
            self.add(p)

    def without(self, pods: list[Obj]) -> NodeInfo:
        other = NodeInfo(self.node)
        gone = {_uid(p) for p in pods}
        for p in self.pods:
            if _uid(p) not in gone:
                other.add(p)
        return other

    def ports(self) -> set[tuple[str, str, int]]:
        used = set()
        for pod in self.pods:
            used.update(host_ports(_spec(pod)))
        return used

    def insufficient(self, requests: Counter[str]) -> list[tuple[str, int, int, int]]:
        """noderesources fitsRequest: (resource, requested, used, allocatable) for each short one;
        `pods` is "Too many pods"."""
        out: list[tuple[str, int, int, int]] = []
        if len(self.pods) + 1 > self.allocatable.get("pods", 0):
            out.append(("pods", 1, len(self.pods), self.allocatable.get("pods", 0)))
        if not any(v for k, v in requests.items() if k != "pods"):
            return out
        scalar = sorted(k for k in requests if k not in ("cpu", "memory", "ephemeral-storage", "pods"))
        for name in ["cpu", "memory", "ephemeral-storage", *scalar]:
            wanted = requests.get(name, 0)
            if wanted > 0 and wanted > self.allocatable.get(name, 0) - self.requested.get(name, 0):
                out.append((name, wanted, self.requested.get(name, 0), self.allocatable.get(name, 0)))
        return out

    def filter(self, pod: Obj, requests: Counter[str]) -> tuple[str, list[str]] | None:
        """The default profile's filters in order; the first that rejects: (code, reasons)."""
        spec = _spec(pod)
        tolerations = spec.get("tolerations") or []
        if _spec(self.node).get("unschedulable") and not any(
                tolerates(t, {"key": UNSCHEDULABLE, "effect": "NoSchedule"}) for t in tolerations):
            return UNRESOLVABLE_CODE, ["node(s) were unschedulable"]
        taint = untolerated_taint(self.taints, tolerations, ("NoSchedule", "NoExecute"))
        if taint is not None:
            return UNRESOLVABLE_CODE, [f"node(s) had untolerated taint {{{taint.get('key', '')}: "
                                       f"{taint.get('value', '')}}}"]
        if not node_matches(spec, self.node):
            return UNRESOLVABLE_CODE, ["node(s) didn't match Pod's node affinity/selector"]
        wanted = host_ports(spec)
        if wanted and ports_conflict(wanted, self.ports()):
            return UNSCHEDULABLE_CODE, ["node(s) didn't have free ports for the requested pod ports"]
        short = self.insufficient(requests)
        if short:
            return UNSCHEDULABLE_CODE, ["Too many pods" if r == "pods" else f"Insufficient {r}"
                                        for r, *_rest in short]
        return None


def host_ports(spec: dict[str, Any]) -> set[tuple[str, str, int]]:
    out = set()
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.add((port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP", int(port["hostPort"])))
    return out


def ports_conflict(wanted: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    """HostPortInfo.CheckConflict: same protocol and port, and the same IP or 0.0.0.0 on either side."""
    for ip, protocol, port in wanted:
        for uip, uprotocol, uport in used:
            if protocol == uprotocol and port == uport and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


def with_controllers(**kwargs: Any) -> Callable[[Store], Controllers]:
    """A `controllers=` factory for K8sApiServer / run_k8s: `Controllers(store, **kwargs)`."""

    def make(store: Store) -> Controllers:
        return Controllers(store, **kwargs)

    return make
