"""Fan-out: the gpu stage's ssh-docker playbook on 1, 8 and 32 lab hosts at once, first run and
no-change run, for botlab and, on the same hosts with an equivalent task, for ansible-playbook,
pyinfra and the floor (one fabric connection and one shell script per host).

The task on every host (GPU hosts running docker, with the NVIDIA container toolkit): read
docker.service's effective ExecStart (`systemctl cat`), put the drop-in
/etc/systemd/system/docker.service.d/99-botlab-nvidia.conf (`ExecStart=` then that ExecStart
plus `--add-runtime=nvidia=/usr/bin/nvidia-container-runtime`) and, only when it changed,
`systemctl daemon-reload` and `systemctl restart docker`.

- botlab: exactly the gpu stage's per-host sequence (`read_facts` in one round trip, the
  playbook's plan from `check_host`, `apply_host`), every host at once (asyncio.gather), over
  botlab's SshDriver, in a child process: `python -m bench.fanout botlab-run WORKDIR`.
- ansible-playbook (ansible-core): bench/fanout/playbook.yml, forks = hosts, pipelining on,
  gather_facts off, host keys checked against a known_hosts file written from the booted
  hosts' keys. Each run starts without ControlPersist masters; the masters a run leaves are
  closed after it and their CPU counted with the run's.
- pyinfra: bench/fanout/deploy.py, `--parallel` = hosts, `-y`, known hosts likewise.
- floor: `python -m bench.fanout floor-run WORKDIR`: bench/fanout/floor.sh through one fabric
  connection and one command per host, a thread per host.

Every tool runs as a child process: wall time around it, CPU as user+sys of
resource.getrusage(RUSAGE_CHILDREN) deltas. "host CPU" is what the lab hosts' processes (sshd,
sudo, the emulated systemctl/dockerd) spent meanwhile: on this machine they share its cores
with the tool. Between tools the hosts are reset (drop-in removed, daemon-reload, docker
restarted); after each first run every host must have the drop-in, a restarted dockerd and
`nvidia` in `docker info`'s runtimes, after each no-change run the same drop-in and dockerd.

`python -m bench fanout` (needs root for lab hosts; ansible-core and pyinfra from
bench/requirements.txt in .venv-bench/, which `make bench` makes; a tool that is missing is
skipped, saying so). BENCH_FANOUT_SIZES=1,8 picks sizes, BENCH_FANOUT_REPEAT=3 takes medians
of 3 measurements, BENCH_FANOUT_PROFILE=1 adds a cProfile of botlab's child at each size
(bench/results/fanout-botlab-N-{first,nochange}.prof, top functions printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import RESULTS, boot_hosts, write_result

SIZES = (1, 8, 32)
TOOLS = ("botlab", "pyinfra", "ansible", "floor")
LABELS = {"botlab": "botlab", "pyinfra": "pyinfra", "ansible": "ansible-playbook", "floor": "floor (fabric script)"}
REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "fanout"
DROPIN = "/etc/systemd/system/docker.service.d/99-botlab-nvidia.conf"
RUNTIME_FLAG = "--add-runtime=nvidia=/usr/bin/nvidia-container-runtime"
CIDR = "10.76.0.0/24"  # the lab network of this benchmark's hosts (addresses from .10 on)
TOOL_TIMEOUT_S = 600
# The targets at 32 hosts: botlab no slower than pyinfra, >= 10x faster than Ansible,
# within 2x of the floor (wall time).
TARGETS = (("botlab / pyinfra", "pyinfra", "<=", 1.0), ("ansible / botlab", "ansible", ">=", 10.0),
           ("botlab / floor", "floor", "<=", 2.0))


# --- the children ------------------------------------------------------------------------------


def _hosts_file(workdir: Path) -> list[dict[str, Any]]:
    hosts: list[dict[str, Any]] = json.loads((workdir / "hosts.json").read_text())
    return hosts


async def _botlab(workdir: Path, started: float) -> dict[str, Any]:
    """The gpu stage's ssh-docker sequence on every host at once (GpuStage.plan's read_facts
    and ssh_host_plan, then GpuStage.apply's apply_host)."""
    from botlab.drivers.retry import Deadlines
    from botlab.drivers.ssh import SshDriver
    from botlab.playbook import HostResult, apply_host
    from botlab.stages.gpu import PLAN_FACTS, read_facts, ssh_host_plan

    imported = time.perf_counter() - started
    hosts = _hosts_file(workdir)
    ssh = SshDriver("ubuntu", workdir / "id_ed25519", deadlines=Deadlines.from_environ(os.environ))
    for h in hosts:
        ssh.know(h["hostname"], h["address"], h["host_keys"])
    marks: dict[str, dict[str, float]] = {}

    async def one(host: str) -> bool:
        t = marks.setdefault(host, {})
        facts = await read_facts(ssh, host, PLAN_FACTS["ssh-docker"])
        t["facts"] = time.perf_counter() - started
        if not facts.gpus:
            raise RuntimeError(f"{host}: `nvidia-smi -L` lists no GPU")
        plan = await ssh_host_plan(ssh, "ssh-docker", host, facts)
        t["plan"] = time.perf_counter() - started
        if not plan.needed:  # steps to change or handlers owed
            return False
        result = HostResult(host)
        await apply_host(ssh, plan, result)
        t["apply"] = time.perf_counter() - started
        if result.error is not None:
            raise RuntimeError(f"{host}: {result.error}")
        return True

    try:
        changed = await asyncio.gather(*(one(h["hostname"]) for h in hosts))
    finally:
        await ssh.close()
    phases = {name: round(max(t.get(name, 0.0) for t in marks.values()), 3) for name in ("facts", "plan", "apply")}
    return {"changed": sum(changed), "hosts": len(hosts), "import_s": round(imported, 3),
            "last_done_s": phases, "round_trips": sum(ssh.round_trips.values()),
            "connections": sum(ssh.connections.values())}


def botlab_run(workdir: Path) -> None:
    started = time.perf_counter()
    print(json.dumps(asyncio.run(_botlab(workdir, started))))


def floor_run(workdir: Path) -> None:
    """One fabric connection and one command (floor.sh) per host, a thread per host."""
    import paramiko
    from fabric import Connection

    script = (DATA / "floor.sh").read_text().replace("FACTS_LINE", (DATA / "exec_start.sh").read_text().strip())
    command = "sudo -n -- sh -c " + shlex.quote(script)
    hosts = _hosts_file(workdir)

    def one(h: dict[str, Any]) -> str:
        conn = Connection(h["address"], user="ubuntu", connect_kwargs={
            "key_filename": str(workdir / "id_ed25519"), "look_for_keys": False, "allow_agent": False})
        conn.client.load_host_keys(str(workdir / "known_hosts"))
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            result = conn.run(command, hide=True, in_stream=False, warn=True)
        finally:
            conn.close()
        if result.exited != 0:
            raise RuntimeError(f"{h['hostname']}: exit {result.exited}: {result.stderr.strip()[-300:]}")
        return str(result.stdout.strip())

    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        outcomes = list(pool.map(one, hosts))
    print(json.dumps({"changed": outcomes.count("changed"), "hosts": len(hosts)}))


# --- the lab --------------------------------------------------------------------------------


def _parallel(fn: Callable[[Any], Any], items: list[Any], workers: int = 8) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


class Lab:
    """N GPU lab hosts (NVIDIA toolkit at boot), docker.io installed and running, and the files
    every tool reads: the operator key, known_hosts, hosts.json, Ansible's and pyinfra's
    inventories."""

    def __init__(self, n: int, workdir: Path) -> None:
        from botlab.lab.hosts.manager import HostManager
        from botlab.lab.spec import NetworkSpec, generate_spec

        spec = generate_spec(n, n, unenlisted=0)
        machines = tuple(replace(m, gpus=replace(m.gpus, toolkit=True)) for m in spec.machines)
        self.spec = replace(spec, machines=machines, network=NetworkSpec(cidr=CIDR))
        self.n = n
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.manager = HostManager(workdir / "lab", self.spec)
        self.hosts: list[Any] = []
        self.mount_ns: set[str] = set()

    def __enter__(self) -> Lab:
        try:
            self._boot()
        except BaseException:
            self.manager.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.manager.stop()

    def _boot(self) -> None:

        from botlab.lab.hosts.cloudinit import new_host_key

        key = new_host_key("operator")
        key_file = self.workdir / "id_ed25519"
        key_file.write_text(key.private)
        key_file.chmod(0o600)
        (self.workdir / "home").mkdir(mode=0o700)
        user_data = f"#cloud-config\nssh_authorized_keys: ['{key.public}']\n".encode()
        self.manager.start()
        t0 = time.perf_counter()
        boot_hosts(self.manager, self.spec, user_data, "f", "10.76.0")
        self.hosts = self.manager.hosts()
        _parallel(self._setup, [h.hostname for h in self.hosts])
        self.mount_ns = {Path(f"/proc/{h.pid}/ns/mnt").readlink().name for h in self.hosts}
        self._write_files()
        print(f"fanout: {self.n} lab host(s) booted with docker running in {time.perf_counter() - t0:.1f}s",
              flush=True)

    def _setup(self, hostname: str) -> None:
        """docker.io installed and started as the lab's docker charm does, the drop-in folder made
        (so no tool needs a task for it), the toolkit's runtime there."""
        self.manager.install_package(hostname, "docker.io")
        self._sh(hostname, "mkdir -p /etc/systemd/system/docker.service.d && systemctl daemon-reload"
                 " && systemctl enable --now docker.service && test -x /usr/bin/nvidia-container-runtime")

    def _sh(self, hostname: str, script: str) -> str:
        done = self.manager.run(hostname, ["sh", "-c", script])
        if done.returncode != 0:
            raise RuntimeError(f"{hostname}: `{script}` failed: {(done.stderr or done.stdout).strip()[-500:]}")
        return done.stdout

    def _write_files(self) -> None:
        w = self.workdir
        hosts = [{"hostname": h.hostname, "address": h.address, "host_keys": list(h.host_keys)} for h in self.hosts]
        (w / "hosts.json").write_text(json.dumps(hosts, indent=1) + "\n")
        (w / "known_hosts").write_text("".join(f"{h['address']} {' '.join(k.split()[:2])}\n"
                                               for h in hosts for k in h["host_keys"]))
        key = w / "id_ed25519"
        (w / "inventory.ini").write_text("[lab]\n" + "".join(f"{h['hostname']} ansible_host={h['address']}\n"
                                                             for h in hosts))
        (w / "ansible.cfg").write_text(
            "[defaults]\n"
            f"forks = {self.n}\n"
            "gathering = explicit\n"
            "host_key_checking = True\n"
            "remote_user = ubuntu\n"
            f"private_key_file = {key}\n"
            "interpreter_python = /usr/bin/python3\n"
            "retry_files_enabled = False\n"
            "nocolor = True\n"
            "[ssh_connection]\n"
            "pipelining = True\n"
            # Ansible's default ssh_args, plus strict host keys from our file and no ~/.ssh/config.
            f"ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -F /dev/null -o IdentitiesOnly=yes"
            f" -o UserKnownHostsFile={w / 'known_hosts'} -o StrictHostKeyChecking=yes\n")
        data = {"ssh_user": "ubuntu", "ssh_key": str(key), "ssh_known_hosts_file": str(w / "known_hosts"),
                "ssh_strict_host_key_checking": "yes", "ssh_allow_agent": False, "ssh_look_for_keys": False}
        entries = ",\n    ".join(repr((h["hostname"], {"ssh_hostname": h["address"]})) for h in hosts)
        (w / "inventory.py").write_text(f"lab = (\n  [\n    {entries},\n  ],\n  {data!r},\n)\n")

    # -- state of the hosts (read outside the measured runs) ------------------------------------

    def reset(self) -> None:
        """No drop-in, units reloaded, docker restarted: what every tool's first run starts from."""
        _parallel(lambda h: self._sh(h, f"rm -f {DROPIN} && systemctl daemon-reload && systemctl restart docker"),
                  [h.hostname for h in self.hosts])

    def snapshot(self) -> dict[str, tuple[bytes, int]]:
        """Per host: dockerd's state file (pid, start time, flags) and the drop-in's mtime (0: none)."""
        out = {}
        for h in self.hosts:
            state = (h.root / "run/docker/lab-state.json").read_bytes()
            dropin = h.root / DROPIN.lstrip("/")
            out[h.hostname] = (state, dropin.stat().st_mtime_ns if dropin.exists() else 0)
        return out

    def check_first(self, before: dict[str, tuple[bytes, int]]) -> None:
        """Every host: the drop-in with the runtime, dockerd restarted, `docker info` lists nvidia."""
        from botlab.lab.hosttools import DOCKER_SERVICE

        base = next(line for line in DOCKER_SERVICE.splitlines() if line.startswith("ExecStart="))
        after = self.snapshot()
        for h in self.hosts:
            text = (h.root / DROPIN.lstrip("/")).read_text()
            if "\nExecStart=\n" not in text or f"\n{base} {RUNTIME_FLAG}\n" not in text:
                raise RuntimeError(f"{h.hostname}: the drop-in is not as wanted:\n{text}")
            if after[h.hostname][0] == before[h.hostname][0]:
                raise RuntimeError(f"{h.hostname}: docker was not restarted")

        def runtimes(hostname: str) -> None:
            out = self._sh(hostname, "docker info --format '{{json .Runtimes}}'")
            if "nvidia" not in json.loads(out or "null"):
                raise RuntimeError(f"{hostname}: `docker info` lists no nvidia runtime: {out.strip()}")

        _parallel(runtimes, [h.hostname for h in self.hosts])

    def check_unchanged(self, before: dict[str, tuple[bytes, int]]) -> None:
        after = self.snapshot()
        for host, (state, mtime) in before.items():
            if after[host][1] != mtime:
                raise RuntimeError(f"{host}: the no-change run rewrote the drop-in")
            if after[host][0] != state:
                raise RuntimeError(f"{host}: the no-change run restarted docker")

    def host_cpu(self) -> float:
        """CPU seconds of the hosts' processes so far (each live process's own and its reaped
        children's): deltas of it are what the hosts spent meanwhile."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "ns" / "mnt").readlink().name not in self.mount_ns:
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return total / tick


# --- measuring ---------------------------------------------------------------------------------


def _subreaper() -> None:
    """Become the subreaper of our descendants, so the SSH ControlPersist masters ansible-playbook
    leaves behind end as our children and their CPU reaches RUSAGE_CHILDREN when reaped."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        print("fanout: note: PR_SET_CHILD_SUBREAPER failed; ssh masters' CPU is not counted", flush=True)


def _reap_ssh_masters() -> int:
    """End and reap the `ssh` processes left as our children (ControlPersist masters)."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[1] == me and comm == "ssh":
            found.append(int(entry.name))
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in found:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return len(found)


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def measure(lab: Lab, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[dict[str, float], str]:
    """Run one tool; its wall time, CPU (user+sys of it and its descendants) and the hosts' CPU."""
    host0 = lab.host_cpu()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    masters = _reap_ssh_masters()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    host1 = lab.host_cpu()
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} {' '.join(argv[1:4])}... exited {done.returncode}:\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = {"wall_s": round(wall, 3), "cpu_s": round(_cpu(after) - _cpu(before), 3),
              "host_cpu_s": round(host1 - host0, 2)}
    if masters:
        result["ssh_masters"] = masters
    return result, done.stdout


def bench_venv() -> Path:
    return Path(os.environ.get("BENCH_VENV") or REPO / ".venv-bench")


def command(tool: str, lab: Lab, run_label: str) -> tuple[list[str], dict[str, str], Path]:
    w = lab.workdir
    env = {"PATH": f"{bench_venv() / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(w / "home"),
           "LANG": "C.UTF-8", "TMPDIR": str(w / "home")}
    if tool == "botlab":
        return [sys.executable, "-m", "bench.fanout", "botlab-run", str(w)], env, REPO
    if tool == "floor":
        return [sys.executable, "-m", "bench.fanout", "floor-run", str(w)], env, REPO
    if tool == "ansible":
        cp = w / f"cp-{run_label}"
        cp.mkdir()
        env.update(ANSIBLE_CONFIG=str(w / "ansible.cfg"), ANSIBLE_HOME=str(w / "home" / ".ansible"),
                   ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp), ANSIBLE_LOCAL_TEMP=str(w / "home" / "tmp"))
        return [str(bench_venv() / "bin" / "ansible-playbook"), "-i", str(w / "inventory.ini"),
                str(DATA / "playbook.yml")], env, w
    return [str(bench_venv() / "bin" / "pyinfra"), "-y", "--parallel", str(lab.n), str(w / "inventory.py"),
            str(DATA / "deploy.py")], env, w


def changed_count(tool: str, stdout: str) -> int | None:
    """What the tool itself says it changed (hosts), where it says so simply."""
    if tool in ("botlab", "floor"):
        return int(json.loads(stdout.strip().splitlines()[-1])["changed"])
    if tool == "ansible":
        return sum(1 for line in stdout.splitlines() if " : ok=" in line and " changed=0 " not in line)
    return None


def one_tool(lab: Lab, tool: str, repeat: int) -> dict[str, Any]:
    firsts: list[dict[str, float]] = []
    seconds: list[dict[str, float]] = []
    notes: dict[str, Any] = {}
    for r in range(repeat):
        lab.reset()
        before = lab.snapshot()
        argv, env, cwd = command(tool, lab, f"{tool}-{r}-first")
        first, out = measure(lab, argv, env, cwd)
        lab.check_first(before)
        if changed_count(tool, out) not in (None, lab.n):
            raise RuntimeError(f"{tool}: first run changed {changed_count(tool, out)} of {lab.n} hosts")
        if tool == "botlab":
            notes["first"] = json.loads(out.strip().splitlines()[-1])
        before = lab.snapshot()
        argv, env, cwd = command(tool, lab, f"{tool}-{r}-nochange")
        second, out = measure(lab, argv, env, cwd)
        lab.check_unchanged(before)
        if changed_count(tool, out) not in (None, 0):
            raise RuntimeError(f"{tool}: no-change run says it changed {changed_count(tool, out)} hosts")
        if tool == "botlab":
            notes["nochange"] = json.loads(out.strip().splitlines()[-1])
        firsts.append(first)
        seconds.append(second)
    return {"first": _median(firsts), "nochange": _median(seconds), **({"botlab": notes} if notes else {})}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in ("wall_s", "cpu_s", "host_cpu_s")}
    if any("ssh_masters" in r for r in runs):
        out["ssh_masters"] = max(r.get("ssh_masters", 0) for r in runs)  # closed after the run, CPU counted
    if len(runs) > 1:
        out["runs"] = len(runs)
    return out


def profile_botlab(lab: Lab) -> dict[str, str]:
    """cProfile of botlab's child, first and no-change run: .prof files and the top lines."""
    import pstats

    RESULTS.mkdir(exist_ok=True)
    files = {}
    lab.reset()
    for label in ("first", "nochange"):
        path = RESULTS / f"fanout-botlab-{lab.n}-{label}.prof"
        argv, env, cwd = command("botlab", lab, label)
        argv = [argv[0], "-m", "cProfile", "-o", str(path), *argv[1:]]
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"profiled botlab run failed: {done.stderr[-2000:]}")
        files[label] = str(path)
        print(f"fanout: botlab at {lab.n} hosts, {label} run, cProfile (top 12 by own time) in {path}:")
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(12)
    return files


# --- report --------------------------------------------------------------------------------------


def table(n: int, rows: dict[str, dict[str, Any]]) -> str:
    head = (f"{n} host(s)", "first wall s", "first CPU s", "first host CPU s", "no-change wall s",
            "no-change CPU s", "no-change host CPU s")
    lines = [head]
    for tool in TOOLS:
        if tool not in rows:
            continue
        f, s = rows[tool]["first"], rows[tool]["nochange"]
        lines.append((LABELS[tool], f"{f['wall_s']:.2f}", f"{f['cpu_s']:.2f}", f"{f['host_cpu_s']:.2f}",
                      f"{s['wall_s']:.2f}", f"{s['cpu_s']:.2f}", f"{s['host_cpu_s']:.2f}"))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                  strict=True)))
                     for row in lines)


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """botlab / pyinfra, ansible / botlab, botlab / floor: wall and CPU, first and no-change."""
    out: dict[str, dict[str, float]] = {}
    if "botlab" not in rows:
        return out
    b = rows["botlab"]
    for name, other, _op, _limit in TARGETS:
        if other not in rows:
            continue
        o = rows[other]
        values = {}
        for run in ("first", "nochange"):
            for metric in ("wall_s", "cpu_s"):
                num, den = (o, b) if name.startswith("ansible") else (b, o)
                key = f"{run}_{metric.removesuffix('_s')}"
                values[key] = round(num[run][metric] / den[run][metric], 2) if den[run][metric] else float("inf")
        out[name] = values
    return out


def targets(ratio: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, _other, op, limit in TARGETS:
        if name not in ratio:
            continue
        r = ratio[name]
        worst = max(r["first_wall"], r["nochange_wall"]) if op == "<=" else min(r["first_wall"], r["nochange_wall"])
        met = worst <= limit if op == "<=" else worst >= limit
        cpu = max(r["first_cpu"], r["nochange_cpu"]) if op == "<=" else min(r["first_cpu"], r["nochange_cpu"])
        out[name] = {"target": f"{op} {limit:g}", "first_wall": r["first_wall"], "nochange_wall": r["nochange_wall"],
                     "met": met, "first_cpu": r["first_cpu"], "nochange_cpu": r["nochange_cpu"],
                     "met_on_cpu": cpu <= limit if op == "<=" else cpu >= limit}
    return out


def tool_versions(tools: list[str]) -> dict[str, str]:
    import platform
    from importlib.metadata import version

    out = {"python": platform.python_version(), "fabric": version("fabric"), "paramiko": version("paramiko"),
           "cpus": str(os.cpu_count())}
    wanted = {"ansible": "ansible-core", "pyinfra": "pyinfra"}
    names = [wanted[t] for t in tools if t in wanted]
    if names:
        code = "import importlib.metadata as m, sys; print(' '.join(m.version(n) for n in sys.argv[1:]))"
        done = subprocess.run([str(bench_venv() / "bin" / "python"), "-c", code, *names], capture_output=True,
                              text=True)
        out.update(zip(names, done.stdout.split(), strict=False))
    return out


def available_tools() -> list[str]:
    tools = []
    for tool in TOOLS:
        if tool in ("ansible", "pyinfra"):
            exe = bench_venv() / "bin" / ("ansible-playbook" if tool == "ansible" else "pyinfra")
            if not exe.exists():
                print(f"fanout: {tool}: skipped: {exe} is missing (`make bench` installs bench/requirements.txt"
                      f" into {bench_venv()})", flush=True)
                continue
        tools.append(tool)
    return tools


def sizes() -> list[int]:
    raw = os.environ.get("BENCH_FANOUT_SIZES", "").strip()
    if not raw:
        return list(SIZES)
    try:
        out = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"BENCH_FANOUT_SIZES={raw!r}: expected sizes like 1,8,32") from None
    if not out or not all(1 <= x <= 200 for x in out):
        raise SystemExit(f"BENCH_FANOUT_SIZES={raw!r}: expected sizes from 1 to 200")
    return out


def run() -> None:
    from botlab.lab.hosts.manager import hosts_supported

    why_not = hosts_supported()
    if why_not:
        print(f"fanout: skipped: {why_not}")
        return
    tools = available_tools()
    repeat = max(1, int(os.environ.get("BENCH_FANOUT_REPEAT", "1") or 1))
    profile = os.environ.get("BENCH_FANOUT_PROFILE", "") not in ("", "0")
    _subreaper()
    results: dict[str, Any] = {}
    profiles: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="botlab-bench-fanout-") as tmp:
        for n in sizes():
            rows: dict[str, dict[str, Any]] = {}
            with Lab(n, Path(tmp) / f"hosts{n}") as lab:
                for tool in tools:
                    rows[tool] = one_tool(lab, tool, repeat)
                    f, s = rows[tool]["first"], rows[tool]["nochange"]
                    print(f"fanout: {n} host(s) {LABELS[tool]}: first {f['wall_s']:.2f}s wall {f['cpu_s']:.2f}s CPU,"
                          f" no-change {s['wall_s']:.2f}s wall {s['cpu_s']:.2f}s CPU", flush=True)
                if profile and "botlab" in tools:
                    profiles[str(n)] = profile_botlab(lab)
            ratio = ratios(rows)
            results[str(n)] = {"tools": rows, "ratios": ratio}
            print(f"\nfan-out, {n} host(s): wall and CPU seconds (CPU: the tool's process tree; host CPU: the lab"
                  f" hosts' processes meanwhile)\n{table(n, rows)}")
            for name, r in ratio.items():
                print(f"  {name}: wall {r['first_wall']:.2f} first, {r['nochange_wall']:.2f} no-change;"
                      f" CPU {r['first_cpu']:.2f} first, {r['nochange_cpu']:.2f} no-change")
            print(flush=True)
    largest = str(max(sizes()))
    met = targets(results[largest]["ratios"])
    if met:
        print(f"fanout: the targets (set for 32 hosts) at {largest} host(s), on wall time, first / no-change run:")
        for name, t in met.items():
            print(f"  {name} {t['target']}: {t['first_wall']:.2f} / {t['nochange_wall']:.2f}:"
                  f" {'met' if t['met'] else 'NOT met'} (on the tools' own CPU seconds: {t['first_cpu']:.2f} /"
                  f" {t['nochange_cpu']:.2f}, {'met' if t['met_on_cpu'] else 'not met'})")
        rows = results[largest]["tools"]
        if "ansible" in rows and "floor" in rows:
            a, f = rows["ansible"], rows["floor"]
            print(f"  for scale: ansible / floor is {a['first']['wall_s'] / f['first']['wall_s']:.2f} /"
                  f" {a['nochange']['wall_s'] / f['nochange']['wall_s']:.2f} on wall time here (the lab hosts share"
                  f" this machine's {os.cpu_count()} cores with the tools; see the host CPU columns)")
    doc: dict[str, Any] = {"sizes": results, "targets_at": int(largest), "targets": met, "repeat": repeat,
                           "versions": tool_versions(tools)}
    if profiles:
        doc["profiles"] = profiles
    path = write_result("fanout", doc)
    print(f"fanout: results in {path}")


def main(argv: list[str]) -> None:
    if argv[:1] == ["botlab-run"] and len(argv) == 2:
        botlab_run(Path(argv[1]))
    elif argv[:1] == ["floor-run"] and len(argv) == 2:
        floor_run(Path(argv[1]))
    elif not argv:
        run()
    else:
        raise SystemExit("usage: python -m bench.fanout [botlab-run WORKDIR | floor-run WORKDIR]")


if __name__ == "__main__":
    main(sys.argv[1:])
