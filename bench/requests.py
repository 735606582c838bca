"""What one command costs the systems it talks to, on a small virtual lab (5 machines, no
hosts, fast timings): for a first `botlab up`, a re-run on the converged lab (verify only),
`up --force` (plan + apply with nothing to do) and `botlab plan`: the MAAS requests and the
Juju requests (watcher polls apart), how many of those were FullStatus (model reads), and
how many times the kubernetes stage rendered its bundle.

Issue 11's bar: a converged re-run makes no more requests than before the stage contract v2
(21 non-watcher Juju requests).
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import get_json, write_result

_get = functools.partial(get_json, timeout=60)
BEFORE_V2_RERUN_JUJU = 21


def _count(url: str, since: int, kind: str) -> list[dict[str, Any]]:
    return [e for e in _get(f"{url}events?since={since}")["events"] if e.get("kind") == kind]


def run() -> dict[str, Any]:
    from botlab import app
    from botlab.inventory import load_inventory
    from botlab.lab import control, specs
    from botlab.pipeline import Stage
    from botlab.report import SilentReporter
    from botlab.stages.enlist import EnlistStage
    from botlab.stages.kubernetes import KubernetesStage

    doc = specs.spec_document(None, machines=5, gpus=2, unenlisted=2, commissioning_s=0.2, deploy_s=0.3, seed=5)
    doc["timings"].update(testing_s=0.05, release_s=0.1)
    doc["juju"] = {"destroy_s": 0.05, "charms": {"install_s": 0.2, "hook_s": 0.05, "action_s": 0.1}}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="botlab-bench-") as tmp:
        info = control.start(Path(tmp) / "lab", doc, name="reqs", hosts=False)
        try:
            inventory = load_inventory(info.inventory)
            juju_url, maas_url = info.juju_control_url, info.control_url
            for label, command in (("first up", ("up",)), ("re-run (converged)", ("up",)),
                                   ("up --force", ("up", "--force")), ("plan", ("plan",))):
                kube = KubernetesStage()

                def stages(k: KubernetesStage = kube) -> Sequence[Stage[Any]]:
                    return [EnlistStage(), k]

                env = app.Environment(cwd=Path(tmp), environ=dict(os.environ), stdout=io.StringIO(),
                                      stderr=io.StringIO(), stages=stages)
                juju_mark = int(_get(juju_url + "state")["last_seq"])
                maas_mark = int(_get(maas_url + "state")["last_seq"])
                if command[0] == "plan":
                    app.plan(env, inventory, None)
                elif not app.up(env, inventory, SilentReporter(), force="--force" in command).ok:
                    raise SystemExit(f"{label} failed")
                rpcs = _count(juju_url, juju_mark, "rpc")
                calls = Counter(f"{e['facade']}.{e['method']}" for e in rpcs)
                watcher = calls.get("AllWatcher.Next", 0)
                row = {
                    "command": label,
                    "juju_requests": len(rpcs) - watcher,
                    "juju_mutating": sum(1 for e in rpcs if e.get("mutating")),
                    "model_reads": calls.get("Client.FullStatus", 0),
                    "maas_requests": len(_count(maas_url, maas_mark, "request")),
                    "bundle_renders": getattr(kube, "renders", None),
                }
                rows.append(row)
                print(f"requests {label:<20} Juju {row['juju_requests']:>4} (changing {row['juju_mutating']},"
                      f" FullStatus {row['model_reads']}), MAAS {row['maas_requests']:>4},"
                      f" bundle renders {row['bundle_renders']}", flush=True)
        finally:
            control.stop(info.dir)
    result = {"machines": 5, "before_v2_rerun_juju_requests": BEFORE_V2_RERUN_JUJU, "runs": rows,
              "note": "first up's MAAS requests include those Juju's MAAS provider made"}
    write_result("requests", result)
    return result


if __name__ == "__main__":
    run()
