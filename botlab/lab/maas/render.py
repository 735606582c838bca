"""The JSON MAAS answers with for machines, tags, zones, networks, users and keys."""

from __future__ import annotations

from typing import Any

from botlab.lab.maas.hardware import hardware_info
from botlab.lab.maas.model import Disk, Interface, MaasModel, Machine, Pool, SshKey, Tag, Zone
from botlab.lab.maas.status import Status

API = "/MAAS/api/2.0"
FABRIC_ID = 0
VLAN_ID = 5001
SUBNET_ID = 1
SPACE_NAME = "undefined"


def machine(model: MaasModel, m: Machine) -> dict[str, Any]:
    """A machine as `GET machines/{system_id}/` shows it, with every field libmaas reads."""
    domain = model.spec.maas.domain
    interfaces = [interface(model, m, i) for i in m.interfaces]
    disks = [disk(m, d) for d in m.disks]
    tested = m.commissioned and m.status not in (Status.TESTING, Status.FAILED_TESTING)
    test_status, test_name = (2, "Passed") if tested else (-1, "None")
    if m.status == Status.FAILED_TESTING:
        test_status, test_name = 3, "Failed"
    commissioning_status, commissioning_name = (2, "Passed") if m.commissioned else (-1, "None")
    if m.status == Status.FAILED_COMMISSIONING:
        commissioning_status, commissioning_name = 3, "Failed"
    return {
        "system_id": m.system_id,
        "hostname": m.hostname,
        "description": m.description,
        "fqdn": f"{m.hostname}.{domain}",
        "domain": domain_json(model),
        "node_type": 0,
        "node_type_name": "Machine",
        "architecture": m.architecture,
        "min_hwe_kernel": m.min_hwe_kernel,
        "hwe_kernel": m.hwe_kernel,
        "osystem": m.osystem,
        "distro_series": m.distro_series,
        "status": int(m.status),
        "status_name": m.status.label,
        "status_message": m.status_message,
        "status_action": "",
        "cpu_count": m.cpu_count,
        "cpu_speed": m.cpu_speed,
        "memory": m.memory,
        "storage": sum(d.size for d in m.disks) / 1_000_000,
        "swap_size": None,
        "hardware_info": hardware_info(m),
        "hardware_uuid": None,
        "power_type": m.power_type,
        "power_state": m.power_state,
        "owner": m.owner,
        "owner_data": dict(m.owner_data),
        "workload_annotations": dict(m.owner_data),
        "tag_names": list(m.tags),
        "zone": zone(model.zones[m.zone]),
        "pool": pool(model.pools[m.pool]),
        "ip_addresses": m.ip_addresses,
        "interface_set": interfaces,
        "boot_interface": interfaces[0] if interfaces else None,
        "blockdevice_set": disks,
        "physicalblockdevice_set": disks,
        "virtualblockdevice_set": [],
        "iscsiblockdevice_set": [],
        "boot_disk": disks[0] if disks else None,
        "volume_groups": [],
        "raids": [],
        "cache_sets": [],
        "bcaches": [],
        "special_filesystems": [],
        "numanode_set": [],
        "netboot": m.status not in (Status.DEPLOYED, Status.DEPLOYING),
        "locked": m.locked,
        "disable_ipv4": False,
        "ephemeral_deploy": m.ephemeral_deploy,
        "enable_hw_sync": m.enable_hw_sync,
        "address_ttl": None,
        "pod": None,
        "bios_boot_method": "uefi",
        "default_gateways": {
            "ipv4": {"gateway_ip": model.spec.network.gateway_ip if m.ip_addresses else None, "link_id": None},
            "ipv6": {"gateway_ip": None, "link_id": None},
        },
        "commissioning_status": commissioning_status,
        "commissioning_status_name": commissioning_name,
        "testing_status": test_status,
        "testing_status_name": test_name,
        "cpu_test_status": test_status,
        "cpu_test_status_name": test_name,
        "memory_test_status": test_status,
        "memory_test_status_name": test_name,
        "storage_test_status": test_status,
        "storage_test_status_name": test_name,
        "network_test_status": test_status,
        "network_test_status_name": test_name,
        "other_test_status": test_status,
        "other_test_status_name": test_name,
        "interface_test_status": test_status,
        "interface_test_status_name": test_name,
        "current_commissioning_result_id": None,
        "current_testing_result_id": None,
        "current_installation_result_id": None,
        "constraints_by_type": {},
        "constraint_map": {},
        "resource_uri": f"{API}/machines/{m.system_id}/",
    }


def interface(model: MaasModel, m: Machine, i: Interface) -> dict[str, Any]:
    boot = bool(m.interfaces) and m.interfaces[0] is i
    links: list[dict[str, Any]] = []
    if boot and m.commissioned:
        link: dict[str, Any] = {"id": i.link_id, "mode": "auto", "subnet": subnet(model)}
        if i.ip:
            link["ip_address"] = i.ip
        links.append(link)
    return {
        "id": i.id,
        "name": i.name,
        "type": "physical",
        "system_id": m.system_id,
        "mac_address": i.mac,
        "enabled": True,
        "vlan": vlan(model) if boot else None,
        "links": links,
        "discovered": None,
        "parents": [],
        "children": [],
        "tags": [],
        "params": "",
        "effective_mtu": 1500,
        "link_connected": True,
        "link_speed": 10000 if m.commissioned else 0,
        "interface_speed": 10000 if m.commissioned else 0,
        "vendor": "Intel Corporation" if m.commissioned else None,
        "product": "Ethernet Controller X710 for 10GbE SFP+" if m.commissioned else None,
        "firmware_version": "8.30" if m.commissioned else None,
        "sriov_max_vf": 0,
        "numa_node": 0,
        "resource_uri": f"{API}/nodes/{m.system_id}/interfaces/{i.id}/",
    }


def disk(m: Machine, d: Disk) -> dict[str, Any]:
    return {
        "id": d.id,
        "system_id": m.system_id,
        "name": d.name,
        "path": f"/dev/disk/by-dname/{d.name}",
        "id_path": f"/dev/disk/by-id/wwn-0x{d.id:016x}",
        "type": "physical",
        "model": d.model,
        "serial": d.serial,
        "size": d.size,
        "block_size": 4096 if d.name.startswith("nvme") else 512,
        "available_size": d.size,
        "used_size": 0,
        "used_for": "Unused",
        "tags": ["ssd"],
        "uuid": None,
        "partition_table_type": None,
        "partitions": [],
        "filesystem": None,
        "storage_pool": None,
        "numa_node": 0,
        "firmware_version": "GXA7",
        "resource_uri": f"{API}/nodes/{m.system_id}/blockdevices/{d.id}/",
    }


def tag(t: Tag) -> dict[str, Any]:
    return {
        "name": t.name,
        "comment": t.comment,
        "definition": t.definition,
        "kernel_opts": t.kernel_opts,
        "resource_uri": f"{API}/tags/{t.name}/",
    }


def zone(z: Zone) -> dict[str, Any]:
    return {"id": z.id, "name": z.name, "description": z.description, "resource_uri": f"{API}/zones/{z.name}/"}


def pool(p: Pool) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "description": p.description, "resource_uri": f"{API}/resourcepool/{p.id}/"}


def domain_json(model: MaasModel) -> dict[str, Any]:
    return {
        "id": 0,
        "name": model.spec.maas.domain,
        "authoritative": True,
        "ttl": None,
        "is_default": True,
        "resource_record_count": 0,
        "resource_uri": f"{API}/domains/0/",
    }


def vlan(model: MaasModel) -> dict[str, Any]:
    return {
        "id": VLAN_ID,
        "vid": 0,
        "name": "untagged",
        "mtu": 1500,
        "fabric": f"fabric-{FABRIC_ID}",
        "fabric_id": FABRIC_ID,
        "space": SPACE_NAME,
        "dhcp_on": True,
        "external_dhcp": None,
        "relay_vlan": None,
        "primary_rack": None,
        "secondary_rack": None,
        "resource_uri": f"{API}/vlans/{VLAN_ID}/",
    }


def subnet(model: MaasModel) -> dict[str, Any]:
    net = model.spec.network
    return {
        "id": SUBNET_ID,
        "name": net.cidr,
        "cidr": str(net.network),
        "description": "",
        "vlan": vlan(model),
        "space": SPACE_NAME,
        "gateway_ip": net.gateway_ip,
        "dns_servers": [],
        "rdns_mode": 2,
        "allow_dns": True,
        "allow_proxy": True,
        "active_discovery": False,
        "managed": True,
        "disabled_boot_architectures": [],
        "resource_uri": f"{API}/subnets/{SUBNET_ID}/",
    }


def fabric(model: MaasModel) -> dict[str, Any]:
    return {
        "id": FABRIC_ID,
        "name": f"fabric-{FABRIC_ID}",
        "class_type": None,
        "vlans": [vlan(model)],
        "resource_uri": f"{API}/fabrics/{FABRIC_ID}/",
    }


def space(model: MaasModel) -> dict[str, Any]:
    return {
        "id": -1,
        "name": SPACE_NAME,
        "description": "",
        "vlans": [vlan(model)],
        "subnets": [subnet(model)],
        "resource_uri": f"{API}/spaces/-1/",
    }


def user(model: MaasModel) -> dict[str, Any]:
    name = model.spec.maas.username
    return {
        "username": name,
        "email": model.spec.maas.email,
        "is_superuser": True,
        "is_local": True,
        "last_name": "",
        "resource_uri": f"{API}/users/{name}/",
    }


def ssh_key(k: SshKey) -> dict[str, Any]:
    return {"id": k.id, "key": k.key, "keysource": None, "resource_uri": f"{API}/account/prefs/sshkeys/{k.id}/"}


def version(model: MaasModel) -> dict[str, Any]:
    return {
        "version": model.spec.maas.version,
        "subversion": "botlab-emulator",
        "capabilities": [
            "networks-management",
            "static-ipaddresses",
            "ipv6-deployment-ubuntu",
            "devices-management",
            "storage-deployment-ubuntu",
            "network-deployment-ubuntu",
            "bridging-interface-ubuntu",
            "bridging-automatic-ubuntu",
        ],
    }


def boot_resources(model: MaasModel) -> list[dict[str, Any]]:
    out = []
    for i, series in enumerate(model.spec.maas.distro_series, start=1):
        out.append(
            {
                "id": i,
                "type": "Synced",
                "name": f"ubuntu/{series}",
                "architecture": "amd64/ga-"
                + {"focal": "20.04", "jammy": "22.04", "noble": "24.04"}.get(series, "generic"),
                "subarches": "generic",
                "resource_uri": f"{API}/boot-resources/{i}/",
            }
        )
    return out
