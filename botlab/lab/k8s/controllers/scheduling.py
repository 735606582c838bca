"""The scheduler of the lab's cluster and its view of nodes: affinity, taints and tolerations,
NodeInfo, fit_error (kubernetes/kubernetes at tag v1.31.x unless said otherwise).

**Scheduler** (pkg/scheduler: schedule_one.go, framework/types.go FitError,
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

"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.controllers.base import (
    ControllerBase,
)
from botlab.lab.k8s.controllers.objects import (
    DEFAULT_SCHEDULER,
    UNRESOLVABLE_CODE,
    UNSCHEDULABLE,
    UNSCHEDULABLE_CODE,
    _deleting,
    _find,
    _labels,
    _meta,
    _name,
    _namespace,
    _non_zero,
    _rfc3339,
    _spec,
    _status,
    _uid,
    amount,
    controller_uid,
    pod_requests,
    pod_terminated,
)
from botlab.lab.k8s.store import Obj

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



# --- the scheduler's view of a node ---------------------------------------------------------


def node_infos(nodes: list[Obj], pods: list[Obj]) -> dict[str, NodeInfo]:
    infos = {_name(n): NodeInfo(n) for n in nodes}
    for pod in pods:
        node = _spec(pod).get("nodeName")
        if node in infos and not pod_terminated(pod):
            infos[node].add(pod)
    return infos


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

# --- the scheduler --------------------------------------------------------------------------


class Scheduler(ControllerBase):
    """The scheduler's pass (`_scheduler`)."""

    def _scheduler(self, now: float) -> bool:
        """schedule_one.go: each pending pod (PrioritySort order) filtered over every node."""
        pods = self._list(self.pods)
        pending = [p for p in pods if not _spec(p).get("nodeName") and not _deleting(p) and not pod_terminated(p)
                   and (_spec(p).get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER]
        if not pending:
            return False
        nodes = self._list(self.nodes)
        infos = node_infos(nodes, pods)
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

