"""The drivers' one retry policy: bounded attempts, backoff with bounded jitter, only transient
errors retried, and the last error (with the attempts made) in the message. No test sleeps: the
waits go to a recording sleep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from botlab.drivers import juju, maas
from botlab.drivers.retry import ONCE, RetryPolicy, retry_call
from botlab.errors import StageError
from tests.support.fakes import Calls

T = TypeVar("T")
log = logging.getLogger("botlab.test-retry")
POLICY = RetryPolicy(attempts=5, initial=0.1, maximum=1.0, jitter=0.3)


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


def call(policy: RetryPolicy, fn: Callable[[], Awaitable[T]], waits: list[float], **kw: object) -> T:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    options: dict[str, object] = {"transient": lambda e: isinstance(e, Transient), "log": log, "what": "test op"}
    options.update(kw)
    return asyncio.run(retry_call(policy, fn, sleep=sleep, **options))  # type: ignore[arg-type]


def test_transient_errors_are_retried_until_the_call_answers() -> None:
    waits: list[float] = []
    fn = Calls(Transient("one"), Transient("two"))
    assert call(POLICY, fn, waits) == "done"
    assert fn.count == 3 and len(waits) == 2


def test_attempts_are_bounded_and_the_message_names_the_last_error_and_the_attempts() -> None:
    waits: list[float] = []
    fn = Calls(*(Transient(f"busy {i}") for i in range(10)))
    with pytest.raises(StageError) as failed:
        call(POLICY, fn, waits)
    assert fn.count == 5 and len(waits) == 4
    assert failed.value.message == "Transient: busy 4 (after 5 attempts)"


def test_a_non_transient_error_is_not_retried() -> None:
    waits: list[float] = []
    fn = Calls(Fatal("no such thing"))
    with pytest.raises(StageError) as failed:
        call(POLICY, fn, waits)
    assert fn.count == 1 and waits == []
    assert failed.value.message == "Fatal: no such thing"  # one attempt: no count to report


def test_a_fatal_error_after_retries_still_says_how_many_attempts_were_made() -> None:
    waits: list[float] = []
    fn = Calls(Transient("busy"), Fatal("gone"))
    with pytest.raises(StageError, match=r"Fatal: gone \(after 2 attempts\)"):
        call(POLICY, fn, waits)


def test_the_error_callback_words_the_failure_and_a_stage_error_passes_unchanged() -> None:
    def word(exc: Exception) -> StageError:
        return StageError(f"cannot reach it: {exc}", system="X", operation="read", where="here", hint="check X")

    with pytest.raises(StageError) as failed:
        call(RetryPolicy(3, 0.1, 1.0, 0.0), Calls(*(Transient("reset") for _ in range(3))), [], error=word)
    assert str(failed.value) == "X read (here): cannot reach it: reset (after 3 attempts) — check X"

    own = StageError("already worded", system="X")
    fn = Calls(own)
    with pytest.raises(StageError) as passed:
        call(POLICY, fn, [], transient=lambda e: True, error=word)
    assert passed.value is own and fn.count == 1


def test_cancellation_is_never_retried_nor_reworded() -> None:
    fn = Calls(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        call(POLICY, fn, [], transient=lambda e: True)
    assert fn.count == 1


def test_once_never_retries_even_a_transient_error() -> None:
    waits: list[float] = []
    fn = Calls(Transient("reset"))
    with pytest.raises(StageError, match=r"^Transient: reset$"):
        call(ONCE, fn, waits)
    assert fn.count == 1 and waits == []


def test_waits_grow_exponentially_with_jitter_bounded_and_capped() -> None:
    policy = RetryPolicy(attempts=7, initial=0.1, maximum=2.0, jitter=0.5)
    samples: list[list[float]] = []
    for _ in range(100):
        waits: list[float] = []
        with pytest.raises(StageError):
            call(policy, Calls(*(Transient("x") for _ in range(7))), waits)
        samples.append(waits)
    for waits in samples:
        assert len(waits) == 6
        for n, wait in enumerate(waits):
            base = 0.1 * 2**n
            assert min(base, 2.0) <= wait <= min(base + 0.5, 2.0)
    firsts = {round(w[0], 6) for w in samples}
    assert len(firsts) > 10  # jittered: clients do not retry in step
    assert max(w[-1] for w in samples) == 2.0  # 3.2 s plus jitter, capped


def test_each_retry_is_logged_at_debug_to_the_drivers_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=log.name)
    call(POLICY, Calls(Transient("reset by peer")), [])
    records = [r for r in caplog.records if r.name == log.name]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG
    assert records[0].getMessage().startswith("test op: reset by peer, retry 1/4 in ")


def worst_case(policy: RetryPolicy) -> float:
    return sum(min(policy.initial * 2**n + policy.jitter, policy.maximum) for n in range(policy.attempts - 1))


def best_case(policy: RetryPolicy) -> float:
    return sum(min(policy.initial * 2**n, policy.maximum) for n in range(policy.attempts - 1))


def test_the_drivers_policies_keep_todays_retry_budgets() -> None:
    # MAAS: 7 tries over about 16 s (a burst of six 503s still succeeds); Juju reads: 5 over about 4 s.
    assert maas.RETRY.attempts == 7 and 12.0 <= best_case(maas.RETRY) <= worst_case(maas.RETRY) <= 16.0
    assert juju.READS.attempts == 5 and 3.0 <= best_case(juju.READS) <= worst_case(juju.READS) <= 4.0
