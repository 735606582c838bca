"""`botlab validate` at scale: an inventory of N machines written the way the example is
(block style, full hardware, MACs and IPMI power per machine, no anchors or aliases).

For each N: the lab.yaml's size, the wall time of loading and validating it, and the peak
memory of the process doing only that (a fresh interpreter per N, so one run's heap does
not hide the next). The goal: 10,000 machines validate in seconds, far under the size cap.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import write_result

SIZES = (1_000, 10_000)

HEADER = """\
lab: big
maas:
  url: http://maas.example:5240/MAAS/
  api_key: {env: MAAS_API_KEY}
juju:
  controller: lab-controller
  cloud: maas-cloud
ssh:
  public_key: keys/id.pub
  private_key: keys/id
kubernetes:
  channel: 1.31/stable
nfs:
  server: node-00004
  allowed_network: 10.0.0.0/8
metallb:
  version: v0.14.8
  addresses: [10.255.0.200-10.255.0.220]
machines:
"""


def _roles(i: int) -> str:
    if i < 3:
        return "[control-plane, etcd]"
    if i == 3:
        return "[nfs]"
    return "[worker, gpu]" if i % 4 == 0 else "[worker]"


def lab_text(n: int) -> str:
    """A valid lab.yaml of `n` machines (n >= 5), every machine written out in full."""
    parts = [HEADER]
    for i in range(n):
        gpus = 4 if i >= 4 and i % 4 == 0 else 0
        parts.append(
            f"  - hostname: node-{i + 1:05d}\n"
            f"    roles: {_roles(i)}\n"
            f"    hardware: {{cores: 32, memory: 256G, gpus: {gpus}}}\n"
            f'    macs: ["52:54:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"]\n'
            f"    power:\n"
            f"      type: ipmi\n"
            f"      parameters:\n"
            f"        power_address: 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n"
            f"        power_user: admin\n"
            f"        power_pass: {{env: IPMI_PASS}}\n"
        )
    return "".join(parts)


# Runs in a fresh interpreter: load the inventory, print time and peak RSS as JSON.
_PROBE = """\
import json, resource, sys, time
from botlab.inventory import load_inventory
start = time.perf_counter()
inv = load_inventory(sys.argv[1])
wall = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall_s": wall, "peak_rss_kib": peak_kib, "machines": len(inv.machines)}))
"""

# What the interpreter and the inventory package's imports take before any loading.
_BASELINE = """\
import json, resource
import botlab.inventory
print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _probe(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    baseline_mib = _probe(_BASELINE)["peak_rss_kib"] / 1024
    rows = []
    with tempfile.TemporaryDirectory(prefix="botlab-bench-") as tmp:
        for n in sizes:
            path = Path(tmp) / f"lab{n}" / "lab.yaml"
            path.parent.mkdir()
            path.write_text(lab_text(n))
            got = _probe(_PROBE, str(path))
            if got["machines"] != n:
                raise SystemExit(f"validate read {got['machines']} machines of {n}")
            row = {
                "machines": n,
                "lab_yaml_bytes": path.stat().st_size,
                "validate_s": round(got["wall_s"], 2),
                "peak_rss_mib": round(got["peak_rss_kib"] / 1024, 1),
                "rss_over_baseline_mib": round(got["peak_rss_kib"] / 1024 - baseline_mib, 1),
            }
            rows.append(row)
            print(f"validate N={n:>6}: lab.yaml {row['lab_yaml_bytes'] / 1e6:.2f} MB, "
                  f"{row['validate_s']:.2f} s, peak RSS {row['peak_rss_mib']} MiB "
                  f"({row['rss_over_baseline_mib']} MiB over the {baseline_mib:.1f} MiB baseline)",
                  flush=True)
    doc = {"baseline_rss_mib": round(baseline_mib, 1), "runs": rows}
    write_result("inventory", doc)
    return doc
