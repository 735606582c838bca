"""The pod admission plugins of the lab's cluster (kubernetes/kubernetes at tag v1.31.x unless said otherwise).

**Admission** (`admission(store)`, installed on the store by K8sApiServer and by Controllers;
plugin/pkg/admission/{priority,defaulttolerationseconds,runtimeclass}): pods get
spec.priority and spec.preemptionPolicy from their PriorityClass (system-node-critical and
system-cluster-critical built in; a global default honoured; a missing one is 403 `no
PriorityClass with name x was found`), the not-ready / unreachable NoExecute tolerations for
300 s, and from their RuntimeClass its overhead and scheduling (nodeSelector merged,
tolerations added); a RuntimeClass that does not exist is 403 `pods "x" is forbidden: pod
rejected: RuntimeClass "x" not found` (the generateName in place of the name for controller
pods, as admission sees them).

"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.controllers.objects import (
    NOT_READY,
    SYSTEM_PRIORITY_CLASSES,
    UNREACHABLE,
    _name,
)
from botlab.lab.k8s.resources import ResourceType
from botlab.lab.k8s.store import Obj, Store


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
