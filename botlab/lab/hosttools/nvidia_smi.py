"""The lab's nvidia-smi: the host's GPUs come from its facts (driver and CUDA versions too).

Supports the default table (the layout of the 550+ drivers), -L/--list-gpus, -q/--query (a short form),
--query-gpu=FIELDS --format=csv[,noheader][,nounits] and -i/--id. Without GPUs it fails as nvidia-smi does when
no NVIDIA driver is loaded (exit 9).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import gpus as gpulib
import hostlib

NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
             "NVIDIA driver is installed and running.\n")

# canonical name -> (aliases, unit, value)
Field = tuple[tuple[str, ...], str, Callable[[dict[str, Any], dict[str, Any]], str]]
FIELDS: dict[str, Field] = {
    "timestamp": ((), "", lambda g, f: time.strftime("%Y/%m/%d %H:%M:%S.000")),
    "driver_version": ((), "", lambda g, f: str(f.get("driver_version", ""))),
    "count": ((), "", lambda g, f: str(len(f.get("gpus") or []))),
    "name": (("gpu_name",), "", lambda g, f: str(g["model"])),
    "serial": (("gpu_serial",), "", lambda g, f: f"13240210{int(g['index']):05d}"),
    "uuid": (("gpu_uuid",), "", lambda g, f: str(g["uuid"])),
    "pci.bus_id": (("gpu_bus_id",), "", lambda g, f: gpulib.nvml_bus_id(str(g["bus_id"]))),
    "pci.domain": ((), "", lambda g, f: "0x" + gpulib.bus_parts(str(g["bus_id"]))[0].upper()),
    "pci.bus": ((), "", lambda g, f: "0x" + gpulib.bus_parts(str(g["bus_id"]))[1].upper()),
    "pci.device": ((), "", lambda g, f: "0x" + gpulib.bus_parts(str(g["bus_id"]))[2].upper()),
    "pci.device_id": ((), "", lambda g, f: f"0x{g['device_id'].upper()}10DE"),
    "index": ((), "", lambda g, f: str(g["index"])),
    "persistence_mode": ((), "", lambda g, f: "Enabled"),
    "pstate": ((), "", lambda g, f: "P0"),
    "compute_cap": ((), "", lambda g, f: str(g["compute_cap"])),
    "memory.total": ((), "MiB", lambda g, f: str(g["memory_mib"])),
    "memory.reserved": ((), "MiB", lambda g, f: "0"),
    "memory.used": ((), "MiB", lambda g, f: "0"),
    "memory.free": ((), "MiB", lambda g, f: str(g["memory_mib"])),
    "utilization.gpu": ((), "%", lambda g, f: "0"),
    "utilization.memory": ((), "%", lambda g, f: "0"),
    "temperature.gpu": ((), "", lambda g, f: "30"),
    "power.draw": ((), "W", lambda g, f: "62.00"),
    "power.limit": ((), "W", lambda g, f: f"{g['power_limit']:.2f}"),
    "mig.mode.current": ((), "", lambda g, f: "Disabled"),
    "mig.mode.pending": ((), "", lambda g, f: "Disabled"),
    "compute_mode": ((), "", lambda g, f: "Default"),
    "vbios_version": ((), "", lambda g, f: "92.00.45.00.05"),
}


def lookup(name: str) -> str | None:
    for canonical, (aliases, _unit, _value) in FIELDS.items():
        if name == canonical or name in aliases:
            return canonical
    return None


def table(facts: dict[str, Any], selected: list[dict[str, Any]]) -> str:
    driver, cuda = str(facts.get("driver_version", "")), str(facts.get("cuda_version", ""))
    border = "+" + "-" * 89 + "+"
    split = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"
    lines = [time.strftime("%a %b %e %H:%M:%S %Y"), border,
             f"| NVIDIA-SMI {driver:<23}Driver Version: {driver:<15}CUDA Version: {cuda:<9}|", split,
             "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
             "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
             "|                                         |                        |               MIG M. |",
             "|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|"]
    for gpu in selected:
        name = str(gpu["model"])
        if len(name) > 31:
            name = name[:28] + "..."
        lines.append(f"| {int(gpu['index']):>3}  {name:<31}On  |{gpulib.nvml_bus_id(str(gpu['bus_id'])):>19} Off |"
                     f"{'0':>21} |")
        lines.append(f"| N/A  {30:>3}C    P0{62:>15}W / {gpu['power_limit']:>4}W |"
                     f"{1:>8}MiB / {gpu['memory_mib']:>6}MiB |{0:>7}%{'Default':>13} |")
        lines.append(f"|{'':41}|{'':24}|{'Disabled':>21} |")
        lines.append(split)
    lines += [" " * 91, border, f"| {'Processes:':<88}|",
              f"| {' GPU   GI   CI              PID   Type   Process name                        GPU Memory':<88}|",
              f"| {'       ID   ID                                                               Usage':<88}|",
              "|" + "=" * 89 + "|", f"| {' No running processes found':<88}|", border]
    return "\n".join(lines)


def query(facts: dict[str, Any], selected: list[dict[str, Any]], fields: str, fmt: str | None) -> int:
    if fmt is None:
        print('"--format" must be specified with "--query-gpu". Please run \'nvidia-smi -h\' for help.')
        return 2
    options = [o.strip() for o in fmt.split(",")]
    if "csv" not in options or any(o not in ("csv", "noheader", "nounits") for o in options):
        print(f'"{fmt}" is not a valid format. Please run \'nvidia-smi -h\' for help.')
        return 2
    names = [n.strip() for n in fields.split(",") if n.strip()]
    canonical = []
    for name in names:
        found = lookup(name)
        if found is None:
            print(f'Field "{name}" is not a valid field to query.\n')
            return 2
        canonical.append(found)
    if "noheader" not in options:
        print(", ".join(f"{n} [{FIELDS[n][1]}]" if FIELDS[n][1] else n for n in canonical))
    for gpu in selected:
        values = []
        for name in canonical:
            unit = FIELDS[name][1]
            text = FIELDS[name][2](gpu, facts)
            if unit and "nounits" not in options:
                text = f"{text} %" if unit == "%" else f"{text} {unit}"
            values.append(text)
        print(", ".join(values))
    return 0


def detailed(facts: dict[str, Any], selected: list[dict[str, Any]]) -> str:
    lines = ["", "==============NVSMI LOG==============", "",
             f"{'Timestamp':<42}: {time.strftime('%a %b %e %H:%M:%S %Y')}",
             f"{'Driver Version':<42}: {facts.get('driver_version', '')}",
             f"{'CUDA Version':<42}: {facts.get('cuda_version', '')}", "",
             f"{'Attached GPUs':<42}: {len(facts.get('gpus') or [])}"]
    for gpu in selected:
        lines += [f"GPU {gpulib.nvml_bus_id(str(gpu['bus_id']))}",
                  f"    {'Product Name':<38}: {gpu['model']}",
                  f"    {'Product Brand':<38}: NVIDIA",
                  f"    {'Persistence Mode':<38}: Enabled",
                  f"    {'GPU UUID':<38}: {gpu['uuid']}",
                  f"    {'Minor Number':<38}: {gpu['index']}",
                  f"    {'FB Memory Usage':<38}",
                  f"        {'Total':<34}: {gpu['memory_mib']} MiB",
                  f"        {'Reserved':<34}: 0 MiB",
                  f"        {'Used':<34}: 0 MiB",
                  f"        {'Free':<34}: {gpu['memory_mib']} MiB", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    facts = hostlib.facts()
    fields: str | None = None
    fmt: str | None = None
    ids: list[str] | None = None
    mode = "table"
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in ("--query-gpu", "--format", "-i", "--id") and not eq:
            if i + 1 >= len(args):
                print(f"Option {name} requires an argument. Please run 'nvidia-smi -h' for help.")
                return 2
            value = args[i + 1]
            i += 1
        if name == "--query-gpu":
            fields = value
        elif name == "--format":
            fmt = value
        elif name in ("-i", "--id"):
            ids = [v.strip() for v in value.split(",")]
        elif arg in ("-L", "--list-gpus"):
            mode = "list"
        elif arg in ("-q", "--query"):
            mode = "detailed"
        elif arg in ("-h", "--help"):
            print("NVIDIA System Management Interface -- v" + str(facts.get("driver_version", "")))
            return 0
        else:
            print(f"ERROR: Option {arg} is not recognized. Please run 'nvidia-smi -h'.")
            return 2
        i += 1
    if not facts.get("gpus"):
        sys.stdout.write(NO_DRIVER)
        return 9
    all_gpus = gpulib.gpus(facts)
    selected = all_gpus
    if ids is not None:
        selected = [g for g in all_gpus if str(g["index"]) in ids or g["uuid"] in ids
                    or gpulib.nvml_bus_id(str(g["bus_id"])) in [i.upper() for i in ids]]
        if not selected:
            print("No devices were found")
            return 6
    if fields is not None:
        return query(facts, selected, fields, fmt)
    if mode == "list":
        for gpu in selected:
            print(f"GPU {gpu['index']}: {gpu['model']} (UUID: {gpu['uuid']})")
        return 0
    if mode == "detailed":
        print(detailed(facts, selected))
        return 0
    print(table(facts, selected))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
