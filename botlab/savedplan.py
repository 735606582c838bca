"""Saved plans: `botlab plan --out FILE` writes what each stage would do, with the inventory
and what was read from the world; `botlab up --plan FILE` executes exactly that and refuses
(exit 2, naming what differs) when the inventory or the world changed since.

The file is JSON an operator can review and diff. It holds no secret values: the inventory
part has secret references only (plain secrets are refused when the inventory loads).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botlab.errors import InputError, Location, Problem, StalePlanError

if TYPE_CHECKING:
    from botlab.inventory import Inventory
    from botlab.pipeline import StagePlan

FORMAT = "botlab-plan/1"
SHOWN = 6  # differences named in one refusal


def decision_text(runs: bool, reason: str, drift: bool = False) -> str:
    """What `up` does with a stage, in words: "run (never run)", "verify only", "re-apply"."""
    if runs:
        return f"run ({reason})"
    return "re-apply (the world drifted from it)" if drift else "verify only"


@dataclass(frozen=True)
class SavedStage:
    stage: str
    decided_run: bool  # the runner's decision (never run, inputs changed, ...)
    reason: str
    drift: bool  # done, but the world differed: it re-applies
    note: str
    observed: dict[str, Any]
    changes: list[dict[str, Any]]  # every change's data, the in-place ones included
    path: str = ""

    @property
    def runs(self) -> bool:
        return self.decided_run or self.drift

    @property
    def todo(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if c.get("action") != "ok"]

    def refusal(self, problems: Sequence[str]) -> str:
        return refusal(self.path, problems)

    def as_data(self) -> dict[str, Any]:
        return {"stage": self.stage, "runs": self.decided_run, "reason": self.reason, "drift": self.drift,
                "note": self.note, "observed": self.observed, "changes": self.changes}


def refusal(path: str, problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:SHOWN]) + (f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else "")
    return (f"the saved plan {path} no longer holds: {shown} — nothing of it was run past what is"
            f" reported above; make and review a new plan (`botlab plan --out {path}`)")


@dataclass(frozen=True)
class SavedPlan:
    path: str
    lab: str
    created: str
    inventory: dict[str, Any]  # the inventory's fingerprint data, secret references only
    stages: list[SavedStage]

    def stage(self, name: str) -> SavedStage:
        return next(s for s in self.stages if s.stage == name)

    def refusal(self, problems: Sequence[str]) -> str:
        return refusal(self.path, problems)

    @classmethod
    def of(cls, path: Path, inventory: Inventory, plans: Sequence[StagePlan]) -> SavedPlan:
        stages = [SavedStage(p.name, p.decision.run, p.decision.reason, p.drift, p.note, p.plan.observed,
                             [c.to_data() for c in p.plan.changes], str(path)) for p in plans]
        return cls(str(path), inventory.name, time.strftime("%Y-%m-%dT%H:%M:%S%z"), inventory.fingerprint_data(),
                   stages)

    def write(self) -> None:
        """Atomically, so a reviewer never reads half a plan."""
        doc = {"format": FORMAT, "lab": self.lab, "created": self.created, "inventory": self.inventory,
               "stages": [s.as_data() for s in self.stages]}
        path = Path(self.path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> SavedPlan:
        """The plan in `path`; InputError (exit 2) naming the file if it is not one."""

        def bad(message: str) -> InputError:
            return InputError(Problem(Location(str(path)), "--plan", message))

        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise bad(f"cannot read it: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise bad(f"not a saved botlab plan (invalid JSON: {exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise bad(f"not a saved botlab plan (expected format {FORMAT}; make one with `botlab plan --out`)")
        try:
            stages = [SavedStage(str(s["stage"]), bool(s["runs"]), str(s["reason"]), bool(s["drift"]),
                                 str(s["note"]), dict(s["observed"]), list(s["changes"]), str(path))
                      for s in doc["stages"]]
            return cls(str(path), str(doc["lab"]), str(doc["created"]), dict(doc["inventory"]), stages)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"a saved plan with a missing or malformed part ({exc})") from None

    def check_inventory(self, inventory: Inventory) -> None:
        """StalePlanError naming every inventory key that differs from the planned one."""
        from botlab.pipeline import changed_keys

        if inventory.name != self.lab:
            made = f"it was made for lab {self.lab}, the inventory is lab {inventory.name}"
            raise StalePlanError(self.refusal([made]))
        keys = changed_keys(self.inventory, inventory.fingerprint_data())
        if keys:
            shown = ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")
            raise StalePlanError(self.refusal([f"the inventory changed since: {shown}"]))


def differences(saved: SavedStage, now: StagePlan) -> list[str]:
    """What differs between a stage's saved plan and its plan now, for an operator."""
    from botlab.pipeline import changed_keys

    name = saved.stage
    out: list[str] = []
    if now.decision.run != saved.decided_run or now.drift != saved.drift:
        was = decision_text(saved.decided_run, saved.reason, saved.drift)
        out.append(f"{name}: the plan said {was}, now it would"
                   f" {decision_text(now.decision.run, now.decision.reason, now.drift)}")
    for key in changed_keys(saved.observed, now.plan.observed):
        out.append(f"{name}: the world changed: {key} was {_at(saved.observed, key)}, now"
                   f" {_at(now.plan.observed, key)}")
    then = {_line(c): c for c in saved.todo}
    fresh = {_line(c.to_data()): c.to_data() for c in now.plan.todo}
    out += [f"{name}: no longer planned: {c}" for c in then if c not in fresh]
    out += [f"{name}: newly planned: {c}" for c in fresh if c not in then]
    for line, data in fresh.items():
        for key in changed_keys(then.get(line, data), data):
            out.append(f"{name}: {data.get('target')}: {key} was {_at(then[line], key)}, now {_at(data, key)}")
    if not out and list(then) != list(fresh):
        out.append(f"{name}: the same changes, in another order")
    return out


def _line(change: dict[str, Any]) -> str:
    return f"{change.get('action')} {change.get('target')}: {change.get('reason')}"


def _at(doc: Any, dotted: str) -> str:
    """The value at a path `changed_keys` printed (`a.b[2].c`), shown briefly."""
    value: Any = doc
    for part in dotted.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[") and isinstance(value, list):
            index = int(part[1:-1])
            value = value[index] if index < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            value = None
    text = "absent" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
