"""The resources the emulated API server serves: the built-in catalogue, the types made from
CustomResourceDefinitions, and the discovery documents that describe them.

Names, scopes, verbs, short names, categories and subresources follow what a Kubernetes 1.31
API server publishes (kubernetes/kubernetes api/discovery/*.json, the recorded discovery
documents, and pkg/registry/*/storage/storage.go for each resource's REST options).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    """A subresource as discovery lists it; `kind`/`group`/`version` empty: the parent's."""

    name: str
    verbs: tuple[str, ...] = SUB_VERBS
    kind: str = ""
    group: str = ""
    version: str = ""


STATUS = Subresource("status")
SCALE = Subresource("scale", kind="Scale", group="autoscaling", version="v1")


@dataclass(frozen=True)
class ResourceType:
    """One resource at one group version."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    # metadata.generation is kept (set to 1 on create, bumped when `spec_keys` change; None:
    # every top-level key but metadata and status, or every one but metadata without a
    # status subresource, as for custom resources).
    generation: bool = False
    spec_keys: tuple[str, ...] | None = ("spec",)
    # A PUT without metadata.resourceVersion is allowed (AllowUnconditionalUpdate).
    unconditional_update: bool = True
    # A PUT of a missing object creates it (AllowCreateOnUpdate).
    create_on_update: bool = False
    # DELETE answers with the object (ReturnDeletedObject) rather than a Status.
    return_deleted: bool = False
    # Field selectors besides metadata.name and metadata.namespace: label -> dotted path.
    fields: tuple[tuple[str, str], ...] = ()
    # The CRD this type comes from (None for a built-in) and its printer columns.
    crd: str | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    list_kind_name: str = ""

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> tuple[str, str]:
        """What the store files its objects under: all versions of a resource share them."""
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return self.list_kind_name or f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        return any(s.name == "status" for s in self.subresources)

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)

    def field_paths(self) -> dict[str, str]:
        paths = {"metadata.name": "metadata.name"}
        if self.namespaced:
            paths["metadata.namespace"] = "metadata.namespace"
        paths.update(self.fields)
        return paths


def _r(group: str, version: str, kind: str, plural: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType(group, version, kind, plural, namespaced, **kw)


_POD_FIELDS = (
    ("spec.nodeName", "spec.nodeName"), ("spec.restartPolicy", "spec.restartPolicy"),
    ("spec.schedulerName", "spec.schedulerName"), ("spec.serviceAccountName", "spec.serviceAccountName"),
    ("spec.hostNetwork", "spec.hostNetwork"), ("status.phase", "status.phase"), ("status.podIP", "status.podIP"),
    ("status.nominatedNodeName", "status.nominatedNodeName"),
)
_EVENT_FIELDS = (
    *((f"involvedObject.{f}", f"involvedObject.{f}")
      for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")),
    ("reason", "reason"), ("reportingComponent", "reportingComponent"), ("source", "source.component"),
    ("type", "type"),
)
_ALL = ("all",)
_EXT = ("api-extensions",)

# The order within each group version is discovery's (alphabetical); groups are listed in
# the order a 1.31 server lists them in /apis.
BUILTIN: tuple[ResourceType, ...] = (
    _r("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    _r("", "v1", "Endpoints", "endpoints", singular="endpoints", short_names=("ep",), create_on_update=True),
    _r("", "v1", "Event", "events", short_names=("ev",), create_on_update=True, fields=_EVENT_FIELDS),
    _r("", "v1", "LimitRange", "limitranges", short_names=("limits",), create_on_update=True),
    _r("", "v1", "Namespace", "namespaces", False, short_names=("ns",),
       verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
       subresources=(Subresource("finalize", ("update",)), STATUS), return_deleted=True,
       fields=(("status.phase", "status.phase"),)),
    _r("", "v1", "Node", "nodes", False, short_names=("no",), subresources=(STATUS,),
       fields=(("spec.unschedulable", "spec.unschedulable"),)),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), subresources=(STATUS,),
       return_deleted=True),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, short_names=("pv",), subresources=(STATUS,),
       return_deleted=True),
    _r("", "v1", "Pod", "pods", short_names=("po",), categories=_ALL, subresources=(STATUS,), return_deleted=True,
       fields=_POD_FIELDS),
    _r("", "v1", "PodTemplate", "podtemplates"),
    _r("", "v1", "ReplicationController", "replicationcontrollers", short_names=("rc",), categories=_ALL,
       subresources=(SCALE, STATUS), generation=True, fields=(("status.replicas", "status.replicas"),)),
    _r("", "v1", "ResourceQuota", "resourcequotas", short_names=("quota",), subresources=(STATUS,)),
    _r("", "v1", "Secret", "secrets", fields=(("type", "type"),)),
    _r("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",), return_deleted=True),
    _r("", "v1", "Service", "services", short_names=("svc",), categories=_ALL, subresources=(STATUS,),
       return_deleted=True, fields=(("spec.clusterIP", "spec.clusterIP"), ("spec.type", "spec.type"))),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions"),
    _r("apps", "v1", "DaemonSet", "daemonsets", short_names=("ds",), categories=_ALL, subresources=(STATUS,),
       generation=True),
    _r("apps", "v1", "Deployment", "deployments", short_names=("deploy",), categories=_ALL,
       subresources=(SCALE, STATUS), generation=True),
    _r("apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), categories=_ALL, subresources=(SCALE, STATUS),
       generation=True, fields=(("status.replicas", "status.replicas"),)),
    _r("apps", "v1", "StatefulSet", "statefulsets", short_names=("sts",), categories=_ALL,
       subresources=(SCALE, STATUS), generation=True),
    _r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short_names=("hpa",),
       categories=_ALL, subresources=(STATUS,), generation=True),
    _r("batch", "v1", "CronJob", "cronjobs", short_names=("cj",), categories=_ALL, subresources=(STATUS,),
       generation=True),
    _r("batch", "v1", "Job", "jobs", categories=_ALL, subresources=(STATUS,), generation=True,
       fields=(("status.successful", "status.succeeded"),)),
    _r("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", False,
       short_names=("csr",), subresources=(Subresource("approval"), STATUS)),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", short_names=("ing",), subresources=(STATUS,),
       generation=True),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short_names=("netpol",), generation=True),
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short_names=("pdb",), subresources=(STATUS,),
       generation=True),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    _r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
    _r("storage.k8s.io", "v1", "CSINode", "csinodes", False),
    _r("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities"),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, short_names=("sc",), return_deleted=True),
    _r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False, subresources=(STATUS,)),
    _r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False,
       categories=_EXT, generation=True, spec_keys=("webhooks",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False,
       categories=_EXT, subresources=(STATUS,), generation=True),
    _r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
       "validatingadmissionpolicybindings", False, categories=_EXT, generation=True),
    _r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
       False, categories=_EXT, generation=True, spec_keys=("webhooks",)),
    _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
       short_names=("crd", "crds"), categories=_EXT, subresources=(STATUS,), generation=True,
       unconditional_update=False),
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, short_names=("pc",)),
    _r("coordination.k8s.io", "v1", "Lease", "leases", create_on_update=True),
    _r("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
)

CRD_GROUP = "apiextensions.k8s.io"
CRD_RESOURCE = "customresourcedefinitions"
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

# "v1" > "v1beta2" > "v1beta1" > "v1alpha1" > anything else (alphabetical):
# apimachinery/pkg/version/helpers.go CompareKubeAwareVersionStrings.
_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """A sort key: the highest-priority version sorts first."""
    match = _KUBE_VERSION.match(version)
    if match is None:
        return (3, 0, 0, version)
    major, track, minor = int(match[1]), match[2], int(match[3] or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[track]
    return (rank, -major, -minor, version)


class CrdError(ValueError):
    """A CRD the catalogue cannot serve, with the field and what is wrong with it."""

    def __init__(self, field_path: str, kind: str, detail: str, value: Any = None) -> None:
        super().__init__(detail)
        self.field = field_path
        self.kind = kind
        self.detail = detail
        self.value = value


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions of an apiextensions.k8s.io/v1 CustomResourceDefinition."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group") or "", names.get("plural") or "", names.get("kind") or ""
    name = (crd.get("metadata") or {}).get("name", "")
    if not group:
        raise CrdError("spec.group", "Required value", "", None)
    if not plural:
        raise CrdError("spec.names.plural", "Required value", "", None)
    if not kind:
        raise CrdError("spec.names.kind", "Required value", "", None)
    if name != f"{plural}.{group}":
        raise CrdError("metadata.name", "Invalid value", 'must be spec.names.plural+"."+spec.group', name)
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        raise CrdError("spec.scope", "Unsupported value", 'supported values: "Cluster", "Namespaced"', scope)
    versions = spec.get("versions") or []
    if not versions:
        raise CrdError("spec.versions", "Invalid value", "must have exactly one version marked as storage version",
                       versions)
    out = []
    for item in versions:
        if not item.get("served", False):
            continue
        subs = item.get("subresources") or {}
        subresources = []
        if "scale" in subs:
            subresources.append(SCALE)
        if "status" in subs:
            subresources.append(STATUS)
        columns = tuple(item.get("additionalPrinterColumns") or ())
        out.append(ResourceType(
            group, item.get("name", ""), kind, plural, scope == "Namespaced",
            singular=names.get("singular") or kind.lower(),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=tuple(subresources), generation=True, spec_keys=None, unconditional_update=False,
            crd=name, printer_columns=columns, list_kind_name=names.get("listKind") or "",
        ))
    return out


@dataclass
class Catalogue:
    """Every resource served now: the built-ins and those of established CRDs."""

    builtin: tuple[ResourceType, ...] = BUILTIN
    _crds: dict[str, list[ResourceType]] = field(default_factory=dict)

    def all(self) -> list[ResourceType]:
        return [*self.builtin, *(t for types in self._crds.values() for t in types)]

    def set_crd(self, name: str, types: list[ResourceType]) -> None:
        self._crds[name] = types

    def drop_crd(self, name: str) -> None:
        self._crds.pop(name, None)

    def crd_types(self, name: str) -> list[ResourceType]:
        return list(self._crds.get(name, ()))

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return next((t for t in self.all() if (t.group, t.version, t.plural) == (group, version, plural)), None)

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        """The type an ownerReference (apiVersion, kind) names."""
        group, _, version = api_version.rpartition("/")
        return next((t for t in self.all() if (t.group, t.version, t.kind) == (group, version, kind)), None)

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        """A type (the preferred version) for the stored resource `key`."""
        found = [t for t in self.all() if t.key == key]
        return min(found, key=lambda t: version_priority(t.version)) if found else None

    def is_builtin_group_version(self, group: str, version: str) -> bool:
        return any((t.group, t.version) == (group, version) for t in self.builtin)

    def groups(self) -> list[tuple[str, list[str]]]:
        """(group, versions by priority) for every named group, in /apis order: the built-in
        groups first as a real server lists them, then the CRD groups alphabetically."""
        order: list[str] = []
        versions: dict[str, list[str]] = {}
        builtin_groups = [t.group for t in self.builtin if t.group]
        crd_groups = sorted({t.group for ts in self._crds.values() for t in ts} - set(builtin_groups))
        for t in self.all():
            if t.group and t.group not in versions:
                versions[t.group] = []
            if t.group and t.version not in versions[t.group]:
                versions[t.group].append(t.version)
        for g in [*builtin_groups, *crd_groups]:
            if g not in order:
                order.append(g)
        return [(g, sorted(versions[g], key=version_priority)) for g in order]

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return sorted((t for t in self.all() if (t.group, t.version) == (group, version)), key=lambda t: t.plural)


# --- discovery documents -----------------------------------------------------------------


def api_versions(server_address: str) -> dict[str, Any]:
    """GET /api: APIVersions (serverAddressByClientCIDRs is required by the Python client)."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(catalogue: Catalogue) -> dict[str, Any]:
    """GET /apis: APIGroupList."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g, vs) for g, vs in catalogue.groups()]}


def api_group(catalogue: Catalogue, group: str) -> dict[str, Any] | None:
    """GET /apis/<group>: APIGroup."""
    for g, vs in catalogue.groups():
        if g == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(g, vs)}
    return None


def api_resource_list(catalogue: Catalogue, group: str, version: str) -> dict[str, Any] | None:
    """GET /api/v1, /apis/<group>/<version>: APIResourceList, subresources as `plural/sub`."""
    types = catalogue.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for t in types:
        entry: dict[str, Any] = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                                 "kind": t.kind, "verbs": list(t.verbs)}
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        for sub in t.subresources:
            sub_entry: dict[str, Any] = {"name": f"{t.plural}/{sub.name}", "singularName": "",
                                         "namespaced": t.namespaced, "kind": sub.kind or t.kind,
                                         "verbs": list(sub.verbs)}
            if sub.group:
                sub_entry["group"], sub_entry["version"] = sub.group, sub.version
            resources.append(sub_entry)
    resources.sort(key=lambda r: r["name"])
    doc: dict[str, Any] = {"kind": "APIResourceList", "groupVersion": f"{group}/{version}" if group else version,
                           "resources": resources}
    if group:
        doc["apiVersion"] = "v1"
    return doc


def aggregated_discovery(catalogue: Catalogue, *, core: bool) -> dict[str, Any]:
    """apidiscovery.k8s.io/v2 APIGroupDiscoveryList for /api (core) or /apis, the shape of
    kubernetes/kubernetes api/discovery/aggregated_v2.json."""
    groups = [("", ["v1"])] if core else catalogue.groups()
    items = []
    for group, versions in groups:
        version_docs = []
        for version in versions:
            resources = []
            for t in catalogue.in_group_version(group, version):
                entry: dict[str, Any] = {
                    "resource": t.plural,
                    "responseKind": {"group": "", "kind": t.kind, "version": ""},
                    "scope": "Namespaced" if t.namespaced else "Cluster",
                    "singularResource": t.singular,
                    "verbs": list(t.verbs),
                }
                if t.short_names:
                    entry["shortNames"] = list(t.short_names)
                if t.categories:
                    entry["categories"] = list(t.categories)
                if t.subresources:
                    entry["subresources"] = [
                        {"subresource": s.name,
                         "responseKind": {"group": s.group, "kind": s.kind or t.kind, "version": s.version},
                         "verbs": list(s.verbs)}
                        for s in sorted(t.subresources, key=lambda s: s.name)
                    ]
                resources.append(entry)
            version_docs.append({"version": version, "resources": resources, "freshness": "Current"})
        metadata: dict[str, Any] = {"creationTimestamp": None}
        if group:
            metadata["name"] = group
        items.append({"metadata": metadata, "versions": version_docs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def openapi_v3_root(catalogue: Catalogue) -> dict[str, Any]:
    """GET /openapi/v3: the group versions there is a document for."""
    paths = {}
    for gv in sorted({(t.group, t.version) for t in catalogue.all()}):
        path = f"apis/{gv[0]}/{gv[1]}" if gv[0] else "api/v1"
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}"}
    return {"paths": paths}


def openapi_v3_document(catalogue: Catalogue, group: str, version: str) -> dict[str, Any] | None:
    """A skeleton OpenAPI v3 document for one group version: every object path with its
    operations, each tagged with x-kubernetes-group-version-kind and the PATCH operation
    taking `fieldValidation`, which is what kubectl reads to learn that the server validates
    fields itself (kubectl's QueryParamVerifierV3). No schemas: the lab does not publish them."""
    types = catalogue.in_group_version(group, version)
    if not types:
        return None
    prefix = f"/apis/{group}/{version}" if group else "/api/v1"
    paths: dict[str, Any] = {}
    for t in types:
        gvk = {"group": t.group, "version": t.version, "kind": t.kind}
        base = f"{prefix}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{prefix}/{t.plural}"
        query = [{"name": n, "in": "query", "schema": {"type": "string"}}
                 for n in ("dryRun", "fieldManager", "fieldValidation")]
        op = {"x-kubernetes-group-version-kind": gvk, "parameters": query, "responses": {}}
        paths[f"{base}/{{name}}"] = {
            verb: {**op, "x-kubernetes-action": action}
            for verb, action in (("get", "get"), ("put", "put"), ("patch", "patch"), ("delete", "delete"))
        }
        paths[base] = {"get": {**op, "x-kubernetes-action": "list"}, "post": {**op, "x-kubernetes-action": "post"}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "unversioned"}, "paths": paths,
            "components": {"schemas": {}}}


# --- tables (kubectl get) ------------------------------------------------------------------

Column = tuple[str, str, str, int]  # name, type, format, priority


def human_duration(seconds: float) -> str:
    """apimachinery/pkg/util/duration HumanDuration, what the Age columns print."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def dotted(obj: Any, path: str) -> Any:
    """The value at a dotted path (`a.b.c`, `a[0].b` also read), None if absent."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path.lstrip(".")):
        if part.startswith("["):
            index = int(part[1:-1])
            obj = obj[index] if isinstance(obj, list) and index < len(obj) else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else None
        if obj is None:
            return None
    return obj


def _age(obj: dict[str, Any], now: float) -> str:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return "<unknown>" if not stamp else human_duration(now - parse_time(stamp))


def parse_time(stamp: str) -> float:
    """An RFC 3339 timestamp (as metadata carries them) as epoch seconds."""
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _none(value: Any) -> Any:
    return "<none>" if value in (None, "", []) else value


def _pod_row(pod: dict[str, Any], now: float) -> list[Any]:
    """pkg/printers/internalversion/printers.go printPod (the common cases)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or ""
    for c in statuses:
        state = c.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        if waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated.get("reason"):
            reason = terminated["reason"]
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    gates = spec.get("readinessGates") or []
    return [pod["metadata"]["name"], f"{ready}/{len(containers)}", reason, restarts, _age(pod, now),
            _none(status.get("podIP")), _none(spec.get("nodeName")), _none(status.get("nominatedNodeName")),
            "<none>" if not gates else f"0/{len(gates)}"]


def _node_row(node: dict[str, Any], now: float) -> list[Any]:
    """printNode: Ready/NotReady/Unknown from the Ready condition, roles from the
    node-role.kubernetes.io/<role> and kubernetes.io/role labels."""
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Unknown" if ready is None or ready.get("status") == "Unknown" else (
        "Ready" if ready.get("status") == "True" else "NotReady")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (node.get("metadata") or {}).get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")} |
                   ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    addresses = status.get("addresses") or []
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a.get("address", "") for a in addresses if a.get("type") == kind), "<none>")

    return [node["metadata"]["name"], state, ",".join(r for r in roles if r) or "<none>", _age(node, now),
            info.get("kubeletVersion", ""), address("InternalIP"), address("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _service_row(svc: dict[str, Any], now: float) -> list[Any]:
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    kind = spec.get("type") or "ClusterIP"
    ingress = ((status.get("loadBalancer") or {}).get("ingress")) or []
    external = ",".join(i.get("ip") or i.get("hostname") or "" for i in ingress) or (
        ",".join(spec.get("externalIPs") or []) or ("<pending>" if kind == "LoadBalancer" else "<none>"))
    if kind == "ExternalName":
        external = spec.get("externalName") or "<none>"
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []) or "<none>"
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [svc["metadata"]["name"], kind, spec.get("clusterIP") or "<none>", external, ports, _age(svc, now),
            selector]


def _workload_row(obj: dict[str, Any], now: float) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 1)
    template = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = ",".join(f"{k}={v}" for k, v in sorted(((spec.get("selector") or {}).get("matchLabels") or {}).items()))
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{want}", status.get("updatedReplicas", 0),
            status.get("availableReplicas", 0), _age(obj, now), ",".join(c.get("name", "") for c in template),
            ",".join(c.get("image", "") for c in template), selector or "<none>"]


_NAME: Column = ("Name", "string", "name", 0)
_AGE: Column = ("Age", "string", "", 0)
_PRINTERS: dict[tuple[str, str], tuple[list[Column], Any]] = {
    ("", "pods"): ([_NAME, ("Ready", "string", "", 0), ("Status", "string", "", 0), ("Restarts", "string", "", 0),
                    _AGE, ("IP", "string", "", 1), ("Node", "string", "", 1), ("Nominated Node", "string", "", 1),
                    ("Readiness Gates", "string", "", 1)], _pod_row),
    ("", "nodes"): ([_NAME, ("Status", "string", "", 0), ("Roles", "string", "", 0), _AGE,
                     ("Version", "string", "", 0), ("Internal-IP", "string", "", 1), ("External-IP", "string", "", 1),
                     ("OS-Image", "string", "", 1), ("Kernel-Version", "string", "", 1),
                     ("Container-Runtime", "string", "", 1)], _node_row),
    ("", "namespaces"): ([_NAME, ("Status", "string", "", 0), _AGE],
                         lambda o, now: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""),
                                         _age(o, now)]),
    ("", "configmaps"): ([_NAME, ("Data", "integer", "", 0), _AGE],
                         lambda o, now: [o["metadata"]["name"],
                                         len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o, now)]),
    ("", "secrets"): ([_NAME, ("Type", "string", "", 0), ("Data", "string", "", 0), _AGE],
                      lambda o, now: [o["metadata"]["name"], o.get("type", "Opaque"), len(o.get("data") or {}),
                                      _age(o, now)]),
    ("", "services"): ([_NAME, ("Type", "string", "", 0), ("Cluster-IP", "string", "", 0),
                        ("External-IP", "string", "", 0), ("Port(s)", "string", "", 0), _AGE,
                        ("Selector", "string", "", 1)], _service_row),
    ("apps", "deployments"): ([_NAME, ("Ready", "string", "", 0), ("Up-to-date", "string", "", 0),
                               ("Available", "string", "", 0), _AGE, ("Containers", "string", "", 1),
                               ("Images", "string", "", 1), ("Selector", "string", "", 1)], _workload_row),
}


def table(t: ResourceType, objects: Iterable[dict[str, Any]], now: float, *, api_version: str = "meta.k8s.io/v1",
          include_object: str = "Metadata", resource_version: str = "") -> dict[str, Any]:
    """A meta.k8s.io Table of `objects`, as the server-side printers make it: the per-kind
    columns for the kinds above, a CRD's additionalPrinterColumns (or Name, Age) for custom
    resources, and the default table convertor's Name, Created At for the rest
    (apiserver/pkg/registry/rest/table.go)."""
    if (t.group, t.plural) in _PRINTERS:
        columns, row = _PRINTERS[(t.group, t.plural)]
    elif t.crd is not None:
        columns, row = _crd_printer(t)
    else:
        columns = [_NAME, ("Created At", "date", "", 0)]

        def row(o: dict[str, Any], now: float) -> list[Any]:
            return [o["metadata"]["name"], o["metadata"].get("creationTimestamp")]

    rows = []
    for obj in objects:
        entry: dict[str, Any] = {"cells": row(obj, now)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = {"kind": "PartialObjectMetadata", "apiVersion": api_version,
                               "metadata": obj.get("metadata") or {}}
        rows.append(entry)
    return {
        "kind": "Table", "apiVersion": api_version, "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [{"name": n, "type": ty, "format": fmt, "description": "", "priority": p}
                              for n, ty, fmt, p in columns],
        "rows": rows,
    }


def _crd_printer(t: ResourceType) -> tuple[list[Column], Any]:
    """apiextensions-apiserver/pkg/registry/customresource/tableconvertor: Name plus the
    additional printer columns (Age when none are given); date columns print as ages."""
    specs = list(t.printer_columns) or [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    columns: list[Column] = [_NAME] + [(c.get("name", ""), c.get("type", "string"), c.get("format", ""),
                                        int(c.get("priority", 0))) for c in specs]

    def row(obj: dict[str, Any], now: float) -> list[Any]:
        cells: list[Any] = [obj["metadata"]["name"]]
        for c in specs:
            value = dotted(obj, c.get("jsonPath", ""))
            if c.get("type") == "date" and isinstance(value, str):
                try:
                    value = human_duration(now - parse_time(value))
                except ValueError:
                    value = "<invalid>"
            cells.append(value)
        return cells

    return columns, row
