"""The Juju emulator's MAAS provider client: what Juju's `provider/maas` (through gomaasapi)
asks of MAAS when it provisions and stops machines, spoken over HTTP to the lab's MAAS
emulator (or any MAAS 2.0 API) with OAuth 1.0 PLAINTEXT signatures built here.

    client = MaasClient(endpoint, api_key)              # the cloud endpoint and credential
    try:
        node = await client.allocate([("tags", "gpu"), ("agent_name", model_uuid)])
        await client.deploy(node["system_id"], distro_series="noble", user_data=cloud_config)
        node = await client.machine(node["system_id"])   # poll until status_name == "Deployed"
        await client.release(node["system_id"])
    finally:
        await client.close()

A MAAS error becomes `MaasError(status, message)` whose message is MAAS's own text (a JSON
validation body `{"field": ["msg"]}` is flattened to `field: msg`). 5xx answers and
connection failures are retried `attempts` times, `retry_s` apart (MAAS's 503 carries a
Retry-After that a lab need not honour in full).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

API_PATH = "api/2.0/"
RETRYABLE = frozenset({500, 502, 503, 504})


class MaasError(Exception):
    """MAAS refused a call (`status` is the HTTP status; 0: MAAS could not be reached)."""

    def __init__(self, status: int, message: str, *, call: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.call = call

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status in RETRYABLE


def _pct(text: str) -> str:
    """OAuth's percent-encoding (RFC 5849 3.6): everything but unreserved characters."""
    return quote(text, safe="-._~")


def oauth_header(api_key: str) -> str:
    """The `Authorization` header value for a MAAS API key `consumer:token:secret`, as
    gomaasapi and python-libmaas build it: OAuth 1.0, PLAINTEXT, empty consumer secret."""
    parts = api_key.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError("a MAAS API key is consumer_key:token_key:token_secret")
    consumer_key, token_key, token_secret = parts
    params = {
        "oauth_version": "1.0",
        "oauth_signature_method": "PLAINTEXT",
        "oauth_consumer_key": consumer_key,
        "oauth_token": token_key,
        "oauth_signature": f"{_pct('')}&{_pct(token_secret)}",
        "oauth_nonce": secrets.token_hex(8),
        "oauth_timestamp": str(int(time.time())),
    }
    return 'OAuth realm="", ' + ", ".join(f'{name}="{_pct(value)}"' for name, value in params.items())


def _message(status: int, body: str) -> str:
    """MAAS's error text; a JSON validation body flattened to `field: message; ...`."""
    text = body.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text or f"HTTP {status}"
    if isinstance(data, dict):
        parts = []
        for field, problems in data.items():
            listed = problems if isinstance(problems, list) else [problems]
            parts.append(f"{field}: {' '.join(str(p) for p in listed)}")
        return "; ".join(parts) or text
    return text


class MaasClient:
    """An HTTP client for one MAAS region (endpoint `http://HOST:PORT/MAAS/`) and API key."""

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        attempts: int = 3,
        retry_s: float = 0.2,
        timeout_s: float = 15.0,
    ) -> None:
        oauth_header(api_key)  # checks the key's shape now, not at the first call
        self.endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        self.api_key = api_key
        self.attempts = max(1, attempts)
        self.retry_s = retry_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> MaasClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the calls Juju's MAAS provider makes --------------------------------------------

    async def allocate(self, params: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """`POST machines/?op=allocate` (name, system_id, tags, not_tags, cpu_count, mem,
        arch, zone, agent_name, comment ...; names may repeat)."""
        return await self._json("POST", "machines/", "allocate", list(params))

    async def deploy(self, system_id: str, *, distro_series: str, user_data: str, comment: str = "") -> dict[str, Any]:
        """`POST machines/<id>/?op=deploy`; `user_data` is sent base64-encoded, as MAAS wants."""
        encoded = base64.b64encode(user_data.encode("utf-8")).decode("ascii")
        form = [("distro_series", distro_series), ("user_data", encoded)]
        if comment:
            form.append(("comment", comment))
        return await self._json("POST", f"machines/{system_id}/", "deploy", form)

    async def machine(self, system_id: str) -> dict[str, Any]:
        """`GET machines/<id>/`."""
        return await self._json("GET", f"machines/{system_id}/", None, [])

    async def release(self, system_id: str, *, comment: str = "") -> dict[str, Any]:
        """`POST machines/<id>/?op=release` (a Ready or releasing machine: a no-op in MAAS)."""
        form = [("comment", comment)] if comment else []
        return await self._json("POST", f"machines/{system_id}/", "release", form)

    async def set_owner_data(self, system_id: str, data: Mapping[str, str]) -> dict[str, Any]:
        """`POST machines/<id>/?op=set_owner_data` (Juju's instance tags)."""
        return await self._json("POST", f"machines/{system_id}/", "set_owner_data", list(data.items()))

    # --- plumbing -----------------------------------------------------------------------

    async def _json(self, method: str, path: str, op: str | None, form: list[tuple[str, str]]) -> dict[str, Any]:
        answer = await self.request(method, path, op, form)
        try:
            data = json.loads(answer)
        except ValueError:
            raise MaasError(200, f"MAAS answered {method} {path} with something that is not JSON") from None
        if not isinstance(data, dict):
            raise MaasError(200, f"MAAS answered {method} {path} with {type(data).__name__}, expected an object")
        return data

    async def request(self, method: str, path: str, op: str | None, form: list[tuple[str, str]]) -> str:
        """One API call (retried while MAAS answers 5xx or cannot be reached); the body text."""
        url = self.endpoint + API_PATH + path
        if op:
            url += "?" + urlencode({"op": op})
        call = f"{method} {path}" + (f" op={op}" if op else "")
        last: MaasError | None = None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.retry_s)
            try:
                return await self._once(method, url, form, call)
            except MaasError as exc:
                if not exc.transient:
                    raise
                last = exc
        assert last is not None
        raise last

    async def _once(self, method: str, url: str, form: list[tuple[str, str]], call: str) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"Authorization": oauth_header(self.api_key), "Accept": "application/json"}
        data = None
        if method in ("POST", "PUT"):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(form)
        elif form:
            url += ("&" if "?" in url else "?") + urlencode(form)
        try:
            async with self._session.request(method, url, data=data, headers=headers) as response:
                body = await response.text()
                if response.status >= 400:
                    raise MaasError(response.status, _message(response.status, body), call=call)
                return body
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise MaasError(0, f"cannot reach MAAS at {self.endpoint}: {reason}", call=call) from None
