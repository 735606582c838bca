"""The Juju emulator's event log: every RPC (facade, version, method, mutating, outcome),
connections, model life-cycle steps and fault changes; plus call counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class EventLog:
    """Append-only, numbered events (seq from 1); readable from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._counters: Counter[str] = Counter()

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            event = {"seq": len(self._events) + 1, "time": time.time(), "kind": kind, **fields}
            self._events.append(event)
            if kind == "rpc":
                self._counters[f"{fields.get('facade')}({fields.get('version')}).{fields.get('method')}"] += 1
                self._counters["error" if fields.get("error") else "ok"] += 1
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
        """Calls per method ("Client(8).FullStatus"), ok/error, and the total."""
        with self._lock:
            return dict(sorted(self._counters.items()))
