"""The Action facade (v7): EnqueueOperation (libjuju's `unit.run_action()`), Actions
(`action.wait()` / `model.get_action_output()`), Operations, ListOperations, Cancel,
ApplicationsCharmsActions (`application.get_actions()`), and the actions' runs.

Juju 3 numbers operations and actions from one per-model sequence: the first
`juju run` is operation 1 with task (action) 2. An action waits "pending" until its unit's
agent is idle, runs ("running", agent executing "running action <name>") for `action_s`,
then ends "completed" with the results its handler returns (catalogue.register_action_handler)
or "failed" with the handler's message. kubernetes-control-plane's `get-kubeconfig` returns a
kubeconfig (JSON, as the charm's `kubectl config view -o json --raw`) for the cluster: the
kubeapi-load-balancer's address when related, else the unit's own, with the model's cluster CA.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import inspect
import json
import secrets
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from botlab.lab.juju import catalogue, errors
from botlab.lab.juju.appstate import ZERO_TIME, Action, Operation, Unit, World, log_event, world_of
from botlab.lab.juju.catalogue import ActionFailed, ActionRun
from botlab.lab.juju.errors import JujuApiError, bulk
from botlab.lab.juju.facades import CallContext, facade_method
from botlab.lab.juju.state import ModelState, iso_time

JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list,
}


def _time(t: float | None) -> str:
    return iso_time(t) if t else ZERO_TIME


def action_result(action: Action) -> dict[str, Any]:
    """params.ActionResult."""
    return {
        "action": {"tag": action.tag, "receiver": "unit-" + action.receiver.replace("/", "-"), "name": action.name,
                   "parameters": dict(action.parameters)},
        "status": action.status,
        "message": action.message,
        "output": dict(action.results),
        "enqueued": _time(action.enqueued),
        "started": _time(action.started),
        "completed": _time(action.completed),
        "log": list(action.log),
    }


def _validate(spec: catalogue.ActionSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters checked against the action's schema (defaults filled in), with
    messages in the style of Juju's JSON-schema validation."""
    for name in spec.required:
        if name not in params:
            raise errors.not_valid(f'validation failed: (root) : "{name}" property is missing and required, '
                                   f"given {json.dumps(params, sort_keys=True)}")
    out = {}
    for name, value in params.items():
        schema = spec.params.get(name)
        if schema is None:
            raise errors.not_valid(f"validation failed: (root) : additional property \"{name}\" is not allowed, "
                                   f"given {json.dumps(params, sort_keys=True)}")
        kind = JSON_TYPES.get(str(schema.get("type") or ""))
        if kind is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
            raise errors.not_valid(f"validation failed: ({name}) : invalid type. Expected: {schema.get('type')}, "
                                   f"given: {type(value).__name__}")
        out[name] = value
    for name, schema in spec.params.items():
        if name not in out and isinstance(schema, dict) and "default" in schema:
            out[name] = schema["default"]
    return out


def _receiver(w: World, tag: str) -> Unit:
    text = str(tag or "")
    if text.startswith("unit-"):
        app, _, number = text[len("unit-"):].rpartition("-")
        return w.unit(f"{app}/{number}")
    if text.endswith("/leader"):
        application = w.app(text[: -len("/leader")])
        found = next((u for u in application.alive_units() if u.leader), None)
        if found is None:
            raise errors.not_found(f'could not determine leader for "{application.name}"')
        return found
    if "/" in text:
        return w.unit(text)
    raise errors.not_valid(f'invalid actions receiver tag "{text}"')


@facade_method("Action", 7, "EnqueueOperation", mutating=True)
async def enqueue_operation(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    requested = params.get("actions") or []
    if not requested:
        raise errors.bad_request("no actions specified")
    operation = Operation(w.next_id(), "", [])

    def one(item: Any) -> dict[str, Any]:
        item = item or {}
        name = str(item.get("name") or "")
        unit = _receiver(w, str(item.get("receiver") or ""))
        spec = unit.app.charm.actions.get(name)
        if spec is None:
            # state.Unit.prepareActionPayload: errors.Errorf, no error code (Juju 3.6)
            raise JujuApiError(f'action "{name}" not defined on unit "{unit.name}"')
        values = _validate(spec, dict(item.get("parameters") or {}))
        action = Action(w.next_id(), operation.id, unit.name, name, values)
        w.actions[action.id] = action
        operation.actions.append(action.id)
        w.publish_action(action)
        unit.poke()
        result = action_result(action)
        log_event(ctx, "action-enqueued", action=action.id, operation=operation.id, unit=unit.name, name=name)
        return result

    def failed(item: Any, error: dict[str, Any]) -> dict[str, Any]:
        item = item or {}
        return {"action": {"tag": "", "receiver": str(item.get("receiver") or ""), "name": str(item.get("name") or "")},
                "status": "", "message": "", "enqueued": ZERO_TIME, "started": ZERO_TIME,
                "completed": ZERO_TIME, "error": error}

    results = bulk(requested, one, failed, key="actions")
    names = sorted({w.actions[a].name for a in operation.actions})
    operation.summary = f"{', '.join(names)} run on unit-" + ",".join(
        w.actions[a].receiver.replace("/", "-") for a in operation.actions
    ) if operation.actions else ""
    w.operations[operation.id] = operation
    return {"operation": f"operation-{operation.id}", **results}


def _action_from_tag(w: World, tag: Any) -> Action:
    text = str(tag or "")
    if not text.startswith("action-"):
        raise errors.not_valid(f'"{text}" is not a valid action tag')
    found = w.actions.get(text[len("action-"):])
    if found is None:
        raise errors.not_found(f"action {text[len('action-'):]} not found")
    return found


@facade_method("Action", 7, "Actions", mutating=False)
async def actions_call(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    return bulk(params.get("entities") or [], lambda item: action_result(_action_from_tag(w, (item or {}).get("tag"))))


@facade_method("Action", 7, "Cancel", mutating=True)
async def cancel(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        action = _action_from_tag(w, (item or {}).get("tag"))
        if action.status == "pending":
            action.status, action.completed = "cancelled", time.time()
            w.publish_action(action)
            log_event(ctx, "action-cancelled", action=action.id)
        return action_result(action)

    return bulk(params.get("entities") or [], one)


def operation_result(w: World, op: Operation) -> dict[str, Any]:
    """params.OperationResult: its status is its actions' (running wins, then pending ...)."""
    actions = [w.actions[a] for a in op.actions if a in w.actions]
    statuses = {a.status for a in actions}
    status = next((s for s in ("running", "pending", "failed", "cancelled", "completed") if s in statuses), "error")
    started = [a.started for a in actions if a.started]
    completed = [a.completed for a in actions if a.completed]
    return {
        "operation": f"operation-{op.id}",
        "summary": op.summary,
        "enqueued": _time(op.enqueued),
        "started": _time(min(started) if started else None),
        "completed": _time(max(completed) if completed and len(completed) == len(actions) else None),
        "status": status,
        "actions": [action_result(a) for a in actions],
        "fail": "",
    }


@facade_method("Action", 7, "Operations", mutating=False)
async def operations(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        tag = str((item or {}).get("tag") or "")
        op = w.operations.get(tag[len("operation-"):]) if tag.startswith("operation-") else None
        if op is None:
            raise errors.not_found(f"operation {tag} not found")
        return operation_result(w, op)

    return {**bulk(params.get("entities") or [], one), "truncated": False}


@facade_method("Action", 7, "ListOperations", mutating=False)
async def list_operations(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    names = set(params.get("actions") or [])
    apps = set(params.get("applications") or [])
    units = set(params.get("units") or [])
    statuses = set(params.get("status") or [])
    found = []
    for op_id in sorted(w.operations, key=int):
        op = w.operations[op_id]
        acts = [w.actions[a] for a in op.actions if a in w.actions]
        if names and not any(a.name in names for a in acts):
            continue
        if apps and not any(a.receiver.rpartition("/")[0] in apps for a in acts):
            continue
        if units and not any(a.receiver in units for a in acts):
            continue
        result = operation_result(w, op)
        if statuses and result["status"] not in statuses:
            continue
        found.append(result)
    offset = params.get("offset") if isinstance(params.get("offset"), int) else 0
    limit = params.get("limit") if isinstance(params.get("limit"), int) and params["limit"] > 0 else None
    page = found[offset:] if limit is None else found[offset:offset + limit]
    return {"results": page, "truncated": limit is not None and len(found) > offset + limit}


@facade_method("Action", 7, "ApplicationsCharmsActions", mutating=False)
async def applications_charms_actions(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        tag = str((item or {}).get("tag") or "")
        app = w.app_by_tag(tag)
        specs = {n: {"description": a.description, "params": a.schema()} for n, a in app.charm.actions.items()}
        return {"application-tag": tag, "actions": specs}

    def failed(item: Any, error: dict[str, Any]) -> dict[str, Any]:
        return {"application-tag": str((item or {}).get("tag") or ""), "error": error}

    return bulk(params.get("entities") or [], one, failed)


# --- running ---------------------------------------------------------------------------------


def _related(w: World, unit: Unit) -> dict[str, tuple[tuple[str, str], ...]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for _rel, ep, far in w.ends_of(unit.app.name):
        app = w.apps.get(far)
        for other in app.alive_units() if app is not None else []:
            if other.installed and other is not unit:
                out.setdefault(ep.name, []).append((other.name, other.public_address))
    return {k: tuple(v) for k, v in out.items()}


async def run_pending(w: World, unit: Unit) -> bool:
    """Run the unit's queued actions, oldest first. False if the unit died meanwhile."""
    timings = catalogue.timings(w.controller)
    while unit.life == "alive":
        queued = sorted((a for a in w.actions.values() if a.receiver == unit.name and a.status == "pending"),
                        key=lambda a: int(a.id))
        if not queued:
            return True
        action = queued[0]
        action.status, action.started = "running", time.time()
        w.publish_action(action)
        unit.agent.set("executing", f"running action {action.name}")
        w.publish_unit(unit)
        await asyncio.sleep(timings.delay(timings.action_s, unit.name, action.id))
        if unit.life != "alive":
            return False
        run = ActionRun(model=w.model, unit=unit.name, application=unit.app.name, charm=unit.app.charm.name,
                        action=action.name, params=dict(action.parameters), config=unit.app.option_values(),
                        address=unit.public_address, related=_related(w, unit))
        handler = catalogue.action_handler(unit.app.charm.name, action.name)
        try:
            outcome: Any = handler(run) if handler is not None else {}
            if inspect.isawaitable(outcome):
                outcome = await outcome
            action.results, action.status = dict(outcome or {}), "completed"
        except ActionFailed as exc:
            action.results, action.status, action.message = exc.results, "failed", exc.message
        except Exception as exc:  # a handler bug: the action fails saying so
            action.status, action.message = "failed", f"internal error in the botlab action handler: {exc!r}"
        action.completed = time.time()
        w.publish_action(action)
        w.event("action-finished", action=action.id, unit=unit.name, name=action.name, status=action.status)
    return False


# --- default handlers ----------------------------------------------------------------------------

CLUSTER_KEY = "kubernetes-cluster"


def cluster_secrets(model: ModelState) -> dict[str, str]:
    """The model's Kubernetes cluster CA (PEM, "ca"; its key, "ca_key") and admin token ("token"),
    made on first use."""
    found = model.ext.get(CLUSTER_KEY)
    if isinstance(found, dict):
        return found
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Juju {model.name} CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    # The CA's key stays with the model (in memory only): the lab's API server for this cluster
    # (botlab/lab/k8s/cluster.py) gets its certificate signed by it.
    found = {"ca": cert.public_bytes(serialization.Encoding.PEM).decode(), "token": secrets.token_urlsafe(24),
             "ca_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()}
    model.ext[CLUSTER_KEY] = found
    return found


def get_kubeconfig(run: ActionRun) -> dict[str, Any]:
    """kubernetes-control-plane's get-kubeconfig: `{"kubeconfig": "<kubeconfig as JSON>"}`."""
    lbs = [addr for _unit, addr in run.related.get("loadbalancer-external", ()) if addr]
    server = f"https://{lbs[0]}:443" if lbs else f"https://{run.address}:6443"
    if not lbs and not run.address:
        raise ActionFailed("Failed to retrieve kubeconfig: the unit has no address yet")
    found = cluster_secrets(run.model)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "juju-cluster", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(found["ca"].encode()).decode()}}],
        "contexts": [{"name": "juju-context", "context": {"cluster": "juju-cluster", "user": "admin"}}],
        "current-context": "juju-context",
        "users": [{"name": "admin", "user": {"token": found["token"]}}],
    }
    return {"kubeconfig": json.dumps(config)}


def _echo(run: ActionRun) -> dict[str, Any]:
    return {"echo": run.params.get("message", "")}


def _fail(run: ActionRun) -> dict[str, Any]:
    raise ActionFailed(str(run.params.get("message") or "failed as asked"))


catalogue.register_action_handler("kubernetes-control-plane", "get-kubeconfig", get_kubeconfig)
catalogue.register_action_handler("botlab-test", "echo", _echo)
catalogue.register_action_handler("botlab-test", "fail", _fail)
