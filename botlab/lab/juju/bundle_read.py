"""Reading a (multi-document) bundle as the Bundle facade does: juju/charm v13's
StreamBundleDataSource + ReadAndMergeBundleData. Overlay documents merge onto the first one;
relative charm paths and `include-file://`/`include-base64://` values are resolved against the
bundle URL. Failures are API errors ("cannot read bundle YAML: ...") and raise
BundleChangesError.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

import yaml

from botlab.lab.juju.bundle_data import (
    APPLICATION_FIELDS,
    ApplicationSpec,
    BundleData,
    BundlePart,
    ExposedEndpointSpec,
    OfferSpec,
    SaasSpec,
    decode_part,
)
from botlab.lab.juju.bundle_parse import BundleChangesError, go_quote
from botlab.lab.juju.bundle_yaml import compose_documents

EMPTY_BUNDLE = "cannot read bundle YAML: malformed bundle: bundle is empty not valid"
INCLUDE_DIRECTIVES: dict[str, Callable[[bytes], str]] = {
    "include-file://": lambda data: data.decode(),
    "include-base64://": lambda data: base64.b64encode(data).decode(),
}


def read_bundle(text: str, base_path: str) -> BundleData:
    """The merged bundle from a (multi-document) YAML text; BundleChangesError if unreadable."""
    parts = _read_parts(text)
    first = parts[0].data
    _check_no_overlay_fields(first)
    _check_bodies(first)
    for part in parts:
        _fix_presence(part)
    for part in parts[1:]:
        apply_overlay(first, part)
    _resolve_paths(first, base_path)
    return first


def _read_parts(text: str) -> list[BundlePart]:
    """Every document as a BundlePart; Juju treats any decoding failure as an empty bundle."""
    try:
        parts = [decode_part(node) for node in compose_documents(text)]
    except (yaml.YAMLError, ValueError) as exc:
        raise BundleChangesError(EMPTY_BUNDLE) from exc
    if not parts:
        raise BundleChangesError(EMPTY_BUNDLE)
    return parts


def _fix_presence(part: BundlePart) -> None:
    """A `scale:` the normaliser moved to num_units counts as a `num_units:` for merging."""
    applications = part.present.get("applications") or {}
    for name, app in part.data.applications.items():
        present = applications.get(name) if isinstance(applications, dict) else None
        if app is None or not isinstance(present, dict):
            continue
        if "scale" in present and "num_units" not in present and app.num_units > 0:
            present["num_units"] = present["scale"]


def _check_bodies(data: BundleData) -> None:
    """Every application of the base document needs a body."""
    for name, app in data.applications.items():
        if app is None:
            raise BundleChangesError(f"cannot read bundle YAML: base application {go_quote(name)} has no body")


def _check_no_overlay_fields(data: BundleData) -> None:
    """The base document may not use overlay-only fields (offers, exposed-endpoints)."""
    errors: list[str] = []
    for name in sorted(data.applications):
        app = data.applications[name]
        if app is not None:
            errors += _overlay_field_errors(f"applications.{name}", app)
    if errors:
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise BundleChangesError(f"cannot read bundle YAML: {errors[0]}{more}")


def _overlay_field_errors(path: str, app: ApplicationSpec) -> list[str]:
    """Messages for each overlay-only field set on one application of the base document."""
    suffix = "can only appear in an overlay section"
    errors = []
    if app.exposed_endpoints is not None:
        errors.append(f"{path}.exposed-endpoints {suffix}")
        for endpoint in sorted(app.exposed_endpoints):
            spec = app.exposed_endpoints[endpoint]
            for key, value in (("expose-to-spaces", spec.expose_to_spaces), ("expose-to-cidrs", spec.expose_to_cidrs)):
                if value is not None:
                    errors.append(f"{path}.exposed-endpoints.{endpoint}.{key} {suffix}")
    if app.offers is not None:
        errors.append(f"{path}.offers {suffix}")
        for offer_name in sorted(app.offers):
            offer = app.offers[offer_name] or OfferSpec()
            if offer.endpoints is not None:
                errors.append(f"{path}.offers.{offer_name}.endpoints {suffix}")
            if offer.acl is not None:
                errors.append(f"{path}.offers.{offer_name}.acl {suffix}")
    return errors


def apply_overlay(base: BundleData, overlay: BundlePart) -> None:
    """Merge one overlay document onto the base bundle (juju/charm applyOverlay)."""
    if not overlay.present:
        return
    data = overlay.data
    present = overlay.present
    _merge_entries(base.applications, data.applications, present.get("applications"), base, _merge_application)
    _merge_entries(base.saas, data.saas, present.get("saas"), base, _merge_saas)
    if data.series:
        base.series = data.series
    base.relations = base.relations + data.relations
    if data.machines is not None:
        base.machines = data.machines


def _merge_entries(
    target: dict[str, Any],
    source: dict[str, Any],
    present: Any,
    base: BundleData,
    merge: Callable[[Any, Any, dict[str, Any]], None],
) -> None:
    """Applications or SAAS blocks: null deletes (with its relations), new adds, else merge."""
    present = present if isinstance(present, dict) else {}
    for name, spec in source.items():
        if spec is None:
            target.pop(name, None)
            base.relations = _without_relations(base.relations, name)
        elif name not in target or target[name] is None:
            target[name] = spec
        else:
            entry = present.get(name)
            merge(target[name], spec, entry if isinstance(entry, dict) else {})


def _without_relations(relations: list[list[str]], name: str) -> list[list[str]]:
    """Relations that do not mention application `name`."""

    def mentions(endpoint: str) -> bool:
        return endpoint == name or endpoint.startswith(name + ":")

    return [r for r in relations if len(r) != 2 or not (mentions(r[0]) or mentions(r[1]))]


def _merge_saas(target: SaasSpec, source: SaasSpec, present: dict[str, Any]) -> None:
    """A SAAS block the overlay spells out replaces the base one's URL."""
    if "url" in present:
        target.url = source.url


def _merge_application(target: ApplicationSpec, source: ApplicationSpec, present: dict[str, Any]) -> None:
    """juju/charm mergeStructs: fields the overlay spells out replace or merge into the base."""
    for key, (attribute, _) in APPLICATION_FIELDS.items():
        if key not in present:
            continue
        value = getattr(source, attribute)
        if key in MAP_KEYS:
            given = value if isinstance(present[key], dict) else None
            setattr(target, attribute, _merged_map(getattr(target, attribute), given, attribute))
        else:
            setattr(target, attribute, value)


MAP_KEYS = frozenset(
    {"resources", "exposed-endpoints", "options", "annotations", "storage", "devices", "bindings", "offers"}
)
NON_SCALAR_MAPS = frozenset({"resources", "options", "exposed_endpoints", "offers"})


def _merged_map(target: dict[str, Any] | None, source: dict[str, Any] | None, attribute: str) -> dict[str, Any]:
    """An overlay map: null clears it; zero non-scalar values delete keys; others overwrite."""
    if source is None:
        return {}
    merged = dict(target or {})
    for key, value in source.items():
        if attribute in NON_SCALAR_MAPS and _is_zero(value):
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _is_zero(value: Any) -> bool:
    """Go's zero value test for the map values an overlay can delete."""
    return value is None or (isinstance(value, ExposedEndpointSpec) and value.is_zero())


def _resolve_paths(data: BundleData, base_path: str) -> None:
    """Relative charm paths become absolute; include-file/include-base64 values are inlined."""
    for name, app in data.applications.items():
        if app is None:
            continue
        if app.charm.startswith("."):
            app.charm = os.path.abspath(os.path.join(base_path, app.charm))
        _resolve_includes(app.options, base_path, "option", f"application {go_quote(name)}")
        _resolve_includes(app.annotations, base_path, "annotation", f"application {go_quote(name)}")
    for name, machine in (data.machines or {}).items():
        if machine is not None:
            _resolve_includes(machine.annotations, base_path, "annotation", f"machine {go_quote(name)}")


def _resolve_includes(values: dict[str, Any], base_path: str, kind: str, owner: str) -> None:
    """Replace include directives in `values` with the files' contents."""
    for key, value in values.items():
        for directive, encode in INCLUDE_DIRECTIVES.items():
            if isinstance(value, str) and value.startswith(directive):
                what = f"{kind} {go_quote(key)} for {owner}"
                values[key] = _include(value[len(directive) :], base_path, what, encode)
                break


def _include(path: str, base_path: str, what: str, encode: Callable[[bytes], str]) -> str:
    """The encoded contents of an included file, or Juju's API error."""
    full = path if os.path.isabs(path) else os.path.abspath(os.path.join(base_path, path))
    prefix = f"cannot read bundle YAML: processing {what}: resolving include {go_quote(path)}"
    if not os.path.exists(full):
        raise BundleChangesError(f"{prefix}: include file {go_quote(full)} not found")
    if os.path.isdir(full):
        raise BundleChangesError(f"{prefix}: include path {go_quote(full)} resolves to a folder")
    with open(full, "rb") as handle:
        return encode(handle.read())
