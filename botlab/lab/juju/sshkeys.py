"""Authorized-key parsing as juju/utils/ssh does it: MD5 fingerprints and comments."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct

from botlab.lab.openssh import KEY_TYPES

# Comments of keys Juju manages itself: hidden from ListKeys, never added or deleted by users.
JUJU_KEY_COMMENTS = ("juju-client-key", "juju-system-key")


class InvalidKey(ValueError):
    pass


def split_authorized_keys(text: str) -> list[str]:
    """Non-empty, non-comment lines, as ssh.SplitAuthorisedKeys."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def fingerprint(key: str) -> tuple[str, str]:
    """(MD5 fingerprint "aa:bb:...", comment) of one authorized_keys line; InvalidKey if it is
    not a public key."""
    fields = key.split()
    # Options before the key type (command="...", from=...) are allowed in authorized_keys.
    while fields and fields[0] not in KEY_TYPES:
        fields.pop(0)
    if len(fields) < 2:
        raise InvalidKey(f"generating key fingerprint: invalid authorized_key {key!r}")
    kind, blob_text, comment = fields[0], fields[1], " ".join(fields[2:])
    try:
        blob = base64.b64decode(blob_text, validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        raise InvalidKey(f"generating key fingerprint: invalid authorized_key {key!r}") from None
    if embedded != kind:
        raise InvalidKey(f"generating key fingerprint: invalid authorized_key {key!r}")
    digest = hashlib.md5(blob).hexdigest()  # Juju's (insecure, but its) fingerprint format
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2)), comment
