"""Fixtures for lab tests: a fast lab spec and a MAAS emulator serving it from a thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from botlab.lab.maas import MaasEmulator, run_maas
from botlab.lab.spec import LabSpec, Timings, generate_spec

T = TypeVar("T")

# Fast enough for a whole life cycle in well under a second, slow enough to observe each step.
FAST = Timings(commissioning_s=0.2, testing_s=0.1, deploy_s=0.2, release_s=0.1, jitter=0.2, seed=7)


@pytest.fixture
def lab_spec() -> LabSpec:
    """Four machines: node-01/02 enlisted and Ready without GPUs; node-03/04 with 8 GPUs each,
    powered on but not yet known to MAAS."""
    return generate_spec(4, 2, timings=FAST)


@pytest.fixture
def maas(lab_spec: LabSpec) -> Iterator[MaasEmulator]:
    with run_maas(lab_spec) as emulator:
        yield emulator


async def wait_for(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 5.0) -> T:
    """Poll `probe` until `done(result)`; fail with the last result once `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last result: {result!r}")
        await asyncio.sleep(0.02)


async def wait_for_status(machine: Any, status_name: str, timeout: float = 5.0) -> Any:
    """Refresh a libmaas Machine until its status_name is `status_name`."""

    async def probe() -> str:
        await machine.refresh()
        return str(machine.status_name)

    await wait_for(probe, lambda name: name == status_name, timeout)
    return machine
