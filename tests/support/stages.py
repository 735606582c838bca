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
from pathlib import Path
from typing import Any

from botlab.context import StageContext
from botlab.errors import StageError
from botlab.pipeline import Change, Check, Stage


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


class ItemStage(Stage):
    """Converges one world file per item; items come from `items(ctx)`."""

    def items(self, ctx: StageContext) -> dict[str, str]:
        raise NotImplementedError

    def _path(self, ctx: StageContext, key: str) -> Path:
        return world(ctx) / f"{self.name}-{key}"

    async def plan(self, ctx: StageContext) -> list[Change]:
        changes = []
        for key, want in self.items(ctx).items():
            path = self._path(ctx, key)
            if not path.exists():
                changes.append(Change("create", f"{self.name} {key}", "missing"))
            elif path.read_text() != want:
                changes.append(Change("update", f"{self.name} {key}", "differs"))
            else:
                changes.append(Change("ok", f"{self.name} {key}", "already in place"))
        return changes

    async def apply(self, ctx: StageContext) -> dict[str, Any]:
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
        for key, want in self.items(ctx).items():
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
        return self.outputs(ctx)

    def outputs(self, ctx: StageContext) -> dict[str, Any]:
        return {"items": sorted(self.items(ctx))}

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
    sections = ("machines",)

    def items(self, ctx: StageContext) -> dict[str, str]:
        return {m.hostname: ",".join(m.roles) for m in ctx.inventory.machines}


class ClusterStage(ItemStage):
    """Reads `kubernetes` and enlist's outputs; one item per host from enlist."""

    name = "kubernetes"
    sections = ("kubernetes",)
    upstream = ("enlist",)

    def items(self, ctx: StageContext) -> dict[str, str]:
        hosts = (ctx.outputs("enlist") or {}).get("items", [])
        k = ctx.inventory.kubernetes
        return {h: f"{k.channel} {k.container_runtime}" for h in hosts}

    def outputs(self, ctx: StageContext) -> dict[str, Any]:
        return {"nodes": sorted(self.items(ctx))}


class PoolStage(ItemStage):
    """Reads `metallb` and kubernetes' outputs; one item per address range."""

    name = "loadbalancer"
    sections = ("metallb",)
    upstream = ("kubernetes",)

    def items(self, ctx: StageContext) -> dict[str, str]:
        nodes = (ctx.outputs("kubernetes") or {}).get("nodes", [])
        mlb = ctx.inventory.metallb
        ranges = mlb.addresses if mlb else ()
        return {f"pool{i}": json.dumps([r, len(nodes)]) for i, r in enumerate(ranges)}


def lab_stages() -> list[Stage]:
    return [MachinesStage(), ClusterStage(), PoolStage()]
