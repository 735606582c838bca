"""The emulated MAAS's state (machines, tags, zones, keys) and the machine life cycle, whose
timed steps run on a `Scheduler`. Not thread-safe: the emulator calls it under one lock."""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botlab.lab.maas.errors import (
    ApiError,
    bad_request,
    conflict,
    invalid,
    not_found,
    not_implemented,
)
from botlab.lab.maas.faults import FaultBook
from botlab.lab.maas.forms import Params
from botlab.lab.maas.hostbackend import BootRequest, HostBackend
from botlab.lab.maas.oauth import ApiKey
from botlab.lab.maas.status import COMMISSIONABLE, POWERED_ON, RELEASABLE, Status
from botlab.lab.openssh import KEY_TYPES
from botlab.lab.spec import MAC_RE, LabSpec, MachineSpec

ARCHITECTURES = ("amd64/generic", "arm64/generic", "i386/generic", "ppc64el/generic", "s390x/generic")
POWER_TYPES = (
    "",
    "manual",
    "ipmi",
    "redfish",
    "virsh",
    "lxd",
    "amt",
    "apc",
    "dli",
    "hmc",
    "moonshot",
    "mscm",
    "msftocs",
    "openbmc",
    "proxmox",
    "recs_box",
    "sm15k",
    "ucsm",
    "vmware",
    "webhook",
    "wedge",
    "eaton",
    "raritan",
    "nova",
)
HWE_KERNELS = {"focal": "ga-20.04", "jammy": "ga-22.04", "noble": "ga-24.04"}
TAG_NAME_RE = re.compile(r"^[\w-]+$")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
# Allocation constraints the emulator cannot evaluate: asking for them is an error, not a no-op.
UNSUPPORTED_CONSTRAINTS = (
    "storage",
    "interfaces",
    "fabrics",
    "not_fabrics",
    "fabric_classes",
    "not_fabric_classes",
    "subnets",
    "not_subnets",
    "pod",
    "not_pod",
    "pod_type",
    "not_pod_type",
    "devices",
    "link_speed",
)
_ID_ALPHABET = "abcdefghkmnpqrstwxy345678"
_ADJECTIVES = (
    "able",
    "brave",
    "calm",
    "clever",
    "eager",
    "fair",
    "fine",
    "glad",
    "happy",
    "keen",
    "kind",
    "lively",
    "lucky",
    "noble",
    "proud",
    "quick",
    "sharp",
    "steady",
    "still",
    "sure",
    "tidy",
    "vital",
    "warm",
    "wise",
)
_ANIMALS = (
    "badger",
    "bison",
    "cobra",
    "crane",
    "dingo",
    "eagle",
    "ferret",
    "gecko",
    "heron",
    "ibex",
    "jaguar",
    "koala",
    "lemur",
    "lynx",
    "marmot",
    "newt",
    "otter",
    "panda",
    "quail",
    "raven",
    "seal",
    "tapir",
    "vole",
    "yak",
)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Runs `callback` after `delay` seconds (the emulator wraps it in its lock)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the scheduler's loop soon; may be called from any thread."""


@dataclass
class Interface:
    id: int
    name: str
    mac: str
    link_id: int
    ip: str | None = None


@dataclass
class Disk:
    id: int
    name: str
    size: int  # bytes
    model: str
    serial: str


@dataclass
class Tag:
    name: str
    comment: str = ""
    definition: str = ""
    kernel_opts: str | None = None


@dataclass
class Zone:
    id: int
    name: str
    description: str = ""


@dataclass
class Pool:
    id: int
    name: str
    description: str = ""


@dataclass
class SshKey:
    id: int
    key: str


@dataclass
class Machine:
    """A machine as MAAS knows it; `hardware` is what is really in the rack (None: no machine
    of the lab has these MACs, so nothing will ever boot and commissioning times out)."""

    system_id: str
    hostname: str
    architecture: str
    hardware: MachineSpec | None
    interfaces: list[Interface]
    status: Status = Status.NEW
    status_message: str | None = None
    previous_status: Status = Status.NEW
    commissioned: bool = False  # hardware facts are known (cpu_count, memory, details...)
    disks: list[Disk] = field(default_factory=list)
    power_type: str = ""
    power_parameters: dict[str, str] = field(default_factory=dict)
    zone: str = "default"
    pool: str = "default"
    description: str = ""
    owner: str | None = None
    owner_data: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    osystem: str = ""
    distro_series: str = ""
    hwe_kernel: str | None = None
    min_hwe_kernel: str = ""
    user_data: bytes | None = None
    power_state: str = "off"
    locked: bool = False
    agent_name: str = ""
    cpu_override: int | None = None  # set through PUT, as MAAS allows
    memory_override: int | None = None
    stage: str | None = None  # the timed step running now, if any
    timer: Cancellable | None = None
    skip_testing: bool = False
    erasing: bool = False
    boot_seq: int = 0  # counts host boots, so an answer for an older boot is ignored

    @property
    def macs(self) -> list[str]:
        return [i.mac for i in self.interfaces]

    @property
    def fault_names(self) -> list[str]:
        """Names a fault may target: the hardware's spec hostname first, then MAAS's."""
        names = [self.hardware.hostname] if self.hardware is not None else []
        return [*names, self.hostname]

    @property
    def cpu_count(self) -> int:
        if self.cpu_override is not None:
            return self.cpu_override
        return self.hardware.cores if self.commissioned and self.hardware else 0

    @property
    def memory(self) -> int:
        if self.memory_override is not None:
            return self.memory_override
        return self.hardware.memory_mib if self.commissioned and self.hardware else 0

    @property
    def ip_addresses(self) -> list[str]:
        return [i.ip for i in self.interfaces if i.ip]


class MaasModel:
    """All state of one emulated MAAS region, plus the timed life cycle of its machines."""

    def __init__(
        self, spec: LabSpec, faults: FaultBook, on_event: Callable[..., Any] = lambda kind, **fields: None
    ) -> None:
        self.spec = spec
        self.faults = faults
        self.on_event = on_event
        # What plays the deployed machines' operating systems (lab hosts); None: records only.
        self.hosts: HostBackend | None = None
        self.scheduler: Scheduler | None = None
        self.rng = random.Random(spec.timings.seed)  # step durations only, so they replay
        self._token_rng = random.Random(spec.timings.seed + 1)
        self.machines: dict[str, Machine] = {}
        self.tags: dict[str, Tag] = {}
        self.zones: dict[str, Zone] = {"default": Zone(1, "default")}
        self.pools: dict[str, Pool] = {"default": Pool(0, "default", "Default pool")}
        self.keys: list[ApiKey] = [ApiKey.parse(spec.maas.api_key)]
        self.keys += [ApiKey.parse(k) for k in spec.maas.extra_api_keys]
        self.ssh_keys: list[SshKey] = []
        self.config: dict[str, Any] = {
            "maas_name": "botlab-lab",
            "default_osystem": "ubuntu",
            "default_distro_series": spec.maas.default_distro_series,
            "commissioning_distro_series": spec.maas.default_distro_series,
            "default_min_hwe_kernel": "",
            "kernel_opts": None,
            "http_proxy": None,
            "enable_http_proxy": True,
            "upstream_dns": "",
            "ntp_servers": "ntp.ubuntu.com",
            "enable_disk_erasing_on_release": False,
            "boot_images_auto_import": True,
            "default_storage_layout": "flat",
            "main_archive": "http://archive.ubuntu.com/ubuntu",
            "ports_archive": "http://ports.ubuntu.com/ubuntu-ports",
            "completed_intro": True,
        }
        self._ids = {"interface": 0, "link": 0, "disk": 0, "ssh_key": 0, "zone": 1, "pool": 0}
        self._used_ips: set[str] = set()
        # Machines of the lab that are powered on but unknown to MAAS, by MAC.
        self._pending: dict[str, MachineSpec] = {}
        self._deferred: list[tuple[Machine, str, float, Callable[[Machine], None]]] = []
        for key in spec.maas.ssh_keys:
            self.add_ssh_key(key)
        for hw in spec.machines:
            self._ensure_zone(hw.zone)
            self._ensure_pool(hw.pool)
            if hw.enlisted:
                self._enlist(hw)
            else:
                for mac in hw.macs:
                    self._pending[mac] = hw

    # --- scheduling -----------------------------------------------------------------------

    def attach(self, scheduler: Scheduler) -> None:
        """Start running timed steps on `scheduler`, including those waiting since startup."""
        self.scheduler = scheduler
        deferred, self._deferred = self._deferred, []
        for machine, stage, seconds, done in deferred:
            self._schedule(machine, stage, seconds, done)

    def detach(self) -> None:
        """Stop all timers (the loop is going away); steps in flight stay where they are."""
        for m in self.machines.values():
            if m.timer is not None:
                m.timer.cancel()
                m.timer = None
        self.scheduler = None

    def _schedule(self, m: Machine, stage: str, seconds: float, done: Callable[[Machine], None]) -> None:
        m.stage = stage
        if self.scheduler is None:
            self._deferred.append((m, stage, seconds, done))
            return
        delay = self._jittered(seconds)
        m.timer = self.scheduler.call_later(delay, lambda: self._finish(m, stage, done))

    def _jittered(self, seconds: float) -> float:
        jitter = self.spec.timings.jitter
        return max(0.0, seconds * (1 + self.rng.uniform(-jitter, jitter)))

    def _cancel(self, m: Machine) -> None:
        if m.timer is not None:
            m.timer.cancel()
        m.timer = None
        m.stage = None

    def _finish(self, m: Machine, stage: str, done: Callable[[Machine], None]) -> None:
        m.timer = None
        if self.machines.get(m.system_id) is not m or m.stage != stage:
            return  # deleted, aborted or superseded meanwhile
        m.stage = None
        fault = self.faults.machine_failure(stage, m.fault_names)
        if fault is not None:
            message = fault.spec.message or f"{_STAGE_TITLES[stage]} failed (injected by botlab)"
            self.on_event(
                "fault", fault=fault.id, stage=stage, system_id=m.system_id, hostname=m.hostname, message=message
            )
            self._fail(m, stage, message)
            return
        done(m)

    def _fail(self, m: Machine, stage: str, message: str) -> None:
        failed = {
            "commissioning": Status.FAILED_COMMISSIONING,
            "testing": Status.FAILED_TESTING,
            "deployment": Status.FAILED_DEPLOYMENT,
            "releasing": Status.FAILED_DISK_ERASING if m.erasing else Status.FAILED_RELEASING,
        }[stage]
        m.erasing = False
        self._set_status(m, failed, message)

    def _set_status(self, m: Machine, status: Status, message: str | None) -> None:
        before = m.status
        m.status = status
        m.status_message = message
        m.power_state = "on" if status in POWERED_ON else "off"
        self.on_event(
            "transition",
            system_id=m.system_id,
            hostname=m.hostname,
            old=before.label,
            new=status.label,
            message=message,
        )

    # --- machines: create, read, update, delete -------------------------------------------

    def machine(self, system_id: str) -> Machine:
        try:
            return self.machines[system_id]
        except KeyError:
            raise not_found("Machine") from None

    def by_hostname(self, hostname: str) -> Machine | None:
        for m in self.machines.values():
            if m.hostname == hostname:
                return m
        return None

    def list_machines(self, params: Params) -> list[Machine]:
        macs = [m.lower() for m in params.getlist("mac_address")]
        bad = [m for m in macs if not MAC_RE.match(m)]
        if bad:
            raise bad_request("Invalid MAC address(es): " + ", ".join(bad))
        hostnames = {h.split(".", 1)[0] for h in params.getlist("hostname")}
        ids = set(params.getlist("id") + params.getlist("system_id"))
        statuses = set()
        for text in params.getlist("status"):
            try:
                statuses.add(Status.parse(text))
            except ValueError:
                raise invalid("status", f"'{text}' is not a valid status.") from None
        tags = params.split_list("tags")
        not_tags = params.split_list("not_tags")
        out = []
        for m in self.machines.values():
            if hostnames and m.hostname not in hostnames:
                continue
            if ids and m.system_id not in ids:
                continue
            if macs and not set(macs) & set(m.macs):
                continue
            if statuses and m.status not in statuses:
                continue
            if not _matches(params.getlist("zone"), m.zone):
                continue
            if not _matches(params.getlist("pool"), m.pool):
                continue
            if not _matches(params.getlist("domain"), self.spec.maas.domain):
                continue
            if not _matches(params.getlist("owner"), m.owner or ""):
                continue
            if not _matches(params.getlist("agent_name"), m.agent_name):
                continue
            if not _arch_matches(params.getlist("arch"), m.architecture):
                continue
            if any(t not in m.tags for t in tags) or any(t in m.tags for t in not_tags):
                continue
            out.append(m)
        return out

    def create_machine(self, params: Params, user: str) -> Machine:
        if params.flag("deployed"):
            raise not_implemented("POST machines (create) with deployed=true")
        macs = [m.strip().lower() for m in params.getlist("mac_addresses") if m.strip()]
        if not macs:
            raise invalid("mac_addresses", "This field is required.")
        for mac in macs:
            if not MAC_RE.match(mac):
                raise invalid("mac_addresses", f"'{mac}' is not a valid MAC address.")
            for other in self.machines.values():
                if mac in other.macs:
                    raise invalid(
                        "mac_addresses",
                        "One or more MAC addresses is invalid. "
                        f"('Mac address {mac} already in use on {other.hostname}.')",
                    )
        hardware = next((self._pending[m] for m in macs if m in self._pending), None)
        architecture = self._architecture(params.get("architecture") or (hardware.architecture if hardware else None))
        hostname = self._new_hostname(params.get("hostname"), macs[0])
        self._check_domain(params.get("domain"))
        power_type = params.get("power_type", "") or ""
        if power_type not in POWER_TYPES:
            raise bad_request(f"Bad power_type '{power_type}'")
        m = Machine(
            system_id=self._new_system_id(macs[0]),
            hostname=hostname,
            architecture=architecture,
            hardware=hardware,
            interfaces=[],
            power_type=power_type,
            power_parameters=_power_parameters(params),
            zone=self._zone_name(params.get("zone") or "default"),
            pool=self._pool_name(params.get("pool") or "default"),
            description=params.get("description", "") or "",
            min_hwe_kernel=params.get("min_hwe_kernel", "") or "",
        )
        for mac in macs:
            self._add_interface(m, mac)
        if hardware is not None:
            for mac in hardware.macs:
                self._pending.pop(mac, None)
        self.machines[m.system_id] = m
        self.on_event(
            "transition", system_id=m.system_id, hostname=m.hostname, old=None, new=Status.NEW.label, message="Created"
        )
        # A machine an admin adds is commissioned straight away, as in MAAS.
        if params.flag("commission", default=True):
            self.commission(m, Params())
        return m

    def update_machine(self, m: Machine, params: Params) -> Machine:
        if "hostname" in params:
            name = (params.get("hostname") or "").split(".", 1)[0]
            if name != m.hostname:
                self._check_hostname(name)
                m.hostname = name
        if "domain" in params:
            self._check_domain(params.get("domain"))
        if "description" in params:
            m.description = params.get("description") or ""
        if "zone" in params:
            m.zone = self._zone_name(params.get("zone") or "")
        if "pool" in params:
            m.pool = self._pool_name(params.get("pool") or "")
        if "architecture" in params:
            m.architecture = self._architecture(params.get("architecture"))
        if "min_hwe_kernel" in params:
            m.min_hwe_kernel = params.get("min_hwe_kernel") or ""
        if "cpu_count" in params:
            m.cpu_override = _int_param(params, "cpu_count")
        if "memory" in params:
            m.memory_override = _int_param(params, "memory")
        new_params = _power_parameters(params)
        if "power_type" in params:
            power_type = params.get("power_type") or ""
            if power_type not in POWER_TYPES:
                raise bad_request(f"Bad power_type '{power_type}'")
            if power_type != m.power_type:
                m.power_type = power_type
                m.power_parameters = {}
        m.power_parameters.update(new_params)
        return m

    def delete_machine(self, m: Machine) -> None:
        self._cancel(m)
        self._power_off(m)
        del self.machines[m.system_id]
        # The box is still in the rack and powered: it PXE-boots again, waiting to be added.
        if m.hardware is not None:
            for mac in m.hardware.macs:
                self._pending[mac] = m.hardware
        self.on_event(
            "transition", system_id=m.system_id, hostname=m.hostname, old=m.status.label, new=None, message="Deleted"
        )

    def set_owner_data(self, m: Machine, params: Params) -> Machine:
        for name in params.names():
            if name == "op":
                continue
            value = params.get(name) or ""
            if value:
                m.owner_data[name] = value
            else:
                m.owner_data.pop(name, None)
        return m

    def power(self, m: Machine, on: bool) -> Machine:
        m.power_state = "on" if on else "off"
        return m

    def lock(self, m: Machine, locked: bool) -> Machine:
        if locked and m.status != Status.DEPLOYED:
            raise conflict(
                "Machine cannot be locked in its current state "
                f"('{m.status.label}'); only deployed machines can be locked."
            )
        m.locked = locked
        return m

    # --- life cycle -----------------------------------------------------------------------

    def commission(self, m: Machine, params: Params) -> Machine:
        if m.status not in COMMISSIONABLE:
            raise _state_violation(m, "commissioned")
        self._check_unlocked(m)
        self._cancel(m)
        testing = params.split_list("testing_scripts")
        m.skip_testing = testing == ["none"]
        m.previous_status = m.status
        self._set_status(m, Status.COMMISSIONING, "Commissioning: running commissioning scripts")
        self._schedule(m, "commissioning", self.spec.timings.commissioning_s, self._commissioned)
        return m

    def _commissioned(self, m: Machine) -> None:
        if m.hardware is None:
            # No box of the lab has these MACs, so nothing booted: MAAS times out.
            self._set_status(
                m,
                Status.FAILED_COMMISSIONING,
                "Node operation 'Commissioning' timed out: no machine with MAC "
                f"{', '.join(m.macs)} booted (none in the lab spec)",
            )
            return
        self._learn_hardware(m)
        if m.skip_testing:
            self._set_status(m, Status.READY, "Ready")
            return
        self._set_status(m, Status.TESTING, "Testing: running test scripts")
        self._schedule(m, "testing", self.spec.timings.testing_s, self._tested)

    def _tested(self, m: Machine) -> None:
        back = m.previous_status
        if back in (Status.DEPLOYED, Status.BROKEN):
            self._set_status(m, back, back.label)
        else:
            self._set_status(m, Status.READY, "Ready")

    def test(self, m: Machine, params: Params) -> Machine:
        allowed = {Status.READY, Status.FAILED_TESTING, Status.DEPLOYED, Status.BROKEN}
        if m.status not in allowed or not m.commissioned:
            raise _state_violation(m, "tested")
        self._cancel(m)
        m.previous_status = m.status
        self._set_status(m, Status.TESTING, "Testing: running test scripts")
        self._schedule(m, "testing", self.spec.timings.testing_s, self._tested)
        return m

    def accept(self, system_ids: Iterable[str]) -> list[Machine]:
        wanted = list(system_ids)
        unknown = [s for s in wanted if s not in self.machines]
        if unknown:
            raise bad_request("Unknown machine(s): " + ", ".join(unknown) + ".")
        accepted = []
        for system_id in wanted or [m.system_id for m in self.machines.values()]:
            m = self.machines[system_id]
            if m.status == Status.NEW:
                self.commission(m, Params())
                accepted.append(m)
        return accepted

    def allocate(self, params: Params, user: str) -> Machine:
        asked = [c for c in UNSUPPORTED_CONSTRAINTS if params.getlist(c)]
        if asked:
            raise not_implemented("POST machines op=allocate with constraint(s) " + ", ".join(asked))
        constraints: list[tuple[str, list[str]]] = []

        def given(name: str, values: list[str]) -> list[str]:
            if values:
                constraints.append((name, values))
            return values

        names = given("name", [n.split(".", 1)[0] for n in params.getlist("name")])
        system_ids = given("system_id", params.getlist("system_id"))
        arches = given("arch", params.getlist("arch"))
        cpus = given("cpu_count", params.getlist("cpu_count"))
        mems = given("mem", params.getlist("mem"))
        tags = given("tags", params.split_list("tags"))
        not_tags = given("not_tags", params.split_list("not_tags"))
        zones = given("zone", params.getlist("zone"))
        not_zones = given("not_in_zone", params.split_list("not_in_zone"))
        pools = given("pool", params.getlist("pool"))
        not_pools = given("not_in_pool", params.split_list("not_in_pool"))
        min_cpu = _number(cpus[-1], "cpu_count") if cpus else None
        min_mem = _number(mems[-1], "mem") if mems else None
        for tag in tags + not_tags:
            if tag not in self.tags:
                raise invalid("tags", f"No such tag(s): '{tag}'.")
        for zone in zones + not_zones:
            if zone not in self.zones:
                raise invalid("zone", f"No such zone(s): {zone}.")
        candidates = sorted(
            (m for m in self.machines.values() if m.status == Status.READY and m.owner is None and not m.locked),
            key=lambda m: m.hostname,
        )
        for m in candidates:
            if names and m.hostname not in names:
                continue
            if system_ids and m.system_id not in system_ids:
                continue
            if not _arch_matches(arches, m.architecture):
                continue
            if min_cpu is not None and m.cpu_count < min_cpu:
                continue
            if min_mem is not None and m.memory < min_mem:
                continue
            if any(t not in m.tags for t in tags) or any(t in m.tags for t in not_tags):
                continue
            if (zones and m.zone not in zones) or m.zone in not_zones:
                continue
            if (pools and m.pool not in pools) or m.pool in not_pools:
                continue
            if not params.flag("dry_run"):
                m.owner = user
                m.agent_name = params.get("agent_name", "") or ""
                self._set_status(m, Status.ALLOCATED, params.get("comment") or None)
            return m
        if not constraints:
            raise conflict("No machine available.")
        resolved = " ".join(f"{name}={','.join(values)}" for name, values in constraints)
        raise conflict(f'No available machine matches constraints: {constraints!r} (resolved to "{resolved}")')

    def deploy(self, m: Machine, params: Params, user: str) -> Machine:
        self._check_unlocked(m)
        if m.status == Status.READY:
            # MAAS allocates a Ready machine to the caller on deploy.
            m.owner = user
            self._set_status(m, Status.ALLOCATED, None)
        elif m.status not in (Status.ALLOCATED, Status.FAILED_DEPLOYMENT):
            raise _state_violation(m, "deployed")
        series = params.get("distro_series") or self.config["default_distro_series"]
        if series not in self.spec.maas.distro_series:
            raise invalid(
                "distro_series",
                f"'{series}' is not a valid distro_series.  It should be one of: "
                + ", ".join(repr(s) for s in self.spec.maas.distro_series)
                + ".",
            )
        user_data = params.get("user_data")
        if user_data:
            try:
                m.user_data = base64.b64decode(user_data, validate=False)
            except (binascii.Error, ValueError):
                raise invalid("user_data", "user_data must be base64-encoded.") from None
        else:
            m.user_data = None
        m.osystem = "ubuntu"
        m.distro_series = series
        m.hwe_kernel = params.get("hwe_kernel") or HWE_KERNELS.get(series)
        if params.get("agent_name"):
            m.agent_name = params.get("agent_name") or ""
        self._assign_ips(m)
        self._set_status(m, Status.DEPLOYING, "Deploying: installing OS")
        self._schedule(m, "deployment", self.spec.timings.deploy_s, self._installed)
        return m

    def _installed(self, m: Machine) -> None:
        """The OS is on the disk: boot it (a lab host), Deployed once it answers."""
        if self.hosts is None or self.scheduler is None:
            self._deployed(m)
            return
        m.boot_seq += 1
        m.stage = "booting"
        seq, scheduler = m.boot_seq, self.scheduler
        ip = m.interfaces[0].ip if m.interfaces else None
        request = BootRequest(m.system_id, m.hostname, ip or "", m.user_data,
                              tuple(k.key for k in self.ssh_keys), m.hardware)
        self.on_event("host-booting", system_id=m.system_id, hostname=m.hostname, address=ip)

        def done(problem: str | None) -> None:
            scheduler.call_soon_threadsafe(lambda: self._booted(m, seq, problem))

        self.hosts.boot(request, done)

    def _booted(self, m: Machine, seq: int, problem: str | None) -> None:
        if self.machines.get(m.system_id) is not m or m.stage != "booting" or m.boot_seq != seq:
            return  # released, aborted or redeployed meanwhile
        m.stage = None
        if problem:
            self.on_event("host-boot-failed", system_id=m.system_id, hostname=m.hostname, message=problem)
            self._fail(m, "deployment", f"Failed to boot the deployed OS: {problem}")
            return
        self._deployed(m)

    def _deployed(self, m: Machine) -> None:
        self._set_status(m, Status.DEPLOYED, "Deployed")

    def _power_off(self, m: Machine) -> None:
        """The machine's OS goes away (release, abort, delete): its lab host is wiped and its
        addresses are free again."""
        if self.hosts is not None:
            self.hosts.shutdown(m.system_id)
        for i in m.interfaces:
            if i.ip:
                self._used_ips.discard(i.ip)
                i.ip = None

    def release(self, m: Machine, params: Params) -> Machine:
        if m.status in (Status.READY, Status.RELEASING, Status.DISK_ERASING):
            return m  # already (being) released: MAAS treats a retry as success
        if m.status not in RELEASABLE:
            raise _state_violation(m, "released")
        self._check_unlocked(m)
        self._cancel(m)
        self._power_off(m)
        m.erasing = any(params.flag(p) for p in ("erase", "secure_erase", "quick_erase"))
        if m.erasing:
            self._set_status(m, Status.DISK_ERASING, "Erasing disks")
        else:
            self._set_status(m, Status.RELEASING, params.get("comment") or "Releasing")
        self._schedule(m, "releasing", self.spec.timings.release_s, self._released)
        return m

    def _released(self, m: Machine) -> None:
        m.erasing = False
        m.owner = None
        m.owner_data.clear()
        m.agent_name = ""
        m.osystem = ""
        m.distro_series = ""
        m.hwe_kernel = None
        m.user_data = None
        self._set_status(m, Status.READY, "Released")

    def abort(self, m: Machine, params: Params) -> Machine:
        comment = params.get("comment") or None
        if m.status in (Status.COMMISSIONING, Status.TESTING):
            self._cancel(m)
            back = m.previous_status
            self._set_status(m, back, comment or f"Aborted {m.status.label.lower()}")
        elif m.status == Status.DEPLOYING:
            self._cancel(m)
            self._power_off(m)
            self._set_status(m, Status.ALLOCATED, comment or "Aborted deployment")
        elif m.status == Status.DISK_ERASING:
            self._cancel(m)
            m.erasing = False
            self._set_status(m, Status.FAILED_DISK_ERASING, comment or "Aborted disk erasing")
        else:
            raise _state_violation(m, "aborted")
        return m

    def mark_broken(self, m: Machine, params: Params) -> Machine:
        if m.status in (Status.BROKEN, Status.RETIRED):
            raise _state_violation(m, "marked broken")
        self._cancel(m)
        m.previous_status = m.status
        self._set_status(m, Status.BROKEN, params.get("comment") or "Marked broken")
        return m

    def mark_fixed(self, m: Machine, params: Params) -> Machine:
        if m.status != Status.BROKEN:
            raise _state_violation(m, "marked fixed")
        if not m.commissioned:
            raise bad_request("Unable to be marked fixed because it has not been commissioned.")
        if m.owner is not None and m.previous_status == Status.DEPLOYED:
            back = Status.DEPLOYED
        elif m.owner is not None:
            back = Status.ALLOCATED
        else:
            back = Status.READY
        self._set_status(m, back, params.get("comment") or "Marked fixed")
        return m

    # --- tags -----------------------------------------------------------------------------

    def tag(self, name: str) -> Tag:
        try:
            return self.tags[name]
        except KeyError:
            raise not_found("Tag") from None

    def create_tag(self, params: Params) -> Tag:
        name = params.get("name") or ""
        if not name:
            raise invalid("name", "This field is required.")
        if not TAG_NAME_RE.match(name):
            raise invalid("name", "Invalid character in tag name.")
        if name in self.tags:
            raise invalid("name", "Tag with this Name already exists.")
        if params.get("definition"):
            raise not_implemented("POST tags (create) with an XPath definition")
        tag = Tag(name, comment=params.get("comment", "") or "", kernel_opts=params.get("kernel_opts"))
        self.tags[name] = tag
        return tag

    def update_tag(self, tag: Tag, params: Params) -> Tag:
        if params.get("definition"):
            raise not_implemented("PUT tags/{name} with an XPath definition")
        new_name = params.get("name")
        if new_name and new_name != tag.name:
            if not TAG_NAME_RE.match(new_name):
                raise invalid("name", "Invalid character in tag name.")
            if new_name in self.tags:
                raise invalid("name", "Tag with this Name already exists.")
            del self.tags[tag.name]
            for m in self.machines.values():
                m.tags = [new_name if t == tag.name else t for t in m.tags]
            tag.name = new_name
            self.tags[new_name] = tag
        if "comment" in params:
            tag.comment = params.get("comment") or ""
        if "kernel_opts" in params:
            tag.kernel_opts = params.get("kernel_opts")
        return tag

    def delete_tag(self, tag: Tag) -> None:
        del self.tags[tag.name]
        for m in self.machines.values():
            if tag.name in m.tags:
                m.tags.remove(tag.name)

    def update_tag_nodes(self, tag: Tag, params: Params) -> dict[str, int]:
        if tag.definition:
            raise conflict("Tag has a definition: machines cannot be added or removed by hand.")
        add = [self.machines[s] for s in params.getlist("add") if s in self.machines]
        remove = [self.machines[s] for s in params.getlist("remove") if s in self.machines]
        for m in add:
            if tag.name not in m.tags:
                m.tags.append(tag.name)
        for m in remove:
            if tag.name in m.tags:
                m.tags.remove(tag.name)
        # MAAS counts the machines found, not the memberships that changed.
        return {"added": len(add), "removed": len(remove)}

    def tagged(self, tag: Tag) -> list[Machine]:
        return [m for m in self.machines.values() if tag.name in m.tags]

    # --- users, keys, zones, pools --------------------------------------------------------

    def add_ssh_key(self, key: str) -> SshKey:
        text = key.strip()
        parts = text.split()
        if len(parts) < 2 or parts[0] not in KEY_TYPES or not _is_base64(parts[1]):
            raise invalid("key", "Invalid SSH public key.")
        for existing in self.ssh_keys:
            if existing.key.split()[:2] == parts[:2]:
                raise bad_request({"__all__": ["This key has already been added for this user."]})
        self._ids["ssh_key"] += 1
        ssh_key = SshKey(self._ids["ssh_key"], text)
        self.ssh_keys.append(ssh_key)
        return ssh_key

    def ssh_key(self, key_id: str) -> SshKey:
        for k in self.ssh_keys:
            if str(k.id) == key_id:
                return k
        raise not_found("SSHKey")

    def create_token(self) -> ApiKey:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789"

        def word(n: int) -> str:
            return "".join(self._token_rng.choice(alphabet) for _ in range(n))

        key = ApiKey(word(18), word(18), word(32))
        self.keys.append(key)
        return key

    def delete_token(self, token_key: str) -> None:
        before = len(self.keys)
        self.keys = [k for k in self.keys if k.token_key != token_key]
        if len(self.keys) == before:
            raise not_found("Token")

    def create_zone(self, params: Params) -> Zone:
        name = params.get("name") or ""
        if not name:
            raise invalid("name", "This field is required.")
        if name in self.zones:
            raise invalid("name", "Zone with this Name already exists.")
        zone = self._ensure_zone(name)
        zone.description = params.get("description", "") or ""
        return zone

    def zone(self, name: str) -> Zone:
        try:
            return self.zones[name]
        except KeyError:
            raise not_found("Zone") from None

    def pool(self, pool_id: str) -> Pool:
        for p in self.pools.values():
            if str(p.id) == pool_id or p.name == pool_id:
                return p
        raise not_found("ResourcePool")

    def get_config(self, name: str) -> Any:
        if name not in self.config:
            raise invalid("name", f"{name} is not a valid config setting")
        return self.config[name]

    def set_config(self, name: str, value: str) -> None:
        if name not in self.config:
            raise invalid("name", f"{name} is not a valid config setting")
        old = self.config[name]
        if isinstance(old, bool):
            self.config[name] = value.lower() in ("true", "1", "yes", "on")
        else:
            self.config[name] = value

    def unenlisted(self) -> list[str]:
        """Spec hostnames of lab machines powered on but not (yet) known to MAAS."""
        return sorted({hw.hostname for hw in self._pending.values()})

    # --- helpers --------------------------------------------------------------------------

    def _enlist(self, hw: MachineSpec) -> Machine:
        m = Machine(
            system_id=self._new_system_id(hw.macs[0]),
            hostname=hw.hostname,
            architecture=hw.architecture,
            hardware=hw,
            interfaces=[],
            power_type=hw.power_type,
            power_parameters=dict(hw.power_parameters),
            zone=hw.zone,
            pool=hw.pool,
        )
        for mac in hw.macs:
            self._add_interface(m, mac)
        status = Status.parse(hw.status)
        if status != Status.NEW:
            self._learn_hardware(m)
        m.status = status
        m.status_message = status.label
        m.power_state = "on" if status in POWERED_ON else "off"
        if status in (Status.ALLOCATED, Status.DEPLOYING, Status.DEPLOYED, Status.FAILED_DEPLOYMENT, Status.RELEASING):
            m.owner = self.spec.maas.username
        if status in (Status.DEPLOYING, Status.DEPLOYED):
            m.osystem, m.distro_series = "ubuntu", self.spec.maas.default_distro_series
            m.hwe_kernel = HWE_KERNELS.get(m.distro_series)
            self._assign_ips(m)
        for name in hw.tags:
            self.tags.setdefault(name, Tag(name))
            m.tags.append(name)
        self.machines[m.system_id] = m
        # Steps already under way when the lab starts finish on the loop once it runs.
        timed = {
            Status.COMMISSIONING: ("commissioning", self.spec.timings.commissioning_s, self._commissioned),
            Status.TESTING: ("testing", self.spec.timings.testing_s, self._tested),
            Status.DEPLOYING: ("deployment", self.spec.timings.deploy_s, self._deployed),
            Status.RELEASING: ("releasing", self.spec.timings.release_s, self._released),
        }
        if status in timed:
            stage, seconds, done = timed[status]
            m.previous_status = Status.READY if status == Status.TESTING else Status.NEW
            self._schedule(m, stage, seconds, done)
        return m

    def _learn_hardware(self, m: Machine) -> None:
        """What commissioning finds: every NIC and disk of the box, CPU and memory."""
        hw = m.hardware
        if hw is None:
            return
        m.commissioned = True
        for mac in hw.macs:
            if mac not in m.macs:
                self._add_interface(m, mac)
        if not m.disks:
            for disk in hw.storage:
                self._ids["disk"] += 1
                serial = disk.serial or f"BOTLAB{self._ids['disk']:06d}"
                m.disks.append(Disk(self._ids["disk"], disk.name, disk.size_gb * 10**9, disk.model, serial))

    def _add_interface(self, m: Machine, mac: str) -> None:
        self._ids["interface"] += 1
        self._ids["link"] += 1
        m.interfaces.append(Interface(self._ids["interface"], f"eno{len(m.interfaces) + 1}", mac, self._ids["link"]))

    def _assign_ips(self, m: Machine) -> None:
        """Give the boot interface the lowest free address of the lab network."""
        if not m.interfaces or m.interfaces[0].ip:
            return
        net = self.spec.network.network
        start = int(net.network_address) + self.spec.network.first_host_offset
        gateway = self.spec.network.gateway_ip
        for value in range(start, int(net.broadcast_address)):
            ip = str(ipaddress.ip_address(value))
            if ip not in self._used_ips and ip != gateway:
                self._used_ips.add(ip)
                m.interfaces[0].ip = ip
                return
        raise ApiError(503, f"No more IPs available in subnet {self.spec.network.cidr}.")

    def _new_system_id(self, seed_text: str) -> str:
        # Derived from the first MAC, so a machine keeps its system_id from run to run.
        salt = 0
        while True:
            digest = hashlib.sha256(f"{self.spec.timings.seed}:{seed_text}:{salt}".encode())
            number = int.from_bytes(digest.digest()[:8], "big")
            chars = []
            for _ in range(6):
                number, index = divmod(number, len(_ID_ALPHABET))
                chars.append(_ID_ALPHABET[index])
            system_id = "".join(chars)
            if system_id not in self.machines:
                return system_id
            salt += 1

    def _new_hostname(self, requested: str | None, mac: str) -> str:
        if requested:
            name = requested.split(".", 1)[0]
            self._check_hostname(name)
            return name
        # MAAS makes up a pet name; this one is derived from the MAC so it is stable.
        digest = hashlib.sha256(mac.encode()).digest()
        salt = 0
        while True:
            name = (
                f"{_ADJECTIVES[(digest[0] + salt) % len(_ADJECTIVES)]}-"
                f"{_ANIMALS[(digest[1] + salt // len(_ADJECTIVES)) % len(_ANIMALS)]}"
            )
            if self.by_hostname(name) is None:
                return name
            salt += 1

    def _check_hostname(self, name: str) -> None:
        if not HOSTNAME_RE.match(name):
            raise invalid("hostname", f"Invalid hostname: {name!r}.")
        if self.by_hostname(name) is not None:
            raise invalid("hostname", f"Node with hostname '{name}' already exists.")

    def _check_domain(self, domain: str | None) -> None:
        if domain and domain not in (self.spec.maas.domain, "0"):
            raise invalid("domain", f"Select a valid choice. {domain} is not one of the available choices.")

    def _check_unlocked(self, m: Machine) -> None:
        if m.locked:
            raise conflict(f"Machine {m.hostname} is locked; unlock it first.")

    def _architecture(self, raw: str | None) -> str:
        arch = raw or "amd64/generic"
        if "/" not in arch:
            arch += "/generic"
        if arch not in ARCHITECTURES:
            raise invalid(
                "architecture",
                f"'{raw}' is not a valid architecture.  It should be one of: "
                + ", ".join(f"'{a}'" for a in ARCHITECTURES)
                + ".",
            )
        return arch

    def _zone_name(self, name: str) -> str:
        if name not in self.zones:
            raise invalid("zone", f"Select a valid choice. {name} is not one of the available choices.")
        return name

    def _pool_name(self, name: str) -> str:
        if name not in self.pools:
            raise invalid("pool", f"Select a valid choice. {name} is not one of the available choices.")
        return name

    def _ensure_zone(self, name: str) -> Zone:
        if name not in self.zones:
            self._ids["zone"] += 1
            self.zones[name] = Zone(self._ids["zone"], name)
        return self.zones[name]

    def _ensure_pool(self, name: str) -> Pool:
        if name not in self.pools:
            self._ids["pool"] += 1
            self.pools[name] = Pool(self._ids["pool"], name)
        return self.pools[name]


_STAGE_TITLES = {
    "commissioning": "Commissioning",
    "testing": "Testing",
    "deployment": "Deployment",
    "releasing": "Releasing",
}


def _state_violation(m: Machine, verb: str) -> ApiError:
    return conflict(f"Machine {m.hostname} cannot be {verb} in its current state ('{m.status.label}').")


def _matches(wanted: list[str], value: str) -> bool:
    return not wanted or value in wanted


def _arch_matches(wanted: list[str], arch: str) -> bool:
    """MAAS matches "amd64" against "amd64/generic" and so on."""
    return not wanted or any(w == arch or arch.startswith(w + "/") for w in wanted)


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise invalid(name, f"Invalid number: {text}") from None


def _int_param(params: Params, name: str) -> int:
    text = params.get(name) or ""
    try:
        return int(text)
    except ValueError:
        raise invalid(name, "Enter a whole number.") from None


def _power_parameters(params: Params) -> dict[str, str]:
    """power_parameters as a JSON object, or power_parameters_<name> fields, as MAAS takes."""
    out: dict[str, str] = {}
    raw = params.get("power_parameters")
    if raw and not raw.isspace():
        try:
            data = json.loads(raw)
        except ValueError:
            raise bad_request("Failed to parse JSON power_parameters") from None
        if not isinstance(data, dict):
            raise bad_request("Failed to parse JSON power_parameters")
        out.update({str(k): str(v) for k, v in data.items()})
    for name in params.names():
        if name.startswith("power_parameters_") and name != "power_parameters_skip_check":
            out[name[len("power_parameters_") :]] = params.get(name) or ""
    return out


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
