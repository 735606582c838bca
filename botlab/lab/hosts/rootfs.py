"""What a freshly deployed lab host's root holds beyond the build machine's files: its name,
the default user with the deploy's authorized keys and password-less sudo (as cloud-init
sets up on MAAS images), its own SSH host keys and sshd config, a stock shell start-up for
every user, and the lab's host tools. Runs inside the host's mount namespace, before chroot."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botlab.lab.hosts.isolation import ID_BASE

SSHD_CONFIG = """\
# Written by the botlab lab for this host.
Port 22
ListenAddress 0.0.0.0
{host_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
X11Forwarding no
PrintMotd no
PidFile /run/sshd.pid
MaxStartups 100:30:200
MaxSessions 50
Subsystem sftp /usr/lib/openssh/sftp-server
"""


@dataclass
class HostSpec:
    """Everything boot.py needs to build one host (handed over as a 0600 JSON file)."""

    hostname: str
    address: str
    mount_dir: str  # an empty folder; the host's tmpfs goes over it in its own namespace
    default_user: str = "ubuntu"
    authorized_keys: list[str] = field(default_factory=list)
    host_keys: list[dict[str, str]] = field(default_factory=list)  # kind, private, public
    facts: dict[str, Any] = field(default_factory=dict)  # for the host tools (GPUs ...)
    hide: list[str] = field(default_factory=list)  # build-machine paths a host must not see (isolation.hide)
    id_base: int = ID_BASE  # this machine's uid/gid for the host's 0 (its user namespace's map)


def prepare(root: Path, spec: HostSpec) -> None:
    _identity(root, spec)
    _lock_passwords(root)
    uid = _default_user(root, spec)
    _home(root, Path("/root"), 0, 0, [])
    _home(root, Path("/home") / spec.default_user, uid, uid, spec.authorized_keys)
    _sshd(root, spec)
    from botlab.lab import hosttools

    hosttools.install_base(root, spec.facts)


def _write(root: Path, path: str, text: str, mode: int = 0o644) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    os.chmod(target, mode)
    return target


def _identity(root: Path, spec: HostSpec) -> None:
    _write(root, "/etc/hostname", spec.hostname + "\n")
    _write(root, "/etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {spec.hostname}\n{spec.address} {spec.hostname}\n")
    (root / "etc/machine-id").unlink(missing_ok=True)
    _write(root, "/etc/machine-id", os.urandom(16).hex() + "\n", 0o444)


def _lock_passwords(root: Path) -> None:
    """No password of this machine's accounts (hashes in /etc/shadow, /etc/gshadow) reaches a
    host: every password field becomes `*` (no password, as on a fresh cloud image), `!` stays
    `!` (locked)."""
    for name, fields in (("etc/shadow", 9), ("etc/gshadow", 4)):
        path = root / name
        if not path.exists():
            continue
        lines = []
        for line in path.read_text().splitlines():
            parts = line.split(":")
            if len(parts) >= 2 and len(parts) <= fields and parts[1] not in ("", "*", "!", "!*"):
                parts[1] = "!" if parts[1].startswith("!") else "*"
            lines.append(":".join(parts))
        _write(root, "/" + name, "\n".join(lines) + "\n", 0o640)


def _default_user(root: Path, spec: HostSpec) -> int:
    """Add the default user (and its group, in sudo) unless the image has it; return its uid."""
    passwd = (root / "etc/passwd").read_text().splitlines()
    for line in passwd:
        fields = line.split(":")
        if fields[0] == spec.default_user:
            return int(fields[2])
    used = {int(line.split(":")[2]) for line in passwd if line.count(":") >= 6}
    groups = (root / "etc/group").read_text().splitlines()
    used |= {int(line.split(":")[2]) for line in groups if line.count(":") >= 3}
    uid = next(n for n in range(1000, 60000) if n not in used)
    name = spec.default_user
    _write(root, "/etc/passwd", "\n".join([*passwd, f"{name}:x:{uid}:{uid}:{name}:/home/{name}:/bin/bash"]) + "\n")
    groups = [_add_member(line, name) if line.startswith("sudo:") else line for line in groups]
    _write(root, "/etc/group", "\n".join([*groups, f"{name}:x:{uid}:"]) + "\n")
    shadow = (root / "etc/shadow").read_text().splitlines()
    # "*": no password, yet not locked, so public-key logins work with UsePAM off.
    _write(root, "/etc/shadow", "\n".join([*shadow, f"{name}:*:19000:0:99999:7:::"]) + "\n", 0o640)
    _write(root, "/etc/sudoers.d/90-cloud-init-users", f"# Created by cloud-init\n{name} ALL=(ALL) NOPASSWD:ALL\n",
           0o440)
    return uid


def _add_member(group_line: str, user: str) -> str:
    """An /etc/group line with `user` added to its member list (the last field)."""
    return f"{group_line}{user}" if group_line.endswith(":") else f"{group_line},{user}"


def _home(root: Path, home: Path, uid: int, gid: int, authorized_keys: list[str]) -> None:
    """A home with Debian's stock shell start-up files (never the build machine's own)."""
    target = root / str(home).lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for name in (".bashrc", ".profile", ".bash_logout"):
        skel = root / "etc/skel" / name
        if skel.exists():
            shutil.copyfile(skel, target / name)
    if authorized_keys:
        ssh = target / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text("\n".join(authorized_keys) + "\n")
        os.chmod(ssh / "authorized_keys", 0o600)
        os.chown(ssh / "authorized_keys", uid, gid)
        os.chown(ssh, uid, gid)
    for entry in target.iterdir():
        os.chown(entry, uid, gid)
    os.chmod(target, 0o750 if uid else 0o700)
    os.chown(target, uid, gid)


def _sshd(root: Path, spec: HostSpec) -> None:
    etc_ssh = root / "etc/ssh"
    for old in etc_ssh.glob("ssh_host_*"):
        old.unlink()
    paths = []
    for key in spec.host_keys:
        path = f"/etc/ssh/ssh_host_{key['kind']}_key"
        _write(root, path, key["private"].rstrip("\n") + "\n", 0o600)
        _write(root, path + ".pub", key["public"].rstrip("\n") + "\n")
        paths.append(f"HostKey {path}")
    _write(root, "/etc/ssh/sshd_config", SSHD_CONFIG.format(host_keys="\n".join(paths)))
    (root / "run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
