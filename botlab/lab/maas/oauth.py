"""OAuth 1.0 PLAINTEXT checks, as MAAS does them, against API keys `consumer:token:secret`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

_PARAM = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


@dataclass(frozen=True)
class ApiKey:
    """One MAAS API key; the consumer secret is always empty, as in MAAS."""

    consumer_key: str
    token_key: str
    token_secret: str

    @classmethod
    def parse(cls, text: str) -> ApiKey:
        parts = text.split(":")
        if len(parts) != 3 or not all(parts):
            raise ValueError("an API key is consumer_key:token_key:token_secret")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.consumer_key}:{self.token_key}:{self.token_secret}"


class AuthError(Exception):
    """The request is not (correctly) signed; the message is the body MAAS would send."""


def parse_authorization(header: str) -> dict[str, str]:
    """The oauth_* parameters of an `Authorization: OAuth ...` header, percent-decoded."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "oauth":
        return {}
    return {name: unquote(value) for name, value in _PARAM.findall(rest)}


def authenticate(header: str | None, keys: Iterable[ApiKey]) -> ApiKey:
    """Return the key that signed the request, or raise AuthError with MAAS's wording."""
    if not header:
        raise AuthError("Authorization Error: no OAuth credentials in the request")
    params = parse_authorization(header)
    if not params:
        raise AuthError("Authorization Error: unsupported Authorization scheme (use OAuth)")
    method = params.get("oauth_signature_method", "")
    if method != "PLAINTEXT":
        raise AuthError(f"Authorization Error: 'Unsupported signature method: {method}'")
    by_token = {k.token_key: k for k in keys}
    key = by_token.get(params.get("oauth_token", ""))
    if key is None or key.consumer_key != params.get("oauth_consumer_key"):
        # MAAS replaces OAuth's "Invalid consumer." with this friendlier text.
        raise AuthError("Authorization Error: Invalid API key.")
    # PLAINTEXT signature: percent-encoded consumer secret (empty) & percent-encoded token
    # secret, percent-encoded once more in the header (undone by parse_authorization).
    consumer_secret, amp, token_secret = params.get("oauth_signature", "").partition("&")
    if not amp or unquote(consumer_secret) != "" or unquote(token_secret) != key.token_secret:
        raise AuthError("Authorization Error: 'Invalid signature.'")
    return key
