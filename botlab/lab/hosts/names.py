"""Names of everything the lab creates in the kernel, all derived from the lab's id, so that
`sweep` can find and remove what a crashed lab left behind and two labs never collide."""

from __future__ import annotations

import hashlib
from pathlib import Path

NETNS_PREFIX = "botlab-"


def lab_id(lab_dir: Path) -> str:
    """Six hex digits naming one lab folder (interface names allow 15 characters)."""
    return hashlib.sha256(str(lab_dir.resolve()).encode()).hexdigest()[:6]


def netns(lab: str, hostname: str) -> str:
    return f"{NETNS_PREFIX}{lab}-{hostname}"


def netns_prefix(lab: str) -> str:
    return f"{NETNS_PREFIX}{lab}-"


def bridge(lab: str) -> str:
    return f"blb{lab}"


def veth_outside(lab: str, index: int) -> str:
    return f"blv{lab}{index}"


def veth_inside(lab: str, index: int) -> str:
    """The host end's name until it is moved into the host and renamed eth0."""
    return f"blp{lab}{index}"


def link_prefixes(lab: str) -> tuple[str, ...]:
    return (f"blb{lab}", f"blv{lab}", f"blp{lab}")
