"""Upstream files botlab applies (manifests), named by URL and sha256 and pinned here, in one
place; the inventory's `artifacts` section overrides a source (a mirror, an air-gapped copy).

`botlab fetch` downloads every artifact the inventory needs into the state folder's cache
(`.botlab/artifacts/`, copyable to a site without internet); stages read them through
`ArtifactCache.read`, which downloads a missing one and refuses, naming the artifact and both
sums, any file whose sha256 is not the pinned one. Upstream text is never edited: stages apply
it as it is and put botlab's own adjustments in separate objects or patches.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botlab.errors import StageError

if TYPE_CHECKING:
    from botlab.inventory import Inventory


@dataclass(frozen=True)
class Artifact:
    name: str  # the inventory's key under `artifacts`
    url: str
    sha256: str
    what: str


# The sums are those of the upstream files at their tags (the bytes raw.githubusercontent.com
# serves for that path at that tag), taken from the files themselves.
PINNED: dict[str, Artifact] = {
    "nvidia_device_plugin": Artifact(
        "nvidia_device_plugin",
        "https://raw.githubusercontent.com/NVIDIA/k8s-device-plugin/v0.20.0/deployments/static/"
        "nvidia-device-plugin.yml",
        "325835e0b0d9263ae673e41d878f849e880642142e9f9b15d1a3400da6a2260d",
        "NVIDIA device plugin v0.20.0, static DaemonSet manifest",
    ),
}
DOWNLOAD_TIMEOUT_S = 60.0
MAX_BYTES = 64 * 1024 * 1024

Opener = Callable[[str, float], bytes]


def artifact(inv: Inventory, name: str) -> Artifact:
    """The pinned artifact `name`, with the inventory's source when it gives one."""
    pinned = PINNED[name]
    source = getattr(inv.artifacts, name)
    if source is None:
        return pinned
    return Artifact(name, source.url, source.sha256, pinned.what)


def needed(inv: Inventory) -> list[Artifact]:
    """The artifacts this inventory's stages apply."""
    out = []
    if inv.with_role("gpu"):
        out.append(artifact(inv, "nvidia_device_plugin"))
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(url: str, timeout: float) -> bytes:
    """GET `url` (http or https), at most MAX_BYTES."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # the scheme is checked above
        data: bytes = answer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    return data


@dataclass(frozen=True)
class Fetched:
    artifact: Artifact
    path: Path
    action: str  # cached | downloaded


class ArtifactCache:
    """Files by artifact name and sha256 under `folder` (the state folder's `artifacts/`)."""

    def __init__(self, folder: Path, opener: Opener = download) -> None:
        self.folder = folder
        self._open = opener

    def path(self, a: Artifact) -> Path:
        return self.folder / f"{a.name}-{a.sha256}"

    def fetch(self, a: Artifact) -> Fetched:
        """The artifact in the cache: checked if there, else downloaded, checked and stored."""
        path = self.path(a)
        if path.exists():
            self._check(a, path.read_bytes(), f"the cached copy {path}")
            return Fetched(a, path, "cached")
        try:
            data = self._open(a.url, DOWNLOAD_TIMEOUT_S)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            why = (f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError)
                   else getattr(exc, "reason", exc))
            raise StageError(f"cannot download {a.url}: {why}", system="artifacts",
                             operation="download", where=a.name,
                             hint="check the URL and the network (on a site without internet, copy a fetched"
                                  " .botlab/artifacts/ folder here, or point artifacts."
                                  f"{a.name}.url at a mirror)") from None
        self._check(a, data, a.url)
        # The cache lives in the state folder, which is the owner's alone (0700, as the state store makes it).
        self.folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{a.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Fetched(a, path, "downloaded")

    def read(self, a: Artifact) -> bytes:
        """The artifact's bytes from the cache (downloaded first when missing), checked."""
        return self.fetch(a).path.read_bytes()

    @staticmethod
    def _check(a: Artifact, data: bytes, source: str) -> None:
        got = sha256(data)
        if got != a.sha256:
            raise StageError(f"{source} has sha256 {got}, expected {a.sha256}", system="artifacts",
                             operation="checksum", where=a.name,
                             hint=f"the file is not the pinned {a.what}: a mirror serving another file, or a"
                                  f" damaged copy; fix artifacts.{a.name} in the inventory or remove the copy"
                                  " and run `botlab fetch`")


def cache_for(inv: Inventory, opener: Opener = download) -> ArtifactCache:
    return ArtifactCache(inv.state_dir / "artifacts", opener)
