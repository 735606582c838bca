"""Start, stop and inspect a virtual lab running in the background (`botlab lab ...`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botlab.errors import StageError, UsageError
from botlab.lab.hosttools.hostlib import pid_alive

START_TIMEOUT_S = 30.0


def no_hosts_cidr(lab_dir: Path) -> str:
    """A records-only lab's machine addresses: a /16 of loopback picked by the lab folder, so two
    such labs' services (the Kubernetes API on the control plane's address) do not collide."""
    from botlab.lab.hosts.names import lab_id

    return f"127.{64 + int(lab_id(lab_dir), 16) % 128}.0.0/16"


@dataclass(frozen=True)
class LabInfo:
    dir: Path
    pid: int
    maas_url: str
    control_url: str
    inventory: Path
    name: str
    alive: bool
    juju_endpoint: str = ""
    juju_data: str = ""
    hosts: bool = False  # deployed machines are SSH hosts in network namespaces
    juju_control_url: str = ""  # the Juju emulator's control API (loopback only)


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not count)."""
    return pid_alive(pid)


def read_info(lab_dir: Path) -> LabInfo | None:
    try:
        data = json.loads((lab_dir / "lab.json").read_text())
    except (OSError, ValueError):
        return None
    return LabInfo(lab_dir, int(data["pid"]), data["maas_url"], data["control_url"],
                   Path(data["inventory"]), data["name"], process_alive(int(data["pid"])),
                   data.get("juju_endpoint", ""), data.get("juju_data", ""), bool(data.get("hosts")),
                   data.get("juju_control_url", ""))


def start(
    lab_dir: Path,
    spec_doc: dict[str, Any],
    *,
    name: str = "lab",
    maas_port: int = 0,
    hosts: bool | None = None,
) -> LabInfo:
    """Spawn the lab daemon for `spec_doc` and wait until it serves (lab.json written).
    `hosts`: back deployed machines with SSH hosts (None: when this process can, i.e. root)."""
    from botlab.lab.hosts.network import hosts_supported
    from botlab.lab.spec import NetworkSpec, load_spec

    why_not = hosts_supported()
    if hosts and why_not:
        raise UsageError(f"--hosts: {why_not}")
    if hosts is None:
        hosts = why_not is None

    lab_dir = lab_dir.resolve()
    running = read_info(lab_dir)
    if running and running.alive:
        raise UsageError(f"a lab is already running in {lab_dir} (pid {running.pid});"
                         f" stop it with `botlab lab stop --dir {lab_dir}`")
    if not hosts and (spec_doc.get("network") or {}).get("cidr", NetworkSpec.cidr) == NetworkSpec.cidr:
        # Nothing holds a records-only lab's addresses: put them on loopback, so a stage that
        # connects to a machine (the gpu stage's SSH) is refused here and sends nothing away.
        spec_doc = {**spec_doc, "network": {**(spec_doc.get("network") or {}), "cidr": no_hosts_cidr(lab_dir)}}
    load_spec(spec_doc)  # a bad spec fails here, in the caller, not in the background
    lab_dir.mkdir(parents=True, exist_ok=True)
    import yaml

    (lab_dir / "spec.yaml").write_text(yaml.safe_dump(spec_doc, sort_keys=False))
    (lab_dir / "settings.json").write_text(json.dumps({"name": name, "maas_port": maas_port, "hosts": hosts}))
    (lab_dir / "lab.json").unlink(missing_ok=True)
    log = open(lab_dir / "lab.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "botlab.lab.daemon", str(lab_dir)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        cwd=lab_dir,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_info(lab_dir)
        if info is not None and info.pid == proc.pid:
            return info
        if proc.poll() is not None:
            tail = (lab_dir / "lab.log").read_text(errors="replace")[-2000:]
            raise StageError(f"the lab exited with code {proc.returncode}:\n{tail}",
                             system="lab", operation="start")
        time.sleep(0.05)
    proc.kill()
    raise StageError(f"the lab did not start within {START_TIMEOUT_S:.0f}s; see {lab_dir}/lab.log",
                     system="lab", operation="start")


def stop(lab_dir: Path, timeout: float = 20.0) -> LabInfo | None:
    """Stop the lab in `lab_dir`; returns what was running (None if nothing was)."""
    info = read_info(lab_dir.resolve())
    if info is None:
        return None
    if info.alive:
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
    (info.dir / "lab.json").unlink(missing_ok=True)
    if info.hosts:  # whatever hosts a killed daemon left behind (namespaces, links, state)
        from botlab.lab.hosts import network

        network.sweep_lab(info.dir)
    return info


def read_state(info: LabInfo) -> dict[str, Any]:
    """The MAAS emulator's `/_lab/state` document (loopback only): machines, hosts ..."""
    with urllib.request.urlopen(info.control_url + "state", timeout=5) as answer:
        return dict(json.loads(answer.read()))


def machine_states(state: Mapping[str, Any]) -> dict[str, str]:
    """Hostname -> MAAS status name, from a `read_state` document."""
    return {str(m["hostname"]): str(m["status_name"]) for m in state.get("machines") or []}


def hosts_state(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The running lab hosts (hostname, address, host keys ...) from a `read_state` document."""
    return list(state.get("hosts") or [])
