"""PATCH bodies as the 1.31 API server applies them (botlab.lab.k8s.patching): merge patch, JSON patch with the
json-patch v4 library's messages and the server's generic 422, strategic merge patch by the API's merge keys,
its directives, and the refusals (415 for custom resources, 400/422/500 by the real error mapping)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from botlab.lab.k8s import validation
from botlab.lab.k8s.patching import (
    GENERIC_422,
    JSON_PATCH,
    MERGE_PATCH,
    MERGE_STRATEGIES,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
)

SMP = STRATEGIC_MERGE_PATCH


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                     "finalizers": ["a.example.com/one", "a.example.com/two"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1",
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "sidecar", "image": "busybox"},
                    ],
                    "tolerations": [{"key": "gpu", "operator": "Exists"}],
                },
            },
        },
    }


def patch(live: dict[str, Any], body: Any, content_type: str, kind: str = "Deployment") -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return apply_patch(live, raw, content_type, kind)


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


# --- merge patch -------------------------------------------------------------------------------------------


def test_merge_patch_null_deletes_and_objects_merge() -> None:
    live = deployment()
    result = patch(live, {"metadata": {"labels": {"tier": None, "new": "x"}}, "spec": {"replicas": 3}}, MERGE_PATCH)
    assert result["metadata"]["labels"] == {"app": "web", "new": "x"}
    assert result["spec"]["replicas"] == 3
    assert live == deployment(), "the live object is left untouched"


def test_merge_patch_replaces_lists_whole() -> None:
    result = patch(deployment(), {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}},
                   MERGE_PATCH)
    assert containers(result) == [{"name": "only", "image": "x"}]


@pytest.mark.parametrize("body", [b"null", b"{not json", b"5"])
def test_merge_patch_that_is_not_an_object_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), body, MERGE_PATCH)
    assert (caught.value.status, caught.value.message) == (400, "Invalid JSON Patch")


def test_merge_patch_result_of_the_wrong_type_is_invalid_on_the_patch_field() -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), {"spec": {"replicas": "three"}}, MERGE_PATCH)
    error = caught.value
    assert error.status == 422
    assert error.message.startswith(' "" is invalid: patch: Invalid value: "{\\"apiVersion\\":\\"apps/v1\\"')
    assert error.message.endswith(
        ": json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )
    assert error.causes[0]["field"] == "patch"


# --- JSON patch --------------------------------------------------------------------------------------------


def test_json_patch_operations() -> None:
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "add", "path": "/metadata/labels/a~1b", "value": "slash"},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "last", "image": "x"}},
        {"op": "add", "path": "/spec/template/spec/containers/0", "value": {"name": "first", "image": "x"}},
        {"op": "remove", "path": "/metadata/labels/tier"},
        {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copied"},
        {"op": "move", "from": "/metadata/labels/copied", "path": "/metadata/labels/moved"},
        {"op": "test", "path": "/metadata/labels/moved", "value": "web"},
    ]
    result = patch(deployment(), ops, JSON_PATCH)
    assert result["spec"]["replicas"] == 4
    assert result["metadata"]["labels"] == {"app": "web", "a/b": "slash", "moved": "web"}
    assert [c["name"] for c in containers(result)] == ["first", "web", "sidecar", "last"]


def test_json_patch_failed_test_is_the_generic_422() -> None:
    live = deployment()
    with pytest.raises(PatchError) as caught:
        patch(live, [{"op": "replace", "path": "/spec/replicas", "value": 9},
                     {"op": "test", "path": "/spec/replicas", "value": 2}], JSON_PATCH)
    error = caught.value
    assert (error.status, error.reason, error.message) == (422, "Invalid", GENERIC_422)
    assert error.detail == "testing value /spec/replicas failed: test failed"
    assert live["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("op", "detail"),
    [
        ({"op": "remove", "path": "/metadata/labels/nope"},
         "error in remove for path: '/metadata/labels/nope': Unable to remove nonexistent key: nope: missing value"),
        ({"op": "add", "path": "/spec/nothing/here", "value": 1},
         'add operation does not apply: doc is missing path: "/spec/nothing/here": missing value'),
        ({"op": "replace", "path": "/spec/template/spec/containers/7", "value": {}},
         "replace operation does not apply: doc is missing key: /spec/template/spec/containers/7: missing value"),
        ({"op": "add", "path": "/spec/template/spec/containers/9", "value": {}},
         "error in add for path: '/spec/template/spec/containers/9': Unable to access invalid index: 9: "
         "invalid index referenced"),
        ({"op": "frobnicate", "path": "/spec"}, "Unexpected kind: frobnicate"),
        ({"op": "test", "path": "/spec/missing", "value": 1}, "testing value /spec/missing failed: test failed"),
    ],
)
def test_json_patch_library_errors(op: dict[str, Any], detail: str) -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), [op], JSON_PATCH)
    assert (caught.value.status, caught.value.message, caught.value.detail) == (422, GENERIC_422, detail)


def test_json_patch_v4_quirks() -> None:
    # replace of a missing object key adds it; a null "value" tests as "absent".
    result = patch(deployment(), [{"op": "replace", "path": "/metadata/labels/new", "value": "v"},
                                  {"op": "test", "path": "/metadata/annotations", "value": None}], JSON_PATCH)
    assert result["metadata"]["labels"]["new"] == "v"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"op": "add"}', "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
        (b'["add"]', "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
        (b"[{", "unexpected end of JSON input"),
    ],
)
def test_json_patch_body_errors_are_bad_requests(body: bytes, message: str) -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), body, JSON_PATCH)
    assert (caught.value.status, caught.value.message) == (400, message)


# --- strategic merge patch ---------------------------------------------------------------------------------


def test_strategic_merge_merges_containers_and_env_by_name() -> None:
    body = {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
    ]}}}}
    result = patch(deployment(), body, SMP)
    web, sidecar = containers(result)
    assert web["image"] == "nginx:2"
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert web["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert sidecar == {"name": "sidecar", "image": "busybox"}


def test_strategic_merge_new_list_items_come_before_server_only_ones() -> None:
    # mergeSortedSlice: items the live order cannot place (new ones) go first.
    result = patch(deployment(), {"spec": {"template": {"spec": {"containers": [{"name": "new", "image": "x"}]}}}},
                   SMP)
    assert [c["name"] for c in containers(result)] == ["new", "web", "sidecar"]


def test_strategic_merge_set_element_order() -> None:
    body = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
        "containers": [{"name": "web", "image": "nginx:3"}],
    }}}}
    result = patch(deployment(), body, SMP)
    assert [(c["name"], c["image"]) for c in containers(result)] == [("sidecar", "busybox"), ("web", "nginx:3")]


def test_strategic_merge_patch_delete_directive() -> None:
    result = patch(deployment(), {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "$patch": "delete"}]}}}}, SMP)
    assert [c["name"] for c in containers(result)] == ["web"]


def test_strategic_merge_patch_replace_directive() -> None:
    result = patch(deployment(), {"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "solo", "image": "x"}]}}}}, SMP)
    assert containers(result) == [{"name": "solo", "image": "x"}]
    result = patch(deployment(), {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}, SMP)
    assert result["metadata"]["labels"] == {"only": "this"}


def test_strategic_merge_lists_without_merge_strategy_are_replaced() -> None:
    result = patch(deployment(), {"spec": {"template": {"spec": {"tolerations": [{"key": "other"}]}}}}, SMP)
    assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "other"}]


def test_strategic_merge_primitive_lists_and_null() -> None:
    result = patch(deployment(), {"metadata": {"finalizers": ["b.example.com/x"], "labels": {"tier": None}}}, SMP)
    assert result["metadata"]["finalizers"] == ["b.example.com/x", "a.example.com/one", "a.example.com/two"]
    assert result["metadata"]["labels"] == {"app": "web"}
    result = patch(deployment(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/one"]}}, SMP)
    assert result["metadata"]["finalizers"] == ["a.example.com/two"]


def test_strategic_merge_retain_keys() -> None:
    body = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert patch(deployment(), body, SMP)["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(PatchError) as caught:
        patch(deployment(), {"spec": {"strategy": {"$retainKeys": "type"}}}, SMP)
    assert (caught.value.status, caught.value.message) == (400, "invalid patch format of retainKeys")


def test_strategic_merge_errors() -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), {"metadata": {"$patch": "merge"}}, SMP)
    assert (caught.value.status, caught.value.message) == (500, "unknown patch type: merge in map: map[$patch:merge]")
    with pytest.raises(PatchError) as caught:
        patch(deployment(), {"spec": {"replicas": "three"}}, SMP)
    assert caught.value.status == 422
    assert caught.value.message == (
        ' "" is invalid: patch: Invalid value: "map[spec:map[replicas:three]]": unrecognized type: int32'
    )
    with pytest.raises(PatchError) as caught:
        patch(deployment(), b"[1]", SMP)
    assert caught.value.message == "json: cannot unmarshal array into Go value of type map[string]interface {}"


def test_strategic_merge_is_refused_for_custom_resources() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    with pytest.raises(PatchError) as caught:
        patch(widget, {"spec": {"size": 2}}, SMP, kind="Widget")
    assert caught.value.status == 415
    assert caught.value.reason == "UnsupportedMediaType"
    assert caught.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )
    assert patch(widget, {"spec": {"size": 2}}, MERGE_PATCH, kind="Widget")["spec"] == {"size": 2}


def test_unknown_content_type() -> None:
    with pytest.raises(PatchError) as caught:
        patch(deployment(), {}, "text/plain")
    assert caught.value.status == 415
    assert caught.value.message.endswith(
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, "
        "application/apply-patch+yaml"
    )


def test_content_type_parameters_are_ignored() -> None:
    result = patch(deployment(), {"spec": {"replicas": 2}}, SMP + "; charset=utf-8")
    assert result["spec"]["replicas"] == 2


def test_merge_table_matches_the_openapi_extensions() -> None:
    """Every (definition, field) with x-kubernetes-patch-strategy in the 1.31 OpenAPI of the groups botlab uses is
    in MERGE_STRATEGIES with the same strategy and key, and the other way round."""
    prefixes = ("io.k8s.api.core.v1.", "io.k8s.api.apps.v1.", "io.k8s.api.storage.v1.", "io.k8s.api.rbac.v1.",
                "io.k8s.api.node.v1.", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    from_schema = {}
    for name, node in validation.definitions().items():
        if not name.startswith(prefixes):
            continue
        for prop, sub in (node.get("properties") or {}).items():
            if "x-kubernetes-patch-strategy" in sub:
                strategy = sub["x-kubernetes-patch-strategy"]
                from_schema[(name, prop)] = (strategy, sub.get("x-kubernetes-patch-merge-key"))
    from_table = {key: (strategy, merge_key) for key, (strategy, merge_key, _) in MERGE_STRATEGIES.items()}
    assert from_table == from_schema


def test_patch_does_not_touch_its_inputs() -> None:
    live = deployment()
    body = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "n"}]}}}}
    before = copy.deepcopy(body)
    patch(live, body, SMP)
    assert live == deployment()
    assert body == before
