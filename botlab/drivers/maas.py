"""MAAS driver: a thin async facade over python-libmaas. No policy: it lists, creates,
commissions and tags what it is told to, bounds requests in flight, retries answers that
say "try again" (503, connection resets), and turns every other fault into a StageError
naming the operation and what MAAS said."""

from __future__ import annotations

import asyncio
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botlab.errors import StageError

if TYPE_CHECKING:
    from botlab.inventory import Inventory

log = logging.getLogger("botlab.maas")
T = TypeVar("T")

RETRY_STATUSES = frozenset({502, 503, 504})
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class MaasMachine:
    """What botlab reads of a MAAS machine."""

    system_id: str
    hostname: str
    status: int
    status_name: str
    status_message: str
    cpu_count: int
    memory_mib: int
    tags: tuple[str, ...]
    owner: str | None
    macs: tuple[str, ...]


def _machine(data: Mapping[str, Any]) -> MaasMachine:
    macs: list[str] = []
    for iface in data.get("interface_set") or ():
        mac = iface.get("mac_address")
        if mac:
            macs.append(str(mac).lower())
    return MaasMachine(
        system_id=str(data["system_id"]),
        hostname=str(data.get("hostname", "")),
        status=int(data.get("status", -1)),
        status_name=str(data.get("status_name", "")),
        status_message=str(data.get("status_message") or ""),
        cpu_count=int(data.get("cpu_count") or 0),
        memory_mib=int(data.get("memory") or 0),
        tags=tuple(data.get("tag_names") or ()),
        owner=data.get("owner"),
        macs=tuple(macs),
    )


def count_gpus(lshw_xml: bytes | str) -> int:
    """GPUs in commissioning's lshw output: display-class devices from NVIDIA."""
    try:
        root = ET.fromstring(lshw_xml)
    except ET.ParseError:
        return 0
    count = 0
    for node in root.iter("node"):
        if node.get("class") != "display":
            continue
        vendor = (node.findtext("vendor") or "") + " " + (node.findtext("product") or "")
        if "nvidia" in vendor.lower():
            count += 1
    return count


def _retryable(exc: Exception) -> bool:
    """aiohttp's transport errors, and libmaas's RemoteError for a 502/503/504 describe."""
    if type(exc).__module__.startswith("aiohttp"):
        return True
    return type(exc).__name__ == "RemoteError" and any(f" {s} " in str(exc) for s in RETRY_STATUSES)


class MaasDriver:
    """One connection to one MAAS, shared by every task of a stage."""

    def __init__(self, session: Any, concurrency: int, key_source: str, url: str):
        # libmaas's "bones" layer: its documented low-level API, one call per MAAS operation.
        self._session = session
        self._slots = asyncio.Semaphore(concurrency)
        self.key_source = key_source
        self.url = url

    @classmethod
    async def connect(cls, inventory: Inventory, environ: Mapping[str, str]) -> MaasDriver:
        from maas.client import bones

        key = inventory.secret("maas.api_key", environ).reveal()
        url = inventory.maas.url
        source = inventory.maas.api_key.describe()

        async def _connect() -> Any:
            _profile, session = await bones.SessionAPI.connect(url=url, apikey=key)
            return session

        driver = cls(None, inventory.maas.concurrency, source, url)
        driver._session = session = await driver._call("connect", _connect)
        # describe is anonymous: prove the key now, so a bad key fails before any work.
        await driver._call("whoami", lambda: session.Users.whoami())
        return driver

    async def close(self) -> None:
        """libmaas opens one HTTP session per call; nothing stays open."""

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]], where: str | None = None) -> T:
        from maas.client.bones import CallError

        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            async with self._slots:
                try:
                    return await fn()
                except CallError as exc:
                    status = exc.status
                    body = exc.content.decode("utf-8", "replace").strip()
                    if status in RETRY_STATUSES and delay is not None:
                        log.debug("MAAS %s: HTTP %s, retry %d in %.1fs", operation, status, attempt + 1, delay)
                    elif status == 401:
                        raise StageError(
                            f"MAAS at {self.url} refused the API key (HTTP 401: {body[:120]})",
                            system="MAAS",
                            operation=operation,
                            hint=f"check the key in {self.key_source} (consumer:token:secret"
                            " from `maas apikey --username=...`), then run `botlab up` again",
                        ) from None
                    else:
                        raise StageError(
                            f"HTTP {status}: {body[:300]}",
                            system="MAAS",
                            operation=operation,
                            where=where,
                            hint="see the MAAS UI or logs for this machine",
                        ) from None
                except (TimeoutError, OSError) as exc:
                    if delay is None:
                        raise StageError(
                            f"cannot reach MAAS at {self.url}: {exc}",
                            system="MAAS",
                            operation=operation,
                            where=where,
                            hint="check maas.url and that MAAS is running, then run `botlab up`",
                        ) from None
                    log.debug("MAAS %s: %s, retry %d in %.1fs", operation, exc, attempt + 1, delay)
                except Exception as exc:  # aiohttp errors; libmaas's RemoteError for describe
                    if _retryable(exc) and delay is not None:
                        log.debug("MAAS %s: %s, retry %d in %.1fs", operation, exc, attempt + 1, delay)
                    else:
                        raise StageError(
                            f"{type(exc).__name__}: {exc}", system="MAAS", operation=operation,
                            where=where, hint="check maas.url and that MAAS is running",
                        ) from None
            assert delay is not None
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # -- machines -------------------------------------------------------------------------

    async def machines(self, hostnames: Sequence[str] | None = None) -> list[MaasMachine]:
        """One list request (filtered by hostname when given)."""
        session = self._session
        params = {"hostname": list(hostnames)} if hostnames else {}
        found = await self._call("list machines", lambda: session.Machines.read(**params))
        return [_machine(m) for m in found]

    async def create_machine(
        self,
        hostname: str,
        architecture: str,
        macs: Sequence[str],
        power_type: str,
        power_parameters: Mapping[str, str],
    ) -> MaasMachine:
        session = self._session
        made = await self._call(
            "create machine",
            lambda: session.Machines.create(
                architecture=architecture,
                mac_addresses=list(macs),
                power_type=power_type,
                power_parameters=json.dumps(dict(power_parameters), sort_keys=True),
                hostname=hostname,
            ),
            where=hostname,
        )
        return _machine(made)

    async def commission(self, system_id: str, hostname: str) -> MaasMachine:
        session = self._session
        data = await self._call("commission", lambda: session.Machine.commission(system_id=system_id), where=hostname)
        return _machine(data)

    async def gpu_count(self, system_id: str, hostname: str) -> int:
        import bson

        session = self._session
        raw = await self._call("read details", lambda: session.Machine.details(system_id=system_id), where=hostname)
        details = bson.decode_all(raw)[0]
        return count_gpus(details.get("lshw") or b"")

    # -- tags ------------------------------------------------------------------------------

    async def tag_names(self) -> set[str]:
        session = self._session
        tags = await self._call("list tags", lambda: session.Tags.read())
        return {str(t["name"]) for t in tags}

    async def create_tag(self, name: str, comment: str) -> None:
        session = self._session
        await self._call("create tag", lambda: session.Tags.create(name=name, comment=comment), where=name)

    async def update_tag(self, name: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """Add and remove machines (system ids) of a tag in one request."""
        session = self._session
        params: dict[str, Any] = {"name": name}
        if add:
            params["add"] = list(add)
        if remove:
            params["remove"] = list(remove)
        await self._call("update tag", lambda: session.Tag.update_nodes(**params), where=name)

    async def tagged(self, name: str) -> set[str]:
        """System ids of the machines carrying a tag."""
        session = self._session
        found = await self._call("list tagged machines", lambda: session.Tag.machines(name=name), where=name)
        return {str(m["system_id"]) for m in found}

    async def delete_tag(self, name: str) -> None:
        session = self._session
        await self._call("delete tag", lambda: session.Tag.delete(name=name), where=name)
