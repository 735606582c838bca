"""What a lab host takes from its deploy: the cloud-config `user_data` (as cloud-init reads
it) and the MAAS user's SSH keys, which MAAS gives the default user."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# cloud-config `ssh_keys` names, as cloud-init's cc_ssh module reads them.
KEY_TYPES = ("rsa", "ecdsa", "ed25519")


@dataclass
class HostKey:
    kind: str  # rsa, ecdsa, ed25519
    private: str  # OpenSSH PEM
    public: str  # "ssh-ed25519 AAAA... comment"


@dataclass
class BootConfig:
    """Who may log in and which host keys to present."""

    default_user: str = "ubuntu"
    authorized_keys: list[str] = field(default_factory=list)
    host_keys: list[HostKey] = field(default_factory=list)


class UserDataError(ValueError):
    """The user_data is not a cloud-config cloud-init would accept."""


def parse(user_data: bytes | None, maas_keys: Iterable[str], hostname: str) -> BootConfig:
    """The boot configuration from a deploy: MAAS keys and the cloud-config's
    `ssh_authorized_keys` for the default user; `ssh_keys` host keys, or a fresh ed25519 key
    as cloud-init generates when none are given."""
    config = BootConfig(authorized_keys=[k.strip() for k in maas_keys if k.strip()])
    doc = _cloud_config(user_data)
    for key in doc.get("ssh_authorized_keys") or []:
        if str(key).strip() and str(key).strip() not in config.authorized_keys:
            config.authorized_keys.append(str(key).strip())
    given = doc.get("ssh_keys") or {}
    if not isinstance(given, dict):
        raise UserDataError("ssh_keys must be a mapping")
    for kind in KEY_TYPES:
        private, public = given.get(f"{kind}_private"), given.get(f"{kind}_public")
        if private and public:
            config.host_keys.append(HostKey(kind, str(private), str(public).strip()))
    if not config.host_keys:
        config.host_keys.append(new_host_key(hostname))
    return config


def _cloud_config(user_data: bytes | None) -> dict[str, Any]:
    if not user_data:
        return {}
    text = user_data.decode("utf-8", errors="replace")
    if not text.startswith("#cloud-config"):
        return {}  # a script or another part type: nothing about keys in it
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserDataError(f"user_data is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UserDataError("user_data cloud-config is not a mapping")
    return doc


def new_host_key(hostname: str) -> HostKey:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    return HostKey("ed25519", private.decode(), f"{public.decode()} root@{hostname}")
