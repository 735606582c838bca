"""The names botlab gives things in shared systems (MAAS tags, Juju models, files in the
state folder), in one place: every stage that makes or finds one asks here.

MAAS tags are global to a MAAS, so every tag starts with the lab's name; two labs on one
MAAS never touch each other's.
"""

from __future__ import annotations

KUBECONFIG_FILE = "kubeconfig"  # in the state folder, mode 0600


def lab_tag(lab: str) -> str:
    """On every machine of the lab."""
    return lab


def role_tag(lab: str, role: str) -> str:
    return f"{lab}-role-{role}"


def pin_tag(lab: str, hostname: str) -> str:
    """On exactly one machine: the Juju constraint `tags=<pin tag>` deploys that host."""
    return f"{lab}-pin-{hostname}"


def default_model(lab: str) -> str:
    """The Kubernetes model's name when the inventory names none."""
    return f"{lab}-k8s"
