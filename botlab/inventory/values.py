"""The kinds of value an inventory key can hold: how each is read from YAML data, what it
stands in with when missing, and how the reference docs name it.

A `Type` is the single place a kind of value is defined; the schema (schema.py) gives each
key one. Parsers raise `Bad` for a wrong value; parsers of lists report a wrong item through
the `Reader` and go on, so every problem is reported at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from botlab.secrets import SecretRef, is_env_name
from botlab.yamlsource import join_key

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

ROLES = ("control-plane", "worker", "etcd", "load-balancer", "gpu", "nfs")

# The one answer to a secret written as plain text; it never repeats the value.
PLAIN_SECRET = "a secret: write {env: NAME} or {file: PATH}"

# Power parameters whose name says one of these hold secrets (power_pass, ipmi_password,
# api_token, secret_key, ...): they must be references, like maas.api_key.
_SECRET_NAME = re.compile(r"pass|secret|token|key", re.IGNORECASE)

_MAC = re.compile(r"[0-9a-f]{2}(?:([:-])[0-9a-f]{2})(?:\1[0-9a-f]{2}){4}\Z", re.IGNORECASE)
_EXPORT_PATH = re.compile(r"/[A-Za-z0-9._/-]*\Z")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([MGT])(?:iB|B|i)?)?\Z", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}
_USERINFO = re.compile(r"(?<=//)[^/?#]*@")


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping (so frozen dataclasses holding one stay hashable).

    Reads like a dict; compares equal to any mapping with the same items.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._items: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


class Bad(Exception):
    """A value is wrong; the message says what was expected and what came."""


class Reader(Protocol):
    """What a parser may ask of the loader: the inventory folder (relative paths resolve
    against it) and a way to report a wrong item of a list while reading the rest."""

    @property
    def folder(self) -> Path: ...

    def error(self, path: str, message: str) -> None: ...


@dataclass(frozen=True)
class Type(Generic[T]):
    """A kind of value. `parse(value, path, reader)` turns YAML data into the model's value
    or raises Bad; `blank` stands in for a required value that is missing or wrong (so
    checks across keys still run); `label` names the kind in docs/inventory.md."""

    label: str
    parse: Callable[[Any, str, Reader], T]
    blank: T


def describe(value: Any) -> str:
    """A value as an error message shows it after `got`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float, str)):
        return repr(value)
    return f"{type(value).__name__} {value!s}"


def expected(what: str, value: Any) -> Bad:
    return Bad(f"expected {what}, got {describe(value)}")


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` most likely misspells, if any."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def is_secret_name(name: str) -> bool:
    """Whether a power parameter's name says it holds a secret (pass, password, secret,
    token or key, in any case)."""
    return bool(_SECRET_NAME.search(name))


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float))  # bool is an int


# --------------------------------------------------------------------------- generic kinds


def text(what: str, pattern: re.Pattern[str] | None = None, max_len: int | None = None) -> Type[str]:
    """Non-blank text, matching `pattern` when given; `what` is how errors name it."""

    def parse(value: Any, path: str, reader: Reader) -> str:
        if not isinstance(value, str) or not value.strip():
            raise expected(what, value)
        if pattern is not None and not pattern.match(value):
            raise expected(what, value)
        if max_len is not None and len(value) > max_len:
            raise expected(what, value)
        return value

    return Type("string", parse, "")


def choice(options: tuple[str, ...]) -> Type[str]:
    def parse(value: Any, path: str, reader: Reader) -> str:
        if isinstance(value, str) and value in options:
            return value
        message = f"expected one of {', '.join(options)}, got {describe(value)}"
        guess = suggest(value, options) if isinstance(value, str) else None
        raise Bad(message + (f"; did you mean {guess!r}?" if guess else ""))

    return Type(" | ".join(f"`{o}`" for o in options), parse, options[0])


def integer(low: int, high: int | None = None) -> Type[int]:
    if high is not None:
        what, label = f"an integer from {low} to {high}", f"int {low}..{high}"
    elif low == 1:
        what, label = "an integer above 0", "int > 0"
    else:
        what, label = f"an integer >= {low}", f"int >= {low}"

    def parse(value: Any, path: str, reader: Reader) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise expected(what, value)
        if value < low or (high is not None and value > high):
            raise expected(what, value)
        return value

    return Type(label, parse, low)


def _boolean(value: Any, path: str, reader: Reader) -> bool:
    if not isinstance(value, bool):
        raise expected("true or false", value)
    return value


BOOLEAN = Type("bool", _boolean, False)


def _path(value: Any, path: str, reader: Reader) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise expected("a path", value)
    try:
        resolved = Path(value).expanduser()
    except RuntimeError:
        raise Bad(f"cannot expand ~ in {value!r}") from None
    if not resolved.is_absolute():
        resolved = reader.folder / resolved
    return Path(os.path.normpath(resolved))


PATH = Type("path", _path, Path())


def _existing_file(value: Any, path: str, reader: Reader) -> Path:
    found = _path(value, path, reader)
    try:
        exists = found.is_file()
    except OSError:
        exists = False
    if not exists:
        raise Bad(f"file {found} does not exist")
    return found


EXISTING_FILE = Type("path", _existing_file, Path())


# --------------------------------------------------------------------------- secrets


def _secret(value: Any, path: str, reader: Reader) -> SecretRef:
    # Nothing written under a secret key is repeated in a message: it may be the secret.
    if _plain(value):
        raise Bad(PLAIN_SECRET)
    if not isinstance(value, dict):
        shown = "nothing (null)" if value is None else "a list" if isinstance(value, list) else "another value"
        raise Bad(f"expected a secret reference {{env: NAME}} or {{file: PATH}}, got {shown}")
    keys = list(value)
    if len(keys) != 1 or keys[0] not in ("env", "file"):
        if len(keys) == 1:
            guess = suggest(str(keys[0]), ("env", "file"))
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise Bad(f"unknown secret source: use {{env: NAME}} or {{file: PATH}}{hint}")
        raise Bad(f"expected exactly one of {{env: NAME}} or {{file: PATH}}, got {len(keys)} keys")
    source = keys[0]
    inner = value[source]
    if source == "env":
        if not isinstance(inner, str) or not is_env_name(inner):
            raise Bad("expected an environment variable name in {env: NAME} (letters, digits and '_')")
        return SecretRef("env", inner)
    if not isinstance(inner, str) or not inner.strip():
        raise Bad("expected a path in {file: PATH}")
    try:
        return SecretRef("file", str(_path(inner, path, reader)))
    except Bad:
        raise Bad("expected a path in {file: PATH} (~ could not be expanded)") from None


SECRET = Type("secret", _secret, SecretRef("env", ""))


def _power_parameters(value: Any, path: str, reader: Reader) -> FrozenMap[str, str | SecretRef]:
    if not isinstance(value, dict):
        raise expected("a mapping of power parameters", value)
    result: dict[str, str | SecretRef] = {}
    for name, item in value.items():
        key = join_key(path, name)
        try:
            if is_secret_name(name) or isinstance(item, dict):
                result[name] = _secret(item, key, reader)
            elif isinstance(item, bool):
                result[name] = "true" if item else "false"
            elif _plain(item):
                result[name] = str(item)
            else:
                raise Bad(
                    "expected a string, a number or a secret reference "
                    f"{{env: NAME}} / {{file: PATH}}, got {describe(item)}"
                )
        except Bad as exc:
            reader.error(key, str(exc))
    return FrozenMap(result)


POWER_PARAMETERS: Type[FrozenMap[str, str | SecretRef]] = Type("mapping", _power_parameters, FrozenMap())


# --------------------------------------------------------------------------- particular kinds


def parse_memory(value: Any) -> int:
    """Memory in MiB from an integer (MiB) or text like `32G`, `32GiB`, `512M`, `1T`,
    `1.5G`. Units are binary: 1G = 1024 MiB (also when written `GB`). ValueError if not."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected an amount of memory like 32G or MiB as an integer, got {describe(value)}")
    if isinstance(value, int):
        mib = value
    else:
        match = _MEMORY.match(value.strip())
        if not match:
            raise ValueError(f"expected an amount of memory like 32G, 32GiB, 512M or 1T, got {describe(value)}")
        number, unit = match.group(1), (match.group(2) or "").upper()
        mib = round(float(number) * _MEMORY_UNITS[unit])
    if mib <= 0:
        raise ValueError(f"expected an amount of memory above zero, got {describe(value)}")
    return mib


def _memory(value: Any, path: str, reader: Reader) -> int:
    try:
        return parse_memory(value)
    except ValueError as exc:
        raise Bad(str(exc)) from None


MEMORY = Type("int (MiB) or string", _memory, 0)


def _url(value: Any, path: str, reader: Reader) -> str:
    what = "an http(s) URL like http://maas.example:5240/MAAS/"
    if not isinstance(value, str):
        raise expected(what, value)
    shown = _USERINFO.sub("***@", value)
    try:
        parts = urlsplit(value)
        if parts.password is not None:
            raise Bad(
                "a secret: credentials do not belong in maas.url; "
                "write the API key in maas.api_key as {env: NAME} or {file: PATH}"
            )
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise expected(what, shown) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise expected(what, shown)
    return value


URL = Type("string", _url, "")


def _network(value: Any, path: str, reader: Reader) -> str:
    what = 'a network like 10.0.0.0/24, or "*" for any'
    if value == "*":
        return "*"
    if not isinstance(value, str):
        raise expected(what, value)
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError:
        try:
            loose = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise expected(what, value) from None
        raise Bad(f"{value!r} has host bits set: did you mean {loose}?") from None


NETWORK = Type("string", _network, "")


def _export_path(value: Any, path: str, reader: Reader) -> str:
    what = "an absolute path of letters, digits, '.', '_', '-' and '/'"
    if not isinstance(value, str) or not _EXPORT_PATH.match(value):
        raise expected(what, value)
    if ".." in value.split("/"):
        raise Bad(f"expected a path without '..', got {describe(value)}")
    normal = os.path.normpath(value)
    if normal == "/":
        raise Bad("refusing to export the root folder /")
    return normal


EXPORT_PATH = Type("string", _export_path, "")


def _string_items(value: Any, path: str, reader: Reader, what: str) -> list[tuple[int, str]]:
    """The string items of a list, with their indexes; other items are reported."""
    if not isinstance(value, list):
        raise expected(f"a list of {what}", value)
    items: list[tuple[int, str]] = []
    for index, item in enumerate(value):
        if isinstance(item, str):
            items.append((index, item))
        else:
            reader.error(join_key(path, index), f"expected {what}, got {describe(item)}")
    return items


def _roles(value: Any, path: str, reader: Reader) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise expected(f"a list of roles (any of {', '.join(ROLES)})", value)
    roles: list[str] = []
    for index, role in _string_items(value, path, reader, "a role"):
        item = join_key(path, index)
        if role not in ROLES:
            guess = suggest(role, ROLES)
            hint = f"did you mean {guess!r}?" if guess else f"roles are {', '.join(ROLES)}"
            reader.error(item, f"unknown role {role!r}; {hint}")
        elif role in roles:
            reader.error(item, f"role {role!r} is listed twice")
        else:
            roles.append(role)
    return tuple(roles)


ROLE_LIST: Type[tuple[str, ...]] = Type("list", _roles, ())


def _macs(value: Any, path: str, reader: Reader) -> tuple[str, ...]:
    macs: list[str] = []
    for index, mac in _string_items(value, path, reader, "a MAC address like 52:54:00:12:34:56"):
        if not _MAC.match(mac.strip()):
            reader.error(join_key(path, index), f"expected a MAC address like 52:54:00:12:34:56, got {describe(mac)}")
            continue
        normal = mac.strip().lower().replace("-", ":")
        if normal in macs:
            reader.error(join_key(path, index), f"MAC {normal} is listed twice")
        else:
            macs.append(normal)
    return tuple(macs)


MACS: Type[tuple[str, ...]] = Type("list of strings", _macs, ())


def parse_address_range(text: Any) -> tuple[int, int, int]:
    """A MetalLB address entry, `a-b` or a CIDR, as (IP version, first, last) integers.
    ValueError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(_range_expected(text))
    text = text.strip()
    if "-" in text:
        start_text, _, end_text = text.partition("-")
        try:
            start = ipaddress.ip_address(start_text.strip())
            end = ipaddress.ip_address(end_text.strip())
        except ValueError:
            raise ValueError(_range_expected(text)) from None
        if start.version != end.version:
            raise ValueError(f"range {text!r} mixes IPv4 and IPv6 addresses")
        if int(start) > int(end):
            raise ValueError(f"range {text!r} ends before it starts")
        return start.version, int(start), int(end)
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(_range_expected(text)) from None
            raise ValueError(f"{text!r} has host bits set: did you mean {loose}?") from None
        return network.version, int(network.network_address), int(network.broadcast_address)
    raise ValueError(_range_expected(text))


def _range_expected(value: Any) -> str:
    return f"expected a range like 10.0.0.10-10.0.0.20 or a CIDR, got {describe(value)}"


def _normalize_range(text: str) -> str:
    text = text.strip()
    if "-" in text:
        start, _, end = text.partition("-")
        return f"{ipaddress.ip_address(start.strip())}-{ipaddress.ip_address(end.strip())}"
    return str(ipaddress.ip_network(text))


def _addresses(value: Any, path: str, reader: Reader) -> tuple[str, ...]:
    if isinstance(value, list) and not value:
        raise Bad("expected at least one address range or CIDR, got an empty list")
    ranges: list[tuple[int, str, int, int, int]] = []
    normal: list[str] = []
    for index, entry in _string_items(value, path, reader, "a range like 10.0.0.10-10.0.0.20 or a CIDR"):
        item = join_key(path, index)
        try:
            version, first, last = parse_address_range(entry)
        except ValueError as exc:
            reader.error(item, str(exc))
            continue
        shown = _normalize_range(entry)
        for other_index, other, v, a, b in ranges:
            if v == version and first <= b and a <= last:
                reader.error(item, f"{shown} overlaps {join_key(path, other_index)} ({other})")
        ranges.append((index, shown, version, first, last))
        normal.append(shown)
    return tuple(normal)


ADDRESSES: Type[tuple[str, ...]] = Type("list", _addresses, ())
