"""Relations: Application(17/19/20).AddRelation and DestroyRelation (libjuju's
`model.integrate()`/`relate()`, `application.destroy_relation()`), peer relations made at
deploy, and the subordinate units container-scoped relations bring.

Endpoints are inferred as Juju's state.InferEndpoints does: a provider and a requirer of the
same interface (or the named endpoints), a container-scoped endpoint making the whole
relation container-scoped. Keys are Juju's: the requirer first ("etcd:certificates
easyrsa:client"), a peer relation alone ("etcd:cluster"). Relation ids count up per model.
"""

from __future__ import annotations

from typing import Any

from botlab.lab.juju import errors, units
from botlab.lab.juju.appstate import App, Relation, World, log_event, world_of
from botlab.lab.juju.catalogue import Endpoint
from botlab.lab.juju.errors import JujuApiError
from botlab.lab.juju.facades import CallContext, facade_method

ROLE_ORDER = {"requirer": 0, "provider": 1, "peer": 2}


def _split(spec: str) -> tuple[str, str]:
    app, _, endpoint = spec.partition(":")
    if not app:
        raise errors.not_valid(f'invalid endpoint "{spec}"')
    return app, endpoint


def _candidates(app: App, endpoint: str) -> list[Endpoint]:
    eps = [e for e in app.charm.endpoints if e.role != "peer"]
    if endpoint:
        eps = [e for e in eps if e.name == endpoint]
        if not eps:
            # state.Application.Endpoint: errors.Errorf, no error code (Juju 3.6)
            raise JujuApiError(f'application "{app.name}" has no "{endpoint}" relation')
    return eps


def _container(ep1: Endpoint, ep2: Endpoint) -> tuple[Endpoint, Endpoint]:
    """A relation is container-scoped when either end is; both ends then say so."""
    if "container" in (ep1.scope, ep2.scope):
        return (Endpoint(ep1.name, ep1.interface, ep1.role, "container", ep1.limit, ep1.optional),
                Endpoint(ep2.name, ep2.interface, ep2.role, "container", ep2.limit, ep2.optional))
    return ep1, ep2


def infer(w: World, spec1: str, spec2: str) -> list[tuple[str, Endpoint]]:
    """The two endpoints a relation between `spec1` and `spec2` joins, in key order."""
    (name1, ep1), (name2, ep2) = _split(spec1), _split(spec2)
    app1, app2 = w.app(name1), w.app(name2)
    if app1.life != "alive" or app2.life != "alive":
        raise JujuApiError(f'application "{name1 if app1.life != "alive" else name2}" is not alive')
    matches: list[tuple[Endpoint, Endpoint]] = []
    for a in _candidates(app1, ep1):
        for b in _candidates(app2, ep2):
            if a.interface != b.interface or {a.role, b.role} != {"provider", "requirer"}:
                continue
            if app1 is app2:
                continue
            matches.append((a, b))
    if not matches:
        raise JujuApiError("no relations found")
    if len(matches) > 1:
        options = "; ".join(f'"{name1}:{a.name} {name2}:{b.name}"' for a, b in matches)
        raise JujuApiError(f'ambiguous relation: "{spec1} {spec2}" could refer to {options}')
    a, b = _container(*matches[0])
    if a.scope == "container" and not (app1.subordinate or app2.subordinate):
        raise JujuApiError(f'cannot add relation "{name1}:{a.name} {name2}:{b.name}": container scoped '
                           "relation requires at least one subordinate application")
    pair = [(name1, a), (name2, b)]
    pair.sort(key=lambda item: (ROLE_ORDER[item[1].role], f"{item[0]}:{item[1].name}"))
    return pair


def add_relation(w: World, endpoints: list[tuple[str, Endpoint]]) -> Relation:
    key = " ".join(f"{app}:{ep.name}" for app, ep in endpoints)
    for rel in w.relations.values():
        if rel.key == key and rel.life == "alive":
            # state.AddRelation: AlreadyExistsf("relation %v") under "cannot add relation %q"
            raise errors.already_exists(f'cannot add relation "{key}": relation {key} already exists')
    rel = Relation(w.next_relation, endpoints)
    w.next_relation += 1
    w.relations[rel.id] = rel
    w.publish_relation(rel)
    w.event("relation-added", relation=rel.key, id=rel.id, scope=rel.scope)
    units.ensure_subordinates(w)
    for app in rel.applications():
        units._poke_related(w, app)
    return rel


def add_peer_relations(w: World, app: App) -> None:
    """Juju relates an application's peer endpoints to itself when it is deployed."""
    for ep in app.charm.endpoints:
        if ep.role == "peer":
            add_relation(w, [(app.name, ep)])


def remove_relation(w: World, rel: Relation) -> None:
    """Take a relation away; subordinate units that hung on it go with it."""
    if rel.life != "alive":
        return
    rel.life = "dead"
    w.relations.pop(rel.id, None)
    w.model.remove_entity("relation", rel.key)
    w.event("relation-removed", relation=rel.key, id=rel.id)
    if rel.scope == "container" and not rel.is_peer:
        names = rel.applications()
        for sub_name in names:
            sub = w.apps.get(sub_name)
            if sub is None or not sub.subordinate:
                continue
            still = {far for r in w.relations_of(sub_name) if r.scope == "container" and not r.is_peer
                     for far, _ep in r.endpoints if far != sub_name}
            for unit in sub.alive_units():
                principal_app = unit.principal.rpartition("/")[0]
                if principal_app in names and principal_app not in still:
                    units.kill_unit(w, unit)
    for app in rel.applications():
        units._poke_related(w, app)


@facade_method("Application", (17, 19, 20), "AddRelation", mutating=True)
async def add_relation_call(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    specs = [str(e) for e in params.get("endpoints") or []]
    if len(specs) != 2:
        raise errors.bad_request(f"a relation needs two endpoints, got {len(specs)}")
    if params.get("via-cidrs"):
        raise errors.not_valid("via CIDRs are only for cross-model relations")
    endpoints = infer(w, specs[0], specs[1])
    rel = add_relation(w, endpoints)
    log_event(ctx, "relation-created", relation=rel.key, id=rel.id)
    return {"endpoints": {app: ep.to_api() for app, ep in rel.endpoints}}


def find_relation(w: World, specs: list[str], relation_id: Any) -> Relation:
    if isinstance(relation_id, int) and not isinstance(relation_id, bool) and not specs:
        rel = w.relations.get(relation_id)
        if rel is None or rel.life != "alive":
            raise errors.not_found(f"relation {relation_id} not found")
        return rel
    if len(specs) != 2:
        raise errors.bad_request(f"a relation is named by two endpoints, got {len(specs)}")
    wanted = [_split(s) for s in specs]
    for rel in w.relations.values():
        if rel.life != "alive" or rel.is_peer:
            continue
        ends = {app: ep.name for app, ep in rel.endpoints}
        if all(app in ends and ep in ("", ends[app]) for app, ep in wanted) and len({a for a, _e in wanted}) == 2:
            return rel
    for app, _ep in wanted:
        w.app(app)
    raise errors.not_found(f'relation "{" ".join(specs)}" not found')


@facade_method("Application", (17, 19, 20), "DestroyRelation", mutating=True)
async def destroy_relation(ctx: CallContext, params: dict[str, Any]) -> None:
    w = world_of(ctx)
    rel = find_relation(w, [str(e) for e in params.get("endpoints") or []], params.get("relation-id"))
    remove_relation(w, rel)
    log_event(ctx, "relation-destroyed", relation=rel.key, id=rel.id, force=bool(params.get("force")))
