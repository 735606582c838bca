"""What the lab knows of NVIDIA GPU models (PCI ids, names, capabilities), shared by nvidia-smi and lspci."""

from __future__ import annotations

from typing import Any

# model substring -> (PCI device id, lspci device name, compute capability, power limit W)
MODELS: tuple[tuple[str, str, str, str, int], ...] = (
    ("A100-SXM4-80GB", "20b2", "GA100 [A100 SXM4 80GB]", "8.0", 400),
    ("A100-SXM4-40GB", "20b0", "GA100 [A100 SXM4 40GB]", "8.0", 400),
    ("A100 80GB PCIe", "20b5", "GA100 [A100 PCIe 80GB]", "8.0", 300),
    ("A100-PCIE-40GB", "20f1", "GA100 [A100 PCIe 40GB]", "8.0", 250),
    ("H100 80GB HBM3", "2330", "GH100 [H100 SXM5 80GB]", "9.0", 700),
    ("H100 PCIe", "2331", "GH100 [H100 PCIe]", "9.0", 350),
    ("H100 NVL", "2321", "GH100 [H100 NVL]", "9.0", 400),
    ("H200", "2335", "GH100 [H200 SXM 141GB]", "9.0", 700),
    ("L40S", "26b9", "AD102GL [L40S]", "8.9", 350),
    ("L40", "26b5", "AD102GL [L40]", "8.9", 300),
    ("L4", "27b8", "AD104GL [L4]", "8.9", 72),
    ("A10G", "2237", "GA102GL [A10G]", "8.6", 300),
    ("A10", "2236", "GA102GL [A10]", "8.6", 150),
    ("Tesla T4", "1eb8", "TU104GL [Tesla T4]", "7.5", 70),
    ("V100-SXM2-32GB", "1db5", "GV100GL [Tesla V100 SXM2 32GB]", "7.0", 300),
    ("V100-SXM2-16GB", "1db1", "GV100GL [Tesla V100 SXM2 16GB]", "7.0", 300),
    ("V100-PCIE", "1db4", "GV100GL [Tesla V100 PCIe 16GB]", "7.0", 250),
)


def model_info(model: str) -> dict[str, Any]:
    for needle, device, pci_name, cap, power in MODELS:
        if needle in model:
            return {"device_id": device, "pci_name": pci_name, "compute_cap": cap, "power_limit": power}
    return {"device_id": "20ff", "pci_name": "Device 20ff", "compute_cap": "8.0", "power_limit": 300}


def bus_parts(bus_id: str) -> tuple[str, str, str, str]:
    """(domain, bus, device, function) of "00000000:07:00.0" or "0000:07:00.0" or "07:00.0", lower case hex."""
    text = bus_id.strip().lower()
    parts = text.split(":")
    if len(parts) == 2:
        parts = ["0000", *parts]
    domain = parts[0][-4:].rjust(4, "0")
    device, _, function = parts[2].partition(".")
    return domain, parts[1].rjust(2, "0"), device.rjust(2, "0"), function or "0"


def nvml_bus_id(bus_id: str) -> str:
    """The bus id as nvidia-smi prints it: 00000000:07:00.0."""
    domain, bus, device, function = bus_parts(bus_id)
    return f"0000{domain}:{bus}:{device}.{function}".upper()


def gpus(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The host's GPUs from its facts, in index order, with defaults filled in."""
    result = []
    for position, gpu in enumerate(facts.get("gpus") or []):
        entry = dict(gpu)
        entry.setdefault("index", position)
        entry.setdefault("model", "NVIDIA A100-SXM4-80GB")
        entry.setdefault("uuid", f"GPU-00000000-0000-0000-0000-{position:012d}")
        entry.setdefault("bus_id", f"00000000:{7 + position:02X}:00.0")
        entry.setdefault("memory_mib", 81920)
        entry.update(model_info(str(entry["model"])))
        result.append(entry)
    return sorted(result, key=lambda g: int(g["index"]))
