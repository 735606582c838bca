"""The lab's Kubernetes clusters: what Charmed Kubernetes runs once Juju deployed it.

When a model's kubernetes-control-plane unit starts, its kube-apiserver comes up: the lab serves
a K8sApiServer for that model at the unit's address, port 6443, the address the
`get-kubeconfig` action names (botlab/lab/juju/actions.py), with the model's cluster CA and
admin token (`cluster_secrets`). With lab hosts the socket is made inside the control-plane
host's network namespace, so the server answers exactly where a real one would; without hosts
the machines' addresses are on loopback and it binds there. When a kubernetes-control-plane or
kubernetes-worker unit starts, its kubelet registers the machine's Node (name: the hostname,
InternalIP, the usual labels). The model's removal stops its server.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import socket
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botlab.lab.juju import catalogue
from botlab.lab.juju.actions import cluster_secrets
from botlab.lab.k8s.controllers import with_controllers
from botlab.lab.k8s.server import K8sApiServer, make_certs
from botlab.lab.thread import ServerThread, Site

if TYPE_CHECKING:
    from botlab.lab.hosts.manager import HostManager
    from botlab.lab.juju.emulator import JujuEmulator
    from botlab.lab.juju.state import ModelState

log = logging.getLogger("botlab.lab.k8s")

API_PORT = 6443
LB_PORT = 443
CONTROL_PLANE = "kubernetes-control-plane"
LOAD_BALANCER = "kubeapi-load-balancer"
KUBELET_CHARMS = (CONTROL_PLANE, "kubernetes-worker")
KUBERNETES_VERSION = "1.31.4"  # what the 1.31/stable channel deploys in the lab


def kubernetes_version(config: Mapping[str, Any]) -> str:
    """The version the charm's snap `channel` (`1.31/stable`) installs in the lab."""
    track = str(config.get("channel") or "").split("/")[0]
    return KUBERNETES_VERSION if track in ("", "latest", KUBERNETES_VERSION.rsplit(".", 1)[0]) else f"{track}.0"


def taints(text: str) -> list[dict[str, str]]:
    """`register-with-taints` (`key[=value]:Effect ...`, kubelet's --register-with-taints) as Node taints."""
    out = []
    for item in text.split():
        spec, _, effect = item.rpartition(":")
        key, _, value = spec.partition("=")
        out.append({"key": key, "effect": effect, **({"value": value} if value else {})})
    return out


def node_object(hostname: str, address: str, application: str, charm: str, now: str,
                config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Node a kubelet registers for its machine (Charmed Kubernetes labels it with its
    application; control-plane nodes get the control-plane role and the charm's
    `register-with-taints`, by default node-role.kubernetes.io/control-plane:NoSchedule)."""
    config = config or {}
    version = kubernetes_version(config)
    labels = {"kubernetes.io/hostname": hostname, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", "juju-application": application}
    if charm == CONTROL_PLANE:
        labels["node-role.kubernetes.io/control-plane"] = ""
    ident = hashlib.md5(hostname.encode()).hexdigest()  # an identifier, not security
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastHeartbeatTime": now, "lastTransitionTime": now}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": hostname, "labels": labels},
        "spec": {"taints": taints(str(config.get("register-with-taints") or ""))} if charm == CONTROL_PLANE else {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": hostname}],
            "conditions": [ready],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "nodeInfo": {"kubeletVersion": f"v{version}", "kubeProxyVersion": f"v{version}",
                         "containerRuntimeVersion": "containerd://1.7.22", "operatingSystem": "linux",
                         "architecture": "amd64", "osImage": "Ubuntu 22.04.5 LTS",
                         "kernelVersion": "5.15.0-126-generic",
                         "machineID": ident, "systemUUID": str(uuid.UUID(ident)), "bootID": ident[::-1]},
        },
    }


def host_runtimes(root: Path) -> tuple[set[str], str] | None:
    """The runtimes the container runtime kubelet talks to on a lab host has loaded, and its
    default: dockerd's (a docker-runtime host, whose kubelet uses docker) else containerd's,
    from what the running daemon wrote when it started (botlab/lab/hosttools); None when
    neither runs."""
    for path, default_key in (("run/docker/lab-state.json", "default_runtime"),
                              ("run/containerd/lab-state.json", "default_runtime_name")):
        try:
            state = json.loads((root / path).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(state, dict) and isinstance(state.get("runtimes"), dict):
            return set(state["runtimes"]), str(state.get(default_key) or "runc")
    return None


class Cluster:
    """One model's API server, served from its own thread."""

    def __init__(self, model: ModelState, address: str, bind: Any, hosts: HostManager | None = None,
                 version: str = KUBERNETES_VERSION) -> None:
        found = cluster_secrets(model)
        certs = make_certs([address], ca_cert=found["ca"], ca_key=found["ca_key"])
        self.address = address
        self.hosts = hosts
        controllers = with_controllers(runtimes_of=self.runtimes_of, gpus_of=self.gpus_of)
        self.ca = (found["ca"], found["ca_key"])
        self.server = K8sApiServer(address, API_PORT, found["token"], certs=certs,
                                   kubernetes_version=version, controllers=controllers)
        self.context = self.server.ssl_context()  # kept: a load balancer's address joins its certificate
        self.fronts: dict[str, asyncio.Server] = {}
        self.thread = ServerThread(lambda: [Site(self.server.app(), self.context)], [API_PORT],
                                   host=address, name=f"k8s-{model.name}", label=f"the Kubernetes API of {model.name}",
                                   on_stop=self.server.close_watches, bind=bind)
        self.server.thread = self.thread

    def runtimes_of(self, node: str) -> tuple[set[str], str] | None:
        """What the node's host has configured, read on the host (None: no such lab host)."""
        host = self.hosts.host(node) if self.hosts is not None else None
        return host_runtimes(host.root) if host is not None else None

    def gpus_of(self, node: str) -> int:
        host = self.hosts.host(node) if self.hosts is not None else None
        return host.gpus if host is not None else 0

    def start(self) -> None:
        self.thread.start()

    def add_front(self, address: str, bind: Any) -> None:
        """kubeapi-load-balancer at `address`:443 in front of the API (as its nginx is): the
        server's certificate gains that address, and connections there reach the API server."""
        if address in self.fronts:
            return
        certs = make_certs([self.address, address], ca_cert=self.ca[0], ca_key=self.ca[1])
        with tempfile.TemporaryDirectory(prefix="botlab-k8s-tls-") as tmp:
            cert, key = Path(tmp) / "server.pem", Path(tmp) / "server.key"
            cert.write_text(certs.server_cert + certs.ca_cert)
            key.touch(mode=0o600)
            key.write_text(certs.server_key)
            self.context.load_cert_chain(str(cert), str(key))  # new handshakes present it
        sock = (bind or _plain_bind)(address, LB_PORT)

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.address, API_PORT)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        async def serve() -> asyncio.Server:
            return await asyncio.start_server(forward, sock=sock)

        self.fronts[address] = self.thread.call(serve())

    def stop(self) -> None:
        for front in self.fronts.values():
            front.close()
        self.thread.stop()

    def register_node(self, node: dict[str, Any]) -> None:
        """Create the Node, or refresh its addresses and labels (a kubelet re-registering)."""
        store = self.server.store

        def work() -> None:
            nodes = store.type_of("", "nodes")
            name = node["metadata"]["name"]
            live = store.find(nodes, None, name)
            if live is None:
                store.create(nodes, None, node)
                return
            merged = {**live, "metadata": {**live["metadata"],
                                           "labels": {**live["metadata"].get("labels", {}),
                                                      **node["metadata"]["labels"]}},
                      "status": {**live.get("status", {}), "addresses": node["status"]["addresses"]}}
            store.update(nodes, None, name, merged)

        self.server.call(work)


class LabClusters:
    """Connects one Juju emulator's models to API servers (see the module doc)."""

    def __init__(self, juju: JujuEmulator, hosts: HostManager | None) -> None:
        self.juju = juju
        self.hosts = hosts
        self.clusters: dict[str, Cluster] = {}  # model uuid -> its cluster
        # model uuid -> the kubelets (hostname, address, application, charm, config) started before its API
        self._waiting: dict[str, list[tuple[str, str, str, str, dict[str, Any]]]] = {}
        self._fronts: dict[str, list[str]] = {}  # model uuid -> its load balancers' addresses
        self._lock = threading.Lock()

    def attach(self) -> LabClusters:
        catalogue.register_hook_handler(self.on_hook)
        self.juju.state.on_model_removed.append(self.model_removed)
        return self

    def detach(self) -> None:
        catalogue.unregister_hook_handler(self.on_hook)
        if self.model_removed in self.juju.state.on_model_removed:
            self.juju.state.on_model_removed.remove(self.model_removed)
        with self._lock:
            clusters, self.clusters = list(self.clusters.values()), {}
        for cluster in clusters:
            cluster.stop()

    def on_hook(self, run: catalogue.HookRun) -> None:
        if run.hook != "start" or run.charm not in (*KUBELET_CHARMS, LOAD_BALANCER) or not run.address:
            return
        try:
            self._started(run)
        except Exception:  # the hook fails (the unit goes to error); the lab's log says why
            log.exception("%s: the start hook's Kubernetes work failed", run.unit)
            raise

    def _started(self, run: catalogue.HookRun) -> None:
        if run.charm == LOAD_BALANCER:
            with self._lock:
                self._fronts.setdefault(run.model.uuid, []).append(run.address)
                cluster = self.clusters.get(run.model.uuid)
            if cluster is not None:
                cluster.add_front(run.address, self._binder(run.address))
            return
        if self.juju.state.models.get(run.model.uuid) is not run.model:
            return  # another emulator's model, in the same process
        node = (run.hostname, run.address, run.application, run.charm, dict(run.config))
        cluster = (self.ensure(run.model, run.address, kubernetes_version(run.config)) if run.charm == CONTROL_PLANE
                   else self.cluster(run.model))
        if cluster is None:  # its kubelet keeps trying until an API server answers
            with self._lock:
                self._waiting.setdefault(run.model.uuid, []).append(node)
            return
        with self._lock:
            nodes = [*self._waiting.pop(run.model.uuid, []), node]
        for hostname, address, application, charm, config in nodes:
            cluster.register_node(node_object(hostname, address, application, charm, cluster.server.store.now(),
                                              config))

    def cluster(self, model: ModelState) -> Cluster | None:
        with self._lock:
            return self.clusters.get(model.uuid)

    def ensure(self, model: ModelState, address: str, version: str = KUBERNETES_VERSION) -> Cluster:
        """The model's cluster, started at `address` on its first control-plane unit."""
        with self._lock:
            found = self.clusters.get(model.uuid)
            if found is not None:
                return found
            cluster = Cluster(model, address, self._binder(address), self.hosts, version)
            cluster.start()
            self.clusters[model.uuid] = cluster
            for front in self._fronts.get(model.uuid, []):  # load balancers that started first
                cluster.add_front(front, self._binder(front))
            log.info("Kubernetes API of model %s at https://%s:%d", model.name, address, API_PORT)
            return cluster

    def _binder(self, address: str) -> Any:
        """Bind inside the lab host that holds `address`, or (no hosts) on this machine."""
        if self.hosts is None:
            return None
        host = next((h for h in self.hosts.hosts() if h.address == address), None)
        if host is None:
            return None
        from botlab.lab.hosts.network import listen_in

        return functools.partial(_listen_in, listen_in, host.netns)

    def model_removed(self, model: ModelState) -> None:
        with self._lock:
            cluster = self.clusters.pop(model.uuid, None)
            self._waiting.pop(model.uuid, None)
            self._fronts.pop(model.uuid, None)
        if cluster is not None:
            threading.Thread(target=cluster.stop, name=f"k8s-stop-{model.name}", daemon=True).start()


def _listen_in(listen_in: Any, netns: str, host: str, port: int) -> Any:
    return listen_in(netns, host, port)


def _plain_bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
