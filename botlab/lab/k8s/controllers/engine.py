"""`Controllers`: every pass over one `Store`, run on the API server's event loop
(`run()`, `step()`, `sync()`, `settle()`), and `with_controllers` for K8sApiServer / run_k8s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from botlab.lab.k8s.controllers.daemonsets import DaemonSetController
from botlab.lab.k8s.controllers.deployments import DeploymentController
from botlab.lab.k8s.controllers.kubelet import Kubelet
from botlab.lab.k8s.controllers.node_lifecycle import NodeLifecycleController
from botlab.lab.k8s.controllers.objects import (
    _name,
    _namespace,
    _uid,
)
from botlab.lab.k8s.controllers.podgc import PodGC
from botlab.lab.k8s.controllers.replicasets import ReplicaSetController
from botlab.lab.k8s.controllers.scheduling import Scheduler
from botlab.lab.k8s.controllers.statefulsets import StatefulSetController
from botlab.lab.k8s.store import Event, Store

log = logging.getLogger(__name__)


class Controllers(NodeLifecycleController, DeploymentController, ReplicaSetController,
                  DaemonSetController, StatefulSetController, Scheduler, Kubelet, PodGC):
    """The cluster's controllers, scheduler, kubelets and device plugin over one `Store` (see the
    package doc). `step()` is one pass; `run()` passes until cancelled.

    `runtimes_of(node)`: the host's configured runtime handlers and its default one, or None
    (unknown: any handler counts as configured). `gpus_of(node)`: how many GPUs the host has
    (what the device plugin advertises). `clock`: seconds, default the store's.
    """


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


def with_controllers(**kwargs: Any) -> Callable[[Store], Controllers]:
    """A `controllers=` factory for K8sApiServer / run_k8s: `Controllers(store, **kwargs)`."""

    def make(store: Store) -> Controllers:
        return Controllers(store, **kwargs)

    return make
