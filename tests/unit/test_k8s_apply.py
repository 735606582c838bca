"""Server-side apply and managed fields as the 1.31 API server computes them (botlab.lab.k8s.apply): FieldsV1
encoding, apply twice, conflicts with their exact Status message, force, pruning of fields a manager stops
applying, ownership moved by ordinary writes, before-first-apply, custom resources."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from botlab.lab.k8s.apply import (
    ApplyConflict,
    ApplyError,
    default_manager,
    server_side_apply,
    update_managed_fields,
)

T1, T2, T3, T4 = (f"2024-05-01T1{i}:00:00Z" for i in range(4))


def config(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]}]},
            },
        },
    }
    base["spec"].update(spec)
    return base


def stored(obj: dict[str, Any], uid: str = "uid-1") -> dict[str, Any]:
    """What the server would store: the result plus the metadata it sets."""
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("uid", uid)
    out["metadata"].setdefault("resourceVersion", "1")
    out["metadata"].setdefault("creationTimestamp", T1)
    return out


def entries(obj: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(e["manager"], e["operation"], e.get("time")) for e in obj["metadata"].get("managedFields", [])]


def fields(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    for entry in obj["metadata"]["managedFields"]:
        if entry["manager"] == manager:
            return entry["fieldsV1"]  # type: ignore[no-any-return]
    raise AssertionError(f"no entry for {manager}")


def test_create_by_apply_owns_the_applied_fields_in_fieldsv1() -> None:
    created = server_side_apply(None, config(), "botlab", False, T1)
    (entry,) = created["metadata"]["managedFields"]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["time"]) == (
        "botlab", "Apply", "apps/v1", T1)
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},  # LabelSelector is x-kubernetes-map-type: atomic
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"web"}': {
                    ".": {},
                    "f:image": {},
                    "f:name": {},
                    # ports are keyed by containerPort and protocol, the protocol's default filling in
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                }}},
            },
        },
    }
    # the typed round trip: zero-valued structs appear as the real API returns them
    assert created["status"] == {}
    assert created["spec"]["template"]["metadata"]["creationTimestamp"] is None
    assert created["spec"]["template"]["spec"]["containers"][0]["resources"] == {}


def test_applying_twice_changes_nothing_not_even_the_time() -> None:
    first = stored(server_side_apply(None, config(), "botlab", False, T1))
    second = server_side_apply(first, config(), "botlab", False, T2)
    assert second == first
    assert entries(second) == [("botlab", "Apply", T1)]


def test_changed_field_is_updated_and_time_moves() -> None:
    first = stored(server_side_apply(None, config(), "botlab", False, T1))
    second = server_side_apply(first, config(replicas=5), "botlab", False, T2)
    assert second["spec"]["replicas"] == 5
    assert entries(second) == [("botlab", "Apply", T2)]
    assert second["metadata"]["uid"] == "uid-1"


def test_conflict_with_an_update_manager_has_the_real_message() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    live = update_managed_fields(live, scaled, "kubectl-client-side-apply", T2)
    assert entries(live) == [("botlab", "Apply", T1), ("kubectl-client-side-apply", "Update", T2)]
    assert fields(live, "kubectl-client-side-apply") == {"f:spec": {"f:replicas": {}}}
    with pytest.raises(ApplyConflict) as caught:
        server_side_apply(live, config(replicas=3), "botlab", False, T3)
    error = caught.value
    assert error.status == 409
    assert error.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )
    assert error.causes == [{"reason": "FieldManagerConflict",
                             "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                             "field": ".spec.replicas"}]


def test_same_value_is_shared_not_a_conflict() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    other = config()
    other["spec"] = {"replicas": 2}
    other["metadata"].pop("labels")
    shared = server_side_apply(live, other, "other", False, T2)
    assert fields(shared, "other") == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" in fields(shared, "botlab")["f:spec"]


def test_conflicts_with_several_fields_and_an_apply_manager() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    other = config(replicas=9)
    other["metadata"]["labels"] = {"app": "web"}
    other["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:9"
    with pytest.raises(ApplyConflict) as caught:
        server_side_apply(live, other, "helm", False, T2)
    assert caught.value.message == (
        'Apply failed with 2 conflicts: conflicts with "botlab":\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="web"].image'
    )
    assert [c["field"] for c in caught.value.causes] == [
        ".spec.replicas", '.spec.template.spec.containers[name="web"].image']


def test_force_takes_ownership_away() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    forced = server_side_apply(live, config(replicas=7), "ops", True, T2)
    assert forced["spec"]["replicas"] == 7
    assert "f:replicas" not in fields(forced, "botlab")["f:spec"]
    assert "f:replicas" in fields(forced, "ops")["f:spec"]
    assert entries(forced) == [("botlab", "Apply", T1), ("ops", "Apply", T2)]


def test_fields_no_longer_applied_are_removed() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    smaller = config()
    del smaller["metadata"]["labels"]
    smaller["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    del smaller["spec"]["template"]["spec"]["containers"][0]["ports"]
    result = server_side_apply(live, smaller, "botlab", False, T2)
    assert "labels" not in result["metadata"]
    container = result["spec"]["template"]["spec"]["containers"][0]
    assert "ports" not in container
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert "f:labels" not in fields(result, "botlab").get("f:metadata", {})


def test_fields_another_manager_owns_survive_the_pruning() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    labelled = copy.deepcopy(live)
    labelled["metadata"]["labels"]["app"] = "web"  # same value: no change, no ownership
    labelled["metadata"]["labels"]["team"] = "ml"
    live = update_managed_fields(live, labelled, "kubectl-label", T2)
    assert fields(live, "kubectl-label") == {"f:metadata": {"f:labels": {"f:team": {}}}}
    # a second applier of the same value co-owns app=web
    live = server_side_apply(live, {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "metadata": {"name": "web", "labels": {"app": "web"}}},
                             "labeller", False, T2)
    smaller = config()
    del smaller["metadata"]["labels"]
    result = server_side_apply(live, smaller, "botlab", False, T3)
    assert result["metadata"]["labels"] == {"app": "web", "team": "ml"}
    alone = server_side_apply(stored(server_side_apply(None, config(), "botlab", False, T1)), smaller, "botlab",
                              False, T3)
    assert "labels" not in alone["metadata"]


def test_update_takes_changed_fields_from_other_managers() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    changed = copy.deepcopy(live)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    result = update_managed_fields(live, changed, "kubectl-set", T2)
    assert result["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    assert fields(result, "kubectl-set") == {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"web"}': {"f:image": {}}}}}}}
    assert "f:image" not in fields(result, "botlab")["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"web"}']


def test_create_by_update_marks_new_maps_with_a_dot() -> None:
    obj = config()
    obj["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    created = update_managed_fields(None, obj, "kubectl-create", T1)
    (entry,) = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["time"]) == ("kubectl-create", "Update", T1)
    spec = entry["fieldsV1"]["f:spec"]
    assert entry["fieldsV1"]["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    # strategy is a non-pointer struct (present in the empty Deployment), rollingUpdate a pointer
    assert spec["f:strategy"] == {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                                  "f:type": {}}
    assert list(spec) == ["f:replicas", "f:selector", "f:strategy", "f:template"]


def test_update_that_changes_nothing_leaves_managed_fields_alone() -> None:
    live = stored(update_managed_fields(None, config(), "kubectl-create", T1))
    again = update_managed_fields(live, copy.deepcopy(live), "someone-else", T2)
    assert entries(again) == [("kubectl-create", "Update", T1)]


def test_existing_object_without_managed_fields_is_not_tracked_by_updates() -> None:
    bare = stored(config())
    changed = copy.deepcopy(bare)
    changed["spec"]["replicas"] = 4
    assert "managedFields" not in update_managed_fields(bare, changed, "x", T2)["metadata"]


def test_empty_managed_fields_in_the_request_reset_them() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    reset = copy.deepcopy(live)
    reset["metadata"]["managedFields"] = []
    assert "managedFields" not in update_managed_fields(live, reset, "x", T2)["metadata"]


def test_first_apply_to_an_untracked_object_conflicts_with_before_first_apply() -> None:
    bare = stored(config())
    with pytest.raises(ApplyConflict) as caught:
        server_side_apply(bare, config(replicas=3), "botlab", False, T2)
    assert caught.value.message == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas'
    )
    forced = server_side_apply(bare, config(replicas=3), "botlab", True, T2)
    assert entries(forced) == [("botlab", "Apply", T2), ("before-first-apply", "Update", T2)]


def test_status_is_not_owned_through_the_main_resource() -> None:
    applied = config()
    applied["status"] = {"replicas": 2}
    created = server_side_apply(None, applied, "botlab", False, T1)
    assert "f:status" not in fields(created, "botlab")


def test_custom_resources_lists_are_atomic() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 1, "items": ["a", "b"], "nested": {"x": 1}}}
    created = stored(server_side_apply(None, widget, "botlab", False, T1))
    assert fields(created, "botlab") == {"f:spec": {"f:items": {}, "f:nested": {"f:x": {}}, "f:size": {}}}
    smaller = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}
    result = server_side_apply(created, smaller, "botlab", False, T2)
    assert result["spec"] == {"size": 1}


def test_refused_configurations() -> None:
    with pytest.raises(ApplyError) as caught:
        server_side_apply(None, config(foo=1), "botlab", False, T1)
    assert (caught.value.status, caught.value.message) == (
        500, "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
             ".spec.foo: field not declared in schema")
    dup = config()
    dup["spec"]["template"]["spec"]["containers"].append({"name": "web", "image": "x"})
    with pytest.raises(ApplyError) as caught:
        server_side_apply(None, dup, "botlab", False, T1)
    assert caught.value.message.endswith(
        '.spec.template.spec.containers: duplicate entries for key [name="web"]')
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    other_version = config()
    other_version["apiVersion"] = "apps/v1beta2"
    with pytest.raises(ApplyError) as caught:
        server_side_apply(live, other_version, "botlab", False, T2)
    assert (caught.value.status, caught.value.message) == (
        400, "invalid object type: apps/v1beta2, Kind=Deployment")
    managed = config()
    managed["metadata"]["managedFields"] = []
    with pytest.raises(ApplyError) as caught:
        server_side_apply(None, managed, "botlab", False, T1)
    assert (caught.value.status, caught.value.message) == (400, "metadata.managedFields must be nil")


def test_managed_fields_entries_are_sorted_by_operation_time_and_manager() -> None:
    live = stored(server_side_apply(None, config(), "zeta", False, T3))
    changed = copy.deepcopy(live)
    changed["metadata"]["labels"]["b"] = "1"
    live = update_managed_fields(live, changed, "beta", T2)
    changed = copy.deepcopy(live)
    changed["metadata"]["labels"]["a"] = "1"
    live = update_managed_fields(live, changed, "alpha", T2)
    assert [(m, op) for m, op, _ in entries(live)] == [("zeta", "Apply"), ("alpha", "Update"), ("beta", "Update")]


def test_default_manager_is_the_user_agent_prefix() -> None:
    assert default_manager("OpenAPI-Generator/31.0.0/python") == "OpenAPI-Generator"
    assert default_manager("kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef") == "kubectl"
    assert default_manager("a\x00b/1") == "ab"
    assert len(default_manager("x" * 300)) == 128


def test_fieldsv1_round_trips_through_json() -> None:
    created = server_side_apply(None, config(), "botlab", False, T1)
    again = json.loads(json.dumps(created))
    assert server_side_apply(stored(again), config(), "botlab", False, T2)["metadata"]["managedFields"] == \
        created["metadata"]["managedFields"]


def test_status_writes_are_recorded_for_the_status_subresource() -> None:
    live = stored(server_side_apply(None, config(), "botlab", False, T1))
    with_status = copy.deepcopy(live)
    with_status["status"] = {"replicas": 2, "readyReplicas": 2}
    result = update_managed_fields(live, with_status, "kube-controller-manager", T2, subresource="status")
    entry = result["metadata"]["managedFields"][1]
    assert (entry["manager"], entry["operation"], entry["subresource"]) == ("kube-controller-manager", "Update",
                                                                            "status")
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"]
    assert entry["fieldsV1"] == {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}
