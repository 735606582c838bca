"""The Charms facade (v6, what libjuju 3.6.1.3 speaks): ResolveCharms, AddCharm, CharmInfo,
GetDownloadInfos, List, ListCharmResources, CheckCharmPlacement, IsMetered; and the series
that Juju 3.6's Bundle.GetChangesMapArgs keeps in change arguments.

A real controller asks Charmhub (the model's `charmhub-url`); this one reads the lab's charm
catalogue (catalogue.py), which the lab's Charmhub emulator (charmhub.py) serves too.

ResolveCharms answers `supported-series` next to `supported-bases`: Juju 3.6 still sends it
on Charms v6, and libjuju 3.6.1.3 reads it (`result.unknown_fields["supported-series"]`) on
every charmhub deploy; it is not in libjuju's generated type, so the reply check treats it
as the raw field libjuju reads (see `_check_resolve`).

Bundle changes: Juju 3.3 to 3.6 put `series` next to `base` in the arguments of addCharm,
deploy and addMachines changes ("for backwards compatibility", juju/juju#15725); only Juju
4.0 dropped them, bumping the Bundle facade (juju/juju#15916). libjuju 3.6.1.3's
AddMachineChange reads only `series`, so the emulated 3.6 controller adds it (`add_series`,
which model.py's GetChangesMapArgs applies), derived from the change's base as Juju does.
"""

from __future__ import annotations

from typing import Any

from botlab.lab.juju import catalogue, check, errors
from botlab.lab.juju.appstate import World, base_api, log_event, world_of
from botlab.lab.juju.catalogue import Charm
from botlab.lab.juju.controller import DEFAULT_BASE
from botlab.lab.juju.errors import bulk
from botlab.lab.juju.facades import CallContext, facade_method

DEFAULT_ARCH = "amd64"


def charm_for(name: str) -> Charm:
    found = catalogue.find_charm(name)
    if found is None:
        raise errors.not_found(f'charm or bundle "{name}" not found')
    return found


def origin_base(raw: Any) -> str:
    """A CharmOrigin's base as "ubuntu@22.04" ("" when it has none)."""
    return catalogue.base_from_api(raw if isinstance(raw, dict) else {})


def choose_base(w: World, charm: Charm, requested: str = "") -> str:
    """The base a charm deploys on: the requested one (checked), else the model's
    default-base if the charm supports it, else Juju's default LTS, else the charm's newest."""
    if requested:
        base = catalogue.normalize_base(requested)
        if not charm.supports(base):
            raise errors.not_valid(
                f'base "{base}" is not supported, supported bases are: {", ".join(charm.bases)}'
            )
        return base
    default = catalogue.normalize_base(str(w.model.own_config().get("default-base") or ""))
    for candidate in (default, DEFAULT_BASE):
        if candidate and charm.supports(candidate):
            return candidate
    return charm.bases[-1]


def resolved_origin(charm: Charm, channel: str, revision: int, base: str, arch: str = DEFAULT_ARCH) -> dict[str, Any]:
    """params.CharmOrigin of a resolved charmhub charm."""
    track, risk = catalogue.parse_channel(channel)
    return {
        "source": "charm-hub",
        "type": "charm",
        "id": charm.id,
        "hash": "",
        "revision": revision,
        "risk": risk,
        "track": track,
        "architecture": arch,
        "base": base_api(base),
        "instance-key": "",
    }


def _revision(raw: Any) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else None


def _url_revision(url: str) -> int | None:
    """The revision at the end of a charm URL ("ch:amd64/jammy/etcd-760" -> 760), if any."""
    tail = url.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _channel_of(origin: dict[str, Any]) -> str:
    track = str(origin.get("track") or "latest")
    risk = str(origin.get("risk") or "stable")
    return f"{track}/{risk}"


@facade_method("Charms", 6, "ResolveCharms", mutating=False)
async def resolve_charms(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        reference = str((item or {}).get("reference") or "")
        origin = (item or {}).get("charm-origin") or {}
        charm = charm_for(catalogue.charm_name(reference))
        try:
            channel, revision = charm.resolve(_channel_of(origin), _revision(origin.get("revision")))
        except KeyError as exc:
            raise errors.not_found(f"selecting releases: {exc.args[0]}") from None
        base = origin_base(origin.get("base"))
        base = base if base and charm.supports(base) else choose_base(w, charm)
        arch = str(origin.get("architecture") or DEFAULT_ARCH)
        return {
            "url": charm.url(revision, arch, base),
            "charm-origin": resolved_origin(charm, channel, revision, base, arch),
            "supported-bases": [base_api(b) for b in charm.bases],
            "supported-series": [catalogue.base_series(b) for b in charm.bases if catalogue.base_series(b)],
        }

    def failed(item: Any, error: dict[str, Any]) -> dict[str, Any]:
        return {"url": "", "charm-origin": {"source": "charm-hub", "type": ""}, "error": error, "supported-series": []}

    return bulk(params.get("resolve") or [], one, failed, key="Results")


def _check_resolve(reply: Any) -> list[str]:
    """ResolveCharmWithChannelResults, with the `supported-series` libjuju reads raw."""
    if not isinstance(reply, dict):
        return ["reply: expected a JSON object"]
    problems: list[str] = []
    stripped: dict[str, Any] = {**reply, "Results": []}
    for i, result in enumerate(reply.get("Results") or []):
        if not isinstance(result, dict):
            problems.append(f"reply.Results[{i}]: expected an object")
            continue
        series = result.get("supported-series")
        if not isinstance(series, list) or not all(isinstance(s, str) for s in series):
            problems.append(f"reply.Results[{i}].supported-series: libjuju reads it: expected a list of strings")
        stripped["Results"].append({k: v for k, v in result.items() if k != "supported-series"})
    cls = check.reply_type("Charms", 6, "ResolveCharms")
    if isinstance(cls, type):
        check._check(cls, stripped, "reply", problems)
    return problems


check.RAW_REPLIES[("Charms", "ResolveCharms")] = _check_resolve


@facade_method("Charms", 6, "AddCharm", mutating=True)
async def add_charm(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Make a charmhub charm available to the model (Juju downloads it in the background)."""
    w = world_of(ctx)
    url = str(params.get("url") or "")
    origin = params.get("charm-origin") or {}
    if str(origin.get("source") or "charm-hub") != "charm-hub":
        raise errors.not_valid(f'unknown charm origin source "{origin.get("source")}" for "{url}"')
    charm = charm_for(catalogue.charm_name(url))
    revision = _revision(origin.get("revision"))
    if revision is None:
        revision = _url_revision(url)
    try:
        channel, revision = charm.resolve(_channel_of(origin), revision)
    except KeyError as exc:
        raise errors.not_found(str(exc.args[0])) from None
    base = origin_base(origin.get("base")) or choose_base(w, charm)
    arch = str(origin.get("architecture") or DEFAULT_ARCH)
    resolved = resolved_origin(charm, channel, revision, base, arch)
    w.charms[url] = {"charm": charm, "origin": resolved, "revision": revision, "channel": channel}
    w.publish_charm(url)
    log_event(ctx, "charm-added", url=url, charm=charm.name, revision=revision, channel=channel)
    return {"charm-origin": resolved}


def lookup_added(w: World, url: str) -> dict[str, Any]:
    """An added charm by URL (also without the series libjuju may put in it)."""
    found = w.charms.get(url)
    if found is not None:
        return found
    name = catalogue.charm_name(url)
    revision = _url_revision(url)
    for known, entry in w.charms.items():
        if catalogue.charm_name(known) == name and (revision is None or revision == entry["revision"]):
            return entry
    raise errors.not_found(f'charm "{url}" not found')


def charm_info(charm: Charm, url: str, revision: int) -> dict[str, Any]:
    """params.Charm."""
    meta = {
        "name": charm.name,
        "summary": charm.summary,
        "description": charm.description,
        "subordinate": charm.subordinate,
        "provides": {n: e.to_api() for n, e in charm.role("provider").items()},
        "requires": {n: e.to_api() for n, e in charm.role("requirer").items()},
        "peers": {n: e.to_api() for n, e in charm.role("peer").items()},
        "extra-bindings": {},
        "categories": [],
        "tags": [],
        "storage": {},
        "devices": {},
        "payload-classes": {},
        "resources": {n: r.meta_api() for n, r in charm.resources.items()},
        "terms": [],
        "min-juju-version": "0.0.0",
        "containers": {},
        "charm-user": "",
    }
    return {
        "revision": revision,
        "url": url,
        "config": {n: o.to_api() for n, o in charm.options.items()},
        "meta": meta,
        "actions": {"specs": {n: {"description": a.description, "params": a.schema()}
                              for n, a in charm.actions.items()}},
        "manifest": {"bases": [{**base_api(b), "architectures": [DEFAULT_ARCH]} for b in charm.bases]},
    }


@facade_method("Charms", 6, "CharmInfo", mutating=False)
async def charm_info_call(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    url = str(params.get("url") or "")
    entry = lookup_added(w, url)
    return charm_info(entry["charm"], url, entry["revision"])


@facade_method("Charms", 6, "List", mutating=False)
async def list_charms(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)
    names = [str(n) for n in params.get("names") or []]
    urls = sorted(u for u in w.charms if not names or catalogue.charm_name(u) in names)
    return {"charm-urls": urls}


@facade_method("Charms", 6, "GetDownloadInfos", mutating=False)
async def get_download_infos(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    """Charmhub bundles: the catalogue has none, so every request is "not found"."""
    for item in params.get("entities") or []:
        name = catalogue.charm_name(str((item or {}).get("charm-url") or ""))
        raise errors.not_found(f'bundle "{name}" not found (the lab\'s charm catalogue has charms only)')
    return {"results": []}


@facade_method("Charms", 6, "ListCharmResources", mutating=False)
async def list_charm_resources(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    w = world_of(ctx)

    def one(item: Any) -> dict[str, Any]:
        entry = lookup_added(w, str((item or {}).get("url") or ""))
        charm: Charm = entry["charm"]
        return {"charm-resources": [r.to_api() for r in charm.resources.values()]}

    return bulk(params.get("entities") or [], one, lambda _item, error: {"charm-resources": [], "error": error})


@facade_method("Charms", 6, "CheckCharmPlacement", mutating=False)
async def check_charm_placement(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"results": [{} for _ in params.get("placements") or []]}


@facade_method("Charms", 6, "IsMetered", mutating=False)
async def is_metered(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"metered": False}


# --- Bundle.GetChangesMapArgs: Juju 3.6 keeps `series` next to `base` --------------------------


def add_series(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Juju 3.3-3.6's change args: addCharm, deploy and addMachines carry the series of their
    base too (mustBaseToSeries), when the base has one."""
    for change in changes:
        if change.get("method") not in ("addCharm", "deploy", "addMachines"):
            continue
        args = change.get("args")
        if isinstance(args, dict) and args.get("base") and not args.get("series"):
            series = catalogue.base_series(str(args["base"]))
            if series:
                args["series"] = series
    return changes
