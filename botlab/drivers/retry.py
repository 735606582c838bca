"""One retry policy for every driver: bounded attempts, exponential backoff with jitter, a
predicate naming the transient errors, and the last error in the message once attempts run
out. Built on tenacity so the drivers do not each carry a hand-written loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from botlab.errors import StageError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all (1: never retried); the n-th wait is `initial * 2**(n-1)` plus
    up to `jitter` seconds at random (so many clients do not retry in step), capped at `maximum`."""

    attempts: int
    initial: float = 0.0
    maximum: float = 0.0
    jitter: float = 0.0


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

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(1, policy.attempts)),
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
