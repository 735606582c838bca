"""What the MAAS emulator asks of whatever plays its machines' operating systems: boot one
when MAAS has "installed" it, power it off on release. botlab.lab.hosts.HostManager is the
real one (SSH servers in namespaces); without one, a deploy only changes MAAS's records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from botlab.lab.spec import MachineSpec


@dataclass(frozen=True)
class BootRequest:
    system_id: str
    hostname: str
    address: str  # the boot interface's address, as MAAS reports it
    user_data: bytes | None  # the deploy's cloud-config, as cloud-init would read it
    ssh_keys: tuple[str, ...]  # the deploying MAAS user's keys, for the default user
    hardware: MachineSpec | None  # None: a machine the lab spec does not describe


class HostBackend(Protocol):
    def boot(self, request: BootRequest, done: Callable[[str | None], None]) -> None:
        """Start the host in the background; call `done(None)` once it answers SSH, or
        `done(message)` when it cannot boot. `done` may be called from any thread."""

    def shutdown(self, system_id: str) -> None:
        """Power the host off and wipe it, in the background; nothing when it is not up."""

    def describe(self) -> list[dict[str, Any]]:
        """The running hosts: hostname, address, host keys ... (for the control API)."""
