"""The containerd charm's config.toml (botlab.lab.juju.containerd_charm) is one the lab's containerd 1.7 accepts:
`config dump` shows what the charm means, and the daemon's CRI plugin loads it."""

from __future__ import annotations

import tomllib

import pytest

from botlab.lab.juju import containerd_charm
from tests.unit.hosttools.conftest import Host

CRI = "io.containerd.grpc.v1.cri"


@pytest.mark.parametrize("nvidia", [True, False])
def test_rendered_config_is_valid_for_containerd(docker_host: Host, nvidia: bool) -> None:
    docker_host.write("/etc/containerd/config.toml", containerd_charm.render({"gpu_driver": "auto"}, nvidia))
    config = tomllib.loads(docker_host.ok("containerd", "config", "dump"))
    assert config["imports"] == ["/etc/containerd/config.toml"]
    ctd = config["plugins"][CRI]["containerd"]
    assert config["plugins"][CRI]["sandbox_image"] == "rocks.canonical.com:443/cdk/pause:3.6"
    assert config["plugins"][CRI]["registry"]["mirrors"]["docker.io"] == {"endpoint": ["https://registry-1.docker.io"]}
    if nvidia:
        assert ctd["default_runtime_name"] == "nvidia-container-runtime"
        runtime = ctd["runtimes"]["nvidia-container-runtime"]
        assert runtime["runtime_type"] == "io.containerd.runc.v2"
        assert runtime["options"] == {"BinaryName": "/usr/bin/nvidia-container-runtime"}
    else:
        assert ctd["default_runtime_name"] == "runc" and set(ctd["runtimes"]) == {"runc"}
    docker_host.ok("systemctl", "restart", "containerd")
    state = docker_host.json("/run/containerd/lab-state.json")
    assert state["cri"]["status"] == "ok", state["cri"]
    assert state["default_runtime_name"] == ("nvidia-container-runtime" if nvidia else "runc")


def test_gpu_driver_rule_follows_check_for_gpu() -> None:
    # charm-containerd 1.31+ck1 reactive/containerd.py check_for_gpu(): "nvidia" in lspci -nnk, lower-cased.
    gpu = "01:00.0 3D controller [0302]: NVIDIA Corporation GA100 [A100 PCIe 40GB] [10de:20f1]\n"
    cpu = "00:01.0 VGA compatible controller [0300]: Red Hat, Inc. Virtio GPU [1af4:1050]\n"
    assert containerd_charm.nvidia_wanted("auto", gpu) is True
    assert containerd_charm.nvidia_wanted("auto", cpu) is False
    assert containerd_charm.nvidia_wanted("nvidia", cpu) is True  # "even if a GPU is not present"
    assert containerd_charm.nvidia_wanted("none", gpu) is False
    assert containerd_charm.nvidia_wanted("cuda", gpu) is None
    assert containerd_charm.runtime_name({"runtime": "auto"}, True) == "nvidia-container-runtime"
    assert containerd_charm.runtime_name({"runtime": "auto"}, False) == "runc"
    assert containerd_charm.nvidia_packages({}) == ["cuda-drivers", "nvidia-container-runtime"]
    assert "imports" not in containerd_charm.render({}, True)
