"""Which MAAS machine each inventory host is, and which of this lab's machines were renamed or
left the inventory, decided from MAAS identity: the system ids botlab recorded, MAAS
hostnames, MAC addresses and this lab's tags. Pure logic over what was read; no I/O. The
enlist stage acts on it; the kubernetes stage reads it to keep a renamed host's Juju machine
(a module of its own, because stages never import each other).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botlab import names

if TYPE_CHECKING:
    from botlab.drivers.maas import MaasMachine
    from botlab.inventory import Inventory

IDENTITY = "maas-machine"  # identities: hostname -> MAAS system id
REMOVED = "maas-removed"  # identities: hostname -> system id of a host removed while deployed (--remove)


@dataclass(frozen=True)
class Departed:
    """A machine of this lab that no inventory host is any more."""

    hostname: str  # as botlab knew it: recorded, else from its pin tag, else MAAS's hostname
    system_id: str
    machine: MaasMachine | None  # None: gone from MAAS too
    tags: tuple[str, ...] = ()  # this lab's tags on it


@dataclass
class Resolution:
    found: dict[str, MaasMachine | None] = field(default_factory=dict)  # inventory hostname -> machine
    how: dict[str, str] = field(default_factory=dict)  # inventory hostname -> how it was found
    renamed: dict[str, str] = field(default_factory=dict)  # inventory hostname -> the name it had
    departed: dict[str, Departed] = field(default_factory=dict)  # old hostname -> what it was
    ours: set[str] = field(default_factory=set)  # system ids that are this lab's (recorded or tagged)
    stale: dict[str, str] = field(default_factory=dict)  # recorded old names of found machines -> system id


def lab_tags(lab: str, tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(t for t in tags if names.is_lab_tag(lab, t)))


def resolve(inv: Inventory, everything: Iterable[MaasMachine], recorded: Mapping[str, str],
            removed: Mapping[str, str] | None = None) -> Resolution:
    """Each inventory host's MAAS machine (recorded id, else MAAS hostname, else a MAC), and
    what became of the machines this lab knew: renamed (an inventory host resolves to a
    machine known under a name the inventory no longer has) or departed."""
    lab = inv.name
    machines = list(everything)
    by_id = {m.system_id: m for m in machines}
    by_name = {m.hostname: m for m in machines}
    by_mac = {mac: m for m in machines for mac in m.macs}
    current = set(inv.hostnames)
    out = Resolution()

    # The names each machine of this lab had: the recorded one first, then its pin tags'.
    known_as: dict[str, list[str]] = {}
    for host, sid in recorded.items():
        known_as.setdefault(sid, []).append(host)
    for m in machines:
        for tag in m.tags:
            pinned = names.pinned_host(lab, tag)
            if pinned and pinned not in known_as.get(m.system_id, []):
                known_as.setdefault(m.system_id, []).append(pinned)
        if lab_tags(lab, m.tags):
            known_as.setdefault(m.system_id, [])
    out.ours = set(known_as) | set((removed or {}).values())

    for machine in inv.machines:
        host = machine.hostname
        hit: MaasMachine | None = by_id.get(recorded.get(host, ""))
        how = "recorded system id"
        if hit is None:
            hit, how = by_name.get(host), "MAAS hostname"
        if hit is None:
            mac = next((mac for mac in machine.macs if mac in by_mac), None)
            hit, how = (by_mac[mac], f"MAC {mac}") if mac else (None, "")
        out.found[host] = hit
        out.how[host] = how
        if hit is None:
            continue
        olds = [n for n in known_as.get(hit.system_id, []) if n != host and n not in current]
        if olds:
            out.renamed[host] = olds[0]
        out.stale.update({n: hit.system_id for n in olds if recorded.get(n) == hit.system_id})

    found_ids = {m.system_id for m in out.found.values() if m is not None}
    for sid, olds in known_as.items():
        if sid in found_ids:
            continue
        left = by_id.get(sid)
        gone = [n for n in olds if n not in current]
        if not gone and left is None:
            continue
        host = gone[0] if gone else (left.hostname if left else sid)
        out.departed[host] = Departed(host, sid, left, lab_tags(lab, left.tags) if left else ())
    return out
