"""The Deployment controller of the lab's cluster (kubernetes/kubernetes at tag v1.31.x unless said otherwise).

**Deployments** (pkg/controller/deployment: sync.go, rolling.go, recreate.go, progress.go,
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

"""

from __future__ import annotations

import copy
import json
from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.controllers.base import (
    ControllerBase,
)
from botlab.lab.k8s.controllers.objects import (
    DESIRED_ANNOTATION,
    HASH_LABEL,
    MAX_ANNOTATION,
    MAX_INT32,
    REVISION_ANNOTATION,
    _deleting,
    _find,
    _meta,
    _name,
    _namespace,
    _parse_time,
    _rfc3339,
    _set_condition,
    _spec,
    _status,
    _uid,
    condition,
    controller_uid,
    int_or_percent,
    owner_reference,
    pod_terminated,
    template_hash,
)
from botlab.lab.k8s.store import Obj


class DeploymentController(ControllerBase):
    """The Deployment controller's pass (`_deployments`)."""

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

