"""The first four steps of Juju's bundlechanges.FromData against an empty model: charms and
applications, bundle machines, offers and SAAS, relations. Units come from bundle_units."""

from __future__ import annotations

from typing import Any

from botlab.lab.juju.bundle_base import (
    Base,
    base_from_series,
    compute_base,
    is_local_charm_path,
    local_charm_base,
    parse_base,
)
from botlab.lab.juju.bundle_changeset import (
    Change,
    ChangeSet,
    Sequence,
    add_charm_args,
    annotations_args,
    expose_args,
    machine_args,
    omit_empty,
    placeholder,
)
from botlab.lab.juju.bundle_data import KUBERNETES, ApplicationSpec, BundleData, MachineSpec
from botlab.lab.juju.bundle_parse import BundleChangesError, Endpoint, natural_sorted, split_endpoint


def application_base(app: ApplicationSpec, default: Base) -> Base:
    """The base an application deploys on: its own, else a local charm's, else the default."""
    if app.base:
        return parse_base(app.base)
    if app.series:
        return base_from_series(app.series)
    if not is_local_charm_path(app.charm):
        return default
    return local_charm_base(app.charm, default)


def handle_applications(data: BundleData, default: Base, bundle_url: str, changes: ChangeSet) -> dict[str, str]:
    """addCharm (once per charm/base/channel/revision), deploy, expose and setAnnotations per
    application, in natural name order; returns application name -> deploy change id."""
    charms: dict[str, str] = {}
    deployed: dict[str, str] = {}
    for name in natural_sorted(data.applications):
        app = data.applications[name]
        if app is None:
            continue
        charm_id = _add_charm(app, application_base(app, default), charms, changes)
        deploy = changes.add("deploy", _deploy_args(data, name, app, charm_id, default), [charm_id])
        deployed[name] = deploy.id
        if app.expose or app.exposed_endpoints:
            changes.add("expose", expose_args(placeholder(deploy.id), app.exposed_endpoints), [deploy.id])
        annotations = {**app.annotations, **({"bundleURL": bundle_url} if bundle_url else {})}
        if annotations:
            args = annotations_args(placeholder(deploy.id), "application", annotations)
            changes.add("setAnnotations", args, [deploy.id])
    return deployed


def _add_charm(app: ApplicationSpec, base: Base, charms: dict[str, str], changes: ChangeSet) -> str:
    """The addCharm change for this charm permutation, added the first time it is needed."""
    revision = app.revision if app.revision is not None else -1
    key = f"{app.charm}::{base}:{app.channel or 'stable'}:{revision}"
    if key not in charms:
        charms[key] = changes.add("addCharm", add_charm_args(app.charm, app.revision, base, app.channel)).id
    return charms[key]


def _deploy_args(data: BundleData, name: str, app: ApplicationSpec, charm_id: str, default: Base) -> dict[str, Any]:
    """AddApplicationParams; num-units only for Kubernetes bundles (IAAS adds units one by one)."""
    resources = {k: v for k, v in app.resources.items() if isinstance(v, int) and not isinstance(v, bool)}
    local = {k: v for k, v in app.resources.items() if isinstance(v, str)}
    fields = {
        "base": str(application_base(app, default)),
        "application": name,
        "num-units": app.num_units if data.type == KUBERNETES else 0,
        "options": app.options,
        "constraints": app.constraints,
        "storage": app.storage,
        "devices": app.devices,
        "endpoint-bindings": app.bindings,
        "resources": resources,
        "local-resources": local,
        "channel": app.channel,
    }
    return {"charm": placeholder(charm_id), **omit_empty(fields)}


def handle_machines(data: BundleData, default: Base, changes: ChangeSet, sequence: Sequence) -> dict[str, Change]:
    """addMachines (each requiring the ones before) and setAnnotations per bundle machine,
    in natural order; returns bundle machine id -> its addMachines change."""
    added: dict[str, Change] = {}
    for name in natural_sorted(data.machines or {}):
        spec = (data.machines or {})[name] or MachineSpec()
        base = compute_base(spec.base, spec.series, default)
        change = changes.add("addMachines", machine_args(base, spec.constraints), [c.id for c in added.values()])
        change.machine = sequence.next_machine()
        added[name] = change
        if spec.annotations:
            args = annotations_args(placeholder(change.id), "machine", spec.annotations)
            changes.add("setAnnotations", args, [change.id])
    return added


def handle_offers(data: BundleData, applications: dict[str, str], changes: ChangeSet) -> None:
    """consumeOffer per SAAS entry (it then stands in for an application), createOffer per
    offer and grantOfferAccess per ACL entry. Go walks these maps at random; this sorts them."""
    for name in sorted(data.saas):
        saas = data.saas[name]
        args = {"url": saas.url if saas else "", **omit_empty({"application-name": name})}
        applications[name] = changes.add("consumeOffer", args).id
    for app_name in sorted(data.applications):
        app = data.applications[app_name]
        for offer_name, offer in sorted(((app.offers or {}) if app else {}).items()):
            if app_name not in applications:
                raise BundleChangesError(f"cannot create offer {offer_name}: application {app_name} not found")
            args = {"application": app_name, "endpoints": offer.endpoints if offer else None}
            created = changes.add(
                "createOffer", {**args, **omit_empty({"offer-name": offer_name})}, [applications[app_name]]
            )
            for user, access in sorted(((offer.acl or {}) if offer else {}).items()):
                grant = {"user": user, "access": access, "offer": offer_name}
                changes.add("grantOfferAccess", grant, [created.id])


def handle_relations(data: BundleData, applications: dict[str, str], changes: ChangeSet) -> None:
    """addRelation per relation, endpoints pointing at the deploy/consumeOffer changes."""
    for relation in data.relations:
        requires: list[str] = []
        endpoints: list[str] = []
        for text in relation[:2]:
            endpoint = split_endpoint(text)
            pending = applications.get(endpoint.application, "")
            requires.append(pending)
            endpoints.append(placeholder(str(Endpoint(pending, endpoint.relation))))
        changes.add("addRelation", {"endpoint1": endpoints[0], "endpoint2": endpoints[1]}, requires)
