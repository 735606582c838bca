"""The state and store access every controller pass shares (`ControllerBase`), and the
constructor's configuration: `Delays`, `RuntimesOf`, `GpusOf`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.controllers.admission import (
    admission,
)
from botlab.lab.k8s.controllers.objects import (
    REVISION_LABEL,
    _meta,
    _micro_time,
    _name,
    _namespace,
    _rfc3339,
    _spec,
    _status,
    _uid,
    controller_uid,
    owner_reference,
    template_hash,
)
from botlab.lab.k8s.resources import ResourceType
from botlab.lab.k8s.store import Obj, Store

log = logging.getLogger(__name__)

# runtimes_of(node) -> (the runtime handlers configured on the node's host, the default handler),
# or None when unknown (every handler then counts as configured). A bare set is accepted too
# (its default then unknown).
RuntimesOf = Callable[[str], "tuple[set[str], str] | set[str] | None"]
GpusOf = Callable[[str], int]



@dataclass(frozen=True)
class Delays:
    """How long things take (seconds)."""

    pod_start_s: float = 0.3  # a bound pod's sandbox, image and containers: Pending -> Running
    tick_s: float = 0.1  # how often run() looks again when nothing changed (for the delays)
    device_plugin_grace_s: float = 300.0  # devicemanager endpointStopGracePeriod: capacity kept that long
    crash_backoff_s: float = 10.0  # kubelet's first restart back-off (named in CrashLoopBackOff)
    orphan_pod_gc_s: float = 40.0  # podgc quarantineTime for pods bound to missing nodes


class ControllerBase:
    """What every pass of `Controllers` shares: the store and its resource types, what is
    remembered between passes, store access, events, owned objects and ControllerRevisions."""

    def __init__(self, store: Store, *, runtimes_of: RuntimesOf | None = None, gpus_of: GpusOf | None = None,
                 delays: Delays | None = None, clock: Callable[[], float] | None = None) -> None:
        self.store = store
        self.runtimes_of = runtimes_of
        self.gpus_of = gpus_of
        self.delays = delays or Delays()
        self.clock = clock or store.clock
        if store.admit is None:
            store.admit = admission(store)
        t = store.type_of
        self.pods, self.nodes, self.events = t("", "pods"), t("", "nodes"), t("", "events")
        self.pvcs = t("", "persistentvolumeclaims")
        self.deployments, self.replicasets = t("apps", "deployments"), t("apps", "replicasets")
        self.daemonsets, self.statefulsets = t("apps", "daemonsets"), t("apps", "statefulsets")
        self.revisions = t("apps", "controllerrevisions")
        self.runtimeclasses = t("node.k8s.io", "runtimeclasses")
        self._kubelet_since: dict[str, float] = {}  # pod uid -> when its kubelet began to start it
        self._orphaned_since: dict[str, float] = {}  # pod uid -> when its node was first found missing
        self._unregistered: dict[str, float] = {}  # node -> when its GPU device plugin went away
        self._recorded: set[tuple[str, str, str]] = set()  # (uid, reason, message) of events recorded once
        self._node_index: dict[str, int] = {}  # node -> its pod network /24
        self._event_serial = 0
        self._ips_taken: set[str] = set()
        self._facts: dict[tuple[str, str], Any] = {}
        self._logs: dict[tuple[str, str, str], str] = {}
        self.passes = 0

    # --- store access ---------------------------------------------------------------------

    def _list(self, t: ResourceType, namespace: str | None = None) -> list[Obj]:
        return self.store.list_objects(t, namespace)[0]

    def _write_status(self, t: ResourceType, obj: Obj, status: dict[str, Any]) -> bool:
        if obj.get("status") == status:
            return False
        # Unconditional (no resourceVersion): passes run synchronously, nothing can interleave.
        new = {**obj, "metadata": {k: v for k, v in _meta(obj).items() if k != "resourceVersion"}, "status": status}
        try:
            self.store.update(t, _namespace(obj) or None, _name(obj), new, subresource="status")
        except errors.ApiError as exc:
            if exc.code in (404, 409):
                return False  # gone or changed meanwhile: the next pass sees it
            raise
        return True

    def _write(self, t: ResourceType, obj: Obj) -> Obj | None:
        try:
            return self.store.update(t, _namespace(obj) or None, _name(obj), obj)[0]
        except errors.ApiError as exc:
            if exc.code in (404, 409):
                return None
            raise

    def _delete(self, t: ResourceType, obj: Obj) -> bool:
        try:
            self.store.delete(t, _namespace(obj) or None, _name(obj))
        except errors.ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def _record(self, obj: Obj, kind: str, api_version: str, type_: str, reason: str, message: str, *,
                component: str, host: str = "", field_path: str = "", once: bool = False,
                action: str = "") -> bool:
        """An Event about `obj`. Controllers and the kubelet write core/v1 events as client-go's
        tools/record makes them (source, first/lastTimestamp, count); the scheduler writes
        events.k8s.io/v1 ones (client-go tools/events), seen here as core/v1 would serve them
        (eventTime, action, reportingComponent/Instance, an empty source). `once`: not again
        for the same object, reason and message."""
        key = (_uid(obj), reason, message)
        if once and key in self._recorded:
            return False
        meta = _meta(obj)
        now = self.clock()
        self._event_serial += 1
        stamp_ns = int(now * 1e9) + self._event_serial
        ref = {"kind": kind, "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
               "uid": meta.get("uid", ""), "apiVersion": api_version,
               "resourceVersion": meta.get("resourceVersion", "")}
        if not ref["namespace"]:
            del ref["namespace"]
        if field_path:
            ref["fieldPath"] = field_path
        event: Obj = {"apiVersion": "v1", "kind": "Event",
                      "metadata": {"name": f"{meta.get('name', '')}.{stamp_ns:x}",
                                   "namespace": meta.get("namespace") or "default"},
                      "involvedObject": ref, "reason": reason, "message": message, "type": type_}
        if action:  # events.k8s.io/v1
            event.update({"eventTime": _micro_time(now), "action": action, "reportingComponent": component,
                          "reportingInstance": host or component, "source": {}})
        else:
            source = {"component": component, **({"host": host} if host else {})}
            event.update({"source": source, "firstTimestamp": _rfc3339(now), "lastTimestamp": _rfc3339(now),
                          "count": 1, "reportingComponent": component, "reportingInstance": host})
        try:
            self.store.create(self.events, event["metadata"]["namespace"], event)
        except errors.ApiError as exc:  # e.g. the namespace is going away
            log.debug("event not recorded: %s", exc)
            return False
        self._recorded.add(key)
        return True


    # --- owned objects --------------------------------------------------------------------

    @staticmethod
    def _by_controller(objs: Iterable[Obj]) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for obj in objs:
            uid = controller_uid(obj)
            if uid:
                out.setdefault(uid, []).append(obj)
        return out

    def _create_pod(self, owner: Obj, owner_kind: str, template: dict[str, Any], *, name: str = "",
                    extra_labels: dict[str, str] | None = None,
                    mutate: Callable[[dict[str, Any]], None] | None = None) -> Obj:
        """controller.GetPodFromTemplate: labels, annotations and finalizers of the template,
        generateName `<owner>-` (or `name`), the controller reference, the template's spec."""
        tmeta = template.get("metadata") or {}
        meta: dict[str, Any] = {"labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
                                "ownerReferences": [owner_reference(owner, "apps/v1", owner_kind)]}
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            meta["finalizers"] = list(tmeta["finalizers"])
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = f"{_name(owner)}-"
        spec = copy.deepcopy(template.get("spec") or {})
        if mutate is not None:
            mutate(spec)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        return self.store.create(self.pods, _namespace(owner), pod)


    @staticmethod
    def _replicas(obj: Obj) -> int:
        value = _spec(obj).get("replicas")
        return 1 if value is None else int(value)


    def _owned(self, t: ResourceType, owner: Obj) -> list[Obj]:
        uid = _uid(owner)
        return [o for o in self._list(t, _namespace(owner) or None) if controller_uid(o) == uid]

    # --- ControllerRevisions ----------------------------------------------------------------

    def _history(self, owner: Obj, kind: str, now: float) -> tuple[str, int]:
        """The owner's ControllerRevision for its current template (pkg/controller/history,
        daemon/update.go constructHistory, statefulset getStatefulSetRevisions): named
        `<owner>-<hash>`, data the template as a replacing patch, revision one above the
        highest; (hash, revision)."""
        template = copy.deepcopy(_spec(owner).get("template") or {})
        data = {"spec": {"template": {**template, "$patch": "replace"}}}
        collisions = int(_status(owner).get("collisionCount") or 0)
        hash_ = template_hash(data, collisions)
        name = f"{_name(owner)}-{hash_}"
        existing = self._owned(self.revisions, owner)
        top = max([int(r.get("revision") or 0) for r in existing] + [0])
        mine = next((r for r in existing if _name(r) == name), None)
        if mine is not None:
            return hash_, int(mine.get("revision") or 0)
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["controller.kubernetes.io/hash" if kind == "StatefulSet" else REVISION_LABEL] = hash_
        body = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": name, "labels": labels,
                             "ownerReferences": [owner_reference(owner, "apps/v1", kind)]},
                "data": data, "revision": top + 1}
        try:
            self.store.create(self.revisions, _namespace(owner), body)
        except errors.ApiError as exc:
            if exc.code != 409:
                raise
        return hash_, top + 1

