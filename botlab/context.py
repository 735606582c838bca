"""The run context: inventory, checkpoint store, drivers and output sink for one command.

Stages see only a `StageContext`, which scopes progress and events to the stage, so tests
can swap any part (httpie's Environment idea) instead of patching globals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from botlab.state import DONE, ProgressRecord, StateStore

if TYPE_CHECKING:
    from botlab.drivers import Drivers
    from botlab.inventory import Inventory
    from botlab.outputs import Outputs
    from botlab.report import Reporter

    OutputsT = TypeVar("OutputsT", bound=Outputs)

log = logging.getLogger("botlab")


@dataclass(frozen=True)
class Consent:
    """What the operator allowed explicitly for one command, beyond what the inventory says:
    `remove`, hosts that left the inventory and may be untagged and forgotten although they
    still carry workloads (`botlab up --remove HOST`)."""

    remove: frozenset[str] = frozenset()

    def flag(self, host: str) -> str:
        return f"--remove {host}"


@dataclass
class RunContext:
    inventory: Inventory
    store: StateStore
    reporter: Reporter
    drivers: Drivers
    environ: Mapping[str, str]
    run_id: int = 0  # 0 while nothing is recorded (plan)
    lock_stale_pid: int | None = None
    log_path: str | None = None
    consent: Consent = field(default_factory=Consent)

    @property
    def log_hint(self) -> str:
        return self.log_path or "the log"

    def log_exception(self, exc: BaseException) -> None:
        log.error("unexpected error", exc_info=exc)

    def for_stage(self, name: str) -> StageContext:
        return StageContext(self, name)


class StageContext:
    """What a stage may use: the inventory, its own progress and events, upstream outputs."""

    def __init__(self, run: RunContext, stage: str) -> None:
        self.run = run
        self.stage = stage
        self.inventory = run.inventory
        self.store = run.store
        self.drivers = run.drivers
        self.environ = run.environ
        self.consent = run.consent

    def event(self, message: str, level: str = "info") -> None:
        log.log(logging.getLevelName(level.upper()), "[%s] %s", self.stage, message)
        if self.run.run_id:
            self.store.add_event(self.run.run_id, self.stage, message, level)

    def note(self, message: str) -> None:
        """An event the operator should see as it happens."""
        self.event(message)
        self.run.reporter.note(self.stage, message)

    def progress(self) -> dict[str, ProgressRecord]:
        return self.store.progress(self.stage)

    def set_progress(self, key: str, status: str, detail: str = "", data: dict[str, Any] | None = None) -> None:
        """Record fine-grained progress (one key per machine or host) so a crash resumes here."""
        if self.run.run_id:
            self.store.set_progress(self.stage, key, status, detail, data)
        self.run.reporter.progress(self.stage, key, status, detail)

    def show(self, key: str, status: str, detail: str = "") -> None:
        """Live display only (no checkpoint), for states that are read back from the world."""
        self.run.reporter.progress(self.stage, key, status, detail)

    def outputs(self, kind: type[OutputsT]) -> OutputsT | None:
        """The outputs record of the stage that writes `kind`, or None while that stage is not
        done (or its record is from another version of botlab)."""
        record = self.store.stage(kind.stage)
        return kind.from_data(record.outputs) if record and record.status == DONE else None

    def identities(self, kind: str) -> dict[str, str]:
        return self.store.identities(kind)

    def set_identity(self, kind: str, key: str, value: str) -> None:
        if self.run.run_id:
            self.store.set_identity(kind, key, value)
