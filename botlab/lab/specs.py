"""Build the lab spec document `botlab lab start` hands to the daemon, from flags or a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from botlab.errors import InputError, Location, Problem
from botlab.lab.spec import SpecError, Timings, dump_spec, generate_spec, load_spec


def spec_document(
    spec_file: Path | None,
    *,
    machines: int,
    gpus: int,
    unenlisted: int | None,
    commissioning_s: float | None,
    deploy_s: float | None,
    seed: int,
) -> dict[str, Any]:
    if spec_file is not None:
        try:
            doc = yaml.safe_load(spec_file.read_text()) or {}
            spec = load_spec(doc)
        except (yaml.YAMLError, SpecError, OSError) as exc:
            raise InputError([Problem(Location(str(spec_file)), "spec", str(exc))]) from None
    else:
        spec = generate_spec(machines, gpus, unenlisted=unenlisted, timings=Timings(seed=seed), seed=seed)
    out = dump_spec(spec)
    timings = out.setdefault("timings", {})
    if commissioning_s is not None:
        timings["commissioning_s"] = commissioning_s
    if deploy_s is not None:
        timings["deploy_s"] = deploy_s
    return out
