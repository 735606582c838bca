"""Dynamic admission in the lab's Kubernetes store (botlab/lab/k8s/webhooks.py), store-level.

Expectations follow kubernetes/kubernetes v1.31 staging/src/k8s.io/apiserver/pkg: util/webhook/error.go
(`failed calling webhook %q: %v`), admission/plugin/webhook/{validating,mutating}/dispatcher.go ("failed to
call webhook: %w", NewInternalError when failing closed, failurePolicy Ignore failing open),
admission/plugin/webhook/errors/statuserror.go (`admission webhook %q denied the request: %s`),
predicates/rules/rules.go and the namespace/object selector matchers; controller-runtime's
admission.Denied (403 Forbidden) for the refusal's code.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from botlab.lab.k8s import K8sApiServer, errors, webhooks
from botlab.lab.k8s.resources import ResourceType
from botlab.lab.k8s.store import DeleteOptions, Store

NS = "metallb-system"
HOOK = "ipaddresspoolvalidationwebhook.metallb.io"
PATH = "/validate-metallb-io-v1beta1-ipaddresspool"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "ipaddresspools.metallb.io"},
    "spec": {"group": "metallb.io", "scope": "Namespaced",
             "names": {"plural": "ipaddresspools", "singular": "ipaddresspool", "kind": "IPAddressPool",
                       "listKind": "IPAddressPoolList"},
             "versions": [{"name": "v1beta1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "addresses": {"type": "array", "items": {"type": "string"}}}}}}}}]},
}


def vwc(*, failure_policy: str | None = "Fail", resources: tuple[str, ...] = ("ipaddresspools",),
        operations: tuple[str, ...] = ("CREATE", "UPDATE"), **extra: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": HOOK, "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "clientConfig": {"service": {"name": "metallb-webhook-service", "namespace": NS, "path": PATH}},
        "rules": [{"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"], "operations": list(operations),
                   "resources": list(resources)}], **extra}
    if failure_policy is not None:
        hook["failurePolicy"] = failure_policy
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "metallb-webhook-configuration"}, "webhooks": [hook]}


def pool(name: str = "first-pool", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, **({"labels": labels} if labels else {})},
            "spec": {"addresses": ["10.10.0.200-10.10.0.250"]}}


class Lab:
    def __init__(self) -> None:
        self.store: Store = K8sApiServer(store=Store()).store
        self.hooks = webhooks.of(self.store)
        self.store.create(self.t("apiextensions.k8s.io", "customresourcedefinitions"), None, CRD)
        self.store.create(self.t("", "namespaces"), None, {"metadata": {"name": NS, "labels": {"team": "net"}}})
        self.svc = self.store.create(self.t("", "services"), NS, {
            "metadata": {"name": "metallb-webhook-service"},
            "spec": {"ports": [{"port": 443, "targetPort": 9443}], "selector": {"component": "controller"}}})

    def t(self, group: str, plural: str) -> ResourceType:
        return self.store.type_of(group, plural)

    @property
    def pools(self) -> ResourceType:
        return self.t("metallb.io", "ipaddresspools")

    def configure(self, config: dict[str, Any]) -> None:
        self.store.create(self.t("admissionregistration.k8s.io", "validatingwebhookconfigurations"), None, config)

    def webhook_pod(self, *, ready: bool = True, labels: dict[str, str] | None = None) -> None:
        pods = self.t("", "pods")
        created = self.store.create(pods, NS, {
            "metadata": {"name": "controller-0", "labels": labels or {"component": "controller"}},
            "spec": {"containers": [{"name": "controller", "image": "quay.io/metallb/controller:v0.14.9"}]}})
        status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
        self.store.update(pods, NS, "controller-0", {**created, "status": status}, subresource="status")

    def refused(self) -> str:
        return (f'Internal error occurred: failed calling webhook "{HOOK}": failed to call webhook: Post '
                f'"https://metallb-webhook-service.{NS}.svc:443{PATH}?timeout=10s": dial tcp '
                f'{self.svc["spec"]["clusterIP"]}:443: connect: connection refused')


@pytest.fixture
def lab() -> Lab:
    return Lab()


def test_the_api_server_installs_the_webhook_hook() -> None:
    store = K8sApiServer(store=Store()).store
    assert isinstance(store.webhooks, webhooks.Webhooks)
    assert webhooks.of(store) is store.webhooks


def test_no_ready_pod_fails_closed_with_the_api_servers_message(lab: Lab) -> None:
    lab.configure(vwc())
    with pytest.raises(errors.ApiError) as exc:
        lab.store.create(lab.pools, NS, pool())
    assert exc.value.code == 500
    assert exc.value.reason == "InternalError"
    assert exc.value.message == lab.refused()
    assert exc.value.status["details"] == {"causes": [{"message": lab.refused().removeprefix(
        "Internal error occurred: ")}]}
    assert lab.store.find(lab.pools, NS, "first-pool") is None
    # A pod that is not Ready is no endpoint either.
    lab.webhook_pod(ready=False)
    with pytest.raises(errors.ApiError, match="connection refused"):
        lab.store.create(lab.pools, NS, pool())


def test_failure_policy_defaults_to_fail(lab: Lab) -> None:
    lab.configure(vwc(failure_policy=None))
    with pytest.raises(errors.ApiError) as exc:
        lab.store.create(lab.pools, NS, pool())
    assert exc.value.message == lab.refused()


def test_a_ready_pod_behind_the_service_lets_it_through(lab: Lab) -> None:
    lab.configure(vwc())
    lab.webhook_pod()
    created = lab.store.create(lab.pools, NS, pool())
    assert created["metadata"]["name"] == "first-pool"
    updated = copy.deepcopy(created)
    updated["spec"]["addresses"] = ["10.10.0.100/28"]
    lab.store.update(lab.pools, NS, "first-pool", updated)


def test_a_pod_the_selector_does_not_pick_is_no_endpoint(lab: Lab) -> None:
    lab.configure(vwc())
    lab.webhook_pod(labels={"component": "speaker"})
    with pytest.raises(errors.ApiError, match="connection refused"):
        lab.store.create(lab.pools, NS, pool())


def test_failure_policy_ignore_fails_open(lab: Lab) -> None:
    lab.configure(vwc(failure_policy="Ignore"))
    assert lab.store.create(lab.pools, NS, pool())["metadata"]["name"] == "first-pool"


def test_a_missing_service_is_named(lab: Lab) -> None:
    config = vwc()
    config["webhooks"][0]["clientConfig"]["service"]["name"] = "nowhere"
    lab.configure(config)
    with pytest.raises(errors.ApiError) as exc:
        lab.store.create(lab.pools, NS, pool())
    assert exc.value.message == (
        f'Internal error occurred: failed calling webhook "{HOOK}": failed to call webhook: Post '
        f'"https://nowhere.{NS}.svc:443{PATH}?timeout=10s": service "nowhere" not found')


def test_a_registered_refusal_uses_the_denial_format(lab: Lab) -> None:
    lab.configure(vwc())
    lab.webhook_pod()
    seen: list[dict[str, Any]] = []

    def overlap(request: dict[str, Any]) -> tuple[bool, str]:
        seen.append(request)
        if request["object"]["metadata"]["name"] == "second-pool":
            return False, "overlaps with already defined CIDR 10.10.0.200/29"
        return True, ""

    lab.hooks.answer(HOOK, overlap)
    lab.store.create(lab.pools, NS, pool())
    with pytest.raises(errors.ApiError) as exc:
        lab.store.create(lab.pools, NS, pool("second-pool"))
    assert exc.value.code == 403
    assert exc.value.reason == "Forbidden"
    assert exc.value.message == (f'admission webhook "{HOOK}" denied the request: overlaps with already '
                                 f'defined CIDR 10.10.0.200/29')
    assert seen[0]["operation"] == "CREATE" and seen[0]["namespace"] == NS and seen[0]["oldObject"] is None
    assert seen[0]["resource"] == {"group": "metallb.io", "version": "v1beta1", "resource": "ipaddresspools"}
    lab.hooks.answer(HOOK, lambda request: (False, "", 400))
    with pytest.raises(errors.ApiError) as exc:
        lab.store.create(lab.pools, NS, pool("third-pool"))
    assert (exc.value.code, exc.value.message) == (400, f'admission webhook "{HOOK}" denied the request without '
                                                        f'explanation')
    lab.hooks.answer(HOOK, None)
    lab.store.create(lab.pools, NS, pool("third-pool"))


def test_an_answer_does_not_make_an_unreachable_service_reachable(lab: Lab) -> None:
    lab.configure(vwc())
    lab.hooks.answer(HOOK, lambda request: (True, ""))
    with pytest.raises(errors.ApiError, match="connection refused"):
        lab.store.create(lab.pools, NS, pool())


@pytest.mark.parametrize("rule", [
    {"resources": ("l2advertisements",)},
    {"operations": ("DELETE",)},
    {"resources": ("ipaddresspools/status",)},
])
def test_a_webhook_whose_rules_do_not_match_is_not_consulted(lab: Lab, rule: dict[str, Any]) -> None:
    lab.configure(vwc(**rule))
    lab.hooks.answer(HOOK, lambda request: pytest.fail("consulted"))
    lab.store.create(lab.pools, NS, pool())


def test_wildcards_subresources_and_delete(lab: Lab) -> None:
    lab.configure(vwc(resources=("*/*",), operations=("*",)))
    lab.webhook_pod()
    calls: list[tuple[str, str]] = []

    def record(request: dict[str, Any]) -> tuple[bool, str]:
        calls.append((request["operation"], request["subResource"]))
        return request["operation"] != "DELETE", "pools are forever"

    lab.hooks.answer(HOOK, record)
    created = lab.store.create(lab.pools, NS, pool())
    lab.store.update(lab.pools, NS, "first-pool", {**created, "status": {}}, subresource="status")
    with pytest.raises(errors.ApiError, match="pools are forever"):
        lab.store.delete(lab.pools, NS, "first-pool")
    assert calls == [("CREATE", ""), ("UPDATE", "status"), ("DELETE", "")]
    assert lab.store.find(lab.pools, NS, "first-pool") is not None
    # A dry run reaches a webhook without side effects; one with them refuses it.
    with pytest.raises(errors.ApiError, match="pools are forever"):
        lab.store.delete(lab.pools, NS, "first-pool", DeleteOptions(dry_run=True))


def test_dry_run_needs_a_webhook_without_side_effects(lab: Lab) -> None:
    lab.configure(vwc(sideEffects="Some", failure_policy="Ignore"))
    with pytest.raises(errors.ApiError) as exc:
        lab.store.create(lab.pools, NS, pool(), dry_run=True)
    assert (exc.value.code, exc.value.message) == (400, f'admission webhook "{HOOK}" does not support dry run')


def test_selectors(lab: Lab) -> None:
    lab.configure(vwc(namespaceSelector={"matchLabels": {"team": "net"}},
                      objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}))
    with pytest.raises(errors.ApiError, match="connection refused"):
        lab.store.create(lab.pools, NS, pool())
    lab.store.create(lab.pools, NS, pool(labels={"skip": "yes"}))
    lab.store.create(lab.t("", "namespaces"), None, {"metadata": {"name": "other"}})
    lab.store.create(lab.pools, "other", pool())


def test_webhook_configurations_are_exempt(lab: Lab) -> None:
    lab.configure(vwc(resources=("*",), operations=("*",)))
    config = vwc()
    config["metadata"]["name"] = "another"
    lab.configure(config)  # not refused, though rules say "*"


def test_url_webhooks_are_unreachable_unless_answered(lab: Lab) -> None:
    config = vwc()
    config["webhooks"][0]["clientConfig"] = {"url": "https://hooks.example:8443/check"}
    lab.configure(config)
    with pytest.raises(errors.ApiError) as exc:
        lab.store.create(lab.pools, NS, pool())
    assert exc.value.message == (
        f'Internal error occurred: failed calling webhook "{HOOK}": failed to call webhook: Post '
        f'"https://hooks.example:8443/check?timeout=10s": dial tcp hooks.example:8443: connect: connection refused')
    lab.hooks.answer(HOOK, lambda request: (True, ""))
    lab.store.create(lab.pools, NS, pool())


def test_mutating_webhooks_are_called_too(lab: Lab) -> None:
    config = vwc()
    config["kind"] = "MutatingWebhookConfiguration"
    config["metadata"]["name"] = "metallb-mutating"
    lab.store.create(lab.t("admissionregistration.k8s.io", "mutatingwebhookconfigurations"), None, config)
    with pytest.raises(errors.ApiError, match="connection refused"):
        lab.store.create(lab.pools, NS, pool())


def test_rule_matching() -> None:
    store = Store()
    pods = store.type_of("", "pods")
    nodes = store.type_of("", "nodes")
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
    assert webhooks.rule_matches(rule, pods, "CREATE", "")
    assert not webhooks.rule_matches(rule, pods, "CREATE", "status")
    assert not webhooks.rule_matches(rule, pods, "UPDATE", "")
    assert webhooks.rule_matches({**rule, "resources": ["pods/*"]}, pods, "CREATE", "exec")
    assert webhooks.rule_matches({**rule, "resources": ["*"]}, nodes, "CREATE", "")
    assert not webhooks.rule_matches({**rule, "resources": ["*"], "scope": "Namespaced"}, nodes, "CREATE", "")
    assert not webhooks.rule_matches({**rule, "apiVersions": ["v2"]}, pods, "CREATE", "")
    assert webhooks.selector_matches({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {})
    assert not webhooks.selector_matches({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]},
                                         {})
