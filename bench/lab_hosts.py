"""Lab hosts: how long booting N hosts takes (all at once, as a bundle deploy asks), what they
cost in memory, how fast a remote command answers, and how long tearing them down takes.
Needs root (namespaces); prints why and writes nothing elsewhere."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import boot_hosts, write_result

SIZES = (1, 10, 30)
COMMANDS = 20


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _host_pids(mount_ns: set[str]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "ns" / "mnt").readlink().name in mount_ns:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def one(n: int, workdir: Path) -> dict[str, Any]:
    from fabric import Connection
    from paramiko import AutoAddPolicy

    from botlab.lab.hosts.cloudinit import new_host_key
    from botlab.lab.hosts.manager import HostManager
    from botlab.lab.spec import generate_spec

    spec = generate_spec(n, n // 3)
    key = new_host_key("operator")
    key_file = workdir / f"id{n}"
    key_file.write_text(key.private)
    key_file.chmod(0o600)
    user_data = f"#cloud-config\nssh_authorized_keys: ['{key.public}']\n".encode()
    hosts = HostManager(workdir / f"lab{n}", spec)
    hosts.start()
    try:
        boot_s = boot_hosts(hosts, spec, user_data, "s", "10.77.0")
        running = hosts.hosts()
        mount_ns = {Path(f"/proc/{h.pid}/ns/mnt").readlink().name for h in running}
        rss = _rss_kib(_host_pids(mount_ns))
        conn = Connection(running[0].address, user="ubuntu",
                          connect_kwargs={"key_filename": str(key_file), "look_for_keys": False,
                                          "allow_agent": False})
        conn.client.set_missing_host_key_policy(AutoAddPolicy())
        conn.open()
        latencies = []
        for _ in range(COMMANDS):
            t0 = time.perf_counter()
            conn.run("true", hide=True, in_stream=False)
            latencies.append(time.perf_counter() - t0)
        conn.close()
    finally:
        t0 = time.perf_counter()
        hosts.stop()
        stop_s = time.perf_counter() - t0
    return {"hosts": n, "boot_all_s": round(boot_s, 3), "boot_per_host_s": round(boot_s / n, 3),
            "rss_per_host_mib": round(rss / n / 1024, 1), "ssh_command_median_ms": round(
                statistics.median(latencies) * 1000, 1), "stop_all_s": round(stop_s, 3)}


def run() -> None:
    from botlab.lab.hosts.manager import hosts_supported

    why_not = hosts_supported()
    if why_not:
        print(f"lab_hosts: skipped: {why_not}")
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="botlab-bench-hosts-") as tmp:
        for n in SIZES:
            rows.append(one(n, Path(tmp)))
            print("lab_hosts:", rows[-1], flush=True)
    path = write_result("lab_hosts", {"rows": rows})
    print(f"lab_hosts: results in {path}")
