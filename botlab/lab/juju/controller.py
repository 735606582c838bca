"""Controller-level facades: Cloud, Controller, ModelManager, UserManager.

What libjuju's `Controller` uses: connect (Cloud.Clouds, ModelManager.ListModelSummaries,
Controller.ControllerAPIInfoForModels), add_model (Cloud.UpdateCredentialsCheckModels,
ModelManager.CreateModel), list_models/model_uuids, get_model, get_model_info
(ModelManager.ModelInfo), destroy_model(s), get_cloud/cloud/clouds, info(), get_user/get_users
(UserManager.UserInfo), plus Controller.AllModels (libjuju's fallback to find a model not in
models.yaml).
"""

from __future__ import annotations

from typing import Any

from botlab.lab.juju import errors
from botlab.lab.juju.errors import JujuApiError, bulk
from botlab.lab.juju.facades import CallContext, facade_method
from botlab.lab.juju.state import (
    AUTH_ATTRIBUTES,
    ControllerState,
    Credential,
    ModelState,
    iso_time,
    parse_credential_tag,
)

BASE_SERIES = {"ubuntu@20.04": "focal", "ubuntu@22.04": "jammy", "ubuntu@24.04": "noble"}
DEFAULT_BASE = "ubuntu@24.04"  # Juju 3.6's default for new machines


def untag(tag: Any, kind: str) -> str:
    """The id in `<kind>-<id>`; not valid otherwise."""
    if not isinstance(tag, str) or not tag.startswith(f"{kind}-") or len(tag) == len(kind) + 1:
        raise errors.not_valid(f'"{tag}" is not a valid {kind} tag')
    return tag[len(kind) + 1 :]


def entities(params: dict[str, Any]) -> list[str]:
    return [str((e or {}).get("tag", "")) for e in (params.get("entities") or [])]


def default_base(model: ModelState) -> str:
    return str(model.config.get("default-base") or DEFAULT_BASE)


# --- model views -------------------------------------------------------------------------------


def machine_info(machine: dict[str, Any]) -> dict[str, Any]:
    """params.ModelMachineInfo from a machine's AllWatcher data."""
    hardware = machine.get("hardware-characteristics") or {}
    status = machine.get("agent-status") or {}
    out: dict[str, Any] = {
        "id": str(machine.get("id", "")),
        "instance-id": str(machine.get("instance-id", "")),
        "display-name": str(machine.get("hostname", "")),
        "status": str(status.get("current", "")),
        "message": str(status.get("message", "")),
        "has-vote": bool(machine.get("has-vote", False)),
        "wants-vote": bool(machine.get("wants-vote", False)),
        "ha-primary": False,
    }
    if hardware:
        # Deltas carry Juju's HardwareCharacteristics ("cpu-cores"); ModelInfo's
        # MachineHardware calls the same value "cores".
        hardware = {("cores" if k == "cpu-cores" else k): v for k, v in hardware.items()}
        out["hardware"] = {
            k: hardware[k]
            for k in ("arch", "mem", "root-disk", "cores", "cpu-power", "tags", "availability-zone", "virt-type")
            if k in hardware
        }
    return out


def counts(model: ModelState) -> dict[str, int]:
    machines = [m for m in model.entities("machine").values() if "/" not in str(m.get("id", ""))]
    cores = sum(int((m.get("hardware-characteristics") or {}).get("cpu-cores") or 0) for m in machines)
    return {"machines": len(machines), "cores": cores, "units": len(model.entities("unit"))}


def model_user(controller: ControllerState, model: ModelState) -> dict[str, Any]:
    owner = controller.user(model.owner)
    out: dict[str, Any] = {
        "model-tag": model.tag,
        "user": model.owner,
        "display-name": owner.display_name if owner else "",
        "access": "admin",
    }
    if model.last_connection is not None:
        out["last-connection"] = iso_time(model.last_connection)
    return out


def model_info(controller: ControllerState, model: ModelState) -> dict[str, Any]:
    """params.ModelInfo, every field a 3.6 controller fills for an IAAS model."""
    base = default_base(model)
    return {
        "name": model.name,
        "type": model.type,
        "uuid": model.uuid,
        "controller-uuid": controller.uuid,
        "is-controller": model.is_controller,
        "provider-type": model.provider_type,
        "default-base": base,
        "default-series": BASE_SERIES.get(base, ""),
        "cloud-tag": model.cloud.tag,
        "cloud-region": model.region,
        "cloud-credential-tag": model.credential.tag if model.credential else "",
        "cloud-credential-validity": not (model.credential and model.credential.invalid),
        "owner-tag": model.owner_tag,
        "life": model.life,
        "status": model.status_view(),
        "users": [model_user(controller, model)],
        "machines": [machine_info(m) for _id, m in sorted(model.entities("machine").items())],
        "secret-backends": [
            {
                "result": {"name": "internal", "backend-type": "controller", "config": {}},
                "id": controller.uuid,
                "num-secrets": 0,
                "status": "active",
                "message": "",
            }
        ],
        "sla": {"level": model.sla_level, "owner": model.owner},
        "agent-version": model.agent_version,
        "supported-features": [
            {"name": "juju", "description": "the version of Juju used by the model", "version": controller.version}
        ],
    }


def model_summary(controller: ControllerState, model: ModelState) -> dict[str, Any]:
    """params.ModelSummary (counts only for what the model has, as Juju does)."""
    base = default_base(model)
    out: dict[str, Any] = {
        "name": model.name,
        "uuid": model.uuid,
        "type": model.type,
        "controller-uuid": controller.uuid,
        "is-controller": model.is_controller,
        "provider-type": model.provider_type,
        "default-series": BASE_SERIES.get(base, ""),
        "cloud-tag": model.cloud.tag,
        "cloud-region": model.region,
        "cloud-credential-tag": model.credential.tag if model.credential else "",
        "owner-tag": model.owner_tag,
        "life": model.life,
        "status": model.status_view(),
        "user-access": "admin",
        "counts": [{"entity": k, "count": v} for k, v in counts(model).items() if v],
        "sla": {"level": model.sla_level, "owner": model.owner},
        "agent-version": model.agent_version,
    }
    if model.last_connection is not None:
        out["last-connection"] = iso_time(model.last_connection)
    return out


def model_status(model: ModelState) -> dict[str, Any]:
    """params.ModelStatus."""
    machines = model.entities("machine")
    return {
        "model-tag": model.tag,
        "life": model.life,
        "type": model.type,
        "hosted-machine-count": len([m for m in machines if "/" not in m]),
        "application-count": len(model.entities("application")),
        "unit-count": len(model.entities("unit")),
        "owner-tag": model.owner_tag,
        "applications": [{"name": name} for name in sorted(model.entities("application"))],
        "machines": [machine_info(m) for _id, m in sorted(machines.items())],
        "volumes": [],
        "filesystems": [],
    }


def user_models(controller: ControllerState) -> dict[str, Any]:
    """params.UserModelList."""
    out = []
    for model in controller.iter_models():
        item: dict[str, Any] = {
            "model": {"name": model.name, "uuid": model.uuid, "type": model.type, "owner-tag": model.owner_tag}
        }
        if model.last_connection is not None:
            item["last-connection"] = iso_time(model.last_connection)
        out.append(item)
    return {"user-models": out}


# --- Cloud -------------------------------------------------------------------------------------


@facade_method("Cloud", 7, "Clouds")
async def clouds(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"clouds": {c.tag: c.to_api() for c in ctx.controller.clouds.values()}}


@facade_method("Cloud", 7, "Cloud")
async def cloud(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return bulk(entities(params), lambda tag: {"cloud": ctx.controller.cloud(untag(tag, "cloud")).to_api()})


@facade_method("Cloud", 7, "UserCredentials")
async def user_credentials(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(item: Any) -> dict[str, Any]:
        user = untag(item.get("user-tag"), "user")
        cloud_name = untag(item.get("cloud-tag"), "cloud")
        ctx.controller.cloud(cloud_name)
        tags = sorted(c.tag for k, c in ctx.controller.credentials.items() if k[0] == cloud_name and k[1] == user)
        return {"result": tags}

    return bulk(params.get("user-clouds") or [], one)


@facade_method("Cloud", 7, "Credential")
async def credential(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(tag: str) -> dict[str, Any]:
        cloud_name, owner, name = parse_credential_tag(tag)
        return {"result": ctx.controller.credential(cloud_name, owner, name).to_api()}

    return bulk(entities(params), one)


def _checked_credential(controller: ControllerState, tag: str, raw: dict[str, Any]) -> Credential:
    cloud_name, owner, name = parse_credential_tag(tag)
    the_cloud = controller.cloud(cloud_name)
    auth_type = str(raw.get("auth-type") or "")
    if auth_type not in the_cloud.auth_types:
        supported = ", ".join(f'"{a}"' for a in the_cloud.auth_types)
        raise errors.not_valid(f'supported auth-types [{supported}], "{auth_type}" not supported')
    attrs = {str(k): str(v) for k, v in (raw.get("attrs") or {}).items()}
    schema = dict(AUTH_ATTRIBUTES.get(auth_type, ()))
    for key in attrs:
        if key not in schema:
            raise errors.not_valid(f'unknown key "{key}" (value "{attrs[key]}")')
    for key in schema:
        if not attrs.get(key):
            raise errors.not_valid(f"{key}: expected string, got nothing")
    return Credential(cloud_name, owner, name, auth_type, attrs)


@facade_method("Cloud", 7, "UpdateCredentialsCheckModels")
async def update_credentials(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    controller = ctx.controller

    def one(item: Any) -> dict[str, Any]:
        tag = str(item.get("tag") or "")
        new = _checked_credential(controller, tag, item.get("credential") or {})
        models = [m for m in controller.models.values() if m.credential is not None and m.credential.tag == tag]
        if models and not params.get("force"):
            _validate_against_cloud(controller, new)
        controller.add_credential(new)
        for m in models:
            m.credential = new
        result: dict[str, Any] = {"tag": tag}
        if models:
            result["models"] = [{"uuid": m.uuid, "name": m.name} for m in models]
        return result

    def failed(item: Any, error: dict[str, Any]) -> dict[str, Any]:
        return {"tag": str(item.get("tag") or ""), "error": error}

    return bulk(params.get("credentials") or [], one, failed)


def _validate_against_cloud(controller: ControllerState, cred: Credential) -> None:
    """What Juju's credential validation learns from the cloud: for the lab's MAAS, whether
    the key is one MAAS accepts."""
    if cred.auth_type != "oauth1":
        return
    valid = {controller.maas_api_key, *controller.spec.maas.extra_api_keys}
    if cred.attrs.get("maas-oauth") not in valid:
        raise JujuApiError(
            f'validating credential "{cred.id}" for cloud "{cred.cloud}": '
            "ServerError: 401 Unauthorized (Authorization Error: Invalid API key.)"
        )


# --- Controller --------------------------------------------------------------------------------


@facade_method("Controller", (11, 12), "AllModels")
async def all_models(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return user_models(ctx.controller)


@facade_method("Controller", (11, 12), "ControllerAPIInfoForModels")
async def api_info_for_models(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(tag: str) -> dict[str, Any]:
        ctx.controller.model(untag(tag, "model"))
        return {"addresses": list(ctx.controller.api_addresses), "cacert": ctx.controller.ca_cert}

    return bulk(entities(params), one)


@facade_method("Controller", (11, 12), "ControllerConfig")
async def controller_config(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    c = ctx.controller
    port = int(c.api_addresses[0].rpartition(":")[2]) if c.api_addresses else 0
    return {
        "config": {
            "controller-uuid": c.uuid,
            "controller-name": c.name,
            "api-port": port,
            "ca-cert": c.ca_cert,
            "state-port": 37017,
            "audit-log-capture-args": False,
            "audit-log-max-backups": 10,
            "audit-log-max-size": "300M",
            "auditing-enabled": True,
            "max-debug-log-duration": "24h0m0s",
            "model-logs-size": "20M",
            "set-numa-control-policy": False,
        }
    }


@facade_method("Controller", (11, 12), "ControllerVersion")
async def controller_version(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"version": ctx.controller.version, "git-commit": "botlab-lab-emulator"}


@facade_method("Controller", (11, 12), "IdentityProviderURL")
async def identity_provider_url(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"result": ""}


@facade_method("Controller", 11, "ModelConfig")
async def controller_model_config(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"config": ctx.controller.controller_model().config_values()}


@facade_method("Controller", (11, 12), "ModelStatus")
async def controller_model_status(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return _model_statuses(ctx, params)


@facade_method("Controller", (11, 12), "GetControllerAccess")
async def get_controller_access(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(tag: str) -> dict[str, Any]:
        user = ctx.controller.user(untag(tag, "user"))
        if user is None:
            raise errors.not_found(f'user "{tag[len("user-"):]}" not found')
        return {"result": {"user-tag": user.tag, "access": user.access}}

    return bulk(entities(params), one)


def _model_statuses(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return bulk(entities(params), lambda tag: model_status(ctx.controller.model(untag(tag, "model"))),
                lambda tag, error: {"model-tag": tag, "error": error}, key="models")


# --- ModelManager ------------------------------------------------------------------------------


@facade_method("ModelManager", (9, 10), "CreateModel")
async def create_model(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    controller = ctx.controller
    name = str(params.get("name") or "")
    owner = untag(params.get("owner-tag") or f"user-{ctx.user}", "user")
    if controller.user(owner) is None:
        raise errors.not_found(f'failed to create new model: user "{owner}" not found')
    cloud_name = untag(params["cloud-tag"], "cloud") if params.get("cloud-tag") else controller.default_cloud
    the_cloud = controller.cloud(cloud_name)
    cred: Credential | None = None
    if params.get("credential"):
        cred_cloud, cred_owner, cred_name = parse_credential_tag(str(params["credential"]))
        if cred_cloud != cloud_name:
            raise errors.not_valid(
                f'credential "{params["credential"]}" is for cloud "{cred_cloud}", not "{cloud_name}"'
            )
        cred = controller.credential(cred_cloud, cred_owner, cred_name)
    elif "empty" not in the_cloud.auth_types:
        cred = next(
            (c for (cl, ow, _n), c in sorted(controller.credentials.items()) if cl == cloud_name and ow == owner), None
        )
        if cred is None:
            raise errors.not_valid(f'no credential specified for cloud "{cloud_name}"')
    if cred is not None:
        _validate_against_cloud(controller, cred)
    config = dict(params.get("config") or {})
    keys = str(config.get("authorized-keys") or "")
    config["authorized-keys"] = "\n".join(k for k in (controller.system_key, keys) if k)
    model = controller.create_model(
        name, owner, cloud=cloud_name, region=params.get("region") or None, credential=cred, config=config
    )
    return model_info(controller, model)


@facade_method("ModelManager", (9, 10), "ListModelSummaries")
async def list_model_summaries(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    user = untag(params.get("user-tag") or f"user-{ctx.user}", "user")
    if user != ctx.user and ctx.controller.user(ctx.user) is None:
        raise errors.permission_denied()
    return {"results": [{"result": model_summary(ctx.controller, m)} for m in ctx.controller.iter_models()]}


@facade_method("ModelManager", (9, 10), "ListModels")
async def list_models(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    untag(params.get("tag") or f"user-{ctx.user}", "user")
    return user_models(ctx.controller)


@facade_method("ModelManager", (9, 10), "ModelInfo")
async def get_model_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(tag: str) -> dict[str, Any]:
        return {"result": model_info(ctx.controller, ctx.controller.model(untag(tag, "model")))}

    return bulk(entities(params), one)


@facade_method("ModelManager", (9, 10), "ModelStatus")
async def model_manager_model_status(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return _model_statuses(ctx, params)


@facade_method("ModelManager", (9, 10), "DestroyModels")
async def destroy_models(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    def one(item: Any) -> dict[str, Any]:
        model = ctx.controller.model(untag((item or {}).get("model-tag"), "model"))
        ctx.controller.destroy_model(model)
        return {}

    return bulk(params.get("models") or [], one)


# --- UserManager -------------------------------------------------------------------------------


@facade_method("UserManager", 3, "UserInfo")
async def user_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    controller = ctx.controller
    tags = entities(params)
    if not tags:
        results: list[dict[str, Any]] = []
        for user in sorted(controller.users.values(), key=lambda u: u.name):
            if user.disabled and not params.get("include-disabled"):
                continue
            results.append({"result": user.to_api()})
        return {"results": results}

    def one(tag: str) -> dict[str, Any]:
        found = controller.user(untag(tag, "user"))
        if found is None:
            # What Juju answers for a user it does not know; libjuju's get_user relies on it.
            raise errors.permission_denied()
        return {"result": found.to_api()}

    return bulk(tags, one)
