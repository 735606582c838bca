"""python-libjuju helpers for the lab's Juju tests: controllers found through JUJU_DATA, as an
operator's client finds them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from juju.controller import Controller
from juju.model import Model


async def connected_controller() -> Controller:
    controller = Controller()
    await controller.connect()
    return controller


@asynccontextmanager
async def fresh_model(
    name: str, timeout: float, config: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Controller, Model]]:
    """A new model `name` (with `config`); destroyed afterwards, waiting up to `timeout` for
    it to go (its machines released in MAAS)."""
    controller = await connected_controller()
    model = await controller.add_model(name, config=config)
    try:
        yield controller, model
    finally:
        await model.disconnect()
        await controller.destroy_model(name)
        deadline = time.monotonic() + timeout
        while name in await controller.list_models():
            assert time.monotonic() < deadline, f"model {name} was not removed"
            await asyncio.sleep(0.02)
        await controller.disconnect()
