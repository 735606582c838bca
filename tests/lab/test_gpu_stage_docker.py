"""The gpu stage's ssh method with docker end to end on lab hosts (real OpenSSH servers, the
lab's docker charm and dockerd): a docker bundle of the operator's (kubernetes.bundle), GPU
workers stuck at "Waiting for kubelet to start." (the guide's symptom) until docker runs with
the nvidia runtime; botlab's docker.service drop-in keeps the unit's own ExecStart; a host whose
daemon.json already declares the runtime is left alone; a second `up` changes nothing and
restarts nothing. (The containerd methods: test_gpu_stage.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from botlab.bundle import builtin_template
from botlab.lab.hosts.manager import hosts_supported
from tests.lab.test_gpu_stage import BINARY, GPU, OTHERS, actions, assert_gpus_schedulable, exists, running, units
from tests.support.kubelab import KubeLab, running_lab

WHY_NOT = hosts_supported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=f"lab hosts: {WHY_NOT}")]
DOCKER_DROPIN = "/etc/systemd/system/docker.service.d/99-botlab-nvidia.conf"
# what `nvidia-ctk runtime configure --runtime=docker` writes
DAEMON_JSON = {"runtimes": {"nvidia": {"path": BINARY, "runtimeArgs": []}}}


def docker_bundle(path: Path) -> Path:
    """The built-in bundle with the docker charm as the runtime subordinate (what an operator on
    the guide's docker setup brings through kubernetes.bundle); the runtime applications keep
    their names."""
    text = builtin_template().read_text()
    for old, new in (("charm: containerd", "charm: docker"), ("gpu_driver: none", "docker_runtime: apt"),
                     ('gpu_driver: {{ "nvidia" if gpu_method == "charm" else "none" }}', "docker_runtime: apt"),
                     ("containerd:containerd]", "containerd:docker]"),
                     ("{{ runtime }}:containerd]", "{{ runtime }}:docker]")):
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def dock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    with running_lab(tmp_path_factory.mktemp("gpu-docker"), machines=4, gpus=2, toolkit=True) as lab:
        bundle = docker_bundle(lab.tmp / "docker-bundle.yaml.j2")
        lab.edit_inventory(container_runtime="docker", gpu_method="ssh", bundle=str(bundle))
        doc = lab.json("up", "kubernetes")
        assert doc["_code"] == 0, doc
        yield lab


def test_docker_gpu_workers_become_active_and_daemon_json_is_left_alone(dock: KubeLab) -> None:
    # The guide's symptom: the GPU workers wait for a kubelet that cannot start without the runtime.
    assert {s for s, _, _ in units(dock, "kubernetes-worker-gpu/").values()} == {"waiting"}
    assert all("Waiting for kubelet to start." in m for _, _, m in units(dock, "kubernetes-worker-gpu/").values())
    declared = json.dumps(DAEMON_JSON)
    assert dock.host_sh("node-04", f"echo '{declared}' | sudo tee /etc/docker/daemon.json"
                                   " && sudo systemctl restart docker")[0] == 0
    unit_before = dock.host_sh("node-03", "systemctl cat docker.service")[1]

    doc = dock.json("up")
    assert doc["_code"] == 0, doc
    assert actions(doc) == {"enlist": "verified", "kubernetes": "verified", "gpu": "ran"}, doc
    # node-03: botlab's drop-in, the unit's own ExecStart kept, plus the runtime
    _, dropin = dock.host_sh("node-03", f"cat {DOCKER_DROPIN}")
    start = next(ln for ln in unit_before.splitlines() if ln.startswith("ExecStart=/"))[len("ExecStart="):]
    assert f"ExecStart={start} --add-runtime=nvidia={BINARY}" in dropin.splitlines(), dropin
    # node-04: daemon.json already declares it: no drop-in, daemon.json as the operator wrote it
    assert not exists(dock, "node-04", DOCKER_DROPIN)
    assert json.loads(dock.host_sh("node-04", "cat /etc/docker/daemon.json")[1]) == DAEMON_JSON
    for host in GPU:
        assert "nvidia" in running(dock, host, "docker")["runtimes"], host
    for host in OTHERS:
        assert not exists(dock, host, DOCKER_DROPIN)
    assert {(w, a) for w, a, _ in units(dock, "kubernetes-worker-gpu/").values()} == {("active", "idle")}
    assert_gpus_schedulable(dock, "nvidia")

    pids = {h: running(dock, h, "docker")["pid"] for h in GPU}
    mark = dock.juju_seq()
    again = dock.json("up")
    assert actions(again) == dict.fromkeys(("enlist", "kubernetes", "gpu"), "verified"), again
    assert dock.juju_mutations(mark) == []
    assert {h: running(dock, h, "docker")["pid"] for h in GPU} == pids  # zero restarts
