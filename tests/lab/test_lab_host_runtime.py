"""Juju units on lab hosts follow the hosts' real state. With the docker runtime, the docker
charm installs docker on each host and a kubernetes-worker on a GPU host waits "Waiting for
kubelet to start." until dockerd there runs with the nvidia runtime registered: done here
over SSH the way the operators' guide does it (a systemd drop-in built from the unit's
ExecStart, daemon-reload, restart), after a first attempt (the runtime declared twice) that
dockerd refuses as the real one does.

Namespaces need root (CI runs as root); elsewhere these tests skip, saying why."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fabric import Connection
from paramiko import AutoAddPolicy

from botlab.lab import control
from botlab.lab.hosts.manager import hosts_supported
from tests.support.kubelab import KubeLab, start_lab

WHY_NOT = hosts_supported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=f"lab hosts: {WHY_NOT}")]
BUILT_IN = Path(__file__).resolve().parents[2] / "bundles" / "charmed-kubernetes.yaml.j2"
GPU_HOST = "node-04"


def docker_bundle(folder: Path) -> Path:
    """The built-in bundle with the GPU workers' runtime swapped for the docker charm, as an
    operator's own template (kubernetes.bundle) would have it."""
    text = BUILT_IN.read_text()
    old_app = ('  containerd-gpu:\n    charm: containerd\n    channel: {{ channel }}\n    options:\n'
               '      gpu_driver: {{ "nvidia" if gpu_method == "charm" else "none" }}\n')
    old_rel = "  - [{{ app }}:container-runtime, {{ runtime }}:containerd]"
    new_rel = ('  - [{{ app }}:container-runtime, {{ "docker-gpu:docker" if runtime == "containerd-gpu" '
               'else runtime + ":containerd" }}]')
    assert old_app in text and old_rel in text, "the built-in bundle changed: update this test's edit"
    path = folder / "docker-gpu.yaml.j2"
    path.write_text(text.replace(old_app, "  docker-gpu:\n    charm: docker\n    channel: {{ channel }}\n")
                    .replace(old_rel, new_rel))
    return path


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    tmp = tmp_path_factory.mktemp("runtime")
    lab = start_lab(tmp, machines=4, gpus=1, hosts=True, toolkit=True)
    try:
        lab.edit_inventory(container_runtime="docker", gpu_method="ssh", bundle=str(docker_bundle(tmp)))
        assert lab.botlab("up", "kubernetes") == 0, lab.stdout + lab.stderr
        yield lab
    finally:
        control.stop(lab.info.dir)


def workload(lab: KubeLab, unit_prefix: str) -> dict[str, tuple[str, str]]:
    """Unit -> (workload status, message) for units of applications starting with
    `unit_prefix`, from FullStatus through python-libjuju."""

    async def work(model: Any) -> dict[str, tuple[str, str]]:
        status = await model.get_status()
        return {unit_name: (unit.workload_status.status, unit.workload_status.info)
                for name, app in status.applications.items() if name.startswith(unit_prefix)
                for unit_name, unit in (app.units or {}).items()}

    return lab.on_model(work)


def gpu_host(lab: KubeLab) -> Connection:
    address = lab.maas_machines()[GPU_HOST]["ip_addresses"][0]
    key = lab.info.dir / "keys" / "id_ed25519"
    conn = Connection(address, user="ubuntu", connect_timeout=10,
                      connect_kwargs={"key_filename": str(key), "look_for_keys": False, "allow_agent": False})
    conn.client.set_missing_host_key_policy(AutoAddPolicy())
    return conn


def sh(conn: Connection, command: str) -> tuple[int, str]:
    result = conn.run(command, hide=True, warn=True, in_stream=False)
    return result.exited, (result.stdout + result.stderr).strip()


DROP_IN = "/etc/systemd/system/docker.service.d/botlab-nvidia.conf"
RUNTIME = "--add-runtime nvidia=/usr/bin/nvidia-container-runtime"


def docker_exec_start(conn: Connection) -> str:
    """docker.service's ExecStart command line, from `systemctl show` (as botlab reads it)."""
    code, exec_start = sh(conn, "systemctl show -p ExecStart --value docker")
    assert code == 0 and "argv[]=/usr/bin/dockerd " in exec_start, exec_start
    return exec_start.split("argv[]=", 1)[1].split(" ;", 1)[0]


def restart_with_drop_in(conn: Connection, exec_start: str) -> tuple[int, str]:
    """Write the guide's drop-in (the unit's ExecStart, replaced), daemon-reload, restart docker."""
    drop_in = f"[Service]\nExecStart=\nExecStart={exec_start}\n"
    sh(conn, f"sudo mkdir -p {os.path.dirname(DROP_IN)} && printf '%s' '{drop_in}' | sudo tee {DROP_IN}")
    return sh(conn, "sudo systemctl daemon-reload && sudo systemctl restart docker")


def wait_for_workload(lab: KubeLab, unit: str, wanted: tuple[str, str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (now := workload(lab, unit.split("/")[0])[unit]) != wanted:
        assert time.monotonic() < deadline, f"{unit}: {now}, not {wanted} within {timeout}s"
        time.sleep(0.1)


def test_gpu_worker_waits_for_kubelet_until_docker_runs_with_the_nvidia_runtime(kube: KubeLab) -> None:
    # botlab's kubernetes stage settled with the GPU worker waiting, as it should with docker.
    assert set(workload(kube, "kubernetes-worker-gpu").values()) == {("waiting", "Waiting for kubelet to start.")}
    assert {s for s, _ in workload(kube, "kubernetes-worker").values()} >= {"active"}
    with gpu_host(kube) as conn:
        # The spec puts the NVIDIA container toolkit on this GPU host.
        assert sh(conn, "command -v nvidia-ctk nvidia-container-runtime")[1].split() == [
            "/usr/bin/nvidia-ctk", "/usr/bin/nvidia-container-runtime"]
        # The docker charm installed and started docker on the host: runc only.
        code, runtimes = sh(conn, "sudo docker info --format '{{json .Runtimes}}'")
        assert code == 0 and "runc" in runtimes and "nvidia" not in runtimes
        argv = docker_exec_start(conn)

        # The nvidia runtime declared twice: the real dockerd refuses to start, docker is down.
        code, out = restart_with_drop_in(conn, f"{argv} {RUNTIME} {RUNTIME}")
        assert code == 1 and "Job for docker.service failed" in out
        code, journal = sh(conn, "sudo systemctl status docker")
        assert code == 3 and "runtime 'nvidia' was already defined" in journal
        assert workload(kube, "kubernetes-worker-gpu")["kubernetes-worker-gpu/0"][0] == "waiting"

        # The guide's way: the unit's ExecStart plus one --add-runtime, in botlab's own drop-in.
        assert restart_with_drop_in(conn, f"{argv} {RUNTIME}")[0] == 0
        code, out = sh(conn, "sudo docker info --format '{{json .Runtimes}}'")
        assert code == 0 and "nvidia" in out, out
    wait_for_workload(kube, "kubernetes-worker-gpu/0", ("active", "Ready"))
    assert set(workload(kube, "kubernetes-worker-gpu")) == {"kubernetes-worker-gpu/0"}


def test_the_gpu_worker_follows_docker_going_down_and_up(kube: KubeLab) -> None:
    unit = "kubernetes-worker-gpu/0"
    with gpu_host(kube) as conn:
        if workload(kube, "kubernetes-worker-gpu")[unit][0] != "active":  # run alone: register it first
            assert restart_with_drop_in(conn, f"{docker_exec_start(conn)} {RUNTIME}")[0] == 0
        wait_for_workload(kube, unit, ("active", "Ready"))
        assert sh(conn, "sudo systemctl stop docker")[0] == 0
        wait_for_workload(kube, unit, ("waiting", "Waiting for kubelet to start."))
        assert sh(conn, "sudo systemctl start docker")[0] == 0
        wait_for_workload(kube, unit, ("active", "Ready"))
