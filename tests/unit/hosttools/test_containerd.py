"""containerd follows imports and merges them as containerd 1.7 does, in `config dump` and in the daemon."""

from __future__ import annotations

import tomllib
from typing import Any

from tests.unit.hosttools.conftest import Host

CRI = "io.containerd.grpc.v1.cri"
RUNC_RUNTIME = """  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
"""
MAIN = """version = 2
imports = ["conf.d/*.toml"]

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
""" + RUNC_RUNTIME
# A drop-in must carry the whole CRI section: it replaces the main file's one.
DROPIN = """version = 2

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "nvidia"
""" + RUNC_RUNTIME + """  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
      BinaryName = "/usr/bin/nvidia-container-runtime"
      SystemdCgroup = true
"""
JOB_FAILED = ('Job for containerd.service failed because the control process exited with error code.\n'
              'See "systemctl status containerd.service" and "journalctl -xeu containerd.service" for details.\n')


def dump(host: Host) -> dict[str, Any]:
    return tomllib.loads(host.ok("containerd", "config", "dump"))


def test_imports_merge_in_dump_and_daemon(docker_host: Host) -> None:
    host = docker_host
    host.write("/etc/containerd/config.toml", MAIN)
    host.write("/etc/containerd/conf.d/99-nvidia.toml", DROPIN)
    config = dump(host)
    assert config["imports"] == ["/etc/containerd/config.toml", "/etc/containerd/conf.d/99-nvidia.toml"]
    assert config["version"] == 2
    containerd = config["plugins"][CRI]["containerd"]
    assert containerd["default_runtime_name"] == "nvidia"
    assert set(containerd["runtimes"]) == {"runc", "nvidia"}
    assert containerd["runtimes"]["nvidia"]["options"] == {"BinaryName": "/usr/bin/nvidia-container-runtime",
                                                           "SystemdCgroup": True}
    assert containerd["runtimes"]["nvidia"]["runtime_type"] == "io.containerd.runc.v2"
    assert containerd["snapshotter"] == "overlayfs"  # defaults stay where the file says nothing

    host.ok("systemctl", "start", "containerd")
    state = host.json("/run/containerd/lab-state.json")
    assert state["imports"] == ["/etc/containerd/config.toml", "/etc/containerd/conf.d/99-nvidia.toml"]
    assert state["cri"]["status"] == "ok"
    assert state["default_runtime_name"] == "nvidia"
    assert state["runtimes"]["nvidia"]["binary_name"] == "/usr/bin/nvidia-container-runtime"
    assert state["pid"] == int(host.show("containerd", "MainPID"))


def test_an_import_replaces_the_whole_plugin_section(docker_host: Host) -> None:
    host = docker_host
    host.write("/etc/containerd/config.toml", MAIN)
    host.write("/etc/containerd/conf.d/nvidia.toml",
               '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
               '  runtime_type = "io.containerd.runc.v2"\n')
    assert set(dump(host)["plugins"][CRI]["containerd"]["runtimes"]) == {"nvidia"}
    host.ok("systemctl", "start", "containerd")  # containerd itself runs on, without its CRI plugin
    state = host.json("/run/containerd/lab-state.json")
    # (containerd's message really lacks the closing backquote)
    error = ('invalid plugin config: no corresponding runtime configured in `containerd.runtimes` for `containerd` '
             '`default_runtime_name = "runc"')
    assert state["cri"] == {**state["cri"], "status": "error", "error": error}
    assert state["runtimes"] == {}
    assert ('level=warning msg="failed to load plugin io.containerd.grpc.v1.cri" error="invalid plugin config: no '
            'corresponding runtime configured in `containerd.runtimes` for `containerd` `default_runtime_name = '
            '\\"runc\\""') in host.ok("journalctl", "-u", "containerd")


def test_invalid_toml_is_refused(docker_host: Host) -> None:
    host = docker_host
    host.write("/etc/containerd/config.toml", 'version = 2\n[plugins."io.containerd.grpc.v1.cri"\n')
    proc = host.run("containerd", "config", "dump")
    assert proc.returncode == 1
    assert proc.stderr.startswith("containerd: failed to load TOML: /etc/containerd/config.toml: (2, ")
    start = host.run("systemctl", "start", "containerd")
    assert (start.returncode, start.stderr) == (1, JOB_FAILED)
    assert "containerd: failed to load TOML: /etc/containerd/config.toml: (2, " in host.ok("journalctl", "-u",
                                                                                          "containerd")

    host.write("/etc/containerd/config.toml", MAIN)
    host.write("/etc/containerd/conf.d/bad.toml", "version = \n")
    proc = host.run("containerd", "config", "dump")
    assert proc.stderr.startswith("containerd: failed to load TOML: /etc/containerd/conf.d/bad.toml: (1, ")
    host.write("/etc/containerd/conf.d/bad.toml", 'version = 3\n')
    proc = host.run("containerd", "config", "dump")
    assert proc.stderr.endswith("containerd: failed to load TOML from /etc/containerd/config.toml: unsupported config "
                                "version `3`\n")
    host.write("/etc/containerd/conf.d/bad.toml", '[plugins.cri]\n')
    proc = host.run("containerd", "config", "dump")
    assert proc.stderr == ('containerd: failed to load TOML from /etc/containerd/config.toml: invalid plugin key URI '
                           '"cri" expect io.containerd.x.vx\n')


def test_config_default_and_version(docker_host: Host) -> None:
    default = tomllib.loads(docker_host.ok("containerd", "config", "default"))
    assert default["version"] == 2 and default["imports"] == []
    assert default["plugins"][CRI]["containerd"]["runtimes"]["runc"]["runtime_type"] == "io.containerd.runc.v2"
    assert default["grpc"]["address"] == "/run/containerd/containerd.sock"
    assert docker_host.ok("containerd", "--version") == "containerd github.com/containerd/containerd 1.7.12 \n"


def test_nvidia_ctk_configures_containerd(docker_host: Host) -> None:
    host = docker_host
    configure = host.run("nvidia-ctk", "runtime", "configure", "--runtime=containerd", "--set-as-default")
    assert configure.returncode == 0, configure.stderr
    assert ('msg="Using CRI runtime plugin name \\"io.containerd.grpc.v1.cri\\""' in configure.stderr)
    config = tomllib.loads(host.read("/etc/containerd/config.toml"))
    containerd = config["plugins"][CRI]["containerd"]
    assert containerd["default_runtime_name"] == "nvidia"
    # The runtime is copied from runc's settings (SystemdCgroup stays) with the NVIDIA binary.
    assert containerd["runtimes"]["nvidia"] == {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"SystemdCgroup": True, "BinaryName": "/usr/bin/nvidia-container-runtime"}}
    host.ok("systemctl", "restart", "containerd")
    state = host.json("/run/containerd/lab-state.json")
    assert state["default_runtime_name"] == "nvidia" and state["cri"]["status"] == "ok"

    # --config-source=command starts from `containerd config dump`, so the drop-ins are folded in.
    host.write("/etc/containerd/conf.d/10-extra.toml", "")
    host.write("/etc/containerd/config.toml", MAIN)
    host.ok("nvidia-ctk", "runtime", "configure", "--runtime=containerd", "--config-source=command")
    config = tomllib.loads(host.read("/etc/containerd/config.toml"))
    assert config["imports"] == ["/etc/containerd/config.toml", "/etc/containerd/conf.d/10-extra.toml"]
    assert config["plugins"][CRI]["containerd"]["runtimes"]["nvidia"]["options"]["BinaryName"] == (
        "/usr/bin/nvidia-container-runtime")
    assert config["plugins"][CRI]["sandbox_image"] == "registry.k8s.io/pause:3.8"
