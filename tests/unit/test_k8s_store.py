"""The emulated API server's store, on its own: resource versions, generation, deletion with
finalizers, garbage collection, namespace and CRD life cycles, selectors, watch history.

Expectations follow kube-apiserver 1.31 (kubernetes/kubernetes, tag v1.31.x): the generic
registry (apiserver/pkg/registry/generic/registry/store.go), the garbage collector
(pkg/controller/garbagecollector), the namespace controller and NamespaceLifecycle admission,
apiextensions-apiserver's CRD controllers, and apimachinery's label/field selectors.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from botlab.lab.k8s import errors
from botlab.lab.k8s.resources import Catalogue, human_duration, table, version_priority
from botlab.lab.k8s.store import DeleteOptions, Store, parse_label_selector

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.lab.botlab.io"},
    "spec": {
        "group": "lab.botlab.io", "scope": "Cluster",
        "names": {"plural": "gadgets", "kind": "Gadget"},
        "versions": [{"name": "v1beta1", "served": True, "storage": False},
                     {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}}],
    },
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> Store:
    return Store(Catalogue(), clock=Clock())


def t(store: Store, group: str, plural: str) -> Any:
    return store.type_of(group, plural)


def cm(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"k": "v"}}


def drain(watch: Any) -> list[dict[str, Any]]:
    """The events a watcher has queued."""
    items = [watch.queue.get_nowait() for _ in range(watch.queue.qsize())]
    return [i for i in items if i is not None]


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["metadata"]["name"] for i in items]


def test_initial_namespaces_and_the_kubernetes_service(store: Store) -> None:
    items, _rv = store.list_objects(t(store, "", "namespaces"), None)
    assert names(items) == ["default", "kube-node-lease", "kube-public", "kube-system"]
    assert items[0]["status"] == {"phase": "Active"} and items[0]["spec"] == {"finalizers": ["kubernetes"]}
    svc = store.get(t(store, "", "services"), "default", "kubernetes")
    assert svc["spec"]["clusterIP"] == "10.152.183.1"


def test_one_global_resource_version_and_system_fields(store: Store) -> None:
    configmaps, secrets = t(store, "", "configmaps"), t(store, "", "secrets")
    a = store.create(configmaps, "default", cm("a"))
    b = store.create(secrets, "default", {"metadata": {"name": "b"}})
    assert int(b["metadata"]["resourceVersion"]) == int(a["metadata"]["resourceVersion"]) + 1
    assert a["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert a["metadata"]["uid"] != b["metadata"]["uid"]
    assert "generation" not in a["metadata"]
    assert store.list_objects(configmaps, "default")[1] == b["metadata"]["resourceVersion"]
    with pytest.raises(errors.ApiError) as caught:
        store.create(configmaps, "default", {**cm("c"), "metadata": {"name": "c", "resourceVersion": "3"}})
    assert caught.value.code == 500
    assert caught.value.status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                   "message": "resourceVersion should not be set on objects to be created",
                                   "code": 500}


def test_update_conflicts_and_no_op_updates(store: Store) -> None:
    configmaps = t(store, "", "configmaps")
    made = store.create(configmaps, "default", cm("a"))
    same, created = store.update(configmaps, "default", "a", made)
    assert not created and same["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]
    changed = copy.deepcopy(made)
    changed["data"] = {"k": "w"}
    newer, _ = store.update(configmaps, "default", "a", changed)
    assert int(newer["metadata"]["resourceVersion"]) > int(made["metadata"]["resourceVersion"])
    with pytest.raises(errors.ApiError) as caught:
        store.update(configmaps, "default", "a", changed)
    assert (caught.value.code, caught.value.reason) == (409, "Conflict")
    assert caught.value.message == ('Operation cannot be fulfilled on configmaps "a": the object has been modified; '
                                    "please apply your changes to the latest version and try again")
    # Unconditional updates (no resourceVersion) are allowed for built-ins.
    loose = {**cm("a"), "data": {"k": "x"}}
    assert store.update(configmaps, "default", "a", loose)[0]["data"] == {"k": "x"}
    # managedFields timestamps alone are no change.
    stamped = store.get(configmaps, "default", "a")
    stamped["metadata"]["managedFields"] = [{"manager": "m", "operation": "Apply", "time": "2024-01-01T00:00:00Z"}]
    first, _ = store.update(configmaps, "default", "a", stamped)
    later = copy.deepcopy(first)
    later["metadata"]["managedFields"][0]["time"] = "2025-01-01T00:00:00Z"
    assert store.update(configmaps, "default", "a", later)[0]["metadata"]["resourceVersion"] == (
        first["metadata"]["resourceVersion"])


def test_update_of_a_missing_object(store: Store) -> None:
    with pytest.raises(errors.ApiError) as caught:
        store.update(t(store, "", "configmaps"), "default", "gone", cm("gone"))
    assert caught.value.message == 'configmaps "gone" not found'
    # Leases (like endpoints and events) are created by an update (AllowCreateOnUpdate).
    lease, created = store.update(t(store, "coordination.k8s.io", "leases"), "kube-node-lease", "node-01", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-01"}})
    assert created and lease["metadata"]["namespace"] == "kube-node-lease"


def test_generation_and_status(store: Store) -> None:
    deployments = t(store, "apps", "deployments")
    made = store.create(deployments, "default", {"metadata": {"name": "web"}, "spec": {"replicas": 1},
                                                 "status": {"replicas": 5}})
    assert made["metadata"]["generation"] == 1 and made["status"] == {}
    made["metadata"]["labels"] = {"a": "b"}
    made["status"] = {"replicas": 9}
    relabelled, _ = store.update(deployments, "default", "web", made)
    assert relabelled["metadata"]["generation"] == 1 and relabelled["status"] == {}
    relabelled["spec"]["replicas"] = 2
    scaled, _ = store.update(deployments, "default", "web", relabelled)
    assert scaled["metadata"]["generation"] == 2
    scaled["status"] = {"replicas": 2}
    scaled["spec"]["replicas"] = 7
    status, _ = store.update(deployments, "default", "web", scaled, subresource="status")
    assert status["status"] == {"replicas": 2} and status["spec"]["replicas"] == 2
    assert status["metadata"]["generation"] == 2


def test_create_in_missing_or_terminating_namespaces(store: Store) -> None:
    configmaps, namespaces = t(store, "", "configmaps"), t(store, "", "namespaces")
    with pytest.raises(errors.ApiError) as caught:
        store.create(configmaps, "nowhere", cm("a"))
    assert (caught.value.code, caught.value.message) == (404, 'namespaces "nowhere" not found')
    store.create(namespaces, None, {"metadata": {"name": "going"}})
    store.create(configmaps, "going", cm("held", finalizers=["x/y"]))
    marked, immediate = store.delete(namespaces, None, "going")
    assert not immediate and marked["status"]["phase"] == "Terminating"
    with pytest.raises(errors.ApiError) as caught:
        store.create(configmaps, "going", cm("late"))
    assert caught.value.code == 403
    held = store.get(configmaps, "going", "held")
    assert held["metadata"]["deletionTimestamp"]
    held["metadata"]["finalizers"] = []
    store.update(configmaps, "going", "held", held)
    assert store.find(namespaces, None, "going") is None
    for immortal in ("default", "kube-system", "kube-public"):
        with pytest.raises(errors.ApiError) as caught:
            store.delete(namespaces, None, immortal)
        assert caught.value.message == f'namespaces "{immortal}" is forbidden: this namespace may not be deleted'


def test_finalizers_and_delete_preconditions(store: Store) -> None:
    configmaps = t(store, "", "configmaps")
    made = store.create(configmaps, "default", cm("a", finalizers=["x/hold"]))
    with pytest.raises(errors.ApiError) as caught:
        store.delete(configmaps, "default", "a", DeleteOptions(precondition_uid="other"))
    assert caught.value.message == (f'Operation cannot be fulfilled on configmaps "a": Precondition failed: UID in '
                                    f'precondition: other, UID in object meta: {made["metadata"]["uid"]}')
    marked, immediate = store.delete(configmaps, "default", "a")
    assert not immediate and marked["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"
    again, _ = store.delete(configmaps, "default", "a")  # a second delete changes nothing
    assert again["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
    marked["metadata"]["finalizers"] = ["x/hold", "x/new"]
    with pytest.raises(errors.ApiError) as caught:
        store.update(configmaps, "default", "a", marked)
    assert caught.value.code == 422
    marked["metadata"]["finalizers"] = []
    store.update(configmaps, "default", "a", marked)
    assert store.find(configmaps, "default", "a") is None


def test_garbage_collection(store: Store) -> None:
    configmaps, deployments = t(store, "", "configmaps"), t(store, "apps", "deployments")

    def owner(name: str) -> dict[str, Any]:
        made = store.create(deployments, "default", {"metadata": {"name": name}, "spec": {}})
        return {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": made["metadata"]["uid"]}

    one, two = owner("one"), owner("two")
    store.create(configmaps, "default", cm("only-one", ownerReferences=[one]))
    store.create(configmaps, "default", cm("both", ownerReferences=[one, two]))
    store.delete(deployments, "default", "one")
    # A dependent goes once every owner is gone.
    assert names(store.list_objects(configmaps, "default")[0]) == ["both"]
    store.delete(deployments, "default", "two")
    assert store.list_objects(configmaps, "default")[0] == []

    # A reference to an owner that does not exist (or has another uid) is collected at once.
    store.create(configmaps, "default", cm("stray", ownerReferences=[{**one, "uid": "no-such-uid"}]))
    assert store.find(configmaps, "default", "stray") is None
    # ... unless the owner's kind is not served: the collector cannot resolve it.
    store.create(configmaps, "default", cm("odd", ownerReferences=[{**one, "kind": "Unknown"}]))
    assert store.find(configmaps, "default", "odd") is not None

    # Chains go all the way down.
    top = owner("top")
    middle = store.create(deployments, "default", {"metadata": {"name": "middle", "ownerReferences": [top]}})
    store.create(configmaps, "default", cm("bottom", ownerReferences=[{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "middle", "uid": middle["metadata"]["uid"]}]))
    store.delete(deployments, "default", "top")
    assert store.find(configmaps, "default", "bottom") is None


def test_orphan_and_foreground_deletion(store: Store) -> None:
    configmaps, deployments = t(store, "", "configmaps"), t(store, "apps", "deployments")
    made = store.create(deployments, "default", {"metadata": {"name": "o"}})
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "o", "uid": made["metadata"]["uid"]}
    store.create(configmaps, "default", cm("kept", ownerReferences=[ref]))
    _obj, immediate = store.delete(deployments, "default", "o", DeleteOptions(propagation="Orphan"))
    assert not immediate and store.find(deployments, "default", "o") is None
    assert "ownerReferences" not in store.get(configmaps, "default", "kept")["metadata"]

    made = store.create(deployments, "default", {"metadata": {"name": "f"}})
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "f", "uid": made["metadata"]["uid"],
           "blockOwnerDeletion": True}
    store.create(configmaps, "default", cm("blocking", ownerReferences=[ref], finalizers=["x/hold"]))
    store.delete(deployments, "default", "f", DeleteOptions(propagation="Foreground"))
    waiting = store.get(deployments, "default", "f")
    assert waiting["metadata"]["finalizers"] == ["foregroundDeletion"]
    blocking = store.get(configmaps, "default", "blocking")
    blocking["metadata"]["finalizers"] = []
    store.update(configmaps, "default", "blocking", blocking)
    assert store.find(deployments, "default", "f") is None


def test_crd_life_cycle(store: Store) -> None:
    crds = t(store, "apiextensions.k8s.io", "customresourcedefinitions")
    assert store.catalogue.lookup("lab.botlab.io", "v1", "gadgets") is None
    store.create(crds, None, CRD)
    crd = store.get(crds, None, "gadgets.lab.botlab.io")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]} == {"NamesAccepted": "True",
                                                                              "Established": "True"}
    assert crd["status"]["storedVersions"] == ["v1"]
    assert crd["status"]["acceptedNames"]["singular"] == "gadget"
    v1 = store.catalogue.lookup("lab.botlab.io", "v1", "gadgets")
    beta = store.catalogue.lookup("lab.botlab.io", "v1beta1", "gadgets")
    assert v1 is not None and beta is not None and not v1.namespaced and v1.has_status and not beta.has_status
    assert dict(store.catalogue.groups())["lab.botlab.io"] == ["v1", "v1beta1"]
    # Both versions serve the same objects (conversion None: only apiVersion differs).
    store.create(v1, None, {"apiVersion": "lab.botlab.io/v1", "kind": "Gadget", "metadata": {"name": "g",
                                                                                          "finalizers": ["x/h"]}})
    assert store.get(beta, None, "g")["apiVersion"] == "lab.botlab.io/v1beta1"
    store.delete(crds, None, "gadgets.lab.botlab.io")
    terminating = store.get(crds, None, "gadgets.lab.botlab.io")
    assert any(c["type"] == "Terminating" for c in terminating["status"]["conditions"])
    assert store.terminating_crd(v1)
    gadget = store.get(v1, None, "g")
    assert gadget["metadata"]["deletionTimestamp"]
    gadget["metadata"]["finalizers"] = []
    store.update(v1, None, "g", gadget)
    assert store.find(crds, None, "gadgets.lab.botlab.io") is None
    assert store.catalogue.lookup("lab.botlab.io", "v1", "gadgets") is None


def test_a_crd_must_be_named_after_its_plural_and_group(store: Store) -> None:
    crds = t(store, "apiextensions.k8s.io", "customresourcedefinitions")
    bad = copy.deepcopy(CRD)
    bad["metadata"]["name"] = "gadgets"
    with pytest.raises(errors.ApiError) as caught:
        store.create(crds, None, bad)
    assert caught.value.code == 422
    assert caught.value.message == ('CustomResourceDefinition.apiextensions.k8s.io "gadgets" is invalid: '
                                    'metadata.name: Invalid value: "gadgets": must be spec.names.plural+"."+spec.group')


def test_label_selector_parsing() -> None:
    reqs = parse_label_selector("a=b, c!=d,e in (f, g),h notin (i),j,!k,n>3")
    assert [(r.key, r.op, r.values) for r in reqs] == [
        ("a", "=", ("b",)), ("c", "!=", ("d",)), ("e", "in", ("f", "g")), ("h", "notin", ("i",)),
        ("j", "exists", ()), ("k", "!", ()), ("n", "gt", ("3",))]
    assert reqs[-1].matches({"n": "4"}) and not reqs[-1].matches({"n": "3"})
    with pytest.raises(errors.ApiError):
        parse_label_selector("a in b")


def test_watch_replays_history_and_expires(store: Store) -> None:
    small = Store(Catalogue(), clock=Clock(), history_size=5)
    configmaps = t(small, "", "configmaps")
    start = small.revision
    for i in range(3):
        small.create(configmaps, "default", cm(f"c{i}", labels={"n": str(i)}))
    watch = small.watch(configmaps, "default", str(start), label_selector="n in (1,2)")
    events = drain(watch)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "c1"), ("ADDED", "c2")]
    # An object that stops matching is DELETED for this watcher; one that starts, ADDED.
    c1 = small.get(configmaps, "default", "c1")
    c1["metadata"]["labels"] = {"n": "0"}
    small.update(configmaps, "default", "c1", c1)
    c0 = small.get(configmaps, "default", "c0")
    c0["metadata"]["labels"] = {"n": "2"}
    small.update(configmaps, "default", "c0", c0)
    events = drain(watch)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("DELETED", "c1"), ("ADDED", "c0")]
    watch.close()
    for i in range(5):
        small.create(configmaps, "default", cm(f"more{i}"))
    expired = small.watch(configmaps, "default", str(start))
    error = drain(expired)[0]
    assert error["type"] == "ERROR" and error["object"]["code"] == 410 and error["object"]["reason"] == "Expired"
    assert error["object"]["message"].startswith(f"too old resource version: {start} (")


def test_services_get_addresses_and_keep_them(store: Store) -> None:
    services = t(store, "", "services")
    made = store.create(services, "default", {"metadata": {"name": "web"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80}]}})
    assert made["spec"]["clusterIP"] == "10.152.183.2"
    port = made["spec"]["ports"][0]
    assert port["protocol"] == "TCP" and port["targetPort"] == 80 and 30000 <= port["nodePort"] <= 32767
    replaced, _ = store.update(services, "default", "web", {"metadata": {"name": "web"}, "spec": {
        "type": "NodePort", "ports": [{"port": 80}]}})
    assert replaced["spec"]["clusterIP"] == "10.152.183.2"
    assert replaced["spec"]["ports"][0]["nodePort"] == port["nodePort"]


def test_tables_and_durations(store: Store) -> None:
    assert [human_duration(s) for s in (0, 119, 120, 61 * 60, 3 * 3600 + 60, 50 * 3600, 9 * 86400)] == [
        "0s", "119s", "2m", "61m", "3h1m", "2d2h", "9d"]
    assert sorted(["v1alpha1", "v2", "v1beta1", "v1", "foo"], key=version_priority) == [
        "v2", "v1", "v1beta1", "v1alpha1", "foo"]
    pods = t(store, "", "pods")
    pod = store.create(pods, "default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
    doc = table(pods, [pod], store.clock() + 30)
    assert [c["name"] for c in doc["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    assert doc["rows"][0]["cells"][:5] == ["p", "0/1", "Pending", 0, "30s"]
    assert doc["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    roles = t(store, "rbac.authorization.k8s.io", "roles")
    role = store.create(roles, "default", {"metadata": {"name": "r"}})
    assert [c["name"] for c in table(roles, [role], store.clock())["columnDefinitions"]] == ["Name", "Created At"]
