"""The node lifecycle controller of the lab's cluster (kubernetes/kubernetes at tag v1.31.x unless said otherwise).

**Node lifecycle** (pkg/controller/nodelifecycle doNoScheduleTaintingPass, TaintNodesByCondition):
NoSchedule taints `node.kubernetes.io/not-ready` (Ready False), `unreachable` (Ready Unknown
or not posted), `memory-pressure`, `disk-pressure`, `pid-pressure`, `network-unavailable`,
`unschedulable` (spec.unschedulable), removed when the condition clears. This is how a node
that is not Ready stops taking pods, as in the real scheduler, which does not read conditions.

"""

from __future__ import annotations

import copy

from botlab.lab.k8s.controllers.base import (
    ControllerBase,
)
from botlab.lab.k8s.controllers.objects import (
    CONDITION_TAINT_KEYS,
    CONDITION_TAINTS,
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    _spec,
    condition,
)


class NodeLifecycleController(ControllerBase):
    """The node lifecycle controller's pass (`_node_lifecycle`)."""

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
