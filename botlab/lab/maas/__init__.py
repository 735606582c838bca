"""An emulated MAAS region speaking the MAAS 2.0 REST API, for unmodified python-libmaas."""

from botlab.lab.maas.emulator import MaasEmulator, run_maas

__all__ = ["MaasEmulator", "run_maas"]
