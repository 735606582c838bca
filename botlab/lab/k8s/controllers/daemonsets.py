"""The DaemonSet controller of the lab's cluster (kubernetes/kubernetes at tag v1.31.x unless said otherwise).

**DaemonSets** (pkg/controller/daemon: daemon_controller.go NodeShouldRunDaemonPod /
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

"""

from __future__ import annotations

import copy
from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.controllers.base import (
    ControllerBase,
)
from botlab.lab.k8s.controllers.objects import (
    DISK_PRESSURE,
    MEMORY_PRESSURE,
    NETWORK_UNAVAILABLE,
    NOT_READY,
    PID_PRESSURE,
    REVISION_LABEL,
    TEMPLATE_GENERATION_LABEL,
    UNREACHABLE,
    UNSCHEDULABLE,
    _deleting,
    _labels,
    _meta,
    _name,
    _namespace,
    _spec,
    _status,
    _uid,
    int_or_percent,
    pod_active,
    pod_available,
    pod_ready,
)
from botlab.lab.k8s.controllers.scheduling import (
    _add_or_update_toleration,
    node_matches,
    untolerated_taint,
)
from botlab.lab.k8s.store import Obj


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



class DaemonSetController(ControllerBase):
    """The DaemonSet controller's pass (`_daemonsets`)."""

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
