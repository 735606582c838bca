"""Value checks the Bundle facade hands to bundle verification: constraints, storage directives
and device constraints, with Juju 3.6's error messages (core/constraints, internal/storage,
core/devices). Each returns None when the value is valid, else the message."""

from __future__ import annotations

import re

from botlab.lab.juju.bundle_parse import SPACE_RE, SUPPORTED_ARCHES, go_quote

CONTAINER_TYPES = ("lxd", "kvm", "none")
STRING_CONSTRAINTS = ("instance-role", "instance-type", "root-disk-source", "virt-type", "image-id")
LIST_CONSTRAINTS = ("tags", "zones")
VALUE_CONSTRAINTS = ("arch", "container", "cores", "cpu-power", "mem", "root-disk", "nested-virtualization")
KNOWN_CONSTRAINTS = frozenset(
    (*VALUE_CONSTRAINTS, "allocate-public-ip", "spaces", *STRING_CONSTRAINTS, *LIST_CONSTRAINTS)
)
SIZE_SUFFIXES = "MGTP"
POOL_RE = re.compile(r"[a-zA-Z]+[-?a-zA-Z0-9]*")
COUNT_RE = re.compile(r"-?[0-9]+")
STORAGE_SIZE_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?[MGTPEZY](?:i?B)?")


def check_constraints(text: str) -> str | None:
    """core/constraints.Parse: `name=value` pairs separated by spaces, each name once."""
    seen: set[str] = set()
    for raw in text.replace("\\ ", "\x00").strip().split(" "):
        raw = raw.replace("\x00", " ").strip()
        if not raw:
            continue
        name, eq, value = raw.partition("=")
        if not eq or not name:
            return f"malformed constraint {go_quote(raw)}"
        problem = _check_constraint(name, value, seen)
        if problem is not None:
            return problem
    return None


def _check_constraint(name: str, value: str, seen: set[str]) -> str | None:
    """One constraint: a known name, not yet set, with a value of the right kind."""
    canonical = "cores" if name == "cpu-cores" else name
    if canonical not in KNOWN_CONSTRAINTS:
        return f"unknown constraint {go_quote(name)}"
    if canonical == "allocate-public-ip" and value == "":
        return None
    problem = "already set" if canonical in seen else _constraint_value_problem(canonical, value)
    seen.add(canonical)
    return None if problem is None else f"bad {go_quote(name)} constraint: {problem}"


def _constraint_value_problem(name: str, value: str) -> str | None:
    """Why `value` is wrong for constraint `name`; "unknown" for an unknown name."""
    if name == "arch":
        return None if value == "" or value in SUPPORTED_ARCHES else f"{go_quote(value)} not recognized"
    if name == "container":
        return None if value == "" or value in CONTAINER_TYPES else f"invalid container type {go_quote(value)}"
    if name in ("cores", "cpu-power"):
        return None if re.fullmatch(r"[0-9]*", value) else "must be a non-negative integer"
    if name in ("mem", "root-disk"):
        return None if _is_size(value) else "must be a non-negative float with optional M/G/T/P suffix"
    if name in ("nested-virtualization", "allocate-public-ip"):
        return None if value in _GO_BOOLS else "must be 'true' or 'false'"
    if name == "spaces":
        return _spaces_problem(value)
    return None


_GO_BOOLS = ("", "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")


def _is_size(value: str) -> bool:
    """A megabyte count with an optional M/G/T/P suffix."""
    if value == "":
        return True
    number = value[:-1] if value[-1] in SIZE_SUFFIXES else value
    try:
        return float(number) >= 0
    except ValueError:
        return False


def _spaces_problem(value: str) -> str | None:
    """Each comma-separated space (optionally ^-negated) must be a valid space name."""
    for name in value.split(",") if value else []:
        space = name.removeprefix("^")
        if SPACE_RE.fullmatch(space) is None:
            return f"{go_quote(space)} is not a valid space name"
    return None


def check_storage(text: str) -> str | None:
    """internal/storage.ParseDirective: `[pool,][count,][size]` in any order."""
    pool, count, size = "", 0, False
    for item in text.split(","):
        if not item:
            continue
        if POOL_RE.fullmatch(item):
            if pool:
                return f"pool name is already set to {go_quote(pool)}, new value {go_quote(item)} not valid"
            pool = item
        elif COUNT_RE.fullmatch(item):
            if item.startswith("-") or int(item) == 0:
                return f"cannot parse count: count must be greater than zero, got {go_quote(item)}"
            count = int(item)
        elif STORAGE_SIZE_RE.fullmatch(item):
            if item.startswith("-"):
                return f"cannot parse size: expected a non-negative number, got {go_quote(item)}"
            size = True
        else:
            return f"unrecognized storage directive {go_quote(item)} not valid"
    if not (pool or count or size):
        return "storage directives require at least one field to be specified"
    return None


def check_devices(text: str) -> str | None:
    """core/devices.ParseConstraints: `[count,]type[,key=value;...]`."""
    fields = text.split(",")
    if len(fields) > 3:
        return (
            "cannot parse device constraints string, supported format is "
            "[<count>,]<device-class>|<vendor/type>[,<attributes>]"
        )
    if len(fields) == 1:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", fields[0]) or int(fields[0]) <= 0:
        return f"count must be greater than zero, got {go_quote(fields[0])}"
    for attribute in fields[2].split(";") if len(fields) == 3 else []:
        if attribute.count("=") != 1:
            return f"device attribute key/value pair has bad format: {go_quote(attribute)}"
    return None
