"""How `botlab up/plan/down/status/logs` treat stages: resume, verify-only, drift, data-driven
staleness, --only/--from/--force, teardown. Driven through the real CLI with test-only stages
over a fake world folder (see tests/support/stages.py)."""

from __future__ import annotations

import json

from tests.support.inventory import BASE
from tests.support.runlab import SECRET, Lab


def test_first_up_runs_every_stage_and_second_up_only_verifies(lab: Lab) -> None:
    first = lab.json("up")
    assert first["_code"] == 0
    assert lab.actions(first) == {"enlist": "ran", "kubernetes": "ran", "loadbalancer": "ran"}
    applied = lab.journal()
    assert len(applied) == 3 + 3 + 1

    second = lab.json("up")
    assert second["_code"] == 0
    assert lab.actions(second) == {
        "enlist": "verified", "kubernetes": "verified", "loadbalancer": "verified"
    }
    assert lab.journal() == applied  # nothing redone


def test_resume_after_failure_continues_at_failed_stage_without_redoing_done_ones(lab: Lab) -> None:
    lab.world.mkdir()
    (lab.world / "fail-kubernetes").write_text("controller unreachable")
    failed = lab.json("up")
    assert failed["_code"] == 1
    assert failed["failed_stage"] == "kubernetes"
    assert "controller unreachable" in failed["stages"][-1]["error"]
    assert lab.actions(failed) == {"enlist": "ran", "kubernetes": "failed"}

    assert lab.run("up") == 1
    assert "botlab up" in lab.stdout and "resumes at 'kubernetes'" in lab.stdout

    (lab.world / "fail-kubernetes").unlink()
    before = lab.journal()
    resumed = lab.json("up")
    assert resumed["_code"] == 0
    assert lab.actions(resumed) == {
        "enlist": "verified", "kubernetes": "ran", "loadbalancer": "ran"
    }
    assert resumed["stages"][1]["reason"].startswith("failed last time: ")
    new = lab.journal()[len(before):]
    assert new and not any(line.startswith("apply enlist") for line in new)


def test_done_stage_is_reapplied_only_when_verify_fails(lab: Lab) -> None:
    assert lab.run("up") == 0
    (lab.world / "kubernetes-gpu-01").write_text("edited by hand")  # drift
    before = lab.journal()
    doc = lab.json("up")
    assert lab.actions(doc) == {
        "enlist": "verified", "kubernetes": "reapplied", "loadbalancer": "verified"
    }
    assert "drift" in doc["stages"][1]["reason"]
    assert lab.journal()[len(before):] == ["apply kubernetes gpu-01"]


def test_editing_metallb_ranges_reruns_loadbalancer_only(lab: Lab) -> None:
    assert lab.run("up") == 0
    lab.edit("[10.0.0.200-10.0.0.210]", "[10.0.0.200-10.0.0.220]")
    doc = lab.json("up")
    assert lab.actions(doc) == {
        "enlist": "verified", "kubernetes": "verified", "loadbalancer": "ran"
    }
    assert "metallb.addresses" in doc["stages"][2]["reason"]


def test_upstream_rerun_with_same_outputs_does_not_rerun_downstream(lab: Lab) -> None:
    assert lab.run("up") == 0
    lab.edit("roles: [nfs]", "roles: [nfs, worker]")  # enlist input, same hostnames out
    doc = lab.json("up")
    assert lab.actions(doc) == {
        "enlist": "ran", "kubernetes": "verified", "loadbalancer": "verified"
    }


def test_changed_upstream_outputs_rerun_the_stages_that_read_them(lab: Lab) -> None:
    assert lab.run("up") == 0
    lab.edit(
        "kubernetes:\n",
        "  - hostname: gpu-02\n    roles: [worker, gpu]\n"
        "    hardware: {cores: 8, memory: 16G, gpus: 1}\nkubernetes:\n",
    )
    doc = lab.json("up")
    assert lab.actions(doc) == {"enlist": "ran", "kubernetes": "ran", "loadbalancer": "ran"}
    assert "upstream.enlist" in doc["stages"][1]["reason"]


def test_force_reruns_done_stages(lab: Lab) -> None:
    assert lab.run("up") == 0
    doc = lab.json("up", "--force")
    assert set(lab.actions(doc).values()) == {"ran"}
    assert all(s["reason"] == "--force" for s in doc["stages"])


def test_up_through_a_stage_stops_there(lab: Lab) -> None:
    doc = lab.json("up", "kubernetes")
    assert lab.actions(doc) == {"enlist": "ran", "kubernetes": "ran"}


def test_only_with_an_earlier_stage_not_done_exits_2_naming_it(lab: Lab) -> None:
    assert lab.run("up", "--only", "loadbalancer") == 2
    assert "stage 'enlist' must be done" in lab.stderr
    assert not lab.world.exists()  # nothing touched
    assert lab.run("up", "kubernetes") == 0
    doc = lab.json("up", "--only", "loadbalancer")
    assert lab.actions(doc) == {"loadbalancer": "ran"}


def test_from_starts_at_the_named_stage(lab: Lab) -> None:
    assert lab.run("up") == 0
    doc = lab.json("up", "--from", "kubernetes", "--force")
    assert lab.actions(doc) == {"kubernetes": "ran", "loadbalancer": "ran"}


def test_unknown_or_unavailable_stage_is_a_usage_error(lab: Lab) -> None:
    assert lab.run("up", "nosuch") == 2
    assert "unknown stage 'nosuch'" in lab.stderr
    assert lab.run("up", "kubeflow") == 2
    assert "not available" in lab.stderr
    assert lab.run("up", "--only", "enlist", "--from", "enlist") == 2


def test_plan_shows_changes_and_changes_nothing(lab: Lab) -> None:
    doc = lab.json("plan")
    assert doc["_code"] == 0
    enlist = doc["stages"][0]
    assert enlist["runs"] and enlist["reason"] == "never run"
    assert {c["target"] for c in enlist["changes"]} == {"enlist cp-01", "enlist gpu-01", "enlist nfs-01"}
    assert not (lab.inventory.parent / ".botlab").exists()
    assert not lab.world.exists() or not any(lab.world.iterdir())

    assert lab.run("up") == 0
    lab.edit("[10.0.0.200-10.0.0.210]", "[10.0.0.200-10.0.0.230]")
    doc = lab.json("plan")
    runs = {s["stage"]: s["runs"] for s in doc["stages"]}
    assert runs == {"enlist": False, "kubernetes": False, "loadbalancer": True}
    assert doc["stages"][2]["changes"][0]["action"] == "update"
    assert lab.run("plan") == 0
    assert "loadbalancer: would run (inputs changed: inventory.metallb.addresses" in lab.stdout


def test_down_tears_down_in_reverse_order_then_up_rebuilds(lab: Lab) -> None:
    assert lab.run("up") == 0
    assert lab.run("down") == 2  # not a terminal and no --yes
    assert "--yes" in lab.stderr
    doc = lab.json("down", "--yes")
    assert [s["stage"] for s in doc["stages"]] == ["loadbalancer", "kubernetes", "enlist"]
    assert lab.journal()[-3:] == ["destroy loadbalancer", "destroy kubernetes", "destroy enlist"]
    assert not list(lab.world.glob("enlist-*"))
    assert lab.json("status")["stages"][0]["status"] == "pending"
    doc = lab.json("up")
    assert set(lab.actions(doc).values()) == {"ran"}


def test_rebuild_tears_down_and_builds_again(lab: Lab) -> None:
    assert lab.run("up") == 0
    mark = len(lab.journal())
    doc = lab.json("rebuild", "--yes")
    assert doc["_code"] == 0
    tail = lab.journal()[mark:]
    assert tail[:3] == ["destroy loadbalancer", "destroy kubernetes", "destroy enlist"]
    assert len([t for t in tail if t.startswith("apply")]) == 7


def test_status_and_logs_report_stages_progress_and_events(lab: Lab) -> None:
    lab.world.mkdir()
    (lab.world / "fail-loadbalancer").write_text("pool rejected")
    assert lab.run("up") == 1
    doc = lab.json("status")
    by = {s["stage"]: s for s in doc["stages"]}
    assert by["enlist"]["status"] == "done"
    assert by["loadbalancer"]["status"] == "failed"
    assert "pool rejected" in by["loadbalancer"]["error"]
    assert by["enlist"]["progress"]["gpu-01"]["status"] == "done"
    assert lab.run("status") == 0
    assert "failed" in lab.stdout and "pool rejected" in lab.stdout

    logs = lab.json("logs", "loadbalancer")
    assert any("failed: " in e["message"] and "pool rejected" in e["message"] for e in logs["events"])
    assert all(e["stage"] == "loadbalancer" for e in logs["events"])


def test_json_output_is_one_document_without_progress(lab: Lab) -> None:
    code = lab.run("--output", "json", "up")
    assert code == 0
    json.loads(lab.stdout)  # exactly one document
    assert lab.stderr == ""
    code = lab.run("up")
    assert "==> enlist" in lab.stderr  # plain progress lines when not a terminal


def test_secrets_from_the_environment_never_reach_state_logs_or_output(lab: Lab) -> None:
    # The test stage deliberately writes the revealed key into an event (a careless stage):
    # redaction must still keep it out of the store, the log file and the output.
    lab.environ["BOTLAB_TEST_LEAK"] = "1"
    assert lab.run("--output", "json", "up") == 0
    out = lab.stdout
    assert lab.run("-v", "up", "--force") == 0
    out += lab.stdout + lab.stderr
    assert lab.run("logs") == 0
    out += lab.stdout
    state_dir = lab.inventory.parent / ".botlab"
    blobs = [p.read_bytes() for p in state_dir.rglob("*") if p.is_file()]
    assert any(b"***" in b for b in blobs)  # the leak happened and was redacted
    assert not any(SECRET.encode() in b for b in blobs)
    assert SECRET not in out


def test_unexpected_exception_is_recorded_with_where_to_find_details(lab: Lab) -> None:
    lab.environ["BOTLAB_TEST_CRASH"] = "kubernetes"
    assert lab.run("up") == 1
    assert "internal error: ZeroDivisionError" in lab.stdout
    log_files = list((lab.inventory.parent / ".botlab" / "logs").glob("*.log"))
    assert any("ZeroDivisionError" in p.read_text() for p in log_files)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in log_files)


def test_state_folder_is_private(lab: Lab) -> None:
    assert lab.run("up") == 0
    state_dir = lab.inventory.parent / ".botlab"
    assert state_dir.stat().st_mode & 0o777 == 0o700
    assert (state_dir / "state.db").stat().st_mode & 0o777 == 0o600


def test_bad_inventory_exits_2_before_touching_anything(lab: Lab) -> None:
    lab.inventory.write_text(BASE.replace("lab: demo", "lab: Demo_Lab"))
    assert lab.run("up") == 2
    assert "lab.yaml:1: lab:" in lab.stderr
    assert "Traceback" not in lab.stderr
    assert not (lab.inventory.parent / ".botlab").exists()
    assert not lab.world.exists()


def test_global_options_are_accepted_after_the_subcommand(lab: Lab) -> None:
    assert lab.run("up", "enlist", "--output", "json") == 0
    assert json.loads(lab.stdout)["stages"][0]["stage"] == "enlist"  # one JSON document
    assert lab.run("status", "-o", "json") == 0
    first = json.loads(lab.stdout)["stages"][0]
    assert (first["stage"], first["status"]) == ("enlist", "done")
    assert lab.run("-o", "json", "status") == 0 and json.loads(lab.stdout)["stages"][0]["status"] == "done"
    elsewhere = lab.root / "elsewhere"
    elsewhere.mkdir()
    assert lab.run("status", "-i", str(lab.inventory), "-o", "json") == 0
    assert lab.run("plan", "-v") == 0 and "= enlist cp-01: already in place" in lab.stdout
    assert lab.run("status", "-o", "yaml") == 2


def test_render_is_a_stage_hook(lab: Lab) -> None:
    assert lab.run("render", "enlist") == 2
    assert "stage 'enlist' renders nothing (stages that do: none)" in lab.stderr
    assert lab.run("render", "nosuch") == 2 and "unknown stage 'nosuch'" in lab.stderr


def test_a_stage_reads_its_upstream_outputs_as_typed_records_of_their_version(lab: Lab) -> None:
    assert lab.run("up") == 0
    store = lab.store()
    record = store.stage("kubernetes")
    store.close()
    assert record is not None and record.outputs == {"version": 1, "items": ["cp-01", "gpu-01", "nfs-01"]}
    # A record written by another version of botlab reads as absent: its stage runs again.
    import sqlite3

    db = sqlite3.connect(lab.inventory.parent / ".botlab" / "state.db")
    db.execute("UPDATE stages SET outputs=? WHERE name='kubernetes'", ('{"version": 0, "nodes": []}',))
    db.commit()
    db.close()
    doc = lab.json("up")
    assert {s["stage"]: s["action"] for s in doc["stages"]} == {
        "enlist": "verified", "kubernetes": "ran", "loadbalancer": "verified"}
    assert doc["stages"][1]["reason"] == "its recorded outputs are from another version of botlab"
