"""Deadlines, reconnects and idempotent creation in the drivers, without a lab: the call
deadline, the time bound on retries, since when a system is unreachable, what a change that got
no answer says, how a dead model watcher is reopened, and libjuju's background noise."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from juju.errors import JujuConnectionError
from maas.client.bones import CallError

from botlab.drivers.juju import JujuDriver, JujuModel, _route_libjuju_noise
from botlab.drivers.maas import MaasDriver
from botlab.drivers.retry import (
    Deadlines,
    NoAnswer,
    Reachability,
    RetryPolicy,
    answer_within,
    retry_call,
)
from botlab.errors import StageError, UsageError

log = logging.getLogger("test")


async def forever() -> str:
    await asyncio.Event().wait()
    return "never"


class Calls:
    """A call that, in turn, raises each exception or awaits each function given (`forever`:
    no answer), then answers "done"; counts its calls."""

    def __init__(self, *steps: BaseException | Callable[[], Awaitable[str]]) -> None:
        self.steps = list(steps)
        self.count = 0

    async def __call__(self) -> str:
        self.count += 1
        if not self.steps:
            return "done"
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return await step()


# --- the shared pieces ----------------------------------------------------------------------------


def test_a_call_without_an_answer_ends_at_its_deadline_and_other_timeouts_pass_unchanged() -> None:
    async def scenario() -> None:
        with pytest.raises(NoAnswer, match=r"no answer within 0\.05s"):
            await answer_within(0.05, forever)

        async def own_timeout() -> str:
            raise TimeoutError("the library's own")

        with pytest.raises(TimeoutError, match="the library's own") as raised:
            await answer_within(5, own_timeout)
        assert not isinstance(raised.value, NoAnswer)

        async def quick() -> str:
            return "done"

        assert await answer_within(5, quick) == "done"

    asyncio.run(scenario())


def test_retries_stop_once_the_time_bound_has_passed_whatever_attempts_remain() -> None:
    async def slow_failure() -> str:
        await asyncio.sleep(0.05)
        raise ConnectionResetError("reset")

    fn = Calls(*(slow_failure for _ in range(100)))

    async def attempt() -> str:
        return await fn()

    async def scenario() -> None:
        with pytest.raises(StageError, match=r"reset \(after \d attempts\)"):
            await retry_call(RetryPolicy(attempts=100, within=0.2), attempt, transient=lambda _: True, log=log,
                             what="t")

    asyncio.run(scenario())
    assert 3 <= fn.count <= 6


def test_deadlines_come_from_the_environment_and_bad_values_are_refused_by_name() -> None:
    assert Deadlines.from_environ({}) == Deadlines(30.0, 60.0)
    assert Deadlines.from_environ({"BOTLAB_CALL_TIMEOUT": "2.5", "BOTLAB_UNREACHABLE_TIMEOUT": "10"}) == Deadlines(
        2.5, 10.0)
    for bad in ("0", "-1", "soon", "nan", "inf"):
        with pytest.raises(UsageError, match=rf"BOTLAB_CALL_TIMEOUT='{bad}': must be a number of seconds > 0"):
            Deadlines.from_environ({"BOTLAB_CALL_TIMEOUT": bad})


def test_reachability_says_since_when_and_forgets_on_any_answer() -> None:
    now = [1000.0]
    reach = Reachability(clock=lambda: 1_700_000_000.0, monotonic=lambda: now[0])
    assert reach.since_text() == "" and reach.lost_for() == 0.0
    reach.lost()
    now[0] += 5
    reach.lost()  # the first failure counts
    assert reach.lost_for() == 5.0
    assert re.fullmatch(r"since \d\d:\d\d:\d\d", reach.since_text())
    reach.answered()
    assert reach.since is None and reach.lost_for() == 0.0


# --- Juju -------------------------------------------------------------------------------------------


def juju_driver(call: float = 0.05, unreachable: float = 5.0) -> JujuDriver:
    async def no_wait(_seconds: float) -> None:
        return None

    return JujuDriver(None, None, "lab", "10.0.0.2:17070", sleep=no_wait, deadlines=Deadlines(call, unreachable))


def test_a_juju_change_without_an_answer_is_reported_once_and_never_sent_again() -> None:
    fn = Calls(forever, forever)
    with pytest.raises(StageError) as failed:
        asyncio.run(juju_driver()._call("add relation", fn, where="a b"))
    assert fn.count == 1
    assert str(failed.value).startswith(
        "Juju add relation (a b): no answer from the controller at 10.0.0.2:17070 within 0.05s:"
        " Juju may or may not have made this change — check that the controller is reachable, then run"
        " `botlab up`: it plans again from what is in the model")


def test_a_juju_read_without_an_answer_is_retried_then_names_the_controller_and_since_when() -> None:
    fn = Calls(forever, forever)
    assert asyncio.run(juju_driver()._call("read status", fn, where="model m", read=True)) == "done"
    assert fn.count == 3

    fn = Calls(*(forever for _ in range(9)))
    with pytest.raises(StageError) as failed:
        asyncio.run(juju_driver()._call("read status", fn, where="model m", read=True))
    assert re.match(r"Juju read status \(model m\): cannot reach the controller at 10\.0\.0\.2:17070 since"
                    r" \d\d:\d\d:\d\d \(NoAnswer: no answer within 0\.05s\) \(after 5 attempts\) — check that the"
                    r" controller is running", str(failed.value)), str(failed.value)


def test_no_endpoint_accepting_a_connection_is_a_lost_connection_not_an_answer() -> None:
    fn = Calls(JujuConnectionError("Unable to connect to any endpoint: 10.0.0.2:17070"))
    assert asyncio.run(juju_driver()._call("list models", fn, read=True)) == "done"
    assert fn.count == 2


class FakeConnection:
    def __init__(self, is_open: bool) -> None:
        self.is_open = is_open


class FakeModel:
    """What JujuModel reads of libjuju's Model: its connection, its AllWatcher task, observers."""

    def __init__(self, watching: bool) -> None:
        loop = asyncio.get_running_loop()
        self._watcher_task: asyncio.Future[None] = loop.create_future()
        if not watching:
            self._watcher_task.set_result(None)  # the watcher ended (libjuju gave up)
        self._connection = FakeConnection(watching)
        self.observers: list[Any] = []
        self.disconnected = False

    def connection(self) -> FakeConnection:
        return self._connection

    def add_observer(self, fn: Any) -> None:
        self.observers.append(fn)

    async def disconnect(self) -> None:
        self.disconnected = True
        if not self._watcher_task.done():
            self._watcher_task.set_result(None)


def test_a_dead_watcher_is_reopened_and_the_wait_told_the_model_was_read_again() -> None:
    async def scenario() -> None:
        driver = juju_driver()
        dead, fresh = FakeModel(watching=False), FakeModel(watching=True)

        async def connect(name: str, uuid: str) -> FakeModel:
            assert (name, uuid) == ("lab-k8s", "u-1")
            return fresh

        driver._connect_model = connect  # type: ignore[method-assign]
        model = JujuModel(driver, dead, "lab-k8s", "u-1")
        assert await model.changed(2.0) is True
        assert model.reopened == 1 and model._model is fresh and dead.disconnected
        assert fresh.observers == [model._on_delta]
        assert await model.changed(0.1) is False  # healthy and quiet
        await model.close()

    asyncio.run(scenario())


def test_a_watch_that_cannot_reconnect_keeps_trying_then_fails_naming_the_controller_and_since() -> None:
    async def scenario() -> None:
        driver = juju_driver(unreachable=0.3)
        attempts = 0

        async def refused(name: str, uuid: str) -> FakeModel:
            nonlocal attempts
            attempts += 1
            raise ConnectionRefusedError(111, "Connection refused")

        driver._connect_model = refused  # type: ignore[method-assign]
        model = JujuModel(driver, FakeModel(watching=False), "lab-k8s", "u-1")
        with pytest.raises(StageError) as failed:
            await model.changed(30.0)
        assert attempts >= 5
        assert re.match(r"Juju watch model \(model lab-k8s\): cannot reach the controller at 10\.0\.0\.2:17070"
                        r" since \d\d:\d\d:\d\d \(ConnectionRefusedError", str(failed.value)), str(failed.value)
        assert "run `botlab up`: it resumes" in str(failed.value)

    asyncio.run(scenario())


def test_libjuju_background_failures_go_to_the_run_log_not_the_terminal(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: seen.append(context))
        _route_libjuju_noise(loop)
        future = loop.create_future()
        with caplog.at_level(logging.DEBUG, logger="botlab.juju"):
            loop.call_exception_handler({"message": "Task exception was never retrieved", "future": future,
                                         "exception": JujuConnectionError("Unable to connect to any endpoint")})
        loop.call_exception_handler({"message": "something of botlab's own", "exception": ValueError("x")})

    asyncio.run(scenario())
    assert [c["message"] for c in seen] == ["something of botlab's own"]
    assert "Unable to connect to any endpoint" in caplog.text


# --- MAAS -------------------------------------------------------------------------------------------


def maas_driver(call: float = 0.05, unreachable: float = 5.0) -> MaasDriver:
    async def no_wait(_seconds: float) -> None:
        return None

    return MaasDriver(None, 2, "env MAAS_KEY", "http://maas.test/MAAS/", sleep=no_wait,
                      deadlines=Deadlines(call, unreachable))


def call_error(status: int, body: bytes) -> CallError:
    response = type("Response", (), {"status": status, "reason": "", "headers": {}})()
    return CallError({"method": "POST", "uri": "http://maas.test/MAAS/api/2.0/tags/"}, response, body, None)


def maas_call(driver: MaasDriver, fn: Callable[[], Awaitable[str]], *, read: bool) -> str:
    return asyncio.run(driver._call("create tag", fn, where="lab-gpu", read=read))


def test_a_maas_change_without_an_answer_is_reported_once() -> None:
    fn = Calls(forever, forever)
    with pytest.raises(StageError) as failed:
        maas_call(maas_driver(), fn, read=False)
    assert fn.count == 1
    assert str(failed.value).startswith(
        "MAAS create tag (lab-gpu): no answer from MAAS at http://maas.test/MAAS/ (no answer within 0.05s):"
        " MAAS may or may not have made this change")


def test_a_maas_change_is_sent_again_only_when_maas_cannot_have_acted_on_it() -> None:
    fn = Calls(ConnectionRefusedError(111, "Connection refused"), call_error(503, b"busy"))
    assert maas_call(maas_driver(), fn, read=False) == "done"
    assert fn.count == 3
    fn = Calls(ConnectionResetError("reset by peer"))  # sent, then the connection broke
    with pytest.raises(StageError, match="may or may not have made this change"):
        maas_call(maas_driver(), fn, read=False)
    assert fn.count == 1


def test_a_maas_read_without_an_answer_is_retried_within_the_bound_then_says_since_when() -> None:
    fn = Calls(*(forever for _ in range(20)))
    with pytest.raises(StageError) as failed:
        maas_call(maas_driver(unreachable=0.2), fn, read=True)
    assert 2 <= fn.count <= 6
    assert re.match(r"MAAS create tag \(lab-gpu\): cannot reach MAAS at http://maas\.test/MAAS/ since"
                    r" \d\d:\d\d:\d\d: no answer within 0\.05s", str(failed.value)), str(failed.value)


class FakeTags:
    def __init__(self, answer: Exception | None) -> None:
        self.answer = answer
        self.calls = 0

    async def create(self, name: str, comment: str) -> dict[str, str]:
        self.calls += 1
        if self.answer is not None:
            raise self.answer
        return {"name": name}


def test_creating_a_tag_that_exists_already_is_done() -> None:
    driver = maas_driver()
    exists = FakeTags(call_error(400, json.dumps({"name": ["Tag with this Name already exists."]}).encode()))
    driver._session = type("Session", (), {"Tags": exists})()
    asyncio.run(driver.create_tag("lab-gpu", "botlab"))
    assert exists.calls == 1

    invalid = FakeTags(call_error(400, json.dumps({"name": ["Invalid character in tag name."]}).encode()))
    driver._session = type("Session", (), {"Tags": invalid})()
    with pytest.raises(StageError, match="Invalid character in tag name"):
        asyncio.run(driver.create_tag("lab gpu", "botlab"))
