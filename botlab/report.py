"""Output sinks for long work: a live rich display on a terminal, plain lines otherwise,
and silence for `--output json` (the command prints one document at the end).

Every line and table cell goes through `safe`: secrets redacted, control characters from
external systems (a MAAS status message with ANSI escapes or CR/LF) escaped, so one progress
event is always exactly one line on the terminal."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from botlab.sanitize import one_line
from botlab.secrets import redact

if TYPE_CHECKING:
    from botlab.pipeline import Change, StageOutcome


class Reporter(Protocol):
    def stage_begin(self, stage: str, reason: str) -> None: ...
    def changes(self, stage: str, changes: list[Change]) -> None: ...
    def progress(self, stage: str, key: str, status: str, detail: str) -> None: ...
    def note(self, stage: str, message: str) -> None: ...
    def stage_end(self, outcome: StageOutcome) -> None: ...
    def close(self) -> None: ...


class SilentReporter:
    """For `--output json`: no progress at all."""

    def stage_begin(self, stage: str, reason: str) -> None:
        pass

    def changes(self, stage: str, changes: list[Change]) -> None:
        pass

    def progress(self, stage: str, key: str, status: str, detail: str) -> None:
        pass

    def note(self, stage: str, message: str) -> None:
        pass

    def stage_end(self, outcome: StageOutcome) -> None:
        pass

    def close(self) -> None:
        pass


def safe(text: str) -> str:
    """`text` fit for one line of a terminal: secrets redacted, control characters escaped."""
    return one_line(redact(text))


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class PlainReporter:
    """One line per event, for logs and pipes. Repeated identical progress lines are dropped."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self._last: dict[tuple[str, str], tuple[str, str]] = {}
        self._since: dict[tuple[str, str], float] = {}

    def _line(self, text: str) -> None:
        self.stream.write(safe(text) + "\n")
        self.stream.flush()

    def stage_begin(self, stage: str, reason: str) -> None:
        self._line(f"==> {stage}: {reason}")

    def changes(self, stage: str, changes: list[Change]) -> None:
        for change in changes:
            if self.verbose or not change.is_noop:
                self._line(f"    {change.action:<10} {change.target}: {change.reason}")

    def progress(self, stage: str, key: str, status: str, detail: str) -> None:
        now = time.monotonic()
        since = self._since.setdefault((stage, key), now)
        if self._last.get((stage, key)) == (status, detail):
            return
        self._last[(stage, key)] = (status, detail)
        extra = f" ({detail})" if detail else ""
        self._line(f"    {key}: {status}{extra} [{_elapsed(now - since)}]")

    def note(self, stage: str, message: str) -> None:
        self._line(f"    {message}")

    def stage_end(self, outcome: StageOutcome) -> None:
        took = _elapsed(outcome.seconds)
        if outcome.error:
            self._line(f"<== {outcome.name}: FAILED after {took}: {outcome.error}")
        else:
            self._line(f"<== {outcome.name}: {outcome.action} in {took}")

    def close(self) -> None:
        pass


class RichReporter(PlainReporter):
    """A live table of the current stage's machines/hosts on a terminal."""

    def __init__(self, verbose: bool = False) -> None:
        from rich.console import Console  # lazy: rich costs ~50 ms to import

        self.console = Console(stderr=True)
        super().__init__(sys.stderr, verbose)
        self._rows: dict[str, tuple[str, str, float]] = {}
        self._stage = ""
        self._live: Any = None

    def _line(self, text: str) -> None:
        self.console.print(safe(text), markup=False, highlight=False)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self._stage, expand=False, show_edge=False)
        for col in ("machine/host", "state", "detail", "elapsed"):
            table.add_column(col)
        now = time.monotonic()
        for key, (status, detail, since) in sorted(self._rows.items()):
            table.add_row(safe(key), safe(status), safe(detail), _elapsed(now - since))
        return table

    def stage_begin(self, stage: str, reason: str) -> None:
        super().stage_begin(stage, reason)
        from rich.live import Live

        self._stage = stage
        self._rows = {}
        live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True)
        live.start()
        self._live = live

    def progress(self, stage: str, key: str, status: str, detail: str) -> None:
        since = self._rows.get(key, ("", "", time.monotonic()))[2]
        self._rows[key] = (status, detail, since)
        if self._live is not None:
            self._live.update(self._table())

    def stage_end(self, outcome: StageOutcome) -> None:
        self.close()
        super().stage_end(outcome)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
