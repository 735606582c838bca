"""The emulator's event log (requests and life-cycle transitions) and request counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class EventLog:
    """Append-only, numbered events; readable from any thread while the loop appends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._counters: Counter[str] = Counter()

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            event = {"seq": len(self._events) + 1, "time": time.time(), "kind": kind, **fields}
            self._events.append(event)
            if kind == "request":
                op = fields.get("op")
                call = f"{fields.get('method')} {fields.get('handler')}"
                self._counters[call if op is None else f"{call} op={op}"] += 1
                self._counters[f"status {fields.get('status')}"] += 1
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
        """Requests per call ("POST MachineHandler op=deploy"), per status, and in total."""
        with self._lock:
            return dict(sorted(self._counters.items()))
