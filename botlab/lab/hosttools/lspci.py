"""The lab's lspci: a few ordinary devices of a virtual machine plus one NVIDIA 3D controller per GPU in the
host's facts. Supports -n, -nn, -D, -d [vendor]:[device][:class], -s [[domain:]bus:]slot[.func], -k/-v (ignored
beyond what the plain listing shows)."""

from __future__ import annotations

import sys
from typing import Any

import gpus as gpulib
import hostlib

# (domain, bus, device, function, class, class name, vendor, vendor name, device, device name, rev)
BASE_DEVICES: tuple[tuple[str, str, str, str, str, str, str, str, str, str, str], ...] = (
    ("0000", "00", "00", "0", "0600", "Host bridge", "8086", "Intel Corporation", "1237",
     "440FX - 82441FX PMC [Natoma]", "02"),
    ("0000", "00", "01", "0", "0601", "ISA bridge", "8086", "Intel Corporation", "7000",
     "82371SB PIIX3 ISA [Natoma/Triton II]", ""),
    ("0000", "00", "01", "1", "0101", "IDE interface", "8086", "Intel Corporation", "7010",
     "82371SB PIIX3 IDE [Natoma/Triton II]", ""),
    ("0000", "00", "01", "3", "0680", "Bridge", "8086", "Intel Corporation", "7113", "82371AB/EB/MB PIIX4 ACPI",
     "03"),
    ("0000", "00", "02", "0", "0300", "VGA compatible controller", "1234", "Device", "1111", "", "02"),
    ("0000", "00", "03", "0", "0200", "Ethernet controller", "1af4", "Red Hat, Inc.", "1000", "Virtio network device",
     ""),
    ("0000", "00", "04", "0", "0100", "SCSI storage controller", "1af4", "Red Hat, Inc.", "1001",
     "Virtio block device", ""),
)


def devices(facts: dict[str, Any]) -> list[tuple[str, ...]]:
    found = list(BASE_DEVICES)
    for gpu in gpulib.gpus(facts):
        domain, bus, dev, function = gpulib.bus_parts(str(gpu["bus_id"]))
        found.append((domain, bus, dev, function, "0302", "3D controller", "10de", "NVIDIA Corporation",
                      str(gpu["device_id"]), str(gpu["pci_name"]), "a1"))
    return sorted(found, key=lambda d: (d[0], d[1], d[2], d[3]))


def matches_filter(device: tuple[str, ...], spec: str) -> bool:
    parts = spec.split(":")
    vendor = parts[0] if parts else ""
    dev = parts[1] if len(parts) > 1 else ""
    klass = parts[2] if len(parts) > 2 else ""
    return ((not vendor or vendor.lower() == device[6]) and (not dev or dev.lower() == device[8])
            and (not klass or klass.lower() == device[4]))


def matches_slot(device: tuple[str, ...], spec: str) -> bool:
    parts = spec.lower().split(":")
    slot_func = parts[-1]
    slot, _, func = slot_func.partition(".")
    bus = parts[-2] if len(parts) >= 2 else ""
    domain = parts[-3] if len(parts) >= 3 else ""
    return ((not domain or int(domain, 16) == int(device[0], 16)) and (not bus or int(bus, 16) == int(device[1], 16))
            and (not slot or int(slot, 16) == int(device[2], 16)) and (not func or func == device[3]))


def main(argv: list[str]) -> int:
    numeric = 0
    show_domain = False
    vendor_filter: str | None = None
    slot_filter: str | None = None
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-d", "-s"):
            if i + 1 >= len(args):
                print(f"lspci: option requires an argument -- '{arg[1]}'", file=sys.stderr)
                return 2
            value = args[i + 1]
            i += 1
            if arg == "-d":
                if not all(p == "" or (len(p) <= 4 and all(c in "0123456789abcdefABCDEF*" for c in p))
                           for p in value.split(":")) or value.count(":") > 2:
                    print("lspci: -d: Invalid vendor ID", file=sys.stderr)
                    return 2
                vendor_filter = value
            else:
                slot_filter = value
        elif arg.startswith("-d") and len(arg) > 2:
            vendor_filter = arg[2:]
        elif arg.startswith("-s") and len(arg) > 2:
            slot_filter = arg[2:]
        elif arg.startswith("-") and len(arg) > 1 and all(c in "nDvkmqtbx" for c in arg[1:]):
            numeric += arg.count("n")
            show_domain = show_domain or "D" in arg
        else:
            print(f"lspci: invalid option -- '{arg.lstrip('-')[:1]}'", file=sys.stderr)
            return 2
        i += 1
    for device in devices(hostlib.facts()):
        if vendor_filter is not None and not matches_filter(device, vendor_filter):
            continue
        if slot_filter is not None and not matches_slot(device, slot_filter):
            continue
        domain, bus, dev, func, klass, klass_name, vendor, vendor_name, device_id, device_name, rev = device
        slot = f"{domain}:{bus}:{dev}.{func}" if show_domain else f"{bus}:{dev}.{func}"
        revision = f" (rev {rev})" if rev else ""
        if numeric == 1:
            print(f"{slot} {klass}: {vendor}:{device_id}{revision}")
        elif numeric >= 2:
            name = f"{vendor_name} {device_name}".strip() if vendor_name != "Device" else "Device"
            print(f"{slot} {klass_name} [{klass}]: {name} [{vendor}:{device_id}]{revision}")
        else:
            name = f"{vendor_name} {device_name}".strip() if vendor_name != "Device" else f"Device {device_id}"
            print(f"{slot} {klass_name}: {name}{revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
