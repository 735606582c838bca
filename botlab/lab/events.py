"""The emulators' event log: numbered events (calls, life-cycle steps, fault changes) and
counters of the calls among them.

Each emulator says which of its events are calls and what they count as: the MAAS emulator
counts its `request` events (maas/api.py `request_counters`), the Juju emulator its `rpc`
events (juju/rpc.py `rpc_counters`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# An event's kind and fields -> the counters it adds one to ("total" is added for it); none
# for events that are not calls.
CountersOf = Callable[[str, Mapping[str, Any]], Iterable[str]]


class EventLog:
    """Append-only, numbered events (seq from 1); readable from any thread while the loop appends."""

    def __init__(self, counters_of: CountersOf) -> None:
        self._counters_of = counters_of
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._counters: Counter[str] = Counter()

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            event = {"seq": len(self._events) + 1, "time": time.time(), "kind": kind, **fields}
            self._events.append(event)
            names = list(self._counters_of(kind, fields))
            if names:
                self._counters.update(names)
                self._counters["total"] += 1
            return dict(event)

    def since(self, seq: int = 0) -> list[dict[str, Any]]:
        """Events numbered above `seq` (0: all), oldest first."""
        with self._lock:
            return [dict(e) for e in self._events[max(seq, 0) :]]

    @property
    def last_seq(self) -> int:
        with self._lock:
            return len(self._events)

    def counters(self) -> dict[str, int]:
        """The calls counted so far, by counter name, and their "total"."""
        with self._lock:
            return dict(sorted(self._counters.items()))
