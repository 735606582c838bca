"""Pod garbage collection of the lab's cluster (kubernetes/kubernetes at tag v1.31.x unless said otherwise).

**Pod garbage collection** (pkg/controller/podgc): a pod bound to a node that does not exist is
deleted after `orphan_pod_gc_s` (the 40 s quarantine).

"""

from __future__ import annotations

from botlab.lab.k8s.controllers.base import (
    ControllerBase,
)
from botlab.lab.k8s.controllers.objects import (
    _name,
    _spec,
    _uid,
)


class PodGC(ControllerBase):
    """The pod garbage collector's pass (`_pod_gc`)."""

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


