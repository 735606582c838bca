"""Lab hosts end to end: after `botlab up kubernetes` every inventory host is a real OpenSSH
server at the address MAAS reports, accepting the operator's key and presenting the host key
Juju reports; hosts are isolated from each other and from this machine; a released and
redeployed machine comes back clean with a new host key; `lab stop` leaves nothing behind.

Clients are the real ones: fabric/paramiko for SSH, python-libmaas for MAAS, python-libjuju
for Juju. Namespaces need root (CI runs as root); elsewhere these tests skip, saying why."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from fabric import Connection
from paramiko import SSHException

from botlab.lab import control, specs
from botlab.lab.hosts import names
from botlab.lab.hosts.manager import hosts_supported
from botlab.lab.hosts.network import links, namespaces
from tests.support.kubelab import KubeLab, start_lab

WHY_NOT = hosts_supported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=f"lab hosts: {WHY_NOT}")]


def connect(address: str, key: Path, user: str = "ubuntu") -> Connection:
    """A fabric connection that accepts any host key (the tests compare it themselves)."""
    conn = Connection(address, user=user, connect_timeout=10,
                      connect_kwargs={"key_filename": str(key), "look_for_keys": False, "allow_agent": False})
    conn.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    return conn


def sh(conn: Connection, command: str) -> Any:
    """Run `command` on the host; the result has .stdout and .exited (never raises on exit)."""
    return conn.run(command, hide=True, warn=True, in_stream=False)


def presented_key(conn: Connection) -> str:
    conn.open()
    key = conn.client.get_transport().get_remote_server_key()
    return f"{key.get_name()} {key.get_base64()}"


def maas_client_call(info: control.LabInfo, work: Any) -> Any:
    """Run `work(client)` with a python-libmaas client logged in to the lab's MAAS."""
    from maas.client import connect as maas_connect

    key = (info.dir / "secrets" / "maas-api-key").read_text().strip()

    async def scenario() -> Any:
        client = await maas_connect(info.maas_url, apikey=key)
        return await work(client)

    return asyncio.run(scenario())


def juju_host_keys(lab: KubeLab, machine_ids: dict[str, str]) -> dict[str, list[str]]:
    """Hostname -> the host keys Juju reports (SSHClient.PublicKeys, through python-libjuju)."""
    from juju.client import client as juju_client

    async def work(model: Any) -> dict[str, list[str]]:
        facade = juju_client.SSHClientFacade.from_connection(model.connection())
        hosts = sorted(machine_ids)
        answer = await facade.PublicKeys(entities=[{"tag": f"machine-{machine_ids[h]}"} for h in hosts])
        return {h: list(r.public_keys or []) for h, r in zip(hosts, answer.results, strict=True)}

    return lab.on_model(work)


def bare(key: str) -> str:
    """`type base64` of an OpenSSH public key line (without its comment)."""
    return " ".join(key.split()[:2])


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    lab = start_lab(tmp_path_factory.mktemp("hosts"), machines=4, gpus=1, hosts=True)
    try:
        assert lab.botlab("up", "kubernetes") == 0, lab.stdout + lab.stderr
        yield lab
    finally:
        control.stop(lab.info.dir)


def test_every_inventory_host_answers_ssh_at_its_maas_address_with_the_operator_key_and_jujus_host_key(
        kube: KubeLab) -> None:
    key, _public = operator_key(kube.info)
    machines = kube.maas_machines()
    ids = kube.store().identities("juju-machine")
    reported = juju_host_keys(kube, ids)
    assert sorted(ids) == sorted(machines)
    for hostname, machine in machines.items():
        (address,) = machine["ip_addresses"]
        with connect(address, key) as conn:
            assert bare(presented_key(conn)) == bare(reported[hostname][0]), hostname
            result = sh(conn, "hostname; id -un; sudo -n id -un")
            assert result.stdout.split() == [hostname, "ubuntu", "root"]
        # A key the deploy did not authorize is refused.
        stranger = kube.tmp / "stranger"
        if not stranger.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
        with pytest.raises(SSHException), connect(address, stranger) as conn:
            conn.open()


def test_a_file_written_on_one_host_is_seen_nowhere_else(kube: KubeLab) -> None:
    key, _public = operator_key(kube.info)
    addresses = {h: m["ip_addresses"][0] for h, m in kube.maas_machines().items()}
    first, *others = sorted(addresses)
    marker = f"written-on-{first}"
    with connect(addresses[first], key) as conn:
        sh(conn, f"echo {marker} | sudo tee /etc/botlab-marker >/dev/null && echo {marker} > /tmp/marker")
        assert sh(conn, "cat /etc/botlab-marker /tmp/marker").stdout.split() == [marker, marker]
    for other in others:
        with connect(addresses[other], key) as conn:
            assert sh(conn, "ls /etc/botlab-marker /tmp/marker").exited == 2
    assert not Path("/etc/botlab-marker").exists()


def test_hosts_have_a_stock_shell_not_the_build_machines(kube: KubeLab) -> None:
    key, _public = operator_key(kube.info)
    address = next(iter(kube.maas_machines().values()))["ip_addresses"][0]
    with connect(address, key) as conn:
        assert sh(conn, "cat ~/.bashrc").stdout == Path("/etc/skel/.bashrc").read_text()
        assert sh(conn, "sudo -n cat /root/.bashrc").stdout == Path("/etc/skel/.bashrc").read_text()
        # Nothing of the lab's own signal handling leaks into sessions (the lab daemon and each
        # host's PID 1 block SIGTERM and SIGCHLD for themselves).
        assert sh(conn, "grep SigBlk /proc/self/status").stdout.split() == ["SigBlk:", "0" * 16]
        # This machine's /usr/local (a docker client, say) does not shadow the host's programs.
        assert sh(conn, "ls -A /usr/local/bin /usr/local/sbin").stdout.split() == ["/usr/local/bin:",
                                                                                  "/usr/local/sbin:"]
        # The lab's own folder (its secrets and keys) is not visible on the host.
        assert sh(conn, f"ls -A {kube.info.dir}").stdout == ""


def maas_gpu_addresses(info: control.LabInfo) -> dict[str, list[str]]:
    """Hostname -> PCI addresses of the NVIDIA devices in MAAS's commissioning data (lshw)."""

    async def work(client: Any) -> dict[str, list[str]]:
        out = {}
        for machine in await client.machines.list():
            lshw = ET.fromstring((await machine.get_details())["lshw"])
            out[machine.hostname] = sorted(n.findtext("businfo", "").removeprefix("pci@")
                                           for n in lshw.iter("node") if "NVIDIA" in n.findtext("vendor", ""))
        return out

    return dict(maas_client_call(info, work))


def test_gpu_tools_show_gpus_only_on_gpu_hosts_where_maas_saw_them(kube: KubeLab) -> None:
    key, _public = operator_key(kube.info)
    in_maas = maas_gpu_addresses(kube.info)
    for hostname, machine in kube.maas_machines().items():
        gpus = 8 if hostname == "node-04" else 0
        with connect(machine["ip_addresses"][0], key) as conn:
            lspci = sh(conn, "lspci").stdout
            assert lspci.count("NVIDIA Corporation") == gpus, hostname
            on_host = sorted(line.split()[0] for line in sh(conn, "lspci -D -d 10de:").stdout.splitlines())
            assert len(in_maas[hostname]) == gpus and on_host == in_maas[hostname], hostname
            smi = sh(conn, "nvidia-smi -L")
            if gpus:
                assert len(smi.stdout.splitlines()) == gpus
            else:
                assert smi.exited == 127  # no driver: no nvidia-smi at all
            # The spec installs no NVIDIA container toolkit here (test_lab_host_runtime's does): only the
            # containerd charm with gpu_driver nvidia (containerd-gpu, gpu_method charm) installs it, on GPU hosts.
            toolkit = sh(conn, "command -v nvidia-ctk nvidia-container-runtime").exited
            assert toolkit == (0 if gpus else 1), hostname


@pytest.fixture
def bare_lab(tmp_path: Path) -> Iterator[control.LabInfo]:
    doc = specs.spec_document(None, machines=2, gpus=0, unenlisted=0, commissioning_s=0.1, deploy_s=0.1, seed=3)
    doc["timings"].update(testing_s=0.05, release_s=0.1)
    doc["network"] = {"cidr": "10.79.0.0/24"}  # its own: the module's Kubernetes lab holds the default one
    info = control.start(tmp_path / "lab", doc, name="beta", hosts=True)
    try:
        yield info
    finally:
        control.stop(info.dir)


def deploy(info: control.LabInfo, hostname: str, public_key: str, *, release_first: bool = False) -> str:
    """Deploy `hostname` through python-libmaas with `public_key` as the MAAS user's key;
    return the address MAAS reports once it is Deployed."""
    from maas.client.enum import NodeStatus

    async def work(client: Any) -> str:
        if public_key not in [k.key for k in await client.ssh_keys.list()]:
            await client.ssh_keys.create(public_key)
        machine = next(m for m in await client.machines.list() if m.hostname == hostname)
        if release_first:
            await machine.release(wait=True, wait_interval=0.02)
        await machine.deploy(wait=True, wait_interval=0.02)
        assert machine.status == NodeStatus.DEPLOYED, machine.status_message
        return str(machine.ip_addresses[0])

    return str(maas_client_call(info, work))


def operator_key(info: control.LabInfo) -> tuple[Path, str]:
    key = info.dir / "keys" / "id_ed25519"
    return key, (info.dir / "keys" / "id_ed25519.pub").read_text().strip()


def test_release_and_redeploy_gives_a_clean_host_with_a_new_host_key(bare_lab: control.LabInfo) -> None:
    key, public = operator_key(bare_lab)
    address = deploy(bare_lab, "node-01", public)
    with connect(address, key) as conn:
        first_key = presented_key(conn)
        sh(conn, "echo old-life > ~/left-behind")
    again = deploy(bare_lab, "node-01", public, release_first=True)
    with connect(again, key) as conn:
        assert presented_key(conn) != first_key
        assert sh(conn, "ls ~/left-behind").exited == 2
    hosts = {h["hostname"]: h for h in control.hosts_state(control.read_state(bare_lab))}
    assert bare(hosts["node-01"]["host_keys"][0]) != first_key.split()[1]
    assert hosts["node-01"]["address"] == again


def lab_traces(info: control.LabInfo) -> dict[str, Any]:
    """Everything of this lab's hosts the kernel holds: namespaces, links, processes, mounts."""
    lab = names.lab_id(info.dir)
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    mount_ns = set()
    for host in control.hosts_state(control.read_state(info)) if info.alive else []:
        mount_ns.add(os.readlink(f"/proc/{host['pid']}/ns/mnt"))
    return {
        "netns": [n for n in namespaces() if n.startswith(names.netns_prefix(lab))],
        "links": [n for n in links() if n.startswith(names.link_prefixes(lab))],
        "mount_ns": mount_ns,
        "pids": [p for p in pids if _in_lab(p, str(info.dir))],
        "mounts": [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(info.dir) in line
                   or f"/run/netns/{names.netns_prefix(lab)}" in line],
    }


def _in_lab(pid: int, lab_dir: str) -> bool:
    """Whether a process is one of the lab's hosts (its command line names the lab folder)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "botlab.lab.hosts.boot" in cmdline and lab_dir in cmdline


def processes_in(mount_ns: set[str]) -> list[int]:
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/ns/mnt") in mount_ns:
                    found.append(int(p))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("how", ["stop", "kill -9 then stop"])
def test_lab_stop_leaves_no_namespace_interface_mount_or_process(bare_lab: control.LabInfo, how: str) -> None:
    _key, public = operator_key(bare_lab)
    for hostname in ("node-01", "node-02"):
        deploy(bare_lab, hostname, public)
    before = lab_traces(bare_lab)
    assert len(before["netns"]) == 2 and len(before["mount_ns"]) == 2 and before["pids"]
    assert len(processes_in(before["mount_ns"])) >= 4  # each host: its PID 1 and sshd at least
    if how.startswith("kill"):
        os.kill(bare_lab.pid, signal.SIGKILL)
    assert control.stop(bare_lab.dir) is not None
    after = lab_traces(dataclasses.replace(bare_lab, alive=False))
    assert after == {"netns": [], "links": [], "mount_ns": set(), "pids": [], "mounts": []}
    assert processes_in(before["mount_ns"]) == []
    assert not (bare_lab.dir / "hosts").exists()


def test_host_boot_spec_with_private_keys_never_stays_on_disk(bare_lab: control.LabInfo) -> None:
    _key, public = operator_key(bare_lab)
    deploy(bare_lab, "node-02", public)
    leftovers = [p for p in (bare_lab.dir / "hosts").iterdir() if p.name.endswith(".boot.json")]
    assert leftovers == []
    assert "PRIVATE KEY" not in json.dumps(control.read_state(bare_lab))


def test_lab_status_lists_each_host_at_its_maas_address(kube: KubeLab) -> None:
    doc = kube.json("lab", "status", "--dir", str(kube.info.dir))
    assert doc["_code"] == 0
    machines = kube.maas_machines()
    assert {h: d["address"] for h, d in doc["hosts"].items()} == {h: m["ip_addresses"][0] for h, m in machines.items()}
    assert {h for h, d in doc["hosts"].items() if d["gpus"]} == {"node-04"}
    assert kube.botlab("lab", "status", "--dir", str(kube.info.dir)) == 0
    assert f"node-04  Deployed     {machines['node-04']['ip_addresses'][0]}" in kube.stdout


def test_a_host_that_cannot_boot_fails_the_deployment_and_leaves_nothing(bare_lab: control.LabInfo) -> None:
    async def work(client: Any) -> Any:
        machine = next(m for m in await client.machines.list() if m.hostname == "node-01")
        await machine.deploy(user_data=b"#cloud-config\nssh_keys: [not, a, mapping]\n", wait=False)
        while machine.status_name in ("Allocated", "Deploying"):
            await asyncio.sleep(0.02)
            await machine.refresh()
        return machine

    machine = maas_client_call(bare_lab, work)
    assert machine.status_name == "Failed deployment"
    assert machine.status_message == "Failed to boot the deployed OS: ssh_keys must be a mapping"
    assert lab_traces(bare_lab)["netns"] == [] and control.hosts_state(control.read_state(bare_lab)) == []
