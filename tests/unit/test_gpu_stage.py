"""The gpu stage's logic on recorded facts and in-memory fakes of botlab's own driver interfaces
(SshDriver.run, JujuModel): what each method plans, daemon.json left alone, the charm's
ExecStart flags kept, a GPU count mismatch, drift. End to end: tests/lab/test_gpu_stage.py."""

from __future__ import annotations

import asyncio
import base64
import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from botlab.context import RunContext, StageContext
from botlab.drivers.juju import JujuApplication, JujuUnit, ModelStatus
from botlab.drivers.ssh import Result
from botlab.errors import StageError
from botlab.inventory import load_inventory
from botlab.outputs import ClusterHost, EnlistedMachine, EnlistOutputs, GpuOutputs, Hardware, KubernetesOutputs
from botlab.report import SilentReporter
from botlab.stages.gpu import (
    ADD_RUNTIME,
    BINARY,
    CONFIG_TOML,
    CONTAINERD_DROPIN,
    DAEMON_JSON,
    DOCKER_DROPIN,
    GpuStage,
    HostStep,
    Restart,
    SetGpuDriver,
    cri_dropin,
    daemon_json_declares,
    dump_runtime,
    effective_exec_start,
    ensure_imports,
    facts_script,
    gpu_count,
    parse_facts,
)
from botlab.state import StateStore
from tests.support.inventory import BASE, write_inventory

CHARM_CONFIG = """\
version = 2

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.9"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = true
"""
DOCKER_UNIT = "/lib/systemd/system/docker.service"
CHARM_EXEC = "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock --log-opt max-size=10m"
UNIT_TEXT = f"[Unit]\nDescription=Docker\n\n[Service]\nType=notify\nExecStart={CHARM_EXEC}\n"
NVIDIA_SMI = "GPU 0: NVIDIA A100 (UUID: GPU-0)\nGPU 1: NVIDIA A100 (UUID: GPU-1)"


# --- pure functions on recorded facts ------------------------------------------------------------


def test_the_containerd_drop_in_carries_the_whole_cri_section_with_the_runtime_added() -> None:
    dropin = tomllib.loads(cri_dropin(CHARM_CONFIG))
    cri = dropin["plugins"]["io.containerd.grpc.v1.cri"]
    assert dropin["version"] == 2
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.9"  # the charm's settings survive the import
    runtimes = cri["containerd"]["runtimes"]
    assert runtimes["runc"]["options"] == {"SystemdCgroup": True}
    assert runtimes["nvidia"] == {"runtime_type": "io.containerd.runc.v2",
                                  "options": {"SystemdCgroup": True, "BinaryName": BINARY}}
    assert cri["containerd"]["default_runtime_name"] == "runc"  # not made the default


def test_the_imports_line_is_added_at_the_top_level_once() -> None:
    once = ensure_imports(CHARM_CONFIG)
    assert once.splitlines()[:2] == ["version = 2", 'imports = ["/etc/containerd/conf.d/*.toml"]']
    assert tomllib.loads(once)["imports"] == ["/etc/containerd/conf.d/*.toml"]
    assert ensure_imports(once) == once
    other = CHARM_CONFIG.replace("version = 2\n", 'version = 2\nimports = ["/etc/x.toml"]\n')
    assert tomllib.loads(ensure_imports(other))["imports"] == ["/etc/x.toml", "/etc/containerd/conf.d/*.toml"]


def test_the_effective_exec_start_keeps_the_charms_flags_and_ignores_botlabs_own_drop_in() -> None:
    cat = (f"# {DOCKER_UNIT}\n{UNIT_TEXT}\n# /etc/systemd/system/docker.service.d/10-charm.conf\n[Service]\n"
           f"ExecStart=\nExecStart=/usr/bin/dockerd \\\n  -H fd:// --bip=10.1.0.1/16\n\n# {DOCKER_DROPIN}\n"
           f"[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// {ADD_RUNTIME}\n")
    assert effective_exec_start(cat) == "/usr/bin/dockerd -H fd:// --bip=10.1.0.1/16"
    assert effective_exec_start(f"# {DOCKER_UNIT}\n{UNIT_TEXT}") == CHARM_EXEC


def test_daemon_json_declaring_the_runtime_is_recognised() -> None:
    assert daemon_json_declares('{"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}}')
    assert not daemon_json_declares('{"log-driver": "json-file"}')
    assert not daemon_json_declares(None) and not daemon_json_declares("{not json")


def test_facts_round_trip_through_the_script_sections() -> None:
    nonce = "abc123"
    script = facts_script(nonce)
    assert "nvidia-smi -L" in script and "containerd config dump" in script and "systemctl cat docker" in script

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    out = "\n".join([f"@@{nonce} nvidia-smi", b64(NVIDIA_SMI), f"@@{nonce} config.toml", b64(CHARM_CONFIG),
                     f"@@{nonce} daemon.json", "absent", f"@@{nonce} binary", "yes", f"@@{nonce} active",
                     "containerd=active", "docker=inactive", f"@@{nonce} own", CONTAINERD_DROPIN, f"@@{nonce} end"])
    facts = parse_facts(out, nonce)
    assert facts.gpus == 2 and facts.config_toml == CHARM_CONFIG and facts.daemon_json is None
    assert facts.binary and facts.active["containerd"] == "active" and facts.own_files == (CONTAINERD_DROPIN,)
    assert gpu_count("No devices were found") == 0
    with pytest.raises(StageError, match="ended early"):
        parse_facts(out.replace(f"@@{nonce} end", ""), nonce)


# --- fakes of botlab's drivers ------------------------------------------------------------------


class FakeHost:
    """One host's files, GPUs and services, as the fake SSH driver shows them."""

    def __init__(self, gpus: int = 0, *, runtime: str = "containerd", daemon_json: str | None = None) -> None:
        self.files: dict[str, str] = {}
        self.gpus = gpus
        self.runtime = runtime
        self.restarts: list[str] = []
        self.charm_runtime = False  # the charm rendered nvidia-container-runtime into config.toml
        if runtime == "containerd":
            self.files[CONFIG_TOML] = CHARM_CONFIG
        else:
            self.files[DOCKER_UNIT] = UNIT_TEXT
        if daemon_json is not None:
            self.files[DAEMON_JSON] = daemon_json

    def dump(self) -> str:
        """containerd's merged config: config.toml, then the drop-in if imported (replacing CRI)."""
        data = tomllib.loads(self.files[CONFIG_TOML])
        if "/etc/containerd/conf.d/*.toml" in data.get("imports", []) and CONTAINERD_DROPIN in self.files:
            data["plugins"].update(tomllib.loads(self.files[CONTAINERD_DROPIN])["plugins"])
        if self.charm_runtime:
            runtimes = data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
            runtimes["nvidia-container-runtime"] = {"runtime_type": "io.containerd.runc.v2",
                                                    "options": {"BinaryName": BINARY}}
        from botlab.stages.gpu import toml_dumps

        return toml_dumps(data)

    def docker_cat(self) -> str:
        parts = [f"# {DOCKER_UNIT}\n{self.files[DOCKER_UNIT]}"]
        parts += [f"# {p}\n{t}" for p, t in sorted(self.files.items()) if p.startswith("/etc/systemd/system/docker.")]
        return "\n".join(parts)

    def docker_runtimes(self) -> str:
        declared = daemon_json_declares(self.files.get(DAEMON_JSON)) or (
            DOCKER_DROPIN in self.files and ADD_RUNTIME in self.files[DOCKER_DROPIN] and "docker" in self.restarts)
        return '{"runc": {}, "nvidia": {}}' if declared else '{"runc": {}}'


def _b64(text: str | None) -> str:
    return "absent" if text is None else base64.b64encode(text.encode()).decode()


class FakeSsh:
    """SshDriver.run over FakeHosts: answers the gpu facts script, the playbook's facts script
    and runs its apply script's writes, removals and handlers."""

    def __init__(self, hosts: Mapping[str, FakeHost]) -> None:
        self.hosts = dict(hosts)
        self.known: dict[str, str] = {}
        self.round_trips: dict[str, int] = {}
        self.scripts: list[tuple[str, str]] = []
        self.down: set[str] = set()

        class Deadlines:
            call = 10.0

        self.deadlines = Deadlines()

    def know(self, host: str, address: str, host_keys: Any, port: int = 22) -> None:
        self.known[host] = address

    async def run(self, host: str, command: str, *, sudo: bool = False, stdin: str | None = None,
                  timeout: float | None = None) -> Result:
        if host in self.down:
            raise StageError("10.0.0.9: no answer within the deadline", system="SSH", where=host)
        self.round_trips[host] = self.round_trips.get(host, 0) + 1
        h = self.hosts[host]
        script = stdin or command
        self.scripts.append((host, script))
        nonce = m.group(1) if (m := re.search(r"@@([0-9a-f]+) ", script)) else ""
        if script.startswith("# botlab gpu facts"):
            out = [f"@@{nonce} nvidia-smi",
                   _b64("\n".join(f"GPU {i}: NVIDIA A100 (UUID: GPU-{i})" for i in range(h.gpus))) if h.gpus
                   else "failed",
                   f"@@{nonce} config.toml", _b64(h.files.get(CONFIG_TOML)),
                   f"@@{nonce} daemon.json", _b64(h.files.get(DAEMON_JSON)),
                   f"@@{nonce} docker-unit", _b64(h.docker_cat() if h.runtime == "docker" else None),
                   f"@@{nonce} dump", _b64(h.dump() if h.runtime == "containerd" else None),
                   f"@@{nonce} docker-runtimes", _b64(h.docker_runtimes() if h.runtime == "docker" else None),
                   f"@@{nonce} binary", "yes" if h.gpus else "no",
                   f"@@{nonce} active", f"{h.runtime}=active",
                   f"@@{nonce} own", *[p for p in (CONTAINERD_DROPIN, DOCKER_DROPIN) if p in h.files],
                   f"@@{nonce} end"]
            return Result(host, command, 0, "\n".join(out) + "\n", "")
        if script.startswith("exec 2>/dev/null"):  # the playbook's facts
            paths = sorted({shlex.split(p)[0] for p in re.findall(r"if \[ -f (\S+) \]", script)})
            out = []
            for i, path in enumerate(paths):
                out.append(f"@@{nonce} file {i}")
                if path in h.files:
                    out += ["644 root:root 1", base64.b64encode(h.files[path].encode()).decode()]
                else:
                    out.append("absent")
            for index in re.findall(r"@@[0-9a-f]+ guard (\d+)", script):
                out += [f"@@{nonce} guard {index}", f"unless={1 if DOCKER_DROPIN in h.files else 0}"]
            out.append(f"@@{nonce} end")
            return Result(host, command, 0, "\n".join(out) + "\n", "")
        if script.startswith("exec 2>&1"):  # the apply script
            out = []
            for index, body in re.findall(r"@@[0-9a-f]+ step (\d+)'\n(.*?)\nrc=", script, re.S):
                inner = " ".join(shlex.split(body))
                if (w := re.search(r"printf %s (\S+) \| base64 -d.*mv -f -- \"?\$tmp\"? (\S+)", inner, re.S)):
                    h.files[w.group(2)] = base64.b64decode(w.group(1)).decode()
                elif (r := re.search(r"rm -f -- (\S+)", inner)):
                    h.files.pop(r.group(1), None)
                out += [f"@@{nonce} step {index}", "", f"@@{nonce} rc {index} 0"]
            for index, body in re.findall(r"@@[0-9a-f]+ handler (\d+)'\n(.*?)\nrc=", script, re.S):
                h.restarts.append(shlex.split(shlex.split(body)[-2])[-1])  # sudo -n -- sh -c '...' </dev/null
                out += [f"@@{nonce} handler {index}", "", f"@@{nonce} hrc {index} 0"]
            return Result(host, command, 0, "\n".join(out) + "\n", "")
        raise AssertionError(f"unexpected command on {host}: {script[:80]}")

    async def close(self) -> None:
        pass


class FakeModel:
    """JujuModel's calls the gpu stage makes; a gpu_driver change makes the charm render the
    runtime on its GPU hosts (at once: the wait then finds everything settled)."""

    def __init__(self, hosts: Mapping[str, FakeHost], machines: Mapping[str, str], gpu_driver: str = "none") -> None:
        self.hosts = hosts
        self.config = {"containerd-gpu": {"gpu_driver": gpu_driver}, "containerd": {"gpu_driver": "none"}}
        self.calls: list[str] = []
        st = ModelStatus("demo-k8s", "uuid-1")
        st.applications["containerd"] = JujuApplication("containerd", "containerd", subordinate=True)
        st.applications["containerd-gpu"] = JujuApplication("containerd-gpu", "containerd", subordinate=True)
        for i, (host, mid) in enumerate(sorted(machines.items())):
            gpu = hosts[host].gpus > 0
            worker = "kubernetes-worker-gpu" if gpu else "kubernetes-worker"
            st.units[f"{worker}/{i}"] = JujuUnit(f"{worker}/{i}", worker, mid, "active", "", "idle")
            sub = "containerd-gpu" if gpu else "containerd"
            st.units[f"{sub}/{i}"] = JujuUnit(f"{sub}/{i}", sub, mid, "active", "", "idle", principal=f"{worker}/{i}")
        self.st = st
        self._render()

    def _render(self) -> None:
        for h in self.hosts.values():
            h.charm_runtime = bool(h.gpus) and self.config["containerd-gpu"]["gpu_driver"] == "nvidia"

    async def open_model(self, name: str, uuid: str | None = None) -> FakeModel:
        return self

    async def status(self) -> ModelStatus:
        return self.st

    def live(self) -> ModelStatus:
        return self.st

    async def changed(self, timeout: float) -> bool:
        await asyncio.sleep(0)
        return False

    async def application_config(self, application: str) -> dict[str, Any]:
        return dict(self.config[application])

    async def set_config(self, application: str, options: Mapping[str, str]) -> None:
        self.calls.append(f"set_config {application} {dict(options)}")
        self.config[application].update(options)
        self._render()


DEVICE_PLUGIN = b"""apiVersion: apps/v1
kind: DaemonSet
metadata: {name: nvidia-device-plugin-daemonset, namespace: kube-system}
spec: {template: {spec: {containers: [{name: ctr, image: nvcr.io/nvidia/k8s-device-plugin:v0.20.0}]}}}
"""


class FakeArtifacts:
    def read(self, artifact: Any) -> bytes:
        return DEVICE_PLUGIN


class FakeKube:
    """The cluster as botlab's KubeDriver sees it: Nodes for the hosts; once the device plugin
    DaemonSet runs (applied, and patched to select the GPU label), labelled GPU Nodes advertise
    their GPUs; a Pod requesting one lands on a Node advertising one."""

    server = "https://10.0.0.0:6443"

    def __init__(self, hosts: Mapping[str, FakeHost]) -> None:
        self.hosts = hosts
        self.labels: dict[str, dict[str, str]] = {h: {} for h in hosts}
        self.calls: list[str] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.selector: dict[str, str] = {}

    def _node(self, name: str) -> dict[str, Any]:
        running = bool(self.selector) and all(self.labels[name].get(k) == v for k, v in self.selector.items())
        gpus = self.hosts[name].gpus if running else 0
        return {"metadata": {"name": name, "labels": dict(self.labels[name])},
                "status": {"allocatable": {"nvidia.com/gpu": str(gpus)} if gpus else {}}}

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        if kind == "Node":
            return self._node(name) if name in self.hosts else None
        return self.objects.get((kind, name))

    async def label_node(self, name: str, labels: Mapping[str, str | None]) -> Any:
        self.calls.append(f"label {name} {dict(labels)}")
        self.labels[name].update({k: v for k, v in labels.items() if v is not None})

    async def apply(self, obj: Mapping[str, Any], *, force: bool = True) -> Any:
        self.calls.append(f"apply {obj['kind']} {obj['metadata']['name']}")
        self.objects[(obj["kind"], obj["metadata"]["name"])] = dict(obj)

    async def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: Mapping[str, Any], *,
                    manager: str = "botlab") -> Any:
        self.calls.append(f"patch {kind} {name} by {manager}")
        self.selector = dict(body["spec"]["template"]["spec"]["nodeSelector"])
        self.objects[(kind, name)]["botlab-patch"] = dict(body)

    async def create(self, obj: Mapping[str, Any]) -> Any:
        node = next((h for h in sorted(self.hosts) if self._node(h)["status"]["allocatable"]), None)
        self.objects[(obj["kind"], obj["metadata"]["name"])] = {**obj, "spec": {**obj["spec"], "nodeName": node}}
        self.calls.append(f"create {obj['kind']}")

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self.calls.append(f"delete {kind}")
        return self.objects.pop((kind, name), None) is not None


class FakeDrivers:
    def __init__(self, ssh: FakeSsh, model: FakeModel, kube: FakeKube) -> None:
        self._ssh, self._model, self._kube = ssh, model, kube

    async def ssh(self) -> FakeSsh:
        return self._ssh

    async def kube(self, kubeconfig: Path) -> FakeKube:
        return self._kube

    async def artifacts(self) -> FakeArtifacts:
        return FakeArtifacts()

    async def juju(self) -> FakeModel:
        return self._model

    async def close(self) -> None:
        pass


WORKERS = BASE.replace("""  - hostname: nfs-01
    roles: [nfs]""", """  - hostname: gpu-02
    roles: [worker, gpu]
    hardware: {cores: 8, memory: 16G, gpus: 2}
  - hostname: nfs-01
    roles: [nfs]""").replace("gpus: 1}", "gpus: 2}")


class GpuLab:
    """cp-01 and nfs-01 without GPUs, gpu-01 and gpu-02 with 2 each; enlist and kubernetes done."""

    def __init__(self, tmp: Path, runtime: str = "containerd", method: str | None = None,
                 daemon_json: str | None = None) -> None:
        text = WORKERS.replace("container_runtime: containerd", f"container_runtime: {runtime}")
        if method:
            text = text.replace("  channel: 1.31/stable\n", f"  channel: 1.31/stable\n  gpu_method: {method}\n")
        if runtime == "docker":
            (tmp / "bundle.yaml.j2").write_text("applications: {}\n")
            text = text.replace("  channel: 1.31/stable\n", f"  channel: 1.31/stable\n  bundle: {tmp}/bundle.yaml.j2\n")
        self.inventory = load_inventory(write_inventory(tmp, text))
        names = ["cp-01", "gpu-01", "gpu-02", "nfs-01"]
        self.hosts = {h: FakeHost(2 if h.startswith("gpu") else 0, runtime=runtime,
                                  daemon_json=daemon_json if h == "gpu-02" else None) for h in names}
        machines = {h: str(i) for i, h in enumerate(names)}
        self.ssh = FakeSsh(self.hosts)
        self.model = FakeModel(self.hosts, machines)
        self.kube = FakeKube(self.hosts)
        self.store = StateStore(self.inventory.state_dir)
        run = self.store.run_started("up")
        for stage in ("enlist", "kubernetes"):
            self.store.stage_started(stage, "fp", {}, run)
        self.store.stage_done("enlist", EnlistOutputs("demo", {
            h: EnlistedMachine(f"id-{h}", (), (), f"demo-pin-{h}", Hardware(4, 8192, self.hosts[h].gpus))
            for h in names}).to_data())
        cluster = {h: ClusterHost(machines[h], f"10.0.0.{i}", ("ssh-ed25519 AAAA",), ()) for i, h in enumerate(names)}
        outputs = KubernetesOutputs("lab", "demo-k8s", "uuid-1", str(tmp / "kubeconfig"), (), cluster)
        self.store.stage_done("kubernetes", outputs.to_data())
        self.stage = GpuStage(settle_s=0.0, poll_s=0.0)

    def ctx(self) -> StageContext:
        run = RunContext(self.inventory, self.store, SilentReporter(),
                         FakeDrivers(self.ssh, self.model, self.kube),  # type: ignore[arg-type]
                         {}, run_id=self.store.run_started("up"))
        return run.for_stage("gpu")

    def plan(self) -> Any:
        return asyncio.run(self.stage.plan(self.ctx()))

    def up(self) -> tuple[Any, GpuOutputs]:
        async def run() -> tuple[Any, GpuOutputs]:
            ctx = self.ctx()
            plan = await self.stage.plan(ctx)
            return plan, await self.stage.apply(ctx, plan)

        return asyncio.run(run())

    def verify(self) -> dict[str, Any]:
        return {c.name: c for c in asyncio.run(self.stage.verify(self.ctx()))}


def todo(plan: Any) -> list[str]:
    return [f"{c.action} {c.target}" for c in plan.todo]


# --- the stage -----------------------------------------------------------------------------------


def test_charm_sets_gpu_driver_on_the_gpu_hosts_containerd_application_then_makes_no_changes(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path)
    plan = lab.plan()
    assert todo(plan) == ["config application containerd-gpu"]
    change = plan.todo[0]
    assert isinstance(change, SetGpuDriver) and change.hosts == ("gpu-01", "gpu-02")
    _, outputs = lab.up()
    assert lab.model.calls == ["set_config containerd-gpu {'gpu_driver': 'nvidia'}"]
    assert outputs.hosts["gpu-01"].runtime == "nvidia-container-runtime" and outputs.hosts["gpu-01"].gpus == 2
    assert set(outputs.hosts) == {"gpu-01", "gpu-02"}
    assert all(c.ok for c in lab.verify().values())
    assert todo(lab.plan()) == []
    assert lab.hosts["cp-01"].files == {CONFIG_TOML: CHARM_CONFIG}  # nothing written over SSH, anywhere


def test_charm_drift_fails_verify_and_is_planned_again(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path)
    lab.up()
    asyncio.run(lab.model.set_config("containerd-gpu", {"gpu_driver": "none"}))  # behind botlab's back
    failing = [name for name, c in lab.verify().items() if not c.ok]
    assert "runtime on gpu-01" in failing and "containerd-gpu gpu_driver" in failing
    assert todo(lab.plan()) == ["config application containerd-gpu"]


def test_ssh_containerd_plans_the_drop_in_the_imports_line_and_one_restart(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path, method="ssh")
    plan = lab.plan()
    assert todo(plan) == [
        "write containerd drop-in with the nvidia runtime on gpu-01", "write imports line in config.toml on gpu-01",
        "restart restart containerd on gpu-01",
        "write containerd drop-in with the nvidia runtime on gpu-02", "write imports line in config.toml on gpu-02",
        "restart restart containerd on gpu-02"]
    step = next(c for c in plan.todo if isinstance(c, HostStep))
    assert any("base64 -d" in cmd for cmd in step.commands) and step.diff.startswith("--- /dev/null")
    _, outputs = lab.up()
    assert outputs.hosts["gpu-02"].runtime == "nvidia"
    assert lab.hosts["gpu-01"].restarts == ["containerd"] and lab.hosts["cp-01"].restarts == []
    assert dump_runtime(lab.hosts["gpu-01"].dump(), "nvidia") == BINARY
    assert all(c.ok for c in lab.verify().values())
    assert todo(lab.plan()) == []  # a second run makes no changes and restarts nothing


def test_ssh_containerd_drift_when_the_charm_drops_the_import(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path, method="ssh")
    lab.up()
    lab.hosts["gpu-01"].files[CONFIG_TOML] = CHARM_CONFIG  # the charm re-rendered it
    checks = lab.verify()
    assert not checks["runtime on gpu-01"].ok and "no runtime nvidia" in checks["runtime on gpu-01"].detail
    assert todo(lab.plan()) == ["write imports line in config.toml on gpu-01", "restart restart containerd on gpu-01"]


def test_ssh_docker_keeps_the_charms_flags_and_skips_a_host_whose_daemon_json_declares_it(tmp_path: Path) -> None:
    declared = '{"runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime"}}}'
    lab = GpuLab(tmp_path, runtime="docker", daemon_json=declared)
    plan = lab.plan()
    assert todo(plan) == ["write docker.service drop-in with the nvidia runtime on gpu-01",
                          "reload daemon-reload on gpu-01", "restart restart docker on gpu-01"]
    assert any(c.target == "host gpu-02" and "declares the runtime" in c.reason for c in plan.changes)
    assert [c.command for c in plan.todo if isinstance(c, Restart)] == ["systemctl daemon-reload",
                                                                        "systemctl restart docker"]
    lab.up()
    dropin = lab.hosts["gpu-01"].files[DOCKER_DROPIN]
    assert f"ExecStart=\nExecStart={CHARM_EXEC} {ADD_RUNTIME}\n" in dropin
    assert lab.hosts["gpu-02"].files[DAEMON_JSON] == declared and DOCKER_DROPIN not in lab.hosts["gpu-02"].files
    assert lab.hosts["gpu-01"].restarts == ["daemon-reload", "docker"] and lab.hosts["gpu-02"].restarts == []
    assert all(c.ok for c in lab.verify().values())
    assert todo(lab.plan()) == []  # the drop-in's own flag is not fed back into ExecStart


def test_a_gpu_count_mismatch_names_the_host_and_both_counts(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path)
    lab.hosts["gpu-02"].gpus = 1
    with pytest.raises(StageError) as caught:
        lab.plan()
    assert "gpu-02: MAAS's hardware facts (enlist) count 2 GPU(s), `nvidia-smi -L` lists 1" in str(caught.value)
    assert "gpu-01" not in str(caught.value)


def test_an_unreachable_host_fails_the_stage_naming_it_while_the_others_converge(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path, method="ssh")
    lab.ssh.down.add("gpu-02")
    plan = lab.plan()
    assert todo(plan)[0] == "retry host gpu-02"
    with pytest.raises(StageError) as caught:
        lab.up()
    assert "failed on 1 of 2 GPU host(s): gpu-02:" in str(caught.value)
    assert CONTAINERD_DROPIN in lab.hosts["gpu-01"].files
    lab.ssh.down.clear()
    assert todo(lab.plan()) == ["write containerd drop-in with the nvidia runtime on gpu-02",
                                "write imports line in config.toml on gpu-02", "restart restart containerd on gpu-02"]


def test_non_gpu_hosts_carrying_botlabs_drop_in_fail_verify(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path, method="ssh")
    lab.up()
    lab.hosts["cp-01"].files[CONTAINERD_DROPIN] = "x"
    assert not lab.verify()["untouched cp-01"].ok


def test_a_plan_before_the_kubernetes_stage_ran_names_each_gpu_host(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path)
    lab.store.stage_reset("kubernetes")
    assert todo(lab.plan()) == ["configure host gpu-01", "configure host gpu-02"]


# --- GPUs schedulable (the cluster's side, through a fake of botlab's KubeDriver) -----------------


def test_charm_needs_no_runtime_class_and_the_device_plugin_runs_on_the_labelled_gpu_nodes(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path)
    lab.up()
    assert lab.kube.calls[:4] == ["label gpu-01 {'nvidia.com/gpu.present': 'true'}",
                                  "label gpu-02 {'nvidia.com/gpu.present': 'true'}",
                                  "delete RuntimeClass",
                                  "apply DaemonSet nvidia-device-plugin-daemonset"]
    # the charm makes its runtime the default: no class, and one an ssh method left is removed
    assert "apply RuntimeClass nvidia" not in lab.kube.calls
    patch = lab.kube.objects[("DaemonSet", "nvidia-device-plugin-daemonset")]["botlab-patch"]
    assert patch == {"spec": {"template": {"spec": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
                                                    "runtimeClassName": None}}}}
    assert "patch DaemonSet nvidia-device-plugin-daemonset by botlab-gpu" in lab.kube.calls
    checks = lab.verify()
    assert checks["GPU Nodes advertise nvidia.com/gpu"].ok
    smoke = checks["smoke Pod on a GPU Node"]
    assert smoke.ok and "scheduled on gpu-01" in smoke.detail
    assert lab.kube.calls[-2:] == ["create Pod", "delete Pod"]  # the smoke Pod is removed


def test_ssh_creates_a_runtime_class_whose_handler_is_the_runtime_on_the_hosts(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path, method="ssh")
    lab.up()
    runtime_class = lab.kube.objects[("RuntimeClass", "nvidia")]
    assert runtime_class["handler"] == "nvidia"
    patch = lab.kube.objects[("DaemonSet", "nvidia-device-plugin-daemonset")]["botlab-patch"]
    assert patch["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_a_gpu_node_not_advertising_its_gpus_fails_verify_naming_both_counts(tmp_path: Path) -> None:
    lab = GpuLab(tmp_path)
    lab.up()
    lab.kube.labels["gpu-02"].clear()  # the label went: the device plugin no longer runs there
    checks = lab.verify()
    check = checks["GPU Nodes advertise nvidia.com/gpu"]
    assert not check.ok and check.detail == "gpu-02: advertises 0 nvidia.com/gpu, expected 2"
    assert "smoke Pod on a GPU Node" not in checks
