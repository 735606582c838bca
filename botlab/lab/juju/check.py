"""Check replies against the types libjuju decodes them with.

Every facade method in python-libjuju's generated client names its result type
(`juju.client._definitions.*`, through `@ReturnMapping`). Before a reply leaves the
emulator it is decoded with that type's `from_json`, recursively: a field with the wrong
JSON type, or a field name the type does not have (a typo the client would silently drop),
is an emulator bug and is answered as an error naming the field, never sent half-right.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

# juju.client.client applies libjuju's overrides (Number, Delta, ConfigValue) to the types.
from juju.client import client as juju_client
from juju.client.facade import Type

_NO_CLASS = object()


@functools.cache
def facade_class(facade: str, version: int) -> Any:
    """libjuju's generated facade class for `facade` at `version`, or None."""
    try:
        return juju_client.lookup_facade(f"{facade}Facade", version)
    except (ImportError, KeyError, AttributeError, TypeError):
        return None


def client_methods(facade: str, version: int) -> frozenset[str] | None:
    """The methods libjuju knows for a facade version (None: libjuju lacks that facade)."""
    cls = facade_class(facade, version)
    if cls is None:
        return None
    return frozenset(m for m in dir(cls) if m[:1].isupper() and callable(getattr(cls, m)))


@functools.cache
def reply_type(facade: str, version: int, method: str) -> Any:
    """The Type libjuju decodes this call's reply with; None: it reads nothing; _NO_CLASS:
    libjuju does not know the call."""
    cls = facade_class(facade, version)
    func = getattr(cls, method, None) if cls is not None else None
    if func is None:
        return _NO_CLASS
    try:
        return inspect.getclosurevars(func).nonlocals.get("cls")
    except (TypeError, ValueError):
        return None


def _check_login(reply: Any) -> list[str]:
    """libjuju reads the login result raw (its generated LoginResult does not even import):
    these are the fields it uses."""
    problems = []
    if not isinstance(reply.get("server-version"), str):
        problems.append("reply.server-version: expected a string")
    if not isinstance((reply.get("user-info") or {}).get("identity"), str):
        problems.append("reply.user-info.identity: expected a string")
    facades = reply.get("facades")
    if not isinstance(facades, list) or not all(
        isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("versions"), list) for f in facades
    ):
        problems.append("reply.facades: expected a list of {name, versions}")
    if not isinstance(reply.get("servers"), list):
        problems.append("reply.servers: expected a list of lists of host ports")
    return problems


# Calls whose replies libjuju reads raw rather than through a generated type.
RAW_REPLIES = {("Admin", "Login"): _check_login, ("Admin", "RedirectInfo"): lambda reply: []}


def check_reply(facade: str, version: int, method: str, reply: Any) -> list[str]:
    """Problems libjuju would hit decoding `reply` (empty: it decodes cleanly)."""
    raw = RAW_REPLIES.get((facade, method))
    if raw is not None:
        return raw(reply) if isinstance(reply, dict) else ["reply: expected a JSON object"]
    cls = reply_type(facade, version, method)
    if cls is _NO_CLASS or cls is None:
        return [] if isinstance(reply, dict) else [f"reply: expected a JSON object, got {type(reply).__name__}"]
    problems: list[str] = []
    _check(cls, reply, "reply", problems)
    return problems


def _check(cls: type[Type], data: Any, path: str, problems: list[str]) -> None:
    if not isinstance(data, dict):
        problems.append(f"{path}: expected an object ({cls.__name__}), got {type(data).__name__}")
        return
    known = getattr(cls, "_toPy", {})
    for key in data:
        if key not in known:
            problems.append(f"{path}.{key}: not a field of {cls.__name__} (known: {', '.join(sorted(known))})")
    try:
        obj = cls.from_json(data)
    except Exception as exc:
        problems.append(f"{path}: {cls.__name__} does not decode: {exc}")
        return
    for key, value in data.items():
        attr = known.get(key)
        if attr is None:
            continue
        sub = getattr(obj, attr, None)
        where = f"{path}.{key}"
        if isinstance(sub, Type) and isinstance(value, dict):
            _check(type(sub), value, where, problems)
        elif isinstance(sub, list) and isinstance(value, list):
            for i, (item, raw) in enumerate(zip(sub, value, strict=False)):
                if isinstance(item, Type) and isinstance(raw, dict):
                    _check(type(item), raw, f"{where}[{i}]", problems)
        elif isinstance(sub, dict) and isinstance(value, dict):
            for k, raw in value.items():
                item = sub.get(k)
                if isinstance(item, Type) and isinstance(raw, dict):
                    _check(type(item), raw, f"{where}[{k!r}]", problems)
