"""MAAS node statuses: the numeric codes on the wire and the names MAAS shows for them."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """MAAS's NODE_STATUS values (the `status` field of a machine)."""

    NEW = 0
    COMMISSIONING = 1
    FAILED_COMMISSIONING = 2
    MISSING = 3
    READY = 4
    RESERVED = 5
    DEPLOYED = 6
    RETIRED = 7
    BROKEN = 8
    DEPLOYING = 9
    ALLOCATED = 10
    FAILED_DEPLOYMENT = 11
    RELEASING = 12
    FAILED_RELEASING = 13
    DISK_ERASING = 14
    FAILED_DISK_ERASING = 15
    RESCUE_MODE = 16
    ENTERING_RESCUE_MODE = 17
    FAILED_ENTERING_RESCUE_MODE = 18
    EXITING_RESCUE_MODE = 19
    FAILED_EXITING_RESCUE_MODE = 20
    TESTING = 21
    FAILED_TESTING = 22

    @property
    def label(self) -> str:
        """The `status_name` MAAS shows, e.g. "Failed commissioning"."""
        return _LABELS[self]

    @property
    def short(self) -> str:
        """The one-word form the API's `status` filter takes, e.g. "failed_commissioning"."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Status:
        """Accept a code, a label ("Failed testing") or a short form ("failed_testing")."""
        value = text.strip()
        if value.isdigit():
            return cls(int(value))
        wanted = value.lower().replace(" ", "_")
        for status in cls:
            if wanted in (status.short, status.label.lower().replace(" ", "_")):
                return status
        raise ValueError(f"unknown status {text!r}")


_LABELS = {
    Status.NEW: "New",
    Status.COMMISSIONING: "Commissioning",
    Status.FAILED_COMMISSIONING: "Failed commissioning",
    Status.MISSING: "Missing",
    Status.READY: "Ready",
    Status.RESERVED: "Reserved",
    Status.DEPLOYED: "Deployed",
    Status.RETIRED: "Retired",
    Status.BROKEN: "Broken",
    Status.DEPLOYING: "Deploying",
    Status.ALLOCATED: "Allocated",
    Status.FAILED_DEPLOYMENT: "Failed deployment",
    Status.RELEASING: "Releasing",
    Status.FAILED_RELEASING: "Releasing failed",
    Status.DISK_ERASING: "Disk erasing",
    Status.FAILED_DISK_ERASING: "Failed disk erasing",
    Status.RESCUE_MODE: "Rescue mode",
    Status.ENTERING_RESCUE_MODE: "Entering rescue mode",
    Status.FAILED_ENTERING_RESCUE_MODE: "Failed to enter rescue mode",
    Status.EXITING_RESCUE_MODE: "Exiting rescue mode",
    Status.FAILED_EXITING_RESCUE_MODE: "Failed to exit rescue mode",
    Status.TESTING: "Testing",
    Status.FAILED_TESTING: "Failed testing",
}

# Statuses in which a machine belongs to a user (MAAS keeps the owner through these).
OWNED = frozenset(
    {
        Status.ALLOCATED,
        Status.DEPLOYING,
        Status.DEPLOYED,
        Status.FAILED_DEPLOYMENT,
        Status.RELEASING,
        Status.FAILED_RELEASING,
        Status.DISK_ERASING,
        Status.FAILED_DISK_ERASING,
        Status.RESCUE_MODE,
        Status.ENTERING_RESCUE_MODE,
        Status.EXITING_RESCUE_MODE,
        Status.FAILED_ENTERING_RESCUE_MODE,
        Status.FAILED_EXITING_RESCUE_MODE,
    }
)
# Statuses `op=release` moves on from (RELEASABLE_STATUSES, canonical/maas 3.4.2
# src/maasserver/models/node.py).
RELEASABLE = frozenset(
    {
        Status.ALLOCATED,
        Status.RESERVED,
        Status.BROKEN,
        Status.DEPLOYING,
        Status.DEPLOYED,
        Status.FAILED_DEPLOYMENT,
        Status.FAILED_DISK_ERASING,
        Status.FAILED_RELEASING,
    }
)
# Commission.actionable_statuses (src/maasserver/node_action.py): not Failed testing.
COMMISSIONABLE = frozenset(
    {
        Status.NEW,
        Status.FAILED_COMMISSIONING,
        Status.READY,
        Status.BROKEN,
    }
)
# Test.actionable_statuses (src/maasserver/node_action.py).
TESTABLE = frozenset(
    {
        Status.FAILED_COMMISSIONING,
        Status.NEW,
        Status.READY,
        Status.RESERVED,
        Status.ALLOCATED,
        Status.FAILED_DEPLOYMENT,
        Status.DEPLOYED,
        Status.MISSING,
        Status.RETIRED,
        Status.BROKEN,
        Status.RESCUE_MODE,
        Status.FAILED_RELEASING,
        Status.FAILED_DISK_ERASING,
        Status.FAILED_ENTERING_RESCUE_MODE,
        Status.FAILED_EXITING_RESCUE_MODE,
        Status.FAILED_TESTING,
    }
)
# Where passed tests return a machine to Ready rather than to where it was
# (NODE_TESTING_RESET_READY_TRANSITIONS, src/maasserver/node_status.py).
TESTING_RESETS_TO_READY = frozenset(
    {
        Status.NEW,
        Status.COMMISSIONING,
        Status.FAILED_DEPLOYMENT,
        Status.MISSING,
        Status.RETIRED,
        Status.BROKEN,
        Status.FAILED_RELEASING,
        Status.FAILED_DISK_ERASING,
        Status.FAILED_ENTERING_RESCUE_MODE,
        Status.FAILED_EXITING_RESCUE_MODE,
        Status.FAILED_TESTING,
    }
)
# Machines powered on in these statuses (the rest are off, as MAAS leaves them).
POWERED_ON = frozenset(
    {
        Status.COMMISSIONING,
        Status.TESTING,
        Status.DEPLOYING,
        Status.DEPLOYED,
        Status.RELEASING,
        Status.DISK_ERASING,
        Status.RESCUE_MODE,
        Status.ENTERING_RESCUE_MODE,
        Status.EXITING_RESCUE_MODE,
    }
)
