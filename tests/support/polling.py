"""Waiting on a system that changes on its own time (a server's own loop, a charm's hook), with
a deadline: the only synchronisation the end-to-end tests use."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 15.0) -> T:
    """Poll `probe` until `done(result)`; its last result, or AssertionError showing it."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last: {result!r}")
        time.sleep(0.05)
