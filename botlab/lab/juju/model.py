"""Model-level facades: Client (FullStatus, WatchAll), AllWatcher, ModelConfig, KeyManager,
Annotations, and Bundle.GetChangesMapArgs (computed by bundlechanges.py when present).

What libjuju's `Model` uses: connect (ModelConfig.ModelGet, Client.WatchAll, AllWatcher.Next),
get_config/set_config, get_constraints/set_constraints, add_ssh_key/get_ssh_keys/
remove_ssh_key, get_status, and annotations.
"""

from __future__ import annotations

import importlib
import inspect
import time
from typing import Any

from botlab.lab.juju import errors, modelconfig
from botlab.lab.juju.controller import entities
from botlab.lab.juju.errors import JujuApiError, bulk, error_result
from botlab.lab.juju.facades import REGISTRY, CallContext, facade_method
from botlab.lab.juju.sshkeys import JUJU_KEY_COMMENTS, InvalidKey, fingerprint, split_authorized_keys
from botlab.lab.juju.state import FeedWatcher, ModelState, iso_time

# --- Client and AllWatcher ---------------------------------------------------------------------


def empty_status(model: ModelState) -> dict[str, Any]:
    """params.FullStatus of a model with nothing in it; contributors add machines etc."""
    return {
        "model": {
            "name": model.name,
            "type": model.type,
            "cloud-tag": model.cloud.tag,
            "region": model.region,
            "version": model.agent_version,
            "available-version": "",
            "model-status": {
                "status": model.status,
                "info": model.status_info,
                "data": {},
                "since": iso_time(model.status_since),
                "kind": "",
                "version": "",
                "life": "",
            },
            "meter-status": {"color": "", "message": ""},
            "sla": model.sla_level,
        },
        "machines": {},
        "applications": {},
        "remote-applications": {},
        "offers": {},
        "relations": [],
        "branches": {},
        "storage": [],
        "filesystems": [],
        "volumes": [],
        "controller-timestamp": iso_time(time.time()),
    }


@facade_method("Client", (6, 7, 8), "FullStatus")
async def full_status(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    status = empty_status(ctx.model)
    for contributor in REGISTRY.status_contributors:
        outcome = contributor(ctx, status)
        if inspect.isawaitable(outcome):
            await outcome
    return status


@facade_method("Client", (6, 7, 8), "WatchAll")
async def watch_all(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    watcher = FeedWatcher(ctx.model.feed)
    return {"watcher-id": ctx.conn.add_watcher(watcher)}


@facade_method("AllWatcher", 3, "Next")
async def all_watcher_next(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    watcher = ctx.conn.watcher(ctx.id)
    if not isinstance(watcher, FeedWatcher):
        raise errors.not_found("unknown watcher id")
    return {"deltas": await watcher.next()}


@facade_method("AllWatcher", 3, "Stop")
async def all_watcher_stop(ctx: CallContext, params: dict[str, Any]) -> None:
    ctx.conn.watcher(ctx.id)
    ctx.conn.remove_watcher(ctx.id)


# --- ModelConfig -------------------------------------------------------------------------------


@facade_method("ModelConfig", 3, "ModelGet")
async def model_get(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"config": ctx.model.config_values()}


@facade_method("ModelConfig", 3, "ModelSet")
async def model_set(ctx: CallContext, params: dict[str, Any]) -> None:
    model = ctx.model
    changes = params.get("config") or {}
    if not isinstance(changes, dict):
        raise errors.bad_request("config: expected a map")
    model.config.update(modelconfig.validate_update(model.own_config(), changes))
    for key in (*modelconfig.IMMUTABLE, "agent-version"):
        model.config.pop(key, None)
    model.publish()


@facade_method("ModelConfig", 3, "ModelUnset")
async def model_unset(ctx: CallContext, params: dict[str, Any]) -> None:
    keys = [str(k) for k in params.get("keys") or []]
    modelconfig.check_unset(keys)
    for key in keys:
        ctx.model.config.pop(key, None)
    ctx.model.publish()


@facade_method("ModelConfig", 3, "SLALevel")
async def sla_level(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"result": ctx.model.sla_level}


# constraints.Value's fields and JSON types.
CONSTRAINTS: dict[str, type | tuple[type, ...]] = {
    "arch": str,
    "container": str,
    "cores": int,
    "cpu-power": int,
    "mem": int,
    "root-disk": int,
    "root-disk-source": str,
    "tags": list,
    "instance-role": str,
    "instance-type": str,
    "spaces": list,
    "virt-type": str,
    "zones": list,
    "allocate-public-ip": bool,
    "image-id": str,
}
ARCHES = ("amd64", "arm64", "ppc64el", "riscv64", "s390x")
CONTAINERS = ("none", "lxd", "kvm")


def check_constraints(raw: Any) -> dict[str, Any]:
    """A constraints.Value as the client sent it, type-checked as Go's decoder would (and
    stricter: an unknown key is an error here, where Juju would silently drop it)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise errors.bad_request("json: cannot unmarshal constraints: expected an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        kind = CONSTRAINTS.get(key)
        if kind is None:
            raise errors.not_valid(f"unknown constraint {key!r} (known: {', '.join(CONSTRAINTS)})")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise errors.bad_request(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field Value.{key} of type uint64"
            )
        if kind is not int and (not isinstance(value, kind) or (kind is str and isinstance(value, bool))):
            raise errors.bad_request(f"json: cannot unmarshal {type(value).__name__} into Go struct field Value.{key}")
        if kind is list and not all(isinstance(v, str) for v in value):
            raise errors.bad_request(f"json: cannot unmarshal Value.{key}: expected a list of strings")
        if key == "arch" and value and value not in ARCHES:
            raise errors.not_valid(f"invalid constraint value: arch={value}\nvalid values are: [{' '.join(ARCHES)}]")
        if key == "container" and value and value not in CONTAINERS:
            raise errors.not_valid(f'invalid container type "{value}"')
        out[key] = value
    return out


@facade_method("ModelConfig", 3, "GetModelConstraints")
async def get_model_constraints(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"constraints": dict(ctx.model.constraints)}


@facade_method("ModelConfig", 3, "SetModelConstraints")
async def set_model_constraints(ctx: CallContext, params: dict[str, Any]) -> None:
    if params.get("application"):
        raise errors.not_valid("model constraints cannot be set for an application; use Application.SetConstraints")
    ctx.model.constraints = check_constraints(params.get("constraints"))
    ctx.model.publish()


# --- KeyManager (the model's authorized-keys) --------------------------------------------------


def _keys(model: ModelState) -> list[str]:
    return split_authorized_keys(model.authorized_keys)


def _write_keys(model: ModelState, keys: list[str]) -> None:
    model.config["authorized-keys"] = "\n".join(keys)
    model.publish()


@facade_method("KeyManager", 1, "ListKeys")
async def list_keys(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    wanted = params.get("entities") or {}
    items = wanted.get("entities") if isinstance(wanted, dict) else wanted
    full = bool(params.get("mode"))
    shown: list[str] = []
    for key in _keys(ctx.model):
        try:
            fp, comment = fingerprint(key)
        except InvalidKey:
            shown.append(f"Invalid key: {key}")
            continue
        if comment in JUJU_KEY_COMMENTS:
            continue
        shown.append(key if full else (f"{fp} ({comment})" if comment else fp))
    return {"results": [{"result": list(shown)} for _ in items or []]}


@facade_method("KeyManager", 1, "AddKeys")
async def add_keys(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    new = [str(k) for k in params.get("ssh-keys") or []]
    if not new:
        return {}
    model = ctx.model
    keys = _keys(model)
    known = set()
    for key in keys:
        try:
            known.add(fingerprint(key)[0])
        except InvalidKey:
            continue
    results: list[dict[str, Any]] = []
    for key in new:
        try:
            fp, comment = fingerprint(key)
        except InvalidKey:
            results.append({"error": error_result(JujuApiError(f"invalid ssh key: {key}"))})
            continue
        if comment in JUJU_KEY_COMMENTS:
            results.append({"error": error_result(JujuApiError(f"may not add key with comment {comment}: {key}"))})
        elif fp in known:
            results.append({"error": error_result(JujuApiError(f"duplicate ssh key: {key}"))})
        else:
            known.add(fp)
            keys.append(key.strip())
            results.append({})
    _write_keys(model, keys)
    return {"results": results}


@facade_method("KeyManager", 1, "DeleteKeys")
async def delete_keys(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    ids = [str(k) for k in params.get("ssh-keys") or []]
    if not ids:
        return {}
    model = ctx.model
    keys = _keys(model)
    by_fp: dict[str, str] = {}
    by_comment: dict[str, str] = {}
    invalid: set[str] = set()
    for key in keys:
        try:
            fp, comment = fingerprint(key)
        except InvalidKey:
            invalid.add(key)
            continue
        by_fp[fp] = key
        if comment:
            by_comment[comment] = key
    doomed: set[str] = set()
    results: list[dict[str, Any]] = []
    for key_id in ids:
        if key_id in by_fp:
            doomed.add(by_fp[key_id])
            results.append({})
        elif key_id in by_comment:
            if key_id in JUJU_KEY_COMMENTS:
                results.append({"error": error_result(JujuApiError(f"may not delete internal key: {key_id}"))})
            else:
                doomed.add(by_comment[key_id])
                results.append({})
        elif key_id in invalid:
            doomed.add(key_id)
            results.append({})
        else:
            results.append({"error": error_result(JujuApiError(f"key not found: {key_id}"))})
    remaining = [k for k in keys if k not in doomed]
    if not remaining:
        raise JujuApiError("cannot delete all keys")
    _write_keys(model, remaining)
    return {"results": results}


# --- Annotations -------------------------------------------------------------------------------


def _annotated(model: ModelState, tag: str, doing: str) -> None:
    """Juju's annotations facade answers a missing entity with ErrPerm, annotated
    `while <doing> annotations to "<tag>"` (apiserver/facades/client/annotations)."""
    if not model.has_tag(tag):
        raise JujuApiError(f'while {doing} annotations to "{tag}": permission denied', errors.CODE_UNAUTHORIZED)


@facade_method("Annotations", 2, "Get")
async def annotations_get(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    model = ctx.model

    def one(tag: str) -> dict[str, Any]:
        _annotated(model, tag, "getting")
        return {"entity": tag, "annotations": dict(model.annotations.get(tag, {}))}

    return bulk(entities(params), one, lambda tag, error: {"entity": tag, "annotations": {}, "error": {"error": error}})


@facade_method("Annotations", 2, "Set")
async def annotations_set(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    model = ctx.model

    def one(item: Any) -> dict[str, Any]:
        tag = str((item or {}).get("entity") or "")
        _annotated(model, tag, "setting")
        current = model.annotations.setdefault(tag, {})
        for key, value in ((item or {}).get("annotations") or {}).items():
            if "." in str(key):
                raise errors.not_valid(f'invalid key "{key}"')
            if value == "":
                current.pop(str(key), None)
            else:
                current[str(key)] = str(value)
        model.put_entity("annotation", {"tag": tag, "annotations": dict(current)})
        return {}

    return bulk(params.get("annotations") or [], one)


# --- Bundle ------------------------------------------------------------------------------------


@facade_method("Bundle", 6, "GetChangesMapArgs", mutating=False)
async def get_changes_map_args(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """The change list the controller computes for a bundle (botlab.lab.juju.bundlechanges),
    with the `series` Juju 3.6 keeps next to `base` (charms.add_series)."""
    try:
        module = importlib.import_module("botlab.lab.juju.bundlechanges")
    except ImportError as exc:
        raise errors.method_not_implemented("Bundle", ctx.version, "GetChangesMapArgs") from exc
    try:
        changes, problems = module.get_changes_map_args(
            str(params.get("yaml") or ""), str(params.get("bundleURL") or "")
        )
    except module.BundleChangesError as exc:  # Juju answers these as an API error
        raise JujuApiError(str(exc)) from None
    importlib.import_module("botlab.lab.juju.charms").add_series(changes)
    return {"changes": changes, "errors": list(problems)}
