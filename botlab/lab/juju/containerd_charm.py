"""What the containerd charm decides and writes on its machine, as the real charm does.

Source: charmed-kubernetes/charm-containerd, tag 1.31+ck1 (commit 4260c72eb4546e9f47a65dce7f6eee189fc095c0),
reactive/containerd.py, templates/config_v2.toml, config.yaml, lib/charms/layer/containerd.py. The facts it
follows (the rendering below is the lab's own, not the template's text):

- `gpu_driver` is one of auto, nvidia, none (check_for_gpu()); `auto` means NVIDIA when the lower-cased output of
  `lspci -nnk` mentions "nvidia", `nvidia` means NVIDIA whatever the hardware ("Caution: setting this to nvidia
  will cause nvidia drivers to be installed ... even if a GPU is not present"), `none` never. A changed
  `gpu_driver` makes the charm check again (gpu_config_changed()).
- With NVIDIA on, the charm purges `^nvidia-.*` and the configured packages, then installs `nvidia_apt_packages`
  (default "cuda-drivers nvidia-container-runtime") and holds them (install_nvidia_drivers()); with NVIDIA
  turned off after that, it purges them again (unconfigure_nvidia()).
- On every config change it renders the whole /etc/containerd/config.toml from its template (config_changed()),
  so anything else in that file (an `imports` line an operator added) is gone; `runtime` "auto" becomes
  `nvidia-container-runtime` with NVIDIA on, else `runc`; a runtime other than runc is `default_runtime_name`,
  and a runtime whose name contains "nvidia" gets its own `runtimes.<name>` section (runtime_type
  io.containerd.runc.v2, options.BinaryName /usr/bin/<name>). The template carries no `imports`.
- Then containerd is restarted (restart_containerd(); a failed restart is retried on a later hook, not a
  hook failure).
- The sandbox image is `rocks.canonical.com:443/cdk/pause:3.6` when related to kubernetes (get_sandbox_image());
  `docker.io` is always among the registry mirrors (insert_docker_io_to_custom_registries()).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

SOURCE = {"repo": "charmed-kubernetes/charm-containerd", "tag": "1.31+ck1",
          "commit": "4260c72eb4546e9f47a65dce7f6eee189fc095c0"}
CONFIG_PATH = "/etc/containerd/config.toml"
NVIDIA_RUNTIME = "nvidia-container-runtime"
GPU_DRIVERS = ("auto", "nvidia", "none")
SANDBOX_IMAGE = "rocks.canonical.com:443/cdk/pause:3.6"
RUNTIME_TYPE = "io.containerd.runc.v2"  # runc.v1 only where cgroup2 cannot be mounted: not a lab host
CRI = '"io.containerd.grpc.v1.cri"'
PURGE_PATTERN = r"^nvidia-.*"


def nvidia_wanted(gpu_driver: Any, lspci_nnk: str) -> bool | None:
    """check_for_gpu(): whether the NVIDIA driver is on; None for an invalid `gpu_driver` (the unit blocks)."""
    if gpu_driver not in GPU_DRIVERS:
        return None
    found = lspci_nnk.rstrip().lower().count("nvidia")
    return gpu_driver == "nvidia" or (gpu_driver == "auto" and found > 0)


def nvidia_packages(config: Mapping[str, Any]) -> list[str]:
    """_configured_nvidia_packages(): the `nvidia_apt_packages` option, split on whitespace."""
    return sorted(set(str(config.get("nvidia_apt_packages") or "cuda-drivers nvidia-container-runtime").split()))


def runtime_name(config: Mapping[str, Any], nvidia: bool) -> str:
    runtime = str(config.get("runtime") or "auto")
    if runtime == "auto":
        return NVIDIA_RUNTIME if nvidia else "runc"
    return runtime


def _q(text: str) -> str:
    return json.dumps(text)


def _host_of(url: str) -> str:
    """strip_url(): the registry's host from its URL."""
    return re.sub(r"^[a-z][a-z0-9+.-]*://", "", url).rstrip("/")


def registries(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """custom_registries (a JSON list) with docker.io first unless given; ValueError when it is not valid."""
    raw = config.get("custom_registries") or "[]"
    items = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("url") for i in items):
        raise ValueError("custom_registries must be a list of objects, each with a url")
    out = [{**item, "host": item.get("host") or _host_of(str(item["url"]))} for item in items]
    if not any(item["host"] == "docker.io" for item in out):
        out.insert(0, {"url": "https://registry-1.docker.io", "host": "docker.io"})
    return out


def render(config: Mapping[str, Any], nvidia: bool, sandbox_image: str = SANDBOX_IMAGE) -> str:
    """The whole /etc/containerd/config.toml (config version 2) the charm writes for this config."""
    runtime = runtime_name(config, nvidia)
    cri = f"plugins.{CRI}"
    out = [
        "version = 2",
        'root = "/var/lib/containerd"',
        'state = "/run/containerd"',
        "oom_score = 0",
        "",
        "[grpc]",
        '  address = "/run/containerd/containerd.sock"',
        "  uid = 0",
        "  gid = 0",
        "  max_recv_message_size = 16777216",
        "  max_send_message_size = 16777216",
        "",
        "[debug]",
        '  address = ""',
        "  uid = 0",
        "  gid = 0",
        '  level = ""',
        "",
        "[metrics]",
        '  address = ""',
        "  grpc_histogram = false",
        "",
        "[cgroup]",
        '  path = ""',
        "",
        '[plugins."io.containerd.monitor.v1.cgroups"]',
        "  no_prometheus = false",
        "",
        f"[{cri}]",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  enable_selinux = false",
        f"  sandbox_image = {_q(sandbox_image)}",
        "  stats_collect_period = 10",
        "  systemd_cgroup = false",
        "  enable_tls_streaming = false",
        "  max_container_log_line_size = 16384",
        "",
        f"[{cri}.containerd]",
        "  no_pivot = false",
    ]
    if runtime.lower() != "runc":
        out.append(f"  default_runtime_name = {_q(runtime)}")
    out += ["", f"[{cri}.containerd.runtimes.runc]", f"  runtime_type = {_q(RUNTIME_TYPE)}"]
    if "nvidia" in runtime:
        out += ["", f"[{cri}.containerd.runtimes.{_q(runtime)}]", "  privileged_without_host_devices = false",
                '  runtime_engine = ""', '  runtime_root = ""', f"  runtime_type = {_q(RUNTIME_TYPE)}",
                "", f"[{cri}.containerd.runtimes.{_q(runtime)}.options]", f"  BinaryName = {_q('/usr/bin/' + runtime)}"]
    out += ["", f"[{cri}.cni]", '  bin_dir = "/opt/cni/bin"', '  conf_dir = "/etc/cni/net.d"', '  conf_template = ""',
            "", f"[{cri}.registry.mirrors]"]
    regs = registries(config)
    for reg in regs:
        out += ["", f"[{cri}.registry.mirrors.{_q(reg['host'])}]", f"  endpoint = [{_q(str(reg['url']))}]"]
    for reg in regs:
        if reg.get("username") and reg.get("password"):
            password = reg["password"]
            text = json.dumps(password) if isinstance(password, dict) else str(password)
            out += ["", f"[{cri}.registry.configs.{_q(str(reg['url']))}.auth]",
                    f"  username = {_q(str(reg['username']))}", f"  password = {_q(text)}"]
    out += [
        "", f"[{cri}.x509_key_pair_streaming]", '  tls_cert_file = ""', '  tls_key_file = ""',
        "", '[plugins."io.containerd.service.v1.diff-service"]', '  default = ["walking"]',
        "", '[plugins."io.containerd.runtime.v1.linux"]',
        f"  shim = {_q(str(config.get('shim') or 'containerd-shim'))}",
        f"  runtime = {_q(runtime)}", '  runtime_root = ""', "  no_shim = false", "  shim_debug = false",
        "", '[plugins."io.containerd.internal.v1.opt"]', '  path = "/opt/containerd"',
        "", '[plugins."io.containerd.internal.v1.restart"]', '  interval = "10s"',
        "", '[plugins."io.containerd.gc.v1.scheduler"]', "  pause_threshold = 0.02", "  deletion_threshold = 0",
        "  mutation_threshold = 100", '  schedule_delay = "0s"', '  startup_delay = "100ms"',
    ]
    return "\n".join(out) + "\n"
