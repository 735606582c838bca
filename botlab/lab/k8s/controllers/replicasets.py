"""The ReplicaSet controller of the lab's cluster (kubernetes/kubernetes at tag v1.31.x unless said otherwise).

**ReplicaSets** (pkg/controller/replicaset): pods `<rs>-<5 chars>` from the template
(controller.GetPodFromTemplate), surplus deleted in getPodsToDelete's order; status replicas,
fullyLabeledReplicas, readyReplicas, availableReplicas (minReadySeconds), observedGeneration,
the ReplicaFailure condition (FailedCreate with the API's refusal); SuccessfulCreate,
SuccessfulDelete, FailedCreate (`Error creating: ...`) events.

"""

from __future__ import annotations

from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.controllers.base import (
    ControllerBase,
)
from botlab.lab.k8s.controllers.objects import (
    _deleting,
    _find,
    _labels,
    _meta,
    _name,
    _parse_time,
    _rfc3339,
    _spec,
    _status,
    _uid,
    pod_active,
    pod_available,
    pod_ready,
)
from botlab.lab.k8s.store import Obj


class ReplicaSetController(ControllerBase):
    """The ReplicaSet controller's pass (`_replicasets`)."""

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

