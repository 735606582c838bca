"""Small test-only stages over a fake "world" folder, to exercise the runner without any
external system. The world is plain files: one file per item a stage converges, plus an
append-only journal of every apply step so tests can tell what was redone.

Environment hooks: BOTLAB_TEST_CRASH=<stage> raises a bug-like exception in that stage;
BOTLAB_TEST_LEAK=1 makes every stage write the revealed MAAS key into an event and progress
(a careless stage) so tests can prove redaction. Faults are files too: `<world>/fail-<stage>`
makes that stage's apply fail (its text is the error), `<world>/slow` makes every item take
that many seconds (for kill -9 tests).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from botlab.context import StageContext
from botlab.errors import StageError
from botlab.outputs import Outputs
from botlab.pipeline import Change, Check, Inputs, Plan, Stage


def world(ctx: StageContext) -> Path:
    path = Path(ctx.environ["BOTLAB_TEST_WORLD"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def journal(world_dir: Path) -> list[str]:
    path = world_dir / "journal"
    return path.read_text().splitlines() if path.exists() else []


def _append(world_dir: Path, line: str) -> None:
    with open(world_dir / "journal", "a") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@dataclass(frozen=True)
class WriteItem(Change):
    """A typed change: write `content` into the item's world file."""

    key: str = ""
    content: str = ""


@dataclass(frozen=True)
class ItemsOutputs(Outputs):
    stage: ClassVar[str] = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnlistItems(ItemsOutputs):
    stage: ClassVar[str] = "enlist"


@dataclass(frozen=True)
class ClusterItems(ItemsOutputs):
    stage: ClassVar[str] = "kubernetes"


@dataclass(frozen=True)
class PoolItems(ItemsOutputs):
    stage: ClassVar[str] = "loadbalancer"


@dataclass
class ItemsPlan(Plan):
    wanted: dict[str, str] = field(default_factory=dict)


class ItemStage(Stage[ItemsPlan]):
    """Converges one world file per item; items come from `items(ctx)`. Its plan observes the
    world files' contents, so a saved plan notices a file changed behind its back."""

    outputs: ClassVar[type[ItemsOutputs]] = ItemsOutputs

    def items(self, ctx: StageContext) -> dict[str, str]:
        raise NotImplementedError

    def _path(self, ctx: StageContext, key: str) -> Path:
        return world(ctx) / f"{self.name}-{key}"

    async def plan(self, ctx: StageContext) -> ItemsPlan:
        plan = ItemsPlan(wanted=self.items(ctx))
        for key, want in plan.wanted.items():
            path = self._path(ctx, key)
            have = path.read_text() if path.exists() else None
            plan.observed[key] = have
            if have is None:
                plan.changes.append(WriteItem("create", f"{self.name} {key}", "missing", key=key, content=want))
            elif have != want:
                plan.changes.append(WriteItem("update", f"{self.name} {key}", "differs", key=key, content=want))
            else:
                plan.changes.append(Change("ok", f"{self.name} {key}", "already in place"))
        return plan

    async def apply(self, ctx: StageContext, plan: ItemsPlan) -> Outputs:
        w = world(ctx)
        fail = w / f"fail-{self.name}"
        slow = float((w / "slow").read_text()) if (w / "slow").exists() else 0.0
        done = ctx.progress()
        if ctx.environ.get("BOTLAB_TEST_CRASH") == self.name:
            _ = 1 / 0  # a bug in a stage
        if ctx.environ.get("BOTLAB_TEST_LEAK"):
            key = ctx.inventory.maas.api_key.resolve(ctx.environ).reveal()
            ctx.event(f"connecting with key {key}")
            ctx.set_progress("leak", "done", f"key={key}")
        for change in plan.todo:
            assert isinstance(change, WriteItem)
            key, want = change.key, change.content
            path = self._path(ctx, key)
            rec = done.get(key)
            if rec and rec.status == "done" and path.exists() and path.read_text() == want:
                continue  # resumed: finished before the crash
            if fail.exists():
                raise StageError(fail.read_text().strip() or "injected failure", where=key)
            ctx.set_progress(key, "working")
            if slow:
                time.sleep(slow)
            _append(w, f"apply {self.name} {key}")
            path.write_text(want)
            ctx.set_progress(key, "done")
        return self.outputs(items=tuple(sorted(plan.wanted)))

    async def verify(self, ctx: StageContext) -> list[Check]:
        checks = []
        for key, want in self.items(ctx).items():
            path = self._path(ctx, key)
            ok = path.exists() and path.read_text() == want
            checks.append(Check(f"{self.name} {key}", ok, "" if ok else "missing or changed"))
        return checks

    async def destroy(self, ctx: StageContext) -> None:
        for path in world(ctx).glob(f"{self.name}-*"):
            path.unlink()
        _append(world(ctx), f"destroy {self.name}")


class MachinesStage(ItemStage):
    """Reads `machines`; one item per hostname."""

    name = "enlist"
    inputs = Inputs(keys=("machines",))
    outputs = EnlistItems

    def items(self, ctx: StageContext) -> dict[str, str]:
        return {m.hostname: ",".join(m.roles) for m in ctx.inventory.machines}


class ClusterStage(ItemStage):
    """Reads `kubernetes` and enlist's outputs; one item per host from enlist."""

    name = "kubernetes"
    inputs = Inputs(keys=("kubernetes",), upstream=(EnlistItems,))
    outputs = ClusterItems

    def items(self, ctx: StageContext) -> dict[str, str]:
        enlisted = ctx.outputs(EnlistItems)
        k = ctx.inventory.kubernetes
        return {h: f"{k.channel} {k.container_runtime}" for h in (enlisted.items if enlisted else ())}


class PoolStage(ItemStage):
    """Reads `metallb` and kubernetes' outputs; one item per address range."""

    name = "loadbalancer"
    inputs = Inputs(keys=("metallb",), upstream=(ClusterItems,))
    outputs = PoolItems

    def items(self, ctx: StageContext) -> dict[str, str]:
        cluster = ctx.outputs(ClusterItems)
        nodes = cluster.items if cluster else ()
        mlb = ctx.inventory.metallb
        ranges = mlb.addresses if mlb else ()
        return {f"pool{i}": json.dumps([r, len(nodes)]) for i, r in enumerate(ranges)}


def lab_stages() -> list[Stage]:
    return [MachinesStage(), ClusterStage(), PoolStage()]
