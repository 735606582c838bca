"""Applications, as a Juju 3.6 controller serves them to libjuju 3.6.1.3 (Application facade
17/19/20): Deploy (the bundle path: charm added with Charms.AddCharm first) and
DeployFromRepository (the path `model.deploy("etcd")` takes on Application >= 19: the
controller resolves the charm itself), Get, SetConfigs, UnsetApplicationsConfig, CharmConfig,
GetConfig, Expose, Unexpose, SetConstraints, GetConstraints, DestroyApplication,
ApplicationsInfo, GetCharmURLOrigin; Client.FullStatus's `applications` and `relations`; and
what destroying a model does to them.

Importing this module registers the whole applications part: charms.py, resources.py,
units.py, relations.py, actions.py (facades.FACADE_MODULES names this module only).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from botlab.lab.juju import actions, catalogue, charms, errors, machines, relations, resources, units
from botlab.lab.juju.appstate import (
    App,
    World,
    application_status,
    base_api,
    existing_world,
    log_event,
    relation_status,
    world_of,
)
from botlab.lab.juju.catalogue import Charm, OptionError
from botlab.lab.juju.errors import JujuApiError, bulk, bulk_async
from botlab.lab.juju.facades import CallContext, destroy_hook, facade_method, status_contributor
from botlab.lab.juju.model import check_constraints
from botlab.lab.juju.state import ControllerState, ModelState

# Importing them registers their facade methods (this is the module FACADE_MODULES names).
PARTS = (actions, charms, relations, resources, units)

APP_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]*[a-z][a-z0-9]*)*$")
TRUST_DESCRIPTION = "Does this application have access to trusted credentials"


# --- config --------------------------------------------------------------------------------------


def parse_config(charm: Charm, raw: dict[str, Any]) -> tuple[dict[str, Any], bool | None]:
    """(charm settings, trust) from a client's {key: value}: values coerced to the options'
    types (None: back to the default), `trust` split off as application config."""
    settings: dict[str, Any] = {}
    trust: bool | None = None
    for key, value in raw.items():
        if key == "trust":
            trust = str(value).lower() in ("true", "1", "yes") if not isinstance(value, bool) else value
            continue
        option = charm.options.get(str(key))
        if option is None:
            raise errors.not_valid(f'unknown option "{key}"')
        try:
            settings[str(key)] = option.parse(value)
        except OptionError as exc:
            raise errors.not_valid(str(exc)) from None
    return settings, trust


def config_yaml(app_name: str, text: str) -> dict[str, Any]:
    """The settings of `app_name` in a deploy's config YAML ({app: {key: value}})."""
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.not_valid(f"invalid config YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise errors.not_valid("invalid config YAML: expected a map of application name to settings")
    settings = data.get(app_name)
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise errors.not_valid(f'invalid config YAML: settings for "{app_name}" are not a map')
    return settings


def apply_config(w: World, app: App, raw: dict[str, Any]) -> list[str]:
    """Set charm config; returns the keys that changed. Units run config-changed."""
    settings, trust = parse_config(app.charm, raw)
    changed: list[str] = []
    for key, value in settings.items():
        if value is None:
            if key in app.config:
                app.config.pop(key)
                changed.append(key)
        elif app.config.get(key, object()) != value:
            app.config[key] = value
            changed.append(key)
    if trust is not None and trust != app.trust:
        app.trust = trust
        changed.append("trust")
    if changed:
        for unit in app.units.values():
            unit.config_changed = True
            unit.poke()
        w.publish_app(app)
    return changed


def describe_config(app: App) -> dict[str, Any]:
    """The `config` of ApplicationGetResults: every option with its value and source."""
    out: dict[str, Any] = {}
    for name, option in sorted(app.charm.options.items()):
        entry: dict[str, Any] = {"description": option.description, "type": option.type}
        if option.default is not None:
            entry["default"] = option.default
        if name in app.config:
            entry.update(value=app.config[name], source="user")
        elif option.default is not None:
            entry.update(value=option.default, source="default")
        else:
            entry["source"] = "unset"
        out[name] = entry
    return out


def application_config(app: App) -> dict[str, Any]:
    return {"trust": {"default": False, "description": TRUST_DESCRIPTION, "source": "user" if app.trust else "default",
                      "type": "bool", "value": app.trust}}


# --- deploying -----------------------------------------------------------------------------------


def check_name(w: World, name: str) -> None:
    if not APP_NAME.match(name):
        raise errors.not_valid(f'invalid application name "{name}"')
    existing = w.apps.get(name)
    if existing is not None and existing.life != "dead":
        raise errors.already_exists(f'cannot add application "{name}": application already exists')


async def create_application(ctx: CallContext, w: World, *, name: str, charm: Charm, url: str, channel: str,
                             revision: int, base: str, config: dict[str, Any], constraints: Any,
                             num_units: int, placements: list[Any], resources_map: dict[str, str] | None,
                             bindings: dict[str, str] | None, trust: bool = False) -> App:
    """What Deploy and DeployFromRepository share: checks, the application, its peer
    relations, its resources and its first units."""
    if w.model.life != "alive":
        raise JujuApiError(f'cannot add application "{name}": model "{w.model.name}" is {w.model.life}')
    check_name(w, name)
    if charm.subordinate and num_units > 0:
        raise errors.not_valid("subordinate application must be deployed without units")
    if not charm.supports(base):
        raise errors.not_valid(f'charm "{charm.name}" does not support base "{base}" (it supports '
                               f"{', '.join(charm.bases)})")
    cons = check_constraints(constraints)
    settings, trust_set = parse_config(charm, config)
    for binding in bindings or {}:
        if binding and charm.endpoint(binding) is None:
            raise errors.not_valid(f'endpoint "{binding}" not found')
    app = App(name=name, charm=charm, charm_url=url, channel=channel, revision=revision, base=base,
              config={k: v for k, v in settings.items() if v is not None}, constraints=cons,
              trust=bool(trust_set) if trust_set is not None else trust,
              endpoint_bindings={"": "alpha", **{e.name: "alpha" for e in charm.endpoints}, **(bindings or {})})
    app.resources = resources.resources_for(w, charm, resources_map or {})
    w.apps[name] = app
    w.publish_app(app)
    relations.add_peer_relations(w, app)
    w.event("application-added", application=name, charm=charm.name, url=url, channel=channel, base=base)
    if num_units:
        await units.add_units(ctx, w, app, num_units, [p for p in placements if isinstance(p, dict)])
    return app


@facade_method("Application", (17, 19, 20), "Deploy", mutating=True)
async def deploy(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Deploy charms already added with Charms.AddCharm (libjuju's bundle path)."""
    w = world_of(ctx)

    async def one(item: Any) -> dict[str, Any]:
        item = item or {}
        name = str(item.get("application") or "")
        url = str(item.get("charm-url") or "")
        entry = charms.lookup_added(w, url)
        charm: Charm = entry["charm"]
        origin = item.get("charm-origin") or entry["origin"]
        base = charms.origin_base(origin.get("base")) or charms.origin_base(entry["origin"].get("base"))
        base = charms.choose_base(w, charm, base)
        raw = {**config_yaml(name, str(item.get("config-yaml") or "")), **(item.get("config") or {})}
        num_units = item.get("num-units") or 0
        if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 0:
            raise errors.bad_request("num-units: expected a non-negative integer")
        await create_application(
            ctx, w, name=name, charm=charm, url=url, channel=str(entry["channel"]), revision=entry["revision"],
            base=base, config=raw, constraints=item.get("constraints"), num_units=num_units,
            placements=list(item.get("placement") or []), resources_map=item.get("resources"),
            bindings=item.get("endpoint-bindings"),
        )
        log_event(ctx, "application-deployed", application=name, charm=charm.name, via="Deploy")
        return {}

    return await bulk_async(params.get("applications") or [], one)


@facade_method("Application", (19, 20), "DeployFromRepository", mutating=True)
async def deploy_from_repository(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Deploy a charm by name: the controller resolves channel, revision and base itself."""
    w = world_of(ctx)

    async def one(arg: Any) -> dict[str, Any]:
        arg = arg or {}
        name = str(arg.get("ApplicationName") or arg.get("CharmName") or "")
        charm = charms.charm_for(catalogue.charm_name(str(arg.get("CharmName") or "")))
        revision_raw = arg.get("revision")
        revision = revision_raw if isinstance(revision_raw, int) and not isinstance(revision_raw, bool) \
            and revision_raw >= 0 else None
        try:
            channel, revision = charm.resolve(str(arg.get("channel") or ""), revision)
        except KeyError as exc:
            raise errors.not_found(f"selecting releases: {exc.args[0]}") from None
        base = charms.choose_base(w, charm, catalogue.base_from_api(arg.get("base")))
        url = charm.url(revision, charms.DEFAULT_ARCH, base)
        w.charms[url] = {"charm": charm, "origin": charms.resolved_origin(charm, channel, revision, base),
                         "revision": revision, "channel": channel}
        w.publish_charm(url)
        raw = config_yaml(name, str(arg.get("ConfigYAML") or ""))
        num_units = arg.get("num-units")
        num_units = 0 if charm.subordinate else (1 if num_units is None else num_units)
        if isinstance(num_units, bool) or not isinstance(num_units, int) or num_units < 0:
            raise errors.bad_request("num-units: expected a non-negative integer")
        info = {"name": charm.name, "revision": revision, "channel": channel, "effective-channel": channel,
                "base": base_api(base), "architecture": charms.DEFAULT_ARCH}
        if not arg.get("DryRun"):
            await create_application(
                ctx, w, name=name, charm=charm, url=url, channel=channel, revision=revision, base=base,
                config=raw, constraints=arg.get("Cons"), num_units=num_units,
                placements=list(arg.get("Placement") or []), resources_map=arg.get("resources"),
                bindings=arg.get("endpoint-bindings"), trust=bool(arg.get("Trust")),
            )
            log_event(ctx, "application-deployed", application=name, charm=charm.name, via="DeployFromRepository")
        return {"Errors": None, "Info": info, "PendingResourceUploads": []}

    def failed(arg: Any, error: dict[str, Any]) -> dict[str, Any]:
        return {"Errors": [error], "Info": {}, "PendingResourceUploads": []}

    return await bulk_async(params.get("Args") or params.get("args") or [], one, failed, key="Results")


# --- reading and changing ------------------------------------------------------------------------


@facade_method("Application", (17, 19, 20), "Get", mutating=False)
async def get(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    app = w.app(str(params.get("application") or ""))
    return {
        "application": app.name,
        "charm": app.charm.name,
        "config": describe_config(app),
        "application-config": application_config(app),
        "constraints": dict(app.constraints),
        "base": base_api(app.base),
        "channel": app.channel,
        "endpoint-bindings": dict(app.endpoint_bindings),
    }


@facade_method("Application", (17, 19, 20), "SetConfigs", mutating=True)
async def set_configs(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        item = item or {}
        app = w.app(str(item.get("application") or ""))
        raw = {**config_yaml(app.name, str(item.get("config-yaml") or "")), **(item.get("config") or {})}
        changed = apply_config(w, app, raw)
        log_event(ctx, "application-config-set", application=app.name, keys=sorted(raw), changed=changed)
        return {}

    return bulk(params.get("Args") or params.get("args") or [], one)


@facade_method("Application", (17, 19, 20), "UnsetApplicationsConfig", mutating=True)
async def unset_config(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        app = w.app(str((item or {}).get("application") or ""))
        keys = [str(k) for k in (item or {}).get("options") or []]
        changed = apply_config(w, app, dict.fromkeys(keys))
        log_event(ctx, "application-config-unset", application=app.name, keys=keys, changed=changed)
        return {}

    return bulk(params.get("Args") or params.get("args") or [], one)


async def _config_results(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        item = item or {}
        app = w.app(str(item["application"])) if item.get("application") else w.app_by_tag(str(item.get("tag") or ""))
        return {"config": describe_config(app)}

    return bulk(params.get("entities") or params.get("args") or [], one,
                lambda _item, error: {"config": {}, "error": error}, key="Results")


@facade_method("Application", (17, 19, 20), "CharmConfig", mutating=False)
async def charm_config(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await _config_results(ctx, params)


@facade_method("Application", (17, 19, 20), "GetConfig", mutating=False)
async def get_config(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return await _config_results(ctx, params)


@facade_method("Application", (17, 19, 20), "Expose", mutating=True)
async def expose(ctx: CallContext, params: dict[str, Any]) -> None:
    w = world_of(ctx)
    app = w.app(str(params.get("application") or ""))
    wanted = params.get("exposed-endpoints") or {"": {}}
    if not isinstance(wanted, dict):
        raise errors.bad_request("exposed-endpoints: expected a map")
    for endpoint, details in wanted.items():
        if endpoint and app.charm.endpoint(endpoint) is None:
            raise errors.not_valid(f'endpoint "{endpoint}" not found')
        details = details or {}
        spaces = [str(s) for s in details.get("expose-to-spaces") or []]
        cidrs = [str(c) for c in details.get("expose-to-cidrs") or []]
        if not spaces and not cidrs:
            cidrs = ["0.0.0.0/0", "::/0"]
        app.exposed_endpoints[endpoint] = {"expose-to-spaces": spaces, "expose-to-cidrs": cidrs}
    app.exposed = True
    w.publish_app(app)
    log_event(ctx, "application-exposed", application=app.name, endpoints=sorted(app.exposed_endpoints))


@facade_method("Application", (17, 19, 20), "Unexpose", mutating=True)
async def unexpose(ctx: CallContext, params: dict[str, Any]) -> None:
    w = world_of(ctx)
    app = w.app(str(params.get("application") or ""))
    names = [str(n) for n in params.get("exposed-endpoints") or []]
    if names:
        for name in names:
            if name not in app.exposed_endpoints:
                raise errors.not_valid(f'endpoint "{name}" is not exposed')
            app.exposed_endpoints.pop(name)
    else:
        app.exposed_endpoints.clear()
    app.exposed = bool(app.exposed_endpoints)
    w.publish_app(app)
    log_event(ctx, "application-unexposed", application=app.name, endpoints=names)


@facade_method("Application", (17, 19, 20), "SetConstraints", mutating=True)
async def set_constraints(ctx: CallContext, params: dict[str, Any]) -> None:
    w = world_of(ctx)
    app = w.app(str(params.get("application") or ""))
    app.constraints = check_constraints(params.get("constraints"))
    w.publish_app(app)
    log_event(ctx, "application-constraints-set", application=app.name, constraints=dict(app.constraints))


@facade_method("Application", (17, 19, 20), "GetConstraints", mutating=False)
async def get_constraints(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    return bulk(params.get("entities") or [],
                lambda item: {"constraints": dict(w.app_by_tag(str((item or {}).get("tag") or "")).constraints)},
                lambda _item, error: {"constraints": {}, "error": error})


@facade_method("Application", (17, 19, 20), "ApplicationsInfo", mutating=False)
async def applications_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        app = w.app_by_tag(str((item or {}).get("tag") or ""))
        return {"result": {
            "tag": app.tag, "charm": app.charm.name, "base": base_api(app.base), "channel": app.channel,
            "constraints": dict(app.constraints), "principal": not app.subordinate, "exposed": app.exposed,
            "remote": False, "life": app.life, "endpoint-bindings": dict(app.endpoint_bindings),
            "exposed-endpoints": {k: dict(v) for k, v in app.exposed_endpoints.items()},
        }}

    return bulk(params.get("entities") or [], one)


@facade_method("Application", (17, 19, 20), "GetCharmURLOrigin", mutating=False)
async def get_charm_url_origin(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    app = w.app(str(params.get("application") or ""))
    return {"url": app.charm_url,
            "charm-origin": charms.resolved_origin(app.charm, app.channel, app.revision, app.base)}


# --- destroying ----------------------------------------------------------------------------------


def maybe_remove(w: World, app: App) -> None:
    """A dying application goes once its last unit has: its relations first."""
    if app.life != "dying" or app.units:
        return
    for rel in list(w.relations_of(app.name)):
        relations.remove_relation(w, rel)
    app.life = "dead"
    w.apps.pop(app.name, None)
    w.model.remove_entity("application", app.name)
    w.model.annotations.pop(app.tag, None)
    w.event("application-removed", application=app.name)


def destroy_application(w: World, app: App) -> None:
    """Make it dying; its units run their stop hooks and go, then it goes."""
    if app.life == "alive":
        app.life = "dying"
        w.publish_app(app)
        w.event("application-dying", application=app.name)
    for unit in list(app.units.values()):
        units.kill_unit(w, unit)
    maybe_remove(w, app)


@facade_method("Application", (17, 19, 20), "DestroyApplication", mutating=True)
async def destroy_application_call(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        item = item or {}
        app = w.app_by_tag(str(item.get("application-tag") or ""))
        names = [u.name for u in app.units.values() if u.life == "alive"]
        if not item.get("dry-run"):
            destroy_application(w, app)
            if item.get("force"):
                for unit in list(app.units.values()):
                    units.remove_unit(w, unit)
            log_event(ctx, "application-destroyed", application=app.name, force=bool(item.get("force")))
        info = {"destroyed-units": [{"tag": "unit-" + n.replace("/", "-")} for n in names],
                "destroyed-storage": [], "detached-storage": []}
        return {"info": info}

    return bulk(params.get("applications") or [], one)


@destroy_hook
async def remove_model_applications(controller: ControllerState, model: ModelState) -> None:
    """A model being destroyed takes its applications, units and relations with it."""
    found = existing_world(model)
    if found is None:
        return
    for app in list(found.apps.values()):
        if app.life == "alive":
            app.life = "dying"
        for unit in list(app.units.values()):
            unit.life = "dying"
            units.remove_unit(found, unit)
        maybe_remove(found, app)


machines.machine_removal_hook(units.remove_units_on_machine)


# --- FullStatus ----------------------------------------------------------------------------------


@status_contributor
def applications_status(ctx: CallContext, status: dict[str, Any]) -> None:
    """Client.FullStatus's `applications` and `relations`."""
    found = existing_world(ctx.model)
    if found is None:
        return
    for name, app in sorted(found.apps.items()):
        if app.life != "dead":
            status["applications"][name] = application_status(found, app)
    status["relations"].extend(relation_status(found, rel) for _id, rel in sorted(found.relations.items())
                               if rel.life == "alive")
