"""The names botlab gives things in shared systems (MAAS tags, Juju models, files in the
state folder), in one place: every stage that makes or finds one asks here.

MAAS tags are global to a MAAS, so every tag starts with the lab's name; two labs on one
MAAS never touch each other's. A lab's tags are exactly `<lab>`, `<lab>-role-<role>` and
`<lab>-pin-<hostname>`: a plain prefix test would take lab `lab2`'s tags for lab `lab`'s.
"""

from __future__ import annotations

KUBECONFIG_FILE = "kubeconfig"  # in the state folder, mode 0600
ROLE_INFIX, PIN_INFIX = "-role-", "-pin-"


def lab_tag(lab: str) -> str:
    """On every machine of the lab."""
    return lab


def role_tag(lab: str, role: str) -> str:
    return f"{lab}{ROLE_INFIX}{role}"


def pin_tag(lab: str, hostname: str) -> str:
    """On exactly one machine: the Juju constraint `tags=<pin tag>` deploys that host."""
    return f"{lab}{PIN_INFIX}{hostname}"


def tag_comment(lab: str) -> str:
    """The comment botlab gives every tag it creates: whose tag it is."""
    return f"botlab lab {lab}"


def is_lab_tag(lab: str, tag: str) -> bool:
    """Whether `tag` is named as one of lab `lab`'s tags (`lab2-pin-x` is not lab `lab`'s)."""
    if tag == lab_tag(lab):
        return True
    return any(tag.startswith(lab + infix) and len(tag) > len(lab + infix) for infix in (ROLE_INFIX, PIN_INFIX))


def pinned_host(lab: str, tag: str) -> str | None:
    """The hostname a pin tag of lab `lab` names, else None."""
    prefix = lab + PIN_INFIX
    return tag[len(prefix):] or None if tag.startswith(prefix) else None


def default_model(lab: str) -> str:
    """The Kubernetes model's name when the inventory names none."""
    return f"{lab}-k8s"
