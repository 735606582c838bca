"""The handler table and the describe document built from it, from which python-libmaas builds
its whole client; so MAAS's handlers are all listed, and calls the emulator lacks answer 501."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

API_PREFIX = "/MAAS/api/2.0/"
_RESTFUL = {"read": "GET", "create": "POST", "update": "PUT", "delete": "DELETE"}


@dataclass(frozen=True)
class Action:
    name: str
    method: str
    op: str | None

    def entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "op": self.op,
            "restful": self.op is None,
            "doc": f"{self.name} ({self.method}).",
        }


@dataclass(frozen=True)
class Handler:
    """One MAAS API handler: a URI template and the actions (method + op) it answers."""

    name: str  # MAAS's class name, e.g. "MachineHandler"; libmaas derives "Machine" from it
    path: str  # relative to /MAAS/api/2.0/, e.g. "machines/{system_id}/"
    doc: str
    actions: tuple[Action, ...]
    anon: bool = False  # answered without credentials (only version/ is)

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def label(self) -> str:
        """How errors name the handler: its path template without the trailing slash."""
        return self.path.rstrip("/")

    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"({\w+})", self.path.rstrip("/"))
        regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
        # Tolerate a missing trailing slash, which Django would redirect.
        return re.compile(f"^{regex}/?$")

    def entry(self, base: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "doc": self.doc,
            "params": self.params,
            "path": API_PREFIX + self.path,
            "uri": base + API_PREFIX + self.path,
            "actions": [a.entry() for a in self.actions],
        }

    def action(self, method: str, op: str | None) -> Action | None:
        for a in self.actions:
            if a.method == method and a.op == op:
                return a
        return None


def _handler(
    name: str, path: str, doc: str, restful: str = "", get: str = "", post: str = "", anon: bool = False
) -> Handler:
    actions = [Action(r, _RESTFUL[r], None) for r in restful.split()]
    actions += [Action(op, "GET", op) for op in get.split()]
    actions += [Action(op, "POST", op) for op in post.split()]
    return Handler(name, path, doc, tuple(actions), anon)


HANDLERS: tuple[Handler, ...] = (
    _handler("VersionHandler", "version/", "Information about this MAAS instance.", "read", anon=True),
    _handler("UsersHandler", "users/", "Manage the user accounts of this MAAS.", "read create", get="whoami"),
    _handler("UserHandler", "users/{username}/", "Manage a user account.", "read delete"),
    _handler(
        "AccountHandler",
        "account/",
        "Manage the current logged-in user.",
        get="list_authorisation_tokens",
        post="create_authorisation_token delete_authorisation_token update_token_name",
    ),
    _handler("SSHKeysHandler", "account/prefs/sshkeys/", "Manage the user's SSH keys.", "read create", post="import"),
    _handler("SSHKeyHandler", "account/prefs/sshkeys/{id}/", "Manage an SSH key.", "read delete"),
    _handler(
        "MachinesHandler",
        "machines/",
        "Manage the collection of all the machines.",
        "read create",
        get="power_parameters list_allocated is_registered",
        post="allocate accept accept_all add_chassis release set_zone",
    ),
    _handler(
        "MachineHandler",
        "machines/{system_id}/",
        "Manage an individual machine.",
        "read update delete",
        get="details power_parameters query_power_state get_curtin_config get_token",
        post="commission deploy release abort mark_broken mark_fixed set_owner_data "
        "set_workload_annotations power_on power_off test rescue_mode "
        "exit_rescue_mode lock unlock clear_default_gateways "
        "restore_default_configuration restore_networking_configuration "
        "restore_storage_configuration set_storage_layout mount_special "
        "unmount_special override_failed_testing",
    ),
    _handler("NodesHandler", "nodes/", "Manage the collection of all the nodes.", "read", get="is_registered"),
    _handler(
        "NodeHandler", "nodes/{system_id}/", "Manage an individual node.", "read delete", get="details power_parameters"
    ),
    _handler(
        "InterfacesHandler",
        "nodes/{system_id}/interfaces/",
        "Manage interfaces.",
        "read",
        post="create_physical create_bond create_vlan create_bridge",
    ),
    _handler(
        "InterfaceHandler",
        "nodes/{system_id}/interfaces/{id}/",
        "Manage an interface.",
        "read update delete",
        post="link_subnet unlink_subnet disconnect set_default_gateway add_tag remove_tag",
    ),
    _handler("BlockDevicesHandler", "nodes/{system_id}/blockdevices/", "Manage block devices.", "read create"),
    _handler(
        "BlockDeviceHandler",
        "nodes/{system_id}/blockdevices/{id}/",
        "Manage a block device.",
        "read update delete",
        post="format unformat mount unmount set_boot_disk add_tag remove_tag",
    ),
    _handler("TagsHandler", "tags/", "Manage all tags known to MAAS.", "read create"),
    _handler(
        "TagHandler",
        "tags/{name}/",
        "Manage a tag.",
        "read update delete",
        get="machines nodes devices rack_controllers region_controllers",
        post="update_nodes rebuild",
    ),
    _handler("ZonesHandler", "zones/", "Manage physical zones.", "read create"),
    _handler("ZoneHandler", "zones/{name}/", "Manage a physical zone.", "read update delete"),
    _handler("ResourcePoolsHandler", "resourcepools/", "Manage resource pools.", "read create"),
    _handler("ResourcePoolHandler", "resourcepool/{id}/", "Manage a resource pool.", "read update delete"),
    _handler("DomainsHandler", "domains/", "Manage domains.", "read create", post="set_serial"),
    _handler("DomainHandler", "domains/{id}/", "Manage a domain.", "read update delete", post="set_default"),
    _handler("FabricsHandler", "fabrics/", "Manage fabrics.", "read create"),
    _handler("FabricHandler", "fabrics/{id}/", "Manage a fabric.", "read update delete"),
    _handler("VlansHandler", "fabrics/{fabric_id}/vlans/", "Manage VLANs on a fabric.", "read create"),
    _handler("VlanHandler", "fabrics/{fabric_id}/vlans/{vid}/", "Manage a VLAN on a fabric.", "read update delete"),
    _handler("SubnetsHandler", "subnets/", "Manage subnets.", "read create"),
    _handler(
        "SubnetHandler",
        "subnets/{id}/",
        "Manage a subnet.",
        "read update delete",
        get="ip_addresses reserved_ip_ranges statistics unreserved_ip_ranges",
    ),
    _handler("SpacesHandler", "spaces/", "Manage spaces.", "read create"),
    _handler("SpaceHandler", "spaces/{id}/", "Manage a space.", "read update delete"),
    _handler("IPRangesHandler", "ipranges/", "Manage IP ranges.", "read create"),
    _handler("StaticRoutesHandler", "static-routes/", "Manage static routes.", "read create"),
    _handler("MaasHandler", "maas/", "Manage the MAAS server.", get="get_config", post="set_config"),
    _handler(
        "BootResourcesHandler",
        "boot-resources/",
        "Manage the boot resources.",
        "read create",
        get="is_importing",
        post="import stop_import",
    ),
    _handler("BootSourcesHandler", "boot-sources/", "Manage the boot sources.", "read create"),
    _handler("EventsHandler", "events/", "Retrieve filtered node events.", get="query"),
    _handler(
        "RackControllersHandler", "rackcontrollers/", "Manage rack controllers.", "read", get="describe_power_types"
    ),
    _handler("RegionControllersHandler", "regioncontrollers/", "Manage region controllers.", "read"),
    _handler("DevicesHandler", "devices/", "Manage devices.", "read create"),
    _handler("PodsHandler", "pods/", "Manage VM hosts.", "read create"),
    _handler("FilesHandler", "files/", "Manage the files in storage.", "read create", get="get get_by_key"),
)
_PATTERNS = [(h, h.pattern()) for h in HANDLERS]


def find_handler(path: str) -> tuple[Handler, dict[str, str]] | None:
    """The handler for `path` (relative to /MAAS/api/2.0/) and its URI parameters."""
    for handler, pattern in _PATTERNS:
        match = pattern.match(path)
        if match:
            return handler, match.groupdict()
    return None


def describe(base: str) -> dict[str, Any]:
    """The describe document, with every URI under `base` (scheme://host:port, as the
    client reached us)."""
    resources = []
    for h in HANDLERS:
        entry = h.entry(base)
        resources.append({"name": h.name, "anon": entry if h.anon else None, "auth": None if h.anon else entry})
    names = ",".join(h.name + ":" + ",".join(a.name for a in h.actions) for h in HANDLERS)
    return {
        "doc": "MAAS API",
        "hash": hashlib.sha1(names.encode()).hexdigest(),
        "handlers": [r["anon"] or r["auth"] for r in resources],
        "resources": resources,
    }
