"""botlab's Kubernetes driver (the official client's dynamic client) against the lab's API
server: server-side apply of an upstream manifest under botlab's field manager (twice: nothing
changes), botlab's adjustments as a strategic-merge patch under its own manager (the applied
fields untouched), labels, create/get/delete, and an API error reported with the API's message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from botlab.drivers.kubernetes import KubeDriver
from botlab.errors import StageError
from botlab.lab.artifacts import DEVICE_PLUGIN
from botlab.lab.k8s import run_k8s
from botlab.stages import gpu_cluster

pytestmark = pytest.mark.lab


@pytest.fixture()
def kube(tmp_path: Path) -> Iterator[KubeDriver]:
    with run_k8s() as server:
        driver = KubeDriver(server.write_kubeconfig(tmp_path / "kubeconfig"))
        try:
            yield driver
        finally:
            asyncio.run(driver.close())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_apply_twice_changes_nothing_and_botlabs_patch_keeps_the_upstream_fields(kube: KubeDriver) -> None:
    daemonset = gpu_cluster.device_plugin_daemonset(DEVICE_PLUGIN.encode())
    first = run(kube.apply(daemonset))
    again = run(kube.apply(daemonset))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    managers = {(m["manager"], m["operation"]) for m in again["metadata"]["managedFields"]}
    assert ("botlab", "Apply") in managers

    patched = run(kube.patch("apps/v1", "DaemonSet", "nvidia-device-plugin-daemonset", "kube-system",
                             gpu_cluster.adjustments("nvidia"), manager=gpu_cluster.ADJUST_MANAGER))
    spec = patched["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and spec["runtimeClassName"] == "nvidia"
    assert spec["tolerations"] == yaml.safe_load(DEVICE_PLUGIN)["spec"]["template"]["spec"]["tolerations"]
    assert (gpu_cluster.ADJUST_MANAGER, "Update") in {(m["manager"], m["operation"])
                                                     for m in patched["metadata"]["managedFields"]}
    # Re-applying the upstream manifest leaves botlab's adjustments in place (another manager's fields).
    after = run(kube.apply(daemonset))
    assert after["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_runtime_class_labels_pods_and_errors(kube: KubeDriver) -> None:
    applied = run(kube.apply({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"},
                              "handler": "nvidia"}))
    assert applied["handler"] == "nvidia"
    run(kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-01"}}))
    labelled = run(kube.label_node("gpu-01", {"nvidia.com/gpu.present": "true"}))
    assert labelled["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert run(kube.get("v1", "Node", "gpu-09")) is None
    assert run(kube.delete("v1", "Node", "gpu-01")) is True
    assert run(kube.delete("v1", "Node", "gpu-01")) is False
    with pytest.raises(StageError, match=r'422 RuntimeClass.node.k8s.io "Bad_Name" is invalid'):
        run(kube.apply({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "Bad_Name"},
                        "handler": "nvidia"}))
