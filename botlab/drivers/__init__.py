"""Thin adapters over the real clients (MAAS, Juju, SSH, Kubernetes); no policy lives here.

`Drivers` connects each client lazily, on a stage's first use, so `botlab --help`, `validate`
and stages that do not need a system never import or reach it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botlab.drivers.juju import JujuDriver
    from botlab.drivers.maas import MaasDriver
    from botlab.inventory import Inventory


class Drivers:
    """The real drivers for one run, opened on first use and closed at the end."""

    def __init__(self, inventory: Inventory, environ: Mapping[str, str]) -> None:
        self.inventory = inventory
        self.environ = environ
        self._open: dict[str, Any] = {}

    async def maas(self) -> MaasDriver:
        if "maas" not in self._open:
            from botlab.drivers.maas import MaasDriver

            self._open["maas"] = await MaasDriver.connect(self.inventory, self.environ)
        driver: MaasDriver = self._open["maas"]
        return driver

    async def juju(self) -> JujuDriver:
        if "juju" not in self._open:
            from botlab.drivers.juju import JujuDriver

            self._open["juju"] = await JujuDriver.connect(self.inventory, self.environ)
        driver: JujuDriver = self._open["juju"]
        return driver

    async def close(self) -> None:
        for driver in self._open.values():
            await driver.close()
        self._open.clear()
