"""What keeps a lab host inside its own root: the kernel calls boot.py (PID 1, still this
machine's root) makes before it hands the host over, and what a host may see of this machine.

- A user namespace: the host's ids 0-65535 are this machine's ID_BASE..ID_BASE+65535, so the
  host's root is an unprivileged user here, with capabilities only over what the host owns
  (no module loading, raw I/O, mounts in the host's mount namespace, device nodes ...).
- An idmapped mount of `/` as the overlay's lower layer, so the machine's files owned by its
  root show as owned by the host's root (sudo, sshd's privilege separation work as usual).
- An OS image, not this machine's files: overlay whiteouts and opaque folders in the upper
  layer, made before the overlay is mounted, so hidden paths are absent (no mount to undo,
  nothing in the host's mount table naming them).
- A minimal /dev: null, zero, full, random, urandom, tty, ptmx with its own devpts, shm.

Standard library and ctypes only: PID 1 of every host imports this.
"""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Iterable
from pathlib import Path

ID_BASE = 1_000_000_000  # this machine's uid/gid for the hosts' 0 (root); see docs/lab-hosts.md
ID_COUNT = 65536

# What stays of this machine's root at the top of a host's: an OS (programs, libraries, /etc,
# /var), the mount points of /dev, /proc, /sys, /run, /tmp, and the conventional folders,
# which are empty. Anything else there (checkouts, lab folders, data) is absent.
OS_TOP = frozenset({"bin", "boot", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "var",
                    "dev", "proc", "sys", "run", "tmp"})
EMPTY = ("home", "root", "media", "mnt", "opt", "srv", "tmp", "run", "usr/local", "var/tmp", "var/log",
         "var/mail", "var/spool", "var/backups", "var/local", "var/opt", "var/cache/private", "etc/ssl/private")
# /var/lib keeps the package system's and the base OS's state; services' data (a database,
# docker's images, git repositories ...) are this machine's, not an OS image's.
VAR_LIB_OS = frozenset({"apt", "dpkg", "ucf", "pam", "misc", "python", "sgml-base", "xml-core", "dbus", "systemd",
                        "polkit-1", "shells.state", "vim", "man-db", "ca-certificates", "ca-certificates-java",
                        "dictionaries-common", "initramfs-tools", "os-prober", "usbutils", "pciutils", "logrotate",
                        "emacsen-common", "libc-bin", "sudo"})
# Secrets and state of this machine inside the OS folders: absent on a host. Its host keys
# (etc/ssh/ssh_host_*) are replaced by rootfs.prepare, its password hashes locked there.
HIDDEN = ("var/cache/debconf/passwords.dat", "var/lib/dbus/machine-id", "etc/security/opasswd", "etc/.pwd.lock",
          "etc/apt/auth.conf", "etc/apt/auth.conf.d", "etc/letsencrypt", "etc/wireguard",
          "etc/NetworkManager/system-connections", "etc/docker", "etc/containerd", "etc/nvidia-container-runtime")

# Devices a host gets (name, major, minor), all 0666 as udev makes them.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
# Capabilities that mean nothing in a user namespace (the kernel checks them in this
# machine's): dropped from the host's bounding set as well, so not even a setuid program or
# file capability gives them back.
DROPPED_CAPS = {"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_PACCT": 20, "CAP_SYS_BOOT": 22,
                "CAP_SYS_TIME": 25, "CAP_MKNOD": 27, "CAP_AUDIT_CONTROL": 30, "CAP_MAC_OVERRIDE": 32,
                "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36}

CLONE_NEWUSER = 0x10000000
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_IDMAP = 0x100000
MNT_DETACH = 2
PR_CAPBSET_DROP = 24
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR, SYS_PIVOT_ROOT = 428, 429, 442, 155  # x86_64

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC = 1, 2, 4, 8, 32, 4096, 16384

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def mount(source: str, target: Path | str, fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    result = _libc.mount(source.encode(), str(target).encode(), fstype.encode() if fstype else None, flags,
                         data.encode() if data else None)
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(errno)}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def supported() -> str | None:
    """None when this kernel can give hosts their own user namespace over an idmapped root,
    else why not (cheap: no namespace is made)."""
    if os.uname().machine != "x86_64":
        return f"lab hosts' isolation knows the syscall numbers of x86_64 only, not {os.uname().machine}"
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return "lab hosts need user namespaces (sysctl user.max_user_namespaces is 0)"
    except (OSError, ValueError):
        return "lab hosts need user namespaces (no /proc/sys/user/max_user_namespaces)"
    major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    if (major, minor) < (5, 19):
        return f"lab hosts need Linux 5.19 or later (overlayfs on idmapped layers), not {os.uname().release}"
    return None


# --- the user namespace ------------------------------------------------------------------------


def new_user_namespace(id_base: int = ID_BASE) -> int:
    """An fd of a fresh user namespace mapping ids 0..ID_COUNT-1 to id_base.. (a child makes it,
    this process, root here, writes its maps; the namespace lives on through the fd)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: into a new user namespace, then wait to be told to go
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            _check(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
            # Its pid as the mounted /proc numbers it (this process may be PID 1 of a new PID
            # namespace while /proc is still this machine's).
            os.write(ready_w, os.readlink("/proc/self").encode())
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        proc_pid = os.read(ready_r, 32).decode()
        if not proc_pid.isdigit():
            raise OSError("could not make a user namespace (unshare(CLONE_NEWUSER) failed)")
        for kind in ("uid_map", "gid_map"):
            Path(f"/proc/{proc_pid}/{kind}").write_text(f"0 {id_base} {ID_COUNT}\n")
        return os.open(f"/proc/{proc_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def enter_user_namespace(userns_fd: int) -> None:
    """Make this (single-threaded) process the host's root: ids 0 in the user namespace, no
    supplementary groups, capabilities meaningless in a user namespace gone for good."""
    _check(_libc.setns(userns_fd, CLONE_NEWUSER), "setns(user namespace)")
    os.close(userns_fd)
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    for number in DROPPED_CAPS.values():
        _check(_libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0), f"prctl(PR_CAPBSET_DROP, {number})")


def idmapped_root(userns_fd: int, target: Path) -> None:
    """Mount this mount namespace's root filesystem (no submounts) at `target`, idmapped by
    the user namespace: a file this machine's uid N owns shows as owned by uid N inside it."""
    fd = _check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, b"/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC),
                "open_tree(/)")
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _check(_libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)),
               "mount_setattr(MOUNT_ATTR_IDMAP) of / (needs a filesystem with idmapped mounts)")
        _check(_libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, str(target).encode(), MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount(/ on {target})")
    finally:
        os.close(fd)


def pivot_into(root: Path) -> None:
    """Make `root` this mount namespace's root and drop the old one (unlike chroot, which the
    host's root could climb out of, nothing of the old root stays reachable)."""
    os.chdir(root)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), f"pivot_root({root})")
    _check(_libc.umount2(b".", MNT_DETACH), "umount2(old root)")
    os.chdir("/")


def allow_low_ports() -> None:
    """In the host's network namespace (owned by this machine's user namespace), let the host's
    root bind ports below 1024 (sshd's 22) and ping: both need capabilities it lacks here."""
    Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").write_text("0\n")
    Path("/proc/sys/net/ipv4/ping_group_range").write_text("0 2147483647\n")


# --- what a host sees of this machine ----------------------------------------------------------


def hide(upper: Path, lower: Path, extra: Iterable[str]) -> None:
    """Before the overlay is mounted: whiteouts in its upper folder for every path a host must
    not see (non-OS top folders, services' data in /var/lib, `extra`), empty opaque folders for
    EMPTY. Folders made on the way copy the lower one's owner and mode, as a copy-up would."""
    gone = {entry.name for entry in lower.iterdir() if entry.name not in OS_TOP and entry.name not in EMPTY}
    if (lower / "var/lib").is_dir():
        gone |= {f"var/lib/{entry.name}" for entry in (lower / "var/lib").iterdir() if entry.name not in VAR_LIB_OS}
    gone |= {path for path in HIDDEN if os.path.lexists(lower / path)}
    for path in extra:
        relative = os.path.normpath(path).lstrip("/")
        if relative and relative != "." and os.path.lexists(lower / relative):
            gone.add(relative)
    for relative in sorted(gone):
        if any(relative.startswith(f"{g}/") for g in (*gone, *EMPTY) if g != relative):
            continue  # under a path already gone or emptied
        _parents(upper, lower, relative)
        os.mknod(upper / relative, stat.S_IFCHR | 0o000, os.makedev(0, 0))  # an overlay whiteout
    for relative in EMPTY:
        if any(relative == g or relative.startswith(f"{g}/") for g in gone):
            continue
        _parents(upper, lower, relative)
        target = upper / relative
        target.mkdir(exist_ok=True)
        _copy_attrs(lower / relative, target, default_mode=0o755)
        os.setxattr(target, "trusted.overlay.opaque", b"y")


def _parents(upper: Path, lower: Path, relative: str) -> None:
    parts = Path(relative).parts[:-1]
    for depth in range(1, len(parts) + 1):
        sub = Path(*parts[:depth])
        if not (upper / sub).exists():
            (upper / sub).mkdir()
            _copy_attrs(lower / sub, upper / sub, default_mode=0o755)


def _copy_attrs(source: Path, target: Path, default_mode: int) -> None:
    try:
        st = os.stat(source)
    except OSError:
        os.chmod(target, default_mode)
        return
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def hand_over(upper: Path, merged: Path, id_base: int = ID_BASE) -> None:
    """Give what this process (this machine's root) wrote into the host to the host's own ids:
    every entry of the upper folder owned by an id below ID_COUNT is chowned, through the
    overlay, to that id in the host's range (the overlay's copy-ups already are)."""
    for folder, dirs, files in os.walk(upper):
        for name in [".", *dirs, *files] if folder == str(upper) else [*dirs, *files]:
            path = Path(folder, name)
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                continue  # a whiteout
            uid = st.st_uid + id_base if st.st_uid < ID_COUNT else st.st_uid
            gid = st.st_gid + id_base if st.st_gid < ID_COUNT else st.st_gid
            if (uid, gid) != (st.st_uid, st.st_gid):
                os.lchown(merged / os.path.relpath(path, upper), uid, gid)


def make_dev(dev: Path, id_base: int = ID_BASE, tty_gid: int = 5) -> None:
    """A minimal /dev on the tmpfs mounted at `dev` (owned by the host's root): the DEVICES,
    a devpts of its own (ptmx), shm, and the usual fd links."""
    for name, major, minor in DEVICES:
        os.mknod(dev / name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    (dev / "pts").mkdir()
    (dev / "shm").mkdir()
    mount("devpts", dev / "pts", "devpts", MS_NOSUID | MS_NOEXEC,
          f"newinstance,ptmxmode=0666,mode=0620,gid={id_base + tty_gid}")
    mount("tmpfs", dev / "shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,uid={id_base},gid={id_base}")
    for name, target in (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev / name)
    for entry in [dev, *dev.iterdir()]:
        if entry.name not in ("pts", "shm"):
            os.lchown(entry, id_base, id_base)
