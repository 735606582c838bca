"""The lab's Kubernetes cluster end to end: after `botlab up kubernetes` (6 machines: a
kubeapi-load-balancer in front of the control plane), the kubeconfig botlab fetched through
Juju's get-kubeconfig action reaches the lab's API server through the load balancer's address
(port 443; the control plane's own address answers on 6443) with the model's CA and token; the
official client and kubectl list a Node per machine running a kubelet (control plane and
workers, not the NFS host); a wrong token is refused (401); kubectl applies server-side and waits
for a rollout."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client, config

from tests.support.kubelab import KubeLab, running_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    with running_lab(tmp_path_factory.mktemp("cluster"), hosts=False, machines=6) as lab:
        assert lab.botlab("up", "kubernetes") == 0, lab.stdout + lab.stderr
        yield lab


def kubeconfig(lab: KubeLab) -> str:
    return str(lab.inventory.parent / ".botlab" / "kubeconfig")


def api(lab: KubeLab, token: str | None = None) -> client.CoreV1Api:
    conf = client.Configuration()
    config.load_kube_config(config_file=kubeconfig(lab), client_configuration=conf)
    if token is not None:
        conf.refresh_api_key_hook = None  # the loader's hook would put the kubeconfig's token back
        conf.api_key = {"authorization": f"Bearer {token}"}
    return client.CoreV1Api(client.ApiClient(conf))


def kubelet_hosts(lab: KubeLab) -> dict[str, str]:
    """hostname -> application, for the machines whose units run a kubelet."""
    status = lab.json("status")
    hosts = next(s for s in status["stages"] if s["stage"] == "kubernetes")["outputs"]["hosts"]
    out = {}
    for hostname, host in hosts.items():
        apps = [u.split("/")[0] for u in host["units"]]
        kubelet = [a for a in apps if a.startswith(("kubernetes-control-plane", "kubernetes-worker"))]
        if kubelet:
            out[hostname] = kubelet[0]
    return out


def test_the_fetched_kubeconfig_reaches_the_clusters_api_and_lists_its_nodes(cluster: KubeLab) -> None:
    with open(kubeconfig(cluster)) as fh:
        server = yaml.safe_load(fh)["clusters"][0]["cluster"]["server"]
    status = cluster.json("status")
    hosts = next(s for s in status["stages"] if s["stage"] == "kubernetes")["outputs"]["hosts"]
    control = next(h for h, x in hosts.items() if any(u.startswith("kubernetes-control-plane/") for u in x["units"]))
    balancer = next(h for h, x in hosts.items() if any(u.startswith("kubeapi-load-balancer/") for u in x["units"]))
    assert server == f"https://{hosts[balancer]['address']}:443"
    direct = api(cluster)
    direct.api_client.configuration.host = f"https://{hosts[control]['address']}:6443"
    assert {n.metadata.name for n in direct.list_node().items} == set(kubelet_hosts(cluster))

    nodes = api(cluster).list_node().items
    expected = kubelet_hosts(cluster)
    assert {n.metadata.name: n.metadata.labels["juju-application"] for n in nodes} == expected
    for node in nodes:
        addresses = {a.type: a.address for a in node.status.addresses}
        assert addresses == {"InternalIP": hosts[node.metadata.name]["address"], "Hostname": node.metadata.name}
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    control_node = next(n for n in nodes if n.metadata.name == control)
    assert "node-role.kubernetes.io/control-plane" in control_node.metadata.labels
    assert api(cluster).read_namespace("kube-system").metadata.name == "kube-system"


def test_a_wrong_token_is_refused(cluster: KubeLab) -> None:
    with pytest.raises(client.ApiException) as caught:
        api(cluster, token="not-the-token").list_node()
    assert caught.value.status == 401


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on this machine")
def test_kubectl_with_the_fetched_kubeconfig_lists_the_nodes(cluster: KubeLab) -> None:
    done = subprocess.run(["kubectl", "--kubeconfig", kubeconfig(cluster), "get", "nodes", "-o", "name"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(f"node/{h}" for h in kubelet_hosts(cluster))
    table = subprocess.run(["kubectl", "--kubeconfig", kubeconfig(cluster), "get", "nodes"],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and table.stdout.split()[:2] == ["NAME", "STATUS"], table.stdout + table.stderr
    assert all(" Ready " in line for line in table.stdout.splitlines()[1:]), table.stdout




@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on this machine")
def test_kubectl_applies_server_side_waits_for_a_rollout_and_lists_pods(cluster: KubeLab) -> None:
    def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["kubectl", "--kubeconfig", kubeconfig(cluster), *args], input=stdin,
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr
        return done

    manifest = """apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers: [{name: hello, image: registry.k8s.io/pause:3.9}]
"""
    assert kubectl("apply", "--server-side", "-f", "-", stdin=manifest).stdout.strip() == (
        "deployment.apps/hello serverside-applied")
    kubectl("wait", "--for=condition=Available", "deployment/hello", "--timeout=60s")
    pods = kubectl("get", "pods", "-A", "-o", "json")
    hello = [p for p in json.loads(pods.stdout)["items"] if p["metadata"]["name"].startswith("hello-")]
    assert len(hello) == 2 and {p["status"]["phase"] for p in hello} == {"Running"}
    assert {p["spec"]["nodeName"] for p in hello} <= set(kubelet_hosts(cluster))
    table = kubectl("get", "pods", "-A").stdout.splitlines()
    assert table[0].split()[:3] == ["NAMESPACE", "NAME", "READY"]


def test_the_cluster_reports_the_deployed_channels_version_and_taints_the_control_plane(cluster: KubeLab) -> None:
    from kubernetes.client import VersionApi

    core = api(cluster)
    assert VersionApi(core.api_client).get_code().git_version.startswith("v1.31.")  # kubernetes.channel 1.31/stable
    nodes = {n.metadata.name: n for n in core.list_node().items}
    apps = kubelet_hosts(cluster)
    for name, node in nodes.items():
        taints = [(t.key, t.effect) for t in node.spec.taints or []]
        # kubernetes-control-plane's register-with-taints default
        expected = [("node-role.kubernetes.io/control-plane", "NoSchedule")] if apps[name].endswith("plane") else []
        assert taints == expected, name
        assert node.status.node_info.kubelet_version.startswith("v1.31.")
