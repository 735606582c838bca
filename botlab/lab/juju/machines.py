"""Machines, as a Juju 3.6 controller on a MAAS cloud provisions them.

The emulated controller acts as Juju's MAAS provider: `MachineManager.AddMachines` creates
the machine at once (agent-status "pending", instance-status "allocating") and a background
task on the emulator's loop then allocates a node in MAAS through the model's cloud
credential (`machines/?op=allocate` with name=/tags=/not_tags=/cpu_count=/mem=/arch=/zone=/
agent_name=), tags it with Juju's instance tags (`op=set_owner_data`), deploys it
(`op=deploy` with the series and a cloud-config `user_data` that installs the model's
authorized SSH keys) and polls it until MAAS says Deployed: instance-status "running",
instance-id = the MAAS system_id, addresses from MAAS's `ip_addresses`,
hardware-characteristics from cpu_count/memory/architecture/tag_names/zone, and then
agent-status "started" with an ed25519 SSH host key made for the machine. A node MAAS
cannot find (409 "No available machine matches constraints ...") is retried as Juju's
provisioner retries a failed start (instance-status "provisioning", "failed to start machine
N (...), retrying in 10s (K more attempts)"; count and delay: the spec's
juju.provisioner_retries / provisioner_retry_s, Juju's 10 and 10 s by default); once the
retries are spent, or when a deployment ends in "Failed deployment" (e.g. the MAAS
emulator's `fail`/`deployment` fault), the machine has instance-status "provisioning error"
and MAAS's message, as Juju shows it. Deltas carry `base` and no `series`, as Juju 3.x's.

LXD containers ("0/lxd/0") make no MAAS call: they start once their host has started and
get an address from the top of the lab network (MAAS hands addresses out from the bottom).

`DestroyMachineWithParams` makes a machine dying at once; the removal releases its node in
MAAS (`op=release`, so MAAS takes it back to Ready), then the machine turns dead and is
removed (AllWatcher "remove" delta). Destroying a model releases all of its machines.

Other modules (applications, units) use the contract below; everything else here is served
through facades: MachineManager(10) AddMachines, DestroyMachineWithParams,
RetryProvisioning; SSHClient(4) PublicKeys, PublicAddress, PrivateAddress, AllAddresses;
Client.FullStatus's `machines`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from botlab.lab.hosts.cloudinit import new_host_key
from botlab.lab.juju import errors
from botlab.lab.juju.controller import default_base, entities
from botlab.lab.juju.errors import JujuApiError, bulk, error_result
from botlab.lab.juju.facades import CallContext, destroy_hook, facade_method, status_contributor
from botlab.lab.juju.maas_provider import MaasClient, MaasError
from botlab.lab.juju.model import check_constraints
from botlab.lab.juju.sshkeys import split_authorized_keys
from botlab.lab.juju.state import ControllerState, ModelState, iso_time

# --- the contract other modules use ------------------------------------------------------------


class MachineFailed(Exception):
    """A machine will not start: its provisioning failed (the message is its instance-status
    message, e.g. MAAS's "No available machine matches constraints ..." or "Failed
    deployment: ..."), or it was destroyed or removed first."""

    def __init__(self, message: str, machine_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.machine_id = machine_id


async def add_machine(
    ctx: CallContext,
    model: ModelState,
    *,
    constraints: dict[str, Any] | None = None,
    placement: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
    container_type: str = "",
    parent_id: str = "",
) -> str:
    """Add a machine to `model` as `MachineManager.AddMachines` does and return its id ("3",
    "0/lxd/1"); provisioning (MAAS allocate + deploy, or for a container: waiting for its
    host) goes on in the background, see `wait_started`.

    `constraints` is a constraints.Value (`{"tags": [...], "cores": 8, "mem": 65536,
    "zones": [...], "arch": ...}`, merged over the model's constraints); `placement` a
    params.Placement: `{"scope": <model uuid or name>, "directive": "<MAAS hostname>"|
    "zone=<zone>"|"system-id=<id>"}`, or `{"scope": "lxd", "directive": "<machine id>"}`;
    `base` a params.Base (`{"name": "ubuntu", "channel": "22.04"}`; default: the model's
    default-base). `container_type="lxd"` with `parent_id` puts a container on that machine;
    without `parent_id`, on a new machine (the id returned is the container's). Bad input
    raises JujuApiError with Juju's wording."""
    params: dict[str, Any] = {
        "constraints": constraints,
        "placement": placement,
        "base": base,
        "container-type": container_type,
        "parent-id": parent_id,
        "jobs": ["JobHostUnits"],
    }
    return _add(ctx.controller, model, params).id


def machine(model: ModelState, machine_id: str) -> dict[str, Any] | None:
    """The machine's current AllWatcher data (params.MachineInfo: `instance-id`,
    `agent-status`, `instance-status`, `addresses`, `hardware-characteristics`, `hostname`,
    `life` ...), a copy; None if the model has no such machine."""
    data = model.entity("machine", machine_id)
    return dict(data) if data is not None else None


def is_started(model: ModelState, machine_id: str) -> bool:
    """Whether the machine's agent is started (deployed in MAAS, or a started container)."""
    rec = _book(model).records.get(machine_id)
    return rec is not None and rec.started


async def wait_started(model: ModelState, machine_id: str) -> None:
    """Return once the machine is started; raise MachineFailed if its provisioning fails, or
    if it is destroyed or removed before it starts. Run on the emulator's loop; bound it
    with asyncio.wait_for if you need a deadline."""
    book = _book(model)
    while True:
        rec = book.records.get(machine_id)
        if rec is None:
            raise MachineFailed(f"machine {machine_id} not found", machine_id)
        if rec.started:
            return
        if rec.failed:
            raise MachineFailed(rec.failed, machine_id)
        if rec.life != "alive":
            raise MachineFailed(f"machine {machine_id} is {rec.life}", machine_id)
        parent = book.records.get(rec.parent_id) if rec.parent_id else None
        if parent is not None and parent.failed:
            raise MachineFailed(f"host machine {parent.id} failed to start: {parent.failed}", machine_id)
        await book.changed()


def host_keys(model: ModelState, machine_id: str) -> list[str]:
    """The machine's SSH host public keys, OpenSSH format (`ssh-ed25519 AAAA... root@node-03`);
    empty until the machine has started."""
    rec = _book(model).records.get(machine_id)
    return [rec.host_public_key] if rec is not None and rec.started and rec.host_public_key else []


def host_private_key(model: ModelState, machine_id: str) -> str | None:
    """The private half of the machine's host key (OpenSSH PEM), for the lab to install in
    the sshd that plays this machine; None until the machine has started."""
    rec = _book(model).records.get(machine_id)
    return rec.host_private_key if rec is not None and rec.started and rec.host_private_key else None


MachineRemovalHook = Callable[[ControllerState, ModelState, str], Awaitable[None] | None]
MACHINE_REMOVAL_HOOKS: list[MachineRemovalHook] = []


def machine_removal_hook(fn: MachineRemovalHook) -> MachineRemovalHook:
    """Register `fn(controller, model, machine_id)` (may be async): called while a machine is
    being removed (a forced destroy, or its model's destruction) before it disappears, e.g.
    to remove the units on it. A plain destroy refuses machines with alive units (Juju's
    `machine 0 has unit "x/0" assigned`), read from the unit deltas' `machine-id`."""
    if fn not in MACHINE_REMOVAL_HOOKS:
        MACHINE_REMOVAL_HOOKS.append(fn)
    return fn


# --- tunables ------------------------------------------------------------------------------------

CONTAINER_TYPES = ("lxd", "kvm")
SUPPORTED_CONTAINERS = ("lxd",)
SERIES = {"18.04": "bionic", "20.04": "focal", "22.04": "jammy", "24.04": "noble"}
MAAS_ATTEMPTS = 3  # per MAAS call, while MAAS answers 5xx or cannot be reached
MAAS_RETRY_S = 0.2
REMOVAL_WAIT_S = 30.0  # how long a removal waits for the provisioning task to notice
# Juju's provisioner retries a failed StartInstance retryStrategyCount (10) times,
# retryStrategyDelay (10s) apart (juju/juju worker/provisioner/provisioner.go, 3.6); the lab
# spec's juju.provisioner_retries / juju.provisioner_retry_s set them (ControllerState).


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it ("10s", "1.5s", "500ms", "0s")."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms"
    minutes, rest = divmod(seconds, 60)
    if minutes:
        return f"{int(minutes)}m{rest:g}s"
    return f"{seconds:g}s"


def poll_interval(controller: ControllerState) -> float:
    """How often a deploying node is polled: a tenth of the lab's deploy time (0.02..1 s)."""
    return max(0.02, min(1.0, controller.spec.timings.deploy_s / 10))


def container_start_s(controller: ControllerState) -> float:
    """How long an LXD container takes to start once its host has: half the deploy time."""
    return max(0.0, controller.spec.timings.deploy_s / 2)


# --- records -------------------------------------------------------------------------------------


@dataclass
class Status:
    current: str
    message: str = ""
    since: float = field(default_factory=time.time)
    version: str = ""

    def set(self, current: str, message: str = "", version: str | None = None) -> bool:
        """Change it; False if nothing changed."""
        new_version = self.version if version is None else version
        if (current, message, new_version) == (self.current, self.message, self.version):
            return False
        if current != self.current:
            self.since = time.time()
        self.current, self.message, self.version = current, message, new_version
        return True

    def info(self) -> dict[str, Any]:
        """params.StatusInfo (AllWatcher deltas)."""
        return {"current": self.current, "message": self.message, "since": iso_time(self.since),
                "version": self.version, "data": {}}

    def detailed(self, life: str = "") -> dict[str, Any]:
        """params.DetailedStatus (FullStatus)."""
        return {"status": self.current, "info": self.message, "data": {}, "since": iso_time(self.since),
                "kind": "", "version": self.version, "life": life}


@dataclass
class MachineRecord:
    id: str
    base: str  # "ubuntu@24.04"
    series: str  # "noble"
    constraints: dict[str, Any]
    directive: str = ""  # MAAS placement: hostname, "zone=<z>" or "system-id=<id>"
    container_type: str = ""
    parent_id: str = ""
    jobs: list[str] = field(default_factory=lambda: ["JobHostUnits"])
    life: str = "alive"
    agent: Status = field(default_factory=lambda: Status("pending"))
    instance: Status = field(default_factory=lambda: Status("pending"))
    instance_id: str = ""  # MAAS system_id (containers: juju-<model>-0-lxd-0)
    display_name: str = ""  # MAAS hostname
    hostname: str = ""  # what the started agent reports
    addresses: list[str] = field(default_factory=list)
    interface: dict[str, Any] = field(default_factory=dict)  # boot NIC: name, mac, gateway
    hardware: dict[str, Any] = field(default_factory=dict)
    host_public_key: str = ""
    host_private_key: str = ""
    failed: str = ""  # the provisioning error, if any
    doomed: bool = False  # being removed: provisioning stops at its next step
    task: asyncio.Task[Any] | None = None
    removal: asyncio.Task[Any] | None = None

    @property
    def started(self) -> bool:
        return self.agent.current == "started" and self.life == "alive"

    @property
    def tag(self) -> str:
        return "machine-" + self.id.replace("/", "-")


class MachineBook:
    """A model's machines (kept in `model.ext["machines"]`)."""

    def __init__(self) -> None:
        self.records: dict[str, MachineRecord] = {}
        self.next_id = 0
        self.container_seq: dict[tuple[str, str], int] = {}
        self._waiters: set[asyncio.Future[None]] = set()

    async def changed(self) -> None:
        """Return at the next change of any machine of the model."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            await future
        finally:
            self._waiters.discard(future)

    def wake(self) -> None:
        for future in list(self._waiters):
            if not future.done():
                future.set_result(None)

    def children(self, machine_id: str) -> list[MachineRecord]:
        return [r for r in self.records.values() if r.parent_id == machine_id]


def _book(model: ModelState) -> MachineBook:
    book = model.ext.get("machines")
    if not isinstance(book, MachineBook):
        book = model.ext["machines"] = MachineBook()
    return book


def _sort_key(machine_id: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in machine_id.split("/"))


def _delta(model: ModelState, rec: MachineRecord) -> dict[str, Any]:
    """params.MachineInfo, as the AllWatcher sends it (libjuju's Machine reads it)."""
    host = not rec.container_type
    known = rec.started
    out: dict[str, Any] = {
        "model-uuid": model.uuid,
        "id": rec.id,
        "instance-id": rec.instance_id,
        "display-name": rec.display_name,
        "agent-status": rec.agent.info(),
        "instance-status": rec.instance.info(),
        "life": rec.life,
        "base": rec.base,  # Juju 3.x MachineInfo has `base` and no `series` (python-libjuju#958)
        "container-type": rec.container_type,
        "is-manual": False,
        "supported-containers": list(SUPPORTED_CONTAINERS) if known and host else [],
        "supported-containers-known": known,
        "jobs": list(rec.jobs),
        "addresses": [_address(a) for a in rec.addresses],
        "has-vote": False,
        "wants-vote": False,
    }
    if rec.hardware:
        out["hardware-characteristics"] = dict(rec.hardware)
    if rec.hostname:
        out["hostname"] = rec.hostname
    return out


def _address(value: str) -> dict[str, Any]:
    """params.Address; the lab's addresses are private, so Juju scopes them local-cloud."""
    ip = ipaddress.ip_address(value)
    scope = "local-cloud" if ip.is_private else "public"
    return {"value": value, "type": "ipv6" if ip.version == 6 else "ipv4", "scope": scope}


def _publish(model: ModelState, rec: MachineRecord) -> None:
    if rec.id in _book(model).records:
        model.put_entity("machine", _delta(model, rec))
    _book(model).wake()


def _record_event(controller: ControllerState, model: ModelState, kind: str, **fields: Any) -> None:
    controller.events.record(kind, model=model.name, model_uuid=model.uuid, **fields)


def _added_fields(rec: MachineRecord) -> dict[str, Any]:
    return {
        "machine": rec.id,
        "constraints": dict(rec.constraints),
        "placement": rec.directive,
        "container_type": rec.container_type,
        "parent": rec.parent_id,
        "base": rec.base,
    }


# --- adding machines -----------------------------------------------------------------------------


def _parse_base(model: ModelState, raw: Any) -> tuple[str, str]:
    """("ubuntu@22.04", "jammy") from a params.Base (or the model's default-base)."""
    if raw is None or raw == {}:
        name, _, channel = default_base(model).partition("@")
    elif isinstance(raw, dict):
        name, channel = str(raw.get("name") or ""), str(raw.get("channel") or "")
    else:
        raise errors.bad_request("json: cannot unmarshal base: expected an object")
    track = channel.split("/", 1)[0]
    if not name or not track:
        raise errors.not_valid(f'invalid base "{name}@{channel}": name and channel are required')
    if name != "ubuntu" or track not in SERIES:
        raise errors.not_valid(f'base "{name}@{channel}" is not supported (the lab deploys ubuntu '
                               f"{', '.join(SERIES)})")
    return f"{name}@{track}", SERIES[track]


def _check_directive(directive: str) -> str:
    """The MAAS provider's placement directives: a node name, zone=<z> or system-id=<id>."""
    if not directive:
        raise errors.not_valid("placement directive is empty")
    key, eq, value = directive.partition("=")
    if eq and (key not in ("zone", "system-id") or not value):
        raise JujuApiError(f"unknown placement directive: {directive}")
    return directive


def _check_jobs(raw: Any) -> list[str]:
    jobs = [str(j) for j in (raw or ["JobHostUnits"])]
    for job in jobs:
        if job == "JobManageModel":
            raise JujuApiError("adding controller machines (JobManageModel) is not supported by the botlab Juju "
                               "emulator", errors.CODE_NOT_SUPPORTED)
        if job != "JobHostUnits":
            raise errors.not_valid(f'invalid machine job "{job}"')
    return jobs


def _add(controller: ControllerState, model: ModelState, p: dict[str, Any]) -> MachineRecord:
    """MachineManager's addOneMachine: check the params, create the machine(s), start
    provisioning. Returns the record of the machine asked for (a container's, for lxd)."""
    if model.life != "alive":
        raise JujuApiError(f'model "{model.name}" is {model.life}')
    container_type = str(p.get("container-type") or "")
    parent_id = str(p.get("parent-id") or "")
    placement = p.get("placement") or None
    if placement is not None and not isinstance(placement, dict):
        raise errors.bad_request("json: cannot unmarshal placement: expected an object")
    if parent_id and not container_type:
        raise JujuApiError("parent machine specified without container type")
    if container_type and placement:
        raise JujuApiError("container type and placement are mutually exclusive")
    directive = ""
    if placement:
        scope, target = str(placement.get("scope") or ""), str(placement.get("directive") or "")
        if scope in CONTAINER_TYPES:
            container_type, parent_id = scope, target
        elif scope not in (model.name, model.uuid):
            raise JujuApiError(f'invalid model name "{scope}"')
        else:
            directive = _check_directive(target)
    base, series = _parse_base(model, p.get("base"))
    given = check_constraints(p.get("constraints"))
    constraints = {**model.constraints, **given}
    jobs = _check_jobs(p.get("jobs"))
    if container_type and container_type not in SUPPORTED_CONTAINERS:
        raise JujuApiError(f'container type "{container_type}" is not supported by the botlab Juju emulator '
                           f"(only {', '.join(SUPPORTED_CONTAINERS)})", errors.CODE_NOT_SUPPORTED)
    book = _book(model)
    if container_type and parent_id:
        parent = book.records.get(parent_id)
        if parent is None:
            raise errors.not_found(f"machine {parent_id} not found")
        if parent.life != "alive":
            raise JujuApiError(f"machine {parent_id} is not alive")
    elif container_type:  # a container on a new machine (AddMachineInsideNewMachine)
        host = _new_machine(controller, model, MachineRecord(str(book.next_id), base, series, constraints,
                                                             jobs=list(jobs)))
        parent_id = host.id
    if container_type:
        key = (parent_id, container_type)
        seq = book.container_seq.get(key, 0)
        book.container_seq[key] = seq + 1
        rec = MachineRecord(f"{parent_id}/{container_type}/{seq}", base, series, constraints,
                            container_type=container_type, parent_id=parent_id, jobs=jobs)
    else:
        rec = MachineRecord(str(book.next_id), base, series, constraints, directive=directive, jobs=jobs)
    return _new_machine(controller, model, rec)


def _new_machine(controller: ControllerState, model: ModelState, rec: MachineRecord) -> MachineRecord:
    book = _book(model)
    if not rec.container_type:
        book.next_id += 1
        rec.instance.set("allocating")
    book.records[rec.id] = rec
    _publish(model, rec)
    _record_event(controller, model, "machine-added", **_added_fields(rec))
    work = _provision_container(controller, model, rec) if rec.container_type else _provision(controller, model, rec)
    rec.task = controller.spawn(work, name=f"provision-{model.name}-{rec.id}")
    return rec


@facade_method("MachineManager", 10, "AddMachines", mutating=True)
async def add_machines(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(p: Any) -> dict[str, Any]:
        rec = _add(ctx.controller, ctx.model, p if isinstance(p, dict) else {})
        return {"machine": rec.id}

    return bulk(params.get("params") or [], one, lambda _p, error: {"machine": "", "error": error}, key="machines")


# --- provisioning --------------------------------------------------------------------------------


def _client(controller: ControllerState, model: ModelState) -> MaasClient:
    """A MAAS client on the model's cloud endpoint with its credential (as Juju's provider)."""
    key = model.credential.attrs.get("maas-oauth") if model.credential else None
    endpoint = model.cloud.endpoint or controller.maas_url
    return MaasClient(endpoint, key or controller.maas_api_key, attempts=MAAS_ATTEMPTS, retry_s=MAAS_RETRY_S)


def _allocate_attempts(model: ModelState, rec: MachineRecord) -> list[list[tuple[str, str]]]:
    """The `op=allocate` parameters Juju's MAAS provider sends, one list per zone to try."""
    cons = rec.constraints
    form: list[tuple[str, str]] = [("agent_name", model.uuid)]
    zones: list[str] = [str(z) for z in cons.get("zones") or []]
    if rec.directive:
        key, eq, value = rec.directive.partition("=")
        if not eq:
            form.append(("name", rec.directive))
        elif key == "zone":
            zones = [value]
        else:
            form.append(("system_id", value))
    if cons.get("arch"):
        form.append(("arch", str(cons["arch"])))
    if cons.get("cores"):
        form.append(("cpu_count", str(cons["cores"])))
    if cons.get("mem"):
        form.append(("mem", str(cons["mem"])))
    tags = [str(t) for t in cons.get("tags") or []]
    wanted = [t for t in tags if not t.startswith("^")]
    unwanted = [t[1:] for t in tags if t.startswith("^")]
    if wanted:
        form.append(("tags", ",".join(wanted)))
    if unwanted:
        form.append(("not_tags", ",".join(unwanted)))
    if cons.get("root-disk"):
        form.append(("storage", f"root:{math.ceil(int(cons['root-disk']) / 1024)}"))
    spaces = [str(s) for s in cons.get("spaces") or [] if not str(s).startswith("^")]
    if spaces:
        form.append(("interfaces", ";".join(f"{i}:space={s}" for i, s in enumerate(spaces))))
    return [[*form, ("zone", z)] for z in zones] if zones else [form]


def _instance_tags(controller: ControllerState, model: ModelState, rec: MachineRecord) -> dict[str, str]:
    """Juju's instance tags (MAAS owner data), plus the model's resource-tags."""
    tags = {
        "juju-controller-uuid": controller.uuid,
        "juju-model-uuid": model.uuid,
        "juju-machine-id": f"{model.name}-machine-{rec.id}",
    }
    for pair in str(model.config.get("resource-tags") or "").split():
        key, eq, value = pair.partition("=")
        if eq and key:
            tags[key] = value
    return tags


def user_data(model: ModelState, rec: MachineRecord) -> str:
    """The cloud-config Juju hands MAAS for a machine: the model's authorized keys (for the
    default user, ubuntu), the host key Juju generated for it (so Juju knows the key before
    the machine first answers) and the package update/upgrade settings."""
    config: dict[str, Any] = {
        "ssh_authorized_keys": split_authorized_keys(model.authorized_keys),
        "package_update": bool(model.config.get("enable-os-refresh-update", True)),
        "package_upgrade": bool(model.config.get("enable-os-upgrade", True)),
    }
    if rec.host_private_key:
        config["ssh_keys"] = {"ed25519_private": rec.host_private_key, "ed25519_public": rec.host_public_key}
    head = f"#cloud-config\n# Juju machine {rec.id} of model {model.owner}/{model.name} ({model.uuid})\n"
    return head + yaml.safe_dump(config, default_flow_style=False, sort_keys=False, width=100000)


def _fail(controller: ControllerState, model: ModelState, rec: MachineRecord, message: str,
          status: str = "provisioning error") -> None:
    rec.failed = message
    rec.instance.set(status, message)
    _publish(model, rec)
    _record_event(controller, model, "machine-provisioning-error", machine=rec.id, message=message,
                  instance_id=rec.instance_id)


def _host_key(rec: MachineRecord, hostname: str) -> None:
    """Give the machine a host key unless it has one (a node gets its key at deploy)."""
    if not rec.host_private_key:
        key = new_host_key(hostname)
        rec.host_public_key, rec.host_private_key = key.public, key.private


def _start(controller: ControllerState, model: ModelState, rec: MachineRecord, message: str) -> None:
    _host_key(rec, rec.hostname or rec.display_name or rec.id)
    rec.failed = ""
    rec.instance.set("running", message)
    rec.agent.set("started", "", controller.version)
    _publish(model, rec)
    _record_event(controller, model, "machine-started", machine=rec.id, instance_id=rec.instance_id,
                  hostname=rec.hostname, addresses=list(rec.addresses))


async def _provision(controller: ControllerState, model: ModelState, rec: MachineRecord) -> None:
    client = _client(controller, model)
    try:
        await _provision_node(controller, model, rec, client)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an emulator bug: say so on the machine rather than die silently
        _fail(controller, model, rec, f"internal error in the botlab Juju emulator: {exc!r}")
    finally:
        await client.close()


async def _provision_node(controller: ControllerState, model: ModelState, rec: MachineRecord,
                          client: MaasClient) -> None:
    rec.failed = ""
    rec.instance.set("allocating")
    _publish(model, rec)
    node: dict[str, Any] | None = None
    problem: MaasError | None = None
    retries, delay = controller.provisioner_retries, controller.provisioner_retry_s
    attempts_left = retries
    while True:  # Juju's provisionerTask.doStartMachine: StartInstance, retried
        for form in _allocate_attempts(model, rec):
            try:
                node = await client.allocate(form)
                break
            except MaasError as exc:
                problem = exc
        if node is not None or rec.doomed or attempts_left <= 0:
            break
        assert problem is not None
        message = (f"failed to start machine {rec.id} (failed to acquire node: {problem.message}), "
                   f"retrying in {go_duration(delay)} ({attempts_left} more attempts)")
        attempts_left -= 1
        rec.instance.set("provisioning", message)
        _publish(model, rec)
        _record_event(controller, model, "machine-start-retry", machine=rec.id, message=message,
                      attempts_left=attempts_left)
        await asyncio.sleep(delay)
        if rec.doomed:
            return
    if rec.doomed and node is not None:
        rec.instance_id = str(node.get("system_id") or "")  # the removal releases it
    if rec.doomed:
        return
    if node is None:
        assert problem is not None
        _fail(controller, model, rec, f"failed to acquire node: {problem.message}")
        return
    system_id = str(node["system_id"])
    rec.instance_id, rec.display_name = system_id, str(node.get("hostname") or "")
    rec.instance.set("allocating", "Allocated")
    _publish(model, rec)
    _record_event(controller, model, "machine-allocated", machine=rec.id, system_id=system_id,
                  hostname=rec.display_name)
    try:
        await client.set_owner_data(system_id, _instance_tags(controller, model, rec))
        if rec.doomed:
            return
        _host_key(rec, rec.display_name)
        node = await client.deploy(system_id, distro_series=rec.series, user_data=user_data(model, rec))
    except MaasError as exc:
        if rec.doomed:
            return
        # Juju stops (releases) an instance it could not start.
        with contextlib.suppress(MaasError):
            await client.release(system_id, comment=f"Juju could not deploy machine {rec.id}")
        rec.instance_id = ""
        _fail(controller, model, rec, f"cannot start instance: failed to deploy node {rec.display_name}: "
                                      f"{exc.message}")
        return
    _record_event(controller, model, "machine-deploying", machine=rec.id, system_id=system_id,
                  series=rec.series)
    poll = poll_interval(controller)
    while not rec.doomed:
        name, message = str(node.get("status_name") or ""), str(node.get("status_message") or "")
        if name == "Deployed":
            _take_node(controller, rec, node)
            _start(controller, model, rec, "Deployed")
            return
        if name not in ("Deploying", "Allocated"):  # Failed deployment, or released under Juju's feet
            status = "provisioning error" if name == "Failed deployment" else "error"
            _fail(controller, model, rec, f"{name}: {message}" if message else name, status)
            return
        if rec.instance.set("allocating", f"{name}: {message}" if message else name):
            _publish(model, rec)
        await asyncio.sleep(poll)
        if rec.doomed:
            return
        try:
            node = await client.machine(system_id)
        except MaasError as exc:
            if exc.transient:
                continue  # Juju's instance poller tries again later
            _fail(controller, model, rec, f"cannot read instance {system_id}: {exc.message}")
            return


def _take_node(controller: ControllerState, rec: MachineRecord, node: dict[str, Any]) -> None:
    """What Juju learns from a deployed MAAS node: addresses, hardware, hostname."""
    rec.addresses = [str(a) for a in node.get("ip_addresses") or []]
    rec.hostname = rec.display_name = str(node.get("hostname") or rec.display_name)
    arch = str(node.get("architecture") or "").split("/", 1)[0]
    hardware: dict[str, Any] = {}
    if arch:
        hardware["arch"] = arch
    if node.get("memory"):
        hardware["mem"] = int(node["memory"])
    if node.get("cpu_count"):
        hardware["cpu-cores"] = int(node["cpu_count"])
    if node.get("tag_names"):
        hardware["tags"] = [str(t) for t in node["tag_names"]]
    zone = (node.get("zone") or {}).get("name") if isinstance(node.get("zone"), dict) else None
    if zone:
        hardware["availability-zone"] = str(zone)
    rec.hardware = hardware
    boot = node.get("boot_interface") or {}
    gateway = ((node.get("default_gateways") or {}).get("ipv4") or {}).get("gateway_ip") or ""
    rec.interface = {"name": str(boot.get("name") or "eth0"), "mac": str(boot.get("mac_address") or ""),
                     "gateway": str(gateway)}


# Container addresses per controller (they come from no MAAS, so the emulator hands them out).
_CONTAINER_IPS: weakref.WeakKeyDictionary[ControllerState, set[str]] = weakref.WeakKeyDictionary()


def _container_address(controller: ControllerState) -> str:
    used = _CONTAINER_IPS.setdefault(controller, set())
    network = controller.spec.network.network
    gateway = controller.spec.network.gateway_ip
    value = int(network.broadcast_address) - 1
    while value > int(network.network_address):
        ip = str(ipaddress.ip_address(value))
        if ip not in used and ip != gateway:
            used.add(ip)
            return ip
        value -= 1
    raise JujuApiError(f"no address left for containers in {controller.spec.network.cidr}")


async def _provision_container(controller: ControllerState, model: ModelState, rec: MachineRecord) -> None:
    book = _book(model)
    while True:
        if rec.doomed:
            return
        parent = book.records.get(rec.parent_id)
        if parent is None or parent.life != "alive":
            return  # the removal of the host takes the container with it
        if parent.started:
            break
        if parent.failed and rec.instance.set("pending", f"waiting for machine {parent.id}: {parent.failed}"):
            _publish(model, rec)
        await book.changed()
    rec.failed = ""
    rec.instance.set("allocating", "Container started")  # juju's lxd broker says so
    _publish(model, rec)
    delay = container_start_s(controller)
    if delay:
        await asyncio.sleep(delay)
    if rec.doomed or not parent.started:
        if not rec.doomed:
            _fail(controller, model, rec, f"host machine {parent.id} is no longer started")
        return
    name = f"juju-{model.uuid[-6:]}-{rec.id.replace('/', '-')}"
    rec.instance_id = rec.display_name = rec.hostname = name
    rec.addresses = [_container_address(controller)]
    rec.hardware = {k: parent.hardware[k] for k in ("arch", "availability-zone") if k in parent.hardware}
    rec.interface = {"name": "eth0", "mac": "", "gateway": controller.spec.network.gateway_ip}
    _start(controller, model, rec, "Running")


# --- destroying ----------------------------------------------------------------------------------


def _parse_machine_tag(tag: Any) -> str:
    text = str(tag or "")
    if not text.startswith("machine-") or len(text) == len("machine-"):
        raise JujuApiError(f'"{text}" is not a valid machine tag')
    machine_id = text[len("machine-"):].replace("-", "/")
    parts = machine_id.split("/")
    valid = parts[0].isdigit() and len(parts) % 2 == 1 and all(
        parts[i] in CONTAINER_TYPES and parts[i + 1].isdigit() for i in range(1, len(parts), 2)
    )
    if not valid:
        raise JujuApiError(f'"{text}" is not a valid machine tag')
    return machine_id


def _record_for(model: ModelState, machine_id: str) -> MachineRecord:
    rec = _book(model).records.get(machine_id)
    if rec is None:
        raise errors.not_found(f"machine {machine_id} not found")
    return rec


def _units_on(model: ModelState, machine_id: str) -> list[str]:
    return sorted(
        str(u.get("name")) for u in model.entities("unit").values()
        if str(u.get("machine-id") or "") == machine_id and u.get("life", "alive") == "alive"
    )


def _destroy_info(model: ModelState, rec: MachineRecord, force: bool) -> dict[str, Any]:
    """params.DestroyMachineInfo; without force, Juju's refusals for hosts of containers and
    machines with units."""
    book = _book(model)
    containers = [c for c in book.children(rec.id) if c.life == "alive"]
    units = _units_on(model, rec.id)
    if not force and containers:
        raise JujuApiError(f'machine {rec.id} is hosting containers "{",".join(c.id for c in containers)}"')
    if not force and units:
        raise JujuApiError(f'machine {rec.id} has unit "{units[0]}" assigned', "machine has assigned units")
    info: dict[str, Any] = {
        "machine-id": rec.id,
        "destroyed-units": [{"tag": "unit-" + u.replace("/", "-")} for u in units],
        "destroyed-storage": [],
        "detached-storage": [],
    }
    if force and containers:
        info["destroyed-containers"] = [{"info": _destroy_info(model, c, True)} for c in containers]
    return info


def _start_removal(controller: ControllerState, model: ModelState, rec: MachineRecord, *, force: bool,
                   keep: bool = False) -> asyncio.Task[Any]:
    """Make the machine dying now and remove it in the background (a second call while a
    removal runs returns that removal)."""
    if rec.removal is not None and not rec.removal.done():
        return rec.removal
    rec.doomed = True
    if rec.life == "alive":
        rec.life = "dying"
        _publish(model, rec)
        _record_event(controller, model, "machine-dying", machine=rec.id, force=force)
    rec.removal = controller.spawn(_remove(controller, model, rec, force=force, keep=keep),
                                   name=f"remove-{model.name}-{rec.id}")
    return rec.removal


async def _remove(controller: ControllerState, model: ModelState, rec: MachineRecord, *, force: bool,
                  keep: bool) -> None:
    book = _book(model)
    task = rec.task
    if task is not None and not task.done():
        _done, pending = await asyncio.wait({task}, timeout=REMOVAL_WAIT_S)
        for late in pending:
            late.cancel()
    children = [_start_removal(controller, model, c, force=True, keep=keep) for c in book.children(rec.id)]
    if children:
        await asyncio.gather(*children, return_exceptions=True)
    for hook in list(MACHINE_REMOVAL_HOOKS):
        try:
            outcome = hook(controller, model, rec.id)
            if outcome is not None:
                await outcome
        except Exception as exc:  # a hook failing must not leave the machine half-removed
            _record_event(controller, model, "machine-removal-hook-failed", machine=rec.id, error=repr(exc))
    if rec.instance_id and not rec.container_type and not keep:
        client = _client(controller, model)
        try:
            await client.release(rec.instance_id, comment=f"Released by Juju (machine {rec.id} of {model.name})")
            _record_event(controller, model, "machine-released", machine=rec.id, system_id=rec.instance_id)
        except MaasError as exc:
            _record_event(controller, model, "machine-release-failed", machine=rec.id, system_id=rec.instance_id,
                          error=exc.message)
            if not force:  # Juju keeps trying; the machine stays dying, saying why
                rec.instance.set(rec.instance.current, f"cannot release instance: {exc.message}")
                _publish(model, rec)
                return
        finally:
            await client.close()
    if rec.container_type and rec.addresses:
        _CONTAINER_IPS.get(controller, set()).difference_update(rec.addresses)
    rec.life = "dead"
    _publish(model, rec)
    book.records.pop(rec.id, None)
    model.remove_entity("machine", rec.id)
    book.wake()
    _record_event(controller, model, "machine-removed", machine=rec.id, instance_id=rec.instance_id)


@facade_method("MachineManager", 10, "DestroyMachineWithParams", mutating=True)
async def destroy_machines(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    force = bool(params.get("force"))
    keep = bool(params.get("keep"))
    dry_run = bool(params.get("dry-run"))

    def one(tag: Any) -> dict[str, Any]:
        rec = _record_for(ctx.model, _parse_machine_tag(tag))
        info = _destroy_info(ctx.model, rec, force)
        if not dry_run:
            _start_removal(ctx.controller, ctx.model, rec, force=force, keep=keep)
        return {"info": info}

    return bulk(params.get("machine-tags") or [], one)


@facade_method("MachineManager", 10, "RetryProvisioning", mutating=True)
async def retry_provisioning(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Retry machines whose provisioning failed before MAAS gave them a node (as Juju's
    provisioner does for a transient error); one in error with a node (a failed deployment)
    keeps it until it is removed, as in Juju. Results hold only errors, as Juju's do."""
    model = ctx.model
    book = _book(model)
    wanted: set[str] = set()
    results: list[dict[str, Any]] = []
    for tag in params.get("machines") or []:
        try:
            wanted.add(_parse_machine_tag(tag))
        except JujuApiError as exc:
            results.append({"error": error_result(exc)})
    everything = bool(params.get("all"))
    for machine_id in sorted(wanted - set(book.records), key=_sort_key):
        results.append({"error": error_result(errors.not_found(f"machine {machine_id} not found"))})
    for rec in sorted(book.records.values(), key=lambda r: _sort_key(r.id)):
        if not everything and rec.id not in wanted:
            continue
        if rec.instance.current not in ("provisioning error", "error"):
            if not everything:
                results.append({"error": error_result(JujuApiError(
                    f"machine {rec.id} is not in an error state ({rec.instance.current})"))})
            continue
        if rec.instance_id or rec.life != "alive" or (rec.task is not None and not rec.task.done()):
            continue
        ctx.event("machine-retry-provisioning", model=model.name, model_uuid=model.uuid, machine=rec.id)
        rec.failed = ""
        work = _provision_container(ctx.controller, model, rec) if rec.container_type else \
            _provision(ctx.controller, model, rec)
        rec.task = ctx.controller.spawn(work, name=f"provision-{model.name}-{rec.id}")
    return {"results": results}


@destroy_hook
async def release_model_machines(controller: ControllerState, model: ModelState) -> None:
    """A model being destroyed takes its machines with it: each is released in MAAS (which
    takes the node back to Ready) and removed."""
    book = model.ext.get("machines")
    if not isinstance(book, MachineBook):
        return
    removals = []
    for rec in sorted(book.records.values(), key=lambda r: _sort_key(r.id)):
        if rec.parent_id and rec.parent_id in book.records:
            continue  # removed with its host
        removals.append(_start_removal(controller, model, rec, force=True))
    if removals:
        await asyncio.gather(*removals, return_exceptions=True)


# --- SSHClient -----------------------------------------------------------------------------------


def _machine_for_entity(model: ModelState, tag: Any) -> MachineRecord:
    """The machine a machine or unit tag names (a unit's: the machine it is assigned to)."""
    text = str(tag or "")
    if text.startswith("unit-"):
        app, _, number = text[len("unit-"):].rpartition("-")
        unit = model.entity("unit", f"{app}/{number}")
        if unit is None:
            raise errors.not_found(f'unit "{app}/{number}" not found')
        machine_id = str(unit.get("machine-id") or "")
        if not machine_id:
            raise JujuApiError(f'unit "{app}/{number}" is not assigned to a machine', "not assigned")
        return _record_for(model, machine_id)
    return _record_for(model, _parse_machine_tag(text))


@facade_method("SSHClient", 4, "PublicKeys", mutating=False)
async def ssh_public_keys(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(tag: str) -> dict[str, Any]:
        rec = _machine_for_entity(ctx.model, tag)
        if not (rec.started and rec.host_public_key):  # the agent reports them once it runs
            raise errors.not_found("keys not found")
        return {"public-keys": [rec.host_public_key]}

    return bulk(entities(params), one, lambda _tag, error: {"public-keys": [], "error": error})


def _address_results(ctx: CallContext, params: dict[str, Any], kind: str) -> dict[str, Any]:
    def one(tag: str) -> dict[str, Any]:
        rec = _machine_for_entity(ctx.model, tag)
        if not rec.addresses:
            raise JujuApiError(f"no {kind} address(es)", "no address set")
        return {"address": rec.addresses[0]}

    return bulk(entities(params), one, lambda _tag, error: {"address": "", "error": error})


@facade_method("SSHClient", 4, "PublicAddress", mutating=False)
async def ssh_public_address(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """On MAAS a machine's public address is its (only) lab address."""
    return _address_results(ctx, params, "public")


@facade_method("SSHClient", 4, "PrivateAddress", mutating=False)
async def ssh_private_address(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return _address_results(ctx, params, "private")


@facade_method("SSHClient", 4, "AllAddresses", mutating=False)
async def ssh_all_addresses(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(tag: str) -> dict[str, Any]:
        rec = _machine_for_entity(ctx.model, tag)
        if not rec.addresses:
            raise JujuApiError("no addresses", "no address set")
        return {"addresses": list(rec.addresses)}

    return bulk(entities(params), one, lambda _tag, error: {"addresses": [], "error": error})


# --- FullStatus ----------------------------------------------------------------------------------

_CONSTRAINT_ORDER = ("arch", "container", "cores", "cpu-power", "instance-role", "instance-type", "mem",
                     "root-disk", "root-disk-source", "spaces", "tags", "virt-type", "zones",
                     "allocate-public-ip", "image-id")
_HARDWARE_ORDER = (("arch", "arch"), ("cpu-cores", "cores"), ("cpu-power", "cpu-power"), ("mem", "mem"),
                   ("root-disk", "root-disk"), ("root-disk-source", "root-disk-source"), ("tags", "tags"),
                   ("availability-zone", "availability-zone"), ("virt-type", "virt-type"))


def _value(key: str, value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if key in ("mem", "root-disk") and isinstance(value, int):
        return f"{value}M"
    return str(value)


def constraints_string(constraints: dict[str, Any]) -> str:
    """constraints.Value.String(): `cores=8 mem=65536M tags=gpu`."""
    return " ".join(f"{k}={_value(k, constraints[k])}" for k in _CONSTRAINT_ORDER
                    if constraints.get(k) not in (None, "", []))


def hardware_string(hardware: dict[str, Any]) -> str:
    """instance.HardwareCharacteristics.String(): `arch=amd64 cores=32 mem=131072M ...`."""
    return " ".join(f"{name}={_value(name, hardware[key])}" for key, name in _HARDWARE_ORDER
                    if hardware.get(key) not in (None, "", []))


def _machine_status(book: MachineBook, rec: MachineRecord) -> dict[str, Any]:
    """params.MachineStatus, containers nested."""
    name, _, track = rec.base.partition("@")
    life = "" if rec.life == "alive" else rec.life
    out: dict[str, Any] = {
        "agent-status": rec.agent.detailed(life),
        "instance-status": rec.instance.detailed(),
        "modification-status": Status("idle", since=rec.agent.since).detailed(),
        "hostname": rec.hostname,
        "dns-name": rec.addresses[0] if rec.addresses else "",
        "ip-addresses": list(rec.addresses),
        "instance-id": rec.instance_id or "pending",
        "display-name": rec.display_name,
        "base": {"name": name, "channel": f"{track}/stable"},
        "id": rec.id,
        "containers": {c.id: _machine_status(book, c)
                       for c in sorted(book.children(rec.id), key=lambda c: _sort_key(c.id))},
        "constraints": constraints_string(rec.constraints),
        "hardware": hardware_string(rec.hardware),
        "jobs": list(rec.jobs),
        "has-vote": False,
        "wants-vote": False,
    }
    if rec.addresses and rec.interface:
        out["network-interfaces"] = {
            rec.interface["name"]: {
                "ip-addresses": list(rec.addresses),
                "mac-address": rec.interface.get("mac", ""),
                "gateway": rec.interface.get("gateway", ""),
                "dns-nameservers": [],
                "space": "",
                "is-up": True,
            }
        }
    return out


@status_contributor
def machines_status(ctx: CallContext, status: dict[str, Any]) -> None:
    """Client.FullStatus's `machines` (top-level machines; containers inside their host)."""
    book = _book(ctx.model)
    for rec in sorted(book.records.values(), key=lambda r: _sort_key(r.id)):
        if not rec.parent_id:
            status["machines"][rec.id] = _machine_status(book, rec)
