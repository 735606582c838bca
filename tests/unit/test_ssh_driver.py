"""The SSH driver without a host: which faults are retried, what a changed host key reads
like, and that a host nobody answers for fails naming it after the retry policy's attempts."""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paramiko
import pytest

from botlab.drivers import Drivers
from botlab.drivers.retry import Deadlines, RetryPolicy
from botlab.drivers.ssh import SshDriver, _transient, fingerprint
from botlab.errors import StageError


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, str]:
    """Two distinct ed25519 public key lines (generated here, never used to log in)."""
    import subprocess

    lines = []
    for name in ("a", "b"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
        lines.append(" ".join((tmp_path / f"{name}.pub").read_text().split()[:2]))
    return lines[0], lines[1]


def test_connection_faults_are_retried_but_never_auth_or_host_key_failures(keys: tuple[str, str]) -> None:
    assert _transient(ConnectionRefusedError()) and _transient(ConnectionResetError()) and _transient(TimeoutError())
    assert _transient(paramiko.SSHException("Error reading SSH protocol banner"))
    assert not _transient(paramiko.AuthenticationException("Authentication failed."))
    presented = paramiko.PKey.from_type_string("ssh-ed25519", base64.b64decode(keys[1].split()[1]))
    expected = paramiko.PKey.from_type_string("ssh-ed25519", base64.b64decode(keys[0].split()[1]))
    assert not _transient(paramiko.BadHostKeyException("10.0.0.1", presented, expected))


def test_a_changed_host_key_names_host_address_both_fingerprints_and_what_to_do(keys: tuple[str, str]) -> None:
    ssh = SshDriver("ubuntu", "/nonexistent")
    ssh.know("node-02", "10.77.0.12", [keys[0]])
    presented = paramiko.PKey.from_type_string("ssh-ed25519", base64.b64decode(keys[1].split()[1]))
    expected = paramiko.PKey.from_type_string("ssh-ed25519", base64.b64decode(keys[0].split()[1]))
    error = ssh._error("node-02", "connect", paramiko.BadHostKeyException("10.77.0.12", presented, expected))
    text = str(error)
    assert text.startswith("SSH connect (node-02): 10.77.0.12 presented host key ssh-ed25519 SHA256:")
    assert fingerprint("ssh-ed25519", presented.asbytes()) in text
    assert f"expected {fingerprint('ssh-ed25519', expected.asbytes())}" in text
    assert "`botlab up kubernetes`" in text
    asyncio.run(ssh.close())


def test_a_host_nobody_answers_for_fails_naming_it_after_the_policys_attempts(keys: tuple[str, str]) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    ssh = SshDriver("ubuntu", "/nonexistent", deadlines=Deadlines(call=2, unreachable=5),
                    retry=RetryPolicy(attempts=3, initial=0.01, maximum=0.02), sleep=no_wait)
    ssh.know("node-09", "127.0.0.1", [keys[0]], port=port)

    async def scenario() -> Any:
        try:
            return await ssh.run("node-09", "true")
        finally:
            await ssh.close()

    with pytest.raises(StageError) as caught:
        asyncio.run(scenario())
    assert caught.value.where == "node-09" and "127.0.0.1" in caught.value.message
    assert "(after 3 attempts)" in caught.value.message and len(waits) == 2
    assert ssh.round_trips == {}  # nothing was sent


def test_an_unknown_host_is_an_error_saying_where_keys_come_from() -> None:
    ssh = SshDriver("ubuntu", "/nonexistent")
    with pytest.raises(StageError, match=r"no address or host keys known.*botlab up kubernetes"):
        asyncio.run(ssh.run("node-01", "true"))


def test_drivers_open_one_ssh_pool_and_close_it() -> None:
    inventory: Any = SimpleNamespace(ssh=SimpleNamespace(user="ubuntu", private_key=Path("/k")))

    async def scenario() -> tuple[Any, Any]:
        async with Drivers(inventory, {}) as drivers:
            first, again = await drivers.ssh(), await drivers.ssh()
        return first, again

    first, again = asyncio.run(scenario())
    assert first is again and first.user == "ubuntu" and first.key_file == "/k"
