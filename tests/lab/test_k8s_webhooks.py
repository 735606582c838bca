"""Admission webhooks in the lab's Kubernetes API server (botlab/lab/k8s/webhooks.py), driven by the
official `kubernetes` client (and kubectl when installed) as an operator meets MetalLB's: creating an
IPAddressPool right after installing MetalLB fails until the webhook's pods are Ready.

No lab hosts: the server runs on 127.0.0.1 from a thread with its controllers. Messages follow
kubernetes v1.31 staging/src/k8s.io/apiserver/pkg (util/webhook/error.go,
admission/plugin/webhook/{validating,mutating}/dispatcher.go, admission/plugin/webhook/errors/statuserror.go)
and controller-runtime's admission.Denied (403 Forbidden); see webhooks.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from botlab.lab.k8s import K8sApiServer, run_k8s, webhooks
from botlab.lab.k8s.controllers import Delays, with_controllers
from tests.support.polling import eventually

pytestmark = pytest.mark.lab

KUBECTL = shutil.which("kubectl")
NS = "metallb-system"
HOOK = "ipaddresspoolvalidationwebhook.metallb.io"
PATH = "/validate-metallb-io-v1beta1-ipaddresspool"


def crd(kind: str, plural: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{plural}.metallb.io"},
            "spec": {"group": "metallb.io", "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
                     "versions": [{"name": "v1beta1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                       "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


def webhook_configuration(*, failure_policy: str = "Fail", resource: str = "ipaddresspools") -> dict[str, Any]:
    """As MetalLB v0.14's manifests install it (one of its webhooks)."""
    return {"metadata": {"name": "metallb-webhook-configuration"},
            "webhooks": [{"name": HOOK, "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "failurePolicy": failure_policy,
                          "clientConfig": {"service": {"name": "metallb-webhook-service", "namespace": NS,
                                                       "path": PATH}},
                          "rules": [{"apiGroups": ["metallb.io"], "apiVersions": ["v1beta1"],
                                     "operations": ["CREATE", "UPDATE"], "resources": [resource]}]}]}


def pool(name: str) -> dict[str, Any]:
    return {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": name},
            "spec": {"addresses": ["10.10.0.200-10.10.0.250"]}}


class MetalLB:
    """A server with controllers and MetalLB's webhook side installed: the CRDs, the namespace, the
    webhook Service and the controller Deployment (no nodes yet: its pod stays Pending)."""

    def __init__(self, server: K8sApiServer, api: client.ApiClient) -> None:
        self.server = server
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        ext = client.ApiextensionsV1Api(api)
        for kind, plural in (("IPAddressPool", "ipaddresspools"), ("L2Advertisement", "l2advertisements")):
            ext.create_custom_resource_definition(crd(kind, plural))
            eventually(lambda plural=plural: ext.read_custom_resource_definition(f"{plural}.metallb.io"),
                       lambda c: any(x.type == "Established" and x.status == "True"
                                     for x in c.status.conditions or []))
        self.core.create_namespace({"metadata": {"name": NS}})
        self.service = self.core.create_namespaced_service(NS, {
            "metadata": {"name": "metallb-webhook-service"},
            "spec": {"ports": [{"port": 443, "targetPort": 9443}], "selector": {"component": "controller"}}})
        labels = {"app": "metallb", "component": "controller"}
        self.apps.create_namespaced_deployment(NS, {
            "metadata": {"name": "controller", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "controller",
                                                           "image": "quay.io/metallb/controller:v0.14.9",
                                                           "ports": [{"containerPort": 9443}]}]}}}})

    def configure(self, **kwargs: Any) -> None:
        self.admission.create_validating_webhook_configuration(webhook_configuration(**kwargs))

    def create_pool(self, name: str) -> Any:
        return self.custom.create_namespaced_custom_object("metallb.io", "v1beta1", NS, "ipaddresspools", pool(name))

    def refusal(self, name: str) -> ApiException:
        with pytest.raises(ApiException) as exc:
            self.create_pool(name)
        return exc.value

    def add_node(self) -> None:
        self.core.create_node({"metadata": {"name": "w-1", "labels": {"kubernetes.io/hostname": "w-1"}},
                               "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                                          "addresses": [{"type": "InternalIP", "address": "10.10.0.11"}],
                                          "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                                          "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}})
        eventually(lambda: self.apps.read_namespaced_deployment("controller", NS),
                   lambda d: (d.status.ready_replicas or 0) == 1)

    def expected_500(self) -> str:
        return (f'Internal error occurred: failed calling webhook "{HOOK}": failed to call webhook: Post '
                f'"https://metallb-webhook-service.{NS}.svc:443{PATH}?timeout=10s": dial tcp '
                f'{self.service.spec.cluster_ip}:443: connect: connection refused')


@pytest.fixture
def metallb(tmp_path: Path) -> Iterator[MetalLB]:
    controllers = with_controllers(delays=Delays(pod_start_s=0.1, tick_s=0.02))
    with run_k8s(controllers=controllers) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "config")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        yield MetalLB(server, api)


def test_pool_creation_fails_until_the_webhook_pods_are_ready(metallb: MetalLB, tmp_path: Path) -> None:
    metallb.configure()
    error = metallb.refusal("first-pool")
    status = json.loads(error.body)
    assert error.status == 500
    assert (status["reason"], status["code"]) == ("InternalError", 500)
    assert status["message"] == metallb.expected_500()
    assert status["details"]["causes"] == [{"message": metallb.expected_500().removeprefix(
        "Internal error occurred: ")}]
    if KUBECTL is not None:
        env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "config")}
        result = subprocess.run([KUBECTL, f"--cache-dir={tmp_path / 'cache'}", "-n", NS, "create", "-f", "-"],
                                input=json.dumps(pool("first-pool")), env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 1
        assert result.stderr.strip() == (f'Error from server (InternalError): error when creating "STDIN": '
                                         f'{metallb.expected_500()}')
    assert metallb.custom.list_namespaced_custom_object("metallb.io", "v1beta1", NS, "ipaddresspools")["items"] == []
    metallb.add_node()
    created = metallb.create_pool("first-pool")
    assert created["metadata"]["name"] == "first-pool"


def test_failure_policy_ignore_lets_the_pool_through(metallb: MetalLB) -> None:
    metallb.configure(failure_policy="Ignore")
    assert metallb.create_pool("first-pool")["metadata"]["name"] == "first-pool"


def test_a_registered_refusal_is_answered_with_the_denial_format(metallb: MetalLB) -> None:
    metallb.configure()
    metallb.add_node()

    def overlapping(request: dict[str, Any]) -> tuple[bool, str]:
        if request["object"]["metadata"]["name"] == "first-pool":
            return True, ""
        return False, "CIDR \"10.10.0.200/29\" in pool \"second-pool\" overlaps with already defined CIDR " \
                      "\"10.10.0.200/29\""

    metallb.server.call(lambda: webhooks.of(metallb.server.store).answer(HOOK, overlapping))
    metallb.create_pool("first-pool")
    error = metallb.refusal("second-pool")
    status = json.loads(error.body)
    assert (error.status, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (f'admission webhook "{HOOK}" denied the request: CIDR "10.10.0.200/29" in pool '
                                 f'"second-pool" overlaps with already defined CIDR "10.10.0.200/29"')


def test_a_webhook_whose_rules_do_not_match_is_not_consulted(metallb: MetalLB) -> None:
    metallb.configure(resource="l2advertisements")  # unreachable and failing closed, but not for pools
    assert metallb.create_pool("first-pool")["metadata"]["name"] == "first-pool"
    with pytest.raises(ApiException) as exc:
        metallb.custom.create_namespaced_custom_object("metallb.io", "v1beta1", NS, "l2advertisements", {
            "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "l2"}})
    assert exc.value.status == 500
