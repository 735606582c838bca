"""Lab host isolation: from inside a lab host, as the deploy's user with password-less sudo
(what any playbook, or anyone holding the operator key, has), nothing of the machine running
the lab is reachable: not another lab's folder (its secrets and keys), not botlab's checkout,
not the machine's /root or other non-OS folders, not its disks or memory; and the host's root
can neither mount nor load kernel modules, because it is not this machine's root (a user
namespace maps it to an unprivileged id range).

Driven over real SSH (fabric/paramiko) against one host booted once for the module.
Namespaces need root (CI runs as root); elsewhere these tests skip, saying why."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import botlab
from botlab.lab import control, specs
from botlab.lab.hosts.manager import hosts_supported
from tests.lab.test_lab_hosts import connect, deploy, operator_key, sh

WHY_NOT = hosts_supported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=f"lab hosts: {WHY_NOT}")]
CHECKOUT = Path(botlab.__file__).resolve().parents[1]
SECRET = "not-for-lab-hosts-4711"
CAP_SYS_MODULE, CAP_SYS_RAWIO = 16, 17


def fake_lab(parent: str) -> Path:
    """A second lab's folder as `botlab lab start` leaves it (secrets, keys, settings), in a
    fresh folder under `parent` on this machine."""
    folder = Path(tempfile.mkdtemp(prefix="botlab-other-lab-", dir=parent))
    for name, text in (("secrets/maas-api-key", SECRET), ("keys/id_ed25519", f"PRIVATE KEY {SECRET}"),
                       ("settings.json", '{"name": "other", "hosts": true}')):
        path = folder / name
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_text(text + "\n")
        path.chmod(0o600)
    return folder


class Host:
    def __init__(self, info: control.LabInfo, address: str, others: list[Path]) -> None:
        self.info, self.address, self.others = info, address, others
        self.key = operator_key(info)[0]

    def sudo(self, command: str) -> Any:
        """`command` run by a root shell on the host (sudo -n sh -c ...); never raises."""
        with connect(self.address, self.key) as conn:
            return sh(conn, f"sudo -n sh -c {shlex.quote(command)}")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    others = [fake_lab(parent) for parent in ("/var/tmp", "/srv") if Path(parent).is_dir()]
    doc = specs.spec_document(None, machines=1, gpus=0, unenlisted=0, commissioning_s=0.1, deploy_s=0.1, seed=5)
    doc["network"] = {"cidr": "10.81.0.0/24"}
    info = control.start(tmp_path_factory.mktemp("isolation") / "lab", doc, name="iso", hosts=True)
    try:
        address = deploy(info, "node-01", operator_key(info)[1])
        yield Host(info, address, others)
    finally:
        control.stop(info.dir)
        for folder in others:
            shutil.rmtree(folder, ignore_errors=True)


def test_sudo_works_on_the_host(host: Host) -> None:
    assert host.sudo("id -u; hostname").stdout.split() == ["0", "node-01"]


def test_another_labs_secrets_and_keys_are_not_on_the_host(host: Host) -> None:
    assert host.others
    for other in host.others:
        for name in ("secrets/maas-api-key", "keys/id_ed25519", "settings.json"):
            probe = host.sudo(f"cat {other}/{name}")
            assert probe.exited != 0 and SECRET not in probe.stdout, (other, name, probe.stdout)
        assert host.sudo(f"ls -A {other}").stdout == ""
    assert SECRET not in host.sudo(f"grep -rs {SECRET} /var /srv /opt /etc /home /root /tmp /mnt").stdout


def test_the_botlab_checkout_is_not_on_the_host(host: Host) -> None:
    assert (CHECKOUT / "setup.cfg").is_file()
    probe = host.sudo(f"cat {CHECKOUT}/setup.cfg")
    assert probe.exited != 0 and probe.stdout == ""
    assert host.sudo(f"ls -A {CHECKOUT}").stdout == ""


def test_the_machines_own_folders_are_not_on_the_host(host: Host) -> None:
    # The host's root sees an OS image: only standard folders at the top, homes and the
    # like empty, no service data of this machine (its database, say).
    top = set(host.sudo("ls -A /").stdout.split())
    assert top <= {"bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt",
                   "proc", "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var"}, top
    assert set(host.sudo("ls -A /root").stdout.split()) <= {".bashrc", ".profile", ".bash_logout"}
    assert host.sudo("ls -A /home").stdout.split() == ["ubuntu"]  # the default user's, nobody else's
    for folder in ("/srv", "/opt", "/mnt", "/var/tmp", "/var/backups", "/var/mail"):
        assert host.sudo(f"ls -A {folder}").stdout == "", folder
    if Path("/var/lib/postgresql").exists():
        assert host.sudo("ls -d /var/lib/postgresql").exited != 0
    # Unmounting what hides them reveals nothing either.
    host.sudo("umount -l /root; umount -l /home")
    assert set(host.sudo("ls -A /root").stdout.split()) <= {".bashrc", ".profile", ".bash_logout"}


def test_no_disk_or_memory_device_is_reachable(host: Host) -> None:
    assert host.sudo("find /dev -type b").stdout == ""
    assert host.sudo("head -c 16 /dev/mem | wc -c").stdout.strip() == "0"
    devices = set(host.sudo("ls -A /dev").stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm"} <= devices
    assert devices <= {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd", "stdin",
                       "stdout", "stderr", "console", "mqueue"}, devices
    assert host.sudo("echo ok > /dev/null && head -c 4 /dev/zero | wc -c").stdout.strip() == "4"
    # Creating a device node is refused too.
    assert host.sudo("mknod /tmp/disk b 254 0").exited != 0


def test_host_root_cannot_mount_or_load_modules(host: Host) -> None:
    assert host.sudo("mount -t tmpfs probe /mnt").exited != 0
    assert host.sudo("mount -o remount,rw /sys").exited != 0
    assert "/mnt" not in host.sudo("cat /proc/self/mounts").stdout.split()
    # Not even a setuid program or file capability can give back module loading or raw I/O:
    # both are gone from the bounding set.
    bounding = int(host.sudo("grep CapBnd /proc/self/status").stdout.split()[1], 16)
    assert not bounding & (1 << CAP_SYS_MODULE | 1 << CAP_SYS_RAWIO), hex(bounding)
    if Path("/proc/modules").exists():  # a kernel that loads modules at all
        # delete_module(2) of a module that does not exist: EPERM without CAP_SYS_MODULE in
        # this machine's user namespace, ENOENT with it.
        errno = host.sudo("python3 -c 'import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
                          "libc.delete_module(b\"botlab_no_such_module\", 0); print(ctypes.get_errno())'")
        assert errno.stdout.strip() == "1", errno.stdout + errno.stderr


def test_host_root_is_not_this_machines_root(host: Host) -> None:
    inside, outside, _count = host.sudo("cat /proc/self/uid_map").stdout.split()
    assert inside == "0" and outside != "0"
