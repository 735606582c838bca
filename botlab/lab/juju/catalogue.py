"""The lab's charm catalogue: which charms exist, at which channels, revisions and bases, with
which endpoints, config options, actions and resources, and how their units behave.

Metadata of the Charmed Kubernetes charms is the charms' own (charmdata.py, taken from their
public sources); channels follow Charmed Kubernetes' tracks (`1.31/stable` ...) with
revisions that are lab values, not the store's. `botlab-test` is the lab's own small generic
charm. nvidia-gpu-operator is a real charm but a Kubernetes (sidecar) charm, deployed into a
Kubernetes model, which a MAAS lab model is not: it is not in this catalogue.

Unit behaviour (units.py runs it): after install a unit's workload status is decided by its
charm's `Behaviour`: config checks (a bad `gpu_driver` blocks containerd, as the charm does),
then required relations (`Missing ... relation` / `Waiting for ...`, the charms' own
messages), then host gates (a `HostProbe` may hold a unit in waiting, e.g. a
kubernetes-worker "Waiting for kubelet to start." until its host's container runtime is
ready; by default every host is ready), then its active message.

Extension points (all module-level, shared by every emulator in the process):
`register_charm(charm)`, `register_host_probe(fn)`, `register_hook_handler(fn)`,
`register_action_handler(charm, action, fn)`. Timings come from the lab spec's `juju.charms`
section when the emulator accepts one, else they are scaled from the spec's MAAS deploy
time (`timings.deploy_s / 5`), and `configure(controller, **timings)` changes them at run time.
"""

from __future__ import annotations

import hashlib
import random
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from botlab.lab.juju.bundle_base import RISKS, SERIES_VERSIONS
from botlab.lab.juju.charmdata import CHARMS

if TYPE_CHECKING:
    from botlab.lab.juju.state import ControllerState, ModelState
    from botlab.lab.spec import LabSpec

# Ubuntu bases Juju 3.6 knows (core/base), as series: "ubuntu@22.04" -> "jammy".
SERIES = {f"ubuntu@{SERIES_VERSIONS[s]}": s for s in ("xenial", "bionic", "focal", "jammy", "mantic", "noble",
                                                      "oracular")}
SERIES_BASE = {v: k for k, v in SERIES.items()}
ARCHES = ("amd64", "arm64", "ppc64el", "riscv64", "s390x")


def normalize_base(text: str) -> str:
    """"ubuntu@24.04" from "ubuntu@24.04/stable", "ubuntu:24.04" or a series ("noble");
    "" for "" and unknown series."""
    text = (text or "").strip()
    if not text:
        return ""
    if "@" not in text and ":" not in text:
        return SERIES_BASE.get(text, "")
    name, _, channel = text.replace(":", "@", 1).partition("@")
    return f"{name}@{channel.split('/', 1)[0]}"


def base_from_api(raw: Any) -> str:
    """"ubuntu@22.04" from a params.Base ({"name": "ubuntu", "channel": "22.04/stable"})."""
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("channel"):
        return ""
    return normalize_base(f"{raw['name']}@{raw['channel']}")


def base_series(base: str) -> str:
    """The series of a base ("" if it has none)."""
    return SERIES.get(normalize_base(base), "")


def parse_channel(text: str | None) -> tuple[str, str]:
    """(track, risk) of "1.31/stable", "stable", "1.31" (risk stable), "" (latest/stable)."""
    text = (text or "").strip()
    if not text:
        return "latest", "stable"
    parts = text.split("/")
    if len(parts) == 1:
        return ("latest", parts[0]) if parts[0] in RISKS else (parts[0], "stable")
    return parts[0] or "latest", parts[1] or "stable"


# --- charm metadata ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    interface: str
    role: str  # provider, requirer, peer
    scope: str = "global"  # or container
    limit: int = 0
    optional: bool = False

    def to_api(self) -> dict[str, Any]:
        """params.CharmRelation."""
        return {"name": self.name, "role": self.role, "interface": self.interface, "optional": self.optional,
                "limit": self.limit, "scope": self.scope}


class OptionError(ValueError):
    """A config value a charm option refuses (the message is Juju's)."""


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class Option:
    name: str
    type: str  # string, int, float, boolean
    default: Any = None
    description: str = ""

    def parse(self, raw: Any) -> Any:
        """A value as the client sent it (libjuju sends strings) coerced to the option's type,
        with Juju's wording when it cannot be; None means "back to the default"."""
        if raw is None:
            return None
        if self.type == "string":
            return raw if isinstance(raw, str) else str(raw)
        if isinstance(raw, str) and raw == "":
            return None
        try:
            if self.type == "int":
                if isinstance(raw, bool):
                    raise ValueError
                return int(raw) if isinstance(raw, int) else int(str(raw), 10)
            if self.type == "float":
                if isinstance(raw, bool):
                    raise ValueError
                return float(raw)
            if self.type == "boolean":
                if isinstance(raw, bool):
                    return raw
                if str(raw) in _TRUE:
                    return True
                if str(raw) in _FALSE:
                    return False
                raise ValueError
        except ValueError:
            raise OptionError(f'option "{self.name}" expected {self.type}, got "{raw}"') from None
        raise OptionError(f'option "{self.name}" has unknown type "{self.type}"')

    def to_api(self) -> dict[str, Any]:
        """params.CharmOption."""
        out: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.default is not None:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        """The action's JSON schema, as Juju stores it (charm.ActionSpec.Params)."""
        return {"type": "object", "title": self.name, "description": self.description,
                "properties": {k: dict(v) for k, v in self.params.items()}, "required": list(self.required),
                "additionalProperties": False}


@dataclass(frozen=True)
class Resource:
    name: str
    type: str  # file, oci-image
    filename: str = ""
    description: str = ""
    revision: int = 1

    def meta_api(self) -> dict[str, Any]:
        """params.CharmResourceMeta."""
        return {"name": self.name, "type": self.type, "path": self.filename, "description": self.description}

    def to_api(self, origin: str = "store", revision: int | None = None) -> dict[str, Any]:
        """params.CharmResource."""
        fingerprint = hashlib.sha384(f"{self.name}-{self.revision}".encode()).hexdigest()
        return {"name": self.name, "type": self.type, "path": self.filename, "description": self.description,
                "origin": origin, "revision": self.revision if revision is None else revision,
                "fingerprint": fingerprint, "size": 0}


# --- behaviour -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitView:
    """What a unit's charm sees when it decides its workload status."""

    unit: str
    application: str
    charm: str
    config: Mapping[str, Any]
    peers: int  # installed units of the application, this one included
    linked: Mapping[str, tuple[str, ...]]  # endpoint -> applications related on it
    ready: Mapping[str, tuple[str, ...]]  # endpoint -> related applications with an installed unit
    machine: Mapping[str, Any] | None  # the machine's AllWatcher data (hostname, addresses ...)
    subordinates: tuple[str, ...] = ()  # charms of this unit's subordinate units (containerd ...)
    principal: str = ""  # a subordinate's principal unit


@dataclass(frozen=True)
class Requirement:
    """A relation the charm needs before it goes active: `missing` while no relation exists on
    `endpoint`, `waiting` while the far side has no installed unit."""

    endpoint: str
    missing: str
    missing_status: str = "blocked"
    waiting: str = ""
    waiting_status: str = "waiting"


@dataclass(frozen=True)
class HostGate:
    """A readiness gate on the unit's host, decided by the registered host probes."""

    name: str  # e.g. "kubelet"
    message: str  # e.g. "Waiting for kubelet to start."
    status: str = "waiting"


Check = Callable[[UnitView], tuple[str, str] | None]
Message = str | Callable[[UnitView], str]


@dataclass(frozen=True)
class Behaviour:
    install_factor: float = 1.0  # install time, as a multiple of the install_s timing
    install_message: str = "installing charm software"
    checks: tuple[Check, ...] = ()  # config checks: (status, message) when the charm refuses
    requirements: tuple[Requirement, ...] = ()
    host_gates: tuple[HostGate, ...] = ()
    active: Message = "Ready"
    workload_version: str | Callable[[UnitView], str] = ""

    def evaluate(self, view: UnitView) -> tuple[str, str]:
        """(status, message) before host gates: checks, then requirements (blocked ones win,
        as the charms' status contexts prefer blocked over waiting), else active."""
        for check in self.checks:
            verdict = check(view)
            if verdict is not None:
                return verdict
        blocked: list[str] = []
        waiting: list[str] = []
        for req in self.requirements:
            if not view.linked.get(req.endpoint):
                (blocked if req.missing_status == "blocked" else waiting).append(req.missing)
            elif not view.ready.get(req.endpoint):
                message = req.waiting or req.missing
                (blocked if req.waiting_status == "blocked" else waiting).append(message)
        if blocked:
            return "blocked", blocked[0]
        if waiting:
            return "waiting", waiting[0]
        return "active", self.active(view) if callable(self.active) else self.active

    def version(self, view: UnitView) -> str:
        return self.workload_version(view) if callable(self.workload_version) else self.workload_version


@dataclass(frozen=True)
class Charm:
    name: str
    summary: str
    description: str
    source: str
    subordinate: bool
    bases: tuple[str, ...]  # "ubuntu@22.04", oldest first
    channels: Mapping[str, int]  # "1.31/stable" -> revision
    endpoints: tuple[Endpoint, ...]
    options: Mapping[str, Option]
    actions: Mapping[str, ActionSpec]
    resources: Mapping[str, Resource]
    behaviour: Behaviour = field(default_factory=Behaviour)
    publisher: str = "Canonical Kubernetes"

    @property
    def id(self) -> str:
        """A Charmhub-style id (32 base62 characters), stable per name."""
        digest = int.from_bytes(hashlib.sha256(f"charm:{self.name}".encode()).digest(), "big")
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        out = []
        for _ in range(32):
            digest, rem = divmod(digest, 62)
            out.append(alphabet[rem])
        return "".join(out)

    def endpoint(self, name: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)

    def role(self, role: str) -> dict[str, Endpoint]:
        return {e.name: e for e in self.endpoints if e.role == role}

    def resolve(self, channel: str | None, revision: int | None = None) -> tuple[str, int]:
        """(normalized channel, revision) for a request; KeyError naming what is missing."""
        track, risk = parse_channel(channel)
        name = f"{track}/{risk}"
        if revision is not None and revision >= 0:
            if revision not in set(self.channels.values()):
                raise KeyError(f"charm {self.name!r} has no revision {revision}")
            return name, revision
        for candidate in _risks_from(risk):
            found = self.channels.get(f"{track}/{candidate}")
            if found is not None:
                return name, found
        raise KeyError(f'charm or bundle not found for channel "{name}"')

    def url(self, revision: int, arch: str = "amd64", base: str = "") -> str:
        """The charm URL Juju 3.6 gives a resolved charmhub charm: "ch:amd64/jammy/etcd-760"
        (the series of the base it resolved for, when it has one)."""
        series = base_series(base) if base else ""
        return f"ch:{arch}/{series}/{self.name}-{revision}" if series else f"ch:{arch}/{self.name}-{revision}"

    def supports(self, base: str) -> bool:
        return normalize_base(base) in self.bases


def _risks_from(risk: str) -> list[str]:
    """A channel falls back to safer risks: edge gets beta, candidate, stable..."""
    if risk not in RISKS:
        return [risk]
    return list(reversed(RISKS[: RISKS.index(risk) + 1]))


# --- the Charmed Kubernetes charms ----------------------------------------------------------------

CK_TRACKS = ("1.31", "1.32", "1.33")


def ck_channels(first: int) -> dict[str, int]:
    """Lab revisions: each track's stable and edge, latest/ = the newest track."""
    out: dict[str, int] = {}
    for i, track in enumerate(CK_TRACKS):
        out[f"{track}/stable"] = first + 10 * i
        out[f"{track}/edge"] = first + 10 * i + 5
    out["latest/stable"] = out[f"{CK_TRACKS[-1]}/stable"]
    out["latest/edge"] = first + 10 * len(CK_TRACKS)
    return out


def _k8s_version(view: UnitView) -> str:
    track, _risk = parse_channel(str(view.config.get("channel") or ""))
    return f"{track}.0" if track[:1].isdigit() else "1.33.0"


def _etcd_health(view: UnitView) -> str:
    return f"Healthy with {view.peers} known peer{'s' if view.peers != 1 else ''}"


def _easyrsa(view: UnitView) -> str:
    return "Certificate Authority connected." if view.ready.get("client") else "Certificate Authority ready."


def _flannel_subnet(view: UnitView) -> str:
    number = int(hashlib.sha256(view.principal.encode()).hexdigest(), 16) % 250 + 1
    return f"Flannel subnet 10.1.{number}.1/24"


def _one_of(option: str, allowed: tuple[str, ...], message: str) -> Check:
    def check(view: UnitView) -> tuple[str, str] | None:
        value = str(view.config.get(option, ""))
        return None if value in allowed else ("blocked", message.format(value=value))

    return check


BEHAVIOURS: dict[str, Behaviour] = {
    "kubernetes-control-plane": Behaviour(
        install_factor=1.5,
        checks=(_one_of("allow-privileged", ("auto", "true", "false"), "Invalid config for allow-privileged"),),
        requirements=(
            Requirement("certificates", "Missing required certificates relation", "blocked",
                        "Waiting for certificate authority"),
            Requirement("etcd", "Waiting for etcd", "waiting"),
            Requirement("container-runtime", "Waiting for container runtime", "waiting"),
            Requirement("cni", "Missing CNI relation or config", "blocked", "Missing CNI relation or config",
                        "blocked"),
        ),
        workload_version=_k8s_version,
    ),
    "kubernetes-worker": Behaviour(
        install_factor=1.5,
        requirements=(
            Requirement("kube-control", "Missing required kube-control relation", "blocked",
                        "Waiting for kube-control relation"),
            Requirement("certificates", "Missing required certificates relation", "blocked",
                        "Waiting for certificate authority"),
            Requirement("container-runtime", "Missing container-runtime integration", "blocked",
                        "Waiting for container runtime"),
            Requirement("cni", "Missing CNI Integration", "blocked", "Missing CNI Integration", "blocked"),
        ),
        host_gates=(HostGate("kubelet", "Waiting for kubelet to start."),),
        workload_version=_k8s_version,
    ),
    "kubeapi-load-balancer": Behaviour(
        requirements=(
            Requirement("certificates", "Missing required certificates relation", "blocked",
                        "Waiting for certificate"),
        ),
        workload_version="1.18.0",
    ),
    "etcd": Behaviour(
        requirements=(Requirement("certificates", "Missing relation to certificate authority.", "blocked",
                                  "Missing relation to certificate authority.", "blocked"),),
        active=_etcd_health,
        workload_version="3.4.33",
    ),
    "easyrsa": Behaviour(install_factor=0.5, active=_easyrsa, workload_version="3.0.1"),
    "containerd": Behaviour(
        install_factor=0.5,
        checks=(_one_of("gpu_driver", ("auto", "nvidia", "none"), "{value} is an invalid option for gpu_driver"),),
        active="Container runtime available",
        workload_version="1.7.22",
    ),
    "docker": Behaviour(
        install_factor=0.5,
        active="Container runtime available",
        workload_version="24.0.7",
    ),
    "calico": Behaviour(
        install_factor=0.5,
        requirements=(Requirement("etcd", "Waiting for relation to etcd.", "blocked", "Waiting for etcd.",
                                  "blocked"),),
        workload_version="3.27.4",
    ),
    "flannel": Behaviour(
        install_factor=0.5,
        requirements=(Requirement("etcd", "Waiting for etcd relation.", "blocked", "Waiting on etcd."),),
        active=_flannel_subnet,
        workload_version="0.25.7",
    ),
    "cilium": Behaviour(install_factor=0.5, workload_version="1.16.3"),
}
FIRST_REVISION = {
    "kubernetes-control-plane": 500, "kubernetes-worker": 300, "kubeapi-load-balancer": 150, "etcd": 760,
    "easyrsa": 60, "containerd": 80, "docker": 90, "calico": 100, "flannel": 90, "cilium": 40,
}


def _from_data(name: str, data: Mapping[str, Any]) -> Charm:
    endpoints: list[Endpoint] = []
    for key, role in (("provides", "provider"), ("requires", "requirer"), ("peers", "peer")):
        for ep_name, (interface, scope) in data.get(key, {}).items():
            endpoints.append(Endpoint(ep_name, interface, role, scope))
    options = {k: Option(k, t, d, desc) for k, (t, d, desc) in data.get("options", {}).items()}
    actions = {k: ActionSpec(k, desc, params, tuple(req)) for k, (desc, params, req) in data.get("actions", {}).items()}
    resources = {k: Resource(k, t, f, desc) for k, (t, f, desc) in data.get("resources", {}).items()}
    return Charm(
        name=name, summary=str(data.get("summary", "")), description=str(data.get("summary", "")),
        source=str(data.get("source", "")), subordinate=bool(data.get("subordinate")),
        bases=tuple(data.get("bases", ())), channels=ck_channels(FIRST_REVISION.get(name, 1)),
        endpoints=tuple(endpoints), options=options, actions=actions, resources=resources,
        behaviour=BEHAVIOURS.get(name, Behaviour()),
    )


def _test_charm_blocked(view: UnitView) -> tuple[str, str] | None:
    return None if view.config.get("enabled", True) else ("blocked", "disabled by config")


BOTLAB_TEST = Charm(
    name="botlab-test",
    summary="The botlab lab's generic test charm.",
    description="A small principal charm with options of every type, two actions, a peer relation and "
                "optional relations, for exercising the emulated controller.",
    source="https://botlab.invalid/charms/botlab-test",
    subordinate=False,
    bases=("ubuntu@22.04", "ubuntu@24.04"),
    channels={"latest/stable": 3, "latest/edge": 4},
    endpoints=(Endpoint("website", "http", "provider"), Endpoint("db", "etcd", "requirer", optional=True),
               Endpoint("cluster", "botlab-test-peers", "peer")),
    options={
        "message": Option("message", "string", "ready", "The active status message."),
        "replicas": Option("replicas", "int", 1, "A number."),
        "ratio": Option("ratio", "float", 0.5, "A fraction."),
        "enabled": Option("enabled", "boolean", True, "When false, units are blocked."),
        "token": Option("token", "string", None, "An option without a default."),
    },
    actions={
        "echo": ActionSpec("echo", "Return the message given.", {"message": {"type": "string"}}, ("message",)),
        "fail": ActionSpec("fail", "Fail with the message given.", {"message": {"type": "string"}}),
    },
    resources={"payload": Resource("payload", "file", "payload.tar.gz", "An optional payload.")},
    behaviour=Behaviour(install_factor=0.5, checks=(_test_charm_blocked,),
                        active=lambda view: str(view.config.get("message", "ready")), workload_version="1.0"),
    publisher="botlab",
)

CATALOGUE: dict[str, Charm] = {name: _from_data(name, data) for name, data in CHARMS.items()}
CATALOGUE[BOTLAB_TEST.name] = BOTLAB_TEST


def register_charm(charm: Charm) -> Charm:
    """Add (or replace) a charm in the catalogue, for every emulator in this process."""
    CATALOGUE[charm.name] = charm
    return charm


def find_charm(name: str) -> Charm | None:
    return CATALOGUE.get(name)


def charm_name(url: str) -> str:
    """The charm's name in "ch:amd64/jammy/etcd-760", "ch:etcd", "etcd", "local:x-1"."""
    path = url.split(":", 1)[1] if ":" in url else url
    last = path.rsplit("/", 1)[-1]
    head, _, tail = last.rpartition("-")
    return head if head and tail.isdigit() else last


# --- timings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CharmTimings:
    install_s: float = 2.0  # the install hook (times the charm's install_factor)
    hook_s: float = 0.3  # config-changed, relation and start hooks
    action_s: float = 0.5  # an action's run
    retry_s: float = 5.0  # first automatic retry of a failed hook (doubling, Juju's retry strategy)
    update_status_s: float = 10.0  # the update-status hook period (re-checks host gates)
    jitter: float = 0.2
    seed: int = 0

    def delay(self, seconds: float, *key: str) -> float:
        """`seconds` with seeded jitter (the same unit and hook always get the same delay)."""
        if seconds <= 0 or self.jitter <= 0:
            return max(0.0, seconds)
        rng = random.Random(":".join((str(self.seed), *key)))
        return seconds * (1 + rng.uniform(-self.jitter, self.jitter))


TIMING_KEYS = ("install_s", "hook_s", "action_s", "retry_s", "update_status_s", "jitter")
_TIMINGS: weakref.WeakKeyDictionary[ControllerState, CharmTimings] = weakref.WeakKeyDictionary()


def spec_timings(spec: LabSpec) -> CharmTimings:
    """Scaled from the MAAS deploy time (5 s by default) unless the spec's `juju.charms`
    section sets them; ValueError names a bad key."""
    scale = max(spec.timings.deploy_s, 0.0) / 5.0
    base = CharmTimings(jitter=spec.timings.jitter, seed=spec.timings.seed)
    scaled = {k: getattr(base, k) * scale for k in TIMING_KEYS if k != "jitter"}
    raw = (spec.extra.get("juju") or {}).get("charms") if isinstance(spec.extra.get("juju"), Mapping) else None
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise ValueError("juju.charms: must be a mapping")
    for key, value in raw.items():
        if key == "unit_faults":
            continue
        if key not in TIMING_KEYS:
            raise ValueError(f"juju.charms.{key}: unknown setting (known: {', '.join(TIMING_KEYS)}, unit_faults)")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"juju.charms.{key}: must be a number >= 0")
        scaled[key] = float(value)
    return replace(base, **cast(dict[str, Any], scaled))


def timings(controller: ControllerState) -> CharmTimings:
    found = _TIMINGS.get(controller)
    if found is None:
        found = _TIMINGS[controller] = spec_timings(controller.spec)
    return found


def configure(controller: ControllerState, **changes: float) -> CharmTimings:
    """Change this controller's unit timings (run on its loop, e.g. through JujuEmulator.call)."""
    for key in changes:
        if key not in TIMING_KEYS:
            raise ValueError(f"unknown timing {key!r} (known: {', '.join(TIMING_KEYS)})")
    values: dict[str, Any] = {k: float(v) for k, v in changes.items()}
    _TIMINGS[controller] = replace(timings(controller), **values)
    return _TIMINGS[controller]


# --- host probes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostCheck:
    """One question to the host probes: is `gate` ready on this unit's host?"""

    model: ModelState
    unit: str
    application: str
    charm: str
    gate: str
    machine: Mapping[str, Any] | None  # the machine's AllWatcher data: hostname, addresses, hardware
    hostname: str
    subordinates: tuple[str, ...]  # charms of the unit's subordinates (its container runtime ...)
    config: Mapping[str, Any]


HostProbe = Callable[[HostCheck], bool]
HOST_PROBES: list[HostProbe] = []


def register_host_probe(fn: HostProbe) -> HostProbe:
    """Register `fn(check) -> bool`; a gate is ready when every probe says so (none: always).
    Probes run on the emulator's loop at each unit evaluation and every update-status period;
    call units.recheck(juju) after the host state changed to re-evaluate at once."""
    if fn not in HOST_PROBES:
        HOST_PROBES.append(fn)
    return fn


def unregister_host_probe(fn: HostProbe) -> None:
    if fn in HOST_PROBES:
        HOST_PROBES.remove(fn)


def host_ready(check: HostCheck) -> bool:
    return all(probe(check) for probe in list(HOST_PROBES))


@dataclass(frozen=True)
class HookRun:
    """A hook a unit runs, for hook handlers: what the charm would do to its machine."""

    model: ModelState
    unit: str
    application: str
    charm: str
    hook: str  # install, config-changed, start ...
    hostname: str  # the unit's machine's hostname ("" for a unit with no machine yet)
    config: Mapping[str, Any]
    address: str = ""  # the unit's address (its machine's)


HookHandler = Callable[[HookRun], None]
HOOK_HANDLERS: list[HookHandler] = []


def register_hook_handler(fn: HookHandler) -> HookHandler:
    """Register `fn(run)`: called in a worker thread after each successful hook, as the
    charm's own work on the machine (the lab's hosts install packages, start services ...).
    An exception fails the hook (the unit goes to error, as a failing charm does)."""
    if fn not in HOOK_HANDLERS:
        HOOK_HANDLERS.append(fn)
    return fn


def unregister_hook_handler(fn: HookHandler) -> None:
    if fn in HOOK_HANDLERS:
        HOOK_HANDLERS.remove(fn)


def run_hook_handlers(run: HookRun) -> None:
    for handler in list(HOOK_HANDLERS):
        handler(run)


# --- action handlers -----------------------------------------------------------------------------


class ActionFailed(Exception):
    """Raise from an action handler: the action ends "failed" with this message."""

    def __init__(self, message: str, results: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.results = dict(results or {})


@dataclass(frozen=True)
class ActionRun:
    """What an action handler gets."""

    model: ModelState
    unit: str
    application: str
    charm: str
    action: str
    params: Mapping[str, Any]
    config: Mapping[str, Any]
    address: str  # the unit's address
    related: Mapping[str, tuple[tuple[str, str], ...]]  # endpoint -> ((unit, address), ...) on the far side


ActionHandler = Callable[[ActionRun], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
ACTION_HANDLERS: dict[tuple[str, str], ActionHandler] = {}


def register_action_handler(charm: str, action: str, fn: ActionHandler) -> ActionHandler:
    """`fn(run)` returns the action's results (or raises ActionFailed); without a handler an
    action completes with no results."""
    ACTION_HANDLERS[(charm, action)] = fn
    return fn


def action_handler(charm: str, action: str) -> ActionHandler | None:
    return ACTION_HANDLERS.get((charm, action))
