"""The drivers without a lab: MAAS statuses, what MAAS and Juju faults read like and which are
retried (under the one retry policy, with a sleep that does not wait), and `Drivers` as an
async context manager."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from juju.errors import JujuAPIError, JujuConnectionError, JujuError
from maas.client.bones import CallError

from botlab.drivers import Drivers, juju, maas
from botlab.drivers.juju import JujuDriver
from botlab.drivers.maas import FAILED, IN_USE, RELEASE_PENDING, WAITING, MaasDriver, MaasStatus
from botlab.errors import StageError
from tests.support.fakes import Calls

# --- MAAS statuses ------------------------------------------------------------------------------


def test_maas_status_codes_are_maas_node_status() -> None:
    assert (MaasStatus.NEW, MaasStatus.READY, MaasStatus.DEPLOYED, MaasStatus.FAILED_TESTING) == (0, 4, 6, 22)
    assert [s.value for s in MaasStatus] == list(range(23))
    assert {MaasStatus.COMMISSIONING, MaasStatus.TESTING, MaasStatus.RELEASING} == WAITING
    assert {MaasStatus.FAILED_COMMISSIONING, MaasStatus.FAILED_TESTING} == FAILED
    assert {MaasStatus.ALLOCATED, MaasStatus.DEPLOYING, MaasStatus.DEPLOYED, MaasStatus.FAILED_DEPLOYMENT} == IN_USE
    assert {MaasStatus.DEPLOYED, MaasStatus.DEPLOYING, MaasStatus.ALLOCATED,
            MaasStatus.RELEASING, MaasStatus.DISK_ERASING} == RELEASE_PENDING


def test_an_unknown_status_code_still_reads_as_its_number() -> None:
    newer = MaasStatus(42)
    assert isinstance(newer, MaasStatus) and newer == 42 and newer.name == "UNKNOWN_42"
    assert newer not in IN_USE and newer != MaasStatus.READY
    with pytest.raises(ValueError):
        MaasStatus("Ready")  # type: ignore[arg-type]  # only numbers are statuses


def test_a_machine_reads_its_status_as_the_enum_and_its_addresses() -> None:
    machine = maas._machine({"system_id": "abc123", "hostname": "node-01", "status": 4, "status_name": "Ready",
                             "ip_addresses": ["10.20.0.11", "fd00::11"], "interface_set": [
                                 {"mac_address": "52:54:00:AA:BB:01"}]})
    assert machine.status == MaasStatus.READY and machine.status is MaasStatus.READY
    assert machine.ip_addresses == ("10.20.0.11", "fd00::11") and machine.macs == ("52:54:00:aa:bb:01",)
    assert maas._machine({"system_id": "x", "status": 6}).status in RELEASE_PENDING
    assert maas._machine({"system_id": "x"}).ip_addresses == ()


# --- MAAS faults --------------------------------------------------------------------------------


def call_error(status: int, body: bytes = b"busy") -> CallError:
    request = {"method": "GET", "uri": "http://maas.test/MAAS/api/2.0/machines/"}
    return CallError(request, SimpleNamespace(status=status, reason="x"), body, None)


def maas_driver(waits: list[float]) -> MaasDriver:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return MaasDriver(None, 2, "env MAAS_KEY", "http://maas.test/MAAS/", sleep=sleep)


def maas_call(fn: Callable[[], Awaitable[str]], waits: list[float]) -> str:
    return asyncio.run(maas_driver(waits)._call("list machines", fn, where="node-01"))


def test_maas_503_bursts_and_resets_are_retried_within_the_budget() -> None:
    waits: list[float] = []
    fn = Calls(*(call_error(503) for _ in range(5)), ConnectionResetError("reset"))
    assert maas_call(fn, waits) == "done"
    assert fn.count == 7 and len(waits) == 6 and sum(waits) <= 16.0


def test_maas_401_is_not_retried_and_names_the_key() -> None:
    waits: list[float] = []
    fn = Calls(call_error(401, b"Authorization Error"))
    with pytest.raises(StageError) as failed:
        maas_call(fn, waits)
    assert fn.count == 1 and waits == []
    assert failed.value.message == "MAAS at http://maas.test/MAAS/ refused the API key (HTTP 401: Authorization Error)"
    assert failed.value.hint is not None and failed.value.hint.startswith("check the key in env MAAS_KEY")


def test_other_maas_http_errors_are_not_retried() -> None:
    fn = Calls(call_error(409, b"Machine is not in a state to commission"))
    with pytest.raises(StageError) as failed:
        maas_call(fn, [])
    assert fn.count == 1
    assert str(failed.value) == ("MAAS list machines (node-01): HTTP 409: Machine is not in a state to commission"
                                 " — see the MAAS UI or logs for this machine")


def test_an_unreachable_maas_gives_up_with_the_last_error_and_the_attempts() -> None:
    waits: list[float] = []
    fn = Calls(*(ConnectionRefusedError(111, "Connection refused") for _ in range(9)))
    with pytest.raises(StageError) as failed:
        maas_call(fn, waits)
    assert fn.count == 7
    assert re.fullmatch(r"cannot reach MAAS at http://maas\.test/MAAS/ since \d\d:\d\d:\d\d:"
                        r" \[Errno 111\] Connection refused \(after 7 attempts\)", failed.value.message)
    assert failed.value.hint == "check maas.url and that MAAS is running, then run `botlab up`"


# --- Juju faults --------------------------------------------------------------------------------


def juju_driver(waits: list[float]) -> JujuDriver:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return JujuDriver(None, None, "lab", "10.0.0.2:17070", sleep=sleep)


def juju_call(fn: Callable[[], Awaitable[str]], *, read: bool, waits: list[float] | None = None) -> str:
    driver = juju_driver([] if waits is None else waits)
    return asyncio.run(driver._call("read status", fn, where="model demo-k8s", read=read))


def test_juju_reads_are_retried_on_a_lost_connection() -> None:
    waits: list[float] = []
    fn = Calls(ConnectionResetError("reset"), OSError("broken pipe"))
    assert juju_call(fn, read=True, waits=waits) == "done"
    assert fn.count == 3 and len(waits) == 2


def test_juju_reads_give_up_with_the_last_error_within_about_four_seconds() -> None:
    waits: list[float] = []
    fn = Calls(*(ConnectionResetError("reset") for _ in range(9)))
    with pytest.raises(StageError) as failed:
        juju_call(fn, read=True, waits=waits)
    assert fn.count == juju.READS.attempts == 5 and sum(waits) <= 4.0
    assert re.fullmatch(r"cannot reach the controller at 10\.0\.0\.2:17070 since \d\d:\d\d:\d\d"
                        r" \(ConnectionResetError: reset\) \(after 5 attempts\)", failed.value.message)


def test_juju_mutations_are_never_sent_twice() -> None:
    fn = Calls(ConnectionResetError("reset"))
    with pytest.raises(StageError) as failed:
        juju_call(fn, read=False)
    assert fn.count == 1
    assert failed.value.message == ("lost the connection to the controller at 10.0.0.2:17070 before it answered"
                                    " (ConnectionResetError: reset): Juju may or may not have made this change")


def test_what_juju_answered_is_final_even_for_reads() -> None:
    denied = JujuAPIError({"error": "invalid entity name or password", "error-code": "unauthorized access",
                           "response": {}, "request-id": 1})
    for error, message in [
        (denied, "the controller refused the login: invalid entity name or password"),
        (JujuAPIError({"error": "model not found", "error-code": "not found", "response": {}, "request-id": 2}),
         "model not found (not found)"),
        (JujuError(["keys not found"]), "keys not found"),
        (JujuConnectionError("juju server-version 2.9.42 not supported"), "juju server-version 2.9.42 not supported"),
    ]:
        fn = Calls(error)
        with pytest.raises(StageError) as failed:
            juju_call(fn, read=True)
        assert fn.count == 1 and failed.value.message == message


# --- Drivers ------------------------------------------------------------------------------------


class FakeDriver:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        if self.fail:
            raise RuntimeError("socket already gone")


def fake_drivers(monkeypatch: pytest.MonkeyPatch, *, maas_fails: bool) -> tuple[FakeDriver, FakeDriver]:
    opened = FakeDriver(maas_fails), FakeDriver(False)

    async def connect_maas(inventory: Any, environ: Any) -> FakeDriver:
        return opened[0]

    async def connect_juju(inventory: Any, environ: Any) -> FakeDriver:
        return opened[1]

    monkeypatch.setattr(MaasDriver, "connect", connect_maas)
    monkeypatch.setattr(JujuDriver, "connect", connect_juju)
    return opened


def test_drivers_close_every_opened_driver_on_exit_even_when_one_fails_to_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = fake_drivers(monkeypatch, maas_fails=True)

    async def scenario() -> None:
        async with Drivers(None, {}) as drivers:  # type: ignore[arg-type]
            assert await drivers.maas() is opened[0] and await drivers.juju() is opened[1]
            assert await drivers.maas() is opened[0]  # opened once

    asyncio.run(scenario())
    assert all(d.closed for d in opened)


def test_drivers_close_on_error_and_the_runs_own_error_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = fake_drivers(monkeypatch, maas_fails=True)

    async def scenario() -> None:
        async with Drivers(None, {}) as drivers:  # type: ignore[arg-type]
            await drivers.maas()
            raise StageError("the stage failed")

    with pytest.raises(StageError, match="the stage failed"):
        asyncio.run(scenario())
    assert opened[0].closed and not opened[1].closed  # juju was never opened
