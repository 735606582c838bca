"""HostManager: the lab's hosts, booted when the virtual MAAS deploys a machine and wiped when
it releases one. Operations on one machine run in order on a worker pool; a host is a
process tree (PID 1: boot.py) in namespaces named after the lab (see names.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botlab.lab.hosts import cloudinit, names, network
from botlab.lab.hosts.boot import HOST_ENV, default_signals
from botlab.lab.hosts.network import HostError, hosts_supported  # re-exported: callers import them from here
from botlab.lab.hosts.rootfs import HostSpec
from botlab.lab.maas.hostbackend import BootRequest
from botlab.lab.spec import LabSpec, MachineSpec, gpu_pci_address

BOOT_TIMEOUT_S = 30.0


@dataclass
class Host:
    """One running lab host."""

    system_id: str
    hostname: str
    address: str
    netns: str
    pid: int  # boot.py, the host's PID 1, as this machine's PID namespace numbers it
    process: subprocess.Popen[bytes]
    host_keys: list[str]  # public halves, OpenSSH format
    facts: dict[str, Any]  # what the host tools show (GPUs ...)

    @property
    def gpus(self) -> int:
        return len(self.facts.get("gpus") or [])

    @property
    def root(self) -> Path:
        """The host's root filesystem as seen from outside (through its PID 1), for reading:
        what this machine's root writes there is not the host root's (`HostManager.run` and
        `install_package` act as the host's root)."""
        return Path(f"/proc/{self.pid}/root")

    def describe(self) -> dict[str, Any]:
        return {"system_id": self.system_id, "hostname": self.hostname, "address": self.address,
                "netns": self.netns, "pid": self.pid, "host_keys": list(self.host_keys), "gpus": self.gpus}


def gpu_facts(hardware: MachineSpec | None, hostname: str) -> dict[str, Any]:
    """What the host tools show of the machine's GPUs (nvidia-smi, lspci)."""
    facts: dict[str, Any] = {"hostname": hostname, "gpus": [], "nvidia_toolkit": False}
    if hardware is None or hardware.gpus.count == 0:
        return facts
    gpus = hardware.gpus
    memory_gb = next((int(part[:-2]) for part in gpus.model.replace("-", " ").split() if part.endswith("GB")
                      and part[:-2].isdigit()), 80)
    for index in range(gpus.count):
        facts["gpus"].append({
            "index": index,
            "model": gpus.model,
            "uuid": f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{hostname}.gpu{index}.botlab.invalid')}",
            "bus_id": "0000" + gpu_pci_address(index).upper(),  # nvidia-smi's form of what MAAS shows
            "memory_mib": memory_gb * 1024 - 1024 // 2,
        })
    facts["driver_version"] = gpus.driver_version
    facts["cuda_version"] = "12.2"
    facts["nvidia_toolkit"] = gpus.toolkit
    return facts


class HostManager:
    """Boots and wipes the lab's hosts; the MAAS emulator's HostBackend."""

    def __init__(self, lab_dir: Path, spec: LabSpec, *, workers: int = 8) -> None:
        problem = hosts_supported()
        if problem:
            raise HostError(problem)
        self.lab_dir = lab_dir.resolve()
        self.lab = names.lab_id(self.lab_dir)
        self.spec = spec
        self.state_dir = self.lab_dir / network.HOSTS_DIR
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lab-host")
        self._lock = threading.Lock()
        self._hosts: dict[str, Host] = {}  # by system id
        self._tail: dict[str, Future[None]] = {}  # each machine's last queued operation
        self._index = 0
        self._started = False

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Remove what a crashed run of this lab left behind, then make the lab bridge."""
        network.sweep_lab(self.lab_dir)
        self.state_dir.mkdir(mode=0o700, parents=True)
        net = self.spec.network
        network.ensure_bridge(self.lab, net.cidr, net.gateway_ip)
        self._started = True

    def stop(self) -> None:
        """Stop every host and remove every namespace, interface and folder the lab made."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            self._stop_host(host)
        network.sweep_lab(self.lab_dir)
        self._started = False

    # --- the MAAS emulator's HostBackend ---------------------------------------------------

    def boot(self, request: BootRequest, done: Callable[[str | None], None]) -> None:
        def op() -> None:
            try:
                self._boot(request)
            except Exception as exc:  # reported to MAAS as a failed deployment
                done(str(exc))
            else:
                done(None)

        self._queue(request.system_id, op)

    def shutdown(self, system_id: str) -> None:
        def op() -> None:
            with self._lock:
                host = self._hosts.pop(system_id, None)
            if host is not None:
                try:
                    self._stop_host(host)
                except (HostError, OSError) as exc:  # the lab's log says so; `lab stop` sweeps it
                    print(f"lab host {host.hostname} did not stop cleanly: {exc}", file=sys.stderr, flush=True)

        self._queue(system_id, op)

    def _queue(self, system_id: str, op: Callable[[], None]) -> None:
        """Run `op` after every operation queued before it for the same machine."""
        with self._lock:
            before = self._tail.get(system_id)

            def run() -> None:
                if before is not None:
                    futures.wait([before])  # its outcome is its own (a failed boot told MAAS already)
                op()

            self._tail[system_id] = self._pool.submit(run)

    # --- reading and running ------------------------------------------------------------------

    def hosts(self) -> list[Host]:
        with self._lock:
            return sorted(self._hosts.values(), key=lambda h: h.hostname)

    def host(self, hostname: str) -> Host | None:
        with self._lock:
            return next((h for h in self._hosts.values() if h.hostname == hostname), None)

    def run(self, hostname: str, argv: Sequence[str], *, input: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command as root inside a host (its namespaces and root), as a charm's hook
        would; the result's returncode, stdout and stderr are the command's."""
        host = self.host(hostname)
        if host is None:
            raise HostError(f"no lab host {hostname} is running")
        # -U: as the host's root (its user namespace), never this machine's.
        return subprocess.run(["nsenter", "-t", str(host.pid), "-U", "-m", "-u", "-n", "-p", "-r", "-w", "--", *argv],
                              input=input, capture_output=True, text=True, timeout=timeout,
                              env={**HOST_ENV, "HOME": "/root"}, preexec_fn=default_signals)

    def install_package(self, hostname: str, package: str) -> None:
        """Install one of the host tools' packages on a host as apt would there: run by the
        host's root inside it, so the files are the host's (this machine's root writing through
        `Host.root` would leave files the host's root cannot change)."""
        from botlab.lab import hosttools

        if package not in hosttools.PACKAGES:
            raise ValueError(f"unknown package {package!r}; the lab has {', '.join(hosttools.PACKAGES)}")
        # The installer is the host tools' own (standard library only), run by the host's
        # python3 from the tool modules its boot installed.
        script = (Path(hosttools.__file__).read_text()
                  + f"\nTOOLS_DIR = Path({'/' + hosttools.LIB_DIR!r})\ninstall_package(Path('/'), {package!r})\n")
        done = self.run(hostname, ["/usr/bin/python3", "-"], input=script)
        if done.returncode != 0:
            raise HostError(f"installing {package} on {hostname} failed: {done.stderr.strip()[-500:]}")

    def describe(self) -> list[dict[str, Any]]:
        return [h.describe() for h in self.hosts()]

    # --- one host --------------------------------------------------------------------------

    def _boot(self, request: BootRequest) -> None:
        if not self._started:
            raise HostError("the lab's host manager is not started")
        config = cloudinit.parse(request.user_data, request.ssh_keys, request.hostname)
        with self._lock:
            old = self._hosts.pop(request.system_id, None)
            self._index += 1
            index = self._index
        if old is not None:
            self._stop_host(old)
        netns = names.netns(self.lab, request.hostname)
        net = self.spec.network
        network.add_host(self.lab, index, netns, request.address, net.cidr, net.gateway_ip)
        mount_dir = self.state_dir / request.hostname
        mount_dir.mkdir(mode=0o700, exist_ok=True)
        spec = HostSpec(
            hostname=request.hostname, address=request.address, mount_dir=str(mount_dir),
            default_user=config.default_user, authorized_keys=config.authorized_keys,
            host_keys=[dataclasses.asdict(k) for k in config.host_keys],
            facts=gpu_facts(request.hardware, request.hostname), hide=hidden_paths(self.lab_dir),
        )
        spec_file = self.state_dir / f"{request.hostname}.boot.json"
        fd = os.open(spec_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(dataclasses.asdict(spec), fh)
        process: subprocess.Popen[bytes] | None = None
        try:
            with open(self.state_dir / f"{request.hostname}.log", "ab") as log:
                process = subprocess.Popen(
                    ["nsenter", f"--net=/run/netns/{netns}", "unshare", "--mount", "--uts", "--pid", "--fork",
                     "--kill-child", "--propagation", "private", sys.executable, "-m", "botlab.lab.hosts.boot",
                     str(spec_file)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                    preexec_fn=default_signals,
                )
            self._wait_ready(process, request.hostname)
            pid = _only_child(process.pid)
        except Exception:
            if process is not None:
                process.kill()
                process.wait()
            network.remove_host(netns)
            spec_file.unlink(missing_ok=True)
            raise
        host = Host(request.system_id, request.hostname, request.address, netns, pid, process,
                    [k.public for k in config.host_keys], spec.facts)
        with self._lock:
            self._hosts[request.system_id] = host

    def _wait_ready(self, process: subprocess.Popen[bytes], hostname: str) -> None:
        assert process.stdout is not None
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        out = b""
        while b"READY\n" not in out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostError(f"host {hostname} did not boot within {BOOT_TIMEOUT_S:.0f}s; "
                                f"see {self.state_dir / (hostname + '.log')}")
            ready, _, _ = select.select([process.stdout], [], [], left)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    tail = (self.state_dir / f"{hostname}.log").read_text(errors="replace").strip()
                    raise HostError(tail.splitlines()[-1] if tail else f"host {hostname} exited while booting")
                out += chunk
        process.stdout.close()

    def _stop_host(self, host: Host) -> None:
        """Power off: PID 1 ends, the kernel kills the rest of the host, its tmpfs goes."""
        # To PID 1 itself: unshare ignores SIGTERM while it waits for its child.
        with contextlib.suppress(ProcessLookupError):
            os.kill(host.pid, signal.SIGTERM)
        try:
            host.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            host.process.kill()
            host.process.wait()
        network.remove_host(host.netns)
        shutil.rmtree(self.state_dir / host.hostname, ignore_errors=True)


def hidden_paths(lab_dir: Path) -> list[str]:
    """Paths of this machine a host must not see beyond what isolation.hide leaves out of
    every host anyway (anything outside the OS folders): its own lab folder, every running
    lab's folder (a lab daemon's command line names it), botlab's checkout and virtualenv,
    wherever they are."""
    import botlab

    paths = {str(lab_dir)}
    package = Path(botlab.__file__).resolve().parent
    if any((package.parent / marker).exists() for marker in ("setup.cfg", "pyproject.toml", ".git")):
        paths.add(str(package.parent))  # a checkout, not site-packages
    if sys.prefix != sys.base_prefix:
        paths.add(str(Path(sys.prefix).resolve()))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"botlab.lab.daemon" in argv and argv.index(b"botlab.lab.daemon") + 1 < len(argv):
                folder = argv[argv.index(b"botlab.lab.daemon") + 1].decode(errors="replace")
                if folder.startswith("/"):
                    paths.add(folder)
    return sorted(paths)


def _only_child(pid: int) -> int:
    """The PID of `pid`'s one child (unshare's fork: the host's PID 1)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    if len(children) != 1:
        raise HostError(f"expected one child of unshare (pid {pid}), found {children}")
    return int(children[0])
