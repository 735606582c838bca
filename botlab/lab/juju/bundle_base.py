"""OS bases for bundle changes: parsing `os@track[/risk]`, legacy series names, and the base a
local charm directory or archive declares (Juju 3.6 core/base and core/charm rules)."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from botlab.lab.juju.bundle_parse import BundleChangesError, go_quote

RISKS = ("stable", "candidate", "beta", "edge")
CHARM_BASE_OSES = ("ubuntu", "centos", "windows", "osx", "opensuse", "genericlinux")
SERIES_VERSIONS = {
    "precise": "12.04", "quantal": "12.10", "raring": "13.04", "saucy": "13.10",
    "trusty": "14.04", "utopic": "14.10", "vivid": "15.04", "wily": "15.10",
    "xenial": "16.04", "yakkety": "16.10", "zesty": "17.04", "artful": "17.10",
    "bionic": "18.04", "cosmic": "18.10", "disco": "19.04", "eoan": "19.10",
    "focal": "20.04", "groovy": "20.10", "hirsute": "21.04", "impish": "21.10",
    "jammy": "22.04", "kinetic": "22.10", "lunar": "23.04", "mantic": "23.10",
    "noble": "24.04", "oracular": "24.10",
}  # fmt: skip
OTHER_SERIES = {
    "centos7": ("centos", "7"),
    "centos8": ("centos", "8"),
    "centos9": ("centos", "9"),
    "kubernetes": ("kubernetes", "kubernetes"),
    "genericlinux": ("genericlinux", "genericlinux"),
}


@dataclass(frozen=True)
class Base:
    """An OS and channel, e.g. ubuntu@22.04/stable; the empty Base means "not set"."""

    os: str = ""
    track: str = ""
    risk: str = ""

    def __str__(self) -> str:
        if not self.os:
            return ""
        return f"{self.os}@{self.track}/{self.risk}" if self.risk else f"{self.os}@{self.track}"

    def is_empty(self) -> bool:
        """Whether no base was set."""
        return not (self.os or self.track or self.risk)


def parse_base(text: str) -> Base:
    """`os@track[/risk]` as core/base.ParseBaseFromString reads it; the risk defaults to stable."""
    parts = text.split("@")
    if len(parts) != 2:
        raise BundleChangesError("expected base string to contain os and channel separated by '@'")
    track, _, risk = parts[1].partition("/")
    if not parts[1]:
        raise BundleChangesError("empty channel not valid")
    if "/" in risk:
        raise BundleChangesError(f"channel is malformed and has too many components {go_quote(parts[1])}")
    if risk and risk not in RISKS:
        raise BundleChangesError(f"risk in channel {go_quote(parts[1])} not valid")
    if not track:
        raise BundleChangesError(f"track in channel {go_quote(parts[1])} not valid")
    return Base(parts[0], track, risk or "stable")


def base_from_series(series: str) -> Base:
    """The base a legacy series name stands for (jammy -> ubuntu@22.04/stable)."""
    if series in SERIES_VERSIONS:
        return Base("ubuntu", SERIES_VERSIONS[series], "stable")
    if series in OTHER_SERIES:
        os_name, version = OTHER_SERIES[series]
        return Base(os_name, version, "stable")
    raise BundleChangesError(f"unknown OS for series: {go_quote(series)}")


def compute_base(base: str, series: str, default: Base) -> Base:
    """A base from a `base:` or `series:` field, else `default` (core bundlechanges computeBase)."""
    if base:
        return parse_base(base)
    if series:
        return base_from_series(series)
    return default


def is_valid_charm_base(text: str) -> bool:
    """Whether juju/charm's ParseBase accepts `text` (the check bundle verification runs)."""
    parts = text.split("@")
    if len(parts) != 2 or parts[0].lower() not in CHARM_BASE_OSES or not parts[1]:
        return False
    return _is_valid_charm_channel(parts[1])


def _is_valid_charm_channel(text: str) -> bool:
    """Whether juju/charm's ParseChannel accepts `text`: track, risk, track/risk, risk/branch
    or track/risk/branch."""
    parts = text.split("/")
    if len(parts) == 1:
        return True
    if len(parts) == 2:
        first, second = parts
        return second != "" if first in RISKS else (first != "" and second in RISKS)
    if len(parts) == 3:
        track, risk, branch = parts
        return track != "" and risk in RISKS and branch != ""
    return False


def is_local_charm_path(charm: str) -> bool:
    """Whether a `charm:` value names a local directory or archive rather than a charm URL."""
    return charm.startswith(".") or os.path.isabs(charm)


def local_charm_base(path: str, default: Base) -> Base:
    """The base a local charm deploys on: `default` unless unset and the charm declares bases."""
    bases = local_charm_bases(path)
    if default.is_empty() and bases:
        return bases[0]
    return default


def local_charm_bases(path: str) -> list[Base]:
    """Bases from the charm's manifest.yaml, else from the series in its metadata.yaml."""
    metadata, manifest = _read_charm_files(Path(path))
    if manifest is not None:
        return [_manifest_base(entry) for entry in manifest.get("bases") or [] if isinstance(entry, dict)]
    series = metadata.get("series") or []
    return [base_from_series(str(s)) for s in series] if isinstance(series, list) else []


def _manifest_base(entry: dict[str, Any]) -> Base:
    """One `bases:` entry of manifest.yaml as a Base."""
    track, _, risk = str(entry.get("channel", "")).partition("/")
    return Base(str(entry.get("name", "")).lower(), track, risk.split("/")[0] or "stable")


def _read_charm_files(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(metadata.yaml, manifest.yaml or None) of a charm directory or archive."""
    if path.is_dir():
        meta_text = _read_text(path / "metadata.yaml")
        manifest_path = path / "manifest.yaml"
        manifest_text = manifest_path.read_text() if manifest_path.is_file() else None
    else:
        meta_text, manifest_text = _read_archive(path)
    try:
        metadata = yaml.load(meta_text, Loader=yaml.BaseLoader)
        manifest = yaml.load(manifest_text, Loader=yaml.BaseLoader) if manifest_text is not None else None
    except yaml.YAMLError as exc:
        raise BundleChangesError(f"cannot read charm at {path}: {exc}") from exc
    return metadata if isinstance(metadata, dict) else {}, manifest if isinstance(manifest, dict) else None


def _read_text(path: Path) -> str:
    """A charm file's text, or the API error Juju gives when it is missing."""
    try:
        return path.read_text()
    except OSError as exc:
        raise BundleChangesError(f"open {path}: no such file or directory") from exc


def _read_archive(path: Path) -> tuple[str, str | None]:
    """(metadata.yaml, manifest.yaml or None) text from a .charm archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "metadata.yaml" not in names:
                raise BundleChangesError(f"archive file {go_quote('metadata.yaml')} not found")
            manifest = archive.read("manifest.yaml").decode() if "manifest.yaml" in names else None
            return archive.read("metadata.yaml").decode(), manifest
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleChangesError(f"cannot read charm at {path}: {exc}") from exc
