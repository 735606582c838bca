"""Enlist: make the inventory's machines known to MAAS, commissioned, Ready, checked and
tagged (`<lab>`, `<lab>-role-<role>`, `<lab>-pin-<hostname>`), so the kubernetes stage can
pin every Juju machine to exactly its host. A renamed host keeps its machine (its tags move);
a host that left the inventory loses this lab's tags, but one still deployed only with the
operator's consent (`--remove HOST`). All MAAS access goes through drivers.maas."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botlab import names
from botlab.context import Consent
from botlab.drivers.maas import FAILED, IN_USE, WAITING, MaasStatus
from botlab.errors import StageError
from botlab.identity import IDENTITY, REMOVED, Departed, Resolution, lab_tags, resolve
from botlab.outputs import EnlistedMachine, EnlistOutputs, Hardware
from botlab.pipeline import REFUSED, Change, Check, Inputs, Plan, Stage

if TYPE_CHECKING:
    from botlab.context import StageContext
    from botlab.drivers.maas import MaasDriver, MaasMachine
    from botlab.inventory import Inventory, Machine

TAG_IDENTITY = "maas-tag"  # identities: tag name -> "ours" (tags this lab created)
MEMORY_TOLERANCE = 0.05  # firmware and kernel reserve a little of the nominal memory
POLL_FLOOR_S, POLL_CAP_S = 0.25, 15.0
LIST_BATCH = 100  # hostnames per list request keeps query strings short


def wanted_tags(inv: Inventory, machine: Machine) -> set[str]:
    return {names.lab_tag(inv.name), names.pin_tag(inv.name, machine.hostname)} | {
        names.role_tag(inv.name, r) for r in machine.roles}


def all_wanted_tags(inv: Inventory) -> set[str]:
    return set().union(*(wanted_tags(inv, m) for m in inv.machines))


def is_lab_tag(inv: Inventory, tag: str) -> bool:
    return names.is_lab_tag(inv.name, tag)


@dataclass(frozen=True)
class CreateTag(Change):
    tag: str = ""


@dataclass(frozen=True)
class MachineStep(Change):
    """What apply does with one inventory machine; `action` says it: create, commission,
    wait, tag, ok (nothing) or blocked (a MAAS state botlab cannot fix)."""

    hostname: str = ""
    system_id: str | None = None
    renamed_from: str | None = None  # action "rename": the hostname botlab knew it by


@dataclass(frozen=True)
class Untag(Change):
    """A machine of this lab that left the inventory: action `untag` (its lab tags go, the
    record is forgotten), `forget` (no lab tags left: the record only) or `refused` (still
    deployed: only with the operator's consent)."""

    hostname: str = ""
    system_id: str = ""
    tags: tuple[str, ...] = ()
    in_use: bool = False


@dataclass
class EnlistPlan(Plan):
    """The plan plus what it read, so apply starts from it instead of listing MAAS again."""

    found: dict[str, MaasMachine | None] = field(default_factory=dict, repr=False)
    tags: set[str] = field(default_factory=set, repr=False)
    resolution: Resolution = field(default_factory=Resolution, repr=False)

    def step(self, hostname: str) -> MachineStep:
        return next(c for c in self.changes if isinstance(c, MachineStep) and c.hostname == hostname)

    def step_for(self, system_id: str) -> str:
        """The inventory hostname of a machine."""
        return next(c.hostname for c in self.changes if isinstance(c, MachineStep) and c.system_id == system_id)


def usable(state: MaasMachine) -> bool:
    """Ready, or already allocated/deployed (by this lab: checked through its pin tag)."""
    return state.status == MaasStatus.READY or state.status in IN_USE


def poll_interval(elapsed: float, typical: float | None) -> float:
    """Poll often early and less as the wait grows, in proportion to how long the remaining
    work is expected to take (the typical duration seen so far), so polling adds ~5%."""
    basis = max(elapsed, typical or 0.0)
    return min(POLL_CAP_S, max(POLL_FLOOR_S, 0.05 * basis))


@dataclass
class Tracker:
    """One inventory machine while the stage works on it."""

    machine: Machine
    system_id: str | None = None
    state: MaasMachine | None = None
    attempts: int = 0  # commissioning attempts in all, as recorded
    tries: int = 0  # attempts in this run: its budget is 1 + maas.commission_retries
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str | None = None


class EnlistStage(Stage[EnlistPlan]):
    name = "enlist"
    systems = ("MAAS",)
    inputs = Inputs(keys=("lab", "machines", "maas.url"))
    outputs = EnlistOutputs

    async def precheck(self, ctx: StageContext) -> None:
        """The API key, and power secrets of machines not yet known, must resolve now."""
        inv = ctx.inventory
        inv.secret("maas.api_key", ctx.environ)
        known = ctx.identities(IDENTITY)
        for m in inv.machines:
            if m.hostname not in known:
                inv.power_parameters(m.hostname, ctx.environ)

    # -- reading the world -----------------------------------------------------------------

    async def _resolve(self, ctx: StageContext, maas: MaasDriver) -> Resolution:
        """Which MAAS machine each inventory hostname is (recorded id, else hostname, else
        MAC), and which of this lab's machines were renamed or left the inventory."""
        return resolve(ctx.inventory, await maas.machines(), ctx.identities(IDENTITY), ctx.identities(REMOVED))

    async def plan(self, ctx: StageContext) -> EnlistPlan:
        inv = ctx.inventory
        maas = await ctx.drivers.maas()
        found = await self._resolve(ctx, maas)
        plan = EnlistPlan(found=found.found, tags=await maas.tag_names(), resolution=found)
        for tag in sorted(all_wanted_tags(inv) - plan.tags):
            plan.changes.append(CreateTag("create", f"tag {tag}", "not in MAAS", tag=tag))
        for machine in inv.machines:
            plan.changes.append(self._step(inv, machine, plan.found[machine.hostname], found))
        for _host, gone in sorted(found.departed.items()):
            plan.changes.append(departure(gone, ctx.consent))
        plan.observed = {
            "machines": {host: None if m is None else {
                "system_id": m.system_id, "status": m.status_name,
                "tags": sorted(t for t in m.tags if is_lab_tag(inv, t))} for host, m in plan.found.items()},
            "tags": sorted(t for t in plan.tags if is_lab_tag(inv, t)),
        }
        if found.departed:
            plan.observed["departed"] = {host: {
                "system_id": d.system_id, "status": d.machine.status_name if d.machine else None,
                "tags": list(d.tags)} for host, d in sorted(found.departed.items())}
        return plan

    @staticmethod
    def _step(inv: Inventory, machine: Machine, state: MaasMachine | None, found: Resolution) -> MachineStep:
        host = machine.hostname
        target = f"machine {host}"
        if state is None:
            how = "from its power parameters" if machine.power else "but no power parameters"
            return MachineStep("create", target, f"not known to MAAS; create {how} and commission", hostname=host)
        sid = state.system_id
        if state.status == MaasStatus.NEW:
            return MachineStep("commission", target, "New in MAAS", hostname=host, system_id=sid)
        if state.status == MaasStatus.FAILED_TESTING:
            return MachineStep("commission", target, f"{state.status_name}: run its tests again", hostname=host,
                               system_id=sid)
        if state.status in FAILED:
            return MachineStep("commission", target, f"{state.status_name}: retry", hostname=host, system_id=sid)
        if state.status in WAITING:
            return MachineStep("wait", target, f"{state.status_name} in MAAS", hostname=host, system_id=sid)
        if state.status in IN_USE and sid not in found.ours:
            return MachineStep("blocked", target, f"{state.status_name} in MAAS (owner {state.owner or 'unknown'})"
                               f" but not tagged for lab {inv.name} nor recorded as this lab's: another user or"
                               " lab may own it; release it in MAAS or fix the hostname", hostname=host,
                               system_id=sid)
        if usable(state) and host in found.renamed:
            old = found.renamed[host]
            wanted = wanted_tags(inv, machine)
            have = set(lab_tags(inv.name, state.tags))
            moves = [f"+{t}" for t in sorted(wanted - have)] + [f"-{t}" for t in sorted(have - wanted)]
            return MachineStep("rename", target, f"was {old} (MAAS machine {sid}, found by {found.how[host]}):"
                               f" {state.status_name}, kept; its tags move ({' '.join(moves) or 'none'}) and it"
                               " is recorded under the new name", hostname=host, system_id=sid, renamed_from=old)
        if usable(state):
            missing = wanted_tags(inv, machine) - set(state.tags)
            if missing:
                return MachineStep("tag", target, "add " + ", ".join(sorted(missing)), hostname=host, system_id=sid)
            return MachineStep("ok", target, f"{state.status_name}, tagged", hostname=host, system_id=sid)
        return MachineStep("blocked", target, f"{state.status_name} in MAAS: fix it there", hostname=host,
                           system_id=sid)

    # -- apply ---------------------------------------------------------------------------------

    async def apply(self, ctx: StageContext, plan: EnlistPlan) -> EnlistOutputs:
        inv = ctx.inventory
        maas = await ctx.drivers.maas()
        progress = ctx.progress()
        trackers: dict[str, Tracker] = {}
        removed = ctx.identities(REMOVED)
        for machine in inv.machines:
            t = Tracker(machine)
            prior = progress.get(machine.hostname)
            t.attempts = int(prior.data.get("attempts", 0)) if prior else 0
            t.state = plan.found[machine.hostname]
            if t.state is not None:
                t.system_id = t.state.system_id
                ctx.set_identity(IDENTITY, machine.hostname, t.system_id)
                if machine.hostname in removed:  # removed with --remove, and back
                    ctx.store.forget_identity(REMOVED, machine.hostname)
            trackers[machine.hostname] = t
        for old, sid in plan.resolution.stale.items():
            ctx.store.forget_identity(IDENTITY, old)
            ctx.set_progress(old, "renamed", f"now {plan.step_for(sid)}")
            ctx.note(f"{old} ({sid}) is {plan.step_for(sid)} now: recorded under the new name")

        await asyncio.gather(*(self._start(ctx, maas, t, plan.step(h)) for h, t in trackers.items()))
        # Tag while MAAS commissions, and read each machine's GPUs as soon as it is Ready, so
        # the stage ends one poll after the slowest machine, not after a tagging pass.
        details: dict[str, asyncio.Task[int]] = {}

        def read_details(t: Tracker) -> None:
            assert t.system_id is not None
            details[t.machine.hostname] = asyncio.ensure_future(
                maas.gpu_count(t.system_id, t.machine.hostname))

        for t in trackers.values():
            if t.error is None and t.state is not None and usable(t.state):
                read_details(t)
        ours = [t for t in trackers.values() if t.error is None and t.system_id is not None]
        created = [c.tag for c in plan.todo if isinstance(c, CreateTag)]
        leaving = [c for c in plan.todo if isinstance(c, Untag) and c.action != REFUSED]
        await asyncio.gather(self._wait(ctx, maas, trackers, read_details),
                             self._tag(ctx, maas, ours, plan.tags, created, leaving))
        gpus = {host: await task for host, task in details.items()}
        ready = [t for t in trackers.values() if t.error is None]
        mismatches = self._check_hardware(ctx, ready, gpus)
        for t in ready:
            if t.machine.hostname not in mismatches:
                ctx.set_progress(t.machine.hostname, "done", "Ready, checked and tagged",
                                 {"attempts": t.attempts})
        problems = [f"{h}: {t.error}" for h, t in trackers.items() if t.error] + [
            msg for msgs in mismatches.values() for msg in msgs
        ]
        if problems:
            raise StageError(
                "; ".join(problems),
                system="MAAS",
                operation="enlist",
                hint="fix the machines (or the inventory) and run `botlab up` to resume",
            )
        return self._outputs(inv, trackers, gpus)

    async def _start(self, ctx: StageContext, maas: MaasDriver, t: Tracker, step: MachineStep) -> None:
        """Carry out one machine's planned step (create or commission it); never twice."""
        host = t.machine.hostname
        if step.action == "create":
            m = t.machine
            if m.power is None or not m.macs:
                t.error = (
                    "not known to MAAS, and the inventory gives no power parameters and MAC addresses to create it"
                )
                ctx.set_progress(host, "error", t.error)
                return
            params = {
                k: v if isinstance(v, str) else v.reveal()
                for k, v in ctx.inventory.power_parameters(host, ctx.environ).items()
            }
            ctx.set_progress(host, "creating", "", {"attempts": t.attempts})
            t.state = await maas.create_machine(host, m.architecture, m.macs, m.power.type, params)
            t.system_id = t.state.system_id
            ctx.set_identity(IDENTITY, host, t.system_id)
            t.attempts += 1  # MAAS commissions a machine an admin creates
            t.tries += 1
            ctx.set_progress(host, "commissioning", f"created as {t.system_id}", {"attempts": t.attempts})
            ctx.event(f"{host}: created in MAAS as {t.system_id}; commissioning")
        elif t.state is None:
            raise AssertionError(f"{host}: planned {step.action} for a machine MAAS does not have")
        elif step.action == "commission" and t.state.status == MaasStatus.NEW:
            await self._commission(ctx, maas, t)
        elif step.action == "commission":
            await self._retry_or_fail(ctx, maas, t)
        elif step.action == "blocked" and t.state.status in IN_USE:
            t.error = step.reason  # in use, and not this lab's: another user or lab may own it
            ctx.set_progress(host, "error", t.error)
        elif step.action == "rename":
            ctx.note(f"{host}: {step.reason}")
            ctx.show(host, t.state.status_name, t.state.system_id)
        else:
            ctx.show(host, t.state.status_name, t.state.system_id)

    async def _commission(self, ctx: StageContext, maas: MaasDriver, t: Tracker) -> None:
        await self._attempt(ctx, maas, t, "commission")

    async def _retest(self, ctx: StageContext, maas: MaasDriver, t: Tracker) -> None:
        """Run a machine's tests again: MAAS 3.4 only commissions New, Failed commissioning,
        Ready or Broken machines, and lets only a machine's owner mark it broken, so a
        machine in Failed testing is retried the way MAAS allows: `op=test`, which returns it
        to Ready when the tests pass. It counts as an attempt like commissioning does."""
        await self._attempt(ctx, maas, t, "test")

    async def _attempt(self, ctx: StageContext, maas: MaasDriver, t: Tracker, op: str) -> None:
        """One commissioning or testing attempt, recorded before the call: a crash after it
        must not attempt again."""
        assert t.system_id is not None
        host = t.machine.hostname
        t.attempts += 1
        t.tries += 1
        doing = "commissioning" if op == "commission" else "testing"
        ctx.set_progress(host, doing, f"attempt {t.attempts}", {"attempts": t.attempts})
        call = maas.commission if op == "commission" else maas.test
        t.state = await call(t.system_id, host)
        ctx.event(f"{host}: {doing}{'' if op == 'commission' else ' again'} (attempt {t.attempts})")

    async def _retry_or_fail(self, ctx: StageContext, maas: MaasDriver, t: Tracker) -> None:
        """Retry a failed machine while this run's budget lasts: commission it again after
        Failed commissioning, test it again after Failed testing. Each run (a new `up`, with
        or without --force) is a new attempt episode of 1 + commission_retries."""
        assert t.state is not None
        limit = ctx.inventory.maas.commission_retries
        if t.tries > limit:
            t.error = (
                f"{t.state.status_name} after {t.tries} attempt(s) in this run ({t.attempts} in all):"
                f" {t.state.status_message or 'no message from MAAS'} (fix the cause, then run `botlab up`"
                f" again: a new run retries it again, up to {limit + 1} attempt(s), 1 +"
                " maas.commission_retries)"
            )
            t.finished = time.monotonic()
            ctx.set_progress(t.machine.hostname, "failed", t.error, {"attempts": t.attempts})
            return
        retest = t.state.status == MaasStatus.FAILED_TESTING
        verb = "testing" if retest else "commissioning"
        what = f"{verb} again (a new run)" if t.tries == 0 else f"{verb} again ({t.tries} of {limit})"
        ctx.note(f"{t.machine.hostname}: {t.state.status_name} ({t.state.status_message}); {what}")
        if retest:
            await self._retest(ctx, maas, t)
        else:
            await self._commission(ctx, maas, t)

    async def _wait(
        self, ctx: StageContext, maas: MaasDriver, trackers: dict[str, Tracker],
        on_ready: Callable[[Tracker], None],
    ) -> None:
        """Poll in batches (one list call per round) until every machine settles."""
        inv = ctx.inventory
        began = time.monotonic()
        deadline = began + inv.maas.timeout
        durations: list[float] = []

        def pending() -> list[Tracker]:
            return [
                t for t in trackers.values() if t.error is None and t.state is not None and not self._settled(t.state)
            ]

        while pending():
            now = time.monotonic()
            if now >= deadline:
                waiting = ", ".join(f"{t.machine.hostname} ({t.state.status_name})" for t in pending() if t.state)
                raise StageError(
                    f"timed out after {inv.maas.timeout}s waiting for: {waiting}",
                    system="MAAS",
                    operation="wait for Ready",
                    hint="check those machines in MAAS (power, PXE boot), or raise maas.timeout;"
                    " `botlab up` resumes without commissioning anything twice",
                )
            typical = statistics.median(durations) if durations else None
            await asyncio.sleep(min(poll_interval(now - began, typical), max(0.0, deadline - now)))
            hosts = [t.machine.hostname for t in pending()]
            latest: dict[str, MaasMachine] = {}
            for i in range(0, len(hosts), LIST_BATCH):
                for m in await maas.machines(hosts[i : i + LIST_BATCH]):
                    latest[m.hostname] = m
            retry: list[Tracker] = []
            for host in hosts:
                t = trackers[host]
                state = latest.get(host)
                if state is None:
                    t.error = "disappeared from MAAS while commissioning"
                    continue
                changed = t.state is None or state.status != t.state.status
                t.state = state
                if state.status in FAILED:
                    retry.append(t)
                elif self._settled(state):
                    t.finished = time.monotonic()
                    durations.append(t.finished - t.started)
                    ctx.set_progress(host, "ready", state.status_name, {"attempts": t.attempts})
                    if usable(state):
                        on_ready(t)
                elif changed:
                    ctx.show(host, state.status_name, state.status_message)
            await asyncio.gather(*(self._retry_or_fail(ctx, maas, t) for t in retry))
        for t in trackers.values():
            if t.error is None and t.state is not None and not usable(t.state):
                t.error = f"{t.state.status_name} in MAAS ({t.state.status_message or 'no message'}): fix it in MAAS"
                ctx.set_progress(t.machine.hostname, "error", t.error, {"attempts": t.attempts})

    @staticmethod
    def _settled(state: MaasMachine) -> bool:
        return not (state.status in WAITING or state.status == MaasStatus.NEW or state.status in FAILED)

    def _check_hardware(
        self, ctx: StageContext, ready: Iterable[Tracker], gpus: dict[str, int]
    ) -> dict[str, list[str]]:
        inv = ctx.inventory
        out: dict[str, list[str]] = {}
        for t in ready:
            host, hw, state = t.machine.hostname, t.machine.hardware, t.state
            if state is None or host not in gpus:
                continue
            msgs = []
            if hw.cores is not None and state.cpu_count != hw.cores:
                msgs.append(
                    f"cores: inventory says {hw.cores}, MAAS found {state.cpu_count}"
                    f" ({inv.where_machine(host, 'hardware.cores')})"
                )
            if hw.memory_mib is not None and abs(state.memory_mib - hw.memory_mib) > (MEMORY_TOLERANCE * hw.memory_mib):
                msgs.append(
                    f"memory: inventory says {hw.memory_mib} MiB, MAAS found"
                    f" {state.memory_mib} MiB ({inv.where_machine(host, 'hardware.memory')})"
                )
            if gpus[host] != hw.gpus:
                msgs.append(
                    f"gpus: inventory says {hw.gpus}, MAAS commissioning found {gpus[host]}"
                    f" ({inv.where_machine(host, 'hardware.gpus')})"
                )
            if msgs:
                out[host] = [f"{host}: hardware mismatch: {m}" for m in msgs]
                ctx.set_progress(host, "hardware mismatch", "; ".join(msgs), {"attempts": t.attempts})
        return out

    async def _tag(self, ctx: StageContext, maas: MaasDriver, machines: list[Tracker], have: set[str],
                   create: list[str], leaving: list[Untag]) -> None:
        """Converge this lab's tags: the planned creates (`have`: the tags the plan read), then
        one update per changed tag, which also takes the tags off machines that left."""
        inv = ctx.inventory
        wanted: dict[str, set[str]] = {tag: set() for tag in all_wanted_tags(inv)}
        carrying: dict[str, set[str]] = {tag: set() for tag in wanted}
        for t in machines:
            assert t.state is not None and t.system_id is not None
            for tag in wanted_tags(inv, t.machine):
                wanted[tag].add(t.system_id)
            for tag in t.state.tags:
                carrying.setdefault(tag, set()).add(t.system_id)
        departing: dict[str, set[str]] = {}
        for c in leaving:
            if c.action == "untag":
                for tag in c.tags:
                    departing.setdefault(tag, set()).add(c.system_id)

        await asyncio.gather(*(self._create_tag(ctx, maas, tag) for tag in create))
        have = have | set(create)
        ours = set(ctx.identities(TAG_IDENTITY))
        # This lab's tags its machines carry (a renamed host's old pin tag) converge too.
        lab_named = {tag for tag in carrying if is_lab_tag(inv, tag)}

        async def update(tag: str) -> None:
            add = sorted(wanted.get(tag, set()) - carrying.get(tag, set()))
            remove = sorted((carrying.get(tag, set()) - wanted.get(tag, set())) | departing.get(tag, set()))
            if add or remove:
                await maas.update_tag(tag, add=add, remove=remove)
                ctx.event(f"tag {tag}: +{len(add)} -{len(remove)} machines")

        # Tags of this lab that no machine wants any more (a role dropped) are emptied too.
        emptied = (ours | lab_named | set(departing)) & have
        await asyncio.gather(*(update(tag) for tag in sorted(set(wanted) | emptied)))
        for c in leaving:
            self._forget(ctx, c)

    async def _create_tag(self, ctx: StageContext, maas: MaasDriver, tag: str) -> None:
        """Create a tag; one that exists meanwhile (another run made it) is fine. It is recorded
        as this lab's only when this call created it or it carries this lab's comment."""
        comment = names.tag_comment(ctx.inventory.name)
        try:
            created = await maas.create_tag_if_absent(tag, comment)
        except StageError as exc:  # a MAAS answer the driver does not take for "it exists"
            if "already exists" not in str(exc):
                raise
            created = False
        if not created:
            found = await maas.tag_comment(tag)
            if found != comment:
                ctx.event(f"tag {tag} was created meanwhile by someone else (comment {found or ''!r}):"
                          " used, not recorded as this lab's")
                return
        ctx.set_identity(TAG_IDENTITY, tag, "ours")

    @staticmethod
    def _forget(ctx: StageContext, c: Untag) -> None:
        """A machine that left the inventory: its record goes (one removed while deployed is
        remembered as this lab's, so putting it back works)."""
        ctx.store.forget_identity(IDENTITY, c.hostname)
        if c.in_use:
            ctx.set_identity(REMOVED, c.hostname, c.system_id)
        ctx.set_progress(c.hostname, "removed", f"left the inventory ({c.system_id}): {c.action}")
        shown = f": removed this lab's tags {', '.join(c.tags)}" if c.action == "untag" and c.tags else ""
        ctx.note(f"{c.hostname} ({c.system_id}) left the inventory{shown}; it stays enlisted"
                 + (", deployed" if c.in_use else ""))

    def _outputs(self, inv: Inventory, trackers: dict[str, Tracker], gpus: dict[str, int]) -> EnlistOutputs:
        machines = {}
        for host, t in sorted(trackers.items()):
            assert t.state is not None and t.system_id is not None
            machines[host] = EnlistedMachine(
                system_id=t.system_id,
                roles=tuple(t.machine.roles),
                tags=tuple(sorted(wanted_tags(inv, t.machine))),
                pin_tag=names.pin_tag(inv.name, host),
                hardware=Hardware(cores=t.state.cpu_count, memory_mib=t.state.memory_mib, gpus=gpus.get(host, 0)),
            )
        return EnlistOutputs(lab_tag=names.lab_tag(inv.name), machines=machines)

    # -- verify and teardown --------------------------------------------------------------

    async def verify(self, ctx: StageContext) -> list[Check]:
        inv = ctx.inventory
        maas = await ctx.drivers.maas()
        found = (await self._resolve(ctx, maas)).found
        checks = []
        for machine in inv.machines:
            state = found[machine.hostname]
            name = f"machine {machine.hostname}"
            if state is None:
                checks.append(Check(name, False, "not in MAAS"))
                continue
            if not usable(state):
                checks.append(Check(name, False, f"{state.status_name} in MAAS"))
                continue
            missing = wanted_tags(inv, machine) - set(state.tags)
            if missing:
                checks.append(Check(name, False, "missing tags " + ", ".join(sorted(missing))))
                continue
            checks.append(Check(name, True, state.status_name))
        return checks

    async def destroy(self, ctx: StageContext) -> str | None:
        """Remove this lab's tags and nothing else: machines stay enlisted. Found in MAAS by
        name (`<lab>`, `<lab>-role-*`, `<lab>-pin-*`; never lab `<lab>2`'s), so a lost state
        folder still finds them; a tag neither wanted nor recorded is deleted only when its
        comment says it is this lab's."""
        inv = ctx.inventory
        maas = await ctx.drivers.maas()
        have = await maas.tag_names()
        mine = names.tag_comment(inv.name)
        ours = (set(ctx.identities(TAG_IDENTITY)) | all_wanted_tags(inv)) & have
        for tag in sorted(t for t in have - ours if is_lab_tag(inv, t)):
            if await maas.tag_comment(tag) == mine:
                ours.add(tag)
            else:
                ctx.note(f"tag {tag} is named like this lab's but was not made by it: left alone")
        for tag in sorted(ours):
            await maas.delete_tag_if_present(tag)
            ctx.store.forget_identity(TAG_IDENTITY, tag)
            ctx.event(f"deleted tag {tag}")
        for host in ctx.identities(REMOVED):
            ctx.store.forget_identity(REMOVED, host)
        if not ours:
            return None
        ctx.note(f"found {len(ours)} tag(s) of lab {inv.name} in MAAS: {', '.join(sorted(ours))}: deleted")
        return f"found tags {', '.join(sorted(ours))} in MAAS: deleted (machines stay enlisted)"


def departure(gone: Departed, consent: Consent) -> Untag:
    """What becomes of a machine of this lab that left the inventory."""
    host, m = gone.hostname, gone.machine

    def change(action: str, reason: str, in_use: bool = False) -> Untag:
        return Untag(action, f"machine {host}", reason, hostname=host, system_id=gone.system_id, tags=gone.tags,
                     in_use=in_use)

    if m is None:
        return change("forget", f"left the inventory and MAAS ({gone.system_id}): forget it")
    tags = ", ".join(gone.tags) or "(none)"
    if m.status in IN_USE:
        where = f"{m.status_name} in MAAS (owner {m.owner or 'unknown'})"
        if host not in consent.remove:
            return change(REFUSED, f"left the inventory but is {where}: it still carries workloads; botlab would"
                          f" remove its tags {tags} and forget it. Put it back in the inventory, or run"
                          f" `botlab up {consent.flag(host)}` to untag and forget it (it stays deployed)", True)
        return change("untag" if gone.tags else "forget", f"left the inventory, {where}; {consent.flag(host)}"
                      f" given: remove its tags {tags} and forget it (it stays deployed)", True)
    if not gone.tags:
        return change("forget", f"left the inventory ({m.status_name} in MAAS, no tags of this lab): forget it")
    return change("untag", f"left the inventory ({m.status_name} in MAAS): remove its tags {tags}; it stays enlisted")
