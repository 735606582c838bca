"""Host playbooks end to end on lab hosts (real OpenSSH servers): the example playbook
converges in two round trips per host over one connection, a second run changes nothing and
restarts nothing, check mode changes nothing, a host presenting another key is refused (that
host only) and an unreachable host fails naming it while the others converge.

The hosts are deployed straight through MAAS (python-libmaas), the cheap way
test_lab_hosts.py uses; their host keys come from the lab's state, as Juju reports them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from botlab.drivers.retry import Deadlines, RetryPolicy
from botlab.drivers.ssh import SshDriver
from botlab.lab import control, specs
from botlab.lab.hosts.manager import hosts_supported
from botlab.playbook import Playbook, PlaybookResult, run_playbook
from tests.lab.test_lab_hosts import connect, deploy, operator_key, sh

WHY_NOT = hosts_supported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=f"lab hosts: {WHY_NOT}")]

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
HOSTS = ("node-01", "node-02", "node-03")


@pytest.fixture(scope="module")
def hosts_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[control.LabInfo, dict[str, Any]]]:
    """Three deployed hosts (node-03 with GPUs): hostname -> its state (address, host_keys)."""
    doc = specs.spec_document(None, machines=3, gpus=1, unenlisted=0, commissioning_s=0.1, deploy_s=0.1, seed=5)
    doc["timings"].update(testing_s=0.05, release_s=0.1)
    doc["network"] = {"cidr": "10.79.0.0/24"}
    info = control.start(tmp_path_factory.mktemp("playbooks") / "lab", doc, name="pb", hosts=True)
    try:
        _key, public = operator_key(info)
        for hostname in HOSTS:
            deploy(info, hostname, public)
        state = {h["hostname"]: h for h in control.hosts_state(control.read_state(info))}
        yield info, state
    finally:
        control.stop(info.dir)


def variables(hostname: str) -> dict[str, Any]:
    gpu = hostname == "node-03"
    return {"gpu": gpu, "gpus": 8 if gpu else 0, "roles": ["worker", "gpu"] if gpu else ["worker"],
            "runtime": "containerd"}


def driver(info: control.LabInfo, state: dict[str, Any], **keys: list[str]) -> SshDriver:
    key, _public = operator_key(info)
    ssh = SshDriver("ubuntu", key, deadlines=Deadlines(call=10, unreachable=3),
                    retry=RetryPolicy(attempts=2, initial=0.1, maximum=0.2, within=3))
    for hostname, host in state.items():
        ssh.know(hostname, host["address"], keys.get(hostname.replace("-", "_"), host["host_keys"]))
    return ssh


def on_hosts(ssh: SshDriver, work: Callable[[], Awaitable[T]]) -> T:
    async def scenario() -> T:
        try:
            return await work()
        finally:
            await ssh.close()

    return asyncio.run(scenario())


def example() -> Playbook:
    return Playbook.load(REPO / "playbooks" / "example.yaml")


def run_example(ssh: SshDriver, hosts: tuple[str, ...] = HOSTS, *, check: bool = False) -> PlaybookResult:
    return on_hosts(ssh, lambda: run_playbook(ssh, example(), {h: variables(h) for h in hosts}, check=check))


def statuses(result: PlaybookResult, host: str) -> list[str]:
    return [s.status for s in result.hosts[host].steps]


def test_the_example_converges_then_changes_nothing_and_check_mode_touches_nothing(
        hosts_lab: tuple[control.LabInfo, dict[str, Any]]) -> None:
    info, state = hosts_lab
    key, _public = operator_key(info)

    check = run_example(ssh := driver(info, state), check=True)
    assert check.failed == {}, check.failed
    assert statuses(check, "node-03") == ["changed", "changed", "changed", "changed", "changed", "ok"]
    assert statuses(check, "node-01")[4] == "skipped"
    config = check.hosts["node-01"].steps[1]
    assert "+host = node-01" in config.diff and any("base64 -d" in c for c in config.commands)
    assert ssh.round_trips == dict.fromkeys(HOSTS, 1)
    with connect(state["node-01"]["address"], key) as conn:
        assert sh(conn, "ls /etc/botlab-example /etc/systemd/system/botlab-example.service").exited == 2

    first = run_example(ssh := driver(info, state))
    assert first.failed == {}, first.failed
    assert sorted(first.changed) == list(HOSTS)
    assert statuses(first, "node-03") == ["changed", "changed", "changed", "changed", "changed", "ok"]
    assert [(h.name, h.status) for h in first.hosts["node-02"].handlers] == [
        ("daemon-reload", "changed"), ("restart botlab-example", "changed")]
    assert ssh.round_trips == dict.fromkeys(HOSTS, 2)  # facts + one apply script
    assert ssh.connections == dict.fromkeys(HOSTS, 1)
    with connect(state["node-03"]["address"], key) as conn:
        assert sh(conn, "systemctl is-active botlab-example").stdout.strip() == "active"
        conf = sh(conn, "sudo -n stat -c '%a %U' /etc/botlab-example/example.conf;"
                        " sudo -n cat /var/lib/botlab-example-gpu")
        assert conf.stdout.split() == ["640", "root", "node-03"]
        block = sh(conn, "cat /etc/botlab-example/hosts").stdout
        assert block == "# BEGIN botlab example\nnode-03 gpus=8 runtime=containerd\n# END botlab example\n"
    with connect(state["node-01"]["address"], key) as conn:
        assert sh(conn, "ls /var/lib/botlab-example-gpu").exited == 2  # when: gpu

    second = run_example(ssh := driver(info, state))
    assert second.failed == {} and second.changed == []
    assert all(h.handlers == [] for h in second.hosts.values())  # zero handler runs
    assert ssh.round_trips == dict.fromkeys(HOSTS, 1)  # facts only


def test_a_host_presenting_another_key_is_refused_and_the_others_run(
        hosts_lab: tuple[control.LabInfo, dict[str, Any]]) -> None:
    info, state = hosts_lab
    ssh = driver(info, state, node_02=state["node-01"]["host_keys"])  # what a redeployed host looks like
    result = run_example(ssh, check=True)
    assert set(result.failed) == {"node-02"}
    error = result.failed["node-02"]
    assert state["node-02"]["address"] in error and "presented host key ssh-ed25519 SHA256:" in error
    assert "expected ssh-ed25519 SHA256:" in error and "botlab up kubernetes" in error
    assert ssh.round_trips.get("node-02", 0) == 0 and ssh.connections.get("node-02", 0) == 0  # nothing sent
    assert result.hosts["node-01"].error is None and result.hosts["node-03"].error is None


def test_an_unreachable_host_fails_naming_it_while_the_others_converge(
        hosts_lab: tuple[control.LabInfo, dict[str, Any]]) -> None:
    info, state = hosts_lab
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ssh = driver(info, state)
    ssh.know("node-09", "127.0.0.1", state["node-01"]["host_keys"], port=port)
    hosts = {h: variables(h) for h in (*HOSTS, "node-09")}
    result = on_hosts(ssh, lambda: run_playbook(ssh, example(), hosts))
    assert set(result.failed) == {"node-09"}
    assert "127.0.0.1" in result.failed["node-09"] and "after 2 attempts" in result.failed["node-09"]
    assert all(result.hosts[h].error is None for h in HOSTS)
    with pytest.raises(Exception, match="failed on 1 of 4 hosts: node-09: "):
        result.raise_for_failures()


def test_put_is_atomic_with_mode_and_owner_and_read_gives_it_back(
        hosts_lab: tuple[control.LabInfo, dict[str, Any]]) -> None:
    info, state = hosts_lab
    ssh = driver(info, state)
    hostile = "/etc/botlab-put/a b'; touch pwned #"

    async def work() -> tuple[Any, Any, Any, Any]:
        await ssh.run("node-01", "mkdir -p /etc/botlab-put", sudo=True)
        put = await ssh.put("node-01", hostile, "secret\n", mode="0600", owner="root:root", sudo=True)
        listing = await ssh.run("node-01", "cd /etc/botlab-put && stat -c '%a %U' -- * && ls -A", sudo=True)
        return put, listing, await ssh.read("node-01", hostile, sudo=True), await ssh.read("node-01", "/nonexistent")

    put, listing, text, absent = on_hosts(ssh, work)
    assert put.ok, put.stderr
    # one file, the hostile name itself: nothing touched, no temporary file left
    assert listing.stdout.splitlines() == ["600 root", "a b'; touch pwned #"]
    assert text == "secret\n" and absent is None
    assert ssh.connections == {"node-01": 1} and ssh.round_trips == {"node-01": 5}
