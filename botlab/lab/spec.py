"""The lab spec: the machines, timings, network and faults every virtual-lab emulator reads,
loaded from YAML (or a dict) with `load_spec`, or made up with `generate_spec`."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

DEFAULT_API_KEY = "botlab:labtoken:labsecret"
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Names MAAS itself shows; the spec accepts them case-insensitively, with `_` for spaces.
STATUS_NAMES = (
    "New",
    "Commissioning",
    "Failed commissioning",
    "Missing",
    "Ready",
    "Reserved",
    "Deployed",
    "Retired",
    "Broken",
    "Deploying",
    "Allocated",
    "Failed deployment",
    "Releasing",
    "Releasing failed",
    "Disk erasing",
    "Failed disk erasing",
    "Rescue mode",
    "Entering rescue mode",
    "Failed to enter rescue mode",
    "Exiting rescue mode",
    "Failed to exit rescue mode",
    "Testing",
    "Failed testing",
)
FAULT_KINDS = ("fail", "unavailable", "slow")
FAULT_STAGES = ("commissioning", "testing", "deployment", "releasing")


class SpecError(ValueError):
    """The lab spec is malformed; the message lists every problem, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid lab spec:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True)
class GpuSpec:
    """GPUs in one machine: all of one model, as real lab nodes are."""

    count: int = 0
    model: str = "NVIDIA A100-SXM4-80GB"
    vendor: str = "NVIDIA Corporation"
    driver_version: str = "535.183.01"  # what nvidia-smi on the lab host reports
    toolkit: bool = False  # the NVIDIA container toolkit is already installed on the host


def gpu_pci_address(index: int) -> str:
    """The PCI address (domain:bus:device.function) of a machine's `index`-th GPU: what MAAS's
    commissioning data (lshw) and the lab host's lspci and nvidia-smi all show for it.
    Fifteen per PCI domain, on buses 0x17, 0x27 ... 0xf7."""
    domain, slot = divmod(index, 15)
    return f"{domain:04x}:{0x17 + slot * 0x10:02x}:00.0"


@dataclass(frozen=True)
class DiskSpec:
    """One physical disk."""

    name: str
    size_gb: int
    model: str = "SAMSUNG MZ7LH960"
    serial: str = ""


@dataclass(frozen=True)
class MachineSpec:
    """One bare-metal machine of the lab, as its hardware really is."""

    hostname: str
    macs: tuple[str, ...]
    architecture: str = "amd64/generic"
    cores: int = 16
    memory_mib: int = 65536
    cpu_model: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    gpus: GpuSpec = field(default_factory=GpuSpec)
    storage: tuple[DiskSpec, ...] = (DiskSpec("sda", 480),)
    power_type: str = "ipmi"
    power_parameters: Mapping[str, str] = field(default_factory=dict)
    # True: MAAS already knows the machine (in `status`). False: it is powered on and
    # PXE-booting, and MAAS lists it only once a client creates a machine with one of its MACs.
    enlisted: bool = True
    status: str = "Ready"
    zone: str = "default"
    pool: str = "default"
    tags: tuple[str, ...] = ()
    system_vendor: str = "Supermicro"
    system_product: str = "SYS-420GP-TNR"
    # Free-form settings for other emulators (e.g. SSH host keys); MAAS ignores them.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timings:
    """How long life-cycle steps take, in seconds, with seeded jitter (a fraction, e.g. 0.2)."""

    commissioning_s: float = 2.0
    testing_s: float = 1.0
    deploy_s: float = 5.0
    release_s: float = 1.0
    jitter: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class NetworkSpec:
    """The provisioning network. Addresses are only data: nothing ever connects to them."""

    cidr: str = "10.77.0.0/16"
    gateway: str | None = None  # None: the first host address
    first_host_offset: int = 10  # deployed machines get addresses from here on

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr, strict=False)

    @property
    def gateway_ip(self) -> str:
        return self.gateway or str(next(self.network.hosts()))


@dataclass(frozen=True)
class FaultSpec:
    """A fault to inject, from the spec or at run time through an emulator's control API.

    kind "fail": machines fail `stage` (for the next `count` attempts; None: always).
    kind "unavailable": the next `count` matching requests answer `status` (503).
    kind "slow": the next `count` matching requests are delayed by `delay_s`.
    `machines` names hostnames; `fraction` picks that share of the spec's machines (seeded);
    neither means every machine. `path` (substring of the API path), `op` and `method` narrow
    which requests match. `service` says which emulator the fault is for.
    """

    kind: str
    service: str = "maas"
    stage: str | None = None
    machines: tuple[str, ...] = ()
    fraction: float | None = None
    count: int | None = 1
    message: str | None = None
    status: int = 503
    delay_s: float = 0.0
    path: str | None = None
    op: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class MaasSpec:
    """Settings of the emulated MAAS region."""

    api_key: str = DEFAULT_API_KEY  # consumer_key:token_key:token_secret
    extra_api_keys: tuple[str, ...] = ()
    username: str = "admin"
    email: str = "admin@botlab.invalid"
    ssh_keys: tuple[str, ...] = ()
    domain: str = "maas"
    version: str = "3.4.2"
    distro_series: tuple[str, ...] = ("focal", "jammy", "noble")
    default_distro_series: str = "jammy"


@dataclass(frozen=True)
class LabSpec:
    """The whole lab. Unknown top-level sections are kept in `extra` for other emulators."""

    machines: tuple[MachineSpec, ...] = ()
    timings: Timings = field(default_factory=Timings)
    network: NetworkSpec = field(default_factory=NetworkSpec)
    maas: MaasSpec = field(default_factory=MaasSpec)
    faults: tuple[FaultSpec, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def machine(self, hostname: str) -> MachineSpec:
        for m in self.machines:
            if m.hostname == hostname:
                return m
        raise KeyError(hostname)


def canonical_status(name: str) -> str | None:
    """The MAAS status name matching `name` (any case, `_` for spaces), or None."""
    wanted = name.strip().lower().replace("_", " ")
    for known in STATUS_NAMES:
        if known.lower() == wanted:
            return known
    return None


def load_spec(source: str | Path | Mapping[str, Any]) -> LabSpec:
    """Load a spec from a YAML file path or an already-parsed mapping; raise SpecError."""
    if isinstance(source, Mapping):
        data: Any = source
    else:
        text = Path(source).read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
    if not isinstance(data, Mapping):
        raise SpecError(["top level: must be a mapping"])
    return _Loader().lab(data)


def dump_spec(spec: LabSpec) -> dict[str, Any]:
    """The spec as plain data that `load_spec` reads back to an equal spec."""
    t, n, m = spec.timings, spec.network, spec.maas
    out: dict[str, Any] = {
        "maas": {
            "api_key": m.api_key,
            "extra_api_keys": list(m.extra_api_keys),
            "username": m.username,
            "email": m.email,
            "ssh_keys": list(m.ssh_keys),
            "domain": m.domain,
            "version": m.version,
            "distro_series": list(m.distro_series),
            "default_distro_series": m.default_distro_series,
        },
        "timings": {
            "commissioning_s": t.commissioning_s,
            "testing_s": t.testing_s,
            "deploy_s": t.deploy_s,
            "release_s": t.release_s,
            "jitter": t.jitter,
            "seed": t.seed,
        },
        "network": {"cidr": n.cidr, "gateway": n.gateway, "first_host_offset": n.first_host_offset},
        "machines": [_dump_machine(x) for x in spec.machines],
        "faults": [dump_fault(f) for f in spec.faults],
    }
    out.update(spec.extra)
    return out


def _dump_machine(m: MachineSpec) -> dict[str, Any]:
    return {
        "hostname": m.hostname,
        "macs": list(m.macs),
        "architecture": m.architecture,
        "cores": m.cores,
        "memory_mib": m.memory_mib,
        "cpu_model": m.cpu_model,
        "gpus": {"count": m.gpus.count, "model": m.gpus.model, "vendor": m.gpus.vendor,
                 "driver_version": m.gpus.driver_version, "toolkit": m.gpus.toolkit},
        "storage": [{"name": d.name, "size_gb": d.size_gb, "model": d.model, "serial": d.serial} for d in m.storage],
        "power_type": m.power_type,
        "power_parameters": dict(m.power_parameters),
        "enlisted": m.enlisted,
        "status": m.status,
        "zone": m.zone,
        "pool": m.pool,
        "tags": list(m.tags),
        "system_vendor": m.system_vendor,
        "system_product": m.system_product,
        "extra": dict(m.extra),
    }


def dump_fault(f: FaultSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": f.kind, "service": f.service, "count": f.count}
    optional = {
        "stage": f.stage,
        "machines": list(f.machines) or None,
        "fraction": f.fraction,
        "message": f.message,
        "path": f.path,
        "op": f.op,
        "method": f.method,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    if f.kind == "unavailable":
        out["status"] = f.status
    if f.kind == "slow":
        out["delay_s"] = f.delay_s
    return out


def load_fault(data: Mapping[str, Any]) -> FaultSpec:
    """Parse one fault (as given in the spec's `faults` list or to a control API)."""
    loader = _Loader()
    fault = loader.fault(loader.mapping(data, "fault"), "fault")
    loader.raise_if_problems()
    if fault is None:  # unreachable: a None fault always records a problem
        raise SpecError(["fault: invalid"])
    return fault


def generate_spec(
    machines: int,
    gpus: int = 0,
    *,
    gpus_per_machine: int = 8,
    gpu_model: str = "NVIDIA A100-SXM4-80GB",
    unenlisted: int | None = None,
    timings: Timings | None = None,
    seed: int = 0,
) -> LabSpec:
    """A lab of `machines` nodes named node-01.., the last `gpus` of them with GPUs.

    The last `unenlisted` machines (default: half, rounded down) are not yet known to MAAS,
    so a run has to add them by MAC; the others are enlisted and Ready.
    """
    if machines < 0 or gpus < 0 or gpus > machines:
        raise ValueError("need 0 <= gpus <= machines")
    pending = machines // 2 if unenlisted is None else unenlisted
    if not 0 <= pending <= machines:
        raise ValueError("need 0 <= unenlisted <= machines")
    width = max(2, len(str(machines)))
    out: list[MachineSpec] = []
    for i in range(1, machines + 1):
        has_gpus = i > machines - gpus
        hi, lo = divmod(i, 256)
        out.append(
            MachineSpec(
                hostname=f"node-{i:0{width}d}",
                macs=(f"52:54:00:00:{hi:02x}:{lo:02x}", f"52:54:00:01:{hi:02x}:{lo:02x}"),
                cores=64 if has_gpus else 32,
                memory_mib=(512 if has_gpus else 128) * 1024,
                cpu_model=(
                    "AMD EPYC 7763 64-Core Processor" if has_gpus else "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
                ),
                gpus=GpuSpec(count=gpus_per_machine, model=gpu_model) if has_gpus else GpuSpec(),
                storage=(
                    DiskSpec("sda", 960, serial=f"S4{i:06d}A"),
                    DiskSpec("nvme0n1", 3840, model="SAMSUNG MZQL23T8HCLS", serial=f"S6{i:06d}N"),
                ),
                power_type="ipmi",
                power_parameters={
                    "power_address": f"10.78.{hi}.{lo}",
                    "power_user": "botlab",
                    "power_pass": "botlab",
                },
                enlisted=i <= machines - pending,
                system_product="AS-4124GO-NART" if has_gpus else "SYS-120U-TNR",
            )
        )
    return LabSpec(machines=tuple(out), timings=timings or Timings(seed=seed))


def with_faults(spec: LabSpec, *faults: FaultSpec) -> LabSpec:
    """A copy of `spec` with `faults` added."""
    return replace(spec, faults=spec.faults + faults)


class _Loader:
    """Validates raw data section by section, collecting every problem before failing."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def raise_if_problems(self) -> None:
        if self.problems:
            raise SpecError(self.problems)

    def lab(self, data: Mapping[str, Any]) -> LabSpec:
        known = {"machines", "timings", "network", "maas", "faults"}
        timings = self.timings(self.mapping(data.get("timings", {}), "timings"))
        network = self.network(self.mapping(data.get("network", {}), "network"))
        maas = self.maas(self.mapping(data.get("maas", {}), "maas"))
        raw_machines = self.sequence(data.get("machines", []), "machines")
        machines = [
            self.machine(self.mapping(m, f"machines[{i}]"), f"machines[{i}]") for i, m in enumerate(raw_machines)
        ]
        raw_faults = self.sequence(data.get("faults", []), "faults")
        faults = [self.fault(self.mapping(f, f"faults[{i}]"), f"faults[{i}]") for i, f in enumerate(raw_faults)]
        self.check_unique(machines)
        self.raise_if_problems()
        return LabSpec(
            machines=tuple(m for m in machines if m is not None),
            timings=timings,
            network=network,
            maas=maas,
            faults=tuple(f for f in faults if f is not None),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def check_unique(self, machines: Sequence[MachineSpec | None]) -> None:
        hostnames: set[str] = set()
        macs: dict[str, str] = {}
        for m in machines:
            if m is None:
                continue
            if m.hostname in hostnames:
                self.problems.append(f"machines: hostname {m.hostname!r} appears twice")
            hostnames.add(m.hostname)
            for mac in m.macs:
                if mac in macs:
                    self.problems.append(f"machines: MAC {mac} belongs to both {macs[mac]} and {m.hostname}")
                macs[mac] = m.hostname

    # --- sections -------------------------------------------------------------------------

    def timings(self, d: Mapping[str, Any]) -> Timings:
        self.only(d, "timings", Timings.__dataclass_fields__)
        base = Timings()
        return Timings(
            commissioning_s=self.seconds(d, "commissioning_s", base.commissioning_s, "timings"),
            testing_s=self.seconds(d, "testing_s", base.testing_s, "timings"),
            deploy_s=self.seconds(d, "deploy_s", base.deploy_s, "timings"),
            release_s=self.seconds(d, "release_s", base.release_s, "timings"),
            jitter=self.fraction_value(d.get("jitter", base.jitter), "timings.jitter"),
            seed=self.integer(d.get("seed", base.seed), "timings.seed", minimum=None),
        )

    def network(self, d: Mapping[str, Any]) -> NetworkSpec:
        self.only(d, "network", NetworkSpec.__dataclass_fields__)
        cidr = self.string(d.get("cidr", NetworkSpec.cidr), "network.cidr")
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            self.problems.append(f"network.cidr: {exc}")
            return NetworkSpec()
        gateway = d.get("gateway")
        if gateway is not None:
            try:
                if ipaddress.ip_address(str(gateway)) not in net:
                    self.problems.append(f"network.gateway: {gateway} is not in {cidr}")
            except ValueError as exc:
                self.problems.append(f"network.gateway: {exc}")
        offset = self.integer(d.get("first_host_offset", 10), "network.first_host_offset")
        return NetworkSpec(cidr=cidr, gateway=None if gateway is None else str(gateway), first_host_offset=offset)

    def maas(self, d: Mapping[str, Any]) -> MaasSpec:
        self.only(d, "maas", MaasSpec.__dataclass_fields__)
        base = MaasSpec()
        api_key = self.api_key(d.get("api_key", base.api_key), "maas.api_key")
        extra = tuple(
            self.api_key(k, f"maas.extra_api_keys[{i}]")
            for i, k in enumerate(self.sequence(d.get("extra_api_keys", []), "maas.extra_api_keys"))
        )
        series = tuple(
            str(s) for s in self.sequence(d.get("distro_series", list(base.distro_series)), "maas.distro_series")
        )
        default_series = str(d.get("default_distro_series", base.default_distro_series))
        if default_series not in series:
            self.problems.append(f"maas.default_distro_series: {default_series!r} is not in maas.distro_series")
        return MaasSpec(
            api_key=api_key,
            extra_api_keys=extra,
            username=self.string(d.get("username", base.username), "maas.username"),
            email=self.string(d.get("email", base.email), "maas.email"),
            ssh_keys=tuple(str(k) for k in self.sequence(d.get("ssh_keys", []), "maas.ssh_keys")),
            domain=self.string(d.get("domain", base.domain), "maas.domain"),
            version=self.string(d.get("version", base.version), "maas.version"),
            distro_series=series,
            default_distro_series=default_series,
        )

    def machine(self, d: Mapping[str, Any], where: str) -> MachineSpec | None:
        if not d:
            self.problems.append(f"{where}: a machine needs at least a hostname and macs")
            return None
        self.only(d, where, MachineSpec.__dataclass_fields__)
        base_problems = len(self.problems)
        hostname = self.string(d.get("hostname"), f"{where}.hostname")
        if hostname and not HOSTNAME_RE.match(hostname):
            self.problems.append(f"{where}.hostname: {hostname!r} is not a valid hostname")
        macs = tuple(str(x).lower() for x in self.sequence(d.get("macs"), f"{where}.macs"))
        if not macs:
            self.problems.append(f"{where}.macs: at least one MAC address is needed")
        for mac in macs:
            if not MAC_RE.match(mac):
                self.problems.append(f"{where}.macs: {mac!r} is not a MAC address")
        base = MachineSpec(hostname="x", macs=())
        status = canonical_status(str(d.get("status", base.status)))
        if status is None:
            self.problems.append(f"{where}.status: {d.get('status')!r} is not a MAAS status")
        enlisted = self.boolean(d.get("enlisted", True), f"{where}.enlisted")
        params = self.mapping(d.get("power_parameters", {}), f"{where}.power_parameters")
        spec = MachineSpec(
            hostname=hostname,
            macs=macs,
            architecture=self.string(d.get("architecture", base.architecture), f"{where}.architecture"),
            cores=self.integer(d.get("cores", base.cores), f"{where}.cores", minimum=1),
            memory_mib=self.integer(d.get("memory_mib", base.memory_mib), f"{where}.memory_mib", minimum=1),
            cpu_model=self.string(d.get("cpu_model", base.cpu_model), f"{where}.cpu_model"),
            gpus=self.gpus(d.get("gpus", 0), f"{where}.gpus"),
            storage=self.storage(d.get("storage", None), f"{where}.storage"),
            power_type=self.string(d.get("power_type", base.power_type), f"{where}.power_type"),
            power_parameters={str(k): str(v) for k, v in params.items()},
            enlisted=enlisted,
            status=status or "Ready",
            zone=self.string(d.get("zone", base.zone), f"{where}.zone"),
            pool=self.string(d.get("pool", base.pool), f"{where}.pool"),
            tags=tuple(str(t) for t in self.sequence(d.get("tags", []), f"{where}.tags")),
            system_vendor=self.string(d.get("system_vendor", base.system_vendor), f"{where}.system_vendor"),
            system_product=self.string(d.get("system_product", base.system_product), f"{where}.system_product"),
            extra=dict(self.mapping(d.get("extra", {}), f"{where}.extra")),
        )
        return spec if len(self.problems) == base_problems else None

    def gpus(self, raw: Any, where: str) -> GpuSpec:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return GpuSpec(count=self.integer(raw, where))
        d = self.mapping(raw, where)
        self.only(d, where, GpuSpec.__dataclass_fields__)
        base = GpuSpec()
        return GpuSpec(
            count=self.integer(d.get("count", 0), f"{where}.count"),
            model=self.string(d.get("model", base.model), f"{where}.model"),
            vendor=self.string(d.get("vendor", base.vendor), f"{where}.vendor"),
            driver_version=self.string(d.get("driver_version", base.driver_version), f"{where}.driver_version"),
            toolkit=self.boolean(d.get("toolkit", base.toolkit), f"{where}.toolkit"),
        )

    def storage(self, raw: Any, where: str) -> tuple[DiskSpec, ...]:
        if raw is None:
            return MachineSpec.storage
        if isinstance(raw, int) and not isinstance(raw, bool):
            return (DiskSpec("sda", self.integer(raw, where, minimum=1)),)
        disks: list[DiskSpec] = []
        for i, item in enumerate(self.sequence(raw, where)):
            here = f"{where}[{i}]"
            if isinstance(item, int) and not isinstance(item, bool):
                disks.append(DiskSpec(_disk_name(i), self.integer(item, here, minimum=1)))
                continue
            d = self.mapping(item, here)
            self.only(d, here, DiskSpec.__dataclass_fields__)
            disks.append(
                DiskSpec(
                    name=self.string(d.get("name", _disk_name(i)), f"{here}.name"),
                    size_gb=self.integer(d.get("size_gb"), f"{here}.size_gb", minimum=1),
                    model=self.string(d.get("model", DiskSpec.model), f"{here}.model"),
                    serial=str(d.get("serial", "")),
                )
            )
        return tuple(disks)

    def fault(self, d: Mapping[str, Any], where: str) -> FaultSpec | None:
        if not d:
            self.problems.append(f"{where}: a fault needs at least a kind")
            return None
        self.only(d, where, FaultSpec.__dataclass_fields__)
        before = len(self.problems)
        kind = str(d.get("kind", ""))
        if kind not in FAULT_KINDS:
            self.problems.append(f"{where}.kind: must be one of {', '.join(FAULT_KINDS)}")
        stage = d.get("stage")
        if kind == "fail" and stage not in FAULT_STAGES:
            self.problems.append(f"{where}.stage: must be one of {', '.join(FAULT_STAGES)}")
        if kind != "fail" and stage is not None:
            self.problems.append(f"{where}.stage: only a 'fail' fault has a stage")
        raw_count = d.get("count", 1)
        count: int | None
        if raw_count is None or raw_count == "always":
            count = None
        else:
            count = self.integer(raw_count, f"{where}.count", minimum=1)
        fraction = d.get("fraction")
        if fraction is not None:
            fraction = self.fraction_value(fraction, f"{where}.fraction")
        machines = tuple(str(m) for m in self.sequence(d.get("machines", []), f"{where}.machines"))
        if machines and fraction is not None:
            self.problems.append(f"{where}: give machines or fraction, not both")
        status = self.integer(d.get("status", 503), f"{where}.status", minimum=400)
        delay = d.get("delay_s", 0.0)
        if kind == "slow" and (not isinstance(delay, int | float) or delay <= 0):
            self.problems.append(f"{where}.delay_s: a 'slow' fault needs a delay > 0")
        method = d.get("method")
        fault = FaultSpec(
            kind=kind,
            service=str(d.get("service", "maas")),
            stage=None if stage is None else str(stage),
            machines=machines,
            fraction=fraction,
            count=count,
            message=None if d.get("message") is None else str(d["message"]),
            status=status,
            delay_s=float(delay) if isinstance(delay, int | float) else 0.0,
            path=None if d.get("path") is None else str(d["path"]),
            op=None if d.get("op") is None else str(d["op"]),
            method=None if method is None else str(method).upper(),
        )
        return fault if len(self.problems) == before else None

    def api_key(self, raw: Any, where: str) -> str:
        key = self.string(raw, where)
        parts = key.split(":")
        if len(parts) != 3 or not all(parts):
            self.problems.append(f"{where}: must be consumer_key:token_key:token_secret")
        return key

    # --- scalars --------------------------------------------------------------------------

    def only(self, d: Mapping[str, Any], where: str, allowed: Any) -> None:
        for key in d:
            if key not in allowed:
                self.problems.append(f"{where}.{key}: unknown setting")

    def mapping(self, raw: Any, where: str) -> Mapping[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.problems.append(f"{where}: must be a mapping")
            return {}
        return raw

    def sequence(self, raw: Any, where: str) -> Sequence[Any]:
        if raw is None:
            return []
        if isinstance(raw, str) or not isinstance(raw, Sequence):
            self.problems.append(f"{where}: must be a list")
            return []
        return raw

    def string(self, raw: Any, where: str) -> str:
        if not isinstance(raw, str) or not raw:
            self.problems.append(f"{where}: must be a non-empty string")
            return ""
        return raw

    def boolean(self, raw: Any, where: str) -> bool:
        if not isinstance(raw, bool):
            self.problems.append(f"{where}: must be true or false")
            return False
        return raw

    def integer(self, raw: Any, where: str, minimum: int | None = 0) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            self.problems.append(f"{where}: must be an integer")
            return 0
        if minimum is not None and raw < minimum:
            self.problems.append(f"{where}: must be at least {minimum}")
        return raw

    def seconds(self, d: Mapping[str, Any], key: str, default: float, where: str) -> float:
        raw = d.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
            self.problems.append(f"{where}.{key}: must be a number of seconds >= 0")
            return default
        return float(raw)

    def fraction_value(self, raw: Any, where: str) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 1:
            self.problems.append(f"{where}: must be a number between 0 and 1")
            return 0.0
        return float(raw)


def _disk_name(index: int) -> str:
    return "sd" + "abcdefghijklmnopqrstuvwxyz"[index % 26]
