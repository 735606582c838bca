"""Bundle verification as the Bundle facade runs it (juju/charm v13 BundleData.Verify with the
constraints, storage and device parsers, no charm metadata): a list of error messages.

Where Go walks a map (random order), this walks it sorted by key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable

from botlab.lab.juju.bundle_base import is_local_charm_path, is_valid_charm_base
from botlab.lab.juju.bundle_checks import check_constraints, check_devices, check_storage
from botlab.lab.juju.bundle_data import KUBERNETES, ApplicationSpec, BundleData
from botlab.lab.juju.bundle_parse import (
    APPLICATION_RE,
    DEVICE_NAME_RE,
    MACHINE_ID_RE,
    MODEL_NAME_RE,
    RELATION_RE,
    SERIES_RE,
    STORAGE_NAME_RE,
    USER_NAME_RE,
    Endpoint,
    go_quote,
    go_quote_list,
    parse_charm_url,
    parse_endpoint,
    parse_placement,
)

OFFER_URL_RE = re.compile(r"/?(?:([^/]+)/)?([^.]*)(?:\.([^:]*(?::.*)?))?")
EXPOSE_CONFLICT = (
    'exposed-endpoints cannot be specified together with "exposed:true" in application {} '
    "as this poses a security risk when deploying bundles to older controllers"
)


def verify_bundle(data: BundleData) -> list[str]:
    """Every verification error in the bundle, in Juju's order; [] if it is valid."""
    errors = _verify_top(data)
    refs = dict.fromkeys(data.machines or {}, 0)
    errors += _verify_saas(data)
    errors += _verify_machines(data)
    errors += _verify_applications(data, refs)
    errors += _verify_relations(data)
    unused = [m for m in sorted(refs) if refs[m] == 0]
    return errors + [f"machine {go_quote(m)} is not referred to by a placement directive" for m in unused]


def _verify_top(data: BundleData) -> list[str]:
    """Bundle type, default series and default base; a k8s bundle loses its machines."""
    errors = []
    if data.type not in ("", KUBERNETES):
        errors.append(f"bundle has an invalid type {go_quote(data.type)}")
    if data.type == KUBERNETES:
        if data.machines:
            errors.append("bundle machines not valid for Kubernetes bundles")
        data.machines = None
    if data.series and SERIES_RE.fullmatch(data.series) is None:
        errors.append(f"bundle declares an invalid series {go_quote(data.series)}")
    if data.default_base and not is_valid_charm_base(data.default_base):
        errors.append(f"bundle declares an invalid base {go_quote(data.default_base)}")
    return errors


def _verify_saas(data: BundleData) -> list[str]:
    """SAAS names and offer URLs."""
    errors = []
    for name in sorted(data.saas):
        saas = data.saas[name]
        if name in data.applications:
            errors.append(f"application {go_quote(name)} already exists with SAAS {go_quote(name)} name")
        if APPLICATION_RE.fullmatch(name) is None:
            errors.append(f"invalid SAAS name {go_quote(name)} found")
        if saas is not None and saas.url and not is_valid_offer_url(saas.url):
            errors.append(f"invalid offer URL {go_quote(saas.url)} for SAAS {name}")
    return errors


def is_valid_offer_url(url: str) -> bool:
    """Whether `url` is `[source:][user/]model.application[:endpoint]`."""
    parts = url.split(":")
    rest = url
    if len(parts) == 3:
        rest = parts[1] + ":" + parts[2]
    elif len(parts) == 2 and not re.fullmatch(r"[a-zA-Z0-9]+", parts[1]):
        rest = parts[1]
    match = OFFER_URL_RE.fullmatch(rest)
    if url.startswith(":") or match is None:
        return False
    user, model, application = (g or "" for g in match.groups())
    if not model or not application or "/" in model or "/" in application:
        return False
    return _valid_offer_names(user, model, application.split(":")[0])


def _valid_offer_names(user: str, model: str, application: str) -> bool:
    """User, model and application names of an offer URL."""
    if user and USER_NAME_RE.fullmatch(user) is None:
        return False
    if MODEL_NAME_RE.fullmatch(model) is None:
        return False
    return not application or APPLICATION_RE.fullmatch(application) is not None


def _verify_machines(data: BundleData) -> list[str]:
    """Machine ids, constraints, series and bases."""
    errors = []
    for machine_id in sorted(data.machines or {}):
        machine = (data.machines or {})[machine_id]
        if MACHINE_ID_RE.fullmatch(machine_id) is None:
            errors.append(f"invalid machine id {go_quote(machine_id)} found in machines")
        if machine is None:
            continue
        problem = check_constraints(machine.constraints) if machine.constraints else None
        if problem is not None:
            quoted = go_quote(machine.constraints)
            errors.append(f"invalid constraints {quoted} in machine {go_quote(machine_id)}: {problem}")
        if machine.series and SERIES_RE.fullmatch(machine.series) is None:
            errors.append(f"invalid series {go_quote(machine.series)} for machine {go_quote(machine_id)}")
        if machine.base and not is_valid_charm_base(machine.base):
            errors.append(f"invalid base {go_quote(machine.base)} for machine {go_quote(machine_id)}")
    return errors


def _verify_applications(data: BundleData, refs: dict[str, int]) -> list[str]:
    """Every application's charm, settings, placement and expose parameters."""
    if not data.applications:
        return ["at least one application must be specified"]
    errors = []
    for name in sorted(data.applications):
        app = data.applications[name]
        if app is None:
            errors.append(f"bundle application for key {go_quote(name)} is undefined")
            continue
        if name in data.saas:
            errors.append(f"SAAS {go_quote(name)} already exists with application {go_quote(name)} name")
        errors += _verify_charm(name, app)
        errors += _verify_settings(name, app)
        errors += _verify_placement(data, name, app, refs)
        errors += _verify_expose(name, app)
    return errors


def _verify_charm(name: str, app: ApplicationSpec) -> list[str]:
    """The charm path or URL, its revision and its series or base."""
    quoted = go_quote(name)
    if not app.charm:
        return ["empty charm path", *_verify_os(name, app, "")]
    if is_local_charm_path(app.charm):
        missing = f"charm path in application {quoted} does not exist: {app.charm}"
        return ([] if os.path.exists(app.charm) else [missing]) + _verify_os(name, app, "")
    try:
        url = parse_charm_url(app.charm)
    except ValueError as exc:
        return [f"invalid charm URL in application {quoted}: {exc}", *_verify_os(name, app, "")]
    errors = []
    if url.schema == "ch" and url.revision != -1:
        errors.append(f"cannot specify revision in {go_quote(str(url))}, please use revision")
    if app.revision is not None and url.schema == "ch" and not app.channel:
        errors.append(
            f"application {quoted} with a revision requires a channel for future upgrades, please use channel"
        )
    if app.revision is not None and app.revision < 0:
        errors.append(f"the revision for application {quoted} must be zero or greater")
    return errors + _verify_os(name, app, url.series)


def _verify_os(name: str, app: ApplicationSpec, url_series: str) -> list[str]:
    """The application's series (also against the URL's) and base."""
    quoted = go_quote(name)
    errors = []
    if url_series and app.series and url_series != app.series:
        errors.append(
            f"the charm URL for application {quoted} has a series which does not match, "
            "please remove the series from the URL"
        )
    if app.series and SERIES_RE.fullmatch(app.series) is None:
        errors.append(f"application {quoted} declares an invalid series {go_quote(app.series)}")
    if app.base and not is_valid_charm_base(app.base):
        errors.append(f"application {quoted} declares an invalid base {go_quote(app.base)}")
    return errors


def _verify_settings(name: str, app: ApplicationSpec) -> list[str]:
    """Constraints, storage, devices, offers, resources and the unit count."""
    quoted = go_quote(name)
    errors = []
    problem = check_constraints(app.constraints)
    if problem is not None:
        errors.append(f"invalid constraints {go_quote(app.constraints)} in application {quoted}: {problem}")
    errors += _verify_named(app.storage, STORAGE_NAME_RE, check_storage, "storage", quoted)
    errors += _verify_named(app.devices, DEVICE_NAME_RE, check_devices, "device", quoted)
    errors += _verify_offers(quoted, app)
    for resource in sorted(app.resources):
        if resource == "":
            errors.append(f"missing resource name on application {quoted}")
        value = app.resources[resource]
        if isinstance(value, bool) or not isinstance(value, int | str):
            errors.append(f"resource revision {quoted} is not int or string")
    if app.num_units < 0:
        errors.append(f"negative number of units specified on application {quoted}")
    return errors


def _verify_named(
    values: dict[str, str], name_re: re.Pattern[str], check: Callable[[str], str | None], kind: str, quoted_app: str
) -> list[str]:
    """Storage or device entries: a valid name and a parsable value."""
    errors = []
    for key in sorted(values):
        if name_re.fullmatch(key) is None:
            errors.append(f"invalid {kind} name {go_quote(key)} in application {quoted_app}")
        problem = check(values[key])
        if problem is not None:
            errors.append(f"invalid {kind} {go_quote(key)} in application {quoted_app}: {problem}")
    return errors


def _verify_offers(quoted_app: str, app: ApplicationSpec) -> list[str]:
    """Offer names and the endpoint names they offer."""
    errors = []
    for offer_name in sorted(app.offers or {}):
        offer = (app.offers or {})[offer_name]
        if APPLICATION_RE.fullmatch(offer_name) is None:
            errors.append(f"invalid offer name {go_quote(offer_name)} in application {quoted_app}")
        for endpoint in (offer.endpoints or []) if offer else []:
            if RELATION_RE.fullmatch(endpoint) is None:
                errors.append(
                    f"invalid endpoint name {go_quote(endpoint)} for offer {go_quote(offer_name)} "
                    f"in application {quoted_app}"
                )
    return errors


def _verify_placement(data: BundleData, name: str, app: ApplicationSpec, refs: dict[str, int]) -> list[str]:
    """`to:` directives: node selectors for k8s, units/machines/new otherwise."""
    if data.type == KUBERNETES:
        return _verify_k8s_placement(name, app.to)
    errors = []
    if app.num_units >= 0 and len(app.to) > app.num_units:
        errors.append(f"too many units specified in unit placement for application {go_quote(name)}")
    for directive in app.to:
        errors += _verify_directive(data, directive, refs)
    return errors


def _verify_directive(data: BundleData, directive: str, refs: dict[str, int]) -> list[str]:
    """One placement: its target application or bundle machine must exist."""
    try:
        placement = parse_placement(directive)
    except ValueError as exc:
        return [str(exc)]
    quoted = go_quote(directive)
    if placement.application:
        target = data.applications.get(placement.application)
        if placement.application not in data.applications:
            return [f"placement {quoted} refers to an application not defined in this bundle"]
        units = target.num_units if target else 0
        if placement.unit >= 0 and placement.unit >= units:
            started = f"the {units} unit(s) started by the target application"
            return [f"placement {quoted} specifies a unit greater than {started}"]
        return []
    if placement.machine == "new":
        return []
    if placement.machine not in (data.machines or {}):
        return [f"placement {quoted} refers to a machine not defined in this bundle"]
    refs[placement.machine] += 1
    return []


def _verify_k8s_placement(name: str, to: list[str]) -> list[str]:
    """A k8s placement is one `key=value[,key=value]` node selector."""
    if len(to) > 1:
        return [f"too many placement directives for application {go_quote(name)}"]
    seen: set[str] = set()
    for item in to[0].split(",") if to else []:
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq:
            return [f'expected "key=value", got {go_quote(item)} for application {go_quote(name)}']
        if not key or not value:
            return [f'expected "key=value", got "{key}={value}" for application {go_quote(name)}']
        if key in seen:
            return [f"key {go_quote(key)} specified more than once for application {go_quote(name)}"]
        seen.add(key)
    return []


def _verify_expose(name: str, app: ApplicationSpec) -> list[str]:
    """exposed-endpoints excludes `expose: true`; every CIDR must parse."""
    if not app.exposed_endpoints:
        return []
    if app.expose:
        return [EXPOSE_CONFLICT.format(go_quote(name))]
    errors = []
    for endpoint in sorted(app.exposed_endpoints):
        for cidr in app.exposed_endpoints[endpoint].expose_to_cidrs or []:
            if not _is_cidr(cidr):
                errors.append(
                    f"invalid CIDR {go_quote(cidr)} for expose to CIDRs field for endpoint "
                    f"{go_quote(endpoint)} in application {go_quote(name)}"
                )
    return errors


def _is_cidr(text: str) -> bool:
    """Go's net.ParseCIDR: an address and a prefix length."""
    if "/" not in text:
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _verify_relations(data: BundleData) -> list[str]:
    """Two well-formed endpoints of known, different applications; no relation twice."""
    errors: list[str] = []
    seen: set[tuple[Endpoint, Endpoint]] = set()
    for relation in data.relations:
        pair = _verify_relation(data, relation, errors)
        if pair is None:
            continue
        if pair in seen:
            errors.append(f"relation {go_quote_list(relation)} is defined more than once")
        seen.add(pair)
    return errors


def _verify_relation(data: BundleData, relation: list[str], errors: list[str]) -> tuple[Endpoint, Endpoint] | None:
    """Check one relation, appending to `errors`; its endpoints in canonical order, or None."""
    quoted = go_quote_list(relation)
    if len(relation) != 2:
        errors.append(f"relation {quoted} has {len(relation)} endpoint(s), not 2")
        return None
    endpoints = []
    for text in relation:
        try:
            endpoint = parse_endpoint(text)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        errors += _endpoint_target_errors(data, quoted, endpoint)
        endpoints.append(endpoint)
    if len(endpoints) != 2:
        return None
    first, second = endpoints
    if first.application == second.application:
        errors.append(f"relation {quoted} relates an application to itself")
    in_order = (first.application, first.relation) <= (second.application, second.relation)
    return (first, second) if in_order else (second, first)


def _endpoint_target_errors(data: BundleData, quoted_relation: str, endpoint: Endpoint) -> list[str]:
    """An endpoint's application must be an application or a SAAS, not both."""
    in_apps = endpoint.application in data.applications
    in_saas = endpoint.application in data.saas
    if not in_apps and not in_saas:
        app = go_quote(endpoint.application)
        return [f"relation {quoted_relation} refers to application {app} not defined in this bundle"]
    if in_apps and in_saas:
        app = go_quote(endpoint.application)
        return [f"ambiguous relation {app} refers to a application and a SAAS in this bundle"]
    return []
