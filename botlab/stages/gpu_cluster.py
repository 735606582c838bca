"""GPUs schedulable on the new cluster (the gpu stage's part that talks to the Kubernetes API).

- GPU Nodes get the label `nvidia.com/gpu.present=true` (botlab's own, merge-patched).
- A RuntimeClass `nvidia` is created only where the NVIDIA runtime is not the hosts' default
  (the ssh methods; the containerd charm makes its runtime the default), with its handler
  exactly the runtime name configured on the hosts, which the gpu stage has just read there: a
  handler that names no configured runtime is the field's most reported GPU failure.
- The NVIDIA device plugin's upstream static manifest (a pinned artifact, from botlab's cache)
  is applied as it is by server-side apply; botlab's adjustments (a nodeSelector for the GPU
  Nodes, the runtimeClassName) are a separate strategic-merge patch under its own field manager,
  never an edit of the upstream text.
- Done when every GPU Node advertises `nvidia.com/gpu` equal to its GPU count; verify also
  runs a smoke Pod requesting one GPU, which must land on a GPU Node, then removes it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from botlab.errors import StageError
from botlab.pipeline import Check

if TYPE_CHECKING:
    from botlab.drivers.kubernetes import KubeDriver

GPU_LABEL = "nvidia.com/gpu.present"
RESOURCE = "nvidia.com/gpu"
RUNTIME_CLASS = "nvidia"
ADJUST_MANAGER = "botlab-gpu"
SMOKE_IMAGE = "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"


def device_plugin_daemonset(manifest: bytes) -> dict[str, Any]:
    """The DaemonSet in the device plugin's manifest (its only object upstream)."""
    docs = [d for d in yaml.safe_load_all(manifest) if isinstance(d, dict)]
    found = [d for d in docs if d.get("kind") == "DaemonSet"]
    if len(found) != 1:
        raise StageError(f"the device plugin manifest holds {len(found)} DaemonSets, expected 1",
                         system="artifacts", where="nvidia_device_plugin")
    return found[0]


def adjustments(runtime_class: str | None) -> dict[str, Any]:
    """botlab's patch over the upstream DaemonSet: run on GPU Nodes only, in the NVIDIA runtime."""
    # null removes a runtimeClassName an earlier method set (strategic merge: null deletes)
    return {"spec": {"template": {"spec": {"nodeSelector": {GPU_LABEL: "true"}, "runtimeClassName": runtime_class}}}}


def advertised(node: Mapping[str, Any]) -> int:
    value = ((node.get("status") or {}).get("allocatable") or {}).get(RESOURCE, "0")
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


async def ensure_schedulable(kube: KubeDriver, manifest: bytes, counts: Mapping[str, int], runtime_class: str | None,
                             *, timeout: float, poll_s: float = 1.0) -> None:
    """Label the GPU Nodes, create the RuntimeClass (when given: its handler), apply the device
    plugin and botlab's patch, then wait until every GPU Node advertises its count."""
    for host in sorted(counts):
        node = await kube.get("v1", "Node", host)
        if node is None:
            raise StageError(f"no Node {host} in the cluster", system="Kubernetes", where=kube.server,
                             hint="its kubelet has not registered: see `kubectl get nodes` and the unit's status")
        if (node.get("metadata", {}).get("labels") or {}).get(GPU_LABEL) != "true":
            await kube.label_node(host, {GPU_LABEL: "true"})
    if runtime_class:
        await kube.apply({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                          "metadata": {"name": RUNTIME_CLASS}, "handler": runtime_class})
    else:  # the runtime is the default: a class left from an ssh method would name a runtime gone
        await kube.delete("node.k8s.io/v1", "RuntimeClass", RUNTIME_CLASS)
    daemonset = device_plugin_daemonset(manifest)
    await kube.apply(daemonset)
    meta = daemonset["metadata"]
    await kube.patch("apps/v1", "DaemonSet", meta["name"], meta.get("namespace"),
                     adjustments(RUNTIME_CLASS if runtime_class else None), manager=ADJUST_MANAGER)
    deadline = time.monotonic() + timeout
    while True:
        short = await missing(kube, counts)
        if not short:
            return
        if time.monotonic() >= deadline:
            raise StageError(f"timed out after {timeout}s waiting for GPU Nodes to advertise {RESOURCE}: "
                             + "; ".join(short), system="Kubernetes", operation="device plugin", where=kube.server,
                             hint=f"see `kubectl -n {meta.get('namespace', 'default')} get pods` and their events")
        await asyncio.sleep(poll_s)


async def missing(kube: KubeDriver, counts: Mapping[str, int]) -> list[str]:
    """GPU Nodes not advertising their count, as `node: advertises N, expected M`."""
    out = []
    for host, expected in sorted(counts.items()):
        node = await kube.get("v1", "Node", host)
        got = advertised(node) if node is not None else 0
        if got != expected:
            out.append(f"{host}: advertises {got} {RESOURCE}, expected {expected}")
    return out


async def smoke(kube: KubeDriver, gpu_nodes: set[str], runtime_class: str | None, *, timeout: float,
                poll_s: float = 0.5) -> Check:
    """A Pod requesting one GPU must be scheduled on a GPU Node; it is removed either way."""
    name = f"botlab-gpu-smoke-{secrets.token_hex(3)}"
    spec: dict[str, Any] = {"restartPolicy": "Never",
                            "tolerations": [{"key": RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
                            "containers": [{"name": "smoke", "image": SMOKE_IMAGE, "command": ["nvidia-smi", "-L"],
                                            "resources": {"limits": {RESOURCE: 1}}}]}
    if runtime_class:
        spec["runtimeClassName"] = RUNTIME_CLASS
    await kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                       "spec": spec})
    try:
        deadline = time.monotonic() + timeout
        while True:
            pod = await kube.get("v1", "Pod", name, "default") or {}
            node = (pod.get("spec") or {}).get("node_name") or (pod.get("spec") or {}).get("nodeName")
            if node:
                ok = node in gpu_nodes
                return Check("smoke Pod on a GPU Node", ok, f"{name} scheduled on {node}"
                             + ("" if ok else f", not a GPU Node ({', '.join(sorted(gpu_nodes))})"))
            if time.monotonic() >= deadline:
                why = "; ".join(c.get("message", "") for c in (pod.get("status") or {}).get("conditions") or []
                                if c.get("type") == "PodScheduled" and c.get("status") == "False")
                return Check("smoke Pod on a GPU Node", False, f"{name} not scheduled within {timeout}s"
                             + (f": {why}" if why else ""))
            await asyncio.sleep(poll_s)
    finally:
        await kube.delete("v1", "Pod", name, "default")
