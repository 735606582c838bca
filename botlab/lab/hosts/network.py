"""The lab network: one Linux bridge in this machine's namespace holding the lab network's
gateway address, and per host a network namespace joined to it by a veth pair.

Only addresses inside the lab network are ever configured, and each belongs to a namespace
the lab created, so traffic to them never leaves this machine.

It imports only the standard library (and names.py): `botlab lab start` and `stop` use it to
check for and clean up hosts without paying for the host manager's imports (the emulator).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from botlab.lab.hosts import isolation, names

HOSTS_DIR = "hosts"  # the lab folder's subfolder for its hosts' state (HostManager.state_dir)


class HostError(RuntimeError):
    """A lab host could not be created, reached or removed; the message says which and why."""


def hosts_supported() -> str | None:
    """None when this process can create lab hosts, else why not."""
    if os.geteuid() != 0:
        return "lab hosts need root (network and mount namespaces); run as root or without hosts"
    for tool in ("ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"lab hosts need `{tool}` (util-linux, iproute2)"
    if not Path("/usr/sbin/sshd").exists():
        return "lab hosts need OpenSSH's sshd (apt-get install openssh-server; `make install` does it)"
    return isolation.supported()


def ip(*args: str, check: bool = True) -> str:
    """Run iproute2's `ip` and return its output; raise HostError naming the command."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise HostError(f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def links() -> list[str]:
    """Names of the network interfaces of this machine's namespace."""
    return [str(link["ifname"]) for link in json.loads(ip("-json", "link", "show") or "[]")]


def namespaces() -> list[str]:
    """Names of the named network namespaces (`ip netns list`)."""
    return [str(ns["name"]) for ns in json.loads(ip("-json", "netns", "list") or "[]")]


def ensure_bridge(lab: str, cidr: str, gateway: str) -> None:
    """Create the lab's bridge with the gateway address, unless it exists; refuse when another
    interface already routes the lab network (two labs on one network would cross)."""
    bridge = names.bridge(lab)
    if bridge in links():
        return
    network = ipaddress.ip_network(cidr, strict=False)
    for route in json.loads(ip("-json", "route", "show") or "[]"):
        dst = str(route.get("dst", ""))
        if dst != "default" and "/" in dst and ipaddress.ip_network(dst, strict=False).overlaps(network):
            raise HostError(f"the lab network {cidr} overlaps {dst}, already routed via {route.get('dev')}; "
                            f"stop the other lab or give this one another network in its spec")
    ip("link", "add", bridge, "type", "bridge")
    try:
        ip("addr", "add", f"{gateway}/{network.prefixlen}", "dev", bridge)
        ip("link", "set", bridge, "up")
    except HostError:
        ip("link", "del", bridge, check=False)
        raise


def add_host(lab: str, index: int, netns: str, address: str, cidr: str, gateway: str) -> None:
    """A network namespace for one host, its eth0 at `address` joined to the lab bridge."""
    prefix = ipaddress.ip_network(cidr, strict=False).prefixlen
    outside, inside = names.veth_outside(lab, index), names.veth_inside(lab, index)
    remove_host(netns)
    ip("netns", "add", netns)
    try:
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", outside, "master", names.bridge(lab), "up")
        ip("link", "set", inside, "netns", netns)
        ip("-n", netns, "link", "set", inside, "name", "eth0")
        ip("-n", netns, "addr", "add", f"{address}/{prefix}", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "route", "add", "default", "via", gateway)
    except HostError:
        remove_host(netns)
        ip("link", "del", outside, check=False)
        raise


def kill_namespace_processes(netns: str, timeout: float = 5.0) -> None:
    """SIGKILL every process in the network namespace and wait until they are gone."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [int(p) for p in ip("netns", "pids", netns, check=False).split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise HostError(f"processes {pids} in network namespace {netns} did not exit")
        time.sleep(0.01)


def remove_host(netns: str) -> None:
    """Remove a host's namespace (its veth pair goes with it); nothing when it is not there."""
    if netns not in namespaces():
        return
    _delete(netns)


def _delete(netns: str) -> None:
    """Kill what runs in an existing namespace, then delete it (its veth pair goes with it)."""
    kill_namespace_processes(netns)
    ip("netns", "del", netns)


def sweep(lab: str) -> list[str]:
    """Remove every namespace and interface of lab `lab`; returns what was removed."""
    removed: list[str] = []
    for netns in namespaces():
        if netns.startswith(names.netns_prefix(lab)):
            _delete(netns)
            removed.append(f"netns {netns}")
    for link in links():
        if link.startswith(names.link_prefixes(lab)):
            ip("link", "del", link, check=False)
            removed.append(f"link {link}")
    return removed


def sweep_lab(lab_dir: Path) -> list[str]:
    """Remove every namespace and interface of the lab in `lab_dir` and its hosts' state folder
    (also what a crashed or killed lab left behind); returns what was removed from the kernel."""
    removed = sweep(names.lab_id(lab_dir))
    shutil.rmtree(lab_dir / HOSTS_DIR, ignore_errors=True)
    return removed


def listen_in(netns: str, address: str, port: int, backlog: int = 128) -> socket.socket:
    """A TCP socket listening on `address:port` inside a host's network namespace, for a
    service the lab plays on that host (the Kubernetes API on the control-plane host): made in
    a thread that enters the namespace (setns affects only the calling thread), so this process
    stays where it is and serves the socket from its own event loop."""
    CLONE_NEWNET = 0x40000000
    libc = ctypes.CDLL(None, use_errno=True)
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def work() -> None:
        try:
            with open(f"/run/netns/{netns}") as ns:
                if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise HostError(f"cannot enter network namespace {netns}: {os.strerror(err)}")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(backlog)
            made.append(sock)
        except BaseException as exc:  # handed to the caller
            failed.append(exc)

    thread = threading.Thread(target=work, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if failed:
        exc = failed[0]
        raise exc if isinstance(exc, HostError) else HostError(f"listen on {address}:{port} in {netns}: {exc}")
    return made[0]
