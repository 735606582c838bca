"""What the 1.31 API server says about an object's content (botlab.lab.k8s.validation): the decoder's 400s for
wrong types, bad quantities and bad base64, unknown fields (warnings, or 400 under Strict), and the 422s of the
hand-written validation with their exact messages; custom resources against a CRD schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from botlab.lab.k8s.validation import (
    Invalid,
    decode_error,
    drop_unknown_fields,
    unknown_fields,
    validate,
)

DNS_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {"limits": {"cpu": "1"}}}]},
            },
        },
    }


def refused(obj: dict[str, Any], **kwargs: Any) -> Invalid:
    with pytest.raises(Invalid) as caught:
        validate(obj, **kwargs)
    return caught.value


def test_a_valid_deployment_passes() -> None:
    validate(deployment())


def test_wrong_type_is_a_decoder_bad_request() -> None:
    obj = deployment()
    obj["spec"]["replicas"] = "three"
    error = refused(obj)
    assert (error.status, error.reason) == (400, "BadRequest")
    assert error.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct '
        "field DeploymentSpec.spec.replicas of type int32"
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o["spec"]["template"]["spec"].update(containers={"name": "web"}),
         "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type "
         "[]v1.Container"),
        (lambda o: o["spec"].update(replicas=1.5),
         "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32"),
        (lambda o: o["metadata"].update(labels={"a": 1}),
         "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0].update(resources={"limits": {"cpu": "lots"}}),
         "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        (lambda o: o["spec"].update(strategy={"rollingUpdate": {"maxSurge": True}}),
         "json: cannot unmarshal bool into Go struct field RollingUpdateDeployment.spec.strategy.rollingUpdate."
         "maxSurge of type int32"),
    ],
)
def test_decoder_messages(mutate: Any, message: str) -> None:
    obj = deployment()
    mutate(obj)
    assert decode_error(obj) == message


def test_secret_data_must_be_base64() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"key": "hello"}}
    error = refused(secret)
    assert (error.status, error.message) == (
        400, 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 4')
    secret["data"]["key"] = "aGVsbG8="
    validate(secret)


def test_unknown_fields_are_warnings_or_strict_errors() -> None:
    obj = deployment()
    obj["spec"]["foo"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["colour"] = "blue"
    # in document order: spec.foo comes after spec.template in this dict
    assert unknown_fields(obj) == ['unknown field "spec.template.spec.containers[0].colour"',
                                   'unknown field "spec.foo"']
    validate(obj)  # the default (Warn/Ignore): dropped, not refused
    error = refused(obj, field_validation="Strict")
    assert (error.status, error.message) == (
        400,
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field '
        '"spec.template.spec.containers[0].colour", unknown field "spec.foo"',
    )
    pruned = drop_unknown_fields(obj)
    assert "foo" not in pruned["spec"]
    assert "colour" not in pruned["spec"]["template"]["spec"]["containers"][0]


def test_deployment_without_selector() -> None:
    obj = deployment()
    del obj["spec"]["selector"]
    error = refused(obj)
    assert (error.status, error.reason, error.kind, error.name, error.group) == (
        422, "Invalid", "Deployment", "web", "apps")
    assert error.message == (
        'Deployment.apps "web" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid '
        'value: map[string]string{"app":"web"}: `selector` does not match template `labels`]'
    )
    assert error.causes == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"},
        {"reason": "FieldValueInvalid",
         "message": 'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`',
         "field": "spec.template.metadata.labels"},
    ]


def test_selector_must_match_template_labels() -> None:
    for kind in ("Deployment", "DaemonSet", "StatefulSet"):
        obj = deployment()
        obj["kind"] = kind
        obj["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        error = refused(obj)
        assert error.message == (
            f'{kind}.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
            'map[string]string{"app":"web"}: `selector` does not match template `labels`'
        )
    obj = deployment()
    obj["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]}
    validate(obj)


def test_metadata_name_must_be_a_dns_subdomain() -> None:
    obj = deployment()
    obj["metadata"]["name"] = "Web_1"
    error = refused(obj)
    assert error.message == (
        f'Deployment.apps "Web_1" is invalid: metadata.name: Invalid value: "Web_1": {DNS_SUBDOMAIN}')


def test_missing_name() -> None:
    obj = deployment()
    del obj["metadata"]["name"]
    error = refused(obj)
    assert error.message == (
        'Deployment.apps "" is invalid: metadata.name: Required value: name or generateName is required')


def test_container_names_are_dns_labels_and_unique() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "Web", "image": "x"}, {"name": "b", "image": "x"},
                                   {"name": "b", "image": "x"}]}}
    error = refused(pod)
    assert error.message == (
        f'Pod "p" is invalid: [spec.containers[0].name: Invalid value: "Web": {DNS_LABEL}, '
        'spec.containers[2].name: Duplicate value: "b"]'
    )
    pod["spec"]["containers"] = [{"name": "a"}]
    assert refused(pod).message == 'Pod "p" is invalid: spec.containers[0].image: Required value'
    pod["spec"]["containers"] = []
    assert refused(pod).message == 'Pod "p" is invalid: spec.containers: Required value'


def test_runtime_class_handler_is_a_dns_label() -> None:
    rc = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"}, "handler": "Nvidia"}
    error = refused(rc)
    assert error.message == (
        f'RuntimeClass.node.k8s.io "nvidia" is invalid: handler: Invalid value: "Nvidia": {DNS_LABEL}')
    rc["handler"] = "nvidia.x"
    assert refused(rc).message == (
        'RuntimeClass.node.k8s.io "nvidia" is invalid: handler: Invalid value: "nvidia.x": must not contain dots')
    rc["handler"] = "nvidia"
    validate(rc)


def test_other_name_rules() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}}
    assert "a DNS-1035 label must consist of" in refused(svc).message
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}
    assert refused(ns).message == (
        'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots')
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "a/b"}}
    assert refused(role).message == (
        'ClusterRole.rbac.authorization.k8s.io "a/b" is invalid: metadata.name: Invalid value: "a/b": '
        "may not contain '/'")
    validate({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "system:controller:x"}})


def test_labels_are_validated() -> None:
    obj = deployment()
    obj["metadata"]["labels"] = {"bad key!": "v"}
    assert refused(obj).message.startswith(
        'Deployment.apps "web" is invalid: metadata.labels: Invalid value: "bad key!": name part must consist of')


def test_required_fields_from_the_schema() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "x", "env": [{"value": "1"}]}]}}
    assert refused(pod).message == 'Pod "p" is invalid: spec.containers[0].env[0].name: Required value'
    # StatefulSetSpec.serviceName is required in the OpenAPI but not checked by 1.31's validation
    sts = deployment()
    sts["kind"] = "StatefulSet"
    validate(sts)


def test_volume_mounts_name_a_volume() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    assert refused(obj).message == (
        'Deployment.apps "web" is invalid: spec.template.spec.containers[0].volumeMounts[0].name: Not found: "data"')
    obj["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    validate(obj)


def test_custom_resource_against_its_schema() -> None:
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "required": ["size"],
        "properties": {"size": {"type": "integer"}, "mode": {"type": "string", "enum": ["a", "b"]}}}}}
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": "three", "mode": "c"}}
    with pytest.raises(Invalid) as caught:
        validate(widget, schema)
    assert caught.value.status == 422
    assert caught.value.message == (
        'Widget.example.com "w" is invalid: [spec.size: Invalid value: "string": spec.size in body must be of type '
        'integer: "string", spec.mode: Unsupported value: "c": supported values: "a", "b"]'
    )
    ok = copy.deepcopy(widget)
    ok["spec"] = {"size": 3}
    validate(ok, schema)
    validate(widget)  # no schema: accepted


def test_config_map_and_secret_keys() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"config.toml": "x", "a/b": "y"}}
    assert refused(cm).message == (
        'ConfigMap "c" is invalid: data[a/b]: Invalid value: "a/b": a valid config key must consist of alphanumeric '
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
        "is '[-._a-zA-Z0-9]+')"
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"..x": "y"}}
    assert refused(secret).message == (
        'Secret "s" is invalid: data[..x]: Invalid value: "..x": must not start with \'..\'')


def test_template_labels_are_reported_under_template_labels() -> None:
    obj = deployment()
    obj["spec"]["selector"] = {"matchLabels": {"app": "web"}}
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "web", "x": "bad value"}
    assert refused(obj).message.startswith(
        'Deployment.apps "web" is invalid: spec.template.labels: Invalid value: "bad value": a valid label must be')
