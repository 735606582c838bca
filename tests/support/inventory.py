"""Write small valid inventories for tests."""

from __future__ import annotations

import os
from pathlib import Path

BASE = """\
lab: demo
maas:
  url: http://127.0.0.1:5240/MAAS/
  api_key: {env: BOTLAB_TEST_MAAS_KEY}
juju:
  controller: lab
  cloud: lab-maas
ssh:
  user: ubuntu
  public_key: keys/id.pub
  private_key: keys/id
machines:
  - hostname: cp-01
    roles: [control-plane, etcd]
    hardware: {cores: 4, memory: 8G}
  - hostname: gpu-01
    roles: [worker, gpu]
    hardware: {cores: 8, memory: 16G, gpus: 1}
  - hostname: nfs-01
    roles: [nfs]
    hardware: {cores: 2, memory: 4G}
kubernetes:
  channel: 1.31/stable
  container_runtime: containerd
nfs:
  server: nfs-01
  allowed_network: 10.0.0.0/24
metallb:
  version: v0.14.8
  addresses: [10.0.0.200-10.0.0.210]
"""


def write_inventory(folder: Path, text: str = BASE, lab: str = "demo") -> Path:
    """Create `folder/inventory/<lab>/lab.yaml` with its key files; return the lab.yaml path."""
    lab_dir = folder / "inventory" / lab
    (lab_dir / "keys").mkdir(parents=True, exist_ok=True)
    for name in ("id", "id.pub"):
        key = lab_dir / "keys" / name
        key.write_text("test key\n")
        os.chmod(key, 0o600)
    path = lab_dir / "lab.yaml"
    path.write_text(text)
    return path
