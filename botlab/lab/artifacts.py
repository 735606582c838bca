"""The lab's stand-ins for the upstream files botlab pins (botlab/artifacts.py): the same kinds
and names, small, written here (upstream text is never copied into the repository), served
over HTTP on loopback at `<MAAS base>/_lab/artifacts/<name>`; the lab's generated inventory
points `artifacts.<name>` at them with their sha256. `POST /_lab/artifacts {"serving": false}`
takes the server offline (answers 503), so tests can show a run from botlab's cache alone."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from botlab.lab.control_api import json_body, loopback_only

# NVIDIA/k8s-device-plugin's static manifest is one DaemonSet in kube-system with this name,
# selector, toleration, image and hostPath; the stand-in keeps those facts and nothing else.
DEVICE_PLUGIN = """\
# botlab virtual lab: stand-in for NVIDIA/k8s-device-plugin v0.20.0 deployments/static/nvidia-device-plugin.yml
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: nvidia-device-plugin-daemonset
  namespace: kube-system
spec:
  selector:
    matchLabels:
      name: nvidia-device-plugin-ds
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        name: nvidia-device-plugin-ds
    spec:
      tolerations:
      - key: nvidia.com/gpu
        operator: Exists
        effect: NoSchedule
      priorityClassName: system-node-critical
      containers:
      - name: nvidia-device-plugin-ctr
        image: nvcr.io/nvidia/k8s-device-plugin:v0.20.0
        volumeMounts:
        - name: kubelet-device-plugins-dir
          mountPath: /var/lib/kubelet/device-plugins
      volumes:
      - name: kubelet-device-plugins-dir
        hostPath:
          path: /var/lib/kubelet/device-plugins
          type: Directory
"""

STAND_INS: dict[str, str] = {"nvidia_device_plugin": DEVICE_PLUGIN}


def inventory_section(base_url: str) -> dict[str, dict[str, str]]:
    """The generated inventory's `artifacts:` (base_url: the MAAS emulator's, no trailing /)."""
    return {name: {"url": f"{base_url}/_lab/artifacts/{name}",
                   "sha256": hashlib.sha256(text.encode()).hexdigest()} for name, text in STAND_INS.items()}


class ArtifactServer:
    def __init__(self) -> None:
        self.serving = True
        self.requests = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_lab/artifacts/{name}", self.get), web.post("/_lab/artifacts", self.switch),
                web.get("/_lab/artifacts", self.state)]

    async def get(self, request: web.Request) -> web.Response:
        loopback_only(request)
        self.requests += 1
        if not self.serving:
            raise web.HTTPServiceUnavailable(text="the lab's artifact server is offline")
        text = STAND_INS.get(request.match_info["name"])
        if text is None:
            raise web.HTTPNotFound(text=f"no artifact {request.match_info['name']}")
        return web.Response(body=text.encode(), content_type="application/yaml")

    async def state(self, request: web.Request) -> web.Response:
        loopback_only(request)
        return web.json_response(self._state())

    async def switch(self, request: web.Request) -> web.Response:
        loopback_only(request)
        data: Any = await json_body(request)
        if not isinstance(data, dict) or not isinstance(data.get("serving"), bool):
            raise web.HTTPBadRequest(text='body: {"serving": true | false}')
        self.serving = data["serving"]
        return web.json_response(self._state())

    def _state(self) -> dict[str, Any]:
        return {"serving": self.serving, "requests": self.requests, "artifacts": sorted(STAND_INS)}
