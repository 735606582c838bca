"""MAAS driver: a thin async facade over python-libmaas. No policy: it lists, creates,
commissions and tags what it is told to, bounds requests in flight, gives each request a
deadline, retries answers that say "try again" (502/503/504, connection faults, no answer)
under one RetryPolicy, and turns every other fault into a StageError naming the operation
and what MAAS said.

A change (create, commission, tag) is sent again only when MAAS cannot have acted on it
(a "try again" status, or no connection at all); one that got no answer, or whose connection
broke after it was sent, is reported, and the next `botlab up` plans from what MAAS has.
Creating a tag that exists already counts as done."""

from __future__ import annotations

import asyncio
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypeVar

from botlab.drivers.retry import Deadlines, NoAnswer, Reachability, RetryPolicy, Sleep, answer_within, retry_call
from botlab.errors import StageError

if TYPE_CHECKING:
    from botlab.inventory import Inventory

log = logging.getLogger("botlab.maas")
T = TypeVar("T")

RETRY_STATUSES = frozenset({502, 503, 504})
# 7 tries, waits 0.2, 0.4 ... 6.4 s plus up to 0.5 s of jitter each: about 13-16 s in all (and no
# new try once Deadlines.unreachable has passed, when tries wait out their deadline).
RETRY = RetryPolicy(attempts=7, initial=0.2, maximum=8.0, jitter=0.5)
ALREADY_EXISTS = "Tag with this Name already exists."  # Django's unique check on Tag.name


class MaasStatus(IntEnum):
    """A machine's status code (MAAS's NODE_STATUS, maasserver/enum.py, stable since 2.x).
    A code this list does not know (a newer MAAS) becomes an unnamed member with that value,
    so comparisons and sets below still work and nothing fails on reading it."""

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

    @classmethod
    def _missing_(cls, value: object) -> MaasStatus | None:
        if not isinstance(value, int):
            return None
        unknown = int.__new__(cls, value)
        unknown._name_ = f"UNKNOWN_{value}"
        unknown._value_ = value
        return unknown


# What the stages decide on, by status:
WAITING = frozenset({MaasStatus.COMMISSIONING, MaasStatus.TESTING, MaasStatus.RELEASING})  # MAAS is busy with it
# Retried by enlist: Failed commissioning by commissioning again, Failed testing by testing
# again (MAAS 3.4 refuses to commission a machine in Failed testing).
FAILED = frozenset({MaasStatus.FAILED_COMMISSIONING, MaasStatus.FAILED_TESTING})
IN_USE = frozenset({MaasStatus.ALLOCATED, MaasStatus.DEPLOYING, MaasStatus.DEPLOYED,
                    MaasStatus.FAILED_DEPLOYMENT})  # someone (Juju) holds it
# Still held after its Juju model was destroyed: the release has not finished yet.
RELEASE_PENDING = frozenset({MaasStatus.DEPLOYED, MaasStatus.DEPLOYING, MaasStatus.ALLOCATED,
                             MaasStatus.RELEASING, MaasStatus.DISK_ERASING})


@dataclass(frozen=True)
class MaasMachine:
    """What botlab reads of a MAAS machine."""

    system_id: str
    hostname: str
    status: MaasStatus
    status_name: str
    status_message: str
    cpu_count: int
    memory_mib: int
    tags: tuple[str, ...]
    owner: str | None
    macs: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()


def _machine(data: Mapping[str, Any]) -> MaasMachine:
    macs: list[str] = []
    for iface in data.get("interface_set") or ():
        mac = iface.get("mac_address")
        if mac:
            macs.append(str(mac).lower())
    return MaasMachine(
        system_id=str(data["system_id"]),
        hostname=str(data.get("hostname", "")),
        status=MaasStatus(int(data.get("status", -1))),
        status_name=str(data.get("status_name", "")),
        status_message=str(data.get("status_message") or ""),
        cpu_count=int(data.get("cpu_count") or 0),
        memory_mib=int(data.get("memory") or 0),
        tags=tuple(data.get("tag_names") or ()),
        owner=data.get("owner"),
        macs=tuple(macs),
        ip_addresses=tuple(str(a) for a in data.get("ip_addresses") or ()),
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


def _transient(exc: Exception) -> bool:
    """MAAS's "try again" answers (502/503/504, also as libmaas's RemoteError for describe),
    aiohttp's transport errors, timeouts and socket errors."""
    from maas.client.bones import CallError

    if isinstance(exc, CallError):
        return exc.status in RETRY_STATUSES
    if isinstance(exc, (TimeoutError, OSError)) or type(exc).__module__.startswith("aiohttp"):
        return True
    return type(exc).__name__ == "RemoteError" and any(f" {s} " in str(exc) for s in RETRY_STATUSES)


def _unsent(exc: Exception) -> bool:
    """For a change: only what proves MAAS did not act on it (a "try again" status, or the
    connection never made); not a missing answer nor a connection broken after sending."""
    from maas.client.bones import CallError

    if isinstance(exc, CallError):
        return exc.status in RETRY_STATUSES
    return isinstance(exc, ConnectionRefusedError) or type(exc).__name__ == "ClientConnectorError"


def _connection_fault(exc: Exception) -> bool:
    from maas.client.bones import CallError

    if isinstance(exc, CallError):
        return False
    return isinstance(exc, (TimeoutError, OSError)) or type(exc).__module__.startswith("aiohttp")


def _duplicate_tag(exc: Exception) -> bool:
    """MAAS's answer to creating a tag that exists: 400 {"name": ["Tag with this Name already exists."]}."""
    from maas.client.bones import CallError

    if not isinstance(exc, CallError) or exc.status != 400:
        return False
    try:
        body = json.loads(exc.content)
    except ValueError:
        return False
    return isinstance(body, dict) and ALREADY_EXISTS in (body.get("name") or [])


class MaasDriver:
    """One connection to one MAAS, shared by every task of a stage."""

    def __init__(self, session: Any, concurrency: int, key_source: str, url: str,
                 sleep: Sleep = asyncio.sleep, deadlines: Deadlines | None = None) -> None:
        # libmaas's "bones" layer: its documented low-level API, one call per MAAS operation.
        self._session = session
        self._slots = asyncio.Semaphore(concurrency)
        self._sleep = sleep  # between retries; tests pass one that does not wait
        self.key_source = key_source
        self.url = url
        self.deadlines = deadlines or Deadlines()
        self._retry = replace(RETRY, within=self.deadlines.unreachable)
        self._reach = Reachability()

    @classmethod
    async def connect(cls, inventory: Inventory, environ: Mapping[str, str]) -> MaasDriver:
        from maas.client import bones

        key = inventory.secret("maas.api_key", environ).reveal()
        url = inventory.maas.url
        source = inventory.maas.api_key.describe()

        async def _connect() -> Any:
            _profile, session = await bones.SessionAPI.connect(url=url, apikey=key)
            return session

        driver = cls(None, inventory.maas.concurrency, source, url, deadlines=Deadlines.from_environ(environ))
        driver._session = session = await driver._call("connect", _connect)
        # describe is anonymous: prove the key now, so a bad key fails before any work.
        await driver._call("whoami", lambda: session.Users.whoami())
        return driver

    async def close(self) -> None:
        """libmaas opens one HTTP session per call; nothing stays open."""

    async def _call(self, operation: str, fn: Callable[[], Awaitable[T]], where: str | None = None, *,
                    read: bool = True) -> T:
        """One MAAS request under RETRY, each try within the call deadline; each attempt holds a
        slot, the waits between do not. A change (`read=False`) is tried again only when MAAS
        cannot have acted on it."""

        async def attempt() -> T:
            async with self._slots:
                try:
                    result = await answer_within(self.deadlines.call, fn)
                except Exception as exc:
                    if _connection_fault(exc):
                        self._reach.lost()
                    else:
                        self._reach.answered()
                    raise
            self._reach.answered()
            return result

        return await retry_call(self._retry, attempt, transient=_transient if read else _unsent, log=log,
                                what=f"MAAS {operation}", error=lambda exc: self._error(exc, operation, where, read),
                                sleep=self._sleep)

    def _error(self, exc: Exception, operation: str, where: str | None, read: bool = True) -> StageError:
        """What the operator reads for a failed request: the cause and where to look."""
        from maas.client.bones import CallError

        if isinstance(exc, CallError):
            body = exc.content.decode("utf-8", "replace").strip()
            if exc.status == 401:
                return StageError(
                    f"MAAS at {self.url} refused the API key (HTTP 401: {body[:120]})",
                    system="MAAS",
                    operation=operation,
                    hint=f"check the key in {self.key_source} (consumer:token:secret"
                    " from `maas apikey --username=...`), then run `botlab up` again",
                )
            return StageError(
                f"HTTP {exc.status}: {body[:300]}",
                system="MAAS",
                operation=operation,
                where=where,
                hint="see the MAAS UI or logs for this machine",
            )
        if not read and (isinstance(exc, NoAnswer) or (_connection_fault(exc) and not _unsent(exc))):
            return StageError(
                f"no answer from MAAS at {self.url} ({exc}): MAAS may or may not have made this change",
                system="MAAS",
                operation=operation,
                where=where,
                hint="check that MAAS is running, then run `botlab up`: it plans again from what MAAS has",
            )
        if _connection_fault(exc):
            since = self._reach.since_text()
            return StageError(
                f"cannot reach MAAS at {self.url}{' ' + since if since else ''}: {exc}",
                system="MAAS",
                operation=operation,
                where=where,
                hint="check maas.url and that MAAS is running, then run `botlab up`",
            )
        # aiohttp's errors; libmaas's RemoteError for describe
        return StageError(f"{type(exc).__name__}: {exc}", system="MAAS", operation=operation,
                          where=where, hint="check maas.url and that MAAS is running")

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
            read=False,
        )
        return _machine(made)

    async def commission(self, system_id: str, hostname: str) -> MaasMachine:
        session = self._session
        data = await self._call("commission", lambda: session.Machine.commission(system_id=system_id), where=hostname,
                                read=False)
        return _machine(data)

    async def test(self, system_id: str, hostname: str) -> MaasMachine:
        """Run the machine's tests again (`op=test`), which MAAS allows from Failed testing."""
        session = self._session
        data = await self._call("test", lambda: session.Machine.test(system_id=system_id), where=hostname,
                                read=False)
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
        """Create a tag; one that exists already (another run made it meanwhile) is done."""
        session = self._session

        async def _create() -> None:
            try:
                await session.Tags.create(name=name, comment=comment)
            except Exception as exc:
                if not _duplicate_tag(exc):
                    raise
                log.debug("MAAS create tag %s: it exists already", name)

        await self._call("create tag", _create, where=name, read=False)

    async def update_tag(self, name: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """Add and remove machines (system ids) of a tag in one request."""
        session = self._session
        params: dict[str, Any] = {"name": name}
        if add:
            params["add"] = list(add)
        if remove:
            params["remove"] = list(remove)
        await self._call("update tag", lambda: session.Tag.update_nodes(**params), where=name, read=False)

    async def tagged(self, name: str) -> set[str]:
        """System ids of the machines carrying a tag."""
        session = self._session
        found = await self._call("list tagged machines", lambda: session.Tag.machines(name=name), where=name)
        return {str(m["system_id"]) for m in found}

    async def delete_tag(self, name: str) -> None:
        session = self._session
        await self._call("delete tag", lambda: session.Tag.delete(name=name), where=name, read=False)

    # -- the lab's lock (botlab/lablock.py) --------------------------------------------------

    async def create_tag_if_absent(self, name: str, comment: str) -> bool:
        """Create a tag; False, not an error, when one of that name exists. MAAS refuses a
        second tag of a name (HTTP 400 "Tag with this Name already exists."), which makes this
        an atomic test-and-set: the lab's lock."""
        from maas.client.bones import CallError

        session = self._session

        async def create() -> bool:
            try:
                await session.Tags.create(name=name, comment=comment)
            except CallError as exc:
                if exc.status == 400 and b"already exists" in exc.content:
                    return False
                raise
            return True

        return await self._call("create tag", create, where=name, read=False)

    async def tag_comment(self, name: str) -> str | None:
        """A tag's comment; None if there is no such tag."""
        from maas.client.bones import CallError

        session = self._session

        async def read() -> str | None:
            try:
                tag = await session.Tag.read(name=name)
            except CallError as exc:
                if exc.status == 404:
                    return None
                raise
            return str(tag.get("comment") or "")

        return await self._call("read tag", read, where=name)

    async def delete_tag_if_present(self, name: str) -> bool:
        """Delete a tag; False, not an error, if there is no such tag."""
        from maas.client.bones import CallError

        session = self._session

        async def delete() -> bool:
            try:
                await session.Tag.delete(name=name)
            except CallError as exc:
                if exc.status == 404:
                    return False
                raise
            return True

        return await self._call("delete tag", delete, where=name)
