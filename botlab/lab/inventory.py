"""Write a complete botlab inventory (and its secret and key files) for a virtual lab.

The lab's machines get roles the way a small real lab would: the first is the control
plane and etcd, the second the API load balancer, machines with GPUs are GPU workers, the
last plain machine serves NFS, and the rest are workers.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import yaml

from botlab.lab import artifacts
from botlab.lab.spec import LabSpec, MachineSpec

POWER_PASS = "lab-power-password"


def assign_roles(spec: LabSpec) -> dict[str, list[str]]:
    machines = list(spec.machines)
    roles: dict[str, list[str]] = {m.hostname: [] for m in machines}
    if not machines:
        return roles
    plain = [m for m in machines if m.gpus.count == 0]
    roles[machines[0].hostname] = ["control-plane", "etcd"]
    if len(plain) >= 4:
        roles[plain[1].hostname] = ["load-balancer"]
    for m in machines:
        if m.gpus.count:
            roles[m.hostname] = ["worker", "gpu"]
    spare = [m for m in plain if not roles[m.hostname]]
    if len(spare) >= 2:
        roles[spare[-1].hostname] = ["nfs"]
    for m in machines:
        if not roles[m.hostname]:
            roles[m.hostname] = ["worker"]
    if not any("worker" in r for r in roles.values()):
        roles[machines[0].hostname].append("worker")
    return roles


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def write_ssh_keypair(folder: Path) -> tuple[Path, Path]:
    """An ed25519 key pair for the lab's operator (OpenSSH formats), made once."""
    private, public = folder / "id_ed25519", folder / "id_ed25519.pub"
    if private.exists() and public.exists():
        return private, public
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    _write_private(
        private,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode(),
    )
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    public.write_text(f"{pub} botlab-lab-operator\n")
    return private, public


def _metallb_range(spec: LabSpec) -> str:
    net = spec.network.network
    hosts = net.num_addresses
    # The top of the lab network, away from the addresses MAAS hands out from the bottom.
    first = net.network_address + max(2, hosts - 40)
    last = net.network_address + max(3, hosts - 11)
    return f"{ipaddress.ip_address(first)}-{ipaddress.ip_address(last)}"


def _machine_entry(m: MachineSpec, roles: list[str], index: int) -> dict[str, Any]:
    return {
        "hostname": m.hostname,
        "roles": roles,
        "hardware": {"cores": m.cores, "memory": f"{m.memory_mib}M", "gpus": m.gpus.count},
        "macs": list(m.macs),
        "architecture": m.architecture,
        "power": {
            "type": m.power_type,
            "parameters": {
                **{k: v for k, v in m.power_parameters.items() if k != "power_pass"},
                "power_address": m.power_parameters.get("power_address", f"10.78.0.{index + 10}"),
                "power_user": m.power_parameters.get("power_user", "admin"),
                "power_pass": {"file": "../secrets/power-pass"},
            },
        },
    }


def _juju_section(lab_dir: Path, juju_data: Path | None, controller: str, cloud: str) -> dict[str, Any]:
    # The model is left to its default, `<lab>-k8s`, so a copy of the inventory renamed to
    # another lab stays valid.
    section: dict[str, Any] = {"controller": controller, "cloud": cloud}
    if juju_data is not None:
        # Relative to the inventory folder (lab_dir/inventory), so the lab folder can move.
        section["data_dir"] = os.path.relpath(Path(juju_data).resolve(), (lab_dir / "inventory").resolve())
    return section


def write_lab_inventory(
    lab_dir: Path,
    spec: LabSpec,
    maas_url: str,
    name: str,
    *,
    juju_data: Path | None = None,
    juju_controller: str = "botlab-lab",
    juju_cloud: str = "lab-maas",
) -> Path:
    """Write `lab_dir/inventory/lab.yaml` with its secrets (0600) and SSH keys; return it.

    With `juju_data` (the JUJU_DATA folder the lab's controller wrote) the `juju:` section
    points at it, so botlab's Juju client finds the lab's controller there."""
    secrets = lab_dir / "secrets"
    secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(secrets / "maas-api-key", spec.maas.api_key + "\n")
    _write_private(secrets / "power-pass", POWER_PASS + "\n")
    write_ssh_keypair(lab_dir / "keys")
    roles = assign_roles(spec)
    nfs = next((h for h, r in roles.items() if "nfs" in r), None)
    doc: dict[str, Any] = {
        "lab": name,
        "maas": {
            "url": maas_url,
            "api_key": {"file": "../secrets/maas-api-key"},
            "timeout": 900,
        },
        "juju": _juju_section(lab_dir, juju_data, juju_controller, juju_cloud),
        "ssh": {"user": "ubuntu", "public_key": "../keys/id_ed25519.pub", "private_key": "../keys/id_ed25519"},
        "machines": [_machine_entry(m, roles[m.hostname], i) for i, m in enumerate(spec.machines)],
        "kubernetes": {"channel": "1.31/stable", "container_runtime": "containerd"},
        "metallb": {"version": "v0.14.8", "addresses": [_metallb_range(spec)]},
        "kubeflow": {"channel": "1.9/stable"},
        "artifacts": artifacts.inventory_section(maas_url.split("/MAAS", 1)[0].rstrip("/")),
    }
    if nfs:
        doc["nfs"] = {"server": nfs, "allowed_network": str(spec.network.network)}
    folder = lab_dir / "inventory"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lab.yaml"
    header = (
        "# Written by `botlab lab start` for the virtual lab in this folder.\n"
        "# Secrets live in ../secrets (mode 0600); the lab's MAAS listens on loopback.\n"
    )
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return path
