"""Saved plans through the real CLI with the test-only stages: `botlab plan --out F` then
`botlab up --plan F` executes exactly what was reviewed, and is refused (exit 2, naming what
differs, changing nothing) when the inventory or the world changed since."""

from __future__ import annotations

import json

from tests.support.runlab import Lab


def todo(changes: list[dict]) -> list[dict]:
    return [c for c in changes if c["action"] != "ok"]


def test_a_saved_plan_is_executed_exactly_as_reviewed(lab: Lab) -> None:
    # The test stages' plans depend on their upstream's outputs: have those first.
    assert lab.run("up", "kubernetes") == 0
    shown = lab.json("plan", "--out", "reviewed.json")
    assert shown["_code"] == 0 and shown["saved"] == str(lab.root / "reviewed.json")
    saved = json.loads((lab.root / "reviewed.json").read_text())
    assert saved["format"] == "botlab-plan/1" and saved["lab"] == "demo"
    assert [s["stage"] for s in saved["stages"]] == ["enlist", "kubernetes", "loadbalancer"]
    # Every change carries what apply needs to run it, not only what it shows.
    creates = todo(saved["stages"][2]["changes"])
    assert [(c["kind"], c["key"], c["content"]) for c in creates] == [
        ("WriteItem", "pool0", '["10.0.0.200-10.0.0.210", 3]')]

    before = lab.journal()
    done = lab.json("up", "--plan", "reviewed.json")
    assert done["_code"] == 0, done
    assert {s["stage"]: s["action"] for s in done["stages"]} == {
        "enlist": "verified", "kubernetes": "verified", "loadbalancer": "ran"}
    assert done["stages"][2]["changes"] == shown["stages"][2]["changes"]  # the very changes reviewed
    assert lab.journal()[len(before):] == ["apply loadbalancer pool0"]


def test_an_inventory_edit_since_the_plan_is_refused_naming_the_key_and_nothing_runs(lab: Lab) -> None:
    assert lab.run("plan", "--out", "p.json") == 0
    lab.edit("[10.0.0.200-10.0.0.210]", "[10.0.0.200-10.0.0.220]")
    assert lab.run("up", "--plan", "p.json") == 2
    assert "the inventory changed since: metallb.addresses[0]" in lab.stderr
    assert "botlab plan --out" in lab.stderr
    assert lab.journal() == []


def test_a_change_in_the_world_since_the_plan_is_refused_naming_it(lab: Lab) -> None:
    assert lab.run("up") == 0
    assert lab.run("plan", "--out", "p.json") == 0
    (lab.world / "loadbalancer-pool0").write_text("edited behind botlab's back")
    assert lab.run("up", "--plan", "p.json") == 2
    assert "loadbalancer: the plan said verify only" in lab.stderr
    assert "loadbalancer: the world changed: pool0 was" in lab.stderr
    assert "edited behind botlab's back" in lab.stderr
    assert (lab.world / "loadbalancer-pool0").read_text() == "edited behind botlab's back"  # left alone


def test_a_stage_whose_plan_changes_once_its_upstream_ran_is_refused_before_it_runs(lab: Lab) -> None:
    # On an empty lab, kubernetes' items come from enlist's outputs: none yet when planned.
    assert lab.run("plan", "--out", "p.json") == 0
    doc = lab.json("up", "--plan", "p.json")
    assert doc["_code"] == 2 and doc["result"] == "refused"
    assert {s["stage"]: s["action"] for s in doc["stages"]} == {"enlist": "ran", "kubernetes": "refused"}
    assert "kubernetes: newly planned: create kubernetes cp-01" in doc["refused"]
    assert lab.journal() == ["apply enlist cp-01", "apply enlist gpu-01", "apply enlist nfs-01"]
    assert lab.run("up", "--plan", "p.json") == 2  # and it stays refused: enlist is done now
    assert "enlist: the plan said run (never run), now it would verify only" in lab.stderr


def test_a_plan_made_before_a_stage_ran_is_refused_once_it_has(lab: Lab) -> None:
    assert lab.run("plan", "enlist", "--out", "p.json") == 0
    assert lab.run("up", "enlist") == 0
    assert lab.run("up", "--plan", "p.json") == 2
    assert "enlist: the plan said run (never run), now it would verify only" in lab.stderr


def test_plan_flags_and_files_that_are_not_plans_are_usage_errors(lab: Lab) -> None:
    assert lab.run("plan", "--out", "p.json") == 0
    assert lab.run("up", "enlist", "--plan", "p.json") == 2
    assert "--plan runs exactly the saved plan" in lab.stderr
    (lab.root / "junk.json").write_text("{not json")
    assert lab.run("up", "--plan", "junk.json") == 2
    assert f"{lab.root / 'junk.json'}: --plan: not a saved botlab plan" in lab.stderr
    assert lab.run("up", "--plan", "missing.json") == 2
    assert "cannot read it" in lab.stderr
    assert lab.journal() == []
