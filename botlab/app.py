"""The core behind each CLI command: load the inventory, take the lock, open the store,
run the pipeline and return results. The CLI only parses flags and renders what comes back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from botlab.context import Consent, RunContext
from botlab.errors import StateError, UsageError
from botlab.inventory import Inventory, find_inventory, load_inventory
from botlab.pipeline import Pipeline, Rendered, RunResult, Stage, StagePlan
from botlab.state import Event, LabLock, ProgressRecord, StageRecord, StateStore, ensure_private_dir

if TYPE_CHECKING:
    from botlab.drivers import Drivers
    from botlab.lablock import Holder, LockStore, SharedLabLock
    from botlab.report import Reporter


def _default_stages() -> Sequence[Stage]:
    from botlab.stages import default_stages

    return default_stages()


def _default_drivers(inventory: Inventory, environ: Mapping[str, str]) -> Drivers:
    from botlab.drivers import Drivers

    return Drivers(inventory, environ)


def _default_lab_lock(inventory: Inventory, drivers: Drivers) -> LockStore:
    from botlab.lablock import maas_lock

    return maas_lock(inventory, drivers)


@dataclass
class Environment:
    """Everything a command reads from outside: swap it in tests instead of patching globals."""

    cwd: Path = field(default_factory=Path.cwd)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stages: Callable[[], Sequence[Stage]] = _default_stages
    drivers: Callable[[Inventory, Mapping[str, str]], Drivers] = _default_drivers
    # Where the lab's lock across folders lives (botlab/lablock.py): a MAAS tag by default.
    lab_lock: Callable[[Inventory, Drivers], LockStore] = _default_lab_lock

    @property
    def interactive(self) -> bool:
        return self.stderr.isatty()


def load(env: Environment, inventory_option: str | None) -> Inventory:
    return load_inventory(find_inventory(inventory_option, env.environ, env.cwd))


class _LogFile(logging.StreamHandler):
    """The run's log file. A write that fails (a full disk) is reported once, in one line,
    instead of logging's traceback per record; the run goes on without its log."""

    def __init__(self, stream: TextIO, path: Path, stderr: TextIO) -> None:
        super().__init__(stream)
        self.path = path
        self.stderr = stderr
        self.failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.failed = True
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or error
        with contextlib.suppress(Exception):
            self.stderr.write(f"botlab: warning: cannot write the run log {self.path}: {reason};"
                              " the run goes on without it\n")


class _Session:
    """One writing command on one lab: the local lock, the store, the lab's lock in the shared
    systems (taken once the drivers are open), the run record and the log file."""

    def __init__(self, env: Environment, inventory: Inventory, command: str) -> None:
        self.env = env
        self.inventory = inventory
        self.command = command
        self.lock = LabLock(inventory.state_dir)
        self.shared: SharedLabLock | None = None
        self.store: StateStore | None = None
        self.run_id = 0
        self.log_path: Path | None = None
        self._handler: logging.Handler | None = None

    def __enter__(self) -> _Session:
        self.lock.acquire(self.command)
        try:
            self.store = StateStore(self.inventory.state_dir)
        except BaseException:
            self.lock.release()
            raise
        return self

    @contextlib.asynccontextmanager
    async def shared_lock(self, drivers: Drivers) -> AsyncIterator[SharedLabLock]:
        """Hold the lab's lock in the shared systems (exit 3 if another run holds it) and
        release it on every way out: done, a failed stage, an error, Ctrl-C (cancellation)."""
        from botlab.lablock import SharedLabLock

        lock = SharedLabLock(self.inventory.name, self.env.lab_lock(self.inventory, drivers))
        await lock.acquire(self.inventory.state_dir.parent, self.command)
        self.shared = lock
        try:
            yield lock
        finally:
            try:
                await lock.release()
            except Exception as exc:  # never hide the run's own result
                from botlab.sanitize import one_line

                self.env.stderr.write(one_line(
                    f"botlab: warning: could not release lab '{self.inventory.name}''s lock"
                    f" ({lock.store.where}): {exc}") + "; `botlab unlock --yes` releases it\n")

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
        if self.shared is not None and self.shared.taken_over is not None:
            self.store.add_event(
                self.run_id, None,
                f"took over the lab's lock ({self.shared.store.where}) left by the dead run"
                f" {self.shared.taken_over.describe()}",
                "warning",
            )
        self._start_log()
        return self.run_id

    def _start_log(self) -> None:
        from botlab.secrets import RedactingFilter
        from botlab.state import os_problem

        logs = ensure_private_dir(self.inventory.state_dir / "logs")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        self.log_path = logs / f"{stamp}-run{self.run_id}-{self.command.split()[0]}.log"
        try:
            fd = os.open(self.log_path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        except OSError as exc:
            raise os_problem(self.log_path, exc) from None
        handler = _LogFile(os.fdopen(fd, "a", encoding="utf-8"), self.log_path, self.env.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(RedactingFilter())
        logger = logging.getLogger("botlab")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        self._handler = handler

    def context(self, reporter: Reporter, drivers: Drivers, consent: Consent | None = None) -> RunContext:
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
            consent=consent or Consent(),
        )

    def end_run(self, result: str) -> None:
        if self.store is not None and self.run_id:
            self.store.run_ended(self.run_id, result)

    async def run(self, reporter: Reporter, drivers: Drivers,
                  work: Callable[[RunContext], Awaitable[RunResult]], consent: Consent | None = None) -> RunResult:
        """Record a run around `work` and end it with its result, also when interrupted. A
        store that fails once the run has begun (a full disk) exits 1: the world may have
        changed, and `botlab up` resumes once the cause is fixed."""
        try:
            self.begin_run()
        except StateError:
            with contextlib.suppress(StateError):
                self.end_run("refused")  # recorded, but its log could not be opened
            raise
        ctx = self.context(reporter, drivers, consent)
        try:
            result = await work(ctx)
        except BaseException as exc:
            with contextlib.suppress(StateError):  # the store may be what failed
                self.end_run("interrupted")
            if isinstance(exc, StateError):
                exc.during_run()
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
    remove: Sequence[str] = (),
) -> RunResult:
    """`botlab up`: one event loop for the whole command; with `plan_file`, execute exactly
    that saved plan (StalePlanError, exit 2, if the inventory or the world changed since)."""
    pipeline = Pipeline(env.stages())
    consent = Consent(remove=frozenset(remove))
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
        async with env.drivers(inventory, env.environ) as drivers, session.shared_lock(drivers):
            probe = RunContext(inventory, session.store, reporter, drivers, env.environ, consent=consent)
            stages = pipeline.select(probe, target=target, from_stage=from_stage, only=only)
            await pipeline.precheck(probe, stages)
            checked = await pipeline.check_saved(probe, stages, saved) if saved is not None else None
            return await session.run(reporter, drivers, lambda ctx: pipeline.up(
                ctx, stages, force=force, saved=saved, checked=checked), consent)

    with _Session(env, inventory, command) as session:
        return asyncio.run(main(session))


def down(env: Environment, inventory: Inventory, reporter: Reporter) -> RunResult:
    pipeline = Pipeline(env.stages())

    async def main(session: _Session) -> RunResult:
        async with env.drivers(inventory, env.environ) as drivers, session.shared_lock(drivers):
            return await session.run(reporter, drivers, pipeline.down)

    with _Session(env, inventory, "down") as session:
        return asyncio.run(main(session))


def rebuild(env: Environment, inventory: Inventory, reporter: Reporter) -> RunResult:
    """`botlab rebuild`: down, then up, as one run under one hold of both locks, so no other
    run (from this folder or another) can slip in between the teardown and the build."""
    pipeline = Pipeline(env.stages())

    async def down_then_up(ctx: RunContext) -> RunResult:
        result = await pipeline.down(ctx)
        if not result.ok:
            return result
        stages = pipeline.select(ctx, target=None, from_stage=None, only=None)
        await pipeline.precheck(ctx, stages)
        return await pipeline.up(ctx, stages)

    async def main(session: _Session) -> RunResult:
        async with env.drivers(inventory, env.environ) as drivers, session.shared_lock(drivers):
            return await session.run(reporter, drivers, down_then_up)

    with _Session(env, inventory, "rebuild") as session:
        return asyncio.run(main(session))


def unlock(env: Environment, inventory: Inventory) -> Holder | str | None:
    """`botlab unlock --yes`: remove the lab's lock in the shared systems, whoever holds it,
    unless its holder is running on this host (LockedError, exit 3). Returns who held it."""
    from botlab.lablock import SharedLabLock

    async def main() -> Holder | str | None:
        async with env.drivers(inventory, env.environ) as drivers:
            return await SharedLabLock(inventory.name, env.lab_lock(inventory, drivers)).unlock()

    return asyncio.run(main())


def plan(env: Environment, inventory: Inventory, target: str | None, out: Path | None = None,
         remove: Sequence[str] = ()) -> list[StagePlan]:
    """Read-only: opens the store without creating it and records nothing; `out` saves the
    plan for `botlab up --plan`; `remove`: as `up --remove` would plan."""
    from botlab.report import SilentReporter

    pipeline = Pipeline(env.stages())
    stages = pipeline.through(target)  # unknown stage -> UsageError before any connection

    async def main(store: StateStore) -> list[StagePlan]:
        async with env.drivers(inventory, env.environ) as drivers:
            ctx = RunContext(inventory, store, SilentReporter(), drivers, env.environ,
                             consent=Consent(remove=frozenset(remove)))
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
