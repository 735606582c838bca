"""GPU: the NVIDIA container runtime registered on every GPU host, and nowhere else.

GPU hosts are the inventory's (role gpu), confirmed by the GPUs enlist recorded from MAAS and
by `nvidia-smi -L` on the host. Three methods (`kubernetes.gpu_method`):

- charm: the containerd charm's `gpu_driver` option, on the containerd application riding on
  the GPU hosts, set to `nvidia` through Juju when it differs; the charm re-renders
  config.toml with the runtime `nvidia-container-runtime`. botlab waits for the units, then
  checks over SSH.
- ssh with containerd: playbooks/gpu-containerd.yaml, a drop-in carrying the CRI section it
  extends (containerd 1.7 replaces a whole imported section: containerd#5837) and the
  `imports` line in config.toml; runtime `nvidia`.
- ssh with docker: playbooks/gpu-docker.yaml, a docker.service drop-in whose ExecStart is the
  unit's current one plus `--add-runtime=nvidia=...`; skipped where daemon.json declares it.

Every host fact is read in one round trip per host (`facts_script`); what to write is computed
from those facts by pure functions (`cri_dropin`, `ensure_imports`, `effective_exec_start`), so
plan (the playbook's check mode) shows the exact commands and apply executes that plan.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import json
import re
import secrets
import shlex
import sys
import time
import tomllib
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botlab.errors import StageError
from botlab.outputs import EnlistOutputs, GpuHost, GpuOutputs, KubernetesOutputs
from botlab.pipeline import Change, Check, Inputs, Plan, Stage
from botlab.playbook import (
    HostPlan,
    HostResult,
    Playbook,
    apply_host,
    check_host,
    handler_commands,
    read_sections,
)

if TYPE_CHECKING:
    from botlab.context import StageContext
    from botlab.drivers.juju import JujuModel, ModelStatus
    from botlab.drivers.kubernetes import KubeDriver
    from botlab.drivers.ssh import SshDriver
    from botlab.inventory import Inventory

def _playbooks_dir() -> Path:
    """playbooks/ of a source checkout, else where setup.cfg's data_files installed it."""
    here = Path(__file__).resolve().parents[2] / "playbooks"
    return here if here.is_dir() else Path(sys.prefix) / "share" / "botlab" / "playbooks"


PLAYBOOKS = _playbooks_dir()
CONTAINERD_PLAYBOOK = PLAYBOOKS / "gpu-containerd.yaml"
DOCKER_PLAYBOOK = PLAYBOOKS / "gpu-docker.yaml"

BINARY = "/usr/bin/nvidia-container-runtime"
CHARM_RUNTIME = "nvidia-container-runtime"  # what the containerd charm names it (config_v2.toml)
SSH_RUNTIME = "nvidia"  # what botlab names it over SSH (as nvidia-ctk does)
CONFIG_TOML = "/etc/containerd/config.toml"
CONTAINERD_DROPIN = "/etc/containerd/conf.d/99-nvidia.toml"
IMPORT_GLOB = "/etc/containerd/conf.d/*.toml"
DOCKER_DROPIN = "/etc/systemd/system/docker.service.d/99-botlab-nvidia.conf"
DAEMON_JSON = "/etc/docker/daemon.json"
OWN_FILES = (CONTAINERD_DROPIN, DOCKER_DROPIN)
CRI = "io.containerd.grpc.v1.cri"
ADD_RUNTIME = f"--add-runtime={SSH_RUNTIME}={BINARY}"
SETTLE_S = 1.0
POLL_S = 1.0


# --- host facts: one round trip ------------------------------------------------------------------


@dataclass(frozen=True)
class HostFacts:
    """What one host shows (recorded in tests as it is parsed)."""

    nvidia_smi: str | None = None  # `nvidia-smi -L` output; None when it failed
    config_toml: str | None = None
    daemon_json: str | None = None
    docker_unit: str | None = None  # `systemctl cat docker.service`
    dump: str | None = None  # `containerd config dump`
    docker_runtimes: str | None = None  # `docker info --format '{{json .Runtimes}}'`
    binary: bool = False  # the runtime binary exists (executable)
    active: Mapping[str, str] = field(default_factory=dict)  # service -> `systemctl is-active`
    own_files: tuple[str, ...] = ()  # botlab's drop-ins present on the host

    @property
    def gpus(self) -> int | None:
        return gpu_count(self.nvidia_smi) if self.nvidia_smi is not None else None


FACTS = ("nvidia-smi", "config.toml", "daemon.json", "docker-unit", "dump", "docker-runtimes", "binary", "active",
         "own")
# What planning needs per method; verify reads them all. Each host tool run costs (on a lab host, a
# Python program's start), so plan does not ask what it does not use.
PLAN_FACTS = {"charm": ("nvidia-smi", "dump", "binary"),
              "ssh-containerd": ("nvidia-smi", "config.toml", "binary", "own"),
              "ssh-docker": ("nvidia-smi", "daemon.json", "docker-unit", "binary", "own")}


def facts_script(nonce: str, parts: Iterable[str] = FACTS) -> str:
    """The facts `parts` of a host (default: all), base64 in sections marked with `nonce`."""
    wanted = set(parts)

    def file(name: str, path: str) -> str:
        q = shlex.quote(path)
        return f"echo '@@{nonce} {name}'; if [ -f {q} ]; then base64 -w0 -- {q}; echo; else echo absent; fi"

    parts_script = {
        "nvidia-smi": f"echo '@@{nonce} nvidia-smi'; if out=$(nvidia-smi -L 2>&1); then printf %s \"$out\" |"
                      " base64 -w0; echo; else echo failed; fi",
        "config.toml": file("config.toml", CONFIG_TOML),
        "daemon.json": file("daemon.json", DAEMON_JSON),
        "docker-unit": f"echo '@@{nonce} docker-unit'; if systemctl cat docker.service >/tmp/.botlab-gpu-$$"
                       " 2>/dev/null; then base64 -w0 /tmp/.botlab-gpu-$$; echo; else echo absent; fi;"
                       " rm -f /tmp/.botlab-gpu-$$",
        "dump": f"echo '@@{nonce} dump'; if command -v containerd >/dev/null &&"
                " out=$(containerd config dump 2>/dev/null); then printf %s \"$out\" | base64 -w0; echo;"
                " else echo absent; fi",
        "docker-runtimes": f"echo '@@{nonce} docker-runtimes'; if command -v docker >/dev/null &&"
                           " out=$(docker info --format '{{json .Runtimes}}' 2>/dev/null); then"
                           " printf %s \"$out\" | base64 -w0; echo; else echo absent; fi",
        "binary": f"echo '@@{nonce} binary'; if [ -x {BINARY} ]; then echo yes; else echo no; fi",
        "active": f"echo '@@{nonce} active'; for s in containerd docker; do"
                  " echo \"$s=$(systemctl is-active $s 2>/dev/null)\"; done",
        "own": "\n".join([f"echo '@@{nonce} own'"]
                         + [f"[ -e {shlex.quote(p)} ] && echo {shlex.quote(p)}" for p in OWN_FILES]),
    }
    out = ["# botlab gpu facts"] + [parts_script[name] for name in FACTS if name in wanted]
    out.append(f"echo '@@{nonce} end'")
    return "\n".join(out) + "\n"


def parse_facts(output: str, nonce: str) -> HostFacts:
    sections = read_sections(output, nonce, "gpu facts")

    def text(name: str) -> str | None:
        lines = sections.get(name) or ["absent"]
        if lines[0] in ("absent", "failed"):
            return None
        return base64.b64decode(lines[0]).decode("utf-8", "replace")

    active = dict(line.split("=", 1) for line in sections.get("active", []) if "=" in line)
    return HostFacts(nvidia_smi=text("nvidia-smi"), config_toml=text("config.toml"),
                     daemon_json=text("daemon.json"), docker_unit=text("docker-unit"), dump=text("dump"),
                     docker_runtimes=text("docker-runtimes"), binary=(sections.get("binary") or ["no"])[0] == "yes",
                     active=active, own_files=tuple(ln for ln in sections.get("own", []) if ln))


async def read_facts(ssh: SshDriver, host: str, parts: Iterable[str] = FACTS) -> HostFacts:
    nonce = secrets.token_hex(8)
    answer = await ssh.run(host, "sh -s", sudo=True, stdin=facts_script(nonce, parts))
    if f"@@{nonce} end" not in answer.stdout:
        raise StageError(f"the facts script ended early (exit {answer.exited}): {answer.stderr[-300:]}",
                         system="SSH", operation="gpu facts", where=host,
                         hint="the login user needs password-less sudo")
    return parse_facts(answer.stdout, nonce)


# --- pure: facts in, what to write out ------------------------------------------------------------


def gpu_count(nvidia_smi: str) -> int:
    """GPUs in `nvidia-smi -L` output (`GPU 0: NVIDIA A100 (UUID: GPU-...)`)."""
    return sum(1 for line in nvidia_smi.splitlines() if re.match(r"GPU \d+: ", line))


def toml_dumps(data: Mapping[str, Any]) -> str:
    """TOML for what tomllib reads from a containerd config (tables, scalars, arrays)."""
    out: list[str] = []

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, Mapping):
            return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise ValueError(f"cannot write {type(v).__name__} {v!r} as TOML")

    def table(prefix: str, t: Mapping[str, Any]) -> None:
        scalars = [(k, v) for k, v in t.items() if not isinstance(v, Mapping)]
        tables = [(k, v) for k, v in t.items() if isinstance(v, Mapping)]
        if prefix and (scalars or not tables):
            out.append(f"\n[{prefix}]")
        out.extend(f"{key(k)} = {value(v)}" for k, v in scalars)
        for k, v in tables:
            table(f"{prefix}.{key(k)}" if prefix else key(k), v)

    table("", data)
    return "\n".join(out).lstrip("\n") + "\n"


def _config(text: str, host: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StageError(f"{CONFIG_TOML} is not valid TOML: {exc}", system="SSH", where=host) from None
    if data.get("version") != 2:
        raise StageError(f"{CONFIG_TOML} is config version {data.get('version', 1)}; botlab writes version 2"
                         " drop-ins (containerd 1.7)", system="SSH", where=host)
    return data


def cri_dropin(config_toml: str, host: str = "") -> str:
    """The drop-in: config.toml's whole CRI section (an import replaces it, containerd#5837)
    with the `nvidia` runtime added, a copy of runc's settings with BinaryName set (as nvidia-ctk
    does)."""
    data = _config(config_toml, host)
    cri = copy.deepcopy(data.get("plugins", {}).get(CRI, {}))
    ctd = cri.setdefault("containerd", {})
    runtimes = ctd.setdefault("runtimes", {})
    base = copy.deepcopy(runtimes.get("runc") or {"runtime_type": "io.containerd.runc.v2"})
    base.setdefault("runtime_type", "io.containerd.runc.v2")
    base.setdefault("options", {})["BinaryName"] = BINARY
    runtimes[SSH_RUNTIME] = base
    head = ("# botlab gpu stage: the NVIDIA runtime. It carries config.toml's whole CRI section, which an\n"
            "# import replaces (containerd#5837). botlab owns this file only.\n")
    return head + toml_dumps({"version": 2, "plugins": {CRI: cri}})


_TABLE = re.compile(r"^\s*\[", re.M)
_IMPORTS = re.compile(r"^imports\s*=\s*\[[^\]]*\]\s*$", re.M)


def ensure_imports(config_toml: str, host: str = "") -> str:
    """config.toml with `imports` (a top-level key, before any table) naming the drop-ins."""
    data = _config(config_toml, host)
    current = list(data.get("imports") or [])
    if IMPORT_GLOB in current or CONTAINERD_DROPIN in current:
        return config_toml
    line = "imports = " + json.dumps([*current, IMPORT_GLOB])
    first = _TABLE.search(config_toml)
    top_end = first.start() if first else len(config_toml)
    top, rest = config_toml[:top_end], config_toml[top_end:]
    if _IMPORTS.search(top):
        return _IMPORTS.sub(line, top, count=1) + rest
    version = re.search(r"^version\s*=.*$", top, re.M)
    if version:
        return top[:version.end()] + "\n" + line + top[version.end():] + rest
    return line + "\n" + config_toml


def effective_exec_start(unit_cat: str, exclude: str = DOCKER_DROPIN) -> str:
    """docker.service's ExecStart from `systemctl cat` (the unit, then its drop-ins in order; an
    empty `ExecStart=` resets), leaving out `exclude` (botlab's own drop-in), so the result does
    not feed on itself."""
    starts: list[str] = []
    path = ""
    section = ""
    pending = ""
    for raw in unit_cat.splitlines():
        if raw.startswith("# /"):
            path, section, pending = raw[2:].strip(), "", ""
            continue
        if path == exclude:
            continue
        line = pending + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and re.match(r"ExecStart\s*=", line):
            value = line.split("=", 1)[1].strip()
            starts = [] if not value else [*starts, value]
    if not starts:
        raise ValueError("docker.service has no ExecStart")
    if len(starts) > 1:
        raise ValueError("docker.service has more than one ExecStart")
    return starts[0]


def daemon_json_declares(text: str | None) -> bool:
    """Whether /etc/docker/daemon.json declares the `nvidia` runtime (botlab never edits it)."""
    if not text:
        return False
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("runtimes"), dict) and SSH_RUNTIME in data["runtimes"]


def dump_runtime(dump: str | None, name: str) -> str | None:
    """The BinaryName `containerd config dump` gives runtime `name` (None: no such runtime)."""
    if not dump:
        return None
    try:
        data = tomllib.loads(dump)
    except tomllib.TOMLDecodeError:
        return None
    runtimes = data.get("plugins", {}).get(CRI, {}).get("containerd", {}).get("runtimes", {})
    if name not in runtimes:
        return None
    return str((runtimes[name].get("options") or {}).get("BinaryName", ""))


def docker_has_runtime(runtimes_json: str | None) -> bool:
    try:
        data = json.loads(runtimes_json or "null")
    except ValueError:
        return False
    return isinstance(data, dict) and SSH_RUNTIME in data


# --- changes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetGpuDriver(Change):
    """`juju config APP gpu_driver=nvidia`."""

    application: str = ""
    option: str = "gpu_driver"
    value: str = "nvidia"
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class WaitCharm(Change):
    """The option is right, a host does not show the runtime yet: wait for the charm's hook."""

    host: str = ""


@dataclass(frozen=True)
class HostStep(Change):
    """One playbook step on one host, with the exact commands it runs (and a file's diff)."""

    host: str = ""
    step: str = ""
    commands: tuple[str, ...] = ()
    diff: str = ""


@dataclass(frozen=True)
class Restart(Change):
    """A handler on one host, run once after its steps: daemon-reload or a service restart."""

    host: str = ""
    handler: str = ""
    command: str = ""


@dataclass(frozen=True)
class Unreachable(Change):
    """A host whose facts could not be read; apply converges the others, then fails naming it."""

    host: str = ""


@dataclass
class GpuPlan(Plan):
    method: str = ""
    runtime: str = ""
    facts: dict[str, HostFacts] = field(default_factory=dict, repr=False)
    host_plans: dict[str, HostPlan] = field(default_factory=dict, repr=False)
    errors: dict[str, str] = field(default_factory=dict)  # host -> why it could not be planned
    model: JujuModel | None = field(default=None, repr=False)


# --- the stage ---------------------------------------------------------------------------------


def _playbook_file(name: str) -> Any:
    return lambda inv: PLAYBOOKS / name


def host_variables(method: str, host: str, f: HostFacts) -> dict[str, Any]:
    """The playbook's variables for one GPU host, computed from its facts (pure)."""
    base: dict[str, Any] = {"hostname": host, "gpu": True, "gpus": f.gpus or 0}
    if method == "ssh-containerd":
        if f.config_toml is None:
            raise ValueError(f"{CONFIG_TOML} is missing (is the containerd charm deployed on {host}?)")
        return {**base, "runtime": "containerd", "cri_dropin": cri_dropin(f.config_toml, host),
                "config_toml": ensure_imports(f.config_toml, host)}
    if f.docker_unit is None:
        raise ValueError("docker.service is not installed (is the bundle's docker runtime deployed here?)")
    declared = daemon_json_declares(f.daemon_json)
    start = effective_exec_start(f.docker_unit)
    return {**base, "runtime": "docker", "declared": declared,
            "exec_start": start.replace(ADD_RUNTIME, "").rstrip()}



async def ssh_host_plan(ssh: SshDriver, method: str, host: str, facts: HostFacts) -> HostPlan:
    """One GPU host's playbook plan for an ssh method: its variables from `facts`, then the
    playbook's own facts (with the handlers a run cut short left owed) in check mode."""
    return await check_host(ssh, playbook_of(method), host, host_variables(method, host, facts))


@functools.lru_cache(maxsize=4)
def playbook_of(method: str) -> Playbook:
    return Playbook.load(CONTAINERD_PLAYBOOK if method == "ssh-containerd" else DOCKER_PLAYBOOK)


def method_of(inv: Inventory) -> tuple[str, str]:
    """(method, runtime name it configures)."""
    k8s = inv.kubernetes
    if k8s.gpu_method == "charm":
        return "charm", CHARM_RUNTIME
    return f"ssh-{k8s.container_runtime}", SSH_RUNTIME


async def _gather(work: Mapping[str, Awaitable[Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Run per host at once; (results, errors) by host. One host's failure stops no other."""
    hosts = list(work)
    done = await asyncio.gather(*work.values(), return_exceptions=True)
    ok: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for host, result in zip(hosts, done, strict=True):
        if isinstance(result, StageError):
            errors[host] = result.message
        elif isinstance(result, (ValueError, OSError)):
            errors[host] = str(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            ok[host] = result
    return ok, errors


def _failed(errors: Mapping[str, str], of: int, what: str) -> StageError:
    listed = "; ".join(f"{h}: {e}" for h, e in sorted(errors.items()))
    return StageError(f"{what} failed on {len(errors)} of {of} GPU host(s): {listed}", system="SSH",
                      hint="fix the cause, then run `botlab up`: hosts already done make no changes")


class GpuStage(Stage[GpuPlan]):
    name = "gpu"
    systems = ("SSH",)
    inputs = Inputs(
        keys=("lab", "machines[].hostname", "machines[].roles", "machines[].hardware.gpus",
              "kubernetes.gpu_method", "kubernetes.container_runtime", "artifacts.nvidia_device_plugin"),
        files=(("gpu-containerd playbook", _playbook_file("gpu-containerd.yaml")),
               ("gpu-containerd drop-in template", _playbook_file("templates/gpu-containerd-dropin.toml.j2")),
               ("gpu-containerd config template", _playbook_file("templates/gpu-containerd-config.toml.j2")),
               ("gpu-docker playbook", _playbook_file("gpu-docker.yaml")),
               ("gpu-docker drop-in template", _playbook_file("templates/gpu-docker-dropin.conf.j2"))),
        upstream=(EnlistOutputs, KubernetesOutputs),
    )
    outputs = GpuOutputs

    def __init__(self, settle_s: float = SETTLE_S, poll_s: float = POLL_S) -> None:
        self.settle_s = settle_s
        self.poll_s = poll_s

    async def precheck(self, ctx: StageContext) -> None:
        method, _ = method_of(ctx.inventory)
        if method != "charm":
            playbook_of(method)

    # -- reading -----------------------------------------------------------------------------

    @staticmethod
    def gpu_hosts(ctx: StageContext) -> list[str]:
        return [m.hostname for m in ctx.inventory.with_role("gpu")]

    async def _ssh(self, ctx: StageContext, cluster: KubernetesOutputs, hosts: Iterable[str]) -> SshDriver:
        ssh = await ctx.drivers.ssh()
        for host in hosts:
            h = cluster.hosts.get(host)
            if h is None or not h.address:
                continue  # ssh.target() names it
            ssh.know(host, h.address, h.host_keys)
        return ssh

    def _expected(self, ctx: StageContext) -> dict[str, int]:
        """GPUs per GPU host as MAAS's commissioning found them (enlist), else the inventory's."""
        enlisted = ctx.outputs(EnlistOutputs)
        recorded = enlisted.machines if enlisted else {}
        out = {}
        for m in ctx.inventory.with_role("gpu"):
            out[m.hostname] = recorded[m.hostname].hardware.gpus if m.hostname in recorded else m.hardware.gpus
        return out

    def _check_counts(self, ctx: StageContext, facts: Mapping[str, HostFacts]) -> dict[str, str]:
        """A disagreement between MAAS's hardware facts and nvidia-smi, per host."""
        problems = {}
        for host, expected in self._expected(ctx).items():
            f = facts.get(host)
            if f is None:
                continue
            if f.gpus is None:
                problems[host] = "`nvidia-smi -L` failed (no NVIDIA driver?)"
            elif f.gpus != expected or expected == 0:
                problems[host] = (f"MAAS's hardware facts (enlist) count {expected} GPU(s), `nvidia-smi -L` lists"
                                  f" {f.gpus}")
        return problems

    # -- plan ------------------------------------------------------------------------------------

    async def plan(self, ctx: StageContext) -> GpuPlan:
        inv = ctx.inventory
        method, runtime = method_of(inv)
        gpu = self.gpu_hosts(ctx)
        plan = GpuPlan(method=method, runtime=runtime)
        cluster = ctx.outputs(KubernetesOutputs)
        if cluster is None:
            plan.changes = [Change("configure", f"host {h}", f"runtime {runtime} by {method}; the exact"
                                   " commands come from the host's facts once the kubernetes stage has run")
                            for h in gpu]
            return plan
        ssh = await self._ssh(ctx, cluster, gpu)
        facts, errors = await _gather({h: read_facts(ssh, h, PLAN_FACTS[method]) for h in gpu})
        counts = self._check_counts(ctx, facts)
        if counts:
            listed = "; ".join(f"{h}: {e}" for h, e in sorted(counts.items()))
            raise StageError(f"GPU count mismatch on {len(counts)} host(s): {listed}", system="SSH",
                             operation="nvidia-smi -L",
                             hint="check the host's GPUs and driver, or the inventory's roles/hardware.gpus")
        plan.facts, plan.errors = facts, errors
        if method == "charm":
            await self._plan_charm(ctx, cluster, plan)
        else:
            await self._plan_ssh(ctx, ssh, plan)
        for host, error in sorted(errors.items()):
            plan.changes.insert(0, Unreachable("retry", f"host {host}", error, host=host))
        plan.observed = {"method": method, "hosts": sorted(facts), "unreachable": sorted(errors),
                         "todo": sorted(f"{c.action} {c.target}" for c in plan.todo)}
        return plan

    async def _plan_charm(self, ctx: StageContext, cluster: KubernetesOutputs, plan: GpuPlan) -> None:
        juju = await ctx.drivers.juju()
        model = await juju.open_model(cluster.model, cluster.model_uuid or None)
        plan.model = model
        status = await model.status()
        apps = containerd_apps(status, cluster, self.gpu_hosts(ctx))
        for app, hosts in sorted(apps.items()):
            config = await model.application_config(app)
            current = str(config.get("gpu_driver", ""))
            if current != "nvidia":
                plan.changes.append(SetGpuDriver("config", f"application {app}",
                                                 f"gpu_driver is {current or 'unset'}, wanted nvidia (GPU hosts"
                                                 f" {', '.join(hosts)})", application=app, hosts=tuple(hosts)))
        setting = {h for c in plan.changes if isinstance(c, SetGpuDriver) for h in c.hosts}
        for host, f in sorted(plan.facts.items()):
            if host in setting:
                continue
            binary = dump_runtime(f.dump, CHARM_RUNTIME)
            if binary == BINARY and f.binary:
                plan.changes.append(Change("ok", f"host {host}", f"runtime {CHARM_RUNTIME} registered ({BINARY})"))
            else:
                why = (f"containerd config has no runtime {CHARM_RUNTIME}" if binary is None
                       else f"runtime {CHARM_RUNTIME} runs {binary or 'nothing'}" if binary != BINARY
                       else f"{BINARY} missing")
                plan.changes.append(WaitCharm("wait", f"host {host}", f"gpu_driver is nvidia but {why}: waiting"
                                              " for the charm", host=host))

    async def _plan_ssh(self, ctx: StageContext, ssh: SshDriver, plan: GpuPlan) -> None:
        host_plans, errors = await _gather({h: ssh_host_plan(ssh, plan.method, h, f) for h, f in plan.facts.items()})
        plan.errors.update(errors)
        for host in errors:
            plan.facts.pop(host, None)
        plan.host_plans = host_plans
        ok: list[Change] = []
        for host, hp in sorted(host_plans.items()):
            for s in hp.steps:
                if s.action == "change":
                    verb = "remove" if s.step.kind == "command" else "write"
                    plan.changes.append(HostStep(verb, f"{s.step.name} on {host}", s.reason, host=host,
                                                 step=s.step.name, commands=s.commands, diff=s.diff))
                elif s.action == "ok":
                    ok.append(Change("ok", f"{s.step.name} on {host}", s.reason))
            for name in hp.handlers:
                why = "owed by a run cut short before it ran" if name in hp.owed else "a step changed"
                plan.changes.append(Restart("restart" if name.startswith("restart") else "reload",
                                            f"{name} on {host}", why, host=host, handler=name,
                                            command=handler_commands(name) or ""))
            if not hp.needed:
                declared = plan.method == "ssh-docker" and daemon_json_declares(plan.facts[host].daemon_json)
                ok.append(Change("ok", f"host {host}", f"{DAEMON_JSON} declares the runtime: left alone"
                                 if declared else f"runtime {SSH_RUNTIME} configured"))
        plan.changes.extend(ok)

    # -- apply -------------------------------------------------------------------------------------

    async def apply(self, ctx: StageContext, plan: GpuPlan) -> GpuOutputs:
        inv = ctx.inventory
        cluster = ctx.outputs(KubernetesOutputs)
        if cluster is None:
            raise StageError("the kubernetes stage has not run", hint="run `botlab up`")
        gpu = self.gpu_hosts(ctx)
        ssh = await self._ssh(ctx, cluster, gpu)
        errors = dict(plan.errors)
        if plan.method == "charm":
            await self._apply_charm(ctx, ssh, cluster, plan, errors)
        else:
            work = {h: self._apply_host(ctx, ssh, plan.method, hp) for h, hp in plan.host_plans.items()
                    if hp.needed}
            _, failed = await _gather(work)
            errors.update(failed)
        for host in gpu:
            if host not in errors:
                ctx.set_progress(host, "done", f"runtime {plan.runtime} ({plan.method})")
        if errors:
            for host, error in errors.items():
                ctx.set_progress(host, "failed", error)
            raise _failed(errors, len(gpu), f"gpu ({plan.method})")
        await self._wait_units(ctx, cluster, gpu, None)
        await self._schedulable(ctx, cluster, ssh, plan.method)
        return GpuOutputs(container_runtime=inv.kubernetes.container_runtime,
                          hosts={h: GpuHost(runtime=plan.runtime, method="charm" if plan.method == "charm" else "ssh",
                                            gpus=plan.facts[h].gpus or 0) for h in gpu if h in plan.facts})

    async def _apply_host(self, ctx: StageContext, ssh: SshDriver, method: str, hp: HostPlan) -> HostResult:
        """Apply one host's plan. When the connection breaks mid-way, the host is read again
        over a fresh connection and what is still to do (handlers owed included) applied, once:
        safe because every step is computed from the host's facts."""
        from botlab.drivers.ssh import ConnectionLost

        result = HostResult(hp.host)
        ctx.set_progress(hp.host, "applying", ", ".join([s.step.name for s in hp.todo] + list(hp.handlers)))
        try:
            await apply_host(ssh, hp, result)
        except ConnectionLost as exc:
            ctx.note(f"{hp.host}: {exc.message}; reading the host again and going on")
            again = await ssh_host_plan(ssh, method, hp.host, await read_facts(ssh, hp.host, PLAN_FACTS[method]))
            result = HostResult(hp.host)
            if again.needed:
                await apply_host(ssh, again, result)
        if result.error is not None:
            raise StageError(result.error, system="SSH", where=hp.host)
        restarted = [h.name for h in result.handlers if h.status == "changed"]
        ctx.note(f"{hp.host}: " + ", ".join(s.name for s in result.steps if s.status == "changed")
                 + (f"; ran {', '.join(restarted)}" if restarted else ""))
        return result

    async def _apply_charm(self, ctx: StageContext, ssh: SshDriver, cluster: KubernetesOutputs, plan: GpuPlan,
                           errors: dict[str, str]) -> None:
        sets = [c for c in plan.todo if isinstance(c, SetGpuDriver)]
        waits = [c for c in plan.todo if isinstance(c, WaitCharm)]
        if not sets and not waits:
            return
        model = plan.model
        assert model is not None
        for c in sets:
            await model.set_config(c.application, {c.option: c.value})
            ctx.note(f"{c.application}: set {c.option}={c.value}")
        pending = {h for c in sets for h in c.hosts} | {c.host for c in waits}
        pending -= set(errors)
        await self._wait_units(ctx, cluster, sorted(pending), ssh)

    async def _wait_units(self, ctx: StageContext, cluster: KubernetesOutputs, hosts: list[str],
                          ssh: SshDriver | None) -> None:
        """Until the units on `hosts` are active/idle for settle_s (and, with `ssh`, the charm's
        runtime shows in `containerd config dump` on each), within kubernetes.timeout."""
        if not hosts:
            return
        juju = await ctx.drivers.juju()
        model = await juju.open_model(cluster.model, cluster.model_uuid or None)
        timeout = ctx.inventory.kubernetes.timeout
        deadline = time.monotonic() + timeout
        settled_since: float | None = None
        missing: list[str] = list(hosts)
        status = await model.status()
        while True:
            pending = unsettled(status, cluster, hosts)
            now = time.monotonic()
            for row in pending[:12]:
                ctx.show(row.split(" ", 1)[0], "waiting", row)
            if not pending:
                settled_since = settled_since or now
                if now - settled_since >= self.settle_s:
                    if ssh is None:
                        return
                    facts, errors = await _gather({h: read_facts(ssh, h, PLAN_FACTS["charm"]) for h in missing})
                    missing = sorted([h for h, f in facts.items()
                                      if dump_runtime(f.dump, CHARM_RUNTIME) != BINARY or not f.binary] + list(errors))
                    if not missing:
                        ctx.event(f"runtime {CHARM_RUNTIME} registered on {', '.join(hosts)}")
                        return
                    settled_since = None
            else:
                settled_since = None
            if now >= deadline:
                what = "; ".join(pending[:6]) or ", ".join(f"{h}: no runtime {CHARM_RUNTIME} in containerd's config"
                                                         for h in missing)
                raise StageError(f"timed out after {timeout}s waiting for: {what}", system="Juju",
                                 operation="wait for the GPU hosts", where=f"model {cluster.model}",
                                 hint=f"see `juju status -m {cluster.model}`; fix the cause, then `botlab up`")
            await model.changed(min(self.poll_s, max(0.0, deadline - now)))
            status = model.live()

    # -- the cluster: GPUs schedulable ------------------------------------------------------------

    async def _kube(self, ctx: StageContext, cluster: KubernetesOutputs) -> KubeDriver:
        if not cluster.kubeconfig:
            raise StageError("the kubernetes stage recorded no kubeconfig", hint="run `botlab up kubernetes`")
        return await ctx.drivers.kube(Path(cluster.kubeconfig))

    async def _schedulable(self, ctx: StageContext, cluster: KubernetesOutputs, ssh: SshDriver, method: str) -> None:
        """The device plugin on the GPU Nodes (gpu_cluster.py), with a RuntimeClass whose handler
        is the runtime name read on every GPU host just now."""
        from botlab import artifacts
        from botlab.stages import gpu_cluster

        runtime_class = None if method == "charm" else SSH_RUNTIME
        gpu = self.gpu_hosts(ctx)
        if runtime_class:
            facts, errors = await _gather({h: read_facts(ssh, h, ("dump", "docker-runtimes")) for h in gpu})
            lacking = sorted([h for h, f in facts.items() if not (
                dump_runtime(f.dump, runtime_class) if method == "ssh-containerd" else docker_has_runtime(
                    f.docker_runtimes))] + list(errors))
            if lacking:
                raise StageError(f"runtime {runtime_class!r} is not configured on {', '.join(lacking)}: a RuntimeClass"
                                 " with that handler would leave GPU pods failing there", system="SSH",
                                 hint="run `botlab up gpu` again; if it persists, see the host's container runtime")
        cache = await ctx.drivers.artifacts()
        manifest = await asyncio.to_thread(cache.read, artifacts.artifact(ctx.inventory, "nvidia_device_plugin"))
        kube = await self._kube(ctx, cluster)
        counts = self._expected(ctx)
        await gpu_cluster.ensure_schedulable(kube, manifest, counts, runtime_class,
                                             timeout=ctx.inventory.kubernetes.timeout, poll_s=self.poll_s)
        ctx.event("GPU Nodes advertise nvidia.com/gpu: " + ", ".join(f"{h} {n}" for h, n in sorted(counts.items())))

    async def _check_schedulable(self, ctx: StageContext, cluster: KubernetesOutputs, method: str) -> list[Check]:
        from botlab.stages import gpu_cluster

        kube = await self._kube(ctx, cluster)
        short = await gpu_cluster.missing(kube, self._expected(ctx))
        checks = [Check("GPU Nodes advertise nvidia.com/gpu", not short, "; ".join(short) or "every GPU Node")]
        if not short:
            checks.append(await gpu_cluster.smoke(kube, set(self.gpu_hosts(ctx)),
                                                  None if method == "charm" else SSH_RUNTIME,
                                                  timeout=min(60.0, ctx.inventory.kubernetes.timeout),
                                                  poll_s=min(self.poll_s, 0.5)))
        return checks

    # -- verify -------------------------------------------------------------------------------

    async def verify(self, ctx: StageContext) -> list[Check]:
        cluster = ctx.outputs(KubernetesOutputs)
        if cluster is None:
            return [Check("kubernetes", False, "the kubernetes stage is not done")]
        method, runtime = method_of(ctx.inventory)
        gpu = self.gpu_hosts(ctx)
        others = [h for h in cluster.hosts if h not in gpu]
        ssh = await self._ssh(ctx, cluster, [*gpu, *others])
        facts, errors = await _gather({h: read_facts(ssh, h) for h in [*gpu, *others]})
        checks: list[Check] = []
        for host in gpu:
            if host in errors:
                checks.append(Check(f"runtime on {host}", False, errors[host]))
                continue
            checks.append(host_check(method, host, facts[host]))
        for host in others:
            if host in errors:
                checks.append(Check(f"untouched {host}", False, errors[host]))
            else:
                own = facts[host].own_files
                checks.append(Check(f"untouched {host}", not own, "botlab's drop-ins found: " + ", ".join(own)
                                    if own else "no botlab drop-ins"))
        counts = self._check_counts(ctx, {h: f for h, f in facts.items() if h in gpu})
        checks += [Check(f"GPUs on {h}", False, e) for h, e in sorted(counts.items())]
        if method != "charm":
            plan = GpuPlan(method=method, runtime=runtime, facts={h: f for h, f in facts.items() if h in gpu})
            await self._plan_ssh(ctx, ssh, plan)
            drift = [f"{c.action} {c.target}" for c in plan.todo]
            checks.append(Check("playbook", not drift and not plan.errors,
                                "; ".join(drift[:5] + [f"{h}: {e}" for h, e in plan.errors.items()]) or "no changes"))
        else:
            juju = await ctx.drivers.juju()
            model = await juju.open_model(cluster.model, cluster.model_uuid or None)
            status = await model.status()
            for app in sorted(containerd_apps(status, cluster, gpu)):
                value = str((await model.application_config(app)).get("gpu_driver", ""))
                checks.append(Check(f"{app} gpu_driver", value == "nvidia", value or "unset"))
        juju = await ctx.drivers.juju()
        model = await juju.open_model(cluster.model, cluster.model_uuid or None)
        pending = unsettled(await model.status(), cluster, gpu)
        checks.append(Check("units on GPU hosts", not pending, "; ".join(pending[:5]) or "active/idle"))
        checks += await self._check_schedulable(ctx, cluster, method)
        return checks

    # -- teardown -------------------------------------------------------------------------------

    async def destroy(self, ctx: StageContext) -> str | None:
        """Removes botlab's own drop-ins (ssh methods), restarting the service only where one was
        there. gpu_driver is left as it is: the bundle (kubernetes stage) sets it, and the model
        goes with `botlab down` anyway. Unreachable hosts are noted, not fatal: the kubernetes
        stage's teardown releases them next."""
        cluster = ctx.outputs(KubernetesOutputs)
        if cluster is None or ctx.store.stage(self.name) is None:
            return None  # never ran here: no host carries a drop-in of botlab's
        hosts = [h for h in cluster.hosts if cluster.hosts[h].address]
        ssh = await self._ssh(ctx, cluster, hosts)
        script = "\n".join([
            "found=", *(f"if [ -e {shlex.quote(p)} ]; then rm -f -- {shlex.quote(p)}; found=\"$found {p}\"; fi"
                        for p in OWN_FILES),
            f"case \"$found\" in *{DOCKER_DROPIN}*) systemctl daemon-reload; systemctl restart docker;; esac",
            f"case \"$found\" in *{CONTAINERD_DROPIN}*) systemctl restart containerd;; esac",
            "echo \"removed:$found\""])

        async def one(host: str) -> str:
            result = await ssh.run(host, script, sudo=True)
            if not result.ok:
                raise StageError(f"exit {result.exited}: {result.stderr}", where=host)
            return result.stdout.strip().removeprefix("removed:").strip()

        done, errors = await _gather({h: one(h) for h in hosts})
        for host, error in sorted(errors.items()):
            ctx.note(f"{host}: could not remove botlab's drop-ins ({error}); its machine is released next")
        removed = {h: r for h, r in done.items() if r}
        if not removed:
            return None
        return "removed botlab's drop-ins on " + ", ".join(f"{h} ({r})" for h, r in sorted(removed.items()))


def containerd_apps(status: ModelStatus, cluster: KubernetesOutputs, gpu: Iterable[str]) -> dict[str, list[str]]:
    """The containerd applications riding on the GPU hosts (subordinates whose charm is
    containerd), each with its GPU hosts; one that also rides on a non-GPU host is an error
    (gpu_driver=nvidia would apply there too)."""
    gpu = list(gpu)
    host_of = {cluster.hosts[h].machine: h for h in cluster.hosts}
    apps: dict[str, set[str]] = {}
    for unit in status.units.values():
        app = status.applications.get(unit.application)
        if not unit.principal or app is None or app.charm != "containerd":
            continue
        host = host_of.get(unit.machine.split("/")[0])
        if host is not None:
            apps.setdefault(unit.application, set()).add(host)
    ours = {a: hs for a, hs in apps.items() if hs & set(gpu)}
    for name, hs in sorted(ours.items()):
        shared = sorted(hs - set(gpu))
        if shared:
            raise StageError(f"application {name} rides on GPU hosts and on {', '.join(shared)} too: its gpu_driver"
                             " would apply there", system="Juju", where=name,
                             hint="give GPU workers their own containerd application (the built-in bundle's"
                             " containerd-gpu), or use kubernetes.gpu_method: ssh")
    missing = sorted(set(gpu) - {h for hs in ours.values() for h in hs})
    if missing:
        raise StageError(f"no containerd subordinate on GPU host(s) {', '.join(missing)}", system="Juju",
                         hint="run `botlab up kubernetes`: the bundle relates containerd-gpu to the GPU workers")
    return {a: sorted(hs) for a, hs in ours.items()}


def unsettled(status: ModelStatus, cluster: KubernetesOutputs, hosts: Iterable[str]) -> list[str]:
    """Units on `hosts` (principals and subordinates) not active/idle, as `unit on host (state: msg)`."""
    machines = {cluster.hosts[h].machine: h for h in hosts if h in cluster.hosts}
    out = []
    for unit in sorted(status.units.values(), key=lambda u: u.name):
        host = machines.get(unit.machine.split("/")[0]) if unit.machine else None
        if host is None:
            continue
        if unit.workload != "active" or unit.agent not in ("idle", ""):
            out.append(f"{unit.name} on {host} ({unit.workload}/{unit.agent}: {unit.workload_message})")
    return out


def host_check(method: str, host: str, f: HostFacts) -> Check:
    """The runtime registered and its service active on one GPU host."""
    problems = []
    if f.gpus is None:
        problems.append("`nvidia-smi -L` failed")
    if not f.binary:
        problems.append(f"{BINARY} missing")
    if method == "ssh-docker":
        if not docker_has_runtime(f.docker_runtimes):
            problems.append(f"`docker info` shows no runtime {SSH_RUNTIME}")
        if f.active.get("docker") != "active":
            problems.append(f"docker is {f.active.get('docker') or 'unknown'}")
    else:
        name = CHARM_RUNTIME if method == "charm" else SSH_RUNTIME
        binary = dump_runtime(f.dump, name)
        if binary is None:
            problems.append(f"`containerd config dump` has no runtime {name}")
        elif binary != BINARY:
            problems.append(f"runtime {name} runs {binary or 'no BinaryName'}, not {BINARY}")
        if f.active.get("containerd") != "active":
            problems.append(f"containerd is {f.active.get('containerd') or 'unknown'}")
    runtime = SSH_RUNTIME if method != "charm" else CHARM_RUNTIME
    return Check(f"runtime on {host}", not problems, "; ".join(problems) or f"{runtime} registered, service active,"
                 f" {f.gpus} GPU(s)")
