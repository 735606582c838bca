"""What the lab's charms do on lab hosts, and what their units see of them.

The Juju emulator's units only model status; with hosts behind MAAS, a runtime charm's
install hook really installs its package on the unit's host and starts the service through
the host's systemctl (a failing start fails the hook), and a kubernetes-worker on a GPU host
with the docker runtime stays "Waiting for kubelet to start." until dockerd on that host runs
with the nvidia runtime registered (`docker info`), as the guide's manual step requires.

The containerd charm's config-changed hook does what the real charm does on its machine
(botlab.lab.juju.containerd_charm has the rules and their source): `gpu_driver` checked against
the host's `lspci -nnk`, the NVIDIA packages installed (or purged) accordingly, the whole
/etc/containerd/config.toml rendered again, containerd restarted.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botlab.lab import hosttools
from botlab.lab.hosts.manager import Host, HostManager
from botlab.lab.juju import catalogue, containerd_charm, units

if TYPE_CHECKING:
    from botlab.lab.juju import JujuEmulator
    from botlab.lab.juju.state import ModelState

# charm -> (host package, systemd unit) its install hook sets up
RUNTIME_CHARMS = {"containerd": ("containerd", "containerd.service"), "docker": ("docker.io", "docker.service")}


class HookFailed(RuntimeError):
    """The charm's work on its host failed; the message is what the hook's log would say."""


@dataclass
class ContainerdUnit:
    """The containerd charm's flags for one unit (containerd.nvidia.checked/available/ready)."""

    checked: str | None = None  # the gpu_driver the hardware was last checked for
    nvidia: bool = False  # containerd.nvidia.available
    ready: bool = False  # containerd.nvidia.ready: the NVIDIA packages are installed


class HostCharms:
    """Connects one Juju emulator to one lab's hosts (see the module doc)."""

    def __init__(self, juju: JujuEmulator, hosts: HostManager, poll_s: float = 0.2) -> None:
        self.juju = juju
        self.hosts = hosts
        self.poll_s = poll_s
        self._watched: set[str] = set()  # hostnames whose docker runtimes a gate waits on
        self._nvidia: dict[str, bool] = {}  # hostname -> dockerd runs with the nvidia runtime
        self._containerd: dict[tuple[str, str], ContainerdUnit] = {}  # (model uuid, unit) -> its flags
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
        if host is None or run.charm not in RUNTIME_CHARMS:
            return
        if run.hook == "config-changed" and run.charm == "containerd":
            self.containerd_config_changed(run, host)
        if run.hook != "install":
            return
        package, service = RUNTIME_CHARMS[run.charm]
        self.hosts.install_package(host.hostname, package)
        for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", service]):
            done = self.hosts.run(host.hostname, argv)
            if done.returncode != 0:
                raise HookFailed(f"{' '.join(argv)} on {host.hostname} failed: {done.stderr.strip()}")

    def containerd_config_changed(self, run: catalogue.HookRun, host: Host) -> None:
        """check_for_gpu(), install_nvidia_drivers()/unconfigure_nvidia(), config_changed() and
        restart_containerd() of the real charm, in that order."""
        with self._lock:
            flags = self._containerd.setdefault((run.model.uuid, run.unit), ContainerdUnit())
        driver = run.config.get("gpu_driver", "auto")
        if flags.checked != driver:
            lspci = self.hosts.run(host.hostname, ["lspci", "-nnk"], timeout=20)
            wanted = containerd_charm.nvidia_wanted(driver, lspci.stdout)
            if wanted is not None:  # an invalid option blocks the unit (the catalogue's check)
                flags.checked, flags.nvidia = str(driver), wanted
        packages = containerd_charm.nvidia_packages(run.config)
        if flags.nvidia and not flags.ready:
            self._purge(host.hostname, packages)
            missing = [p for p in packages if p not in hosttools.PACKAGES]
            if missing:
                raise HookFailed(f"apt-get install on {host.hostname} failed: E: Unable to locate package {missing[0]}")
            for package in packages:
                self.hosts.install_package(host.hostname, package)
            flags.ready = True
        elif flags.ready and not flags.nvidia:
            self._purge(host.hostname, packages)
            flags.ready = False
        try:
            text = containerd_charm.render(run.config, flags.nvidia)
        except ValueError:
            return  # invalid custom_registries: the real charm blocks and renders nothing
        path = containerd_charm.CONFIG_PATH
        done = self.hosts.run(host.hostname, ["sh", "-c", 'mkdir -p "${1%/*}" && cat > "$1"', "sh", path], input=text)
        if done.returncode != 0:
            raise HookFailed(f"writing {path} on {host.hostname} failed: {done.stderr.strip()}")
        # A failed restart is logged and retried on a later hook, not a failed hook.
        self.hosts.run(host.hostname, ["systemctl", "restart", "containerd.service"])

    def _purge(self, hostname: str, packages: list[str]) -> None:
        """apt_purge(configured packages | {"^nvidia-.*"}) as the charm does, over the lab's packages."""
        pattern = re.compile(containerd_charm.PURGE_PATTERN)
        names = sorted({p for p in hosttools.PACKAGES if pattern.match(p) or p in packages})
        script = (Path(hosttools.__file__).read_text() + f"\nTOOLS_DIR = Path({'/' + hosttools.LIB_DIR!r})\n"
                  + "".join(f"purge_package(Path('/'), {name!r})\n" for name in names))
        done = self.hosts.run(hostname, ["/usr/bin/python3", "-"], input=script)
        if done.returncode != 0:
            raise HookFailed(f"apt-get purge on {hostname} failed: {done.stderr.strip()}")

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
