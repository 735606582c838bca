"""Exit statuses and the exceptions that map onto them.

Every error a user can cause or meet is one of these; anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes, documented in `botlab --help`."""

    OK = 0
    STAGE_FAILED = 1  # a stage failed; `botlab up` resumes it
    BAD_INPUT = 2  # bad inventory, flags or files; nothing was touched
    LOCKED = 3  # another run holds the lab's lock


@dataclass(frozen=True)
class Location:
    """Where a value came from: a file and, when known, a line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, printed as `file:line: key: message`."""

    location: Location
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.key}: {self.message}"


class BotlabError(Exception):
    """Base of every error botlab reports to the user without a traceback."""

    exit_status: ExitStatus = ExitStatus.STAGE_FAILED


class InputError(BotlabError):
    """The user's input is wrong; nothing has been changed. Carries every problem found."""

    exit_status = ExitStatus.BAD_INPUT

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems: list[Problem] = [problems] if isinstance(problems, Problem) else problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class UsageError(BotlabError):
    """A flag or argument combination is wrong (exit 2), e.g. `--only S` with S's upstream not done."""

    exit_status = ExitStatus.BAD_INPUT


class StalePlanError(BotlabError):
    """A saved plan (`botlab up --plan FILE`) no longer matches the inventory or the world;
    nothing of it was executed beyond what the message says."""

    exit_status = ExitStatus.BAD_INPUT


class LockedError(BotlabError):
    """Another live process holds the lab's lock."""

    exit_status = ExitStatus.LOCKED


class StateError(BotlabError):
    """The state folder or its checkpoint store cannot be used: damaged, not botlab's, from a
    newer botlab, unreadable, read-only, full, or with unsafe permissions. The message says
    what is wrong and what to do.

    Exit 2 when found before the run touched anything (opening the store: nothing was
    touched); the session turns it into exit 1 when a write fails once the run has started
    (the world may have changed: free the space or fix the folder, then `botlab up` resumes).
    """

    exit_status = ExitStatus.BAD_INPUT

    def __init__(self, message: str, *, during_run: bool = False) -> None:
        super().__init__(message)
        if during_run:
            self.during_run()

    def during_run(self) -> None:
        """Met once the run had begun: exit 1, and say that the next `botlab up` resumes."""
        if self.exit_status != ExitStatus.STAGE_FAILED:
            self.exit_status = ExitStatus.STAGE_FAILED
            self.args = (f"{self.args[0]} (the run had begun: once this is fixed, `botlab up` resumes it)",)


class StageError(BotlabError):
    """A fault in an external system (MAAS, Juju, SSH, Kubernetes) or a failed check.

    `system` and `operation` say what failed, `where` names the machine/unit/host,
    `hint` says what the operator can do. The runner adds how to resume.
    """

    exit_status = ExitStatus.STAGE_FAILED

    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        operation: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.system = system
        self.operation = operation
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        head = ""
        if self.system:
            head = self.system + (f" {self.operation}" if self.operation else "")
            head += f" ({self.where})" if self.where else ""
            head += ": "
        elif self.where:
            head = f"{self.where}: "
        text = head + self.message
        if self.hint:
            text += f" — {self.hint}"
        # One line, whatever an external system put into the message (see botlab.sanitize).
        from botlab.sanitize import one_line

        return one_line(text)
