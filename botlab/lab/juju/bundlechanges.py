"""The controller side of `Bundle.GetChangesMapArgs` (facade Bundle v6): the changes that deploy
a bundle, computed as Juju 3.6 does (charm v13 bundle reading and verification, then
bundlechanges.FromData against the model, which the facade always treats as empty).

    changes, errors = get_changes_map_args(bundle_yaml, bundle_url)

Each change is `{"id": "addCharm-0", "method": "addCharm", "args": {...}, "requires": [...]}`,
in the order libjuju's BundleHandler runs them. `errors` is what the facade puts in `errors`:
one "" per change on success; the verification messages (and no changes) for a bad bundle.
Failures the facade returns as an API error instead (unreadable YAML, a placement cycle, an
unknown series, ...) raise BundleChangesError with Juju's message.
"""

from __future__ import annotations

from typing import Any

from botlab.lab.juju.bundle_base import Base, compute_base
from botlab.lab.juju.bundle_changeset import Change, ChangeSet, Sequence
from botlab.lab.juju.bundle_data import KUBERNETES, BundleData
from botlab.lab.juju.bundle_parse import BundleChangesError
from botlab.lab.juju.bundle_read import read_bundle
from botlab.lab.juju.bundle_resolver import handle_applications, handle_machines, handle_offers, handle_relations
from botlab.lab.juju.bundle_units import handle_units
from botlab.lab.juju.bundle_verify import verify_bundle

__all__ = ["BundleChangesError", "changes_from_data", "get_changes_map_args"]


def get_changes_map_args(bundle_yaml: str, bundle_url: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """(changes, errors) for GetChangesMapArgs(bundleURL=bundle_url, yaml=bundle_yaml).

    `bundle_yaml` may hold overlays as further YAML documents; `bundle_url`, when given, is
    set as every application's `bundleURL` annotation and resolves relative charm paths and
    include-file:// directives, as in Juju."""
    data = read_bundle(bundle_yaml, bundle_url)
    errors = verify_bundle(data)
    if errors:
        return [], errors
    changes = changes_from_data(data, bundle_url)
    return [change.as_dict() for change in changes], [""] * len(changes)


def changes_from_data(data: BundleData, bundle_url: str = "") -> list[Change]:
    """The sorted changes that deploy verified bundle `data` into an empty model."""
    changes, sequence = ChangeSet(), Sequence()
    default = compute_base(data.default_base, data.series, Base())
    applications = handle_applications(data, default, bundle_url, changes)
    machines = {} if data.type == KUBERNETES else handle_machines(data, default, changes, sequence)
    handle_offers(data, applications, changes)
    handle_relations(data, applications, changes)
    if data.type != KUBERNETES:
        handle_units(data, default, applications, machines, changes, sequence)
    return changes.sorted()
