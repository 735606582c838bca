"""Cold start of `botlab --help` (goal: under 0.3 s) and what the CLI imports."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

from bench.common import write_result

HEAVY = ("juju", "maas.client", "kubernetes", "fabric", "paramiko", "aiohttp", "rich")


def run(repeat: int = 15) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "botlab.cli", "--help"]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the page cache, not Python
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    probe = (
        "import sys, botlab.cli; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True).stdout.strip()
    doc = {
        "runs": repeat,
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "goal_s": 0.3,
        "heavy_modules_imported": heavy.split(",") if heavy else [],
    }
    write_result("cli_startup", doc)
    print(f"botlab --help cold start: median {doc['median_s']:.3f} s, min {doc['min_s']:.3f} s"
          f" over {repeat} runs (goal < 0.3 s); heavy imports: {heavy or 'none'}")
    return doc
