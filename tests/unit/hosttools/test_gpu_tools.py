"""nvidia-smi, lspci and nvidia-container-runtime show GPUs only where the host's facts have them."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.unit.hosttools.conftest import CPU_FACTS, GPU_FACTS, Host

UUID0 = GPU_FACTS["gpus"][0]["uuid"]
UUID1 = GPU_FACTS["gpus"][1]["uuid"]
NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
             "NVIDIA driver is installed and running.\n")


def test_nvidia_smi_on_a_gpu_host(host_factory: Any) -> None:
    host: Host = host_factory(GPU_FACTS)
    assert host.ok("nvidia-smi", "-L") == (f"GPU 0: NVIDIA A100-SXM4-80GB (UUID: {UUID0})\n"
                                           f"GPU 1: NVIDIA A100-SXM4-80GB (UUID: {UUID1})\n")
    csv = host.ok("nvidia-smi", "--query-gpu=name,uuid,memory.total,index,driver_version", "--format=csv")
    assert csv == ("name, uuid, memory.total [MiB], index, driver_version\n"
                   f"NVIDIA A100-SXM4-80GB, {UUID0}, 81920 MiB, 0, 550.127.05\n"
                   f"NVIDIA A100-SXM4-80GB, {UUID1}, 81920 MiB, 1, 550.127.05\n")
    assert host.ok("nvidia-smi", "--query-gpu=gpu_name,memory.total", "--format=csv,noheader,nounits", "-i", "1") == (
        "NVIDIA A100-SXM4-80GB, 81920\n")
    assert host.ok("nvidia-smi", "--query-gpu", "pci.bus_id", "--format", "csv,noheader") == (
        "00000000:07:00.0\n00000000:0A:00.0\n")
    bad = host.run("nvidia-smi", "--query-gpu=name,cuda_version", "--format=csv")
    assert (bad.returncode, bad.stdout) == (2, 'Field "cuda_version" is not a valid field to query.\n\n')
    table = host.ok("nvidia-smi").splitlines()
    assert table[2] == ("| NVIDIA-SMI 550.127.05             Driver Version: 550.127.05     CUDA Version: 12.4     "
                        "|")
    assert table[8] == ("|   0  NVIDIA A100-SXM4-80GB          On  |   00000000:07:00.0 Off |                    0 "
                        "|")
    assert table[9] == ("| N/A   30C    P0             62W /  400W |       1MiB /  81920MiB |      0%      Default "
                        "|")
    assert "|   1  NVIDIA A100-SXM4-80GB          On  |   00000000:0A:00.0 Off |" in table[12]


def test_lspci_lists_gpus_from_facts(host_factory: Any) -> None:
    gpu: Host = host_factory(GPU_FACTS, name="gpu")
    cpu: Host = host_factory(CPU_FACTS, name="cpu")
    assert gpu.ok("lspci", "-nn", "-d", "10de:") == (
        "07:00.0 3D controller [0302]: NVIDIA Corporation GA100 [A100 SXM4 80GB] [10de:20b2] (rev a1)\n"
        "0a:00.0 3D controller [0302]: NVIDIA Corporation GA100 [A100 SXM4 80GB] [10de:20b2] (rev a1)\n")
    listing = gpu.ok("lspci")
    assert "07:00.0 3D controller: NVIDIA Corporation GA100 [A100 SXM4 80GB] (rev a1)\n" in listing
    assert "00:03.0 Ethernet controller: Red Hat, Inc. Virtio network device\n" in listing
    assert gpu.ok("lspci", "-D", "-d", "::0302").startswith("0000:07:00.0 3D controller: NVIDIA Corporation")
    assert gpu.ok("lspci", "-s", "0a:00.0").startswith("0a:00.0 3D controller")
    assert cpu.ok("lspci", "-d", "10de:") == ""
    assert "NVIDIA" not in cpu.ok("lspci")
    assert cpu.run("lspci", "-d", "zz:").returncode == 2


def test_no_driver_on_a_host_without_gpus(host_factory: Any) -> None:
    host: Host = host_factory(CPU_FACTS)
    assert not host.path("/usr/bin/nvidia-smi").exists()
    # The tool itself (as if the driver utilities were installed without a GPU) fails as nvidia-smi does.
    proc = subprocess.run([sys.executable, str(host.path("/usr/lib/botlab-lab/nvidia_smi.py")), "-L"],
                          env=host.env(), capture_output=True, text=True, timeout=30, check=False)
    assert (proc.returncode, proc.stdout) == (9, NO_DRIVER)


def test_nvidia_container_runtime(host_factory: Any) -> None:
    cpu: Host = host_factory({**CPU_FACTS, "nvidia_toolkit": True}, name="cpu")
    gpu: Host = host_factory(GPU_FACTS, name="gpu")
    version = cpu.ok("nvidia-container-runtime", "--version")
    assert version.startswith("NVIDIA Container Runtime version 1.17.8\ncommit: "
                              "f202b80a9b9d0db00d9b1d73c0128c8962c55f4d\nspec: 1.2.1\n\nrunc version ")
    create = cpu.run("nvidia-container-runtime", "--root", "/var/run/docker/runtime-runc/moby", "create", "--bundle",
                     "/run/containerd/bundle", "c0ffee")
    assert create.returncode == 1
    assert create.stderr.endswith("nvidia-container-cli: initialization error: load library failed: "
                                  "libnvidia-ml.so.1: cannot open shared object file: no such file or directory: "
                                  "unknown\n")
    refused = gpu.run("nvidia-container-runtime", "create", "--bundle", "/b", "c0ffee")
    assert refused.returncode == 1 and "does not emulate" in refused.stderr
