"""Kubernetes: Charmed Kubernetes from the inventory's bundle, placed on exactly the intended
hosts, deployed, settled and reconciled. All Juju access goes through drivers.juju.

botlab executes its own diff of the rendered bundle against the model (kubernetes_diff), not
libjuju's bundle handler: that one re-adds every machine on each deploy, and Juju's change
list (GetChangesMapArgs) plans for an empty model only. Each inventory host is one Juju
machine constrained by its pin tag; which machine is which host is read back from the
model (the pin tag in its constraints) and recorded, so nothing is added twice, even after
kill -9 in the middle of a run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botlab.bundle import render_bundle
from botlab.errors import InputError, Problem, StageError
from botlab.pipeline import Change, Check, Stage
from botlab.stages.enlist import ALLOCATED, DEPLOYED, DEPLOYING, DISK_ERASING, RELEASING, pin_tag
from botlab.stages.kubernetes_diff import (
    BundleProblem,
    Current,
    Diff,
    Settle,
    Wanted,
    diff,
    host_lookup,
    match_machines,
    option_text,
    read_bundle,
    settle,
)

if TYPE_CHECKING:
    from botlab.context import StageContext
    from botlab.drivers.juju import JujuDriver, ModelStatus
    from botlab.inventory import Inventory

IDENTITY = "juju-machine"  # identities: hostname -> Juju machine id in the lab's model
SETTLE_S = 1.0  # everything settled for this long (no hook started meanwhile) ends the wait
REFRESH_S = 5.0  # the live display refreshes elapsed times at least this often
ACTION_TIMEOUT_S = 300.0
KUBECONFIG = "kubeconfig"  # in the state folder
MAAS_IN_USE = frozenset({DEPLOYED, DEPLOYING, ALLOCATED, RELEASING, DISK_ERASING})
SHOWN_PENDING = 12  # pending items named in a timeout message


def wanted_state(inv: Inventory) -> Wanted:
    """The rendered bundle as botlab deploys it; a bundle botlab cannot deploy is bad input."""
    text = render_bundle(inv)
    try:
        return read_bundle(text, {m.hostname: pin_tag(inv, m.hostname) for m in inv.machines})
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


def key_name(key: str) -> str:
    parts = key.split()
    return parts[2] if len(parts) > 2 else parts[0]


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


class KubernetesStage(Stage):
    name = "kubernetes"
    sections = ("lab", "machines", "juju", "ssh", "kubernetes")
    upstream = ("enlist",)

    def __init__(self, settle_s: float = SETTLE_S) -> None:
        self.settle_s = settle_s

    def inputs(self, ctx: StageContext) -> dict[str, Any]:
        """What the model is built from: hosts and roles, Juju and the bundle's settings, the
        rendered bundle itself (so an edited template re-runs the stage) and the operator's
        key; not the wait's timeout."""
        inv = ctx.inventory
        data = inv.fingerprint_data("lab", "juju", "kubernetes")
        data["kubernetes"].pop("timeout", None)
        data["machines"] = [{"hostname": m.hostname, "roles": sorted(m.roles)}
                            for m in sorted(inv.machines, key=lambda m: m.hostname)]
        try:
            data["bundle_sha256"] = hashlib.sha256(render_bundle(inv).encode()).hexdigest()
        except InputError:
            data["bundle_sha256"] = None  # precheck reports it
        try:
            data["operator_key"] = hashlib.sha256(operator_key(inv).encode()).hexdigest()
        except InputError:
            data["operator_key"] = None
        return data

    async def precheck(self, ctx: StageContext) -> None:
        inv = ctx.inventory
        wanted_state(inv)
        operator_key(inv)
        if inv.juju.password is not None:
            inv.secret("juju.password", ctx.environ)

    # -- reading the world -----------------------------------------------------------------

    @staticmethod
    async def _model_uuid(ctx: StageContext, juju: JujuDriver) -> str | None:
        """The lab's model's UUID; None while there is no such model."""
        return (await juju.model_uuids()).get(ctx.inventory.juju.model)

    async def _read(self, ctx: StageContext, juju: JujuDriver, wanted: Wanted, uuid: str | None) -> Current:
        if uuid is None:
            return Current()
        await juju.open_model(ctx.inventory.juju.model, uuid)
        status = await juju.status()
        keys = await juju.ssh_keys()
        with_options = [a.name for a in wanted.applications.values() if a.options and a.name in status.applications]
        configs = await _all(juju.application_config(name) for name in with_options)
        return Current(status, dict(zip(with_options, configs, strict=True)), keys)

    async def _diff(self, ctx: StageContext, juju: JujuDriver, wanted: Wanted, *, uuid: str | None, key: str,
                    recorded: Mapping[str, str]) -> tuple[Current, Diff]:
        """The model (`uuid`; None: absent) read and diffed against `wanted`, given the
        operator's key and the machine ids botlab recorded."""
        current = await self._read(ctx, juju, wanted, uuid)
        return current, diff(wanted, current, key, recorded)

    async def plan(self, ctx: StageContext) -> list[Change]:
        inv = ctx.inventory
        wanted = wanted_state(inv)
        juju = await ctx.drivers.juju()
        key = operator_key(inv)
        _current, d = await self._diff(ctx, juju, wanted, uuid=await self._model_uuid(ctx, juju), key=key,
                                       recorded=ctx.identities(IDENTITY))
        return d.changes(inv.juju.model, inv.juju.controller, key_name(key))

    # -- apply ---------------------------------------------------------------------------------

    async def apply(self, ctx: StageContext) -> dict[str, Any]:
        inv = ctx.inventory
        model = inv.juju.model
        wanted = wanted_state(inv)
        key = operator_key(inv)
        juju = await ctx.drivers.juju()
        uuid = await self._model_uuid(ctx, juju)
        created = uuid is None
        if created:
            ctx.set_progress("model", "creating", model)
            await juju.create_model(model, inv.juju.cloud, juju.client_key() or key)
            uuid = juju.model_uuid
            ctx.set_progress("model", "created", f"{model} ({uuid})")
            ctx.note(f"created model {model} on controller {inv.juju.controller}")
        recorded = ctx.identities(IDENTITY)
        current, d = await self._diff(ctx, juju, wanted, uuid=uuid, key=key, recorded=recorded)
        if d.conflicts:
            raise StageError(
                "; ".join(f"{c.target}: {c.reason}" for c in d.conflicts), system="Juju",
                operation="reconcile the bundle", where=f"model {model}",
            )
        if d.add_key:
            await juju.add_ssh_key(key)
            ctx.note(f"authorized the operator's key {key_name(key)} in model {model}")

        ids = dict(d.machine_ids)
        for host, mid in ids.items():
            if recorded.get(host) != mid:
                ctx.set_identity(IDENTITY, host, mid)
        ids.update(await self._add_machines(ctx, juju, d))
        await _all(self._deploy(ctx, juju, app.name, wanted) for app in d.deploy)
        work: list[Awaitable[Any]] = []
        for app_name, placements in d.units.items():
            directives = [f"{p.container}:{ids[p.hostname]}" if p.container else ids[p.hostname] for p in placements]
            work.append(self._add_units(ctx, juju, app_name, directives))
        work += [juju.relate(str(r.first), str(r.second)) for r in d.relations]
        work += [juju.expose(name) for name in d.expose]
        work += [juju.set_config(name, options) for name, options in d.config.items()]
        await _all(work)
        for rel in d.relations:
            ctx.event(f"related {rel}")
        for name, options in d.config.items():
            ctx.note(f"{name}: set " + ", ".join(f"{k}={v}" for k, v in sorted(options.items())))

        errored = sorted(u.name for u in (current.status.units.values() if current.status else ())
                         if u.workload == "error")
        for unit in errored:
            await juju.resolve(unit)
            ctx.note(f"{unit}: retrying its failed hook (juju resolved)")
        await self._wait(ctx, juju, wanted, ids, set(errored))
        built = bool(created or d.machines or d.deploy or d.units or d.relations)
        kubeconfig = await self._kubeconfig(ctx, juju, wanted, refetch=built)
        return self._outputs(ctx, juju, wanted, ids, kubeconfig)

    async def _add_machines(self, ctx: StageContext, juju: JujuDriver, d: Diff) -> dict[str, str]:
        """One machine per host still missing, constrained by its pin tag; each id recorded as
        soon as Juju answers (a crash before that is reconciled through the pin tag)."""
        from botlab.drivers.juju import MachineRequest

        if not d.machines:
            return {}
        for m in d.machines:
            ctx.set_progress(m.hostname, "adding", f"constraints {m.constraints}")
        added = await juju.add_machines([MachineRequest(m.constraints, m.base) for m in d.machines])
        ids: dict[str, str] = {}
        failed: list[str] = []
        for m, result in zip(d.machines, added, strict=True):
            if result.error or not result.machine:
                failed.append(f"{m.hostname}: {result.error or 'no machine id in the answer'}")
                ctx.set_progress(m.hostname, "error", result.error)
                continue
            ids[m.hostname] = result.machine
            ctx.set_identity(IDENTITY, m.hostname, result.machine)
            ctx.set_progress(m.hostname, "added", f"machine {result.machine}", {"machine": result.machine})
        ctx.event(f"added {len(ids)} machine(s): " + ", ".join(f"{h}={i}" for h, i in sorted(ids.items())))
        annotations = {f"machine-{ids[m.hostname]}": m.annotations for m in d.machines
                       if m.hostname in ids and m.annotations}
        await juju.annotate(annotations)
        if failed:
            raise StageError("; ".join(failed), system="Juju", operation="add machines",
                             hint="check that MAAS has these machines Ready and tagged (`botlab up enlist`),"
                             " then run `botlab up`: machines already added are kept")
        return ids

    async def _deploy(self, ctx: StageContext, juju: JujuDriver, name: str, wanted: Wanted) -> None:
        app = wanted.applications[name]
        options = {k: option_text(v) for k, v in app.options.items()}
        await juju.deploy(name, app.charm, channel=app.channel, base=app.base or None, config=options,
                          constraints=app.constraints)
        ctx.event(f"deployed {name} (charm {app.charm}{' from ' + app.channel if app.channel else ''})")

    async def _add_units(self, ctx: StageContext, juju: JujuDriver, app: str, directives: list[str]) -> None:
        units = await juju.add_units(app, directives)
        ctx.event(f"{app}: added " + ", ".join(f"{u} to {p}" for u, p in zip(units, directives, strict=False)))

    # -- waiting ---------------------------------------------------------------------------------

    async def _wait(self, ctx: StageContext, juju: JujuDriver, wanted: Wanted, ids: dict[str, str],
                    resolved: set[str]) -> None:
        """Until machines have started and every unit is active/idle, with a live per-unit
        display. A failed hook or a machine MAAS could not deploy stops the wait at once."""
        inv = ctx.inventory
        timeout = inv.kubernetes.timeout
        began = time.monotonic()
        deadline = began + timeout
        shown: dict[str, tuple[str, str]] = {}
        settled_since: float | None = None
        stale = set(resolved)  # their error is from before `juju resolved` until seen otherwise
        while True:
            live = juju.live()
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
            await juju.changed(wait)
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

    async def _kubeconfig(self, ctx: StageContext, juju: JujuDriver, wanted: Wanted, *, refetch: bool) -> Path | None:
        """The control plane's get-kubeconfig action's result, written to the state folder
        (0600); fetched again only when the file is missing, the model is another one, or
        this run added to the model."""
        app = wanted.control_plane()
        if app is None:
            return None
        path = ctx.inventory.state_dir / KUBECONFIG
        prior = ctx.progress().get(KUBECONFIG)
        uuid = juju.model_uuid
        if not refetch and path.exists() and prior is not None and prior.data.get("model_uuid") == uuid:
            return path
        status = await juju.status()
        units = sorted((u for u in status.units.values() if u.application == app.name),
                       key=lambda u: (not u.leader, u.name))
        if not units:
            raise StageError(f"no unit of {app.name} to ask for the kubeconfig", system="Juju",
                             operation="get-kubeconfig", where=f"model {ctx.inventory.juju.model}")
        unit = units[0].name
        result = await juju.run_action(unit, "get-kubeconfig", ACTION_TIMEOUT_S)
        text = result.results.get("kubeconfig") if result.status == "completed" else None
        if not text:
            raise StageError(f"the action {result.status or 'ended'} without a kubeconfig"
                             f"{': ' + result.message if result.message else ''}", system="Juju",
                             operation="get-kubeconfig", where=unit,
                             hint="check the control plane unit (`juju show-task`), then run `botlab up`")
        write_private(path, str(text))
        ctx.set_progress(KUBECONFIG, "fetched", f"from {unit} into {path}", {"model_uuid": uuid, "unit": unit})
        ctx.event(f"kubeconfig from {unit} written to {path}")
        return path

    def _outputs(self, ctx: StageContext, juju: JujuDriver, wanted: Wanted, ids: dict[str, str],
                 kubeconfig: Path | None) -> dict[str, Any]:
        live = juju.live()
        host_of = host_lookup(ids)
        units: dict[str, list[str]] = {host: [] for host in ids}
        for unit in live.units.values():
            host = host_of(unit.machine)
            if host and unit.application in wanted.applications and not unit.principal:
                units[host].append(unit.name)
        inv = ctx.inventory
        return {
            "controller": inv.juju.controller,
            "model": inv.juju.model,
            "model_uuid": juju.model_uuid,
            "machines": dict(sorted(ids.items())),
            "units": {h: sorted(u) for h, u in sorted(units.items())},
            "applications": sorted(wanted.applications),
            "kubeconfig": str(kubeconfig) if kubeconfig else None,
        }

    # -- verify and teardown --------------------------------------------------------------

    async def verify(self, ctx: StageContext) -> list[Check]:
        inv = ctx.inventory
        wanted = wanted_state(inv)
        juju = await ctx.drivers.juju()
        current, d = await self._diff(ctx, juju, wanted, uuid=await self._model_uuid(ctx, juju),
                                      key=operator_key(inv), recorded=ctx.identities(IDENTITY))
        model = f"model {inv.juju.model}"
        if current.status is None:
            return [Check(model, False, f"not on controller {inv.juju.controller}")]
        checks = [Check(model, True, current.status.uuid)]
        missing = [c for c in d.changes(inv.juju.model, inv.juju.controller, "") if not c.is_noop]
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
            path = inv.state_dir / KUBECONFIG
            checks.append(Check("kubeconfig", path.exists(), str(path) if path.exists() else f"{path} missing"))
        return checks

    async def destroy(self, ctx: StageContext) -> None:
        """Destroy the model; Juju releases its machines and MAAS takes them back to Ready
        (waited for, so a rebuild finds them Ready)."""
        inv = ctx.inventory
        juju = await ctx.drivers.juju()
        model = inv.juju.model
        hosts: list[str] = []
        uuid = await self._model_uuid(ctx, juju)
        if uuid is not None:
            await juju.open_model(model, uuid)
            status = await juju.status()
            wanted = wanted_state(inv)
            hosts = sorted(match_machines(wanted, status, ctx.identities(IDENTITY)))
            ctx.note(f"destroying model {model} ({len(status.machines)} machine(s), {len(status.units)} unit(s))")
            await juju.destroy_model(model, timeout=inv.kubernetes.timeout)
            ctx.event(f"model {model} destroyed")
        for host in ctx.identities(IDENTITY):
            ctx.store.forget_identity(IDENTITY, host)
        (inv.state_dir / KUBECONFIG).unlink(missing_ok=True)
        if hosts:
            await self._wait_released(ctx, hosts)

    async def _wait_released(self, ctx: StageContext, hosts: list[str]) -> None:
        inv = ctx.inventory
        maas = await ctx.drivers.maas()
        deadline = time.monotonic() + inv.kubernetes.timeout
        delay = 0.1
        while True:
            busy = [m for m in await maas.machines(hosts) if m.status in MAAS_IN_USE]
            for m in busy:
                ctx.show(m.hostname, m.status_name, "releasing")
            if not busy:
                ctx.event(f"{len(hosts)} machine(s) released in MAAS")
                return
            if time.monotonic() > deadline:
                raise StageError(
                    "still in use after the model was destroyed: "
                    + ", ".join(f"{m.hostname} ({m.status_name})" for m in busy),
                    system="MAAS", operation="wait for release",
                    hint="release them in MAAS, then run `botlab down` again")
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 1.5)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
