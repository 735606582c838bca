"""The StatefulSet controller of the lab's cluster (kubernetes/kubernetes at tag v1.31.x unless said otherwise).

**StatefulSets** (pkg/controller/statefulset): pods `<name>-<ordinal>` (hostname, subdomain =
serviceName, labels `statefulset.kubernetes.io/pod-name`, `apps.kubernetes.io/pod-index`,
`controller-revision-hash: <name>-<hash>`), OrderedReady (the next ordinal only once the
previous ones are Running and Ready; scale down from the highest, one at a time) or Parallel;
a PersistentVolumeClaim `<template>-<name>-<ordinal>` per volumeClaimTemplate (retained, as
the default persistentVolumeClaimRetentionPolicy says); RollingUpdate from the highest ordinal
down to the partition, one pod at a time, and OnDelete; status replicas, readyReplicas,
currentReplicas, updatedReplicas, availableReplicas, currentRevision, updateRevision,
observedGeneration, collisionCount.

"""

from __future__ import annotations

import copy
import re
from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.controllers.base import (
    ControllerBase,
)
from botlab.lab.k8s.controllers.objects import (
    REVISION_LABEL,
    STS_POD_INDEX_LABEL,
    STS_POD_NAME_LABEL,
    _deleting,
    _labels,
    _meta,
    _name,
    _namespace,
    _spec,
    _status,
    _uid,
    pod_active,
    pod_available,
    pod_terminated,
    running_and_ready,
)
from botlab.lab.k8s.store import Obj


class StatefulSetController(ControllerBase):
    """The StatefulSet controller's pass (`_statefulsets`)."""

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
