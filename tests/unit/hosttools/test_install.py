"""install_base / install_package lay out a lab host as apt would, idempotently, starting nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from botlab.lab.hosttools import PACKAGES, install_base, install_package
from tests.unit.hosttools.conftest import CPU_FACTS, GPU_FACTS


def test_packages_and_unknown_names(tmp_path: Path) -> None:
    assert PACKAGES == ("containerd", "cuda-drivers", "docker.io", "nvidia-container-runtime",
                        "nvidia-container-toolkit")
    with pytest.raises(ValueError, match="podman"):
        install_package(tmp_path, "podman")


def test_install_base(tmp_path: Path) -> None:
    (tmp_path / "lib/systemd/system").mkdir(parents=True)
    (tmp_path / "lib/systemd/system/ssh.service").write_text("[Service]\nExecStart=/usr/sbin/sshd -D\n")
    install_base(tmp_path, GPU_FACTS)
    for command in ("systemctl", "journalctl", "lspci", "nvidia-smi", "nvidia-ctk", "nvidia-container-runtime"):
        wrapper = tmp_path / "usr/bin" / command
        assert wrapper.read_text().startswith("#!/usr/bin/python3\n") and os.access(wrapper, os.X_OK), command
    assert (tmp_path / "usr/lib/botlab-lab/hostlib.py").is_file()
    assert not (tmp_path / "usr/lib/botlab-lab/__init__.py").exists()
    assert json.loads((tmp_path / "etc/botlab-lab/host.json").read_text())["gpus"] == GPU_FACTS["gpus"]
    assert (tmp_path / "etc/systemd/system").is_dir()
    # The build machine's own units are remembered, so booting the lab host leaves them alone.
    assert json.loads((tmp_path / "etc/botlab-lab/base-units.json").read_text()) == {"units": ["ssh.service"]}

    other = tmp_path / "cpu"
    install_base(other, CPU_FACTS)
    assert not (other / "usr/bin/nvidia-smi").exists() and not (other / "usr/bin/nvidia-ctk").exists()


def test_install_package_is_idempotent_and_starts_nothing(tmp_path: Path) -> None:
    install_base(tmp_path, CPU_FACTS)
    install_package(tmp_path, "docker.io")
    assert os.readlink(tmp_path / "etc/systemd/system/multi-user.target.wants/docker.service") == (
        "/lib/systemd/system/docker.service")
    assert os.readlink(tmp_path / "etc/systemd/system/multi-user.target.wants/containerd.service") == (
        "/lib/systemd/system/containerd.service")
    assert (tmp_path / "etc/docker").is_dir() and not (tmp_path / "etc/docker/daemon.json").exists()
    assert "ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock\n" in (
        tmp_path / "lib/systemd/system/docker.service").read_text()
    (tmp_path / "etc/containerd/config.toml").write_text("version = 2\n# mine\n")
    (tmp_path / "etc/systemd/system/multi-user.target.wants/docker.service").unlink()
    install_package(tmp_path, "docker.io")
    assert (tmp_path / "etc/containerd/config.toml").read_text() == "version = 2\n# mine\n"  # a conffile is kept
    assert not (tmp_path / "etc/systemd/system/multi-user.target.wants/docker.service").exists()  # stays disabled
    assert not (tmp_path / "run").exists()
    env = {"BOTLAB_HOST_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(tmp_path / "usr/bin/systemctl"), "is-enabled", "containerd"], env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert (proc.returncode, proc.stdout) == (0, "enabled\n")
    proc = subprocess.run([str(tmp_path / "usr/bin/systemctl"), "is-active", "containerd"], env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert (proc.returncode, proc.stdout) == (3, "inactive\n")
