"""Text and JSON renderings of command results. Presentation only: no decisions here.

Every field that can hold text from outside (a MAAS status message, a Juju workload message,
an error that quotes one, a stored event) is escaped with `botlab.sanitize.one_line` in the
text renderings, so it stays on its own line and carries no terminal escape; JSON needs no
escaping (the encoder escapes control characters)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botlab.sanitize import one_line as _f

if TYPE_CHECKING:
    from pathlib import Path

    from botlab.app import StatusView
    from botlab.pipeline import RunResult, StagePlan
    from botlab.state import Event


def to_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, default=str)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _took(start: float | None, end: float | None) -> str:
    if not start or not end:
        return "-"
    seconds = int(end - start)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{end - start:.1f}s"


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def plan_text(plans: list[StagePlan], verbose: bool = False) -> str:
    out: list[str] = []
    total = 0
    for p in plans:
        head = "would run" if p.decision.run else "verify only"
        out.append(f"{p.name}: {head} ({_f(p.decision.reason)})")
        if p.note:
            out.append(f"  note: {_f(p.note)}")
        noops = [c for c in p.changes if c.is_noop]
        for c in p.changes:
            if not c.is_noop:
                total += 1
                out.append(f"  + {_f(c.action)} {_f(c.target)}: {_f(c.reason)}")
        if verbose:
            out += [f"  = {_f(c.target)}: {_f(c.reason)}" for c in noops]
        elif noops:
            out.append(f"  = {len(noops)} already in place (-v to list)")
    out.append(f"Plan: {total} change(s).")
    return "\n".join(out)


def plan_json(plans: list[StagePlan], saved: Path | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"stages": [p.as_dict() for p in plans]}
    if saved is not None:
        doc["saved"] = str(saved)
    return doc


def run_text(result: RunResult, command: str) -> str:
    if result.refused is not None:
        return f"{command}: refused: {_f(result.refused)}"
    if result.failed is None:
        done = [f"{o.name} {o.action}" + (f": {_f(o.reason)}" if o.action == "destroyed" else "")
                for o in result.outcomes]
        return f"{command}: done ({'; '.join(done) or 'nothing to do'})"
    return (
        f"{command}: stage '{result.failed.name}' failed: {_f(result.failed.error or '')}\n"
        f"Fix the cause, then run `botlab {command}` again: it resumes at '{result.failed.name}'."
    )


def run_json(result: RunResult) -> dict[str, Any]:
    return {
        "result": "refused" if result.refused else "done" if result.ok else "failed",
        "refused": result.refused,
        "failed_stage": result.failed.name if result.failed else None,
        "stages": [o.as_dict() for o in result.outcomes],
    }


def status_text(view: StatusView) -> str:
    rows = []
    for name in view.order:
        rec = view.stages.get(name)
        if rec is None:
            rows.append([name, "pending", "-", "-", ""])
            continue
        error = _f((rec.error or "")[:80])
        rows.append([name, _f(rec.status), _when(rec.started_at), _took(rec.started_at, rec.ended_at), error])
    out = [table(rows, ["stage", "status", "started", "took", "last error"])]
    for name in view.order:
        prog = view.progress.get(name) or {}
        if not prog:
            continue
        out.append(f"\n{name}:")
        out.append(
            table(
                [[_f(p.key), _f(p.status), _f(p.detail[:60]), _when(p.updated_at)] for p in prog.values()],
                ["machine/host", "state", "detail", "updated"],
            )
        )
    return "\n".join(out)


def status_json(view: StatusView) -> dict[str, Any]:
    stages = []
    for name in view.order:
        rec = view.stages.get(name)
        stages.append(
            {
                "stage": name,
                "status": rec.status if rec else "pending",
                "started_at": rec.started_at if rec else None,
                "ended_at": rec.ended_at if rec else None,
                "error": rec.error if rec else None,
                "outputs": rec.outputs if rec and rec.status == "done" else None,
                "progress": {
                    k: {"status": p.status, "detail": p.detail, "updated_at": p.updated_at}
                    for k, p in (view.progress.get(name) or {}).items()
                },
            }
        )
    return {"stages": stages, "machines": view.identities}


def events_text(events: list[Event]) -> str:
    return (
        "\n".join(f"{_when(e.ts)} {_f(e.level):<7} {_f(e.stage or '-'):<12} {_f(e.message)}" for e in events)
        or "no events recorded"
    )


def events_json(events: list[Event]) -> dict[str, Any]:
    return {
        "events": [
            {"ts": e.ts, "run": e.run_id, "stage": e.stage, "level": e.level, "message": e.message} for e in events
        ]
    }
