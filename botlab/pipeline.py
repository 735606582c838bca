"""The stage contract and the runner: ordering, fingerprints, resume, drift and teardown.

Stages hold the policy of one step; the runner decides *whether* a stage runs (DESIGN's table)
and records the outcome in the checkpoint store. A stage's `plan` returns typed change
objects and `apply` executes exactly that plan; `botlab plan`, `--output json`, the live
display and saved plans render those same objects. Nothing here talks to external systems.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from botlab.errors import BotlabError, ExitStatus, StageError, StalePlanError, UsageError
from botlab.outputs import Outputs, to_plain
from botlab.state import DONE, FAILED, RUNNING, StageRecord

if TYPE_CHECKING:
    from botlab.context import RunContext, StageContext
    from botlab.inventory import Inventory
    from botlab.savedplan import SavedPlan, SavedStage

STAGE_ORDER = ("enlist", "kubernetes", "gpu", "storage", "loadbalancer", "kubeflow")
NOOP = "ok"
REFUSED = "refused"  # a change `up` will not make without the operator's explicit consent


class RefusedError(BotlabError):
    """A stage's plan holds a change that needs the operator's explicit consent (removing a
    host that still carries workloads). Raised before the stage touches anything; exit 2."""

    exit_status = ExitStatus.BAD_INPUT


@dataclass(frozen=True)
class Change:
    """One thing `apply` will do (or, with action "ok", one thing already in place).

    Stages subclass it with the fields `apply` needs to run the change (a machine, a tag,
    an application), so what `plan` shows is what `apply` executes."""

    action: str  # create, commission, tag, deploy, config ... or "ok"
    target: str  # what it acts on, e.g. "machine gpu-01"
    reason: str

    @property
    def is_noop(self) -> bool:
        return self.action == NOOP

    def as_dict(self) -> dict[str, str]:
        """What an operator reads (text and JSON output)."""
        return {"action": self.action, "target": self.target, "reason": self.reason}

    def to_data(self) -> dict[str, Any]:
        """Everything the change carries, for saved plans."""
        return {"kind": type(self).__name__, **to_plain(self)}


@dataclass(frozen=True)
class Check:
    """One health check from `verify`."""

    name: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Plan:
    """A stage's plan: its changes (in the order apply runs them, then what is in place) and
    `observed`, the JSON-able digest of what was read from the world to make it (a saved
    plan is refused when a fresh read differs). Stages subclass it to carry what they read,
    so `apply` does not read it again."""

    changes: list[Change] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)

    @property
    def todo(self) -> list[Change]:
        return [c for c in self.changes if not c.is_noop]

    @property
    def refusals(self) -> list[Change]:
        """Changes `up` will not make without the operator's consent (`up` stops, exit 2)."""
        return [c for c in self.changes if c.action == REFUSED]


P = TypeVar("P", bound=Plan)


@dataclass(frozen=True)
class Inputs:
    """What a stage reads, declared once; the fingerprint hashes exactly this.

    `keys` are inventory key paths: a section (`kubernetes`), a key in it (`maas.url`), a key
    of every machine (`machines[].roles`), or an exclusion (`-kubernetes.timeout`). `files`
    name files whose contents count (label -> the file, from the inventory). `upstream` are
    the outputs types of the stages it reads."""

    keys: tuple[str, ...] = ()
    files: tuple[tuple[str, Callable[[Inventory], Path | None]], ...] = ()
    upstream: tuple[type[Outputs], ...] = ()

    def inventory_data(self, inv: Inventory) -> dict[str, Any]:
        full = inv.fingerprint_data()
        out: dict[str, Any] = {}
        for key in self.keys:
            if not key.startswith("-"):
                out = _merge(out, _select(full, _parts(key)))
        for key in self.keys:
            if key.startswith("-"):
                _drop(out, _parts(key[1:]))
        if self.files:
            out["files"] = {label: _file_digest(where(inv)) for label, where in self.files}
        return out


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("[]", ".[]").split(".") if p]


def _select(data: Any, parts: list[str]) -> Any:
    """The part of `data` at `parts`, nested as in `data` (`[]` maps over a list)."""
    if not parts:
        return data
    head, rest = parts[0], parts[1:]
    if head == "[]":
        return [_select(item, rest) for item in data] if isinstance(data, list) else None
    if not isinstance(data, dict):
        return None
    if head not in data:
        raise ValueError(f"unknown inventory key {head!r}")
    return {head: _select(data[head], rest)}


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _merge(out[key], value) if key in out else value
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [_merge(x, y) for x, y in zip(a, b, strict=True)]
    return b


def _drop(data: Any, parts: list[str]) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if head == "[]" and isinstance(data, list):
        for item in data:
            _drop(item, rest)
    elif isinstance(data, dict) and head in data:
        if rest:
            _drop(data[head], rest)
        else:
            del data[head]


def _file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # precheck reports it


class Stage(ABC, Generic[P]):
    """A step of the lab. Subclasses set `name`, `inputs` and `outputs`.

    Bump `version` when a change to the stage changes what `apply` produces.
    """

    name: ClassVar[str]
    inputs: ClassVar[Inputs] = Inputs()
    outputs: ClassVar[type[Outputs] | None] = None
    version: ClassVar[int] = 1
    systems: ClassVar[tuple[str, ...]] = ()  # where `destroy` looks (for "nothing of lab X found in ...")

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(o.stage for o in self.inputs.upstream)

    async def precheck(self, ctx: StageContext) -> None:
        """Raise InputError for bad input (missing secret, file) before anything is touched."""

    @abstractmethod
    async def plan(self, ctx: StageContext) -> P:
        """Read-only: what `apply` would change now, each change with a reason."""

    @abstractmethod
    async def apply(self, ctx: StageContext, plan: P) -> Outputs | None:
        """Execute `plan`; return the stage's outputs."""

    @abstractmethod
    async def verify(self, ctx: StageContext) -> list[Check]:
        """Health checks proving the stage's promise."""

    async def destroy(self, ctx: StageContext) -> str | None:
        """Undo what `apply` made in shared systems (for `botlab down`), found in the world:
        it is called with or without a record of the stage (a lost state folder), so it reads
        what is there, named after the lab. Returns what it found and removed, None for nothing."""
        return None

    def render(self, inventory: Inventory) -> Rendered | None:
        """What the stage hands to its system (`botlab render STAGE`); None: nothing."""
        return None


@dataclass(frozen=True)
class Rendered:
    kind: str  # what it is, e.g. "bundle"
    text: str


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint_of(stage: Stage, inputs: Mapping[str, Any]) -> str:
    doc = {"stage": stage.name, "version": stage.version, "inputs": inputs}
    return hashlib.sha256(canonical(doc).encode()).hexdigest()


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two JSON documents (for "inputs changed: ...")."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(changed_keys(old[key], new[key], path))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out.extend(changed_keys(a, b, f"{prefix}[{i}]"))
        return out
    return [] if old == new else [prefix or "(all)"]


@dataclass(frozen=True)
class Decision:
    """What `up` does with a stage: run it (plan, apply, verify) or verify only."""

    run: bool
    reason: str


def decide(
    record: StageRecord | None,
    fingerprint: str,
    inputs: Mapping[str, Any],
    *,
    force: bool,
    lock_stale_pid: int | None = None,
    outputs_current: bool = True,
) -> Decision:
    if record is None:
        return Decision(True, "never run")
    if record.status == FAILED:
        return Decision(True, f"failed last time: {record.error or 'unknown error'}")
    if record.status == RUNNING:
        who = f" (run by pid {lock_stale_pid})" if lock_stale_pid else ""
        return Decision(True, f"interrupted while running{who}; resuming")
    if record.status != DONE:
        return Decision(True, f"status {record.status}")
    if record.fingerprint != fingerprint:
        keys = changed_keys(record.inputs or {}, dict(inputs))
        shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
        return Decision(True, f"inputs changed: {shown or 'stage version'}")
    if not outputs_current:
        return Decision(True, "its recorded outputs are from another version of botlab")
    if force:
        return Decision(True, "--force")
    return Decision(False, "done, inputs unchanged: verify only")


@dataclass
class StageOutcome:
    name: str
    action: str  # ran, verified, reapplied, failed, skipped, destroyed
    reason: str
    changes: list[Change] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "action": self.action,
            "reason": self.reason,
            "changes": [c.as_dict() for c in self.changes],
            "checks": [c.as_dict() for c in self.checks],
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class StagePlan:
    """One stage in `botlab plan`: whether `up` would run it, and its plan."""

    name: str
    decision: Decision
    plan: Plan
    note: str = ""
    drift: bool = False  # done, but the world differs: verify will fail and it re-applies

    @property
    def changes(self) -> list[Change]:
        return self.plan.changes

    @property
    def runs(self) -> bool:
        return self.decision.run or self.drift

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "runs": self.decision.run,
            "reason": self.decision.reason,
            "note": self.note,
            "changes": [c.as_dict() for c in self.changes],
        }


@dataclass
class RunResult:
    outcomes: list[StageOutcome]
    failed: StageOutcome | None = None
    refused: str | None = None  # a saved plan that no longer held, at the stage it stopped

    @property
    def ok(self) -> bool:
        return self.failed is None and self.refused is None


class Pipeline:
    """The ordered stages of a lab and the rules for running them."""

    def __init__(self, stages: Sequence[Stage[Any]], order: Sequence[str] = STAGE_ORDER) -> None:
        by_name = {s.name: s for s in stages}
        self.order = [n for n in order if n in by_name] + [n for n in by_name if n not in order]
        self.stages = [by_name[n] for n in self.order]

    def stage(self, name: str) -> Stage[Any]:
        for s in self.stages:
            if s.name == name:
                return s
        known = ", ".join(self.order) or "none"
        if name in STAGE_ORDER:
            raise UsageError(f"stage '{name}' is not available in this version of botlab (available: {known})")
        raise UsageError(f"unknown stage '{name}' (stages: {known})")

    def through(self, target: str | None) -> list[Stage[Any]]:
        if target is None:
            return list(self.stages)
        index = self.order.index(self.stage(target).name)
        return self.stages[: index + 1]

    def select(
        self,
        ctx: RunContext,
        *,
        target: str | None,
        from_stage: str | None = None,
        only: str | None = None,
    ) -> list[Stage[Any]]:
        """The stages `up` runs, checking that skipped earlier stages are done (exit 2 if not)."""
        if only and (target or from_stage):
            raise UsageError("--only cannot be combined with a STAGE argument or --from")
        if only:
            first = self.stage(only)
            chosen = [first]
        else:
            chosen = self.through(target)
            if from_stage:
                first = self.stage(from_stage)
                if first not in chosen:
                    raise UsageError(f"--from {from_stage} comes after the target stage {target}")
                chosen = chosen[chosen.index(first) :]
            else:
                return chosen
        for earlier in self.stages[: self.stages.index(first)]:
            record = ctx.store.stage(earlier.name)
            if record is None or record.status != DONE:
                status = record.status if record else "never run"
                raise UsageError(
                    f"stage '{earlier.name}' must be done before running '{first.name}' alone"
                    f" (it is {status}); run `botlab up {first.name}` to run it first"
                )
        return chosen

    def _inputs(self, stage: Stage[Any], sctx: StageContext) -> dict[str, Any]:
        upstream = {}
        for name in stage.upstream:
            record = sctx.store.stage(name)
            upstream[name] = record.outputs if record and record.status == DONE else None
        return {"inventory": stage.inputs.inventory_data(sctx.inventory), "upstream": upstream}

    def _decide(self, ctx: RunContext, stage: Stage[Any], *, force: bool) -> tuple[Decision, str, dict[str, Any]]:
        sctx = ctx.for_stage(stage.name)
        inputs = self._inputs(stage, sctx)
        fingerprint = fingerprint_of(stage, inputs)
        record = ctx.store.stage(stage.name)
        stale_pid = ctx.lock_stale_pid if record and record.status == RUNNING else None
        current = stage.outputs is None or record is None or record.status != DONE or (
            stage.outputs.from_data(record.outputs) is not None)
        decision = decide(record, fingerprint, inputs, force=force, lock_stale_pid=stale_pid,
                          outputs_current=current)
        return decision, fingerprint, inputs

    async def precheck(self, ctx: RunContext, stages: Sequence[Stage[Any]]) -> None:
        still = sorted(ctx.consent.remove & set(ctx.inventory.hostnames))
        if still:
            raise UsageError(f"--remove {still[0]}: {still[0]} is in the inventory; take it out of"
                             f" `machines` in {ctx.inventory.path} first")
        for stage in stages:
            await stage.precheck(ctx.for_stage(stage.name))

    async def plan(self, ctx: RunContext, stages: Sequence[Stage[Any]]) -> list[StagePlan]:
        """Every stage's plan, read-only, as `up` would see it now."""
        plans: list[StagePlan] = []
        will_run: list[str] = []
        for stage in stages:
            decision, _, _ = self._decide(ctx, stage, force=False)
            plan = await stage.plan(ctx.for_stage(stage.name))
            note = ""
            waits = [u for u in stage.upstream if u in will_run]
            drift = not decision.run and bool(plan.todo)
            if waits:
                note = f"after {', '.join(waits)} run{'s' if len(waits) == 1 else ''}, its outputs decide"
            elif drift:
                note = "drift: verify will fail and the stage will be re-applied"
            if decision.run or drift:
                will_run.append(stage.name)
            plans.append(StagePlan(stage.name, decision, plan, note, drift))
        return plans

    async def check_saved(self, ctx: RunContext, stages: Sequence[Stage[Any]], saved: SavedPlan) -> dict[str, Plan]:
        """Before anything runs: every stage of the saved plan whose upstream does not run
        first is planned again and must match it (StalePlanError naming what differs).
        Returns those fresh plans, which `up` executes while nothing has changed since."""
        from botlab.savedplan import differences

        names = [s.name for s in stages]
        if names != [s.stage for s in saved.stages]:
            raise StalePlanError(f"the saved plan covers stages {', '.join(s.stage for s in saved.stages)};"
                                 f" this botlab has {', '.join(names)}: make the plan again")
        fresh = await self.plan(ctx, stages)
        running: set[str] = set()
        problems: list[str] = []
        checked: dict[str, Plan] = {}
        for stage, now, then in zip(stages, fresh, saved.stages, strict=True):
            if not set(stage.upstream) & running:
                problems += differences(then, now)
                checked[stage.name] = now.plan
            if then.runs:
                running.add(stage.name)
        if problems:
            raise StalePlanError(saved.refusal(problems))
        return checked

    async def up(
        self,
        ctx: RunContext,
        stages: Sequence[Stage[Any]],
        *,
        force: bool = False,
        saved: SavedPlan | None = None,
        checked: Mapping[str, Plan] | None = None,
    ) -> RunResult:
        """Run `stages` in order; with `saved`, execute exactly that plan (`checked`: the
        fresh plans that `check_saved` found equal to it)."""
        result = RunResult([])
        ready = dict(checked or {})
        for stage in stages:
            then = saved.stage(stage.name) if saved else None
            try:
                outcome = await self._run_stage(ctx, stage, force=force, saved=then,
                                                ready=ready.pop(stage.name, None))
            except (StalePlanError, RefusedError) as exc:
                result.outcomes.append(StageOutcome(stage.name, "refused", str(exc)))
                result.refused = str(exc)
                ctx.store.add_event(ctx.run_id, stage.name, f"refused: {exc}", "error")
                break
            result.outcomes.append(outcome)
            if outcome.action in ("ran", "reapplied"):
                ready.clear()  # the world moved: later stages are planned afresh and compared
            if outcome.action == "failed":
                result.failed = outcome
                break
        return result

    async def _run_stage(self, ctx: RunContext, stage: Stage[Any], *, force: bool, saved: SavedStage | None = None,
                         ready: Plan | None = None) -> StageOutcome:
        sctx = ctx.for_stage(stage.name)
        decision, fingerprint, inputs = self._decide(ctx, stage, force=force)
        if saved is not None and decision.run != saved.decided_run:
            from botlab.savedplan import decision_text

            was, now = decision_text(saved.decided_run, saved.reason), decision_text(decision.run, decision.reason)
            raise StalePlanError(saved.refusal([f"{stage.name}: the plan said {was}, now it would {now}"]))
        started = time.monotonic()
        ctx.reporter.stage_begin(stage.name, decision.reason)
        sctx.event(f"stage {stage.name}: {decision.reason}")
        outcome = StageOutcome(stage.name, "ran", decision.reason)
        try:
            if not decision.run:
                outcome.checks = await stage.verify(sctx)
                failing = [c for c in outcome.checks if not c.ok]
                if not failing:
                    outcome.action = "verified"
                    return outcome
                drift = "drift: " + "; ".join(f"{c.name}: {c.detail}" for c in failing)
                if saved is not None and not saved.runs:
                    raise StalePlanError(saved.refusal([f"{stage.name}: the plan said verify only, but {drift}"]))
                outcome.action = "reapplied"
                outcome.reason = drift
                sctx.event(outcome.reason, level="warning")
                ctx.reporter.note(stage.name, outcome.reason)
            plan = ready if ready is not None else await stage.plan(sctx)
            if saved is not None and ready is None:
                from botlab.savedplan import differences

                problems = differences(saved, StagePlan(stage.name, decision, plan, drift=not decision.run))
                if problems:
                    raise StalePlanError(saved.refusal(problems))
            if plan.refusals:
                raise RefusedError(f"{stage.name}: " + "; ".join(f"{c.target}: {c.reason}" for c in plan.refusals))
            ctx.store.stage_started(stage.name, fingerprint, inputs, ctx.run_id)
            outcome.changes = plan.changes
            ctx.reporter.changes(stage.name, plan.changes)
            outputs = await stage.apply(sctx, plan)
            outcome.checks = await stage.verify(sctx)
            failing = [c for c in outcome.checks if not c.ok]
            if failing:
                raise StageError("verify failed after apply: " + "; ".join(f"{c.name}: {c.detail}" for c in failing))
            ctx.store.stage_done(stage.name, outputs.to_data() if outputs is not None else {})
            return outcome
        except (StalePlanError, RefusedError):
            outcome.action = "refused"  # nothing of this stage ran
            raise
        except Exception as exc:  # every failure is recorded, bugs included
            self._record_failure(ctx, stage, outcome, exc)
            return outcome
        except (KeyboardInterrupt, asyncio.CancelledError):
            self._record_failure(ctx, stage, outcome, StageError("interrupted"))
            raise
        finally:
            outcome.seconds = time.monotonic() - started
            ctx.reporter.stage_end(outcome)

    @staticmethod
    def _record_failure(ctx: RunContext, stage: Stage[Any], outcome: StageOutcome, exc: BaseException) -> None:
        if isinstance(exc, BotlabError):
            message = str(exc)
        else:
            message = f"internal error: {type(exc).__name__}: {exc} (details in {ctx.log_hint})"
            ctx.log_exception(exc)
        outcome.action = "failed"
        outcome.error = message
        if ctx.store.stage(stage.name) is None:
            # Failed before it started (e.g. while verifying): record it as failed anyway.
            ctx.store.stage_started(stage.name, "", {}, ctx.run_id)
        ctx.store.stage_failed(stage.name, message)
        ctx.store.add_event(ctx.run_id, stage.name, f"failed: {message}", "error")

    async def down(self, ctx: RunContext) -> RunResult:
        """Tear down every stage in reverse order; stop at the first failure. Stages without a
        record are asked too: their destroy reads the world (the lab's model and tags are
        named after the lab), so a lost state folder still tears the lab down."""
        result = RunResult([])
        found_any = False
        for stage in reversed(self.stages):
            sctx = ctx.for_stage(stage.name)
            recorded = ctx.store.stage(stage.name) is not None
            started = time.monotonic()
            how = "tearing down" if recorded else "tearing down (no record: what the world holds)"
            ctx.reporter.stage_begin(stage.name, how)
            outcome = StageOutcome(stage.name, "destroyed", "botlab down")
            try:
                found = await stage.destroy(sctx)
                ctx.store.stage_reset(stage.name)
                if found:
                    found_any = True
                    outcome.reason = found
                    sctx.event(f"stage {stage.name} torn down: {found}")
                else:
                    where = " or ".join(stage.systems) or "the world"
                    outcome.action, outcome.reason = "nothing found", f"nothing of lab {ctx.inventory.name} in {where}"
                    sctx.event(f"stage {stage.name}: {outcome.reason}")
            except Exception as exc:
                self._record_failure(ctx, stage, outcome, exc)
                result.failed = outcome
            finally:
                outcome.seconds = time.monotonic() - started
                ctx.reporter.stage_end(outcome)
            result.outcomes.append(outcome)
            if result.failed:
                break
        if not result.failed and not found_any:
            systems = list(dict.fromkeys(s for stage in reversed(self.stages) for s in stage.systems))
            message = f"nothing of lab {ctx.inventory.name} found" + (f" in {' or '.join(systems)}" if systems else "")
            ctx.reporter.note("down", message)
            ctx.store.add_event(ctx.run_id, None, message)
        return result


StageFactory = Callable[[], Sequence[Stage[Any]]]
