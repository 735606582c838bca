"""PID 1 of a lab host: `python -m botlab.lab.hosts.boot SPEC.json`, started by HostManager
inside fresh mount, UTS and PID namespaces and the host's network namespace.

It builds the host's root (a tmpfs holding the overlay's upper and work folders, so writes
stay on this host and vanish with it), chroots into it, lets the host tools start enabled
services, starts sshd and prints READY once sshd listens. Then it reaps orphans until
SIGTERM, on which it stops everything in the host (the kernel kills the rest of the PID
namespace when PID 1 exits).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from botlab.lab.hosts.rootfs import HostSpec, prepare

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC = 1, 2, 4, 8, 4096, 16384
_libc = ctypes.CDLL(None, use_errno=True)
BOOT_SERVICES_TIMEOUT_S = 15.0
# What programs started in a host run with, as on a fresh OS. The PATH is the host tools'
# hostlib.SEARCH_PATH, written out: PID 1 of every host would pay for importing hostlib.
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def mount(source: str, target: Path | str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    result = _libc.mount(source.encode(), str(target).encode(), fstype.encode() if fstype else None, flags,
                         data.encode() if data else None)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(errno)}")


def sethostname(name: str) -> None:
    if _libc.sethostname(name.encode(), len(name.encode())) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"sethostname {name}: {os.strerror(errno)}")


def build_root(spec: HostSpec) -> Path:
    """Mount the host's root and return it: overlay of / with upper and work on a tmpfs."""
    base = Path(spec.mount_dir)
    mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for name in ("upper", "work", "root"):
        (base / name).mkdir()
    root = base / "root"
    mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={base}/upper,workdir={base}/work")
    mount("proc", root / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("/dev", root / "dev", None, MS_BIND | MS_REC)
    mount("sysfs", root / "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path, mode in (("run", "0755"), ("tmp", "1777"), ("root", "0700"), ("home", "0755")):
        mount("tmpfs", root / path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode}")
    # A fresh OS has an empty /usr/local; this machine's (a docker client, say) would shadow
    # the host's own programs on PATH.
    mount("tmpfs", root / "usr/local", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for name in ("bin", "sbin", "lib", "share", "include", "etc", "games", "src"):
        (root / "usr/local" / name).mkdir()
    for hidden in spec.hide:
        target = root / hidden.lstrip("/")
        if target.is_dir():
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    (root / "var/log/botlab-lab").mkdir(parents=True, exist_ok=True)
    return root


def default_signals() -> None:
    """In a child, before exec: undo the signals its parent blocks (a signal mask is inherited:
    PID 1 blocks SIGTERM, SIGINT and SIGCHLD, the lab daemon SIGTERM in every thread), so that
    the host, sshd, its sessions and services get them as usual."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def start_sshd() -> subprocess.Popen[str]:
    """Start sshd and return once it listens (it says so on stderr with -e)."""
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"], env=HOST_ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    assert sshd.stderr is not None
    log = open("/var/log/botlab-lab/sshd.log", "a", buffering=1)  # noqa: SIM115 - lives as long as sshd
    for line in sshd.stderr:
        log.write(line)
        if "Server listening on" in line:
            break
    else:
        raise RuntimeError(f"sshd exited with code {sshd.wait()} before listening; see /var/log/botlab-lab/sshd.log")
    threading.Thread(target=_drain, args=(sshd.stderr, log), daemon=True).start()
    return sshd


def _drain(stream: IO[str], log: IO[str]) -> None:
    for line in stream:
        log.write(line)


def boot(spec: HostSpec) -> subprocess.Popen[str]:
    sethostname(spec.hostname)
    root = build_root(spec)
    prepare(root, spec)
    os.chroot(root)
    os.chdir("/")
    if Path("/usr/bin/systemctl").exists():
        # Enabled services start before sshd, as on a real boot; one that hangs does not stop
        # the boot (systemd would go on with the others too).
        try:
            subprocess.run(["/usr/bin/systemctl", "--lab-boot"], env=HOST_ENV, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                           preexec_fn=default_signals, timeout=BOOT_SERVICES_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            print("starting enabled services took too long; booting on", file=sys.stderr, flush=True)
    return start_sshd()


def reap_until_stopped(sshd: subprocess.Popen[str]) -> int:
    """Reap every orphan of the host until SIGTERM; return the exit code."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
    while True:
        signum = signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
        if signum != signal.SIGCHLD:
            return 0
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 1
            if pid == 0:
                break
            if pid == sshd.pid:
                print(f"sshd exited ({status}); the host is going down", file=sys.stderr, flush=True)
                return 1


def main(argv: list[str]) -> int:
    spec_file = Path(argv[1])
    data = json.loads(spec_file.read_text())
    spec_file.unlink()  # it holds the host's private keys
    spec = HostSpec(**{f.name: data[f.name] for f in dataclasses.fields(HostSpec) if f.name in data})
    # SIGCHLD must be blocked before the first child exists, so no exit goes unseen.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD})
    try:
        sshd = boot(spec)
    except Exception as exc:
        print(f"host {spec.hostname} failed to boot: {exc}", file=sys.stderr, flush=True)
        return 1
    print("READY", flush=True)
    sys.stdout.close()
    return reap_until_stopped(sshd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
