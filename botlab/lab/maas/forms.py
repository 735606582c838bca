"""Request parameters as MAAS reads them: query strings, urlencoded bodies, and the multipart
bodies with base64-encoded parts python-libmaas sends (decoded with a MIME parser)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from urllib.parse import parse_qsl


class Params:
    """A multi-valued mapping of request parameters (names may repeat, like a QueryDict)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(pairs)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The last value given for `name` (as Django's QueryDict.get), or `default`."""
        values = self.getlist(name)
        return values[-1] if values else default

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self._items if k == name]

    def names(self) -> list[str]:
        return list(dict.fromkeys(k for k, _ in self._items))

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean parameter as Django forms read one ("true"/"1"/"on", any case)."""
        value = self.get(name)
        if value is None:
            return default
        return value.strip().lower() in ("true", "1", "on", "yes")

    def split_list(self, name: str) -> list[str]:
        """Values of `name`, each also split on commas, blanks dropped (MAAS list params)."""
        out: list[str] = []
        for value in self.getlist(name):
            out.extend(part.strip() for part in value.split(",") if part.strip())
        return out

    def __contains__(self, name: object) -> bool:
        return any(k == name for k, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Params({self._items!r})"


def parse_query(query: str) -> Params:
    return Params(parse_qsl(query, keep_blank_values=True))


def parse_body(content_type: str, body: bytes) -> Params:
    """Decode a request body; unknown content types yield no parameters (as Django does)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return Params()
    if kind == "application/x-www-form-urlencoded":
        return Params(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    if kind == "multipart/form-data":
        return Params(_multipart_pairs(content_type, body))
    return Params()


def _multipart_pairs(content_type: str, body: bytes) -> Iterator[tuple[str, str]]:
    # The email package knows both the multipart framing and Content-Transfer-Encoding.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("ascii")
    message = BytesParser(policy=compat32).parsebytes(head + body)
    if not message.is_multipart():
        raise ValueError("multipart body without parts")
    for part in message.get_payload():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        charset = part.get_content_charset() or "utf-8"
        yield name, data.decode(charset, errors="replace")
