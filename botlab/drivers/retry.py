"""One retry policy for every driver: bounded attempts (and, optionally, a bound in time),
exponential backoff with jitter, a predicate naming the transient errors, and the last error
in the message once attempts run out. Built on tenacity so the drivers do not each carry a
hand-written loop.

Also what every driver shares about reaching its system: a deadline on each call
(`answer_within`, `NoAnswer`), the deadlines' settings (`Deadlines`, from the environment),
and since when a system has not been reached (`Reachability`)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from botlab.errors import StageError, UsageError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all (1: never retried); the n-th wait is `initial * 2**(n-1)` plus
    up to `jitter` seconds at random (so many clients do not retry in step), capped at `maximum`;
    with `within`, no new try starts once that many seconds have passed since the first one
    (so calls that each wait out a deadline still end in bounded time)."""

    attempts: int
    initial: float = 0.0
    maximum: float = 0.0
    jitter: float = 0.0
    within: float | None = None


ONCE = RetryPolicy(attempts=1)  # mutations: never sent twice


def _describe(exc: Exception) -> StageError:
    return StageError(f"{type(exc).__name__}: {exc}")


async def retry_call(
    policy: RetryPolicy,
    fn: Callable[[], Awaitable[T]],
    *,
    transient: Callable[[Exception], bool],
    log: logging.Logger,
    what: str,
    error: Callable[[Exception], StageError] = _describe,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run `fn`, again after a wait while it fails with an error `transient` accepts and
    attempts remain. Any failure is raised as the StageError `error` makes of it (a StageError
    from `fn` passes unchanged); after more than one attempt its message also says how many
    were made. `sleep` is injectable so tests need not wait."""
    tries = 0

    async def attempt() -> T:
        nonlocal tries
        tries += 1
        return await fn()

    def retryable(exc: BaseException) -> bool:
        # Cancellation and KeyboardInterrupt are BaseExceptions and are never retried.
        return isinstance(exc, Exception) and not isinstance(exc, StageError) and transient(exc)

    def note(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.debug("%s: %s, retry %d/%d in %.2fs", what, failure, state.attempt_number, policy.attempts - 1, wait)

    stop: stop_base = stop_after_attempt(max(1, policy.attempts))
    if policy.within is not None:
        stop = stop | stop_after_delay(policy.within)
    retrying = AsyncRetrying(
        stop=stop,
        wait=wait_exponential_jitter(multiplier=policy.initial, max=policy.maximum, jitter=policy.jitter),
        retry=retry_if_exception(retryable),
        before_sleep=note,
        sleep=sleep,
        reraise=True,
    )
    try:
        return await retrying(attempt)
    except StageError:
        raise
    except Exception as exc:
        failure = error(exc)
        if tries > 1:
            failure = StageError(f"{failure.message} (after {tries} attempts)", system=failure.system,
                                 operation=failure.operation, where=failure.where, hint=failure.hint)
        raise failure from None


# --- reaching a system ----------------------------------------------------------------------------

CALL_TIMEOUT_S = 30.0  # one request to MAAS or one Juju RPC: a healthy system answers in seconds
UNREACHABLE_S = 60.0  # how long reads and waits keep trying a system they cannot reach
ENV_CALL_TIMEOUT = "BOTLAB_CALL_TIMEOUT"
ENV_UNREACHABLE = "BOTLAB_UNREACHABLE_TIMEOUT"


@dataclass(frozen=True)
class Deadlines:
    """`call`: seconds one request or RPC may take before it counts as unanswered;
    `unreachable`: seconds a read or a wait keeps retrying and reconnecting a system it cannot
    reach before it fails naming the system and since when. Operator settings, not lab state,
    so they come from the environment (BOTLAB_CALL_TIMEOUT, BOTLAB_UNREACHABLE_TIMEOUT), not
    the inventory: changing them changes no stage's fingerprint."""

    call: float = CALL_TIMEOUT_S
    unreachable: float = UNREACHABLE_S

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Deadlines:
        return cls(_seconds(environ, ENV_CALL_TIMEOUT, CALL_TIMEOUT_S),
                   _seconds(environ, ENV_UNREACHABLE, UNREACHABLE_S))


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name}={raw!r}: must be a number of seconds > 0 (default {default:g})")
    return value


class NoAnswer(TimeoutError):
    """A call to an external system got no answer within its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g}s")
        self.seconds = seconds


async def answer_within(seconds: float, fn: Callable[[], Awaitable[T]]) -> T:
    """`await fn()`, cancelled after `seconds` with NoAnswer (a TimeoutError raised by `fn`
    itself passes unchanged)."""
    try:
        async with asyncio.timeout(seconds) as scope:
            return await fn()
    except TimeoutError:
        if scope.expired():
            raise NoAnswer(seconds) from None
        raise


class Reachability:
    """Since when a system has not been reached: set by the first connection fault or
    unanswered call, cleared by any answer (an error answer included)."""

    def __init__(self, clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self.since: float | None = None  # wall-clock time of the first failure
        self._since_monotonic = 0.0

    def lost(self) -> None:
        if self.since is None:
            self.since = self._clock()
            self._since_monotonic = self._monotonic()

    def answered(self) -> None:
        self.since = None

    def lost_for(self) -> float:
        """Seconds since it was lost (0 while reached)."""
        return 0.0 if self.since is None else self._monotonic() - self._since_monotonic

    def since_text(self) -> str:
        """`since 14:02:07` (local time), or "" while reached."""
        return "" if self.since is None else "since " + time.strftime("%H:%M:%S", time.localtime(self.since))
