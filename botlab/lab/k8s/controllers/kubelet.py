"""The kubelets and the NVIDIA device plugin of the lab's cluster (kubernetes/kubernetes at tag
v1.31.x unless said otherwise).

**Kubelet** (pkg/kubelet: kubelet.go, kuberuntime/kuberuntime_manager.go,
kuberuntime_sandbox.go, status/, lifecycle/predicate.go; the runtime answers as containerd
v1.7's CRI plugin, pkg/cri/server/sandbox_run.go and helpers.go getSandboxRuntime): on a
node whose Ready condition is True, a bound pod first gets startTime, hostIP (the node's
InternalIP), conditions PodReadyToStartContainers False, Initialized True, Ready and
ContainersReady False (ContainersNotReady) and container state waiting ContainerCreating;
`pod_start_s` later it is Running: podIP (host network pods: the node's address), Ready and
ContainersReady True, containerStatuses with containerID, the image as containerd reports it
(`docker.io/library/` added to short names), imageID, ready, started, state.running,
restartCount 0, and the Pulled / Created / Started events. A pod whose RuntimeClass handler
(or, without one, the node's default handler) is not among the handlers `runtimes_of(node)`
names never starts: it stays Pending, ContainerCreating, with the Warning event
FailedCreatePodSandBox `Failed to create pod sandbox: rpc error: code = Unknown desc = failed
to get sandbox runtime: no runtime for "nvidia" is configured` (it starts once the handler is
configured); a RuntimeClass deleted after admission gives `Failed to create pod sandbox:
runtimeclass.node.k8s.io "x" not found`. A pod bound (spec.nodeName set by its author) to a
node without room is rejected by kubelet admission: phase Failed, reason `OutOf<resource>`,
message `Pod was rejected: Node didn't have enough resource: <r>, requested: N, used: N,
capacity: N`.

**NVIDIA device plugin** (NVIDIA/k8s-device-plugin v0.20.0 cmd/nvidia-device-plugin,
internal/plugin/factory.go getResourceManagers; kubelet pkg/kubelet/cm/devicemanager
manager.go GetCapacity / PluginDisconnected / endpointStopGracePeriod and
pkg/kubelet/nodestatus/setters.go): while a pod whose container image starts with
`nvcr.io/nvidia/k8s-device-plugin` is Running and ready on a node, the node's
status.capacity and status.allocatable carry `nvidia.com/gpu: "<gpus_of(node)>"`. The plugin
sees GPUs only in an NVIDIA runtime on a node that has some: when `runtimes_of(node)` is known
and the handler the pod runs in (its RuntimeClass's, else the node's default) does not contain
"nvidia", or `gpus_of(node)` is 0, NVML cannot be loaded and the plugin exits 1 (its
fail-on-init-error flag defaults to true): the pod is Running but its container is in
CrashLoopBackOff (lastState terminated, exit code 1, reason Error; a BackOff event), and the
log it would print (`nvml init failed: ERROR_LIBRARY_NOT_FOUND` ...) is kept for
`container_log()`. When the plugin goes away, allocatable drops to "0" at once (its devices
are marked unhealthy) and capacity keeps the count; after the device manager's 5-minute stop
grace period (`device_plugin_grace_s`) capacity is "0" too.

"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from botlab.lab.k8s.controllers.base import (
    ControllerBase,
)
from botlab.lab.k8s.controllers.objects import (
    DEVICE_PLUGIN_IMAGE,
    GPU,
    POD_NETWORK,
    _deleting,
    _meta,
    _name,
    _namespace,
    _rfc3339,
    _spec,
    _status,
    _uid,
    condition,
    node_address,
    node_ready,
    pod_requests,
    pod_terminated,
)
from botlab.lab.k8s.controllers.scheduling import (
    node_infos,
)
from botlab.lab.k8s.store import Obj


def _image_ref(image: str) -> str:
    """The image as containerd reports it: docker.io/library/ for short names, :latest when no tag."""
    name = image
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    last = name.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        name += ":latest"
    return name


def _image_id(image: str) -> str:
    ref = _image_ref(image)
    repo = ref.split("@", 1)[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


class Kubelet(ControllerBase):
    """The kubelets' pass (`_kubelet`) and the NVIDIA device plugin's (`_device_plugin`)."""

    def _runtime(self, node: str) -> tuple[set[str], str] | None:
        if self.runtimes_of is None:
            return None
        if ("runtimes", node) not in self._facts:
            self._facts[("runtimes", node)] = self.runtimes_of(node)
        found = self._facts[("runtimes", node)]
        if found is None:
            return None
        if isinstance(found, tuple):
            handlers, default = found
            return set(handlers), str(default or "")
        return set(found), ""

    def _gpus(self, node: str) -> int:
        if self.gpus_of is None:
            return 0
        if ("gpus", node) not in self._facts:
            self._facts[("gpus", node)] = int(self.gpus_of(node))
        return int(self._facts[("gpus", node)])

    def _handler(self, pod: Obj) -> tuple[str | None, str]:
        """The pod's runtime handler (kuberuntime LookupRuntimeHandler): "" for the default, and
        the error when its RuntimeClass is gone."""
        class_name = _spec(pod).get("runtimeClassName")
        if not class_name:
            return "", ""
        rc = self.store.find(self.runtimeclasses, None, class_name)
        if rc is None:
            return None, f'runtimeclass.node.k8s.io "{class_name}" not found'
        return str(rc.get("handler") or ""), ""

    def _pod_ip(self, node: str) -> str:
        """An address from the node's /24 of the pod network, not taken by a pod."""
        if node not in self._node_index:
            self._node_index[node] = len(self._node_index) % 256
        prefix = f"{POD_NETWORK}.{self._node_index[node]}."
        for host in range(2, 255):
            if prefix + str(host) not in self._ips_taken:
                self._ips_taken.add(prefix + str(host))
                return prefix + str(host)
        return prefix + "254"

    def _kubelet(self, now: float) -> bool:
        """Each Ready node's kubelet: admit, start after pod_start_s, report status."""
        nodes = {_name(n): n for n in self._list(self.nodes)}
        pods = self._list(self.pods)
        infos = node_infos(list(nodes.values()), [])
        self._ips_taken = {str(_status(p).get("podIP")) for p in pods if _status(p).get("podIP")}
        changed = False
        live = set()
        for pod in sorted(pods, key=lambda p: (_meta(p).get("creationTimestamp", ""), _name(p))):
            live.add(_uid(pod))
            node_name = _spec(pod).get("nodeName")
            if not node_name or node_name not in nodes or pod_terminated(pod) or _deleting(pod):
                continue
            node = nodes[node_name]
            if not node_ready(node):
                # The kubelet is not posting; the node lifecycle controller marks its pods not
                # ready (nodelifecycle MarkPodsNotReady).
                ready = condition(pod, "Ready")
                if ready is not None and ready.get("status") == "True":
                    status = copy.deepcopy(_status(pod))
                    for c in status.get("conditions") or []:
                        if c.get("type") == "Ready":
                            c.update({"status": "False", "lastTransitionTime": _rfc3339(now)})
                    changed = self._write_status(self.pods, pod, status) or changed
                continue
            info = infos[node_name]
            if not _status(pod).get("startTime"):
                # Kubelet admission (lifecycle/predicate.go): the node's resources.
                short = info.insufficient(pod_requests(_spec(pod)))
                if short:
                    changed = self._reject(pod, node_name, short[0], now) or changed
                    continue
            info.add(pod)
            if self._kubelet_pod(pod, node, now):
                changed = True
        for uid in list(self._kubelet_since):
            if uid not in live:
                del self._kubelet_since[uid]
        return changed

    def _reject(self, pod: Obj, node_name: str, short: tuple[str, int, int, int], now: float) -> bool:
        """kubelet rejectPod: phase Failed, reason OutOf<resource> (lifecycle/predicate.go)."""
        resource, requested, used, capacity = short
        reason = f"OutOf{resource}"
        message = f"Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, " \
                  f"capacity: {capacity}"
        rejected = {**copy.deepcopy(_status(pod)), "phase": "Failed", "reason": reason,
                    "message": f"Pod was rejected: {message}", "startTime": _rfc3339(now)}
        changed = self._write_status(self.pods, pod, rejected)
        if changed:
            self._record(pod, "Pod", "v1", "Warning", reason, message, component="kubelet", host=node_name)
        return changed

    def _kubelet_pod(self, pod: Obj, node: Obj, now: float) -> bool:
        uid = _uid(pod)
        node_name = _name(node)
        since = self._kubelet_since.setdefault(uid, now)
        handler, lookup_error = self._handler(pod)
        error = ""
        if lookup_error:
            error = f"Failed to create pod sandbox: {lookup_error}"
        else:
            runtimes = self._runtime(node_name)
            if runtimes is not None:
                configured, default = runtimes
                effective = handler or default
                if effective and effective not in configured:
                    error = ("Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox "
                             f'runtime: no runtime for "{effective}" is configured')
        running = _status(pod).get("phase") == "Running"
        if running:
            return self._resync_ready(pod, now)
        if error or now - since < self.delays.pod_start_s:
            changed = self._write_status(self.pods, pod, self._waiting_status(pod, node, now))
            if error:
                self._record(pod, "Pod", "v1", "Warning", "FailedCreatePodSandBox", error, component="kubelet",
                             host=node_name, once=True)
            return changed
        crash = self._plugin_failure(pod, node_name, handler or "")
        new = self._running_status(pod, node, now, crash)
        if not self._write_status(self.pods, pod, new):
            return False
        for c in _spec(pod).get("containers") or []:
            path = f"spec.containers{{{c.get('name', '')}}}"
            self._record(pod, "Pod", "v1", "Normal", "Pulled",
                         f'Container image "{c.get("image", "")}" already present on machine', component="kubelet",
                         host=node_name, field_path=path)
            self._record(pod, "Pod", "v1", "Normal", "Created", f"Created container {c.get('name', '')}",
                         component="kubelet", host=node_name, field_path=path)
            self._record(pod, "Pod", "v1", "Normal", "Started", f"Started container {c.get('name', '')}",
                         component="kubelet", host=node_name, field_path=path)
            if crash is not None and c.get("name") == crash[0]:
                self._record(pod, "Pod", "v1", "Warning", "BackOff",
                             f"Back-off restarting failed container {crash[0]} in pod "
                             f"{_name(pod)}_{_namespace(pod)}({uid})", component="kubelet", host=node_name,
                             field_path=path)
        return True

    def _resync_ready(self, pod: Obj, now: float) -> bool:
        """A running pod's Ready conditions as its containers say (after its node was not ready)."""
        statuses = _status(pod).get("containerStatuses") or []
        not_ready = [str(s.get("name", "")) for s in statuses if not s.get("ready")]
        ready = condition(pod, "Ready")
        if ready is None or (ready.get("status") == "True") == (not not_ready):
            return False
        status = copy.deepcopy(_status(pod))
        status["conditions"] = self._pod_conditions(pod, now, sandbox=True, ready=not not_ready, not_ready=not_ready)
        return self._write_status(self.pods, pod, status)

    @staticmethod
    def _pod_conditions(pod: Obj, now: float, *, sandbox: bool, ready: bool,
                        not_ready: list[str]) -> list[dict[str, Any]]:
        """The kubelet's pod conditions (status/generate.go), transition times kept when unchanged."""
        before = {c.get("type"): c for c in _status(pod).get("conditions") or []}
        stamp = _rfc3339(now)

        def cond(type_: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
            c: dict[str, Any] = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None,
                                 "lastTransitionTime": stamp}
            old = before.get(type_)
            if old is not None and old.get("status") == c["status"]:
                c["lastTransitionTime"] = old.get("lastTransitionTime", stamp)
            if not ok and reason:
                c["reason"], c["message"] = reason, message
            return c

        unready = f"containers with unready status: [{' '.join(not_ready)}]"
        out = [cond("PodReadyToStartContainers", sandbox), cond("Initialized", True),
               cond("Ready", ready, "ContainersNotReady", unready),
               cond("ContainersReady", ready, "ContainersNotReady", unready)]
        scheduled = before.get("PodScheduled")
        out.append(scheduled if scheduled is not None else cond("PodScheduled", True))
        return out

    def _base_status(self, pod: Obj, node: Obj, now: float) -> dict[str, Any]:
        status = copy.deepcopy(_status(pod))
        host_ip = node_address(node)
        status.update({"phase": "Pending", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}] if host_ip else [],
                       "startTime": status.get("startTime") or _rfc3339(now)})
        if not host_ip:
            status.pop("hostIP")
            status.pop("hostIPs")
        return status

    def _waiting_status(self, pod: Obj, node: Obj, now: float) -> dict[str, Any]:
        status = self._base_status(pod, node, now)
        names = [c.get("name", "") for c in _spec(pod).get("containers") or []]
        status["conditions"] = self._pod_conditions(pod, now, sandbox=False, ready=False, not_ready=names)
        status["containerStatuses"] = [
            {"image": c.get("image", ""), "imageID": "", "lastState": {}, "name": c.get("name", ""), "ready": False,
             "restartCount": 0, "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
            for c in _spec(pod).get("containers") or []]
        if _spec(pod).get("initContainers"):
            status["initContainerStatuses"] = [
                {"image": c.get("image", ""), "imageID": "", "lastState": {}, "name": c.get("name", ""),
                 "ready": False, "restartCount": 0, "started": False,
                 "state": {"waiting": {"reason": "PodInitializing"}}} for c in _spec(pod)["initContainers"]]
        return status

    def _running_status(self, pod: Obj, node: Obj, now: float, crash: tuple[str, str] | None) -> dict[str, Any]:
        spec = _spec(pod)
        status = self._base_status(pod, node, now)
        status["phase"] = "Running"
        ip = status.get("hostIP", "") if spec.get("hostNetwork") else self._pod_ip(_name(node))
        if ip:
            status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
        stamp = _rfc3339(now)

        def container(c: dict[str, Any], state: dict[str, Any], ready: bool, **more: Any) -> dict[str, Any]:
            image = str(c.get("image", ""))
            digest = hashlib.sha256(f"{_uid(pod)}/{c.get('name')}".encode()).hexdigest()
            return {"containerID": f"containerd://{digest}", "image": _image_ref(image), "imageID": _image_id(image),
                    "lastState": more.get("last", {}), "name": c.get("name", ""), "ready": ready,
                    "restartCount": more.get("restarts", 0), "started": ready, "state": state}

        statuses = []
        not_ready = []
        for c in spec.get("containers") or []:
            if crash is not None and c.get("name") == crash[0]:
                not_ready.append(crash[0])
                backoff = int(self.delays.crash_backoff_s)
                statuses.append(container(
                    c, {"waiting": {"reason": "CrashLoopBackOff",
                                    "message": f"back-off {backoff}s restarting failed container={crash[0]} "
                                               f"pod={_name(pod)}_{_namespace(pod)}({_uid(pod)})"}}, False,
                    last={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": stamp, "finishedAt": stamp,
                                         "containerID": f"containerd://{hashlib.sha256(_uid(pod).encode()).hexdigest()}"}},
                    restarts=1))
                if c.get("terminationMessagePolicy") == "FallbackToLogsOnError":
                    statuses[-1]["lastState"]["terminated"]["message"] = crash[1]
            else:
                statuses.append(container(c, {"running": {"startedAt": stamp}}, True))
        status["containerStatuses"] = statuses
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [
                container(c, {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp,
                                             "finishedAt": stamp}}, False) for c in spec["initContainers"]]
        status["conditions"] = self._pod_conditions(pod, now, sandbox=True, ready=not not_ready, not_ready=not_ready)
        return status

    # --- NVIDIA device plugin -------------------------------------------------------------

    def _plugin_failure(self, pod: Obj, node: str, handler: str) -> tuple[str, str] | None:
        """Whether the device plugin in `pod` fails to start on `node`: (container, its log)."""
        plugin = next((c for c in _spec(pod).get("containers") or []
                       if str(c.get("image", "")).startswith(DEVICE_PLUGIN_IMAGE)), None)
        if plugin is None:
            return None
        runtimes = self._runtime(node)
        effective = handler or (runtimes[1] if runtimes is not None else "")
        # Unknown runtimes, or an unknown default handler: taken as able to see the GPUs.
        sees_gpus = self._gpus(node) > 0 and (runtimes is None or not effective or "nvidia" in effective.lower())
        name = str(plugin.get("name", ""))
        key = (_namespace(pod), _name(pod), name)
        if sees_gpus:
            self._logs[key] = (f"Starting FS watcher for /var/lib/kubelet/device-plugins\nStarting OS watcher.\n"
                               f"Starting Plugins.\nLoading configuration.\nDetected platform: nvml\n"
                               f"Using device discovery strategy: nvml\n"
                               f"Registered device plugin for '{GPU}' with Kubelet\n")
            return None
        text = ("Starting FS watcher for /var/lib/kubelet/device-plugins\nStarting OS watcher.\nStarting Plugins.\n"
                "Loading configuration.\nUpdating config with default resource matching patterns.\n"
                "Retrieving plugins.\nDetected platform: unknown\nUnsupported platform detected; defaulting to nvml\n"
                "Using device discovery strategy: nvml\n"
                "Failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND.\n"
                "If this is a GPU node, did you set the docker default runtime to `nvidia`?\n"
                "You can check the prerequisites at: https://github.com/NVIDIA/k8s-device-plugin#prerequisites\n"
                "You can learn how to set the runtime at: https://github.com/NVIDIA/k8s-device-plugin#quick-start\n"
                "If this is not a GPU node, you should set up a toleration or nodeSelector to only deploy this "
                "plugin on GPU nodes\n"
                "error starting plugins: error getting plugins: unable to create plugins: failed to construct "
                "resource managers: nvml init failed: ERROR_LIBRARY_NOT_FOUND\n")
        self._logs[key] = text
        return name, text

    def _device_plugin(self, now: float) -> bool:
        """What each kubelet's device manager puts in its node's status for nvidia.com/gpu."""
        healthy: set[str] = set()
        for pod in self._list(self.pods):
            node = _spec(pod).get("nodeName")
            if not node or _status(pod).get("phase") != "Running" or _deleting(pod):
                continue
            for c in _spec(pod).get("containers") or []:
                if not str(c.get("image", "")).startswith(DEVICE_PLUGIN_IMAGE):
                    continue
                cs = next((s for s in _status(pod).get("containerStatuses") or [] if s.get("name") == c.get("name")),
                          None)
                if cs is not None and cs.get("ready") and "running" in (cs.get("state") or {}):
                    healthy.add(str(node))
        changed = False
        for node in self._list(self.nodes):
            name = _name(node)
            if not node_ready(node):
                continue  # its kubelet is not posting status
            status = copy.deepcopy(_status(node))
            capacity = dict(status.get("capacity") or {})
            allocatable = dict(status.get("allocatable") or {})
            if name in healthy:
                count = str(self._gpus(name))
                capacity[GPU] = allocatable[GPU] = count
                self._unregistered.pop(name, None)
            elif GPU in capacity:
                allocatable[GPU] = "0"
                since = self._unregistered.setdefault(name, now)
                if now - since >= self.delays.device_plugin_grace_s:
                    capacity[GPU] = "0"
            else:
                continue
            status["capacity"], status["allocatable"] = capacity, allocatable
            if self._write_status(self.nodes, node, status):
                changed = True
        return changed
