"""The stage contract and the runner: ordering, fingerprints, resume, drift and teardown.

Stages hold the policy of one step; the runner decides *whether* a stage runs (DESIGN's table)
and records the outcome in the checkpoint store. Nothing here talks to external systems.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from botlab.errors import BotlabError, StageError, UsageError
from botlab.state import DONE, FAILED, RUNNING, StageRecord

if TYPE_CHECKING:
    from botlab.context import RunContext, StageContext

STAGE_ORDER = ("enlist", "kubernetes", "gpu", "storage", "loadbalancer", "kubeflow")


@dataclass(frozen=True)
class Change:
    """One thing `apply` would do (or, with action "ok", one thing already in place)."""

    action: str  # create, commission, tag, deploy, update, delete ... or "ok"
    target: str  # what it acts on, e.g. "machine gpu-01"
    reason: str

    @property
    def is_noop(self) -> bool:
        return self.action == "ok"

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "target": self.target, "reason": self.reason}


@dataclass(frozen=True)
class Check:
    """One health check from `verify`."""

    name: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


class Stage(ABC):
    """A step of the lab. Subclasses set `name`, `sections` and `upstream`.

    `sections` are the inventory sections the stage reads and `upstream` the stages whose
    outputs it reads: together they are its fingerprint, so staleness follows data.
    Bump `version` when a change to the stage changes what `apply` produces.
    """

    name: ClassVar[str]
    sections: ClassVar[tuple[str, ...]] = ()
    upstream: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[int] = 1

    def inputs(self, ctx: StageContext) -> dict[str, Any]:
        """The slice of the inventory this stage reads (JSON-able, no secret values)."""
        return ctx.inventory.fingerprint_data(*self.sections)

    async def precheck(self, ctx: StageContext) -> None:  # noqa: B027 - optional hook
        """Raise InputError for bad input (missing secret, file) before anything is touched."""

    @abstractmethod
    async def plan(self, ctx: StageContext) -> list[Change]:
        """Read-only: what `apply` would change now, each with a reason."""

    @abstractmethod
    async def apply(self, ctx: StageContext) -> dict[str, Any]:
        """Converge the world to the inventory; return the stage's outputs."""

    @abstractmethod
    async def verify(self, ctx: StageContext) -> list[Check]:
        """Health checks proving the stage's promise."""

    async def destroy(self, ctx: StageContext) -> None:  # noqa: B027 - nothing to tear down
        """Undo what `apply` made in shared systems (for `botlab down`)."""


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
    name: str
    decision: Decision
    changes: list[Change]
    note: str = ""

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

    @property
    def ok(self) -> bool:
        return self.failed is None


class Pipeline:
    """The ordered stages of a lab and the rules for running them."""

    def __init__(self, stages: Sequence[Stage], order: Sequence[str] = STAGE_ORDER) -> None:
        by_name = {s.name: s for s in stages}
        self.order = [n for n in order if n in by_name] + [n for n in by_name if n not in order]
        self.stages = [by_name[n] for n in self.order]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        known = ", ".join(self.order) or "none"
        if name in STAGE_ORDER:
            raise UsageError(f"stage '{name}' is not available in this version of botlab (available: {known})")
        raise UsageError(f"unknown stage '{name}' (stages: {known})")

    def through(self, target: str | None) -> list[Stage]:
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
    ) -> list[Stage]:
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

    def _inputs(self, stage: Stage, sctx: StageContext) -> dict[str, Any]:
        upstream = {}
        for name in stage.upstream:
            record = sctx.store.stage(name)
            upstream[name] = record.outputs if record and record.status == DONE else None
        return {"inventory": stage.inputs(sctx), "upstream": upstream}

    async def precheck(self, ctx: RunContext, stages: Sequence[Stage]) -> None:
        for stage in stages:
            await stage.precheck(ctx.for_stage(stage.name))

    async def plan(self, ctx: RunContext, target: str | None) -> list[StagePlan]:
        plans: list[StagePlan] = []
        will_run: list[str] = []
        for stage in self.through(target):
            sctx = ctx.for_stage(stage.name)
            inputs = self._inputs(stage, sctx)
            decision = decide(ctx.store.stage(stage.name), fingerprint_of(stage, inputs), inputs, force=False)
            changes = await stage.plan(sctx)
            note = ""
            waits = [u for u in stage.upstream if u in will_run]
            if waits:
                note = f"after {', '.join(waits)} run{'s' if len(waits) == 1 else ''}, its outputs decide"
            elif not decision.run and any(not c.is_noop for c in changes):
                note = "drift: verify will fail and the stage will be re-applied"
            if decision.run or note.startswith("drift"):
                will_run.append(stage.name)
            plans.append(StagePlan(stage.name, decision, changes, note))
        return plans

    async def up(
        self,
        ctx: RunContext,
        stages: Sequence[Stage],
        *,
        force: bool = False,
    ) -> RunResult:
        result = RunResult([])
        for stage in stages:
            outcome = await self._run_stage(ctx, stage, force=force)
            result.outcomes.append(outcome)
            if outcome.action == "failed":
                result.failed = outcome
                break
        return result

    async def _run_stage(self, ctx: RunContext, stage: Stage, *, force: bool) -> StageOutcome:
        sctx = ctx.for_stage(stage.name)
        inputs = self._inputs(stage, sctx)
        fingerprint = fingerprint_of(stage, inputs)
        record = ctx.store.stage(stage.name)
        stale_pid = ctx.lock_stale_pid if record and record.status == RUNNING else None
        decision = decide(record, fingerprint, inputs, force=force, lock_stale_pid=stale_pid)
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
                outcome.action = "reapplied"
                outcome.reason = "drift: " + "; ".join(f"{c.name}: {c.detail}" for c in failing)
                sctx.event(outcome.reason, level="warning")
                ctx.reporter.note(stage.name, outcome.reason)
            ctx.store.stage_started(stage.name, fingerprint, inputs, ctx.run_id)
            outcome.changes = await stage.plan(sctx)
            ctx.reporter.changes(stage.name, outcome.changes)
            outputs = await stage.apply(sctx)
            outcome.checks = await stage.verify(sctx)
            failing = [c for c in outcome.checks if not c.ok]
            if failing:
                raise StageError("verify failed after apply: " + "; ".join(f"{c.name}: {c.detail}" for c in failing))
            ctx.store.stage_done(stage.name, outputs)
            return outcome
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
    def _record_failure(ctx: RunContext, stage: Stage, outcome: StageOutcome, exc: BaseException) -> None:
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
        """Tear down in reverse order every stage that has a record; stop at the first failure."""
        result = RunResult([])
        for stage in reversed(self.stages):
            if ctx.store.stage(stage.name) is None:
                continue
            sctx = ctx.for_stage(stage.name)
            started = time.monotonic()
            ctx.reporter.stage_begin(stage.name, "tearing down")
            outcome = StageOutcome(stage.name, "destroyed", "botlab down")
            try:
                await stage.destroy(sctx)
                ctx.store.stage_reset(stage.name)
                sctx.event(f"stage {stage.name} torn down")
            except Exception as exc:
                self._record_failure(ctx, stage, outcome, exc)
                result.failed = outcome
            finally:
                outcome.seconds = time.monotonic() - started
                ctx.reporter.stage_end(outcome)
            result.outcomes.append(outcome)
            if result.failed:
                break
        return result


StageFactory = Callable[[], Sequence[Stage]]
