"""The core behind each CLI command: load the inventory, take the lock, open the store,
run the pipeline and return results. The CLI only parses flags and renders what comes back."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from botlab.context import RunContext
from botlab.errors import UsageError
from botlab.inventory import Inventory, find_inventory, load_inventory
from botlab.pipeline import Pipeline, Rendered, RunResult, Stage, StagePlan
from botlab.state import Event, LabLock, ProgressRecord, StageRecord, StateStore, ensure_private_dir

if TYPE_CHECKING:
    from botlab.drivers import Drivers
    from botlab.report import Reporter


def _default_stages() -> Sequence[Stage]:
    from botlab.stages import default_stages

    return default_stages()


def _default_drivers(inventory: Inventory, environ: Mapping[str, str]) -> Drivers:
    from botlab.drivers import Drivers

    return Drivers(inventory, environ)


@dataclass
class Environment:
    """Everything a command reads from outside: swap it in tests instead of patching globals."""

    cwd: Path = field(default_factory=Path.cwd)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stages: Callable[[], Sequence[Stage]] = _default_stages
    drivers: Callable[[Inventory, Mapping[str, str]], Drivers] = _default_drivers

    @property
    def interactive(self) -> bool:
        return self.stderr.isatty()


def load(env: Environment, inventory_option: str | None) -> Inventory:
    return load_inventory(find_inventory(inventory_option, env.environ, env.cwd))


class _Session:
    """One writing command on one lab: lock, store, run record, log file."""

    def __init__(self, env: Environment, inventory: Inventory, command: str) -> None:
        self.env = env
        self.inventory = inventory
        self.command = command
        self.lock = LabLock(inventory.state_dir)
        self.store: StateStore | None = None
        self.run_id = 0
        self.log_path: Path | None = None
        self._handler: logging.Handler | None = None

    def __enter__(self) -> _Session:
        self.lock.acquire(self.command)
        self.store = StateStore(self.inventory.state_dir)
        return self

    def begin_run(self) -> int:
        assert self.store is not None
        self.run_id = self.store.run_started(self.command)
        if self.lock.stale is not None:
            stale = self.lock.stale
            self.store.add_event(
                self.run_id,
                None,
                f"took over the lock left by pid {stale.pid} on {stale.host} ({stale.command})",
                "warning",
            )
        self._start_log()
        return self.run_id

    def _start_log(self) -> None:
        from botlab.secrets import RedactingFilter

        logs = ensure_private_dir(self.inventory.state_dir / "logs")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self.log_path = logs / f"{stamp}-run{self.run_id}-{self.command.split()[0]}.log"
        fd = os.open(self.log_path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(RedactingFilter())
        logger = logging.getLogger("botlab")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        self._handler = handler

    def context(self, reporter: Reporter, drivers: Drivers) -> RunContext:
        assert self.store is not None
        return RunContext(
            inventory=self.inventory,
            store=self.store,
            reporter=reporter,
            drivers=drivers,
            environ=self.env.environ,
            run_id=self.run_id,
            lock_stale_pid=self.lock.stale.pid if self.lock.stale else None,
            log_path=str(self.log_path) if self.log_path else None,
        )

    def end_run(self, result: str) -> None:
        if self.store is not None and self.run_id:
            self.store.run_ended(self.run_id, result)

    async def run(self, reporter: Reporter, drivers: Drivers,
                  work: Callable[[RunContext], Awaitable[RunResult]]) -> RunResult:
        """Record a run around `work` and end it with its result, also when interrupted."""
        self.begin_run()
        ctx = self.context(reporter, drivers)
        try:
            result = await work(ctx)
        except BaseException:
            self.end_run("interrupted")
            raise
        self.end_run("refused" if result.refused else "done" if result.ok else "failed")
        return result

    def __exit__(self, *exc: object) -> None:
        if self._handler is not None:
            logging.getLogger("botlab").removeHandler(self._handler)
            self._handler.close()
        if self.store is not None:
            self.store.close()
        self.lock.release()


def up(
    env: Environment,
    inventory: Inventory,
    reporter: Reporter,
    *,
    target: str | None = None,
    from_stage: str | None = None,
    only: str | None = None,
    force: bool = False,
    command: str = "up",
    plan_file: Path | None = None,
) -> RunResult:
    """`botlab up`: one event loop for the whole command; with `plan_file`, execute exactly
    that saved plan (StalePlanError, exit 2, if the inventory or the world changed since)."""
    pipeline = Pipeline(env.stages())
    saved = None
    if plan_file is not None:
        if target or from_stage or only or force:
            raise UsageError("--plan runs exactly the saved plan: it takes no STAGE, --from, --only or --force")
        from botlab.savedplan import SavedPlan

        saved = SavedPlan.read(plan_file)
        saved.check_inventory(inventory)
        target = saved.stages[-1].stage if saved.stages else None

    async def main(session: _Session) -> RunResult:
        assert session.store is not None
        async with env.drivers(inventory, env.environ) as drivers:
            probe = RunContext(inventory, session.store, reporter, drivers, env.environ)
            stages = pipeline.select(probe, target=target, from_stage=from_stage, only=only)
            await pipeline.precheck(probe, stages)
            checked = await pipeline.check_saved(probe, stages, saved) if saved is not None else None
            return await session.run(reporter, drivers, lambda ctx: pipeline.up(
                ctx, stages, force=force, saved=saved, checked=checked))

    with _Session(env, inventory, command) as session:
        return asyncio.run(main(session))


def down(env: Environment, inventory: Inventory, reporter: Reporter) -> RunResult:
    pipeline = Pipeline(env.stages())

    async def main(session: _Session) -> RunResult:
        async with env.drivers(inventory, env.environ) as drivers:
            return await session.run(reporter, drivers, pipeline.down)

    with _Session(env, inventory, "down") as session:
        return asyncio.run(main(session))


def plan(env: Environment, inventory: Inventory, target: str | None, out: Path | None = None) -> list[StagePlan]:
    """Read-only: opens the store without creating it and records nothing; `out` saves the
    plan for `botlab up --plan`."""
    from botlab.report import SilentReporter

    pipeline = Pipeline(env.stages())
    stages = pipeline.through(target)  # unknown stage -> UsageError before any connection

    async def main(store: StateStore) -> list[StagePlan]:
        async with env.drivers(inventory, env.environ) as drivers:
            ctx = RunContext(inventory, store, SilentReporter(), drivers, env.environ)
            await pipeline.precheck(ctx, stages)
            return await pipeline.plan(ctx, stages)

    store = StateStore.open_existing(inventory.state_dir)
    try:
        plans = asyncio.run(main(store))
    finally:
        store.close()
    if out is not None:
        from botlab.savedplan import SavedPlan

        SavedPlan.of(out, inventory, plans).write()
    return plans


def render(env: Environment, inventory: Inventory, stage: str) -> Rendered:
    """What STAGE hands to its system; UsageError for a stage that renders nothing."""
    pipeline = Pipeline(env.stages())
    found = pipeline.stage(stage).render(inventory)
    if found is None:
        able = [s.name for s in pipeline.stages if type(s).render is not Stage.render]
        raise UsageError(f"stage '{stage}' renders nothing (stages that do: {', '.join(able) or 'none'})")
    return found


@dataclass
class StatusView:
    order: list[str]
    stages: dict[str, StageRecord]
    progress: dict[str, dict[str, ProgressRecord]]
    identities: dict[str, str]


def status(env: Environment, inventory: Inventory) -> StatusView:
    pipeline = Pipeline(env.stages())
    store = StateStore.open_existing(inventory.state_dir)
    try:
        records = store.stages()
        return StatusView(
            order=list(pipeline.order),
            stages=records,
            progress={name: store.progress(name) for name in pipeline.order},
            identities=store.identities("maas-machine"),
        )
    finally:
        store.close()


def logs(env: Environment, inventory: Inventory, stage: str | None) -> list[Event]:
    store = StateStore.open_existing(inventory.state_dir)
    try:
        if stage is None:
            runs = store.runs(limit=1)
            return store.events(run_id=runs[0].id) if runs else []
        Pipeline(env.stages()).stage(stage)
        run_id = store.last_run_of_stage(stage)
        return [] if run_id is None else store.events(run_id=run_id, stage=stage)
    finally:
        store.close()


def require_yes(yes: bool, interactive: bool, confirm: Callable[[], bool], what: str) -> None:
    if yes:
        return
    if not interactive:
        raise UsageError(f"{what} needs --yes when not run from a terminal")
    if not confirm():
        raise UsageError(f"{what} cancelled")
