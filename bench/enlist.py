"""Enlist at scale: N machines that MAAS must create and commission, with a modelled
commissioning time (default 20 s ± 20%), on a virtual lab in its own process.

For each N: botlab's wall time for `up enlist`, the critical path (the slowest machine's
commissioning as the emulator timed it), their ratio (target <= 1.10 at N = 300), the MAAS
requests botlab made, and botlab's own CPU seconds (the lab's are not counted).
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import get_json, write_result

SIZES = (10, 100, 300)
_get = functools.partial(get_json, timeout=30)


def critical_path(events: list[dict[str, Any]]) -> float:
    """Longest Commissioning-start to Ready time of any machine, from lab transitions."""
    began: dict[str, float] = {}
    longest = 0.0
    for e in events:
        if e.get("kind") != "transition":
            continue
        host = str(e.get("hostname"))
        if e.get("new") == "Commissioning" and host not in began:
            began[host] = float(e["time"])
        elif e.get("new") == "Ready" and host in began:
            longest = max(longest, float(e["time"]) - began[host])
    return longest


def run_one(n: int, commissioning_s: float, workdir: Path) -> dict[str, Any]:
    from botlab import app
    from botlab.inventory import load_inventory
    from botlab.lab import control, specs
    from botlab.report import SilentReporter

    doc = specs.spec_document(None, machines=n, gpus=max(1, n // 10), unenlisted=n,
                              commissioning_s=commissioning_s, deploy_s=60, seed=n)
    doc["timings"]["testing_s"] = 0
    doc["timings"]["jitter"] = 0.2
    info = control.start(workdir / f"lab{n}", doc, name=f"bench{n}", hosts=False)  # measures botlab, not hosts
    try:
        inventory = load_inventory(info.inventory)
        before = _get(info.control_url + "state")["counters"].get("total", 0)
        env = app.Environment(cwd=workdir, environ=dict(os.environ), stdout=io.StringIO(),
                              stderr=io.StringIO())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = app.up(env, inventory, SilentReporter(), target="enlist")
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        if not result.ok:
            raise SystemExit(f"enlist failed at N={n}: {result.failed.error if result.failed else ''}")
        state = _get(info.control_url + "state")
        events = _get(info.control_url + "events?since=0")["events"]
    finally:
        control.stop(info.dir)
    path = critical_path(events)
    requests = int(state["counters"].get("total", 0)) - int(before)
    return {
        "machines": n,
        "wall_s": round(wall, 2),
        "critical_path_s": round(path, 2),
        "ratio": round(wall / path, 3) if path else None,
        "requests": requests,
        "requests_per_machine": round(requests / n, 2),
        "botlab_cpu_s": round(cpu, 2),
        "cpu_ms_per_machine": round(1000 * cpu / n, 1),
    }


def run(sizes: tuple[int, ...] = SIZES, commissioning_s: float = 20.0) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="botlab-bench-") as tmp:
        for n in sizes:
            row = run_one(n, commissioning_s, Path(tmp))
            rows.append(row)
            print(f"enlist N={n:>4}: wall {row['wall_s']:>6.2f} s, critical path"
                  f" {row['critical_path_s']:>6.2f} s, ratio {row['ratio']}, requests"
                  f" {row['requests']} ({row['requests_per_machine']}/machine), botlab CPU"
                  f" {row['botlab_cpu_s']} s ({row['cpu_ms_per_machine']} ms/machine)", flush=True)
    doc = {"commissioning_s": commissioning_s, "jitter": 0.2, "target_ratio_at_300": 1.10,
           "runs": rows}
    write_result("enlist", doc)
    return doc
