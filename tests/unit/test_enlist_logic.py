"""Pure pieces of the enlist stage: GPU counting from lshw, tag names, poll pacing."""

from __future__ import annotations

from pathlib import Path

from botlab import names
from botlab.drivers.maas import count_gpus
from botlab.inventory import load_inventory
from botlab.stages.enlist import POLL_CAP_S, POLL_FLOOR_S, poll_interval, wanted_tags
from tests.support.inventory import write_inventory

LSHW = """<?xml version="1.0"?>
<list><node id="server" class="system">
  <node id="display:0" class="display"><vendor>ASPEED Technology, Inc.</vendor>
    <product>ASPEED Graphics Family</product></node>
  <node id="display:1" class="display"><vendor>NVIDIA Corporation</vendor>
    <product>GA100 [A100 SXM4 80GB]</product></node>
  <node id="display:2" class="display"><vendor>NVIDIA Corporation</vendor>
    <product>GA100 [A100 SXM4 80GB]</product></node>
  <node id="network" class="network"><vendor>NVIDIA Corporation</vendor>
    <product>ConnectX-6</product></node>
</node></list>"""


def test_gpus_are_nvidia_display_devices_only() -> None:
    # The onboard VGA is a display device and the NIC an NVIDIA device: neither is a GPU.
    assert count_gpus(LSHW) == 2
    assert count_gpus(b"<list/>") == 0
    assert count_gpus("not xml") == 0


def test_tags_are_prefixed_with_the_lab_name(tmp_path: Path) -> None:
    inv = load_inventory(write_inventory(tmp_path))
    gpu = inv.machine("gpu-01")
    assert wanted_tags(inv, gpu) == {"demo", "demo-pin-gpu-01", "demo-role-worker", "demo-role-gpu"}
    assert names.pin_tag(inv.name, "cp-01") == "demo-pin-cp-01"


def test_polling_is_frequent_early_and_sparse_for_long_waits() -> None:
    assert poll_interval(0.0, None) == POLL_FLOOR_S
    assert poll_interval(20.0, None) == 1.0  # 5% of the wait so far
    assert poll_interval(1.0, 20.0) == 1.0  # or of the typical duration seen so far
    assert poll_interval(3600.0, None) == POLL_CAP_S
