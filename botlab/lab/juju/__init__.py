"""An emulated Juju 3.6 controller speaking the real websocket API, for unmodified python-libjuju.

See docs/lab-juju.md. The names below are imported lazily, so modules of this package that
need none of them (the bundle-changes computation) stay cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "JujuEmulator": "botlab.lab.juju.emulator",
    "run_juju": "botlab.lab.juju.emulator",
    "JujuSettings": "botlab.lab.juju.emulator",
    "CallContext": "botlab.lab.juju.facades",
    "FacadeRegistry": "botlab.lab.juju.facades",
    "REGISTRY": "botlab.lab.juju.facades",
    "facade_method": "botlab.lab.juju.facades",
    "status_contributor": "botlab.lab.juju.facades",
    "destroy_hook": "botlab.lab.juju.facades",
    "JujuApiError": "botlab.lab.juju.errors",
    "JujuFault": "botlab.lab.juju.faults",
    "ControllerState": "botlab.lab.juju.state",
    "ModelState": "botlab.lab.juju.state",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
