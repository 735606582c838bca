"""PID 1 of a lab host: `python -m botlab.lab.hosts.boot SPEC.json`, started by HostManager
inside fresh mount, UTS and PID namespaces and the host's network namespace.

It builds the host's root (a tmpfs holding the overlay's upper and work folders, so writes
stay on this host and vanish with it; what a host must not see of this machine left out),
makes it the mount namespace's root (pivot_root), becomes root of the host's own user
namespace (isolation.py: an unprivileged id range on this machine), lets the host tools start
enabled services, starts sshd and prints READY once sshd listens. Then it reaps orphans until
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

from botlab.lab.hosts import isolation
from botlab.lab.hosts.isolation import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, mount
from botlab.lab.hosts.rootfs import HostSpec, prepare

_libc = ctypes.CDLL(None, use_errno=True)
BOOT_SERVICES_TIMEOUT_S = 15.0
# What programs started in a host run with, as on a fresh OS. The PATH is the host tools'
# hostlib.SEARCH_PATH, written out: PID 1 of every host would pay for importing hostlib.
HOST_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def sethostname(name: str) -> None:
    if _libc.sethostname(name.encode(), len(name.encode())) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"sethostname {name}: {os.strerror(errno)}")


def build_root(spec: HostSpec, userns_fd: int) -> tuple[Path, Path]:
    """Mount the host's root and return it with its overlay's upper folder: an overlay of this
    machine's root filesystem, idmapped into the host's user namespace, with what a host must
    not see whited out (isolation.hide) and upper and work folders on a tmpfs."""
    base = Path(spec.mount_dir)
    mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
    for name in ("lower", "upper", "work", "root"):
        (base / name).mkdir()
    root, upper = base / "root", base / "upper"
    isolation.idmapped_root(userns_fd, base / "lower")
    isolation.hide(upper, base / "lower", spec.hide)
    # Paths relative to the tmpfs, so the host's mount table does not name the lab's folder.
    os.chdir(base)
    mount("overlay", root, "overlay", 0, "lowerdir=lower,upperdir=upper,workdir=work")
    ids = f"uid={spec.id_base},gid={spec.id_base}"
    mount("proc", root / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("sysfs", root / "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("tmpfs", root / "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, f"mode=0755,size=64k,{ids}")
    isolation.make_dev(root / "dev", spec.id_base, _tty_gid(root))
    for path, mode in (("run", "0755"), ("tmp", "1777")):
        mount("tmpfs", root / path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},{ids}")
    # A fresh OS has an empty /usr/local (isolation.EMPTY); this machine's (a docker client,
    # say) would shadow the host's own programs on PATH.
    for name in ("bin", "sbin", "lib", "share", "include", "etc", "games", "src"):
        (root / "usr/local" / name).mkdir()
    (root / "var/log/botlab-lab").mkdir(parents=True, exist_ok=True)
    return root, upper


def _tty_gid(root: Path) -> int:
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "tty" and len(fields) > 2 and fields[2].isdigit():
            return int(fields[2])
    return 5


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
    userns_fd = isolation.new_user_namespace(spec.id_base)
    root, upper = build_root(spec, userns_fd)
    prepare(root, spec)
    # What this process wrote as this machine's root becomes the host root's, then the host
    # is handed over: its root becomes the mount namespace's, this process its root user.
    isolation.hand_over(upper, root, spec.id_base)
    isolation.hand_over(root / "run", root / "run", spec.id_base)
    isolation.allow_low_ports()
    isolation.pivot_into(root)
    isolation.enter_user_namespace(userns_fd)
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
