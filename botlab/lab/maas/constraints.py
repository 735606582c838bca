"""Machine filters and allocation constraints as MAAS 3.4 reads them: its FilterNodeForm and
the two forms built on it, ReadNodesForm (`GET machines/`) and AcquireNodeForm (`POST
machines/?op=allocate`), in canonical/maas 3.4.2 src/maasserver/node_constraint_filter_forms.py.

Unknown parameters are errors ({"foo": ["No such constraint."]}); every parameter is cleaned
(numbers coerced to floats, tags split, names checked against what exists) before any machine
is looked at, so a typo answers 400 instead of matching everything. Constraints the lab cannot
evaluate (storage, interfaces, fabrics, subnets, pods, devices, link speed) answer 501 naming
them, so they can never silently match."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botlab.lab.maas.errors import ApiError, not_implemented
from botlab.lab.maas.forms import Params
from botlab.lab.maas.status import Status

if TYPE_CHECKING:
    from botlab.lab.maas.model import MaasModel, Machine

# Parameters the forms accept but never treat as constraints (IGNORED_FIELDS).
IGNORED = frozenset({"comment", "bridge_all", "bridge_type", "bridge_stp", "bridge_fd", "dry_run", "verbose",
                     "op", "agent_name"})
# FilterNodeForm's fields the lab evaluates.
FILTER_FIELDS = frozenset({"arch", "not_arch", "tags", "not_tags", "vlans", "not_vlans", "zone", "not_in_zone",
                           "pool", "not_in_pool", "cpu_count", "cpu_speed", "mem", "owner", "not_owner",
                           "power_state", "not_power_state"})
# FilterNodeForm's fields the lab cannot evaluate: asking for them answers 501.
UNSUPPORTED = frozenset({"fabrics", "not_fabrics", "fabric_classes", "not_fabric_classes", "subnets", "not_subnets",
                         "link_speed", "storage", "interfaces", "devices", "pod", "not_pod", "pod_type",
                         "not_pod_type"})
READ_FIELDS = FILTER_FIELDS | UNSUPPORTED | {
    "id", "not_id", "hostname", "not_hostname", "mac_address", "domain", "not_domain", "agent_name",
    "not_agent_name", "status", "not_status", "simple_status", "not_simple_status"}
ACQUIRE_FIELDS = FILTER_FIELDS | UNSUPPORTED | {"name", "system_id"}
POWER_STATES = ("on", "off", "unknown", "error")
NUMBERS = {  # field: the form's invalid_choice message
    "cpu_count": "Invalid CPU count: number required.",
    "cpu_speed": "Invalid CPU speed: number required.",
    "mem": "Invalid memory: number of MiB required.",
}
_MAC = re.compile(r"^(([0-9a-f]{1,2}:){5}[0-9a-f]{1,2}|([0-9a-f]{1,2}-){5}[0-9a-f]{1,2})$", re.IGNORECASE)


def _choice_error(value: str) -> str:
    # Django's MultipleChoiceField invalid_choice text.
    return f"Select a valid choice. {value} is not one of the available choices."


@dataclass
class Filter:
    """A cleaned form: values per field, in the form's cleaned shapes."""

    values: dict[str, list[Any]] = field(default_factory=dict)

    def get(self, name: str) -> list[Any]:
        return self.values.get(name) or []

    def describe(self) -> str:
        """describe_constraints(): `name=v1,v2` per set field, in field-name order."""
        parts = []
        for name in sorted(self.values):
            values = self.values[name]
            if values:
                parts.append(f"{name}={','.join(str(v) for v in values)}")
        return " ".join(parts)


def clean(model: MaasModel, params: Params, fields: frozenset[str]) -> Filter:
    """Clean `params` as the form with `fields` does; raise its 400 (every field's errors at
    once, as Django collects them) or a 501 for a constraint the lab cannot evaluate."""
    errors: dict[str, list[str]] = {}
    out = Filter()
    for name in params.names():
        if name not in fields and name not in IGNORED:
            errors[name] = ["No such constraint."]
    for name in params.names():
        if name not in fields or name in errors:
            continue
        raw = params.getlist(name)
        try:
            value = _clean_field(model, name, raw)
        except _Invalid as exc:
            errors[name] = [exc.message]
            continue
        if value:
            out.values[name] = value
    if errors:
        raise ApiError(400, errors)
    asked = sorted(n for n in out.values if n in UNSUPPORTED)
    if asked:
        raise not_implemented("machine constraint(s)/filter(s) " + ", ".join(asked))
    return out


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _clean_field(model: MaasModel, name: str, raw: list[str]) -> list[Any]:
    values = [v for v in raw if v != ""]
    if not values:
        return []
    if name in NUMBERS:
        try:
            return [float(v) for v in values]
        except ValueError:
            raise _Invalid(NUMBERS[name]) from None
    if name in ("arch", "not_arch"):
        return _clean_arch(model, values) if name == "arch" else values
    if name == "tags":  # parse_legacy_tags: blanks and commas separate; all must exist
        wanted = sorted({t for v in values for t in re.findall(r"[^\s,]+", v)})
        unknown = [t for t in wanted if t not in model.tags]
        if unknown:
            raise _Invalid("No such tag(s): " + ", ".join(f"'{t}'" for t in unknown) + ".")
        return wanted
    if name in ("zone", "not_in_zone"):
        unknown = sorted(set(values) - set(model.zones))
        if unknown:
            raise _Invalid("No such zone(s): " + ", ".join(unknown) + ".")
        return values
    if name in ("pool", "not_in_pool"):
        unknown = sorted(set(values) - set(model.pools))
        if unknown:
            raise _Invalid("No such pool(s): " + ", ".join(unknown) + ".")
        return values
    if name == "owner":
        unknown = sorted(set(values) - {model.spec.maas.username})
        if unknown:
            raise _Invalid(f"No such owner: '{unknown[0]}'.")
        return values
    if name in ("power_state", "not_power_state", "status", "not_status"):
        choices = POWER_STATES if "power_state" in name else tuple(s.short for s in Status)
        cleaned = [v.removeprefix("=") for v in values]
        for v in cleaned:
            if v not in choices:
                raise _Invalid(_choice_error(v))
        return cleaned
    if name in ("vlans", "not_vlans"):
        return _clean_vlans(model, values)
    if name == "mac_address":
        for v in values:
            if not _MAC.match(v):
                raise _Invalid(f"'{v}' is not a valid MAC address.")
        return [v.lower().replace("-", ":") for v in values]
    if name in ("simple_status", "not_simple_status"):
        raise not_implemented(f"GET machines/ with {name}")
    return values


def _clean_arch(model: MaasModel, values: list[str]) -> list[str]:
    """clean_arch: a full `arch/subarch`, or a primary arch expanding to its subarches."""
    from botlab.lab.maas.model import ARCHITECTURES

    arches: list[str] = []
    for v in values:
        if v in ARCHITECTURES:
            arches.append(v)
        else:
            expanded = [a for a in ARCHITECTURES if a.split("/", 1)[0] == v]
            if not expanded:
                raise _Invalid("Architecture not recognised.")
            arches.extend(expanded)
    return arches


def _clean_vlans(model: MaasModel, values: list[str]) -> list[int]:
    """VLAN specifiers (`id:`, `vid:`, `name:`, `fabric:`, `space:`, or a bare id/name) against
    the lab's one VLAN; none matching answers "No matching VLANs found."."""
    from botlab.lab.maas import render

    vlan = render.vlan(model)
    keys = {
        "id": {str(vlan["id"])},
        "vid": {str(vlan["vid"])},
        "name": {vlan["name"]},
        "fabric": {vlan["fabric"], str(vlan["fabric_id"])},
        "space": {vlan["space"]},
    }
    for v in values:
        kind, colon, what = v.partition(":")
        if colon and kind in keys:
            if what in keys[kind]:
                return [int(vlan["id"])]
        elif v in keys["id"] | keys["name"]:
            return [int(vlan["id"])]
    raise _Invalid("No matching VLANs found.")


def matches(model: MaasModel, m: Machine, f: Filter) -> bool:
    """Whether machine `m` passes every filter and exclusion of the cleaned form."""
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("arch", lambda: m.architecture in f.get("arch")),
        ("not_arch", lambda: not _arch_in(m.architecture, f.get("not_arch"))),
        ("tags", lambda: all(t in m.tags for t in f.get("tags"))),
        ("not_tags", lambda: not any(t in m.tags for t in f.get("not_tags"))),
        ("vlans", lambda: bool(m.interfaces)),
        ("not_vlans", lambda: not m.interfaces),
        ("zone", lambda: m.zone in f.get("zone")),
        ("not_in_zone", lambda: m.zone not in f.get("not_in_zone")),
        ("pool", lambda: m.pool in f.get("pool")),
        ("not_in_pool", lambda: m.pool not in f.get("not_in_pool")),
        ("cpu_count", lambda: m.cpu_count >= min(f.get("cpu_count"))),
        ("cpu_speed", lambda: m.cpu_speed >= min(f.get("cpu_speed"))),
        ("mem", lambda: m.memory >= min(f.get("mem"))),
        ("owner", lambda: (m.owner or "") in f.get("owner")),
        ("not_owner", lambda: (m.owner or "") not in f.get("not_owner")),
        ("power_state", lambda: m.power_state in f.get("power_state")),
        ("not_power_state", lambda: m.power_state not in f.get("not_power_state")),
        # ReadNodesForm
        ("id", lambda: m.system_id in f.get("id")),
        ("not_id", lambda: m.system_id not in f.get("not_id")),
        ("hostname", lambda: m.hostname in f.get("hostname")),
        ("not_hostname", lambda: m.hostname not in f.get("not_hostname")),
        ("mac_address", lambda: bool(set(f.get("mac_address")) & set(m.macs))),
        ("domain", lambda: model.spec.maas.domain in f.get("domain")),
        ("not_domain", lambda: model.spec.maas.domain not in f.get("not_domain")),
        ("agent_name", lambda: m.agent_name in f.get("agent_name")),
        ("not_agent_name", lambda: m.agent_name not in f.get("not_agent_name")),
        ("status", lambda: m.status.short in f.get("status")),
        ("not_status", lambda: m.status.short not in f.get("not_status")),
        # AcquireNodeForm
        ("system_id", lambda: m.system_id in f.get("system_id")),
        ("name", lambda: any(_name_matches(model, m, n) for n in f.get("name"))),
    ]
    return all(check() for name, check in checks if f.get(name))


def _arch_in(arch: str, wanted: list[str]) -> bool:
    # not_arch is matched as given (NODE_EXCLUDES "architecture" __in); a bare "amd64"
    # never equals a stored "amd64/generic".
    return arch in wanted


def _name_matches(model: MaasModel, m: Machine, name: str) -> bool:
    """_match_compose_value("hostname.domain__name"): `host` or `host.domain`."""
    host, dot, domain = name.partition(".")
    return host == m.hostname and (not dot or domain == model.spec.maas.domain)


def cost(m: Machine) -> float:
    """reorder_nodes_by_cost: cpu_count + memory / 1024."""
    return m.cpu_count + m.memory / 1024
