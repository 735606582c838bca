"""What commissioning reports about a machine: lshw XML (GPUs as display devices next to the
onboard ASPEED VGA, so GPUs are counted by vendor), LLDP XML and hardware_info."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import bson

from botlab.lab.maas.model import Machine
from botlab.lab.spec import gpu_pci_address

_UNKNOWN = "Unknown"


def hardware_info(m: Machine) -> dict[str, str]:
    """The machine's `hardware_info` field (all "Unknown" until commissioned)."""
    hw = m.hardware if m.commissioned else None
    if hw is None:
        keys = (
            "system_vendor",
            "system_product",
            "system_family",
            "system_version",
            "system_sku",
            "system_serial",
            "cpu_model",
            "mainboard_vendor",
            "mainboard_product",
            "mainboard_serial",
            "mainboard_version",
            "mainboard_firmware_vendor",
            "mainboard_firmware_date",
            "mainboard_firmware_version",
            "chassis_vendor",
            "chassis_type",
            "chassis_serial",
            "chassis_version",
        )
        return dict.fromkeys(keys, _UNKNOWN)
    return {
        "system_vendor": hw.system_vendor,
        "system_product": hw.system_product,
        "system_family": "Server",
        "system_version": "0123456789",
        "system_sku": hw.system_product,
        "system_serial": f"S{m.system_id.upper()}",
        "cpu_model": hw.cpu_model,
        "mainboard_vendor": hw.system_vendor,
        "mainboard_product": f"{hw.system_product}-MB",
        "mainboard_serial": f"MB{m.system_id.upper()}",
        "mainboard_version": "1.01",
        "mainboard_firmware_vendor": "American Megatrends International, LLC.",
        "mainboard_firmware_date": "03/15/2023",
        "mainboard_firmware_version": "2.5",
        "chassis_vendor": hw.system_vendor,
        "chassis_type": "Rack Mount Chassis",
        "chassis_serial": f"C{m.system_id.upper()}",
        "chassis_version": "0123456789",
    }


def details_bson(m: Machine) -> bytes:
    """The body of `op=details`: BSON of {"lshw": xml, "lldp": xml} (None before commissioning),
    the XML documents as binary, as MAAS sends them."""
    if not m.commissioned or m.hardware is None:
        return bson.encode({"lshw": None, "lldp": None})
    return bson.encode({"lshw": bson.Binary(lshw_xml(m)), "lldp": bson.Binary(lldp_xml(m))})


def lshw_xml(m: Machine) -> bytes:
    """An `lshw -xml` document shaped like a real server's."""
    hw = m.hardware
    if hw is None:
        raise ValueError(f"{m.hostname} has no hardware to describe")
    root = ET.Element("list")
    system = _node(
        root,
        m.hostname,
        "system",
        description="Rack Mount Chassis",
        product=hw.system_product,
        vendor=hw.system_vendor,
        serial=f"S{m.system_id.upper()}",
    )
    _text(system, "width", "64", units="bits")
    core = _node(
        system, "core", "bus", description="Motherboard", product=f"{hw.system_product}-MB", vendor=hw.system_vendor
    )
    memory = _node(core, "memory", "memory", description="System Memory")
    _text(memory, "size", str(hw.memory_mib * 1024 * 1024), units="bytes")
    cpu = _node(
        core,
        "cpu",
        "processor",
        description="CPU",
        product=hw.cpu_model,
        vendor="Advanced Micro Devices [AMD]" if "AMD" in hw.cpu_model else "Intel Corp.",
    )
    _text(cpu, "width", "64", units="bits")
    config = ET.SubElement(cpu, "configuration")
    ET.SubElement(config, "setting", id="cores", value=str(hw.cores))
    ET.SubElement(config, "setting", id="enabledcores", value=str(hw.cores))
    ET.SubElement(config, "setting", id="threads", value=str(hw.cores * 2))
    pci = _node(core, "pci", "bridge", description="Host bridge")
    vga = _node(
        pci,
        "display",
        "display",
        description="VGA compatible controller",
        product="ASPEED Graphics Family",
        vendor="ASPEED Technology, Inc.",
        businfo="pci@0000:03:00.0",
    )
    _text(vga, "logicalname", "/dev/fb0")
    for i in range(hw.gpus.count):
        address = gpu_pci_address(i)
        gpu = _node(
            pci,
            f"display:{i + 1}",
            "display",
            description="3D controller",
            product=hw.gpus.model,
            vendor=hw.gpus.vendor,
            businfo=f"pci@{address}",
            handle=f"PCI:{address}",
        )
        ET.SubElement(
            ET.SubElement(gpu, "configuration"),
            "setting",
            id="driver",
            value="nvidia" if "NVIDIA" in hw.gpus.vendor.upper() else "amdgpu",
        )
    for i, iface in enumerate(m.interfaces):
        nic = _node(
            pci,
            f"network:{i}",
            "network",
            description="Ethernet interface",
            product="Ethernet Controller X710 for 10GbE SFP+",
            vendor="Intel Corporation",
            businfo=f"pci@0000:{0x60 + i:02x}:00.0",
        )
        _text(nic, "logicalname", iface.name)
        _text(nic, "serial", iface.mac)
        _text(nic, "capacity", "10000000000", units="bit/s")
    storage = _node(
        pci,
        "storage",
        "storage",
        description="SATA controller",
        product="C620 Series Chipset Family SATA Controller",
        vendor="Intel Corporation",
    )
    for i, disk in enumerate(m.disks):
        node = _node(storage, f"disk:{i}", "disk", description="ATA Disk", product=disk.model, serial=disk.serial)
        _text(node, "logicalname", f"/dev/{disk.name}")
        _text(node, "size", str(disk.size), units="bytes")
    ET.indent(root)
    return b'<?xml version="1.0" standalone="yes" ?>\n' + ET.tostring(root)


def lldp_xml(m: Machine) -> bytes:
    """An `lldpctl -f xml` document: every NIC sees a port on the lab's switch."""
    root = ET.Element("lldp", label="LLDP neighbors")
    for i, iface in enumerate(m.interfaces):
        entry = ET.SubElement(
            root, "interface", label="Interface", name=iface.name, via="LLDP", rid=str(i + 1), age="0 day, 00:01:00"
        )
        chassis = ET.SubElement(entry, "chassis", label="Chassis")
        _text(chassis, "id", "02:00:00:00:00:01", label="ChassisID", type="mac")
        _text(chassis, "name", "botlab-switch-01", label="SysName")
        port = ET.SubElement(entry, "port", label="Port")
        _text(port, "id", f"Ethernet{m.system_id}/{i + 1}", label="PortID", type="ifname")
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


def _node(parent: ET.Element, node_id: str, cls: str, handle: str = "", **children: str) -> ET.Element:
    # "class" is a keyword, so attributes go in as a dict.
    node = ET.SubElement(parent, "node", {"id": node_id, "claimed": "true", "class": cls})
    if handle:
        node.set("handle", handle)
    for tag, text in children.items():
        _text(node, tag, text)
    return node


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = text
    return element
