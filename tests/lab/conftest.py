"""Fixtures for lab tests: a fast lab spec and a MAAS emulator serving it from a thread; a Juju
controller emulator on a test module's own lab; and the helpers the lab tests share."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from botlab.lab.juju import JujuEmulator, run_juju
from botlab.lab.maas import MaasEmulator, run_maas
from botlab.lab.spec import LabSpec, Timings, generate_spec

T = TypeVar("T")

# Its asserts report like this file's (imported by the Juju test modules, after this file).
pytest.register_assert_rewrite("tests.support.libjuju")

# Fast enough for a whole life cycle in well under a second, slow enough to observe each step.
FAST = Timings(commissioning_s=0.2, testing_s=0.1, deploy_s=0.2, release_s=0.1, jitter=0.2, seed=7)

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0bEoVbPQSaHcuLNYKwjTBtYP8VSjsTKFl8SXVYWrK botlab@test"


@pytest.fixture
def lab_spec() -> LabSpec:
    """Four machines: node-01/02 enlisted and Ready without GPUs; node-03/04 with 8 GPUs each,
    powered on but not yet known to MAAS."""
    return generate_spec(4, 2, timings=FAST)


@pytest.fixture
def maas(lab_spec: LabSpec) -> Iterator[MaasEmulator]:
    with run_maas(lab_spec) as emulator:
        yield emulator


# The Juju fixtures stand on the requesting test module's own `lab` fixture: a module-scoped
# (LabSpec, MaasEmulator) pair.


@pytest.fixture(scope="module")
def juju(lab: tuple[LabSpec, MaasEmulator]) -> Iterator[JujuEmulator]:
    spec, maas = lab
    with run_juju(spec, maas.url, maas.api_key) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def juju_data_dir(juju: JujuEmulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return juju.write_juju_data(tmp_path_factory.mktemp("juju-data") / "juju")


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


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


async def eventually(condition: Callable[[], Any], timeout: float = 5.0, what: str = "the condition") -> Any:
    """Poll `condition` until it is true; fail naming `what` once `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout}s")
        await asyncio.sleep(0.02)


def wait_until_ready(maas: MaasEmulator, timeout: float) -> None:
    """Wait until every MAAS node is Ready (a previous test's model released them)."""
    deadline = time.monotonic() + timeout
    while any(m["status_name"] != "Ready" for m in maas.state()["machines"]):
        assert time.monotonic() < deadline, f"MAAS nodes not Ready: {maas.state()['machines']}"
        time.sleep(0.02)


def control_call(url: str, body: Any = None, method: str = "GET", timeout: float = 5) -> Any:
    """One call to an emulator's loopback control API: `body` (if any) sent as JSON, the JSON
    answer returned."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())
