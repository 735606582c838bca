"""Text from external systems made safe for a terminal or a log.

MAAS, Juju, SSH hosts and Kubernetes hand back free text (a machine's status message, a unit's
workload message, a command's stderr). Printed raw, an ANSI escape in it can repaint the
screen, and a CR or LF can forge a line (`up: done (fake)`). Every sink that writes text for a
person (progress lines, command output, error lines, log records, stored events) passes it
through here: C0 and C1 control characters, DEL, and the Unicode line separators and
bidirectional overrides are replaced by visible escapes (ESC -> `\\x1b`, CR -> `\\r`,
LF -> `\\n`), so the text stays readable, the escape sequence is inert, and nothing can start
a line of its own. JSON output needs none of this: the encoder escapes control characters.
"""

from __future__ import annotations

import re

# C0 (tab included: it can shift a table's columns), DEL, C1; LINE/PARAGRAPH SEPARATOR; the
# bidirectional embeddings, overrides and isolates ("Trojan Source").
_OTHERS = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_ANY = re.compile(f"[\x00-\x1f{_OTHERS}]")
_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """`text` as one printable line: every control character, CR and LF included, escaped."""
    return _ANY.sub(_escape, text) if text else text


def lines(text: str) -> str:
    """`text` with its line breaks kept and every other control character escaped: for text
    whose lines botlab composed itself (command output, tracebacks)."""
    return _BUT_NEWLINE.sub(_escape, text) if text else text
