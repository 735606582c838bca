"""The emulated Kubernetes API server, driven by the official `kubernetes` Python client and
by kubectl, as botlab drives a real one.

Each expectation follows kube-apiserver 1.31 (kubernetes/kubernetes, tag v1.31.x): Status
messages from staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go, routing from
apiserver/pkg/endpoints, deletion and garbage collection from
apiserver/pkg/registry/generic/registry/store.go and pkg/controller/garbagecollector.
No lab hosts are needed: the server runs on 127.0.0.1 from a thread.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from botlab.lab.k8s import K8sApiServer, run_k8s

pytestmark = pytest.mark.lab

KUBECTL = shutil.which("kubectl")
GROUP = "lab.botlab.io"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            "subresources": {"status": {}},
            "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
        }],
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[K8sApiServer]:
    with run_k8s() as srv:
        yield srv


@pytest.fixture(scope="module")
def kubeconfig(server: K8sApiServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test (names from the test), deleted afterwards."""
    name = "t-" + request.node.name.replace("_", "-").lower()[:50].strip("-")
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        assert exc.status == 404


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def raw(api: client.ApiClient, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        query: list[tuple[str, str]] | None = None) -> tuple[int, Any]:
    """A request through the client's own transport (TLS, token), returning status and JSON."""
    url = api.configuration.host + path
    all_headers = {"Authorization": api.configuration.api_key["authorization"], **(headers or {})}
    if query:
        from urllib.parse import urlencode

        url += "?" + urlencode(query)
    data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
    if data is not None:
        all_headers.setdefault("Content-Type", "application/json")
    response = api.rest_client.pool_manager.request(method, url, body=data, headers=all_headers)
    text = response.data.decode()
    return response.status, json.loads(text) if text.strip().startswith(("{", "[")) else text


# --- discovery -------------------------------------------------------------------------------


def test_version_and_built_in_discovery(api: client.ApiClient) -> None:
    version = client.VersionApi(api).get_code()
    assert (version.major, version.minor) == ("1", "31")
    assert version.git_version.startswith("v1.31.")
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    for group in ("apps", "rbac.authorization.k8s.io", "storage.k8s.io", "node.k8s.io", "apiextensions.k8s.io",
                  "admissionregistration.k8s.io", "coordination.k8s.io"):
        assert groups[group].preferred_version.version == "v1"
    core_resources = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core_resources["pods"].short_names == ["po"] and core_resources["pods"].namespaced
    assert core_resources["nodes"].namespaced is False
    assert "deletecollection" not in core_resources["namespaces"].verbs
    assert "pods/status" in core_resources
    apps = {r.name: r for r in client.AppsV1Api(api).get_api_resources().resources}
    assert apps["deployments"].short_names == ["deploy"] and apps["deployments"].categories == ["all"]


def test_aggregated_discovery_is_served_as_kubectl_asks(api: client.ApiClient) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    status, doc = raw(api, "GET", "/apis", headers={"Accept": accept})
    assert status == 200 and doc["kind"] == "APIGroupDiscoveryList"
    apps = next(item for item in doc["items"] if item["metadata"].get("name") == "apps")
    deployments = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deployments["scope"] == "Namespaced"
    assert {s["subresource"] for s in deployments["subresources"]} == {"scale", "status"}


def test_unknown_paths_answer_not_found_statuses(api: client.ApiClient) -> None:
    # Outside any group: the notfoundhandler, no details.
    status, doc = raw(api, "GET", "/apis/nothing.example.com/v1/things")
    assert status == 404
    assert doc == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}
    # Inside a built-in group version: go-restful's answer, empty details.
    status, doc = raw(api, "GET", "/api/v1/gizmos")
    assert status == 404 and doc["details"] == {} and doc["reason"] == "NotFound"
    # A cluster-scoped resource under a namespace is no route either.
    assert raw(api, "GET", "/api/v1/namespaces/default/nodes")[0] == 404
    # A route served with other methods: 405.
    status, doc = raw(api, "POST", "/api/v1/namespaces/default/configmaps/x", body={})
    assert status == 405 and doc["reason"] == "MethodNotAllowed"


def test_crd_discovery_before_and_after(api: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    ext = client.ApiextensionsV1Api(api)
    path = f"/apis/{GROUP}/v1"
    assert raw(api, "GET", path)[0] == 404
    ext.create_custom_resource_definition(CRD)
    try:
        crd = ext.read_custom_resource_definition(f"widgets.{GROUP}")
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions == {"NamesAccepted": "True", "Established": "True"}
        assert crd.status.accepted_names.kind == "Widget"
        assert "customresourcecleanup.apiextensions.k8s.io" in crd.metadata.finalizers

        status, doc = raw(api, "GET", path)
        assert status == 200
        assert {r["name"] for r in doc["resources"]} == {"widgets", "widgets/status"}
        groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
        assert groups[GROUP].preferred_version.group_version == f"{GROUP}/v1"

        dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
        widgets = dyn.resources.get(api_version=f"{GROUP}/v1", kind="Widget")
        assert widgets.namespaced and widgets.name == "widgets"
        made = widgets.create(body={"apiVersion": f"{GROUP}/v1", "kind": "Widget",
                                    "metadata": {"name": "w1"}, "spec": {"size": 3}}, namespace=namespace)
        assert made.metadata.generation == 1
        assert [w.metadata.name for w in widgets.get(namespace=namespace).items] == ["w1"]
    finally:
        ext.delete_custom_resource_definition(f"widgets.{GROUP}")
    # Deleting the CRD deletes its custom resources, then itself; its group leaves discovery.
    assert raw(api, "GET", path)[0] == 404
    assert GROUP not in {g.name for g in client.ApisApi(api).get_api_versions().groups}
    with pytest.raises(ApiException) as caught:
        ext.read_custom_resource_definition(f"widgets.{GROUP}")
    assert caught.value.status == 404


@pytest.fixture
def widgets_crd(api: client.ApiClient) -> Iterator[None]:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(CRD)
    yield
    ext.delete_custom_resource_definition(f"widgets.{GROUP}")


# --- CRUD, watch ---------------------------------------------------------------------------


def collect_events(stream: Callable[[], Iterator[dict[str, Any]]], count: int, w: watch.Watch) -> list[Any]:
    events = []
    for event in stream():
        events.append(event)
        if len(events) == count:
            w.stop()
    return events


def test_configmap_create_get_list_watch_delete(core: client.CoreV1Api, namespace: str) -> None:
    made = core.create_namespaced_config_map(namespace, {"metadata": {"name": "one", "labels": {"app": "x"}},
                                                         "data": {"k": "v"}})
    assert made.metadata.uid and made.metadata.creation_timestamp and made.metadata.generation is None
    assert core.read_namespaced_config_map("one", namespace).data == {"k": "v"}
    listed = core.list_namespaced_config_map(namespace)
    start = listed.metadata.resource_version
    assert [c.metadata.name for c in listed.items] == ["one"]
    assert int(start) >= int(made.metadata.resource_version)

    # Changes made before the watch starts are replayed from `start`, in order.
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "two"}})
    made.data = {"k": "changed"}
    core.replace_namespaced_config_map("one", namespace, made)
    core.delete_namespaced_config_map("two", namespace)
    w = watch.Watch()
    events = collect_events(lambda: w.stream(core.list_namespaced_config_map, namespace, resource_version=start,
                                             timeout_seconds=10), 3, w)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [
        ("ADDED", "two"), ("MODIFIED", "one"), ("DELETED", "two")]
    assert events[1]["object"].data == {"k": "changed"}
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3

    # Without a resourceVersion a watch starts with the objects there are.
    w = watch.Watch()
    events = collect_events(lambda: w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=10), 1, w)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "one")]

    core.delete_namespaced_config_map("one", namespace)
    assert core.list_namespaced_config_map(namespace).items == []


def test_watch_sees_live_changes(server: K8sApiServer, core: client.CoreV1Api, namespace: str) -> None:
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    w = watch.Watch()
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        for event in w.stream(core.list_namespaced_config_map, namespace, resource_version=start,
                              timeout_seconds=10):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                w.stop()

    watchers_before = server.call(lambda: len(server.store.watchers))
    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 5
    while server.call(lambda: len(server.store.watchers)) == watchers_before:
        assert time.monotonic() < deadline, "the watch never reached the server"
        time.sleep(0.01)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "live"}})
    core.delete_namespaced_config_map("live", namespace)
    thread.join(10)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]


def test_watch_timeout_ends_the_stream(core: client.CoreV1Api, namespace: str) -> None:
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    started = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_config_map, namespace, resource_version=rv,
                                       timeout_seconds=1))
    assert events == [] and time.monotonic() - started < 5


def test_custom_resource_crud_and_watch(api: client.ApiClient, widgets_crd: None, namespace: str) -> None:
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w1", "labels": {"tier": "a"}},
            "spec": {"size": 1}, "status": {"ignored": True}}
    made = custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", body)
    assert "status" not in made  # with a status subresource, status is written through /status only
    assert made["metadata"]["generation"] == 1
    start = made["metadata"]["resourceVersion"]

    made["spec"]["size"] = 2
    replaced = custom.replace_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w1", made)
    assert replaced["metadata"]["generation"] == 2
    replaced["status"] = {"ready": True}
    with_status = custom.replace_namespaced_custom_object_status(GROUP, "v1", namespace, "widgets", "w1", replaced)
    assert with_status["status"] == {"ready": True} and with_status["metadata"]["generation"] == 2

    items = custom.list_namespaced_custom_object(GROUP, "v1", namespace, "widgets", label_selector="tier=a")
    assert [i["metadata"]["name"] for i in items["items"]] == ["w1"]
    assert items["items"][0]["kind"] == "Widget"  # custom resource lists keep apiVersion/kind per item

    custom.delete_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w1")
    w = watch.Watch()
    events = collect_events(lambda: w.stream(custom.list_namespaced_custom_object, GROUP, "v1", namespace, "widgets",
                                             resource_version=start, timeout_seconds=10), 3, w)
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]

    # Custom resources need a resourceVersion to be replaced (AllowUnconditionalUpdate false).
    custom.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", {
        "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w2"}})
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "w2", {
            "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": 9}})
    assert caught.value.status == 422
    assert status_of(caught.value)["message"] == (
        f'Widget.{GROUP} "w2" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an '
        "update")


# --- selectors -----------------------------------------------------------------------------


def test_label_selectors(core: client.CoreV1Api, namespace: str) -> None:
    for name, labels in (("a", {"app": "web", "tier": "front"}), ("b", {"app": "db"}), ("c", {})):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector=selector).items]

    assert names("app=web") == ["a"]
    assert names("app==web") == ["a"]
    assert names("app!=web") == ["b", "c"]
    assert names("app in (web,db)") == ["a", "b"]
    assert names("app notin (web)") == ["b", "c"]
    assert names("tier") == ["a"]
    assert names("!tier") == ["b", "c"]
    assert names("app,!tier") == ["b"]
    with pytest.raises(ApiException) as caught:
        names("app in web")
    assert caught.value.status == 400 and status_of(caught.value)["reason"] == "BadRequest"


def test_field_selectors(core: client.CoreV1Api, namespace: str) -> None:
    for name, node in (("p1", "node-01"), ("p2", "node-02")):
        core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": {
            "nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
    pod = core.read_namespaced_pod("p2", namespace)
    assert pod.status.phase == "Pending"  # what the pod strategy sets on create
    pod.status.phase = "Running"
    core.replace_namespaced_pod_status("p2", namespace, pod)

    def names(selector: str, ns: str | None = namespace) -> list[str]:
        found = (core.list_namespaced_pod(ns, field_selector=selector) if ns else
                 core.list_pod_for_all_namespaces(field_selector=selector))
        return [p.metadata.name for p in found.items]

    assert names("metadata.name=p1") == ["p1"]
    assert names("metadata.name!=p1") == ["p2"]
    assert names("spec.nodeName=node-01") == ["p1"]
    assert names("status.phase=Running") == ["p2"]
    assert names("status.phase=Pending,spec.nodeName=node-01") == ["p1"]
    assert names(f"metadata.namespace={namespace}", None) == ["p1", "p2"]
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace, field_selector="spec.nodeName=x")
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == "field label not supported: spec.nodeName"


# --- errors --------------------------------------------------------------------------------


def test_replace_with_stale_resource_version_conflicts(core: client.CoreV1Api, namespace: str) -> None:
    first = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"v": "1"}})
    second = core.read_namespaced_config_map("cm", namespace)
    second.data = {"v": "2"}
    core.replace_namespaced_config_map("cm", namespace, second)
    first.data = {"v": "stale"}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("cm", namespace, first)
    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Operation cannot be fulfilled on configmaps "cm": the object has been modified; please apply '
                   "your changes to the latest version and try again",
        "reason": "Conflict", "details": {"name": "cm", "kind": "configmaps"}, "code": 409}
    assert core.read_namespaced_config_map("cm", namespace).data == {"v": "2"}


def test_unchanged_replace_keeps_the_resource_version(core: client.CoreV1Api, namespace: str) -> None:
    made = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"v": "1"}})
    again = core.replace_namespaced_config_map("cm", namespace, made)
    assert again.metadata.resource_version == made.metadata.resource_version


def test_not_found_and_already_exists_messages(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("nope", namespace)
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'configmaps "nope" not found'
    assert status_of(caught.value)["details"] == {"name": "nope", "kind": "configmaps"}
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(api).read_namespaced_deployment("nope", namespace)
    assert status_of(caught.value)["message"] == 'deployments.apps "nope" not found'
    assert status_of(caught.value)["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}

    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "dup"}})
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"
    assert status_of(caught.value)["message"] == 'configmaps "dup" already exists'


def test_create_in_a_missing_namespace(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("ghost", {"metadata": {"name": "cm"}})
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'namespaces "ghost" not found'


def test_generate_name(core: client.CoreV1Api, namespace: str) -> None:
    made = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "gen-"}})
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == len("gen-") + 5
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(namespace, {"metadata": {}})
    assert caught.value.status == 422
    assert status_of(caught.value)["message"] == (
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required')


def test_wrong_or_missing_token_is_unauthorized(kubeconfig: Path, api: client.ApiClient) -> None:
    bad = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=bad)
    bad.api_key = {"authorization": "Bearer not-the-token"}
    bad.refresh_api_key_hook = None  # which would put the kubeconfig's token back
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(client.ApiClient(bad)).list_namespace()
    assert caught.value.status == 401
    assert status_of(caught.value) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                       "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    response = api.rest_client.pool_manager.request("GET", api.configuration.host + "/version")
    assert response.status == 401


# --- deletion ------------------------------------------------------------------------------


def test_finalizers_keep_an_object_until_removed(api: client.ApiClient, core: client.CoreV1Api,
                                                 namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "held", "finalizers": ["lab.botlab.io/hold"]}})
    status, answer = raw(api, "DELETE", f"/api/v1/namespaces/{namespace}/configmaps/held")
    # Not deleted at once: the answer is the object, marked for deletion.
    assert status == 200 and answer["kind"] == "ConfigMap" and answer["metadata"]["deletionTimestamp"]
    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None and held.metadata.finalizers == ["lab.botlab.io/hold"]
    held.metadata.finalizers.append("lab.botlab.io/more")
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("held", namespace, held)
    assert caught.value.status == 422
    assert "no new finalizers can be added if the object is being deleted" in status_of(caught.value)["message"]
    held.metadata.finalizers = []
    core.replace_namespaced_config_map("held", namespace, held)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("held", namespace)
    assert caught.value.status == 404


def test_delete_answers_a_status_for_most_kinds_and_the_object_for_some(api: client.ApiClient,
                                                                        core: client.CoreV1Api, namespace: str) -> None:
    made = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}})
    status, doc = raw(api, "DELETE", f"/api/v1/namespaces/{namespace}/configmaps/cm")
    assert status == 200
    assert doc == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                   "details": {"name": "cm", "kind": "configmaps", "uid": made.metadata.uid}}
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "sa"}})
    status, doc = raw(api, "DELETE", f"/api/v1/namespaces/{namespace}/serviceaccounts/sa")
    assert status == 200 and doc["kind"] == "ServiceAccount"  # ReturnDeletedObject


def owned_by(owner: Any, kind: str, api_version: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": owner.metadata.name, "uid": owner.metadata.uid, **extra}


def make_owner(api: client.ApiClient, namespace: str, name: str) -> Any:
    return client.AppsV1Api(api).create_namespaced_deployment(namespace, {
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})


def test_deleting_an_owner_collects_its_dependents(api: client.ApiClient, core: client.CoreV1Api,
                                                   namespace: str) -> None:
    apps = client.AppsV1Api(api)
    owner = make_owner(api, namespace, "web")
    ref = owned_by(owner, "Deployment", "apps/v1", controller=True)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "other"}})
    apps.delete_namespaced_deployment("web", namespace)  # Background, the default
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace).items] == ["other"]

    # Orphan: the dependents stay, without the reference.
    owner = make_owner(api, namespace, "web2")
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept", "ownerReferences": [
        owned_by(owner, "Deployment", "apps/v1")]}})
    apps.delete_namespaced_deployment("web2", namespace, propagation_policy="Orphan")
    kept = core.read_namespaced_config_map("kept", namespace)
    assert kept.metadata.owner_references is None
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("web2", namespace)

    # Foreground: the owner waits for its blocking dependents.
    owner = make_owner(api, namespace, "web3")
    core.create_namespaced_config_map(namespace, {"metadata": {
        "name": "blocker", "finalizers": ["lab.botlab.io/hold"],
        "ownerReferences": [owned_by(owner, "Deployment", "apps/v1", blockOwnerDeletion=True)]}})
    apps.delete_namespaced_deployment("web3", namespace, propagation_policy="Foreground")
    waiting = apps.read_namespaced_deployment("web3", namespace)
    assert waiting.metadata.deletion_timestamp is not None and "foregroundDeletion" in waiting.metadata.finalizers
    blocker = core.read_namespaced_config_map("blocker", namespace)
    assert blocker.metadata.deletion_timestamp is not None
    blocker.metadata.finalizers = []
    core.replace_namespaced_config_map("blocker", namespace, blocker)
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("web3", namespace)


def test_namespace_deletion_terminates_its_content(api: client.ApiClient, core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    assert core.read_namespace("doomed").metadata.labels == {"kubernetes.io/metadata.name": "doomed"}
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "held", "finalizers": ["lab.botlab.io/h"]}})
    status, answer = raw(api, "DELETE", "/api/v1/namespaces/doomed")
    assert status == 200 and answer["status"]["phase"] == "Terminating" and answer["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    assert caught.value.status == 403
    assert status_of(caught.value)["message"] == (
        'configmaps "late" is forbidden: unable to create new content in namespace doomed because it is being '
        "terminated")
    assert status_of(caught.value)["details"]["causes"] == [
        {"reason": "NamespaceTerminating", "message": "namespace doomed is being terminated",
         "field": "metadata.namespace"}]
    held = core.read_namespaced_config_map("held", "doomed")
    held.metadata.finalizers = []
    core.replace_namespaced_config_map("held", "doomed", held)
    with pytest.raises(ApiException) as caught:
        core.read_namespace("doomed")
    assert caught.value.status == 404
    with pytest.raises(ApiException) as caught:
        core.delete_namespace("default")
    assert caught.value.status == 403
    assert status_of(caught.value)["message"] == 'namespaces "default" is forbidden: this namespace may not be deleted'


# --- generation, status --------------------------------------------------------------------


def test_generation_follows_spec_changes_and_status_is_separate(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    made = make_owner(api, namespace, "gen")
    assert made.metadata.generation == 1
    made.metadata.labels = {"only": "metadata"}
    made = apps.replace_namespaced_deployment("gen", namespace, made)
    assert made.metadata.generation == 1
    made.spec.replicas = 3
    made.status = client.V1DeploymentStatus(ready_replicas=3)
    made = apps.replace_namespaced_deployment("gen", namespace, made)
    assert made.metadata.generation == 2
    assert made.status.ready_replicas is None  # the main resource does not write status
    made.status = client.V1DeploymentStatus(ready_replicas=3, replicas=3)
    made = apps.replace_namespaced_deployment_status("gen", namespace, made)
    assert made.status.ready_replicas == 3 and made.metadata.generation == 2


# --- PATCH and apply: the wiring to patching.py / apply.py -----------------------------------


APPLY = "application/apply-patch+yaml"


def test_merge_and_json_patches_and_an_unsupported_patch_type(api: client.ApiClient, core: client.CoreV1Api,
                                                              namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    path = f"/api/v1/namespaces/{namespace}/configmaps/cm"
    status, doc = raw(api, "PATCH", path, body={"data": {"b": "2", "a": None}},
                      headers={"Content-Type": "application/merge-patch+json"})
    assert status == 200 and doc["data"] == {"b": "2"}
    status, doc = raw(api, "PATCH", path, body=[{"op": "test", "path": "/data/b", "value": "9"}],
                      headers={"Content-Type": "application/json-patch+json"})
    # handlers/patch.go: a failed json-patch op answers NewGenericServerResponse(422, ...)
    assert (status, doc["reason"]) == (422, "Invalid") and doc["message"] == (
        "the server rejected our request due to an error in our request")
    status, doc = raw(api, "PATCH", path, body={}, headers={"Content-Type": "text/plain"})
    assert status == 415 and doc["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, "
        "application/apply-patch+yaml")


def test_server_side_apply_twice_a_change_a_conflict_and_its_forced_resolution(api: client.ApiClient,
                                                                                namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}

    def apply(body: dict[str, Any], manager: str, *, force: bool = False) -> tuple[int, Any]:
        query = [("fieldManager", manager)] + ([("force", "true")] if force else [])
        return raw(api, "PATCH", path, body=body, headers={"Content-Type": APPLY}, query=query)

    status, doc = raw(api, "PATCH", path, body=deployment, headers={"Content-Type": APPLY})
    assert status == 422 and doc["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')
    status, first = apply(deployment, "botlab")
    assert status == 201
    status, again = apply(deployment, "botlab")
    assert status == 200 and again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    status, changed = apply({**deployment, "spec": {**deployment["spec"], "replicas": 3}}, "botlab")
    assert changed["spec"]["replicas"] == 3 and changed["metadata"]["generation"] == 2
    status, conflict = apply({**deployment, "spec": {**deployment["spec"], "replicas": 5}}, "operator")
    assert status == 409 and conflict["reason"] == "Conflict"
    assert conflict["message"] == 'Apply failed with 1 conflict: conflict with "botlab": .spec.replicas'
    assert conflict["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "botlab"',
                                              "field": ".spec.replicas"}]
    status, forced = apply({**deployment, "spec": {**deployment["spec"], "replicas": 5}}, "operator", force=True)
    assert status == 200 and forced["spec"]["replicas"] == 5
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert "f:replicas" in owners["operator"]["f:spec"] and "f:replicas" not in owners["botlab"]["f:spec"]


def test_an_invalid_object_is_rejected_with_the_apis_message(api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api)
    with pytest.raises(client.ApiException) as caught:
        apps.create_namespaced_deployment(namespace, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "other"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
    assert caught.value.status == 422
    body = json.loads(caught.value.body)
    # pkg/apis/apps/validation ValidateDeploymentSpec: the selector must match the template's labels
    assert body["message"].startswith('Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value:')
    assert "`selector` does not match template `labels`" in body["message"]



# --- kubectl -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    if KUBECTL is None:
        print("kubectl is not installed: skipping the kubectl tests")
        pytest.skip("kubectl is not installed")
    home = tmp_path_factory.mktemp("kubectl-home")

    def run(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)}
        result = subprocess.run([str(KUBECTL), f"--cache-dir={home / 'cache'}", *args], env=env, input=stdin,
                                capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


def test_kubectl_get_nodes(core: client.CoreV1Api, kubectl: Callable[..., Any]) -> None:
    info = {"machineID": "d1b2", "systemUUID": "4c4c4544", "bootID": "0b5e", "kernelVersion": "6.8.0-49-generic",
            "osImage": "Ubuntu 24.04.1 LTS", "containerRuntimeVersion": "containerd://1.7.22",
            "kubeletVersion": "v1.31.4", "kubeProxyVersion": "v1.31.4", "operatingSystem": "linux",
            "architecture": "amd64"}
    core.create_node({"metadata": {"name": "node-01", "labels": {"node-role.kubernetes.io/control-plane": ""}},
                      "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": info}})
    try:
        out = kubectl("get", "nodes").stdout.splitlines()
        assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        name, state, roles, _age, version = out[1].split()
        assert (name, state, roles, version) == ("node-01", "Ready", "control-plane", "v1.31.4")
    finally:
        core.delete_node("node-01")


def test_kubectl_get_pods_all_namespaces(core: client.CoreV1Api, namespace: str, kubectl: Callable[..., Any]) -> None:
    core.create_namespaced_pod(namespace, {"metadata": {"name": "web-0"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}})
    out = kubectl("get", "pods", "-A").stdout.splitlines()
    assert out[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:5] for line in out[1:]] == [[namespace, "web-0", "0/1", "Pending", "0"]]


def test_kubectl_create_get_json_and_delete(core: client.CoreV1Api, namespace: str,
                                            kubectl: Callable[..., Any]) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "from-kubectl", "namespace": namespace}, "data": {"k": "v"}})
    assert kubectl("create", "-f", "-", stdin=manifest).stdout.strip() == "configmap/from-kubectl created"
    assert core.read_namespaced_config_map("from-kubectl", namespace).data == {"k": "v"}
    listed = json.loads(kubectl("get", "configmaps", "-n", namespace, "-o", "json").stdout)
    assert [(i["kind"], i["metadata"]["name"], i["data"]) for i in listed["items"]] == [
        ("ConfigMap", "from-kubectl", {"k": "v"})]
    again = kubectl("create", "-f", "-", stdin=manifest, check=False)
    assert again.returncode == 1
    assert 'configmaps "from-kubectl" already exists' in again.stderr
    assert kubectl("delete", "configmap", "from-kubectl", "-n", namespace).stdout.strip() == (
        'configmap "from-kubectl" deleted')
    missing = kubectl("get", "configmap", "from-kubectl", "-n", namespace, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): configmaps "from-kubectl" not found'


def test_kubectl_sees_custom_resources(api: client.ApiClient, widgets_crd: None, namespace: str,
                                       kubectl: Callable[..., Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", {
        "apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 7}})
    out = kubectl("get", "wdg", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "SIZE"]
    assert out[1].split() == ["w1", "7"]
    resources = kubectl("api-resources", "--api-group", GROUP).stdout
    assert "widgets" in resources and "Widget" in resources


# --- lists, bodies, formats ----------------------------------------------------------------


def test_paging_delete_collection_and_dry_run(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    for i in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{i}", "labels": {"i": str(i % 2)}}})
    page = core.list_namespaced_config_map(namespace, limit=2)
    assert [c.metadata.name for c in page.items] == ["cm-0", "cm-1"]
    assert page.metadata.remaining_item_count == 3 and page.metadata._continue
    rest = core.list_namespaced_config_map(namespace, limit=10, _continue=page.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm-2", "cm-3", "cm-4"] and rest.metadata._continue is None

    dry = core.create_namespaced_config_map(namespace, {"metadata": {"name": "dry"}}, dry_run="All")
    assert dry.metadata.name == "dry" and not dry.metadata.resource_version
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry", namespace)

    core.delete_collection_namespaced_config_map(namespace, label_selector="i=1")
    left = core.list_namespaced_config_map(namespace).items
    assert [c.metadata.name for c in left] == ["cm-0", "cm-2", "cm-4"]
    # namespaces have no deletecollection: no such route.
    assert raw(api, "DELETE", "/api/v1/namespaces")[0] == 405


def test_yaml_bodies_and_body_checks(api: client.ApiClient, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"
    status, doc = raw(api, "POST", path, body=yaml_body, headers={"Content-Type": "application/yaml"})
    assert status == 201 and doc["data"] == {"k": "v"}
    status, doc = raw(api, "POST", path, body={"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert (status, doc["message"]) == (
        400, "the API version in the data (apps/v1) does not match the expected API version (v1)")
    status, doc = raw(api, "POST", path, body={"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "x", "namespace": "elsewhere"}})
    assert (status, doc["message"]) == (
        400, "the namespace of the provided object does not match the namespace sent on the request")
    status, doc = raw(api, "PUT", f"{path}/from-yaml", body={"apiVersion": "v1", "kind": "ConfigMap",
                                                             "metadata": {"name": "other"}})
    assert (status, doc["message"]) == (
        400, "the name of the object (other) does not match the name on the URL (from-yaml)")


def test_table_and_metadata_only_answers(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    status, doc = raw(api, "GET", f"/api/v1/namespaces/{namespace}/configmaps", headers={"Accept": accept})
    assert status == 200 and doc["kind"] == "Table" and doc["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in doc["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert doc["rows"][0]["cells"][:2] == ["cm", 2]
    assert doc["rows"][0]["object"]["metadata"]["namespace"] == namespace
    accept = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
    status, doc = raw(api, "GET", f"/api/v1/namespaces/{namespace}/configmaps", headers={"Accept": accept})
    assert doc["kind"] == "PartialObjectMetadataList" and "data" not in doc["items"][0]


def test_async_start_and_stop_end_open_watches() -> None:
    import asyncio

    import aiohttp

    async def scenario() -> None:
        server = K8sApiServer()
        url = await server.start()
        headers = {"Authorization": f"Bearer {server.token}"}
        ssl_context = server.certs.client_context()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/version", headers=headers, ssl=ssl_context) as response:
                assert response.status == 200 and (await response.json())["minor"] == "31"
            async with session.get(f"{url}/api/v1/namespaces?watch=1", headers=headers, ssl=ssl_context) as response:
                first = json.loads(await response.content.readline())
                assert first["type"] == "ADDED" and first["object"]["kind"] == "Namespace"
                for _ in range(3):
                    await response.content.readline()
                await server.stop()
                assert await response.content.read() == b""  # the stream ended with the server

    asyncio.run(scenario())


def test_kubectl_apply_server_side_twice_then_a_conflict(core: client.CoreV1Api, kubectl: Callable[..., Any],
                                                         namespace: str) -> None:
    manifest = (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {namespace}\n"
                "data:\n  mode: gpu\n")
    first = kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    assert first.stdout.strip() == "configmap/settings serverside-applied"
    version = core.read_namespaced_config_map("settings", namespace).metadata.resource_version
    kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    assert core.read_namespaced_config_map("settings", namespace).metadata.resource_version == version
    other = kubectl("apply", "--server-side", "--field-manager=operator", "-f", "-",
                    stdin=manifest.replace("mode: gpu", "mode: cpu"), check=False)
    assert other.returncode == 1 and 'conflict with "kubectl"' in other.stderr and ".data.mode" in other.stderr
    kubectl("apply", "--server-side", "--field-manager=operator", "--force-conflicts", "-f", "-",
            stdin=manifest.replace("mode: gpu", "mode: cpu"))
    assert core.read_namespaced_config_map("settings", namespace).data == {"mode": "cpu"}
