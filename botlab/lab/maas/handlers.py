"""What each implemented MAAS API action does, as a table (handler, method, op) -> function;
functions run under the emulator's lock and return JSON-able data or a `web.Response`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from botlab.lab.maas import render
from botlab.lab.maas.describe import Handler
from botlab.lab.maas.errors import bad_request, invalid, not_found
from botlab.lab.maas.forms import Params
from botlab.lab.maas.hardware import details_bson
from botlab.lab.maas.model import MaasModel, Machine
from botlab.lab.maas.oauth import ApiKey
from botlab.lab.maas.status import Status


@dataclass
class Call:
    """One API call: who made it, to which handler and op, with which parameters."""

    model: MaasModel
    handler: Handler
    method: str
    op: str | None
    args: dict[str, str]  # URI parameters, e.g. {"system_id": "abc123"}
    params: Params  # the query string (GET, DELETE) or the body (POST, PUT)
    key: ApiKey | None  # the API key that signed the call (None: anonymous)

    @property
    def user(self) -> str:
        return self.model.spec.maas.username

    def machine(self) -> Machine:
        return self.model.machine(self.args["system_id"])


Impl = Callable[[Call], Any]
TABLE: dict[tuple[str, str, str | None], Impl] = {}


def route(handler: str, method: str, op: str | None = None) -> Callable[[Impl], Impl]:
    def register(fn: Impl) -> Impl:
        TABLE[(handler, method, op)] = fn
        return fn

    return register


def _deleted() -> web.Response:
    return web.Response(status=204)


def _machines(c: Call, machines: list[Machine]) -> list[dict[str, Any]]:
    return [render.machine(c.model, m) for m in machines]


# --- version, users, account, SSH keys ------------------------------------------------------


@route("VersionHandler", "GET")
def version(c: Call) -> Any:
    return render.version(c.model)


@route("UsersHandler", "GET")
def users(c: Call) -> Any:
    return [render.user(c.model)]


@route("UsersHandler", "GET", "whoami")
def whoami(c: Call) -> Any:
    return render.user(c.model)


@route("UserHandler", "GET")
def user(c: Call) -> Any:
    if c.args["username"] != c.user:
        raise not_found("User")
    return render.user(c.model)


@route("AccountHandler", "POST", "create_authorisation_token")
def create_token(c: Call) -> Any:
    key = c.model.create_token()
    return {
        "consumer_key": key.consumer_key,
        "token_key": key.token_key,
        "token_secret": key.token_secret,
        "name": c.params.get("name") or "botlab",
    }


@route("AccountHandler", "POST", "delete_authorisation_token")
def delete_token(c: Call) -> Any:
    token_key = c.params.get("token_key")
    if not token_key:
        raise invalid("token_key", "This field is required.")
    c.model.delete_token(token_key)
    return _deleted()


@route("AccountHandler", "GET", "list_authorisation_tokens")
def list_tokens(c: Call) -> Any:
    return [{"name": "botlab", "token": str(k)} for k in c.model.keys]


@route("SSHKeysHandler", "GET")
def ssh_keys(c: Call) -> Any:
    return [render.ssh_key(k) for k in c.model.ssh_keys]


@route("SSHKeysHandler", "POST")
def add_ssh_key(c: Call) -> Any:
    return render.ssh_key(c.model.add_ssh_key(c.params.get("key") or ""))


@route("SSHKeyHandler", "GET")
def ssh_key(c: Call) -> Any:
    return render.ssh_key(c.model.ssh_key(c.args["id"]))


@route("SSHKeyHandler", "DELETE")
def delete_ssh_key(c: Call) -> Any:
    key = c.model.ssh_key(c.args["id"])
    c.model.ssh_keys.remove(key)
    return _deleted()


# --- machines (the collection) --------------------------------------------------------------


@route("MachinesHandler", "GET")
@route("NodesHandler", "GET")
def list_machines(c: Call) -> Any:
    return _machines(c, c.model.list_machines(c.params))


@route("MachinesHandler", "POST")
def create_machine(c: Call) -> Any:
    return render.machine(c.model, c.model.create_machine(c.params, c.user))


@route("MachinesHandler", "POST", "allocate")
def allocate(c: Call) -> Any:
    return render.machine(c.model, c.model.allocate(c.params, c.user))


@route("MachinesHandler", "POST", "accept")
def accept(c: Call) -> Any:
    return _machines(c, c.model.accept(c.params.getlist("machines")))


@route("MachinesHandler", "POST", "accept_all")
def accept_all(c: Call) -> Any:
    return _machines(c, c.model.accept([]))


@route("MachinesHandler", "GET", "power_parameters")
def power_parameters_of(c: Call) -> Any:
    ids = c.params.getlist("id")
    machines = [c.model.machine(s) for s in ids] if ids else list(c.model.machines.values())
    return {m.system_id: dict(m.power_parameters) for m in machines}


@route("MachinesHandler", "GET", "list_allocated")
def list_allocated(c: Call) -> Any:
    return _machines(c, [m for m in c.model.machines.values() if m.owner == c.user])


@route("MachinesHandler", "GET", "is_registered")
@route("NodesHandler", "GET", "is_registered")
def is_registered(c: Call) -> Any:
    mac = (c.params.get("mac_address") or "").lower()
    if not mac:
        raise bad_request("No provided mac_address!")
    return any(mac in m.macs for m in c.model.machines.values() if m.status != Status.RETIRED)


# --- one machine ----------------------------------------------------------------------------


@route("MachineHandler", "GET")
@route("NodeHandler", "GET")
def read_machine(c: Call) -> Any:
    return render.machine(c.model, c.machine())


@route("MachineHandler", "PUT")
def update_machine(c: Call) -> Any:
    return render.machine(c.model, c.model.update_machine(c.machine(), c.params))


@route("MachineHandler", "DELETE")
@route("NodeHandler", "DELETE")
def delete_machine(c: Call) -> Any:
    c.model.delete_machine(c.machine())
    return _deleted()


def _machine_op(name: str, action: Callable[[MaasModel, Machine, Params, str], Machine]) -> None:
    def run(c: Call) -> Any:
        return render.machine(c.model, action(c.model, c.machine(), c.params, c.user))

    run.__name__ = name
    route("MachineHandler", "POST", name)(run)


_machine_op("commission", lambda model, m, p, user: model.commission(m, p))
_machine_op("test", lambda model, m, p, user: model.test(m, p))
_machine_op("override_failed_testing", lambda model, m, p, user: model.override_failed_testing(m, p))
_machine_op("release", lambda model, m, p, user: model.release(m, p))
_machine_op("abort", lambda model, m, p, user: model.abort(m, p))
_machine_op("mark_broken", lambda model, m, p, user: model.mark_broken(m, p, user))
_machine_op("mark_fixed", lambda model, m, p, user: model.mark_fixed(m, p))
_machine_op("set_owner_data", lambda model, m, p, user: model.set_owner_data(m, p, user))
_machine_op("set_workload_annotations", lambda model, m, p, user: model.set_owner_data(m, p, user))
_machine_op("power_on", lambda model, m, p, user: model.power(m, True))
_machine_op("power_off", lambda model, m, p, user: model.power(m, False))
_machine_op("lock", lambda model, m, p, user: model.lock(m, True))
_machine_op("unlock", lambda model, m, p, user: model.lock(m, False))


@route("MachineHandler", "POST", "deploy")
def deploy(c: Call) -> Any:
    return render.machine(c.model, c.model.deploy(c.machine(), c.params, c.user))


@route("MachineHandler", "GET", "details")
@route("NodeHandler", "GET", "details")
def details(c: Call) -> Any:
    return web.Response(body=details_bson(c.machine()), content_type="application/bson")


@route("MachineHandler", "GET", "power_parameters")
@route("NodeHandler", "GET", "power_parameters")
def power_parameters(c: Call) -> Any:
    return dict(c.machine().power_parameters)


@route("MachineHandler", "GET", "query_power_state")
def query_power_state(c: Call) -> Any:
    return {"state": c.machine().power_state}


@route("InterfacesHandler", "GET")
def interfaces(c: Call) -> Any:
    m = c.machine()
    return [render.interface(c.model, m, i) for i in m.interfaces]


@route("InterfaceHandler", "GET")
def interface(c: Call) -> Any:
    m = c.machine()
    for i in m.interfaces:
        if str(i.id) == c.args["id"] or i.name == c.args["id"]:
            return render.interface(c.model, m, i)
    raise not_found("Interface")


@route("BlockDevicesHandler", "GET")
def block_devices(c: Call) -> Any:
    m = c.machine()
    return [render.disk(m, d) for d in m.disks]


@route("BlockDeviceHandler", "GET")
def block_device(c: Call) -> Any:
    m = c.machine()
    for d in m.disks:
        if str(d.id) == c.args["id"] or d.name == c.args["id"]:
            return render.disk(m, d)
    raise not_found("BlockDevice")


# --- tags -----------------------------------------------------------------------------------


@route("TagsHandler", "GET")
def tags(c: Call) -> Any:
    return [render.tag(t) for t in c.model.tags.values()]


@route("TagsHandler", "POST")
def create_tag(c: Call) -> Any:
    return render.tag(c.model.create_tag(c.params))


@route("TagHandler", "GET")
def read_tag(c: Call) -> Any:
    return render.tag(c.model.tag(c.args["name"]))


@route("TagHandler", "PUT")
def update_tag(c: Call) -> Any:
    return render.tag(c.model.update_tag(c.model.tag(c.args["name"]), c.params))


@route("TagHandler", "DELETE")
def delete_tag(c: Call) -> Any:
    c.model.delete_tag(c.model.tag(c.args["name"]))
    return _deleted()


@route("TagHandler", "POST", "update_nodes")
def update_tag_nodes(c: Call) -> Any:
    return c.model.update_tag_nodes(c.model.tag(c.args["name"]), c.params)


@route("TagHandler", "GET", "machines")
@route("TagHandler", "GET", "nodes")
def tagged_machines(c: Call) -> Any:
    return _machines(c, c.model.tagged(c.model.tag(c.args["name"])))


@route("TagHandler", "GET", "devices")
@route("TagHandler", "GET", "rack_controllers")
@route("TagHandler", "GET", "region_controllers")
def tagged_nothing(c: Call) -> Any:
    c.model.tag(c.args["name"])  # 404 for an unknown tag; the lab has no such nodes
    return []


# --- zones, pools, domains, networks --------------------------------------------------------


@route("ZonesHandler", "GET")
def zones(c: Call) -> Any:
    return [render.zone(z) for z in c.model.zones.values()]


@route("ZonesHandler", "POST")
def create_zone(c: Call) -> Any:
    return render.zone(c.model.create_zone(c.params))


@route("ZoneHandler", "GET")
def read_zone(c: Call) -> Any:
    return render.zone(c.model.zone(c.args["name"]))


@route("ResourcePoolsHandler", "GET")
def pools(c: Call) -> Any:
    return [render.pool(p) for p in c.model.pools.values()]


@route("ResourcePoolHandler", "GET")
def read_pool(c: Call) -> Any:
    return render.pool(c.model.pool(c.args["id"]))


@route("DomainsHandler", "GET")
def domains(c: Call) -> Any:
    return [render.domain_json(c.model)]


@route("DomainHandler", "GET")
def read_domain(c: Call) -> Any:
    if c.args["id"] not in ("0", c.model.spec.maas.domain):
        raise not_found("Domain")
    return render.domain_json(c.model)


@route("FabricsHandler", "GET")
def fabrics(c: Call) -> Any:
    return [render.fabric(c.model)]


@route("FabricHandler", "GET")
def read_fabric(c: Call) -> Any:
    if c.args["id"] != str(render.FABRIC_ID):
        raise not_found("Fabric")
    return render.fabric(c.model)


@route("VlansHandler", "GET")
def vlans(c: Call) -> Any:
    if c.args["fabric_id"] != str(render.FABRIC_ID):
        raise not_found("Fabric")
    return [render.vlan(c.model)]


@route("VlanHandler", "GET")
def read_vlan(c: Call) -> Any:
    if c.args["fabric_id"] != str(render.FABRIC_ID) or c.args["vid"] != "0":
        raise not_found("VLAN")
    return render.vlan(c.model)


@route("SubnetsHandler", "GET")
def subnets(c: Call) -> Any:
    return [render.subnet(c.model)]


@route("SubnetHandler", "GET")
def read_subnet(c: Call) -> Any:
    if c.args["id"] not in (str(render.SUBNET_ID), c.model.spec.network.cidr):
        raise not_found("Subnet")
    return render.subnet(c.model)


@route("SpacesHandler", "GET")
def spaces(c: Call) -> Any:
    return [render.space(c.model)]


# --- region settings and images -------------------------------------------------------------


@route("MaasHandler", "GET", "get_config")
def get_config(c: Call) -> Any:
    name = c.params.get("name")
    if not name:
        raise invalid("name", "This field is required.")
    return c.model.get_config(name)


@route("MaasHandler", "POST", "set_config")
def set_config(c: Call) -> Any:
    name = c.params.get("name")
    if not name:
        raise invalid("name", "This field is required.")
    c.model.set_config(name, c.params.get("value") or "")
    return web.Response(text="OK", content_type="text/plain")


@route("BootResourcesHandler", "GET")
def boot_resources(c: Call) -> Any:
    return render.boot_resources(c.model)


@route("BootResourcesHandler", "GET", "is_importing")
def is_importing(c: Call) -> Any:
    return False


@route("BootResourcesHandler", "POST", "import")
def start_import(c: Call) -> Any:
    return web.Response(text="Import of boot resources started", content_type="text/plain")


@route("BootResourcesHandler", "POST", "stop_import")
def stop_import(c: Call) -> Any:
    return web.Response(text="Import of boot resources is being stopped", content_type="text/plain")
