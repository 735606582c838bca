"""String parsers the bundle-changes code shares: Juju names, charm URLs, unit placements,
relation endpoints, natural sort and Go's `%q` quoting.

Grammar and messages follow juju/names v5 and juju/charm v13 (Juju 3.6).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

APPLICATION = r"(?:[a-z][a-z0-9]*(?:-[a-z0-9]*[a-z][a-z0-9]*)*)"
RELATION = r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*"
NUMBER = r"(?:0|[1-9][0-9]*)"
CONTAINER = r"[a-z]+"
SPACE_RE = re.compile(r"(?:[a-z0-9]+(?:-[a-z0-9]+)*)")
APPLICATION_RE = re.compile(APPLICATION)
RELATION_RE = re.compile(RELATION)
MACHINE_ID_RE = re.compile(NUMBER)
STORAGE_NAME_RE = re.compile(APPLICATION)
DEVICE_NAME_RE = re.compile(r"(?:[a-z][a-z0-9]*(?:-[a-z0-9]*[a-z][a-z0-9]*)*)")
MODEL_NAME_RE = re.compile(r"[a-z0-9]+[a-z0-9-]*")
USER_NAME_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9.+-]*[a-zA-Z0-9])?(?:@[a-zA-Z0-9.-]*)?")
SERIES_RE = re.compile(r"[a-z]+(?:[a-z0-9]+)?")
CHARM_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]*[a-z][a-z0-9]*)*")
ARCH_NAME_RE = re.compile(r"[a-z]+(?:[a-z0-9]+)?")
PLACEMENT_RE = re.compile(rf"(?:({CONTAINER}):)?(?:({APPLICATION})(?:/({NUMBER}))?|({NUMBER}))")
APP_RELATION_RE = re.compile(rf"({APPLICATION}):({RELATION})")
SUPPORTED_ARCHES = ("amd64", "arm64", "ppc64el", "s390x", "riscv64")
URL_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


class BundleChangesError(Exception):
    """Juju answers the call with an API error (not a list of verification errors)."""


def go_quote(value: str) -> str:
    """Go's `%q` of a string."""
    return json.dumps(value, ensure_ascii=False)


def go_quote_list(values: Iterable[str]) -> str:
    """Go's `%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def natural_key(value: str) -> list[tuple[str, int]]:
    """Sort key of juju/naturalsort: runs of text compare as text, runs of digits as numbers."""
    key = []
    for prefix, digits in re.findall(r"(\D*)(\d*)", value):
        if prefix or digits:
            key.append((prefix, int(digits) if digits else -1))
    return key


def natural_sorted(values: Iterable[str]) -> list[str]:
    """`values` in juju/naturalsort order."""
    return sorted(values, key=natural_key)


@dataclass(frozen=True)
class UnitPlacement:
    """One parsed `to:` directive: `(container:)?(app(/unit)?|machine|new)`."""

    container_type: str = ""
    machine: str = ""
    application: str = ""
    unit: int = -1


def parse_placement(text: str) -> UnitPlacement:
    """Parse a placement directive; ValueError (Juju's message) if malformed."""
    match = PLACEMENT_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid placement syntax {go_quote(text)}")
    container, application, unit, machine = (g or "" for g in match.groups())
    placement = UnitPlacement(container, machine, application, int(unit) if unit else -1)
    if application != "new":
        return placement
    if placement.unit != -1:
        raise ValueError(f"invalid placement syntax {go_quote(text)}")
    return UnitPlacement(container, "new", "", -1)


@dataclass(frozen=True)
class Endpoint:
    """A relation endpoint: application name and (optional) relation name."""

    application: str
    relation: str = ""

    def __str__(self) -> str:
        return f"{self.application}:{self.relation}" if self.relation else self.application


def split_endpoint(text: str) -> Endpoint:
    """Split `app[:relation]` at the first colon, as the change generator does."""
    application, _, relation = text.partition(":")
    return Endpoint(application, relation)


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint strictly, as bundle verification does; ValueError if malformed."""
    match = APP_RELATION_RE.fullmatch(text)
    if match is not None:
        return Endpoint(match.group(1), match.group(2))
    if APPLICATION_RE.fullmatch(text) is None:
        raise ValueError(f"invalid relation syntax {go_quote(text)}")
    return Endpoint(text)


@dataclass(frozen=True)
class CharmURL:
    """A parsed charm URL (`ch:` or `local:`)."""

    schema: str
    name: str
    revision: int = -1
    series: str = ""
    architecture: str = ""

    def __str__(self) -> str:
        name = f"{self.name}-{self.revision}" if self.revision >= 0 else self.name
        return f"{self.schema}:" + "/".join(p for p in (self.architecture, self.series, name) if p)


def parse_charm_url(url: str) -> CharmURL:
    """Parse a charm URL like juju/charm's ParseURL; ValueError (Juju's message) if invalid."""
    scheme, opaque, path = _split_url(url)
    if scheme == "ch":
        return _parse_charmhub(opaque or path, url)
    if opaque:
        return _parse_local(scheme, opaque, url)
    return _parse_charmhub(path, url)


def _split_url(url: str) -> tuple[str, str, str]:
    """(scheme, opaque, path) of `url` as Go's net/url splits it; ValueError on extra parts."""
    match = URL_SCHEME_RE.match(url)
    scheme = match.group(1).lower() if match else ""
    rest = url[match.end() :] if match else url
    if "#" in rest or "?" in rest or (rest.startswith("//") and "@" in rest.split("/")[2]):
        raise ValueError(f"charm or bundle URL {go_quote(url)} has unrecognized parts")
    if not scheme and ":" in rest.split("/", 1)[0]:
        raise ValueError(f"cannot parse charm or bundle URL: {go_quote(url)}")
    if scheme and not rest.startswith("/"):
        return scheme, rest, ""
    return scheme, "", rest


def _parse_local(scheme: str, opaque: str, url: str) -> CharmURL:
    """The `local:[series/]name[-rev]` form."""
    if scheme != "local":
        raise ValueError(f"cannot parse URL {go_quote(url)}: schema {go_quote(scheme)} not valid")
    parts = opaque.split("/")
    if parts[0].startswith("~"):
        raise ValueError(f"local charm or bundle URL with user name: {go_quote(url)}")
    if len(parts) > 2:
        raise ValueError(f"charm or bundle URL has invalid form: {go_quote(url)}")
    series = parts[0] if len(parts) == 2 else ""
    if series and SERIES_RE.fullmatch(series) is None:
        raise ValueError(f"cannot parse URL {go_quote(url)}: series name {go_quote(series)} not valid")
    name, revision = extract_revision(parts[-1])
    if CHARM_NAME_RE.fullmatch(name) is None:
        raise ValueError(f"cannot parse URL {go_quote(url)}: name {go_quote(name)} not valid")
    return CharmURL("local", name, revision, series)


def _parse_charmhub(path: str, url: str) -> CharmURL:
    """The `[ch:][arch/][series/]name[-rev]` form."""
    parts = path.strip("/").split("/")
    if len(parts) > 3:
        raise ValueError(f"charm or bundle URL {go_quote(url)} malformed")
    if parts[0].startswith("~"):
        raise ValueError(f"charmhub charm or bundle URL with user name: {go_quote(url)} not valid")
    arch, series = _arch_and_series(parts[:-1], url)
    name, revision = extract_revision(parts[-1])
    if CHARM_NAME_RE.fullmatch(name) is None:
        message = f"name {go_quote(name)} not valid"
        raise ValueError(f"cannot parse name and/or revision in URL {go_quote(url)}: {message}")
    if series and SERIES_RE.fullmatch(series) is None:
        raise ValueError(f"in URL {go_quote(url)}: series name {go_quote(series)} not valid")
    return CharmURL("ch", name, revision, series, arch)


def _arch_and_series(prefix: list[str], url: str) -> tuple[str, str]:
    """Architecture and series from the optional path segments before the charm name."""
    if len(prefix) == 2:
        if not is_valid_arch(prefix[0]):
            raise ValueError(f"in URL {go_quote(url)}: architecture name {go_quote(prefix[0])} not valid")
        return prefix[0], prefix[1]
    if len(prefix) == 1:
        return (prefix[0], "") if is_valid_arch(prefix[0]) else ("", prefix[0])
    return "", ""


def is_valid_arch(arch: str) -> bool:
    """Whether `arch` is an architecture Juju supports."""
    return ARCH_NAME_RE.fullmatch(arch) is not None and arch in SUPPORTED_ARCHES


def extract_revision(name: str) -> tuple[str, int]:
    """Split `name-42` into ("name", 42); no trailing revision gives -1."""
    match = re.fullmatch(r"(.+)-([0-9]+)", name)
    if match is None:
        return name, -1
    return match.group(1), int(match.group(2))
