"""The emulated API server's objects, in memory.

What a kube-apiserver backed by etcd does, for any resource of the catalogue:

- one global resourceVersion counter (etcd's revision): every write takes the next number,
  and a write that changes nothing (apart from managedFields timestamps) is not a write
  (storage/etcd3/store.go GuaranteedUpdate skips an unchanged object);
- uid and creationTimestamp on create, metadata.generation for the kinds that keep one,
  bumped when their spec changes (each registry's PrepareForUpdate);
- deletion with finalizers: deletionTimestamp set and the object kept until its finalizers
  are gone (registry/generic/registry/store.go Delete / updateForGracefulDeletionAndFinalizers);
- propagationPolicy Background (the default), Foreground and Orphan, the garbage collector's
  work done at once (pkg/controller/garbagecollector): dependents whose owners are all gone
  are deleted, Foreground holds the owner with the `foregroundDeletion` finalizer until its
  blocking dependents are gone, Orphan strips the ownerReferences with the `orphan` finalizer;
- namespace life cycle (pkg/controller/namespace, plugin/pkg/admission/namespace/lifecycle):
  a deleted namespace is Terminating while its content is deleted, no new content is let in;
- CRDs (apiextensions-apiserver): a created CRD is Established at once and its resources
  served; a deleted one deletes its custom resources first (the
  customresourcecleanup.apiextensions.k8s.io finalizer);
- watch events kept in a bounded history, so a watch can start from a resourceVersion; one
  older than the history gets 410 Expired, as from a compacted watch cache.

Every method is synchronous and runs on the server's event loop; watchers get their events
through asyncio queues.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import ipaddress
import json
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botlab.lab.k8s import errors
from botlab.lab.k8s.resources import (
    CRD_CLEANUP_FINALIZER,
    CRD_GROUP,
    CRD_RESOURCE,
    Catalogue,
    CrdError,
    ResourceType,
    crd_types,
    dotted,
)

Obj = dict[str, Any]
Key = tuple[str, str]  # (group, plural)

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
SERVICE_CIDR = ipaddress.ip_network("10.152.183.0/24")  # Charmed Kubernetes' default service CIDR
NODE_PORTS = range(30000, 32768)
# utilrand.String: what generateName appends (apimachinery/pkg/util/rand/rand.go).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339(clock: Callable[[], float]) -> str:
    return datetime.datetime.fromtimestamp(int(clock()), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- selectors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        if not has:
            return False
        try:
            number, bound = int(str(value)), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == "gt" else number < bound


_SET_REQ = re.compile(r"^\s*([^\s!=<>(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_CMP_REQ = re.compile(r"^\s*([^\s!=<>(),]+)\s*(==|=|!=|>|<)\s*([^\s!=<>(),]*)\s*$")
_EXISTS_REQ = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*$")


def _split_top(text: str) -> list[str]:
    """Split on the commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def parse_label_selector(text: str) -> list[Requirement]:
    """apimachinery/pkg/labels/selector.go Parse: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`, joined by commas. 400 if unparsable."""
    if not text.strip():
        return []
    out = []
    for part in _split_top(text):
        if m := _SET_REQ.match(part):
            values = tuple(v.strip() for v in m[3].split(",") if v.strip())
            out.append(Requirement(m[1], m[2], values))
        elif m := _CMP_REQ.match(part):
            op = {"==": "=", ">": "gt", "<": "lt"}.get(m[2], m[2])
            if op in ("gt", "lt") and not re.fullmatch(r"-?\d+", m[3]):
                raise errors.bad_request(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be "
                                         f"an integer: {m[3]!r}")
            out.append(Requirement(m[1], op, (m[3],)))
        elif m := _EXISTS_REQ.match(part):
            out.append(Requirement(m[2], "!" if m[1] else "exists"))
        else:
            raise errors.bad_request(f"unable to parse requirement: found '{part.strip()}', expected: "
                                     "'=', '!=', '==', 'in', notin'")
    return out


def parse_field_selector(text: str, t: ResourceType) -> list[Requirement]:
    """apimachinery/pkg/fields/selector.go: `f=v`, `f==v`, `f!=v`, comma-joined, on the
    fields the resource supports (each registry's GetAttrs); any other field: 400
    `field label not supported: <field>` (the field label conversion functions)."""
    if not text.strip():
        return []
    supported = t.field_paths()
    out = []
    for part in text.split(","):
        m = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if m is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        if m[1] not in supported:
            raise errors.bad_request(f"field label not supported: {m[1]}")
        out.append(Requirement(m[1], "!=" if m[2] == "!=" else "=", (m[3],)))
    return out


def field_value(obj: Obj, path: str) -> str:
    value = dotted(obj, path)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def selected(obj: Obj, t: ResourceType, labels: list[Requirement], fields: list[Requirement]) -> bool:
    obj_labels = (obj.get("metadata") or {}).get("labels") or {}
    if not all(r.matches(obj_labels) for r in labels):
        return False
    paths = t.field_paths()
    values = {r.key: field_value(obj, paths[r.key]) for r in fields}
    return all(r.matches(values) for r in fields)


# --- watch -------------------------------------------------------------------------------


@dataclass
class Event:
    """One committed change: the object after it (for DELETED, as it was last, with the
    deletion's resourceVersion) and before it."""

    rv: int
    type: str
    key: Key
    namespace: str
    obj: Obj
    old: Obj | None = None


class Watch:
    """One watcher: events for one resource (one namespace or all), filtered by selectors.
    An object that stops matching the selectors is reported DELETED, one that starts
    matching ADDED (what the watch cache does: storage/cacher/cache_watcher.go)."""

    def __init__(self, store: Store, t: ResourceType, namespace: str | None, labels: list[Requirement],
                 fields: list[Requirement], after: int = 0) -> None:
        self.store, self.type, self.namespace = store, t, namespace
        self.labels, self.fields = labels, fields
        self.after = after  # events up to this resourceVersion are not for this watcher
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.closed = False

    def _matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        ns = (obj.get("metadata") or {}).get("namespace", "")
        if self.namespace is not None and ns != self.namespace:
            return False
        return selected(obj, self.type, self.labels, self.fields)

    def offer(self, event: Event) -> None:
        if self.closed or event.key != self.type.key or event.rv <= self.after:
            return
        new_match = self._matches(event.obj) and event.type != "DELETED"
        old_match = self._matches(event.old) if event.old is not None else False
        if event.type == "DELETED":
            kind = "DELETED" if self._matches(event.obj) else None
        elif new_match and old_match:
            kind = "MODIFIED"
        elif new_match:
            kind = "ADDED"
        elif old_match:
            kind = "DELETED"
        else:
            kind = None
        if kind is not None:
            self.queue.put_nowait({"type": kind, "object": self.store.present(self.type, event.obj)})

    def put_raw(self, item: dict[str, Any]) -> None:
        self.queue.put_nowait(item)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
            self.store.watchers.discard(self)


# --- the store ---------------------------------------------------------------------------


@dataclass
class DeleteOptions:
    """What a DELETE asks (its DeleteOptions body and query)."""

    propagation: str | None = None  # Background (default), Foreground, Orphan
    orphan_dependents: bool | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False


@dataclass
class Store:
    catalogue: Catalogue = field(default_factory=Catalogue)
    clock: Callable[[], float] = time.time
    history_size: int = 10000
    # Called with every object about to be written by a create or an update (the decoding
    # and validation hook): returns the object to store (unknown fields dropped), or raises
    # errors.ApiError to refuse it.
    validate: Callable[[ResourceType, Obj], Obj] | None = None
    objects: dict[Key, dict[tuple[str, str], Obj]] = field(default_factory=dict)
    history: deque[Event] = field(init=False)
    watchers: set[Watch] = field(default_factory=set)
    revision: int = 1
    # The newest revision dropped from the history: a watch may start from it or later.
    compacted: int = 0
    _reconciling: bool = False
    # Admission plugins that look at an object about to be created (after NamespaceLifecycle):
    # called with its type, the object (to mutate in place) and the name admission errors
    # give (the requested name, or the generateName when none was: admission runs before the
    # registry generates it); raises errors.ApiError to refuse. botlab.lab.k8s.controllers
    # `admission` is the pod plugins (RuntimeClass, Priority, DefaultTolerationSeconds).
    admit: Callable[[ResourceType, Obj, str], None] | None = None
    # Dynamic admission (botlab.lab.k8s.webhooks.Webhooks): called with the type, the operation
    # ("CREATE", "UPDATE" or "DELETE"), the subresource, the object (None for a DELETE), the old
    # object (None for a CREATE) and whether it is a dry run, after validation and before the
    # write (of a create, a PUT/PATCH or a DELETE request); raises errors.ApiError to refuse.
    webhooks: Callable[[ResourceType, str, str, Obj | None, Obj | None, bool], None] | None = None
    # Called with every committed change, after the watchers: lets in-process controllers
    # (botlab.lab.k8s.controllers) wake up when something changes. Must not write.
    listeners: list[Callable[[Event], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)
        for name in INITIAL_NAMESPACES:
            self.create(self.type_of("", "namespaces"), "", {"apiVersion": "v1", "kind": "Namespace",
                                                                "metadata": {"name": name}})
        self.create(self.type_of("", "services"), "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                     "clusterIP": str(SERVICE_CIDR[1]), "type": "ClusterIP", "sessionAffinity": "None"},
        })

    # --- helpers ------------------------------------------------------------------------

    def type_of(self, group: str, plural: str) -> ResourceType:
        found = self.catalogue.by_key((group, plural))
        if found is None:
            raise KeyError(f"no resource {plural}.{group}")
        return found

    def now(self) -> str:
        return now_rfc3339(self.clock)

    def _bucket(self, t: ResourceType) -> dict[tuple[str, str], Obj]:
        return self.objects.setdefault(t.key, {})

    def present(self, t: ResourceType, obj: Obj) -> Obj:
        """A copy of a stored object as `t`'s version serves it."""
        body = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("apiVersion", "kind")}
        return {"apiVersion": t.group_version, "kind": t.kind, **body}

    def _ns(self, t: ResourceType, namespace: str | None) -> str:
        return (namespace or "") if t.namespaced else ""

    def _emit(self, type_: str, t: ResourceType, obj: Obj, old: Obj | None) -> None:
        event = Event(self.revision, type_, t.key, obj["metadata"].get("namespace", ""), copy.deepcopy(obj),
                      copy.deepcopy(old) if old is not None else None)
        if self.history and len(self.history) == self.history.maxlen:
            self.compacted = self.history[0].rv
        self.history.append(event)
        for watcher in list(self.watchers):
            watcher.offer(event)
        for listener in list(self.listeners):
            listener(event)

    def _next_rv(self) -> str:
        self.revision += 1
        return str(self.revision)

    # --- reads --------------------------------------------------------------------------

    def get(self, t: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._bucket(t).get((self._ns(t, namespace), name))
        if obj is None:
            raise errors.not_found(t.plural, t.group, name)
        return self.present(t, obj)

    def find(self, t: ResourceType, namespace: str | None, name: str) -> Obj | None:
        obj = self._bucket(t).get((self._ns(t, namespace), name))
        return None if obj is None else self.present(t, obj)

    def list_objects(self, t: ResourceType, namespace: str | None, label_selector: str = "",
                     field_selector: str = "") -> tuple[list[Obj], str]:
        """The matching objects, ordered by namespace and name, and the list's resourceVersion."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, t)
        items = [
            self.present(t, obj) for (ns, _name), obj in sorted(self._bucket(t).items())
            if (namespace is None or ns == namespace) and selected(obj, t, labels, fields)
        ]
        return items, str(self.revision)

    # --- create -------------------------------------------------------------------------

    def create(self, t: ResourceType, namespace: str | None, body: Obj, *, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        ns = self._ns(t, namespace)
        if t.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                         "on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            # storage/etcd3/store.go Create: a plain error, so a 500 with an empty reason.
            raise errors.unknown(500, "resourceVersion should not be set on objects to be created")
        admission_name = str(meta.get("name") or meta.get("generateName") or "")
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(t.kind, t.group, "", [errors.field_error(
                    "Required value", "metadata.name", "name or generateName is required", with_value=False)])
            meta["name"] = self._generate_name(t, ns, meta["generateName"])
        name = meta["name"]
        if t.namespaced:
            self._admit_namespace(t, ns, name)
        if self.admit is not None:
            self.admit(t, obj, admission_name)
        if t.key == (CRD_GROUP, CRD_RESOURCE):
            self._check_crd(t, obj)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.now()
        if t.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if t.has_status:
            # Status is written through /status only: custom resources start without one, the
            # built-ins with an empty one (their strategies' PrepareForCreate), but a Node
            # keeps what the kubelet registers it with.
            if t.crd is not None:
                obj.pop("status", None)
            elif t.key != ("", "nodes"):
                obj["status"] = {}
        self._prepare_create(t, obj)
        obj["apiVersion"], obj["kind"] = t.group_version, t.kind
        if self.validate is not None:
            obj = self.validate(t, self.present(t, obj))
            meta = obj["metadata"]
        if self.webhooks is not None:
            self.webhooks(t, "CREATE", "", self.present(t, obj), None, dry_run)
        if (ns, name) in self._bucket(t):
            raise errors.already_exists(t.plural, t.group, name)
        if t.key == (CRD_GROUP, CRD_RESOURCE):
            # What the CRD strategy leaves on create (apiextensions registry PrepareForCreate);
            # CRD validation does not look at it.
            storage = [v["name"] for v in obj["spec"].get("versions") or [] if v.get("storage")]
            obj["status"] = {"acceptedNames": {"kind": "", "plural": ""}, "conditions": [], "storedVersions": storage}
        if dry_run:
            return self.present(t, obj)
        meta["resourceVersion"] = self._next_rv()
        self._bucket(t)[(ns, name)] = obj
        self._emit("ADDED", t, obj, None)
        self._after_create(t, obj)
        self.reconcile()
        return self.present(t, obj)

    def _generate_name(self, t: ResourceType, ns: str, prefix: str) -> str:
        # registry/generic/registry/store.go: retried on a clash (RetryGenerateName, GA in 1.31).
        for _ in range(8):
            name = prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
            if (ns, name) not in self._bucket(t):
                return name
        raise errors.already_exists(t.plural, t.group, prefix)

    def _admit_namespace(self, t: ResourceType, ns: str, name: str) -> None:
        """NamespaceLifecycle admission: no content in a missing or terminating namespace."""
        namespace = self._bucket(self.type_of("", "namespaces")).get(("", ns))
        if namespace is None:
            raise errors.not_found("namespaces", "", ns)
        if (namespace.get("status") or {}).get("phase") == "Terminating":
            error = errors.forbidden(t.plural, t.group, name,
                                     f"unable to create new content in namespace {ns} because it is being terminated")
            error.status["details"]["causes"] = [{"reason": "NamespaceTerminating", "message": f"namespace {ns} is "
                                                  "being terminated", "field": "metadata.namespace"}]
            raise error

    def _prepare_create(self, t: ResourceType, obj: Obj) -> None:
        """What the registries' PrepareForCreate fill in for the kinds that need it here."""
        if t.key == ("", "namespaces"):
            name = obj["metadata"]["name"]
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            spec = obj.setdefault("spec", {})
            spec["finalizers"] = spec.get("finalizers") or ["kubernetes"]
            obj["status"] = {"phase": "Active"}
        elif t.key == ("", "pods"):
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
        elif t.key in _ZERO_STATUS:
            # The cleared status as it serializes: the fields without omitempty stay, as 0
            # (k8s.io/api apps/v1 and core/v1 types.go); clients require them.
            obj["status"] = dict(_ZERO_STATUS[t.key])
        elif t.key == ("", "services"):
            self._allocate_service(obj)
        elif t.key in (("", "persistentvolumes"), ("", "persistentvolumeclaims")):
            obj["status"] = {"phase": "Pending"}  # core/v1 defaults: SetDefaults_PersistentVolume(Claim)
        elif t.key == (CRD_GROUP, CRD_RESOURCE):
            finalizers = obj["metadata"].setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in finalizers:
                finalizers.append(CRD_CLEANUP_FINALIZER)
            obj.pop("status", None)  # set by _initial_crd_status, after validation

    def _allocate_service(self, svc: Obj) -> None:
        """The service REST's allocators: a cluster IP from the service CIDR, node ports for
        NodePort and LoadBalancer services (pkg/registry/core/service/storage)."""
        spec = svc.setdefault("spec", {})
        kind = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if kind != "ExternalName":
            used = {s.get("spec", {}).get("clusterIP") for s in self._bucket(self.type_of("", "services")).values()}
            if not spec.get("clusterIP"):
                ip = next((str(a) for a in SERVICE_CIDR.hosts() if str(a) not in used), None)
                if ip is None:
                    raise errors.internal("failed to allocate a serviceIP: range is full")
                spec["clusterIP"] = ip
            spec["clusterIPs"] = [spec["clusterIP"]]
            if spec["clusterIP"] != "None":
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        used_ports = {p.get("nodePort") for s in self._bucket(self.type_of("", "services")).values()
                      for p in s.get("spec", {}).get("ports") or []}
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if kind in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                port["nodePort"] = next(p for p in NODE_PORTS if p not in used_ports)
                used_ports.add(port["nodePort"])
        if kind in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        svc.setdefault("status", {"loadBalancer": {}})

    def _check_crd(self, t: ResourceType, crd: Obj) -> None:
        try:
            crd_types(crd)
        except CrdError as exc:
            name = (crd.get("metadata") or {}).get("name", "")
            raise errors.invalid(t.kind, t.group, name, [errors.field_error(
                exc.kind, exc.field, exc.detail, exc.value, with_value=exc.kind != "Required value")]) from None

    def _after_create(self, t: ResourceType, obj: Obj) -> None:
        if t.key == (CRD_GROUP, CRD_RESOURCE):
            self._establish(t, obj)

    def _establish(self, t: ResourceType, crd: Obj) -> None:
        """The CRD controllers: names accepted, Established, resources served (apiextensions
        naming_controller and establishing_controller; conditions as they set them)."""
        name = crd["metadata"]["name"]
        types = crd_types(crd)
        self.catalogue.set_crd(name, types)
        names = dict(crd["spec"].get("names") or {})
        names.setdefault("singular", names.get("kind", "").lower())
        names.setdefault("listKind", names.get("kind", "") + "List")
        stamp = self.now()
        status = copy.deepcopy(crd.get("status") or {})
        status["acceptedNames"] = names
        status["conditions"] = [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": stamp, "reason": "NoConflicts",
             "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": stamp, "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted"},
        ]
        stored = status.get("storedVersions") or []
        for version in crd["spec"].get("versions") or []:
            if version.get("storage") and version["name"] not in stored:
                stored.append(version["name"])
        status["storedVersions"] = stored
        self._write_status(t, crd, status)

    def _write_status(self, t: ResourceType, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        old = copy.deepcopy(obj)
        obj["status"] = status
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("MODIFIED", t, obj, old)

    # --- update -------------------------------------------------------------------------

    def update(self, t: ResourceType, namespace: str | None, name: str, body: Obj, *, subresource: str = "",
               dry_run: bool = False) -> tuple[Obj, bool]:
        """PUT (or the result of a PATCH): the new object and whether it was created."""
        ns = self._ns(t, namespace)
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise errors.bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the "
                                     f"URL ({name})")
        if t.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise errors.bad_request(f"the namespace of the object ({meta['namespace']}) does not match the "
                                     f"namespace on the URL ({ns})")
        meta["name"] = name
        live = self._bucket(t).get((ns, name))
        if live is None:
            if t.create_on_update and not subresource:
                meta.pop("resourceVersion", None)
                return self.create(t, namespace, new, dry_run=dry_run), True
            raise errors.not_found(t.plural, t.group, name)
        rv = meta.get("resourceVersion") or ""
        if rv and rv != live["metadata"]["resourceVersion"]:
            raise errors.conflict(t.plural, t.group, name)
        if not rv and not t.unconditional_update:
            raise errors.invalid(t.kind, t.group, name, [errors.field_error(
                "Invalid value", "metadata.resourceVersion", "must be specified for an update", 0)])
        if subresource == "status":
            # Status updates change status only (customresource/status_strategy.go and the
            # built-in status strategies, which keep the spec).
            candidate = copy.deepcopy(live)
            if "status" in new:
                candidate["status"] = new["status"]
            else:
                candidate.pop("status", None)
            if "managedFields" in meta:
                candidate["metadata"]["managedFields"] = meta["managedFields"]
            new = candidate
        else:
            if t.has_status:
                if "status" in live:
                    new["status"] = copy.deepcopy(live["status"])
                else:
                    new.pop("status", None)
            self._keep_system_fields(t, live, new)
        return self._commit_update(t, live, new, dry_run=dry_run, admission=subresource), False

    def _keep_system_fields(self, t: ResourceType, live: Obj, new: Obj) -> None:
        """What an update cannot change (rest.BeforeUpdate, FillObjectMetaSystemFields)."""
        meta, old = new["metadata"], live["metadata"]
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
            if key in old:
                meta[key] = old[key]
            else:
                meta.pop(key, None)
        if "managedFields" not in meta and "managedFields" in old:
            meta["managedFields"] = copy.deepcopy(old["managedFields"])
        if t.key == ("", "namespaces"):
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = old["name"]
            new["spec"] = copy.deepcopy(live.get("spec") or {})  # spec.finalizers: through /finalize only
        if t.key == ("", "services"):
            # The service REST keeps what it allocated when an update leaves it out.
            spec, old_spec = new.setdefault("spec", {}), live.get("spec") or {}
            for key in ("clusterIP", "clusterIPs"):
                if not spec.get(key) and old_spec.get(key):
                    spec[key] = copy.deepcopy(old_spec[key])
            old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or []}
            for port in spec.get("ports") or []:
                before = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if before is not None and before.get("nodePort") and not port.get("nodePort"):
                    port["nodePort"] = before["nodePort"]
            self._allocate_service(new)
        if t.generation:
            meta["generation"] = old.get("generation", 1)
            if self._spec_of(t, live) != self._spec_of(t, new):
                meta["generation"] += 1
        else:
            meta.pop("generation", None)
        new["apiVersion"], new["kind"] = t.group_version, t.kind

    def _spec_of(self, t: ResourceType, obj: Obj) -> Any:
        if t.spec_keys is not None:
            return [obj.get(k) for k in t.spec_keys]
        skip = {"metadata", "apiVersion", "kind"} | ({"status"} if t.has_status else set())
        return {k: v for k, v in obj.items() if k not in skip}

    def _commit_update(self, t: ResourceType, live: Obj, new: Obj, *, dry_run: bool, validate: bool = True,
                       admission: str | None = None) -> Obj:
        """`admission`: the subresource of an update request, which `webhooks` then sees."""
        meta, old_meta = new["metadata"], live["metadata"]
        if old_meta.get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
            if added:
                raise errors.invalid(t.kind, t.group, meta["name"], [errors.field_error(
                    "Forbidden", "metadata.finalizers",
                    f"no new finalizers can be added if the object is being deleted, found new finalizers "
                    f"{errors._go_value(added)}", with_value=False)])
        if t.key == (CRD_GROUP, CRD_RESOURCE):
            self._check_crd(t, new)
        if validate and self.validate is not None:
            new = self.validate(t, self.present(t, new))
            meta = new["metadata"]
        if admission is not None and self.webhooks is not None:
            self.webhooks(t, "UPDATE", admission, self.present(t, new), self.present(t, live), dry_run)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if _same(live, new):
            return self.present(t, live)
        if dry_run:
            return self.present(t, new)
        meta["resourceVersion"] = self._next_rv()
        ns = meta.get("namespace", "")
        self._bucket(t)[(ns, meta["name"])] = new
        self._emit("MODIFIED", t, new, live)
        if t.key == (CRD_GROUP, CRD_RESOURCE) and not meta.get("deletionTimestamp"):
            self._establish(t, new)
        if meta.get("deletionTimestamp") and self._may_remove(t, new):
            self._remove(t, new)
        self.reconcile()
        current = self._bucket(t).get((ns, meta["name"]))
        return self.present(t, current if current is not None else new)

    def bind_pod(self, namespace: str, name: str, node_name: str) -> Obj:
        """The pods/binding subresource (pkg/registry/core/pod/storage BindingREST.assignPod):
        spec.nodeName set and the PodScheduled condition True, in one write; a pod already
        bound is 409 `pod <name> is already assigned to node "<node>"`."""
        t = self.type_of("", "pods")
        live = self._bucket(t).get((namespace, name))
        if live is None:
            raise errors.not_found("pods", "", name)
        if live["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods/binding", "", name,
                                  f"pod {name} is being deleted, cannot be assigned to a host")
        bound = (live.get("spec") or {}).get("nodeName")
        if bound:
            raise errors.conflict("pods/binding", "", name, f'pod {name} is already assigned to node "{bound}"')
        new = copy.deepcopy(live)
        new.setdefault("spec", {})["nodeName"] = node_name
        # podutil.UpdatePodCondition: replaced in place (a new transition time when it changes).
        conditions = new.setdefault("status", {}).setdefault("conditions", [])
        scheduled = {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": self.now()}
        for index, condition in enumerate(conditions):
            if condition.get("type") == "PodScheduled":
                if condition.get("status") == "True":
                    scheduled["lastTransitionTime"] = condition.get("lastTransitionTime") or scheduled[
                        "lastTransitionTime"]
                conditions[index] = scheduled
                break
        else:
            conditions.append(scheduled)
        return self._commit_update(t, live, new, dry_run=False, validate=False)

    def finalize_namespace(self, name: str, body: Obj) -> Obj:
        """PUT /api/v1/namespaces/<name>/finalize: spec.finalizers as given."""
        t = self.type_of("", "namespaces")
        live = self._bucket(t).get(("", name))
        if live is None:
            raise errors.not_found("namespaces", "", name)
        new = copy.deepcopy(live)
        new["spec"]["finalizers"] = list((body.get("spec") or {}).get("finalizers") or [])
        return self._commit_update(t, live, new, dry_run=False)

    # --- delete -------------------------------------------------------------------------

    def delete(self, t: ResourceType, namespace: str | None, name: str,
               options: DeleteOptions | None = None) -> tuple[Obj, bool]:
        """DELETE: the object as it was deleted (True) or as marked for deletion (False)."""
        options = options or DeleteOptions()
        ns = self._ns(t, namespace)
        live = self._bucket(t).get((ns, name))
        if live is None:
            raise errors.not_found(t.plural, t.group, name)
        meta = live["metadata"]
        if options.precondition_uid is not None and options.precondition_uid != meta.get("uid"):
            raise errors.conflict(t.plural, t.group, name, f"Precondition failed: UID in precondition: "
                                  f"{options.precondition_uid}, UID in object meta: {meta.get('uid')}")
        if options.precondition_rv is not None and options.precondition_rv != meta.get("resourceVersion"):
            raise errors.conflict(t.plural, t.group, name, f"Precondition failed: ResourceVersion in precondition: "
                                  f"{options.precondition_rv}, ResourceVersion in meta: {meta.get('resourceVersion')}")
        if t.key == ("", "namespaces") and name in IMMORTAL_NAMESPACES:
            raise errors.forbidden("namespaces", "", name, "this namespace may not be deleted")
        if self.webhooks is not None:
            self.webhooks(t, "DELETE", "", None, self.present(t, live), options.dry_run)
        policy = options.propagation
        if policy is None and options.orphan_dependents is not None:
            policy = "Orphan" if options.orphan_dependents else "Background"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.invalid("DeleteOptions", "meta.k8s.io", "", [errors.field_error(
                "Unsupported value", "propagationPolicy", 'supported values: "Foreground", "Background", "Orphan", '
                '"nil"', policy)])
        new = copy.deepcopy(live)
        finalizers: list[str] = new["metadata"].setdefault("finalizers", [])
        if policy == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
            finalizers[:] = [f for f in finalizers if f != ORPHAN]
        elif policy == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
            finalizers[:] = [f for f in finalizers if f != FOREGROUND]
        if not finalizers:
            new["metadata"].pop("finalizers")
        graceful = t.key in (("", "namespaces"), (CRD_GROUP, CRD_RESOURCE))
        if not finalizers and not graceful:
            if options.dry_run:
                return self.present(t, live), True
            self._remove(t, live)
            self.reconcile()
            return self.present(t, live), True
        if options.dry_run:
            return self.present(t, new), False
        if not meta.get("deletionTimestamp"):
            new["metadata"]["deletionTimestamp"] = self.now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
        if t.key == ("", "namespaces"):
            new.setdefault("status", {})["phase"] = "Terminating"
        if t.key == (CRD_GROUP, CRD_RESOURCE):
            conditions = [c for c in (new.get("status") or {}).get("conditions") or [] if c["type"] != "Terminating"]
            # apiextensions registry customresourcedefinition/etcd.go Delete.
            conditions.append({"type": "Terminating", "status": "True", "lastTransitionTime": self.now(),
                               "reason": "InstanceDeletionPending",
                               "message": "CustomResourceDefinition marked for deletion; CustomResource deletion "
                                          "will begin soon"})
            new.setdefault("status", {})["conditions"] = conditions
        if new != live:
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._bucket(t)[(ns, name)] = new
            self._emit("MODIFIED", t, new, live)
        answer = self.present(t, new)
        self.reconcile()
        return answer, False

    @staticmethod
    def _may_remove(t: ResourceType, obj: Obj) -> bool:
        """No finalizer left (for a namespace, in spec.finalizers too)."""
        if obj["metadata"].get("finalizers"):
            return False
        return t.key != ("", "namespaces") or not (obj.get("spec") or {}).get("finalizers")

    def _remove(self, t: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        del self._bucket(t)[(meta.get("namespace", ""), meta["name"])]
        self._emit("DELETED", t, gone, obj)
        if t.key == (CRD_GROUP, CRD_RESOURCE):
            self.catalogue.drop_crd(meta["name"])

    # --- controllers --------------------------------------------------------------------

    def reconcile(self) -> None:
        """What the controllers would do next, done now, until nothing is left to do: the
        garbage collector, the namespace controller, the CRD finalizer."""
        if self._reconciling:
            return  # the outer pass goes on
        self._reconciling = True
        try:
            for _ in range(100000):
                if not self._reconcile_once():
                    return
            raise RuntimeError("the lab's Kubernetes controllers did not settle")
        finally:
            self._reconciling = False

    def _all(self) -> Iterator[tuple[ResourceType, Obj]]:
        for key, bucket in list(self.objects.items()):
            t = self.catalogue.by_key(key)
            if t is None:
                continue
            for obj in list(bucket.values()):
                yield t, obj

    def _reconcile_once(self) -> bool:
        uids = {obj["metadata"]["uid"]: (t, obj) for t, obj in self._all()}
        for t, obj in self._all():
            meta = obj["metadata"]
            if meta.get("deletionTimestamp"):
                if self._finalize_step(t, obj, uids):
                    return True
            elif self._orphaned(t, obj, uids):
                self.delete(t, meta.get("namespace"), meta["name"])
                return True
        return False

    def _orphaned(self, t: ResourceType, obj: Obj, uids: dict[str, tuple[ResourceType, Obj]]) -> bool:
        """garbagecollector attemptToDeleteItem: every owner is absent (no object with its uid,
        or one being deleted in the foreground counts as still there). An owner of a kind
        not served is left alone, as the collector cannot resolve it."""
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs:
            return False
        for ref in refs:
            owner_type = self.catalogue.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if owner_type is None:
                return False
            found = uids.get(ref.get("uid", ""))
            if found is None or found[0].key != owner_type.key:
                continue
            # A namespaced owner is looked up in the dependent's namespace.
            if owner_type.namespaced and found[1]["metadata"].get("namespace") != obj["metadata"].get("namespace"):
                continue
            return False
        return True

    def _dependents(self, uid: str) -> list[tuple[ResourceType, Obj, dict[str, Any]]]:
        out = []
        for t, obj in self._all():
            for ref in obj["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == uid:
                    out.append((t, obj, ref))
        return out

    def _finalize_step(self, t: ResourceType, obj: Obj, uids: dict[str, tuple[ResourceType, Obj]]) -> bool:
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        uid = meta["uid"]
        if ORPHAN in finalizers:
            for dep_t, dep, _ref in self._dependents(uid):
                new = copy.deepcopy(dep)
                new["metadata"]["ownerReferences"] = [r for r in dep["metadata"]["ownerReferences"]
                                                      if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._commit_update(dep_t, dep, new, dry_run=False, validate=False)
            self._drop_finalizer(t, obj, ORPHAN)
            return True
        if FOREGROUND in finalizers:
            dependents = self._dependents(uid)
            for dep_t, dep, _ref in dependents:
                if not dep["metadata"].get("deletionTimestamp"):
                    self.delete(dep_t, dep["metadata"].get("namespace"), dep["metadata"]["name"],
                                DeleteOptions(propagation="Foreground"))
                    return True
            if not any(ref.get("blockOwnerDeletion") for _t, _d, ref in dependents):
                self._drop_finalizer(t, obj, FOREGROUND)
                return True
            return False
        if t.key == ("", "namespaces"):
            return self._finalize_namespace(t, obj)
        if t.key == (CRD_GROUP, CRD_RESOURCE) and CRD_CLEANUP_FINALIZER in finalizers:
            return self._finalize_crd(t, obj)
        if self._may_remove(t, obj):
            self._remove(t, obj)
            return True
        return False

    def _drop_finalizer(self, t: ResourceType, obj: Obj, finalizer: str) -> None:
        new = copy.deepcopy(obj)
        new["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
        self._commit_update(t, obj, new, dry_run=False, validate=False)

    def _finalize_namespace(self, t: ResourceType, ns_obj: Obj) -> bool:
        """The namespace controller: delete the content; once none is left, drop the
        `kubernetes` finalizer from spec.finalizers; the namespace goes with the last one."""
        name = ns_obj["metadata"]["name"]
        content = [(ct, o) for ct, o in self._all() if ct.namespaced and o["metadata"].get("namespace") == name]
        for ct, o in content:
            if not o["metadata"].get("deletionTimestamp"):
                self.delete(ct, name, o["metadata"]["name"])
                return True
        if content:
            return False
        spec_finalizers = (ns_obj.get("spec") or {}).get("finalizers") or []
        if "kubernetes" in spec_finalizers:
            new = copy.deepcopy(ns_obj)
            new["spec"]["finalizers"] = [f for f in spec_finalizers if f != "kubernetes"]
            self._commit_update(t, ns_obj, new, dry_run=False, validate=False)
            return True
        return False

    def _finalize_crd(self, t: ResourceType, crd: Obj) -> bool:
        """apiextensions finalizer controller: delete every custom resource, then drop the
        cleanup finalizer."""
        name = crd["metadata"]["name"]
        types = self.catalogue.crd_types(name)
        if types:
            bucket = self._bucket(types[0])
            pending = False
            for obj in list(bucket.values()):
                if not obj["metadata"].get("deletionTimestamp"):
                    self.delete(types[0], obj["metadata"].get("namespace"), obj["metadata"]["name"])
                    return True
                pending = True
            if pending:
                return False
        self._drop_finalizer(t, crd, CRD_CLEANUP_FINALIZER)
        return True

    def crd_schema(self, t: ResourceType) -> Obj | None:
        """The openAPIV3Schema of the CRD version `t` serves, if it has one."""
        if t.crd is None:
            return None
        crd = self._bucket(self.type_of(CRD_GROUP, CRD_RESOURCE)).get(("", t.crd))
        for version in ((crd or {}).get("spec") or {}).get("versions") or []:
            if version.get("name") == t.version:
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                return schema if isinstance(schema, dict) else None
        return None

    def terminating_crd(self, t: ResourceType) -> bool:
        """Whether `t` comes from a CRD being deleted (no new custom resources then)."""
        if t.crd is None:
            return False
        crd = self._bucket(self.type_of(CRD_GROUP, CRD_RESOURCE)).get(("", t.crd))
        return crd is not None and bool(crd["metadata"].get("deletionTimestamp"))

    # --- watch --------------------------------------------------------------------------

    def watch(self, t: ResourceType, namespace: str | None, resource_version: str = "", label_selector: str = "",
              field_selector: str = "") -> Watch:
        """A watcher, primed: from resourceVersion "" or "0", ADDED for every matching object
        now; from a number, every event after it (410 Expired if dropped from history)."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, t)
        watch = Watch(self, t, namespace, labels, fields, after=self.revision)
        if resource_version in ("", "0"):
            items, _rv = self.list_objects(t, namespace, label_selector, field_selector)
            for item in items:
                watch.put_raw({"type": "ADDED", "object": item})
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise errors.bad_request(f'invalid resource version "{resource_version}"') from None
            if since < self.compacted:
                watch.put_raw({"type": "ERROR", "object": errors.expired(
                    f"too old resource version: {since} ({self.compacted})").status})
                watch.put_raw({"type": "_CLOSE"})
                return watch
            watch.after = since
            for event in self.history:
                watch.offer(event)
            watch.after = max(since, self.revision)
        self.watchers.add(watch)
        return watch

    def close_watches(self) -> None:
        for watch in list(self.watchers):
            watch.close()


_ZERO_STATUS: dict[Key, dict[str, int]] = {
    ("apps", "daemonsets"): {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                             "numberReady": 0},
    ("apps", "replicasets"): {"replicas": 0},
    ("apps", "statefulsets"): {"replicas": 0, "availableReplicas": 0},
    ("", "replicationcontrollers"): {"replicas": 0},
}


def _same(a: Obj, b: Obj) -> bool:
    """Equal but for managedFields timestamps (fieldmanager ignores them on a no-op)."""
    return _strip_times(a) == _strip_times(b)


def _strip_times(obj: Obj) -> str:
    copy_ = copy.deepcopy(obj)
    for entry in (copy_.get("metadata") or {}).get("managedFields") or []:
        if isinstance(entry, dict):
            entry.pop("time", None)
    return json.dumps(copy_, sort_keys=True)


def _qos_class(spec: dict[str, Any]) -> str:
    """pkg/apis/core/helper/qos GetPodQOS, for cpu and memory."""
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    requests_seen = limits_seen = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if any(k in req for k in ("cpu", "memory")):
            requests_seen = True
        if any(k in lim for k in ("cpu", "memory")):
            limits_seen = True
        for k in ("cpu", "memory"):
            if k not in lim or str(req.get(k, lim[k])) != str(lim[k]):
                guaranteed = False
    if not requests_seen and not limits_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed and limits_seen else "Burstable"
