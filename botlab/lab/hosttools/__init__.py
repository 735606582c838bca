"""Host tools of the virtual lab: what a lab host lacks (systemd, dockerd, containerd, a GPU driver), emulated.

The lab installs them into a host's root filesystem with `install_base` and `install_package`, as root, from the
lab daemon. The tools themselves (the other modules of this package) run *inside* the host under its
/usr/bin/python3: they use the standard library only and import nothing from botlab (see hostlib.py). Each gets a
wrapper script in /usr/bin that finds the modules in <bin>/../lib/botlab-lab, so they also work from a plain
folder given as BOTLAB_HOST_ROOT, which is how the tests run them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "install_base", "install_package", "purge_package"]

LIB_DIR = "usr/lib/botlab-lab"
BASE_UNITS = "etc/botlab-lab/base-units.json"
UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system", "lib/systemd/system",
             "usr/lib/systemd/system")
TOOLS_DIR = Path(__file__).resolve().parent
WRAPPER = """#!/usr/bin/python3
# botlab virtual lab host tool: {command} (see {lib}/{module}.py)
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "botlab-lab"))
import hostlib  # noqa: E402
import {module}  # noqa: E402

hostlib.injected_faults(sys.argv)
sys.exit({module}.main(sys.argv))
"""

DOCKER_SERVICE = """[Unit]
Description=Docker Application Container Engine
Documentation=https://docs.docker.com
After=network-online.target docker.socket firewalld.service containerd.service time-set.target
Wants=network-online.target containerd.service
Requires=docker.socket

[Service]
Type=notify
# the default is not to use systemd for cgroups because the delegate issues still
# exists and systemd currently does not support the cgroup feature set required
# for containers run by docker
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
RestartSec=2
Restart=always

# Note that StartLimit* options were moved from "Service" to "Unit" in systemd 229.
# Both the old, and new location are accepted by systemd 229 and up, so using the old location
# to make them work for either version of systemd.
StartLimitBurst=3

# Note that StartLimitInterval was renamed to StartLimitIntervalSec in systemd 230.
# Both the old, and new name are accepted by systemd 230 and up, so using the old name to make
# this option work for either version of systemd.
StartLimitInterval=60s

# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity

# Comment TasksMax if your systemd version does not support it.
# Only systemd 226 and above support this option.
TasksMax=infinity

# set delegate yes so that systemd does not reset the cgroups of docker containers
Delegate=yes

# kill only the docker process, not all processes in the cgroup
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
"""

DOCKER_SOCKET = """[Unit]
Description=Docker Socket for the API

[Socket]
# If /var/run is not implemented as a symlink to /run, you may need to
# specify ListenStream=/var/run/docker.sock instead.
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
"""

CONTAINERD_SERVICE = """# Copyright The containerd Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
# Comment TasksMax if your systemd version does not supports it.
# Only systemd 226 and above support this version.
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""

CONTAINERD_CONFIG = """version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      snapshotter = "overlayfs"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = true
"""

NVIDIA_RUNTIME_CONFIG = """#accept-nvidia-visible-devices-as-volume-mounts = false
#accept-nvidia-visible-devices-envvar-when-unprivileged = true
disable-require = false
supported-driver-capabilities = "compat32,compute,display,graphics,ngx,utility,video"
#swarm-resource = "DOCKER_RESOURCE_GPU"

[nvidia-container-cli]
#debug = "/var/log/nvidia-container-toolkit.log"
environment = []
#ldcache = "/etc/ld.so.cache"
ldconfig = "@/sbin/ldconfig.real"
load-kmods = true
#no-cgroups = false
#path = "/usr/bin/nvidia-container-cli"
#root = "/run/nvidia/driver"
#user = "root:video"

[nvidia-container-runtime]
#debug = "/var/log/nvidia-container-runtime.log"
log-level = "info"
mode = "auto"
runtimes = ["docker-runc", "runc", "crun"]

[nvidia-container-runtime.modes]

[nvidia-container-runtime.modes.cdi]
annotation-prefixes = ["cdi.k8s.io/"]
default-kind = "nvidia.com/gpu"
spec-dirs = ["/etc/cdi", "/var/run/cdi"]

[nvidia-container-runtime.modes.csv]
mount-spec-path = "/etc/nvidia-container-runtime/host-files-for-container.d"

[nvidia-container-runtime-hook]
path = "nvidia-container-runtime-hook"
skip-mode-detection = false

[nvidia-ctk]
path = "nvidia-ctk"
"""

# Tools each package puts in /usr/bin (command -> module), unit files, config files, enabled units.
_PACKAGES: dict[str, dict[str, Any]] = {
    "containerd": {
        "commands": {"containerd": "containerd"},
        "units": {"containerd.service": CONTAINERD_SERVICE},
        "conffiles": {"etc/containerd/config.toml": CONTAINERD_CONFIG},
        "enable": {"multi-user.target": ["containerd.service"]},
        "dirs": ["etc/containerd"],
        "depends": [],
    },
    "docker.io": {
        "commands": {"dockerd": "dockerd", "docker": "docker"},
        "units": {"docker.service": DOCKER_SERVICE, "docker.socket": DOCKER_SOCKET},
        "conffiles": {},
        "enable": {"multi-user.target": ["docker.service"], "sockets.target": ["docker.socket"]},
        "dirs": ["etc/docker"],
        "depends": ["containerd"],  # as Ubuntu's docker.io: Depends: containerd
    },
    "nvidia-container-toolkit": {
        "commands": {"nvidia-container-runtime": "nvidia_container_runtime", "nvidia-ctk": "nvidia_ctk"},
        "units": {},
        "conffiles": {"etc/nvidia-container-runtime/config.toml": NVIDIA_RUNTIME_CONFIG},
        "enable": {},
        "dirs": [],
        "depends": [],
    },
    # NVIDIA's repository: nvidia-container-runtime is a package depending on the toolkit (what it installs), as
    # the containerd charm's default nvidia_apt_packages names it.
    "nvidia-container-runtime": {
        "commands": {}, "units": {}, "conffiles": {}, "enable": {}, "dirs": [],
        "depends": ["nvidia-container-toolkit"],
    },
    # The CUDA driver metapackage: a lab host's driver (nvidia-smi) comes with its spec's GPUs, so this installs
    # nothing of its own.
    "cuda-drivers": {"commands": {}, "units": {}, "conffiles": {}, "enable": {}, "dirs": [], "depends": []},
}
PACKAGES: tuple[str, ...] = tuple(sorted(_PACKAGES))


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.botlab-tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _install_modules(root: Path) -> None:
    lib = root / LIB_DIR
    lib.mkdir(parents=True, exist_ok=True)
    for source in sorted(TOOLS_DIR.glob("*.py")):
        if source.name != "__init__.py":
            shutil.copyfile(source, lib / f".{source.name}.botlab-tmp")
            os.replace(lib / f".{source.name}.botlab-tmp", lib / source.name)


def _install_command(root: Path, command: str, module: str) -> None:
    text = WRAPPER.format(command=command, lib=f"/{LIB_DIR}", module=module)
    _write(root / "usr/bin" / command, text, 0o755)


def _record_base_units(root: Path) -> None:
    """Remember the unit files the build machine's root brings along (ssh, postgresql, ...): they are not part of
    the lab host, so `systemctl --lab-boot` neither loads nor starts them (they still load when named)."""
    path = root / BASE_UNITS
    if path.exists():
        return
    ours = {unit for spec in _PACKAGES.values() for unit in spec["units"]}
    names: set[str] = set()
    for directory in UNIT_DIRS:
        real = root / directory
        if real.is_dir():
            names.update(entry.name for entry in real.iterdir() if "." in entry.name and not entry.is_dir())
    _write(path, json.dumps({"units": sorted(names - ours)}, indent=2) + "\n")


def install_base(root: Path, facts: Mapping[str, Any]) -> None:
    """Make `root` a lab host: the tool modules, systemctl/journalctl/lspci (nvidia-smi on hosts with GPUs), the
    host's facts in /etc/botlab-lab/host.json, and the NVIDIA container toolkit where facts say so."""
    root = Path(root)
    _install_modules(root)
    for command, module in (("systemctl", "systemctl"), ("journalctl", "journalctl"), ("lspci", "lspci")):
        _install_command(root, command, module)
    if facts.get("gpus"):
        _install_command(root, "nvidia-smi", "nvidia_smi")
    else:
        (root / "usr/bin/nvidia-smi").unlink(missing_ok=True)
    data = dict(facts)
    data.setdefault("gpus", [])
    _write(root / "etc/botlab-lab/host.json", json.dumps(data, indent=2, sort_keys=True) + "\n")
    _record_base_units(root)
    (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
    if facts.get("nvidia_toolkit"):
        _install_one(root, "nvidia-container-toolkit")


def install_package(root: Path, name: str) -> None:
    """Install one of PACKAGES (and what it depends on) as apt would: its commands, unit files and default
    configuration (an existing configuration file is kept), its units enabled. Starts nothing."""
    if name not in _PACKAGES:
        raise ValueError(f"unknown package {name!r}; the lab has {', '.join(PACKAGES)}")
    root = Path(root)
    _install_modules(root)
    _install_one(root, name)


def _install_one(root: Path, name: str) -> None:
    """install_package() once the tool modules are in place: `name`'s dependencies first, then its own files."""
    spec = _PACKAGES[name]
    for dependency in spec["depends"]:
        _install_one(root, dependency)
    for command, module in spec["commands"].items():
        _install_command(root, command, module)
    for directory in spec["dirs"]:
        (root / directory).mkdir(parents=True, exist_ok=True)
    fresh: set[str] = set()
    for unit, text in spec["units"].items():
        path = root / "lib/systemd/system" / unit
        if not path.exists():
            fresh.add(unit)
        _write(path, text)
    for conffile, text in spec["conffiles"].items():
        path = root / conffile
        if not path.exists():
            _write(path, text)
    for target, units in spec["enable"].items():
        for unit in units:
            link = root / "etc/systemd/system" / f"{target}.wants" / unit
            if unit in fresh and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(f"/lib/systemd/system/{unit}", link)


def purge_package(root: Path, name: str) -> None:
    """Purge one of PACKAGES as `apt-get purge` would: its commands, unit files, enable links and configuration
    files go (packages depending on it are not modelled: the lab's do not depend on what a charm purges)."""
    if name not in _PACKAGES:
        raise ValueError(f"unknown package {name!r}; the lab has {', '.join(PACKAGES)}")
    root = Path(root)
    spec = _PACKAGES[name]
    for command in spec["commands"]:
        (root / "usr/bin" / command).unlink(missing_ok=True)
    for target, units in spec["enable"].items():
        for unit in units:
            (root / "etc/systemd/system" / f"{target}.wants" / unit).unlink(missing_ok=True)
    for unit in spec["units"]:
        (root / "lib/systemd/system" / unit).unlink(missing_ok=True)
    for conffile in spec["conffiles"]:
        (root / conffile).unlink(missing_ok=True)
