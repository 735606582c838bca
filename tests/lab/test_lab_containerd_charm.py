"""The lab's containerd charm does on its hosts what the real one does (botlab.lab.juju.containerd_charm):
`gpu_driver` decides the NVIDIA runtime, every config change renders the whole /etc/containerd/config.toml again
(an operator's `imports` drop-in is dropped) and restarts containerd, and the NVIDIA packages go only where the
driver is on. Checked over SSH with `containerd config dump`, as an operator would.

Source of every fact: charmed-kubernetes/charm-containerd, tag 1.31+ck1, commit
4260c72eb4546e9f47a65dce7f6eee189fc095c0 (reactive/containerd.py, templates/config_v2.toml, config.yaml).

Namespaces need root (CI runs as root); elsewhere these tests skip, saying why."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fabric import Connection

from botlab.lab import control
from botlab.lab.hosts.manager import hosts_supported
from botlab.lab.juju import containerd_charm
from tests.support.kubelab import KubeLab, start_lab

WHY_NOT = hosts_supported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=f"lab hosts: {WHY_NOT}")]
CRI = "io.containerd.grpc.v1.cri"
REAL = "charmed-kubernetes/charm-containerd@1.31+ck1 (4260c72eb4546e9f47a65dce7f6eee189fc095c0)"
RUNTIME = "nvidia-container-runtime"
DROP_IN = """version = 2

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "nvidia"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
      BinaryName = "/usr/bin/nvidia-container-runtime"
"""


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    # No toolkit in the spec: whatever NVIDIA package a host has, the charm installed.
    lab = start_lab(tmp_path_factory.mktemp("ctdcharm"), machines=4, gpus=2, hosts=True)
    try:
        lab.edit_inventory(container_runtime="containerd", gpu_method="charm")
        assert lab.botlab("up", "kubernetes") == 0, lab.stdout + lab.stderr
        yield lab
    finally:
        control.stop(lab.info.dir)


def sh(conn: Connection, command: str) -> tuple[int, str]:
    result = conn.run(command, hide=True, warn=True, in_stream=False)
    return result.exited, result.stdout


def dump(conn: Connection) -> dict[str, Any]:
    code, out = sh(conn, "containerd config dump")
    assert code == 0, out
    return tomllib.loads(out)


def daemon(conn: Connection) -> dict[str, Any]:
    """The running containerd's state (what it loaded when it last started)."""
    code, out = sh(conn, "sudo cat /run/containerd/lab-state.json")
    assert code == 0, out
    return dict(json.loads(out))


def started_at(conn: Connection) -> float | None:
    """When the running containerd started; None while none runs (mid-restart)."""
    code, out = sh(conn, "sudo cat /run/containerd/lab-state.json")
    return float(json.loads(out)["started_at"]) if code == 0 else None


def gpu_hosts(lab: KubeLab) -> dict[str, bool]:
    out = {}
    for hostname in lab.maas_machines():
        with lab.host(hostname) as conn:
            out[hostname] = bool(sh(conn, "lspci -d 10de:")[1].strip())
    return out


def set_config(lab: KubeLab, app: str, config: dict[str, str]) -> None:
    async def work(model: Any) -> None:
        await model.applications[app].set_config(config)

    lab.on_model(work)


def wait_until(conn: Connection, ok: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"{conn.host}: not {what} within {timeout}s"
        time.sleep(0.2)


def nvidia_default(config: dict[str, Any]) -> bool:
    return bool(config["plugins"][CRI]["containerd"]["default_runtime_name"] == RUNTIME)


def test_gpu_hosts_run_the_nvidia_runtime_by_default_and_other_hosts_have_none(kube: KubeLab) -> None:
    hosts = gpu_hosts(kube)
    assert sorted(h for h, gpu in hosts.items() if gpu) == ["node-03", "node-04"]
    for hostname, gpu in hosts.items():
        with kube.host(hostname) as conn:
            config = dump(conn)
            # The charm's file is the only one (its template has no `imports`): config_v2.toml at REAL.
            assert config["imports"] == ["/etc/containerd/config.toml"], hostname
            ctd = config["plugins"][CRI]["containerd"]
            running = daemon(conn)
            assert running["cri"]["status"] == "ok", (hostname, running["cri"])
            if gpu:
                # runtime "auto" + NVIDIA on -> "nvidia-container-runtime", the default, BinaryName /usr/bin/<name>:
                # reactive/containerd.py config_changed() and templates/config_v2.toml at REAL.
                assert ctd["default_runtime_name"] == RUNTIME, hostname
                assert ctd["runtimes"][RUNTIME]["runtime_type"] == "io.containerd.runc.v2"
                assert ctd["runtimes"][RUNTIME]["options"]["BinaryName"] == f"/usr/bin/{RUNTIME}"
                assert running["default_runtime_name"] == RUNTIME
                # nvidia_apt_packages' default "cuda-drivers nvidia-container-runtime" (config.yaml at REAL)
                # installed by install_nvidia_drivers(): the runtime binary is there.
                assert sh(conn, f"test -x /usr/bin/{RUNTIME}")[0] == 0, hostname
            else:
                assert ctd["default_runtime_name"] == "runc" and set(ctd["runtimes"]) == {"runc"}, hostname
                assert running["default_runtime_name"] == "runc"
                assert sh(conn, "command -v nvidia-container-runtime nvidia-ctk")[0] == 1, hostname


def test_a_config_change_renders_the_whole_file_again_dropping_an_operators_drop_in(kube: KubeLab) -> None:
    with kube.host("node-04") as conn:
        # An operator's earlier SSH fix: an `imports` line in config.toml and a drop-in.
        sh(conn, "sudo mkdir -p /etc/containerd/conf.d && printf '%s' '" + DROP_IN
           + "' | sudo tee /etc/containerd/conf.d/99-nvidia.toml >/dev/null")
        sh(conn, "sudo sed -i '1i imports = [\"/etc/containerd/conf.d/*.toml\"]' /etc/containerd/config.toml")
        config = dump(conn)
        assert config["imports"] == ["/etc/containerd/config.toml", "/etc/containerd/conf.d/99-nvidia.toml"]
        assert config["plugins"][CRI]["containerd"]["default_runtime_name"] == "nvidia"
        before = daemon(conn)["started_at"]

        # gpu_driver none through Juju: gpu_config_changed() checks again, unconfigure_nvidia() purges the
        # NVIDIA packages, config_changed() renders the file from the template, restart_containerd() (REAL).
        set_config(kube, "containerd-gpu", {"gpu_driver": "none"})
        wait_until(conn, lambda: started_at(conn) not in (None, before) and not nvidia_default(dump(conn)),
                   "re-rendered without the NVIDIA runtime")
        config = dump(conn)
        assert config["imports"] == ["/etc/containerd/config.toml"]  # the drop-in is no longer read
        assert set(config["plugins"][CRI]["containerd"]["runtimes"]) == {"runc"}
        assert "imports" not in sh(conn, "cat /etc/containerd/config.toml")[1]
        assert sh(conn, f"test -e /usr/bin/{RUNTIME}")[0] == 1  # purged ("^nvidia-.*")
        running = daemon(conn)
        assert running["default_runtime_name"] == "runc" and running["imports"] == ["/etc/containerd/config.toml"]

        # And back: the packages are installed again and the runtime is the default again.
        before = running["started_at"]
        set_config(kube, "containerd-gpu", {"gpu_driver": "nvidia"})
        wait_until(conn, lambda: started_at(conn) not in (None, before) and nvidia_default(dump(conn)),
                   "re-rendered with the NVIDIA runtime")
        assert sh(conn, f"test -x /usr/bin/{RUNTIME}")[0] == 0
        assert daemon(conn)["default_runtime_name"] == RUNTIME


def test_auto_follows_the_hardware(kube: KubeLab) -> None:
    # gpu_driver auto: NVIDIA where `lspci -nnk` mentions nvidia (check_for_gpu() at REAL): the CPU workers'
    # containerd application switched to auto keeps runc only.
    with kube.host("node-01") as conn, kube.host("node-02") as conn2:
        started = {c.host: daemon(c)["started_at"] for c in (conn, conn2)}
        set_config(kube, "containerd", {"gpu_driver": "auto"})
        for c in (conn, conn2):
            wait_until(c, lambda c=c: started_at(c) not in (None, started[c.host]), "restarted")
            assert not nvidia_default(dump(c)) and sh(c, f"test -e /usr/bin/{RUNTIME}")[0] == 1
    assert containerd_charm.SOURCE["commit"] in REAL
