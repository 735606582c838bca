"""Secret references (where a secret lives), resolved secrets, and log redaction.

A `SecretRef` names an environment variable or a file and never holds a value, so it is
safe to fingerprint and print. A `Secret` holds a value that prints as `***`; every value
that becomes a `Secret` is registered process-wide, and `redact` and `RedactingFilter`
replace registered values with `***` in text (a long value wherever it appears, a short one
only as a whole token, see LONG_SECRET); `redact_data` masks a structured value's fields that
are secrets whole. Nothing here logs or stores a value.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from botlab.errors import InputError, Location, Problem

MASK = "***"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is read from: `{env: NAME}` or `{file: PATH}` in the inventory.

    `name` is the variable's name, or the file's absolute path. Only `source` and `name`
    are fields, so `dataclasses.asdict` of a ref is safe to fingerprint; where the
    reference was written lives in the inventory's location map (see `Inventory.secret`).
    """

    source: Literal["env", "file"]
    name: str

    def describe(self) -> str:
        """`environment variable MAAS_API_KEY` or `file /abs/path`."""
        if self.source == "env":
            return f"environment variable {self.name}"
        return f"file {self.name}"

    def as_data(self) -> dict[str, str]:
        """The reference as the inventory writes it: `{"env": NAME}` or `{"file": PATH}`."""
        return {self.source: self.name}

    def resolve(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        where: Location | None = None,
        key: str = "secret",
    ) -> Secret:
        """Read the secret now.

        Raises InputError, at `where` under `key`, if the variable is unset or empty, or
        the file is missing, unreadable, empty, or readable by group or others (it must be
        mode 0600 or stricter, as ssh demands of private keys).
        """
        location = where if where is not None else Location("(inventory)")

        def fail(message: str) -> InputError:
            return InputError([Problem(location, key, message)])

        if self.source == "env":
            env = os.environ if environ is None else environ
            value = env.get(self.name)
            if value is None:
                raise fail(f"{self.describe()} is not set (export {self.name}=...)")
            if value == "":
                raise fail(f"{self.describe()} is empty")
            return Secret(value)
        if self.source != "file":
            raise fail(f"unknown secret source {self.source!r}")
        path = Path(self.name).expanduser()
        try:
            info = path.stat()
        except FileNotFoundError:
            raise fail(f"{self.describe()} does not exist") from None
        except OSError as exc:
            raise fail(f"{self.describe()} cannot be read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise fail(f"{self.describe()} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise fail(
                f"{self.describe()} is accessible by group or others (mode {mode:04o}); "
                f"it must be 0600 or stricter: chmod 600 {path}"
            )
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise fail(f"{self.describe()} cannot be read: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise fail(f"{self.describe()} is not UTF-8 text") from None
        # Editors end files with a newline; it is never part of the secret.
        value = text.rstrip("\r\n")
        if not value:
            raise fail(f"{self.describe()} is empty")
        return Secret(value)


class Secret:
    """A secret value: prints as `***`; `.reveal()` gives the value to whoever needs it.

    Creating one registers its value for redaction in logs (see `RedactingFilter`).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))


# A secret at least this long is masked wherever it appears, even glued to other text (a
# header, a concatenation): a value this long does not occur in ordinary text by accident.
# A shorter one (a BMC password `node`) is masked only as a whole token, so `node-01` stays
# `node-01` instead of becoming `***-01`, which would both mangle the text and reveal the value.
LONG_SECRET = 16

# What a whole token is delimited by: anything but a word character, `-` or `.` (a `.` that
# ends a sentence delimits; one inside a dotted name does not).
_BEFORE = r"(?<![\w.-])"
_AFTER = r"(?![\w-])(?!\.[\w-])"


class _Registry:
    """Every secret value seen by this process, and one regex that finds them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        if not value:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def __contains__(self, value: object) -> bool:
        with self._lock:
            return value in self._values

    def pattern(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first, so a secret that contains another is masked whole.
                ordered = sorted(self._values, key=lambda v: (-len(v), v))
                long = "|".join(re.escape(v) for v in ordered if len(v) >= LONG_SECRET)
                short = "|".join(re.escape(v) for v in ordered if len(v) < LONG_SECRET)
                parts = ([f"(?:{long})"] if long else []) + ([f"{_BEFORE}(?:{short}){_AFTER}"] if short else [])
                self._pattern = re.compile("|".join(parts))
            return self._pattern


_registry = _Registry()


def register(value: str) -> None:
    """Mask `value` in logs from now on, also as it appears inside JSON strings and
    percent-encoded in URLs. `Secret` does this itself; drivers call it for values derived
    from a secret that could show up in a log (a token split out of a key, a header)."""
    _registry.add(value)
    _registry.add(json.dumps(value)[1:-1])
    _registry.add(quote(value, safe=""))


def redact(text: str) -> str:
    """`text` with every registered secret value replaced by `***`: a long one wherever it
    appears, a short one (under LONG_SECRET characters) only as a whole token."""
    pattern = _registry.pattern()
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact_data(value: Any) -> Any:
    """A JSON-like value with every string that is a secret, as a whole field, replaced by
    `***` (whatever its length), and every other string passed through `redact`."""
    if isinstance(value, str):
        return MASK if value in _registry else redact(value)
    if isinstance(value, Mapping):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Replaces registered secret values with `***` in a record's message, exception and
    stack text, and escapes control characters (see botlab.sanitize) so that text from an
    external system cannot forge a log line or carry a terminal escape. Attach it to handlers
    (filters on a logger do not see records that propagate from its children). It never
    drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from botlab.sanitize import lines, one_line

        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as usual
            message = None
        if message is not None:
            clean = one_line(redact(message))
            if clean != message:
                record.msg = clean
                record.args = None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            clean = lines(redact(text))
            if clean != text:
                record.exc_text = clean
        elif record.exc_text:
            record.exc_text = lines(redact(record.exc_text))
        if record.stack_info:
            record.stack_info = lines(redact(record.stack_info))
        return True


def is_env_name(name: str) -> bool:
    """Whether `name` can be an environment variable's name."""
    return bool(_ENV_NAME.match(name))
