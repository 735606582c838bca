"""Thin adapters over the real clients (MAAS, Juju, SSH, Kubernetes); no policy lives here.

`Drivers` connects each client lazily, on a stage's first use, so `botlab --help`, `validate`
and stages that do not need a system never import or reach it. A command opens it once, as an
async context manager, on its one event loop, so no client outlives the loop it is bound to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from botlab.artifacts import ArtifactCache
    from botlab.drivers.juju import JujuDriver
    from botlab.drivers.kubernetes import KubeDriver
    from botlab.drivers.maas import MaasDriver
    from botlab.drivers.ssh import SshDriver
    from botlab.inventory import Inventory

log = logging.getLogger("botlab.drivers")


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

    async def ssh(self) -> SshDriver:
        """The run's SSH pool: one connection per host, shared by every step and stage."""
        if "ssh" not in self._open:
            from botlab.drivers.ssh import SshDriver

            self._open["ssh"] = SshDriver.connect(self.inventory, self.environ)
        driver: SshDriver = self._open["ssh"]
        return driver

    async def kube(self, kubeconfig: Path) -> KubeDriver:
        """The new cluster's API, through the kubeconfig the kubernetes stage wrote."""
        if "kube" not in self._open:
            from botlab.drivers.kubernetes import KubeDriver

            self._open["kube"] = KubeDriver.connect(kubeconfig, self.environ)
        driver: KubeDriver = self._open["kube"]
        return driver

    async def artifacts(self) -> ArtifactCache:
        """The pinned upstream files, from the state folder's cache (downloaded when missing)."""
        from botlab.artifacts import cache_for

        return cache_for(self.inventory)

    async def __aenter__(self) -> Drivers:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every driver opened so far; never raises, so it cannot hide the run's own
        error, and one driver's failure to close does not leave the others open."""
        opened, self._open = self._open, {}
        for name, driver in opened.items():
            try:
                await driver.close()
            except Exception as exc:
                log.debug("closing the %s driver: %s", name, exc)
