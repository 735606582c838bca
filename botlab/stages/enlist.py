"""Enlist: make the inventory's machines known to MAAS, commissioned, Ready, checked and
tagged (`<lab>`, `<lab>-role-<role>`, `<lab>-pin-<hostname>`), so the kubernetes stage can
pin every Juju machine to exactly its host. All MAAS access goes through drivers.maas."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botlab import names
from botlab.drivers.maas import FAILED, IN_USE, WAITING, MaasStatus
from botlab.errors import StageError
from botlab.outputs import EnlistedMachine, EnlistOutputs, Hardware
from botlab.pipeline import Change, Check, Inputs, Plan, Stage

if TYPE_CHECKING:
    from botlab.context import StageContext
    from botlab.drivers.maas import MaasDriver, MaasMachine
    from botlab.inventory import Inventory, Machine

IDENTITY = "maas-machine"  # identities: hostname -> MAAS system id
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
    return tag == names.lab_tag(inv.name) or tag.startswith(inv.name + "-")


@dataclass(frozen=True)
class CreateTag(Change):
    tag: str = ""


@dataclass(frozen=True)
class MachineStep(Change):
    """What apply does with one inventory machine; `action` says it: create, commission,
    wait, tag, ok (nothing) or blocked (a MAAS state botlab cannot fix)."""

    hostname: str = ""
    system_id: str | None = None


@dataclass
class EnlistPlan(Plan):
    """The plan plus what it read, so apply starts from it instead of listing MAAS again."""

    found: dict[str, MaasMachine | None] = field(default_factory=dict, repr=False)
    tags: set[str] = field(default_factory=set, repr=False)

    def step(self, hostname: str) -> MachineStep:
        return next(c for c in self.changes if isinstance(c, MachineStep) and c.hostname == hostname)


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
    attempts: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str | None = None


class EnlistStage(Stage[EnlistPlan]):
    name = "enlist"
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

    async def _resolve(self, ctx: StageContext, maas: MaasDriver) -> dict[str, MaasMachine | None]:
        """Which MAAS machine each inventory hostname is: recorded id, else hostname, else MAC."""
        inv = ctx.inventory
        everything = await maas.machines()
        by_id = {m.system_id: m for m in everything}
        by_name = {m.hostname: m for m in everything}
        by_mac = {mac: m for m in everything for mac in m.macs}
        known = ctx.identities(IDENTITY)
        found: dict[str, MaasMachine | None] = {}
        for machine in inv.machines:
            hit = by_id.get(known.get(machine.hostname, ""))
            hit = hit or by_name.get(machine.hostname)
            if hit is None:
                hit = next((by_mac[mac] for mac in machine.macs if mac in by_mac), None)
            found[machine.hostname] = hit
        return found

    async def plan(self, ctx: StageContext) -> EnlistPlan:
        inv = ctx.inventory
        maas = await ctx.drivers.maas()
        plan = EnlistPlan(found=await self._resolve(ctx, maas), tags=await maas.tag_names())
        for tag in sorted(all_wanted_tags(inv) - plan.tags):
            plan.changes.append(CreateTag("create", f"tag {tag}", "not in MAAS", tag=tag))
        for machine in inv.machines:
            plan.changes.append(self._step(inv, machine, plan.found[machine.hostname]))
        plan.observed = {
            "machines": {host: None if m is None else {
                "system_id": m.system_id, "status": m.status_name,
                "tags": sorted(t for t in m.tags if is_lab_tag(inv, t))} for host, m in plan.found.items()},
            "tags": sorted(t for t in plan.tags if is_lab_tag(inv, t)),
        }
        return plan

    @staticmethod
    def _step(inv: Inventory, machine: Machine, state: MaasMachine | None) -> MachineStep:
        host = machine.hostname
        target = f"machine {host}"
        if state is None:
            how = "from its power parameters" if machine.power else "but no power parameters"
            return MachineStep("create", target, f"not known to MAAS; create {how} and commission", hostname=host)
        sid = state.system_id
        if state.status == MaasStatus.NEW:
            return MachineStep("commission", target, "New in MAAS", hostname=host, system_id=sid)
        if state.status in FAILED:
            return MachineStep("commission", target, f"{state.status_name}: retry", hostname=host, system_id=sid)
        if state.status in WAITING:
            return MachineStep("wait", target, f"{state.status_name} in MAAS", hostname=host, system_id=sid)
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
        for machine in inv.machines:
            t = Tracker(machine)
            prior = progress.get(machine.hostname)
            t.attempts = int(prior.data.get("attempts", 0)) if prior else 0
            t.state = plan.found[machine.hostname]
            if t.state is not None:
                t.system_id = t.state.system_id
                ctx.set_identity(IDENTITY, machine.hostname, t.system_id)
            trackers[machine.hostname] = t

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
        await asyncio.gather(self._wait(ctx, maas, trackers, read_details),
                             self._tag(ctx, maas, ours, plan.tags, created))
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
            ctx.set_progress(host, "commissioning", f"created as {t.system_id}", {"attempts": t.attempts})
            ctx.event(f"{host}: created in MAAS as {t.system_id}; commissioning")
        elif t.state is None:
            raise AssertionError(f"{host}: planned {step.action} for a machine MAAS does not have")
        elif step.action == "commission" and t.state.status == MaasStatus.NEW:
            await self._commission(ctx, maas, t)
        elif step.action == "commission":
            await self._retry_or_fail(ctx, maas, t)
        elif t.state.status in IN_USE and names.pin_tag(ctx.inventory.name, host) not in t.state.tags:
            t.error = (
                f"{t.state.status_name} in MAAS (owner {t.state.owner or 'unknown'}) but not"
                f" tagged for lab {ctx.inventory.name}: another user or lab may own it;"
                " release it in MAAS or fix the hostname"
            )
            ctx.set_progress(host, "error", t.error)
        else:
            ctx.show(host, t.state.status_name, t.state.system_id)

    async def _commission(self, ctx: StageContext, maas: MaasDriver, t: Tracker) -> None:
        assert t.system_id is not None
        host = t.machine.hostname
        t.attempts += 1
        # Record the attempt before the call: a crash after it must not commission again.
        ctx.set_progress(host, "commissioning", f"attempt {t.attempts}", {"attempts": t.attempts})
        t.state = await maas.commission(t.system_id, host)
        ctx.event(f"{host}: commissioning (attempt {t.attempts})")

    async def _retry_or_fail(self, ctx: StageContext, maas: MaasDriver, t: Tracker) -> None:
        assert t.state is not None
        limit = ctx.inventory.maas.commission_retries
        retries_used = max(0, t.attempts - 1)
        if retries_used >= limit:
            t.error = (
                f"{t.state.status_name} after {t.attempts} attempt(s):"
                f" {t.state.status_message or 'no message from MAAS'}"
            )
            t.finished = time.monotonic()
            ctx.set_progress(t.machine.hostname, "failed", t.error, {"attempts": t.attempts})
            return
        ctx.note(
            f"{t.machine.hostname}: {t.state.status_name} ({t.state.status_message});"
            f" retrying ({retries_used + 1} of {limit})"
        )
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
                   create: list[str]) -> None:
        """Converge this lab's tags: the planned creates (`have`: the tags the plan read), then
        one update per changed tag."""
        inv = ctx.inventory
        ours = set(ctx.identities(TAG_IDENTITY))
        wanted: dict[str, set[str]] = {tag: set() for tag in all_wanted_tags(inv)}
        carrying: dict[str, set[str]] = {tag: set() for tag in wanted}
        for t in machines:
            assert t.state is not None and t.system_id is not None
            for tag in wanted_tags(inv, t.machine):
                wanted[tag].add(t.system_id)
            for tag in t.state.tags:
                carrying.setdefault(tag, set()).add(t.system_id)
        async def create_tag(tag: str) -> None:
            await maas.create_tag(tag, f"botlab lab {inv.name}")
            ctx.set_identity(TAG_IDENTITY, tag, "ours")

        await asyncio.gather(*(create_tag(tag) for tag in create))
        have = have | set(create)
        for tag in sorted(set(wanted) & have - ours):
            ctx.set_identity(TAG_IDENTITY, tag, "ours")

        async def update(tag: str) -> None:
            add = sorted(wanted.get(tag, set()) - carrying.get(tag, set()))
            remove = sorted(carrying.get(tag, set()) - wanted.get(tag, set()))
            if add or remove:
                await maas.update_tag(tag, add=add, remove=remove)
                ctx.event(f"tag {tag}: +{len(add)} -{len(remove)} machines")

        # Tags of this lab that no machine wants any more (a role dropped) are emptied too.
        await asyncio.gather(*(update(tag) for tag in sorted(set(wanted) | (ours & have))))
        await self._untag_departed(ctx, maas, have)

    async def _untag_departed(self, ctx: StageContext, maas: MaasDriver, have: set[str]) -> None:
        """Machines that left the inventory lose this lab's tags (they stay enlisted)."""
        inv = ctx.inventory
        known = ctx.identities(IDENTITY)
        current = {m.hostname for m in inv.machines}
        departed = {sid: host for host, sid in known.items() if host not in current}
        if not departed:
            return
        ours = set(ctx.identities(TAG_IDENTITY)) & have
        for tag in sorted(ours):
            members = await maas.tagged(tag)
            gone = sorted(members & set(departed))
            if gone:
                await maas.update_tag(tag, remove=gone)
        for sid, host in departed.items():
            ctx.event(f"{host} ({sid}) left the inventory: removed this lab's tags")
            ctx.store.forget_identity(IDENTITY, host)

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
        found = await self._resolve(ctx, maas)
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

    async def destroy(self, ctx: StageContext) -> None:
        """Remove this lab's tags and nothing else: machines stay enlisted."""
        inv = ctx.inventory
        maas = await ctx.drivers.maas()
        have = await maas.tag_names()
        ours = (set(ctx.identities(TAG_IDENTITY)) | all_wanted_tags(inv)) & have
        for tag in sorted(ours):
            await maas.delete_tag(tag)
            ctx.store.forget_identity(TAG_IDENTITY, tag)
            ctx.event(f"deleted tag {tag}")
