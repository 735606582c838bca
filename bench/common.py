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


def boot_hosts(manager: Any, spec: Any, user_data: bytes, prefix: str, network: str) -> float:
    """Boot every machine of `spec` as a lab host at once (HostManager.boot), at `network`.10+i
    (e.g. "10.77.0"); seconds until all are up. Raises naming the first that failed."""
    import threading

    from botlab.lab.maas.hostbackend import BootRequest

    done = threading.Semaphore(0)
    problems: list[str] = []

    def report(problem: str | None) -> None:
        if problem:
            problems.append(problem)
        done.release()

    started = time.perf_counter()
    for i, machine in enumerate(spec.machines):
        manager.boot(BootRequest(f"{prefix}{i}", machine.hostname, f"{network}.{10 + i}", user_data, (), machine),
                     report)
    for _ in spec.machines:
        done.acquire()
    if problems:
        raise RuntimeError(f"booting lab hosts: {problems[0]}")
    return time.perf_counter() - started
