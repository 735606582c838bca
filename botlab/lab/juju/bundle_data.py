"""Bundle data as juju/charm v13 models it, and one YAML document decoded into it (yaml.v2
rules, then juju/charm's normalisation of scale and placement)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import Node

from botlab.lab.juju.bundle_parse import go_quote
from botlab.lab.juju.bundle_yaml import (
    Mismatch,
    decode_fields,
    is_null,
    presence,
    to_any_map,
    to_bool,
    to_int,
    to_list,
    to_map,
    to_optional_int,
    to_optional_list,
    to_optional_map,
    to_str,
    to_str_list,
    to_str_map,
)

KUBERNETES = "kubernetes"


@dataclass
class ExposedEndpointSpec:
    """Who may reach one endpoint of an exposed application (None: not given)."""

    expose_to_spaces: list[str] | None = None
    expose_to_cidrs: list[str] | None = None

    def is_zero(self) -> bool:
        """Whether neither list was given."""
        return self.expose_to_spaces is None and self.expose_to_cidrs is None


@dataclass
class OfferSpec:
    """An offer of some of an application's endpoints."""

    endpoints: list[str] | None = None
    acl: dict[str, str] | None = None


@dataclass
class ApplicationSpec:
    """One entry of the bundle's `applications:`."""

    charm: str = ""
    channel: str = ""
    revision: int | None = None
    series: str = ""
    base: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    num_units: int = 0
    scale: int = 0
    to: list[str] = field(default_factory=list)
    placement: str = ""
    expose: bool = False
    exposed_endpoints: dict[str, ExposedEndpointSpec] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    constraints: str = ""
    storage: dict[str, str] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    bindings: dict[str, str] = field(default_factory=dict)
    offers: dict[str, OfferSpec | None] | None = None
    plan: str = ""
    trust: bool = False


@dataclass
class MachineSpec:
    """One entry of the bundle's `machines:`."""

    constraints: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    series: str = ""
    base: str = ""


@dataclass
class SaasSpec:
    """One entry of the bundle's `saas:` (a consumed offer)."""

    url: str = ""


@dataclass
class BundleData:
    """A whole bundle; `machines` is None when the section is absent."""

    type: str = ""
    applications: dict[str, ApplicationSpec | None] = field(default_factory=dict)
    machines: dict[str, MachineSpec | None] | None = None
    saas: dict[str, SaasSpec | None] = field(default_factory=dict)
    series: str = ""
    default_base: str = ""
    relations: list[list[str]] = field(default_factory=list)


def _exposed_endpoint(node: Node) -> ExposedEndpointSpec:
    spec = ExposedEndpointSpec()
    if not is_null(node):
        decode_fields(node, EXPOSED_FIELDS, spec)
    return spec


def _offer(node: Node) -> OfferSpec | None:
    return None if is_null(node) else _decoded(node, OFFER_FIELDS, OfferSpec())


def _application(node: Node) -> ApplicationSpec | None:
    return None if is_null(node) else _decoded(node, APPLICATION_FIELDS, ApplicationSpec())


def _machine(node: Node) -> MachineSpec | None:
    return None if is_null(node) else _decoded(node, MACHINE_FIELDS, MachineSpec())


def _saas(node: Node) -> SaasSpec | None:
    return None if is_null(node) else _decoded(node, SAAS_FIELDS, SaasSpec())


def _decoded(node: Node, fields: dict[str, tuple[str, Callable[[Node], Any]]], target: Any) -> Any:
    decode_fields(node, fields, target)
    return target


EXPOSED_FIELDS: dict[str, tuple[str, Callable[[Node], Any]]] = {
    "expose-to-spaces": ("expose_to_spaces", lambda n: to_optional_list(n, to_str)),
    "expose-to-cidrs": ("expose_to_cidrs", lambda n: to_optional_list(n, to_str)),
}
OFFER_FIELDS: dict[str, tuple[str, Callable[[Node], Any]]] = {
    "endpoints": ("endpoints", lambda n: to_optional_list(n, to_str)),
    "acl": ("acl", lambda n: to_optional_map(n, to_str)),
}
APPLICATION_FIELDS: dict[str, tuple[str, Callable[[Node], Any]]] = {
    "charm": ("charm", to_str),
    "channel": ("channel", to_str),
    "revision": ("revision", to_optional_int),
    "series": ("series", to_str),
    "base": ("base", to_str),
    "resources": ("resources", to_any_map),
    "num_units": ("num_units", to_int),
    "scale": ("scale", to_int),
    "to": ("to", to_str_list),
    "placement": ("placement", to_str),
    "expose": ("expose", to_bool),
    "exposed-endpoints": ("exposed_endpoints", lambda n: to_optional_map(n, _exposed_endpoint)),
    "options": ("options", to_any_map),
    "annotations": ("annotations", to_str_map),
    "constraints": ("constraints", to_str),
    "storage": ("storage", to_str_map),
    "devices": ("devices", to_str_map),
    "bindings": ("bindings", to_str_map),
    "offers": ("offers", lambda n: to_optional_map(n, _offer)),
    "plan": ("plan", to_str),
    "trust": ("trust", to_bool),
}
MACHINE_FIELDS: dict[str, tuple[str, Callable[[Node], Any]]] = {
    "constraints": ("constraints", to_str),
    "annotations": ("annotations", to_str_map),
    "series": ("series", to_str),
    "base": ("base", to_str),
}
SAAS_FIELDS: dict[str, tuple[str, Callable[[Node], Any]]] = {"url": ("url", to_str)}
BUNDLE_FIELDS: dict[str, tuple[str, Callable[[Node], Any]]] = {
    "bundle": ("type", to_str),
    "applications": ("applications", lambda n: to_map(n, _application)),
    "machines": ("machines", lambda n: to_optional_map(n, _machine)),
    "saas": ("saas", lambda n: to_map(n, _saas)),
    "series": ("series", to_str),
    "default-base": ("default_base", to_str),
    "relations": ("relations", lambda n: to_list(n, to_str_list)),
}


@dataclass
class BundlePart:
    """One YAML document of a multi-document bundle and the keys it spelled out."""

    data: BundleData
    present: dict[str, Any]


def decode_part(node: Node | None) -> BundlePart:
    """One document decoded and normalised (scale/num_units, placement)."""
    data = BundleData()
    if node is not None and not is_null(node):
        try:
            decode_fields(node, BUNDLE_FIELDS, data)
        except Mismatch:  # juju/charm keeps nothing of a document with a mistyped value
            data = BundleData()
    _normalise(data)
    return BundlePart(data, presence(node))


def _normalise(data: BundleData) -> None:
    """juju/charm's normalizeData: scale is an alias of num_units; placement is k8s-only."""
    for name, app in data.applications.items():
        if app is None:
            continue
        if app.scale > 0 and app.num_units > 0:
            raise ValueError(f"cannot specify both scale and num_units for application {go_quote(name)}")
        if app.scale > 0:
            app.num_units, app.scale = app.scale, 0
        if data.type != KUBERNETES and app.placement:
            raise ValueError(f"placement ({app.placement}) not valid for non-Kubernetes application {go_quote(name)}")
        if app.placement:
            if app.to:
                raise ValueError(f"cannot specify both placement and to for application {go_quote(name)}")
            app.to, app.placement = [app.placement], ""
