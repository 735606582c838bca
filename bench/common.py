"""Shared helpers for benchmarks: where results go, how they are printed, reading the lab's control APIs."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    doc = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **doc}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def get_json(url: str, timeout: float) -> Any:
    """The JSON document a lab control API answers at `url`."""
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())
