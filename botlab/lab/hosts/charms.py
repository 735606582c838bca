"""What the lab's charms do on lab hosts, and what their units see of them.

The Juju emulator's units only model status; with hosts behind MAAS, a runtime charm's
install hook really installs its package on the unit's host and starts the service through
the host's systemctl (a failing start fails the hook), and a kubernetes-worker on a GPU host
with the docker runtime stays "Waiting for kubelet to start." until dockerd on that host runs
with the nvidia runtime registered (`docker info`), as the guide's manual step requires.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from botlab.lab.hosts.manager import Host, HostManager
from botlab.lab.juju import catalogue, units

if TYPE_CHECKING:
    from botlab.lab.juju import JujuEmulator
    from botlab.lab.juju.state import ModelState

# charm -> (host package, systemd unit) its install hook sets up
RUNTIME_CHARMS = {"containerd": ("containerd", "containerd.service"), "docker": ("docker.io", "docker.service")}


class HookFailed(RuntimeError):
    """The charm's work on its host failed; the message is what the hook's log would say."""


class HostCharms:
    """Connects one Juju emulator to one lab's hosts (see the module doc)."""

    def __init__(self, juju: JujuEmulator, hosts: HostManager, poll_s: float = 0.2) -> None:
        self.juju = juju
        self.hosts = hosts
        self.poll_s = poll_s
        self._watched: set[str] = set()  # hostnames whose docker runtimes a gate waits on
        self._nvidia: dict[str, bool] = {}  # hostname -> dockerd runs with the nvidia runtime
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="lab-host-gates", daemon=True)

    def attach(self) -> HostCharms:
        catalogue.register_hook_handler(self.on_hook)
        catalogue.register_host_probe(self.gate_ready)
        self._poller.start()
        return self

    def detach(self) -> None:
        catalogue.unregister_hook_handler(self.on_hook)
        catalogue.unregister_host_probe(self.gate_ready)
        self._stop.set()
        if self._poller.is_alive():
            self._poller.join()

    def _ours(self, model: ModelState, hostname: str) -> Host | None:
        # One lookup by key: hook handlers run in worker threads while the loop changes models.
        if self.juju.state.models.get(model.uuid) is not model:
            return None  # another emulator's model, in the same process
        return self.hosts.host(hostname) if hostname else None

    # --- hooks -------------------------------------------------------------------------------

    def on_hook(self, run: catalogue.HookRun) -> None:
        host = self._ours(run.model, run.hostname)
        if host is None or run.hook != "install" or run.charm not in RUNTIME_CHARMS:
            return
        package, service = RUNTIME_CHARMS[run.charm]
        self.hosts.install_package(host.hostname, package)
        for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", service]):
            done = self.hosts.run(host.hostname, argv)
            if done.returncode != 0:
                raise HookFailed(f"{' '.join(argv)} on {host.hostname} failed: {done.stderr.strip()}")

    # --- host gates --------------------------------------------------------------------------

    def gate_ready(self, check: catalogue.HostCheck) -> bool:
        host = self._ours(check.model, check.hostname)
        if host is None or check.gate != "kubelet" or not host.gpus or "docker" not in check.subordinates:
            return True
        with self._lock:
            self._watched.add(host.hostname)
            return self._nvidia.get(host.hostname, False)

    def docker_has_nvidia(self, hostname: str) -> bool:
        """Whether dockerd on the host runs with a runtime named nvidia (`docker info`)."""
        done = self.hosts.run(hostname, ["docker", "info", "--format", "{{json .Runtimes}}"], timeout=20)
        try:
            runtimes = json.loads(done.stdout or "null")  # `null` when no daemon answers, as docker prints
        except ValueError:
            return False
        return done.returncode == 0 and isinstance(runtimes, dict) and "nvidia" in runtimes

    def _poll(self) -> None:
        seen: dict[str, tuple[bytes, bool]] = {}  # hostname -> dockerd state it was last asked in
        while not self._stop.wait(self.poll_s):
            with self._lock:
                watched = sorted(self._watched)
            changed = False
            for hostname in watched:
                host = self.hosts.host(hostname)
                if host is None:
                    continue
                # `docker info` runs only when dockerd's state on the host changed (a restart,
                # a stop, a crash): cheap reads here, a process on the host only then.
                marker = _dockerd_marker(host)
                if seen.get(hostname) == marker:
                    continue
                seen[hostname] = marker
                ready = self.docker_has_nvidia(hostname)
                with self._lock:
                    changed |= self._nvidia.get(hostname) != ready
                    self._nvidia[hostname] = ready
            if changed:
                units.recheck(self.juju)


def _dockerd_marker(host: Host) -> tuple[bytes, bool]:
    """dockerd's state file on the host and whether the process it names still runs there."""
    try:
        text = (host.root / "run/docker/lab-state.json").read_bytes()
        pid = int(json.loads(text).get("pid", 0))
    except (OSError, ValueError, AttributeError):
        return b"", False
    return text, (host.root / "proc" / str(pid)).exists()
