"""The Resources facade (v3): AddPendingResources (libjuju adds a charmhub charm's store
resources before Application.Deploy) and ListResources (`application.get_resources()`).

Pending resources get an id that Deploy's `resources` map names; an application then holds
each of its charm's resources at the store revision (or the one asked for). Uploads of local
resource files go to the API server's HTTP endpoint, which the emulator does not serve.
"""

from __future__ import annotations

import time
from typing import Any

from botlab.lab.juju import charms, errors
from botlab.lab.juju.appstate import World, application_name, log_event, world_of
from botlab.lab.juju.catalogue import Charm
from botlab.lab.juju.errors import JujuApiError, bulk, error_result
from botlab.lab.juju.facades import CallContext, facade_method
from botlab.lab.juju.state import iso_time


def resources_for(w: World, charm: Charm, mapping: dict[str, str]) -> dict[str, dict[str, Any]]:
    """An application's resources: the pending ones Deploy names, the charm's store revision
    for the others."""
    out: dict[str, dict[str, Any]] = {}
    for name, resource in charm.resources.items():
        pending = w.pending_resources.pop(str(mapping.get(name) or ""), None)
        if pending is not None:
            out[name] = {**pending, "pending-id": ""}
        else:
            out[name] = {"resource": resource.to_api(), "id": "", "pending-id": "", "timestamp": time.time()}
    unknown = sorted(set(mapping) - set(charm.resources))
    if unknown:
        raise errors.not_valid(f'unrecognized resource "{unknown[0]}" for charm "{charm.name}"')
    return out


@facade_method("Resources", 3, "AddPendingResources", mutating=True)
async def add_pending_resources(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    tag = str(params.get("tag") or "")
    application = application_name(tag)
    try:
        entry = charms.lookup_added(w, str(params.get("url") or ""))
    except JujuApiError as exc:
        return {"pending-ids": [], "error": error_result(exc)}
    charm: Charm = entry["charm"]
    ids: list[str] = []
    for item in params.get("resources") or []:
        name = str((item or {}).get("name") or "")
        resource = charm.resources.get(name)
        if resource is None:
            return {"pending-ids": [], "error": error_result(errors.not_found(f'resource "{name}" not found'))}
        revision = item.get("revision")
        w.pending_serial += 1
        pending_id = f"{w.model.uuid[:8]}-{w.pending_serial:04d}"
        origin = str(item.get("origin") or "store")
        use = revision if isinstance(revision, int) and not isinstance(revision, bool) and revision >= 0 else None
        w.pending_resources[pending_id] = {
            "resource": resource.to_api(origin, use), "id": f"{application}/{name}", "application": application,
            "timestamp": time.time(),
        }
        ids.append(pending_id)
    log_event(ctx, "resources-pending", application=application, resources=len(ids))
    return {"pending-ids": ids}


@facade_method("Resources", 3, "ListResources", mutating=False)
async def list_resources(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        app = w.app_by_tag(str((item or {}).get("tag") or ""))
        resources = []
        for name, held in sorted(app.resources.items()):
            resources.append({
                "CharmResource": dict(held["resource"]), "id": f"{app.name}/{name}", "pending-id": "",
                "application": app.name, "username": ctx.user, "timestamp": iso_time(held["timestamp"]),
                "name": name, "origin": held["resource"]["origin"],
            })
        store = [r.to_api() for r in app.charm.resources.values()]
        return {"resources": resources, "charm-store-resources": store, "unit-resources": []}

    def failed(item: Any, error: dict[str, Any]) -> dict[str, Any]:
        return {"resources": [], "charm-store-resources": [], "unit-resources": [], "error": error}

    return bulk(params.get("entities") or [], one, failed)
