"""The kubernetes stage at scale: N enlisted machines that Juju's MAAS provider deploys
(modelled MAAS deploy time, default 30 s ± 20%) and Charmed Kubernetes units that settle
with modelled hook times, on a virtual lab in its own process.

For each N: the wall time of `botlab up --only kubernetes` (botlab as its own process, as
an operator runs it), the critical path (the slowest machine's MAAS deploy plus the settling
of the units on it: from MAAS starting to deploy it to the moment its last unit became
active/idle, as the emulators timed it), their ratio (target <= 1.10 at N = 100), the Juju
requests botlab made (and how many of them changed something), the MAAS requests made
meanwhile (all by Juju's MAAS provider: the stage itself does not talk to MAAS on `up`),
and botlab's CPU seconds (the lab's are not counted).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import get_json, write_result

SIZES = (3, 30, 100)
ROOT = Path(__file__).resolve().parents[1]
CHARMS = {"install_s": 10.0, "hook_s": 0.5, "action_s": 1.0, "retry_s": 5.0, "update_status_s": 3600.0}
_get = functools.partial(get_json, timeout=60)


def _events(url: str, since: int) -> list[dict[str, Any]]:
    return list(_get(f"{url}events?since={since}")["events"])


def _ts(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _settled_at(inventory: Any) -> dict[str, Any]:
    """Per machine: when its agent started and when each unit on it (containers included)
    last changed to its final workload/agent status, from FullStatus's `since` stamps."""
    from botlab.drivers.juju import JujuDriver

    juju = await JujuDriver.connect(inventory, os.environ)
    try:
        await juju.open_model(inventory.juju.model)
        full = await juju.model.get_status()
    finally:
        await juju.close()
    started: dict[str, float] = {}
    host_of: dict[str, str] = {}
    for mid, mach in (full.machines or {}).items():
        started[mid] = _ts(mach.agent_status.since)
        host_of[mid] = mach.hostname or mach.display_name or mid
    last: dict[str, float] = dict(started)
    for app in (full.applications or {}).values():
        for unit in (app.units or {}).values():
            stamps = [_ts(unit.workload_status.since), _ts(unit.agent_status.since)]
            for sub in (unit.subordinates or {}).values():
                stamps += [_ts(sub.workload_status.since), _ts(sub.agent_status.since)]
            host = str(unit.machine).split("/")[0]
            last[host] = max(last.get(host, 0.0), *stamps)
    return {"hosts": {host_of[mid]: {"started": started[mid], "settled": last[mid]} for mid in started}}


def run_one(n: int, deploy_s: float, workdir: Path) -> dict[str, Any]:
    from botlab import app
    from botlab.inventory import load_inventory
    from botlab.lab import control, specs
    from botlab.report import SilentReporter

    doc = specs.spec_document(None, machines=n, gpus=max(1, n // 10), unenlisted=0, commissioning_s=0.5,
                              deploy_s=deploy_s, seed=n)
    doc["timings"].update(testing_s=0, jitter=0.2, release_s=1)
    doc["juju"] = {"destroy_s": 0.2, "charms": dict(CHARMS)}
    info = control.start(workdir / f"lab{n}", doc, name=f"bench{n}", hosts=False)  # measures botlab, not hosts
    juju_url = info.juju_control_url
    try:
        inventory = load_inventory(info.inventory)
        env = app.Environment(cwd=workdir, environ=dict(os.environ), stdout=io.StringIO(), stderr=io.StringIO())
        if not app.up(env, inventory, SilentReporter(), target="enlist").ok:
            raise SystemExit(f"enlist failed at N={n}")
        juju_mark = int(_get(juju_url + "state")["last_seq"])
        maas_mark = int(_get(info.control_url + "state")["last_seq"])
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.perf_counter()
        started_at = time.time()
        done = subprocess.run(
            [sys.executable, "-m", "botlab.cli", "-i", str(info.inventory), "--output", "json", "up", "--only",
             "kubernetes"], cwd=workdir, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
        wall = time.perf_counter() - wall0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"kubernetes failed at N={n}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        juju_events = _events(juju_url, juju_mark)
        maas_events = _events(info.control_url, maas_mark)
        settled = asyncio.run(_settled_at(inventory))
    finally:
        control.stop(info.dir)

    deploying: dict[str, float] = {}
    deployed: dict[str, float] = {}
    for e in maas_events:
        if e.get("kind") == "transition" and e.get("new") == "Deploying":
            deploying.setdefault(str(e["hostname"]), float(e["time"]))
        elif e.get("kind") == "transition" and e.get("new") == "Deployed":
            deployed.setdefault(str(e["hostname"]), float(e["time"]))
    paths = {}
    for host, t in settled["hosts"].items():
        if host in deploying:
            paths[host] = (t["settled"] - deploying[host], deployed[host] - deploying[host])
    slowest = max(paths, key=lambda h: paths[h][0])
    critical, deploy_part = paths[slowest]
    rpcs = [e for e in juju_events if e["kind"] == "rpc"]
    by_method = Counter(f"{e['facade']}.{e['method']}" for e in rpcs)
    maas_requests = sum(1 for e in maas_events if e.get("kind") == "request")
    return {
        "machines": n,
        "wall_s": round(wall, 2),
        "critical_path_s": round(critical, 2),
        "critical_host": slowest,
        "critical_deploy_s": round(deploy_part, 2),
        "critical_settle_s": round(critical - deploy_part, 2),
        "first_deploy_after_s": round(min(deploying.values()) - started_at, 2),
        "ratio": round(wall / critical, 3) if critical else None,
        "juju_requests": len(rpcs),
        "juju_mutating_requests": sum(1 for e in rpcs if e.get("mutating")),
        "juju_watcher_requests": by_method.get("AllWatcher.Next", 0),
        "maas_requests_by_juju": maas_requests,
        "botlab_cpu_s": round(cpu, 2),
        "cpu_ms_per_machine": round(1000 * cpu / n, 1),
    }


def run(sizes: tuple[int, ...] = SIZES, deploy_s: float = 30.0) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="botlab-bench-") as tmp:
        for n in sizes:
            row = run_one(n, deploy_s, Path(tmp))
            rows.append(row)
            print(f"kubernetes N={n:>4}: wall {row['wall_s']:>6.2f} s, critical path {row['critical_path_s']:>6.2f} s"
                  f" ({row['critical_host']}: deploy {row['critical_deploy_s']} s + settle"
                  f" {row['critical_settle_s']} s), ratio {row['ratio']}, Juju requests {row['juju_requests']}"
                  f" ({row['juju_mutating_requests']} changing, {row['juju_watcher_requests']} watcher), MAAS"
                  f" requests by Juju {row['maas_requests_by_juju']}, botlab CPU {row['botlab_cpu_s']} s"
                  f" ({row['cpu_ms_per_machine']} ms/machine)", flush=True)
    doc = {"deploy_s": deploy_s, "jitter": 0.2, "charm_timings": CHARMS, "target_ratio_at_100": 1.10,
           "runs": rows}
    write_result("kubernetes", doc)
    return doc


if __name__ == "__main__":
    run(tuple(int(a) for a in sys.argv[1:]) or SIZES)
