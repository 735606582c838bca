"""Small helpers the controllers share: the objects' metadata, spec and status, conditions,
pod states, times, resource quantities and requests, template hashes, and the well-known
labels, annotations, taints and defaults (kubernetes/kubernetes v1.31.x where cited).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections import Counter
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from botlab.lab.k8s.store import Obj

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

def node_address(node: Obj, kind: str = "InternalIP") -> str:
    for address in _status(node).get("addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address", ""))
    return ""


def node_ready(node: Obj) -> bool:
    ready = condition(node, "Ready")
    return ready is not None and ready.get("status") == "True"


# --- admission ----------------------------------------------------------------------------------



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

