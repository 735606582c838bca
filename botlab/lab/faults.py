"""What the emulators' fault books share: the active faults, numbered from 1 as they are added.

Each emulator decides what its faults match and how they are used up (maas/faults.py,
juju/faults.py).
"""

from __future__ import annotations

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
