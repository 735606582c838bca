"""Injected faults: which machines fail which stage, and which requests fail or stall."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botlab.lab.faults import ActiveFaults
from botlab.lab.spec import FaultSpec, dump_fault


@dataclass
class ActiveFault:
    """A fault being applied. `count` is per machine for "fail" faults, total otherwise."""

    id: int
    spec: FaultSpec
    targets: frozenset[str] | None  # hostnames a "fail" fault hits; None: every machine
    fired: int = 0
    fired_by: dict[str, int] = field(default_factory=dict)  # per machine, for "fail"

    def exhausted_for(self, name: str | None = None) -> bool:
        limit = self.spec.count
        if limit is None:
            return False
        used = self.fired_by.get(name, 0) if name is not None else self.fired
        return used >= limit

    def describe(self) -> dict[str, Any]:
        out = dump_fault(self.spec)
        out["id"] = self.id
        out["fired"] = self.fired
        if self.targets is not None:
            out["targets"] = sorted(self.targets)
        if self.fired_by:
            out["fired_by"] = dict(self.fired_by)
        return out


class FaultBook(ActiveFaults[ActiveFault]):
    """The active faults of one emulator: which machines fail which stage, which requests
    fail or stall."""

    def __init__(self, hostnames: Sequence[str], seed: int, service: str = "maas") -> None:
        super().__init__()
        self._hostnames = sorted(hostnames)
        self._seed = seed
        self._service = service

    def add(self, spec: FaultSpec) -> ActiveFault:
        if spec.service != self._service:
            raise ValueError(f"fault for service {spec.service!r} given to {self._service!r}")
        return self._add(lambda fault_id: ActiveFault(fault_id, spec, self._targets(spec, fault_id)))

    def machine_failure(self, stage: str, names: Iterable[str]) -> ActiveFault | None:
        """Consume and return the first "fail" fault for `stage` hitting a machine known by
        any of `names` (its MAAS hostname and its hardware's spec hostname)."""
        keys = [n for n in names if n]
        if not keys:
            return None
        with self._lock:
            for fault in self._faults:
                spec = fault.spec
                if spec.kind != "fail" or spec.stage != stage:
                    continue
                if fault.targets is not None and not fault.targets.intersection(keys):
                    continue
                # Count attempts under one stable name: the first one given.
                key = keys[0]
                if fault.exhausted_for(key):
                    continue
                fault.fired += 1
                fault.fired_by[key] = fault.fired_by.get(key, 0) + 1
                return fault
        return None

    def request_faults(self, method: str, path: str, op: str | None) -> list[ActiveFault]:
        """Consume and return the "unavailable" and "slow" faults matching one request
        (at most one of each kind, first added first)."""
        found: dict[str, ActiveFault] = {}
        with self._lock:
            for fault in self._faults:
                spec = fault.spec
                if spec.kind not in ("unavailable", "slow") or spec.kind in found:
                    continue
                if fault.exhausted_for():
                    continue
                if spec.method is not None and spec.method != method:
                    continue
                if spec.path is not None and spec.path not in path:
                    continue
                if spec.op is not None and spec.op != op:
                    continue
                fault.fired += 1
                found[spec.kind] = fault
        return list(found.values())

    def _targets(self, spec: FaultSpec, fault_id: int) -> frozenset[str] | None:
        if spec.machines:
            return frozenset(spec.machines)
        if spec.fraction is not None:
            # Seeded per fault, so the same spec always picks the same machines.
            rng = random.Random(self._seed * 1_000_003 + fault_id)
            k = round(spec.fraction * len(self._hostnames))
            return frozenset(rng.sample(self._hostnames, k))
        return None
