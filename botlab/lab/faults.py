"""What the emulators' fault books share: the active faults, numbered from 1 as they are added;
and the service state (up, down, hung) each emulator's control API can switch.

Each emulator decides what its faults match and how they are used up (maas/faults.py,
juju/faults.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class Describable(Protocol):
    def describe(self) -> dict[str, Any]: ...


F = TypeVar("F", bound=Describable)


class ActiveFaults(Generic[F]):
    """The active faults of one emulator. Thread-safe: the control API and tests add, list and
    clear faults from other threads while the event loop consumes them (under `_lock`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[F] = []
        self._next_id = 1

    def _add(self, make: Callable[[int], F]) -> F:
        """Append `make(id)`, the id being the next number (used up only if `make` returns)."""
        with self._lock:
            fault = make(self._next_id)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults]


SERVICE_STATES = ("up", "down", "hung")


class ServiceState:
    """Whether an emulated service answers at all (its control API always does):

    - `up`: it answers;
    - `down`: as if its process died: open connections are cut, new ones refused or cut
      before any answer;
    - `hung`: as if its process froze (SIGSTOP): connections are accepted, requests are
      held unanswered, and answered once it is `up` again.

    Changed and read on the emulator's event loop only."""

    def __init__(self) -> None:
        self.state = "up"
        self._answering = asyncio.Event()
        self._answering.set()

    def set(self, state: str) -> str:
        """Switch to `state`; returns the previous one. ValueError for an unknown state."""
        if state not in SERVICE_STATES:
            raise ValueError(f"state: must be one of {', '.join(SERVICE_STATES)}, got {state!r}")
        previous, self.state = self.state, state
        if state == "hung":
            self._answering.clear()
        else:
            self._answering.set()
        return previous

    async def answering(self) -> None:
        """Return at once while up or down; while hung, once it is no longer hung."""
        await self._answering.wait()
