"""Go's view of JSON, for tools that are Go programs (dockerd, nvidia-ctk): encoding/json's syntax error
messages and fmt's %v rendering of decoded values."""

from __future__ import annotations

import decimal
import json
import math
from typing import Any, NoReturn

WS = " \t\r\n"


def _quote_char(c: str) -> str:
    """encoding/json's quoteChar()."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    inner = json.dumps(c, ensure_ascii=False)[1:-1]
    if c == "\x7f" or (len(inner) == 6 and inner.startswith("\\u00")):
        inner = f"\\x{ord(c):02x}"
    return f"'{inner}'"


class _SyntaxError(Exception):
    pass


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, context: str) -> NoReturn:
        if self.pos >= len(self.text):
            raise _SyntaxError("unexpected end of JSON input")
        raise _SyntaxError(f"invalid character {_quote_char(self.text[self.pos])} {context}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in WS:
            self.pos += 1

    def value(self) -> None:
        self.skip_ws()
        c = self.peek()
        if c == "{":
            self.pos += 1
            self.obj()
        elif c == "[":
            self.pos += 1
            self.arr()
        elif c == '"':
            self.pos += 1
            self.string()
        elif c == "-" or c.isdigit():
            self.number()
        elif c in ("t", "f", "n"):
            self.literal({"t": "true", "f": "false", "n": "null"}[c])
        else:
            self.fail("looking for beginning of value")

    def skip_close(self, close: str) -> bool:
        """After whitespace, whether the container ends here (its `close` is then consumed)."""
        self.skip_ws()
        if self.peek() == close:
            self.pos += 1
            return True
        return False

    def after_item(self, close: str, context: str) -> bool:
        """After a member or element: consume a ',' (False: another follows) or `close` (True: the container ends);
        anything else is the syntax error `context` names."""
        if self.skip_close(close):
            return True
        if self.peek() == ",":
            self.pos += 1
            return False
        self.fail(context)

    def obj(self) -> None:
        if self.skip_close("}"):
            return
        while True:
            self.skip_ws()
            if self.peek() != '"':
                self.fail("looking for beginning of object key string")
            self.pos += 1
            self.string()
            self.skip_ws()
            if self.peek() != ":":
                self.fail("after object key")
            self.pos += 1
            self.value()
            if self.after_item("}", "after object key:value pair"):
                return

    def arr(self) -> None:
        if self.skip_close("]"):
            return
        while True:
            self.value()
            if self.after_item("]", "after array element"):
                return

    def string(self) -> None:
        while True:
            c = self.peek()
            if c == "":
                self.fail("in string literal")
            if c == '"':
                self.pos += 1
                return
            if c == "\\":
                self.pos += 1
                e = self.peek()
                if e == "u":
                    self.pos += 1
                    for _ in range(4):
                        if self.peek() == "" or self.peek() not in "0123456789abcdefABCDEF":
                            self.fail("in \\u hexadecimal character escape")
                        self.pos += 1
                    continue
                if e == "" or e not in '"\\/bfnrt':
                    self.fail("in string escape code")
                self.pos += 1
                continue
            if ord(c) < 0x20:
                self.fail("in string literal")
            self.pos += 1

    def skip_digits(self) -> None:
        while self.peek().isdigit():
            self.pos += 1

    def number(self) -> None:
        if self.peek() == "-":
            self.pos += 1
            if not self.peek().isdigit():
                self.fail("in numeric literal")
        if self.peek() == "0":
            self.pos += 1
        else:
            self.skip_digits()
        if self.peek() == ".":
            self.pos += 1
            if not self.peek().isdigit():
                self.fail("after decimal point in numeric literal")
            self.skip_digits()
        if self.peek() in ("e", "E"):
            self.pos += 1
            if self.peek() in ("+", "-"):
                self.pos += 1
            if not self.peek().isdigit():
                self.fail("in exponent of numeric literal")
            self.skip_digits()

    def literal(self, word: str) -> None:
        for expected in word:
            if self.peek() != expected:
                self.fail(f"in literal {word} (expecting {_quote_char(expected)})")
            self.pos += 1


def syntax_error(text: str) -> str | None:
    """The error Go's json.Unmarshal reports for malformed `text`, or None when it is valid JSON."""
    scanner = _Scanner(text)
    try:
        scanner.value()
        scanner.skip_ws()
        if scanner.pos < len(text):
            scanner.fail("after top-level value")
    except _SyntaxError as exc:
        return str(exc)
    return None


def loads(text: str) -> Any:
    """Decode JSON as Go would accept it; ValueError carrying Go's message when malformed."""
    error = syntax_error(text)
    if error:
        raise ValueError(error)
    return json.loads(text)


def go_float(value: float) -> str:
    """fmt's %v of a float64: strconv's shortest 'g' format (exponent form below 1e-4 and from 1e6 on)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "0"
    number = decimal.Decimal(repr(abs(float(value)))).normalize()
    digits = "".join(str(d) for d in number.as_tuple().digits)
    exponent = len(digits) + int(number.as_tuple().exponent) - 1
    sign = "-" if value < 0 else ""
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return sign + format(number, "f")


def go_v(value: Any) -> str:
    """fmt's %v of a value json.Unmarshal decoded into interface{}."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return go_float(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_v(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def go_type_name(value: Any) -> str:
    """The JSON kind encoding/json names in "cannot unmarshal X into ..."."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def marshal_indent(value: Any, indent: str = "    ") -> str:
    """json.MarshalIndent(v, "", indent): sorted keys, HTML-escaped <, >, &."""
    text = json.dumps(value, indent=len(indent), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
