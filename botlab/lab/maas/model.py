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

from botlab.lab.maas import constraints
from botlab.lab.maas.errors import (
    ApiError,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
    not_implemented,
)
from botlab.lab.maas.faults import FaultBook
from botlab.lab.maas.forms import Params
from botlab.lab.maas.hostbackend import BootRequest, HostBackend
from botlab.lab.maas.oauth import ApiKey
from botlab.lab.maas.status import (
    COMMISSIONABLE,
    POWERED_ON,
    RELEASABLE,
    TESTABLE,
    TESTING_RESETS_TO_READY,
    Status,
)
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
# The kernels the lab's synced Ubuntu images offer per series (amd64/generic), first the one
# MAAS picks when none is asked for: the GA kernel, the HWE kernel and its edge flavour, as
# the stable image streams carry them (noble's first HWE kernel came after MAAS 3.4).
KERNELS = {
    "focal": ("ga-20.04", "hwe-20.04", "hwe-20.04-edge"),
    "jammy": ("ga-22.04", "hwe-22.04", "hwe-22.04-edge"),
    "noble": ("ga-24.04",),
}
HWE_KERNELS = {series: kernels[0] for series, kernels in KERNELS.items()}
TAG_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")  # Tag._tag_name_regex
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
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
    # Deploy options MAAS records on the machine (install_kvm and register_vmhost are not shown
    # in its JSON; ephemeral_deploy and enable_hw_sync are).
    testing_after_commissioning: bool = False  # the tests commissioning runs (previous: Commissioning)
    install_kvm: bool = False
    register_vmhost: bool = False
    ephemeral_deploy: bool = False
    enable_hw_sync: bool = False
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
    def cpu_speed(self) -> int:
        """MHz, as commissioning reads it (the lab's CPUs all run at 2 GHz)."""
        return 2000 if self.commissioned else 0

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
        """`GET machines/` through ReadNodesForm: unknown filters are a 400."""
        wanted = constraints.clean(self, params, constraints.READ_FIELDS)
        return [m for m in self.machines.values() if constraints.matches(self, m, wanted)]

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

    def set_owner_data(self, m: Machine, params: Params, user: str) -> Machine:
        """set_workload_annotations (api/nodes.py): only on a machine the caller owns."""
        if m.owner != user:
            raise conflict("Cannot set workload annotation: it hasn't been acquired.")
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
        """power_on (PowerMixin, api/nodes.py) refuses a machine nobody has allocated."""
        if on and m.owner is None:
            raise conflict("Can't start node: it hasn't been allocated.")
        m.power_state = "on" if on else "off"
        return m

    def lock(self, m: Machine, locked: bool) -> Machine:
        """MachineHandler.lock/unlock (api/machines.py) and Node.lock (models/node.py)."""
        if locked:
            if m.locked:
                raise conflict("Machine is already locked")
            if m.status not in (Status.DEPLOYED, Status.DEPLOYING):
                raise conflict("Can't lock, node is not deployed or deploying")
        elif not m.locked:
            raise conflict("Machine is not locked")
        m.locked = locked
        return m

    # --- life cycle -----------------------------------------------------------------------

    def commission(self, m: Machine, params: Params) -> Machine:
        """CommissionForm (forms/ephemeral.py): only where Commission.actionable_statuses allow
        (node_action.py), else a form error for the whole form."""
        if m.status not in COMMISSIONABLE or m.locked:
            raise _not_available("Commission")
        self._cancel(m)
        m.testing_after_commissioning = False
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
        m.testing_after_commissioning = True
        self._set_status(m, Status.TESTING, "Testing: running test scripts")
        self._schedule(m, "testing", self.spec.timings.testing_s, self._tested)

    def _tested(self, m: Machine) -> None:
        """Where passed tests leave a machine (metadataserver/api.py, _process_testing)."""
        back = Status.COMMISSIONING if m.testing_after_commissioning else m.previous_status
        m.testing_after_commissioning = False
        if back in TESTING_RESETS_TO_READY:
            back = Status.READY
        elif back == Status.FAILED_COMMISSIONING:
            back = Status.NEW
        self._set_status(m, back, back.label)

    def test(self, m: Machine, params: Params) -> Machine:
        """TestForm (forms/ephemeral.py) where Test.actionable_statuses allow (node_action.py)."""
        if m.status not in TESTABLE or m.locked:
            raise _not_available("Test")
        if not m.commissioned:
            raise not_implemented("POST machines/{system_id}/ op=test on a machine never commissioned")
        self._cancel(m)
        m.previous_status = m.status
        m.testing_after_commissioning = False
        self._set_status(m, Status.TESTING, "Testing: running test scripts")
        self._schedule(m, "testing", self.spec.timings.testing_s, self._tested)
        return m

    def override_failed_testing(self, m: Machine, params: Params) -> Machine:
        """Node.override_failed_testing (models/node.py): Failed testing to Ready (or Deployed,
        if an OS is on it)."""
        if m.status != Status.FAILED_TESTING:
            raise conflict("Unable to override node status. Node is not in 'Failed testing' status.")
        back = Status.DEPLOYED if m.osystem else Status.READY
        self._set_status(m, back, params.get("comment") or f"Failed testing overridden: {back.label}")
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
        """`POST machines/?op=allocate` through AcquireNodeForm: the cheapest Ready machine
        nobody owns that matches (reorder_nodes_by_cost; ties in creation order)."""
        wanted = constraints.clean(self, params, constraints.ACQUIRE_FIELDS)
        available = [m for m in self.machines.values() if m.status == Status.READY and m.owner is None]
        found = [m for m in available if constraints.matches(self, m, wanted)]
        if found:
            m = min(found, key=constraints.cost)  # min() keeps the first of equal costs
            if not params.flag("dry_run"):
                m.owner = user
                m.agent_name = params.get("agent_name", "") or ""
                self._set_status(m, Status.ALLOCATED, params.get("comment") or None)
            return m
        described = wanted.describe()
        system_id = params.get("system_id")
        if described == "":
            raise conflict("No machine available.")
        if system_id is not None:
            raise conflict(f"No machine with system ID {system_id} available.")
        asked = [(name, params.getlist(name)) for name in params.names() if name != "op"]
        raise conflict(f'No available machine matches constraints: {asked!s} (resolved to "{described}")')

    def deploy(self, m: Machine, params: Params, user: str) -> Machine:
        """MachineHandler.deploy (api/machines.py): options first, a Ready machine is acquired,
        then only a machine whose next status may be Deploying (NODE_TRANSITIONS) deploys;
        the machine form checks series and kernel; then power_on."""
        install_kvm = _bool_option(params, "install_kvm")
        register_vmhost = _bool_option(params, "register_vmhost")
        ephemeral = _bool_option(params, "ephemeral_deploy")
        hw_sync = _bool_option(params, "enable_hw_sync")
        if (install_kvm or register_vmhost) and m.ephemeral_deploy:
            raise bad_request("Cannot deploy as a VM host for ephemeral deployments.")
        if m.status == Status.READY:
            if m.owner is not None and m.owner != user:
                raise conflict("Can't allocate a machine belonging to another user.")
            m.owner = user
            m.agent_name = params.get("agent_name", "") or ""
            self._set_status(m, Status.ALLOCATED, params.get("comment") or None)
        if m.status != Status.ALLOCATED:
            raise conflict(f"Can't deploy a machine that is in the '{m.status.label}' state")
        series = params.get("distro_series") or self.config["default_distro_series"]
        if series not in self.spec.maas.distro_series:
            raise invalid(
                "distro_series",
                f"'{series}' is not a valid distro_series.  It should be one of: "
                + ", ".join(repr(s) for s in self.spec.maas.distro_series)
                + ".",
            )
        kernel = self._working_kernel(m, series, params.get("hwe_kernel"))
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
        m.hwe_kernel = kernel
        m.install_kvm, m.register_vmhost = install_kvm, register_vmhost
        m.ephemeral_deploy, m.enable_hw_sync = ephemeral, hw_sync
        if params.get("agent_name"):
            m.agent_name = params.get("agent_name") or ""
        self._assign_ips(m)
        self._set_status(m, Status.DEPLOYING, "Deploying: installing OS")
        self._schedule(m, "deployment", self.spec.timings.deploy_s, self._installed)
        return m

    def _working_kernel(self, m: Machine, series: str, requested: str | None) -> str | None:
        """get_working_kernel (src/maasserver/utils/osystems.py) for an Ubuntu deploy: a named
        GA/HWE kernel must be one the series' images carry, else MAAS picks the first."""
        available = KERNELS.get(series, ())
        if requested and ("hwe" in requested.split("-") or "ga" in requested.split("-")):
            if requested not in available:
                raise invalid("hwe_kernel", f"{requested} is not available for ubuntu/{series} on {m.architecture}.")
            return requested
        if not available:
            raise invalid("hwe_kernel", f"{series} has no kernels available.")
        return available[0]

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
        """MachineHandler.release (api/machines.py): Ready or Releasing is a success already."""
        if m.status in (Status.READY, Status.RELEASING):
            return m
        if m.status not in RELEASABLE:
            raise conflict(f"Machine cannot be released in its current state ('{m.status.label}').")
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
        m.install_kvm = m.register_vmhost = m.ephemeral_deploy = m.enable_hw_sync = False
        self._set_status(m, Status.READY, "Released")

    def abort(self, m: Machine, params: Params) -> Machine:
        """Node.abort_operation (models/node.py): commissioning goes back to New, testing to
        where it started, deploying to Allocated, disk erasing to Failed disk erasing."""
        comment = params.get("comment") or None
        if m.status == Status.COMMISSIONING:
            self._cancel(m)
            self._set_status(m, Status.NEW, comment or "Aborted commissioning")
        elif m.status == Status.TESTING:
            self._cancel(m)
            back = m.previous_status
            m.testing_after_commissioning = False
            self._set_status(m, back, comment or "Aborted testing")
        elif m.status == Status.DEPLOYING:
            self._cancel(m)
            self._power_off(m)
            self._set_status(m, Status.ALLOCATED, comment or "Aborted deployment")
        elif m.status == Status.DISK_ERASING:
            self._cancel(m)
            m.erasing = False
            self._set_status(m, Status.FAILED_DISK_ERASING, comment or "Aborted disk erasing")
        else:
            raise conflict(f"Cannot abort in current state: node {m.system_id} is in state {m.status.label}.")
        return m

    def mark_broken(self, m: Machine, params: Params, user: str) -> Machine:
        """MachineHandler.mark_broken (api/machines.py): only the machine's owner may (403
        otherwise, even for an admin); Node.mark_broken releases it first and drops the owner."""
        if m.owner != user:
            raise forbidden("")
        self._cancel(m)
        if m.status in RELEASABLE:
            self._power_off(m)
        m.previous_status = m.status
        m.owner = None
        m.owner_data.clear()
        comment = params.get("comment") or params.get("error_description")
        self._set_status(m, Status.BROKEN, comment or "Marked broken")
        return m

    def mark_fixed(self, m: Machine, params: Params) -> Machine:
        """Node.mark_fixed (models/node.py): Broken to Ready (Deployed if it was deployed)."""
        if m.status != Status.BROKEN:
            raise conflict("Can't mark a non-broken node as 'Ready'.")
        back = Status.DEPLOYED if m.previous_status == Status.DEPLOYED else Status.READY
        m.osystem, m.distro_series, m.hwe_kernel = "", "", None
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
            raise invalid("name", "Enter a valid value.")
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
                raise invalid("name", "Enter a valid value.")
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
        definition = params.get("definition")
        if definition is not None and definition != tag.definition:
            # TagHandler.update_nodes (api/tags.py): a plain-text 409.
            raise conflict(f"Definition supplied '{definition}' doesn't match current definition '{tag.definition}'")
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


def _not_available(action: str) -> ApiError:
    """The form-wide error of CommissionForm/TestForm (forms/ephemeral.py)."""
    return bad_request({"__all__": [f"{action} is not available because of the current state of the node."]})


def _bool_option(params: Params, name: str) -> bool:
    """A deploy option read with get_optional_param(..., validator=StringBool)."""
    value = params.get(name)
    if value is None:
        return False
    text = value.strip().lower()
    if text in ("true", "yes", "on", "1", "y", "t"):
        return True
    if text in ("false", "no", "off", "0", "n", "f", ""):
        return False
    raise not_implemented(f"a deploy option {name}={value!r} that is not a boolean")


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
