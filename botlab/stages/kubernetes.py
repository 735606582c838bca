"""Kubernetes: Charmed Kubernetes from the inventory's bundle, placed on exactly the intended
hosts, deployed, settled and reconciled. All Juju access goes through drivers.juju.

botlab executes its own diff of the rendered bundle against the model (kubernetes_diff), not
libjuju's bundle handler: that one re-adds every machine on each deploy, and Juju's change
list (GetChangesMapArgs) plans for an empty model only. Each inventory host is one Juju
machine constrained by its pin tag; which machine is which host is read back from the
model (the pin tag in its constraints, or its instance being the host's MAAS machine) and
recorded, so nothing is added twice, even after kill -9 in the middle of a run, and a renamed
host keeps its machine. A host that left the inventory is forgotten only with the operator's
consent while its machine is in the model; nothing is ever removed from the model.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botlab import names
from botlab.bundle import builtin_template, render_bundle
from botlab.drivers.maas import RELEASE_PENDING
from botlab.errors import InputError, Problem, StageError
from botlab.identity import IDENTITY as MAAS_IDENTITY
from botlab.identity import REMOVED, resolve
from botlab.outputs import ClusterHost, EnlistOutputs, KubernetesOutputs
from botlab.pipeline import Change, Check, Inputs, Plan, Rendered, Stage
from botlab.stages.kubernetes_diff import (
    AddMachine,
    AddUnit,
    AuthorizeKey,
    BundleProblem,
    CreateModel,
    Current,
    DeployApp,
    Diff,
    Expose,
    ForgetMachine,
    Relate,
    RemoveUnit,
    RenameMachine,
    ResolveUnit,
    SetConfig,
    Settle,
    Wanted,
    diff,
    has_key,
    host_lookup,
    inventory_edits,
    key_name,
    match_machines,
    option_text,
    read_bundle,
    settle,
)

if TYPE_CHECKING:
    from botlab.context import StageContext
    from botlab.drivers.juju import JujuDriver, JujuModel, ModelStatus
    from botlab.inventory import Inventory

IDENTITY = "juju-machine"  # identities: hostname -> Juju machine id in the lab's model
REMOVED_MACHINE = "juju-removed"  # identities: hostname -> machine id of a host forgotten with --remove
SETTLE_S = 1.0  # everything settled for this long (no hook started meanwhile) ends the wait
REFRESH_S = 5.0  # the live display refreshes elapsed times at least this often
ACTION_TIMEOUT_S = 300.0
SHOWN_PENDING = 12  # pending items named in a timeout message


def pin_tags(ctx: StageContext) -> dict[str, str]:
    """Each inventory host's pin tag: as enlist recorded it, else (before enlist has run) the
    one it will put on the machine."""
    enlisted = ctx.outputs(EnlistOutputs)
    recorded = enlisted.machines if enlisted else {}
    return {m.hostname: recorded[m.hostname].pin_tag if m.hostname in recorded
            else names.pin_tag(ctx.inventory.name, m.hostname) for m in ctx.inventory.machines}


def wanted_state(inv: Inventory, pins: Mapping[str, str]) -> Wanted:
    """The rendered bundle as botlab deploys it; a bundle botlab cannot deploy is bad input."""
    text = render_bundle(inv, pins)
    try:
        return read_bundle(text, pins)
    except BundleProblem as exc:
        key = "kubernetes.bundle" if inv.kubernetes.bundle else "machines"
        raise InputError([Problem(inv.where(key), key, f"rendered bundle: {exc}")]) from None


def operator_key(inv: Inventory) -> str:
    """The operator's public key line (ssh.public_key; the inventory made the path absolute)."""
    path = inv.ssh.public_key
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise InputError([Problem(inv.where("ssh.public_key"), "ssh.public_key",
                                  f"cannot read {path}: {exc.strerror or exc}")]) from None
    if not lines or len(lines[0].split()) < 2:
        raise InputError([Problem(inv.where("ssh.public_key"), "ssh.public_key",
                                  f"{path} holds no OpenSSH public key line")])
    return lines[0]


def _settle_state(inv: Inventory, wanted: Wanted, status: ModelStatus, ids: Mapping[str, str]) -> Settle:
    """`settle` with the inventory's container runtime and GPU hosts."""
    return settle(wanted, status, ids, docker=inv.kubernetes.container_runtime == "docker",
                  gpu_hosts={m.hostname for m in inv.with_role("gpu")})


async def _all(work: Iterable[Awaitable[Any]]) -> list[Any]:
    """Run concurrently, let every call finish, then raise the first failure (so no call is
    left running unseen when the stage stops)."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return list(results)


def template_file(inv: Inventory) -> Path:
    return inv.kubernetes.bundle or builtin_template()


@dataclass
class KubernetesPlan(Plan):
    """The plan plus what it read (the rendered bundle, the model and its state), so apply
    renders and reads nothing again."""

    wanted: Wanted | None = field(default=None, repr=False)
    key: str = ""
    model: JujuModel | None = field(default=None, repr=False)
    current: Current = field(default_factory=Current, repr=False)
    diff: Diff = field(default_factory=Diff, repr=False)


class KubernetesStage(Stage[KubernetesPlan]):
    name = "kubernetes"
    systems = ("Juju",)
    # What the model is built from: hosts and roles, Juju and the bundle's settings, the
    # bundle's template and the operator's key; not the wait's timeout.
    inputs = Inputs(
        keys=("lab", "machines[].hostname", "machines[].roles", "juju", "kubernetes", "-kubernetes.timeout"),
        files=(("ssh.public_key", lambda inv: inv.ssh.public_key), ("bundle template", template_file)),
        upstream=(EnlistOutputs,),
    )
    outputs = KubernetesOutputs

    def __init__(self, settle_s: float = SETTLE_S) -> None:
        self.settle_s = settle_s
        self.renders = 0  # bundles rendered by this stage object (for the benchmark)
        self._wanted: dict[tuple[int, tuple[tuple[str, str], ...]], Wanted] = {}

    def _wanted_state(self, ctx: StageContext) -> Wanted:
        """The bundle, rendered once per command (precheck, plan and verify share it)."""
        pins = pin_tags(ctx)
        memo = (id(ctx.inventory), tuple(sorted(pins.items())))
        if memo not in self._wanted:
            self.renders += 1
            self._wanted[memo] = wanted_state(ctx.inventory, pins)
        return self._wanted[memo]

    def render(self, inventory: Inventory) -> Rendered:
        return Rendered("bundle", render_bundle(inventory))

    async def precheck(self, ctx: StageContext) -> None:
        inv = ctx.inventory
        self._wanted_state(ctx)
        operator_key(inv)
        if inv.juju.password is not None:
            inv.secret("juju.password", ctx.environ)

    # -- reading the world -----------------------------------------------------------------

    async def _read(self, ctx: StageContext, juju: JujuDriver, wanted: Wanted) -> tuple[JujuModel | None, Current]:
        """The lab's model (None while there is none) and what the diff reads of it."""
        name = ctx.inventory.juju.model
        uuid = (await juju.model_uuids()).get(name)
        if uuid is None:
            return None, Current()
        model = await juju.open_model(name, uuid)
        status = await model.status()
        keys = await model.ssh_keys()
        with_options = [a.name for a in wanted.applications.values() if a.options and a.name in status.applications]
        configs = await _all(model.application_config(name) for name in with_options)
        return model, Current(status, dict(zip(with_options, configs, strict=True)), keys)

    async def _system_ids(self, ctx: StageContext, current: Current) -> dict[str, str]:
        """Each inventory host's MAAS system id, which a Juju machine's instance id is: from
        enlist's record; from MAAS only when a host is missing there while the model holds a
        machine on a MAAS machine botlab cannot place (a rename that enlist has not applied)."""
        inv = ctx.inventory
        enlisted = ctx.outputs(EnlistOutputs)
        hosts = set(inv.hostnames)
        sids = {h: m.system_id for h, m in (enlisted.machines if enlisted else {}).items() if h in hosts}
        if current.status is None:
            return sids
        missing = hosts - set(sids)
        known = set(sids.values())
        strangers = [j for j in current.status.machines.values()
                     if not j.parent and j.instance_id and j.instance_id not in known]
        if missing and strangers:
            maas = await ctx.drivers.maas()
            found = resolve(inv, await maas.machines(), ctx.identities(MAAS_IDENTITY), ctx.identities(REMOVED))
            sids.update({h: m.system_id for h, m in found.found.items() if m is not None and h in missing})
        return sids

    async def plan(self, ctx: StageContext) -> KubernetesPlan:
        inv = ctx.inventory
        wanted = self._wanted_state(ctx)
        key = operator_key(inv)
        juju = await ctx.drivers.juju()
        model, current = await self._read(ctx, juju, wanted)
        recorded = ctx.identities(IDENTITY)
        d = diff(wanted, current, key, recorded, await self._system_ids(ctx, current))
        changes = d.changes(inv.juju.model, inv.juju.controller, key)
        edits = inventory_edits(inv.name, wanted, current.status, recorded, d.machine_ids, ctx.consent,
                                ctx.identities(REMOVED_MACHINE))
        first_ok = next((i for i, c in enumerate(changes) if c.is_noop), len(changes))
        changes[first_ok:first_ok] = edits
        return KubernetesPlan(changes, observed(current, d),
                              wanted=wanted, key=key, model=model, current=current, diff=d)

    # -- apply ---------------------------------------------------------------------------------

    async def apply(self, ctx: StageContext, plan: KubernetesPlan) -> KubernetesOutputs:
        inv = ctx.inventory
        name = inv.juju.model
        assert plan.wanted is not None
        juju = await ctx.drivers.juju()
        todo = plan.todo
        conflicts = [c for c in todo if c.action == "conflict"]
        if conflicts:
            raise StageError(
                "; ".join(f"{c.target}: {c.reason}" for c in conflicts), system="Juju",
                operation="reconcile the bundle", where=f"model {name}",
            )
        model = plan.model
        created = any(isinstance(c, CreateModel) for c in todo)
        authorized = ""
        if created:
            ctx.set_progress("model", "creating", name)
            authorized = juju.client_key() or plan.key
            model = await juju.create_model(name, inv.juju.cloud, authorized)
            ctx.set_progress("model", "created", f"{name} ({model.uuid})")
            ctx.note(f"created model {name} on controller {inv.juju.controller}")
        assert model is not None
        for change in todo:
            if isinstance(change, AuthorizeKey) and not has_key([authorized], change.key):
                await model.add_ssh_key(change.key)
                ctx.note(f"authorized the operator's key {key_name(change.key)} in model {name}")

        recorded = ctx.identities(IDENTITY)
        ids = dict(plan.diff.machine_ids)
        for host, mid in ids.items():
            if recorded.get(host) != mid:
                ctx.set_identity(IDENTITY, host, mid)
        for host in set(ids) & set(ctx.identities(REMOVED_MACHINE)):  # removed with --remove, and back
            ctx.store.forget_identity(REMOVED_MACHINE, host)
        self._edit_records(ctx, todo, recorded)
        ids.update(await self._add_machines(ctx, model, [c.machine for c in todo
                                                          if isinstance(c, AddMachine) and c.machine]))
        await _all(self._deploy(ctx, model, c) for c in todo if isinstance(c, DeployApp))
        orphans = [c.unit for c in todo if isinstance(c, RemoveUnit)]
        if orphans:  # before their application's units are added again, so it never has two
            await model.remove_units(orphans)
            for unit in orphans:
                ctx.note(f"{unit}: removed (on no machine after a failed placement); the bundle's unit is"
                         " added again, placed")
        placements: dict[str, list[str]] = {}
        for c in todo:
            if isinstance(c, AddUnit) and c.placement is not None:
                p = c.placement
                placements.setdefault(c.application, []).append(
                    f"{p.container}:{ids[p.hostname]}" if p.container else ids[p.hostname])
        work: list[Awaitable[Any]] = [self._add_units(ctx, model, app, d) for app, d in placements.items()]
        relations = [c.relation for c in todo if isinstance(c, Relate) and c.relation]
        work += [model.relate(str(r.first), str(r.second)) for r in relations]
        exposed = [c.application for c in todo if isinstance(c, Expose)]
        exposed += [c.app.name for c in todo if isinstance(c, DeployApp) and c.app and c.app.expose]
        work += [model.expose(name) for name in exposed]
        configs = [c for c in todo if isinstance(c, SetConfig)]
        work += [model.set_config(c.application, c.options) for c in configs]
        await _all(work)
        for rel in relations:
            ctx.event(f"related {rel}")
        for c in configs:
            ctx.note(f"{c.application}: set " + ", ".join(f"{k}={v}" for k, v in sorted(c.options.items())))

        errored = [c.unit for c in todo if isinstance(c, ResolveUnit)]
        for unit in errored:
            await model.resolve(unit)
            ctx.note(f"{unit}: retrying its failed hook (juju resolved)")
        await self._wait(ctx, model, plan.wanted, ids, set(errored))
        built = bool(created or any(isinstance(c, (AddMachine, DeployApp, AddUnit, Relate, RemoveUnit)) for c in todo))
        status = await model.status()
        kubeconfig = await self._kubeconfig(ctx, model, plan.wanted, status, refetch=built)
        return await self._outputs(ctx, model, plan.wanted, ids, status, kubeconfig)

    @staticmethod
    def _edit_records(ctx: StageContext, todo: list[Change], recorded: Mapping[str, str]) -> None:
        """Inventory edits: a renamed host's machine is recorded under its new name only; a
        host that left (with consent, while its machine stays) is forgotten."""
        for c in todo:
            if isinstance(c, RenameMachine):
                if recorded.get(c.previous) == c.machine:
                    ctx.store.forget_identity(IDENTITY, c.previous)
                ctx.set_progress(c.previous, "renamed", f"now {c.hostname} (machine {c.machine})")
                ctx.note(f"{c.hostname}: {c.reason}")
            elif isinstance(c, ForgetMachine):
                ctx.store.forget_identity(IDENTITY, c.hostname)
                if c.in_model:
                    ctx.set_identity(REMOVED_MACHINE, c.hostname, c.machine)
                ctx.set_progress(c.hostname, "removed", c.reason)
                ctx.note(f"{c.hostname}: {c.reason}")

    async def _add_machines(self, ctx: StageContext, model: JujuModel, machines: list[Any]) -> dict[str, str]:
        """One machine per host still missing, constrained by its pin tag; each id recorded as
        soon as Juju answers (a crash before that is reconciled through the pin tag)."""
        from botlab.drivers.juju import MachineRequest

        if not machines:
            return {}
        for m in machines:
            ctx.set_progress(m.hostname, "adding", f"constraints {m.constraints}")
        added = await model.add_machines([MachineRequest(m.constraints, m.base) for m in machines])
        ids: dict[str, str] = {}
        failed: list[str] = []
        for m, result in zip(machines, added, strict=True):
            if result.error or not result.machine:
                failed.append(f"{m.hostname}: {result.error or 'no machine id in the answer'}")
                ctx.set_progress(m.hostname, "error", result.error)
                continue
            ids[m.hostname] = result.machine
            ctx.set_identity(IDENTITY, m.hostname, result.machine)
            ctx.set_progress(m.hostname, "added", f"machine {result.machine}", {"machine": result.machine})
        ctx.event(f"added {len(ids)} machine(s): " + ", ".join(f"{h}={i}" for h, i in sorted(ids.items())))
        annotations = {f"machine-{ids[m.hostname]}": m.annotations for m in machines
                       if m.hostname in ids and m.annotations}
        await model.annotate(annotations)
        if failed:
            raise StageError("; ".join(failed), system="Juju", operation="add machines",
                             hint="check that MAAS has these machines Ready and tagged (`botlab up enlist`),"
                             " then run `botlab up`: machines already added are kept")
        return ids

    async def _deploy(self, ctx: StageContext, model: JujuModel, change: DeployApp) -> None:
        app = change.app
        assert app is not None
        options = {k: option_text(v) for k, v in app.options.items()}
        await model.deploy(app.name, app.charm, channel=app.channel, base=app.base or None, config=options,
                           constraints=app.constraints)
        ctx.event(f"deployed {app.name} (charm {app.charm}{' from ' + app.channel if app.channel else ''})")

    async def _add_units(self, ctx: StageContext, model: JujuModel, app: str, directives: list[str]) -> None:
        units = await model.add_units(app, directives)
        ctx.event(f"{app}: added " + ", ".join(f"{u} to {p}" for u, p in zip(units, directives, strict=False)))

    # -- waiting ---------------------------------------------------------------------------------

    async def _wait(self, ctx: StageContext, model: JujuModel, wanted: Wanted, ids: dict[str, str],
                    resolved: set[str]) -> None:
        """Until machines have started and every unit is active/idle, with a live per-unit
        display. A failed hook or a machine MAAS could not deploy stops the wait at once.

        The view is the model's AllWatcher (the driver reopens a lost connection and its
        watcher); when the watcher has said nothing for a while, the model is read again with
        FullStatus, so a watcher that went quiet cannot freeze the wait. A controller that
        cannot be reached for the driver's bound fails the wait, naming since when."""
        inv = ctx.inventory
        timeout = inv.kubernetes.timeout
        began = time.monotonic()
        deadline = began + timeout
        # Re-read with FullStatus after this long without a delta: at most every 30 s, at least
        # four times per timeout.
        quiet_limit = min(30.0, max(REFRESH_S, timeout / 4))
        shown: dict[str, tuple[str, str]] = {}
        settled_since: float | None = None
        stale = set(resolved)  # their error is from before `juju resolved` until seen otherwise
        full: ModelStatus | None = None  # a FullStatus read newer than the watcher's last delta
        last_news = began
        while True:
            live = full if full is not None else model.live()
            state = _settle_state(inv, wanted, live, ids)
            for key, row in state.rows.items():
                if shown.get(key) != row:
                    ctx.show(key, *row)
                    shown[key] = row
            for unit in list(stale):
                found = live.units.get(unit)
                if found is not None and found.workload != "error":
                    stale.discard(unit)
            errors = {k: v for k, v in state.errors.items() if k not in stale}
            if errors:
                self._record_hosts(ctx, state.rows, ids)
                raise self._failure(inv, errors, state.machine_errors)
            now = time.monotonic()
            if state.done and not stale:
                settled_since = settled_since or now
                if now - settled_since >= self.settle_s:
                    break
            else:
                settled_since = None
            if now >= deadline:
                self._record_hosts(ctx, state.rows, ids)
                pending = state.pending + [state.errors[k] for k in sorted(stale) if k in state.errors]
                shown_pending = "; ".join(pending[:SHOWN_PENDING])
                more = f" and {len(pending) - SHOWN_PENDING} more" if len(pending) > SHOWN_PENDING else ""
                raise StageError(
                    f"timed out after {timeout}s waiting for: {shown_pending}{more}", system="Juju",
                    operation="wait for units", where=f"model {inv.juju.model}",
                    hint=f"see `juju status -m {inv.juju.controller}:{inv.juju.model}`; fix the cause or raise"
                    " kubernetes.timeout, then run `botlab up`: it resumes and adds nothing twice",
                )
            wait = min(deadline - now, self.settle_s if settled_since else REFRESH_S)
            try:
                if await model.changed(wait):
                    full, last_news = None, time.monotonic()
                elif time.monotonic() - last_news >= quiet_limit:
                    full, last_news = await model.status(), time.monotonic()
            except StageError as exc:  # the controller could not be reached for the driver's bound
                self._record_hosts(ctx, state.rows, ids)
                waiting = "; ".join(state.pending[:3]) + (
                    f" and {len(state.pending) - 3} more" if len(state.pending) > 3 else "")
                raise StageError(f"{exc.message}{'; still waiting for: ' + waiting if state.pending else ''}",
                                 system=exc.system or "Juju", operation="wait for units",
                                 where=f"model {inv.juju.model}", hint=exc.hint) from None
        self._record_hosts(ctx, state.rows, ids)
        ctx.event(f"settled in {time.monotonic() - began:.1f}s: {len(live.units)} unit(s) on"
                  f" {len(ids)} machine(s)")

    @staticmethod
    def _record_hosts(ctx: StageContext, rows: dict[str, tuple[str, str]], ids: dict[str, str]) -> None:
        for host, mid in sorted(ids.items()):
            state, detail = rows.get(host, ("unknown", ""))
            ctx.set_progress(host, state, detail, {"machine": mid})

    @staticmethod
    def _failure(inv: Inventory, errors: dict[str, str], machine_errors: set[str]) -> StageError:
        where = f"{inv.juju.controller}:{inv.juju.model}"
        hints = []
        if set(errors) - machine_errors:
            hints.append(f"fix the cause (`juju debug-log -m {where}` shows the hook's output), then run"
                         " `botlab up`: it retries the failed hooks (juju resolved) and waits again")
        if machine_errors:
            hints.append("fix the machine in MAAS and remove it from the model (`juju remove-machine N"
                         " --force`), then run `botlab up`: it adds the host again")
        return StageError("; ".join(errors[k] for k in sorted(errors)), system="Juju", operation="wait for units",
                          where=f"model {inv.juju.model}", hint="; ".join(hints))

    # -- kubeconfig --------------------------------------------------------------------------------

    async def _kubeconfig(self, ctx: StageContext, model: JujuModel, wanted: Wanted, status: ModelStatus, *,
                          refetch: bool) -> Path | None:
        """The control plane's get-kubeconfig action's result, written to the state folder
        (0600); fetched again only when the file is missing, the model is another one, or
        this run added to the model."""
        app = wanted.control_plane()
        if app is None:
            return None
        path = ctx.inventory.state_dir / names.KUBECONFIG_FILE
        prior = ctx.progress().get(names.KUBECONFIG_FILE)
        if not refetch and path.exists() and prior is not None and prior.data.get("model_uuid") == model.uuid:
            return path
        units = sorted((u for u in status.units.values() if u.application == app.name),
                       key=lambda u: (not u.leader, u.name))
        if not units:
            raise StageError(f"no unit of {app.name} to ask for the kubeconfig", system="Juju",
                             operation="get-kubeconfig", where=f"model {ctx.inventory.juju.model}")
        unit = units[0].name
        result = await model.run_action(unit, "get-kubeconfig", ACTION_TIMEOUT_S)
        text = result.results.get("kubeconfig") if result.status == "completed" else None
        if not text:
            raise StageError(f"the action {result.status or 'ended'} without a kubeconfig"
                             f"{': ' + result.message if result.message else ''}", system="Juju",
                             operation="get-kubeconfig", where=unit,
                             hint="check the control plane unit (`juju show-task`), then run `botlab up`")
        write_private(path, str(text))
        ctx.set_progress(names.KUBECONFIG_FILE, "fetched", f"from {unit} into {path}",
                         {"model_uuid": model.uuid, "unit": unit})
        ctx.event(f"kubeconfig from {unit} written to {path}")
        return path

    async def _outputs(self, ctx: StageContext, model: JujuModel, wanted: Wanted, ids: dict[str, str],
                       status: ModelStatus, kubeconfig: Path | None) -> KubernetesOutputs:
        """Per host its machine, address, SSH host keys (as Juju reports them) and units."""
        host_of = host_lookup(ids)
        units: dict[str, list[str]] = {host: [] for host in ids}
        for unit in status.units.values():
            host = host_of(unit.machine)
            if host and unit.application in wanted.applications and not unit.principal:
                units[host].append(unit.name)
        keys = await model.host_keys(sorted(ids.values()))
        hosts = {}
        for host, mid in sorted(ids.items()):
            machine = status.machines.get(mid)
            hosts[host] = ClusterHost(machine=mid, address=machine.address if machine else "",
                                      host_keys=tuple(keys.get(mid, ())), units=tuple(sorted(units[host])))
        inv = ctx.inventory
        return KubernetesOutputs(controller=inv.juju.controller, model=inv.juju.model, model_uuid=model.uuid,
                                 kubeconfig=str(kubeconfig) if kubeconfig else None,
                                 applications=tuple(sorted(wanted.applications)), hosts=hosts)

    # -- verify and teardown --------------------------------------------------------------

    async def verify(self, ctx: StageContext) -> list[Check]:
        inv = ctx.inventory
        wanted = self._wanted_state(ctx)
        juju = await ctx.drivers.juju()
        _model, current = await self._read(ctx, juju, wanted)
        d = diff(wanted, current, operator_key(inv), ctx.identities(IDENTITY), await self._system_ids(ctx, current))
        model = f"model {inv.juju.model}"
        if current.status is None:
            return [Check(model, False, f"not on controller {inv.juju.controller}")]
        checks = [Check(model, True, current.status.uuid)]
        missing = [c for c in d.changes(inv.juju.model, inv.juju.controller, "")
                   if not c.is_noop and not isinstance(c, ResolveUnit)]
        if missing:
            shown = "; ".join(f"{c.action} {c.target}" for c in missing[:5])
            checks.append(Check("bundle", False, shown + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")))
        else:
            checks.append(Check("bundle", True, "everything in place"))
        state = _settle_state(inv, wanted, current.status, d.machine_ids)
        problems = [state.errors[k] for k in sorted(state.errors)] + state.pending
        checks.append(Check("units", not problems, "; ".join(problems[:5]) if problems
                            else f"{len(current.status.units)} unit(s) settled"))
        if wanted.control_plane() is not None:
            path = inv.state_dir / names.KUBECONFIG_FILE
            checks.append(Check("kubeconfig", path.exists(), str(path) if path.exists() else f"{path} missing"))
        return checks

    async def destroy(self, ctx: StageContext) -> str | None:
        """Destroy the model; Juju releases its machines and MAAS takes them back to Ready
        (waited for, so a rebuild finds them Ready). Found in Juju by its name, so a lost state
        folder still finds it; without a record, a model not named after the lab is destroyed
        only when one of its machines carries this lab's tags."""
        inv = ctx.inventory
        juju = await ctx.drivers.juju()
        name = inv.juju.model
        hosts: list[str] = []
        found: str | None = None
        uuid = (await juju.model_uuids()).get(name)
        if uuid is not None:
            model = await juju.open_model(name, uuid)
            status = await model.status()
            top = [j for j in status.machines.values() if not j.parent]
            tagged = any(names.is_lab_tag(inv.name, t) for j in top for t in j.tags)
            if ctx.store.stage(self.name) is None and name != names.default_model(inv.name) and not tagged:
                ctx.note(f"model {name} exists, but botlab has no record of it and none of its machines carries"
                         f" a tag of lab {inv.name}: left alone (destroy it with `juju destroy-model {name}`)")
            else:
                host_of = host_lookup(match_machines(self._wanted_state(ctx), status, ctx.identities(IDENTITY)))
                hosts = sorted({j.hostname or host_of(j.id) for j in top} - {""})
                found = f"found model {name} with {len(top)} machine(s) and {len(status.units)} unit(s): destroyed"
                ctx.note(f"found model {name} ({len(top)} machine(s), {len(status.units)} unit(s)); destroying it")
                await juju.destroy_model(name, timeout=inv.kubernetes.timeout)
                ctx.event(f"model {name} destroyed")
        for kind in (IDENTITY, REMOVED_MACHINE):
            for host in ctx.identities(kind):
                ctx.store.forget_identity(kind, host)
        (inv.state_dir / names.KUBECONFIG_FILE).unlink(missing_ok=True)
        if hosts:
            await self._wait_released(ctx, hosts)
            found = f"{found}; {len(hosts)} machine(s) back in MAAS"
        return found

    async def _wait_released(self, ctx: StageContext, hosts: list[str]) -> None:
        """Until MAAS no longer holds the model's machines. Each read is bounded by the MAAS
        driver (a deadline per request, retries while MAAS cannot be reached); if MAAS stays
        unreachable the wait fails naming the machines still held when last seen."""
        inv = ctx.inventory
        maas = await ctx.drivers.maas()
        deadline = time.monotonic() + inv.kubernetes.timeout
        delay = 0.1
        busy: list[str] = []
        while True:
            try:
                machines = await maas.machines(hosts)
            except StageError as exc:
                held = f"; last seen held: {', '.join(busy)}" if busy else ""
                raise StageError(f"{exc.message}{held}", system=exc.system or "MAAS", operation="wait for release",
                                 where=exc.where, hint="once MAAS answers, run `botlab down` again: it waits for"
                                 " the machines still held") from None
            held_now = [m for m in machines if m.status in RELEASE_PENDING]
            busy = [f"{m.hostname} ({m.status_name})" for m in held_now]
            for m in held_now:
                ctx.show(m.hostname, m.status_name, "releasing")
            if not held_now:
                ctx.event(f"{len(hosts)} machine(s) released in MAAS")
                return
            if time.monotonic() > deadline:
                raise StageError(
                    "still in use after the model was destroyed: " + ", ".join(busy),
                    system="MAAS", operation="wait for release",
                    hint="release them in MAAS, then run `botlab down` again")
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 1.5)


def observed(current: Current, d: Diff) -> dict[str, Any]:
    """What the plan read of the model, as a saved plan compares it: which model, which host
    is which machine, the applications (charm, channel, exposed, principal units), relations,
    options and keys; not the units' passing states, which change while the model settles."""
    status = current.status
    if status is None:
        return {"model": None}
    return {
        "model": status.uuid,
        "machines": dict(sorted(d.machine_ids.items())),
        "applications": {name: {"charm": a.charm, "channel": a.channel, "exposed": a.exposed,
                                "units": sorted(u.name for u in status.units.values()
                                                if u.application == name and not u.principal)}
                         for name, a in sorted(status.applications.items())},
        "relations": sorted(" ".join(sorted(f"{a}:{e}" for a, e in r.endpoints)) for r in status.relations),
        "config": {app: {k: option_text(v) for k, v in sorted(c.items())} for app, c in sorted(current.config.items())},
        "keys": sorted(" ".join(k.split()[:2]) for k in current.keys),
        "errors": sorted(u.name for u in status.units.values() if u.workload == "error"),
    }


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
