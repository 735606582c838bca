"""A lab host in a temp folder: the host tools installed with install_base/install_package and run as real
subprocesses through their wrapper scripts with BOTLAB_HOST_ROOT set. Every daemon a test starts is stopped at
teardown, and the test fails if any process of that host is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botlab.lab.hosttools import install_base, install_package

GPU_FACTS: dict[str, Any] = {
    "hostname": "gpu-node-1",
    "driver_version": "550.127.05",
    "cuda_version": "12.4",
    "nvidia_toolkit": True,
    "gpus": [
        {"index": 0, "model": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-5f3ad5a8-7d6c-8e4f-1a2b-3c4d5e6f7a80",
         "bus_id": "00000000:07:00.0", "memory_mib": 81920},
        {"index": 1, "model": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-6a4be6b9-8e7d-9f50-2b3c-4d5e6f7a8b91",
         "bus_id": "00000000:0A:00.0", "memory_mib": 81920},
    ],
}
CPU_FACTS: dict[str, Any] = {"hostname": "cpu-node-1", "gpus": [], "nvidia_toolkit": False}

NOTIFY_DAEMON = """#!/usr/bin/python3
# A test daemon: --fail N exits N before it is ready; otherwise it notifies readiness and serves until stopped.
import os
import sys

sys.path.insert(0, os.environ["BOTLAB_HOST_ROOT"] + "/usr/lib/botlab-lab")
import hostlib

print("testd argv:", " ".join(sys.argv[1:]), flush=True)
print("testd env GREETING=" + os.environ.get("GREETING", ""), flush=True)
if "--fail" in sys.argv:
    print("testd: boom", flush=True)
    sys.exit(int(sys.argv[sys.argv.index("--fail") + 1]))
hostlib.block_stop_signals()
hostlib.notify_ready()
hostlib.serve_until_stopped(lambda: print("testd: stopping", flush=True))
"""


def host_processes(root: Path) -> list[int]:
    """Live (non-zombie) processes whose environment names this host root."""
    needle = f"BOTLAB_HOST_ROOT={root}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry))
    return found


class Host:
    def __init__(self, root: Path) -> None:
        self.root = root

    def env(self) -> dict[str, str]:
        return {"BOTLAB_HOST_ROOT": str(self.root), "LANG": "C.UTF-8", "TZ": "UTC",
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a host tool (`args[0]` is its name in /usr/bin) as the lab would over SSH."""
        command = [str(self.root / "usr/bin" / args[0]), *args[1:]]
        return subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)

    def ok(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode == 0, f"{args} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
        return proc.stdout

    def path(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def write(self, host_path: str, text: str, mode: int = 0o644) -> None:
        target = self.path(host_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def read(self, host_path: str) -> str:
        return self.path(host_path).read_text()

    def json(self, host_path: str) -> Any:
        return json.loads(self.read(host_path))

    def install_test_daemon(self) -> None:
        self.write("/usr/local/bin/testd", NOTIFY_DAEMON, 0o755)

    def show(self, unit: str, prop: str) -> str:
        return self.ok("systemctl", "show", "-p", prop, "--value", unit).rstrip("\n")

    def running_units(self) -> list[str]:
        runtime = self.path("/run/systemd-lab/runtime")
        units = []
        for path in sorted(runtime.glob("*.json")) if runtime.is_dir() else []:
            state = json.loads(path.read_text())
            if state.get("main_pid"):
                units.append(path.name[: -len(".json")])
        return units

    def cleanup(self) -> list[int]:
        """Stop what runs; the processes still left after that (killed here, reported by the fixture)."""
        for unit in self.running_units():
            self.run("systemctl", "stop", unit)
        deadline = time.monotonic() + 5
        while (left := host_processes(self.root)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left


def make_host(tmp_path: Path, facts: dict[str, Any], packages: tuple[str, ...] = ()) -> Host:
    root = tmp_path / "host"
    root.mkdir()
    install_base(root, facts)
    for package in packages:
        install_package(root, package)
    return Host(root)


@pytest.fixture
def host_factory(tmp_path: Path) -> Iterator[Any]:
    hosts: list[Host] = []

    def factory(facts: dict[str, Any] | None = None, packages: tuple[str, ...] = (), name: str = "h") -> Host:
        folder = tmp_path / name
        folder.mkdir()
        host = make_host(folder, facts if facts is not None else CPU_FACTS, packages)
        hosts.append(host)
        return host

    yield factory
    leftovers = {str(host.root): host.cleanup() for host in hosts}
    assert not any(leftovers.values()), f"processes left behind: {leftovers}"


@pytest.fixture
def host(host_factory: Any) -> Host:
    """A CPU-only host with the test daemon installed."""
    h: Host = host_factory(CPU_FACTS)
    h.install_test_daemon()
    return h


@pytest.fixture
def docker_host(host_factory: Any) -> Host:
    """A GPU host with the NVIDIA toolkit and docker.io (and so containerd) installed."""
    h: Host = host_factory(GPU_FACTS, ("docker.io",))
    return h
