"""Host playbooks without a host: each step computes its commands from recorded facts (pure
functions), hostile values stay inert, and a whole run (facts, then one apply script) works
against this machine's shell through a stand-in for the SSH driver."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from botlab.drivers.retry import Deadlines
from botlab.drivers.ssh import Result, sudo_command, write_file_command
from botlab.errors import InputError
from botlab.playbook import (
    Facts,
    FileFact,
    GuardFact,
    Playbook,
    Rendered,
    StepPlan,
    apply_script,
    ensure_block,
    ensure_line,
    evaluate,
    facts_script,
    parse_facts,
    plan_host,
    render,
    run_playbook,
)

REPO = Path(__file__).resolve().parents[2]
GPU_HOST = {"hostname": "node-04", "gpu": True, "gpus": 8, "roles": ["worker", "gpu"], "runtime": "containerd"}
CPU_HOST = {"hostname": "node-01", "gpu": False, "gpus": 0, "roles": ["worker"], "runtime": "containerd"}


def plan_of(text: str, facts: Facts, variables: dict[str, Any] | None = None) -> Any:
    playbook = Playbook.parse(text, "test.yaml", REPO / "playbooks")
    return plan_host("node-01", render(playbook, variables or CPU_HOST), facts)


def run_shell(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10)


# --- file ---------------------------------------------------------------------------------------------

FILE = """
steps:
  - file: /etc/app.conf
    content: "a = 2\\n"
    mode: "0644"
    become: true
    notify: [daemon-reload, restart app]
"""


def test_a_missing_file_is_created_with_a_diff_from_nothing() -> None:
    plan = plan_of(FILE, Facts(files={"/etc/app.conf": FileFact(False)}))
    step = plan.steps[0]
    assert step.action == "change" and step.reason == "/etc/app.conf absent"
    assert step.diff.startswith("--- /dev/null\n+++ /etc/app.conf\n") and "+a = 2" in step.diff
    assert "mkdir -p -- /etc" in step.commands
    blob = base64.b64encode(b"a = 2\n").decode()
    assert f'printf %s {blob} | base64 -d > "$tmp"' in step.commands
    assert step.commands[-1] == 'mv -f -- "$tmp" /etc/app.conf'
    assert step.script.startswith("sudo -n -- sh -c ")
    assert plan.handlers == ("daemon-reload", "restart app")


def test_a_differing_file_is_replaced_only_if_unchanged_since_its_facts() -> None:
    old = FileFact(True, "0600", "root:root", "a = 1\n")
    step = plan_of(FILE, Facts(files={"/etc/app.conf": old})).steps[0]
    assert step.action == "change" and "-a = 1\n+a = 2" in step.diff
    assert step.commands[0].startswith(f'[ "$(sha256sum < /etc/app.conf | cut -c1-64)" = {old.sha256} ]')
    assert 'chmod 0644 "$tmp"' in step.commands and 'chown root:root "$tmp"' in step.commands


def test_a_file_as_wanted_is_ok_and_notifies_nothing() -> None:
    plan = plan_of(FILE, Facts(files={"/etc/app.conf": FileFact(True, "0644", "root:root", "a = 2\n")}))
    assert [(s.action, s.commands) for s in plan.steps] == [("ok", ())]
    assert plan.handlers == ()


def test_only_the_mode_or_owner_is_fixed_when_the_content_is_right() -> None:
    text = FILE.replace('mode: "0644"', 'mode: "0644"\n    owner: root')
    plan = plan_of(text, Facts(files={"/etc/app.conf": FileFact(True, "0600", "ubuntu:ubuntu", "a = 2\n")}))
    assert plan.steps[0].commands == ("chmod 0644 -- /etc/app.conf", "chown root -- /etc/app.conf")
    assert plan.steps[0].diff == ""


def test_a_template_is_rendered_with_the_hosts_variables() -> None:
    text = "steps:\n  - file: /etc/x.conf\n    template: templates/example.conf.j2\n"
    step = plan_of(text, Facts(), GPU_HOST | {"greeting": "hi"}).steps[0]
    assert "+host = node-04\n" in step.diff and "+roles = worker,gpu\n" in step.diff


# --- line and block ------------------------------------------------------------------------------------


def test_a_line_replaces_the_last_match_or_is_appended_once() -> None:
    assert ensure_line("a\nnofile=1\nb\n", "nofile=9", "^nofile=") == "a\nnofile=9\nb\n"
    assert ensure_line("a\n", "nofile=9", "^nofile=") == "a\nnofile=9\n"
    assert ensure_line("", "x", None) == "x\n"
    same = "a\nx\n"
    assert ensure_line(same, "x", None) is same


def test_a_block_is_inserted_then_replaced_in_place_then_left_alone() -> None:
    first = ensure_block("keep\n", "one\n", "botlab demo")
    assert first == "keep\n# BEGIN botlab demo\none\n# END botlab demo\n"
    second = ensure_block(first + "after\n", "two", "botlab demo")
    assert second == "keep\n# BEGIN botlab demo\ntwo\n# END botlab demo\nafter\n"
    assert ensure_block(second, "two", "botlab demo") == second


def test_a_line_step_in_a_missing_file_creates_it() -> None:
    text = "steps:\n  - line: /etc/l.conf\n    text: nofile=65536\n    regexp: '^nofile='\n"
    step = plan_of(text, Facts(files={"/etc/l.conf": FileFact(False)})).steps[0]
    assert step.action == "change" and "+nofile=65536" in step.diff
    ok = plan_of(text, Facts(files={"/etc/l.conf": FileFact(True, "0644", "root:root", "nofile=65536\n")}))
    assert ok.steps[0].action == "ok"


# --- packages and commands -------------------------------------------------------------------------------


def test_packages_install_only_the_missing_ones() -> None:
    text = "steps:\n  - packages: [nfs-common, curl]\n    become: true\n"
    plan = plan_of(text, Facts(packages={"curl": "8.5"}))
    assert plan.steps[0].commands == (
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nfs-common",)
    assert plan_of(text, Facts(packages={"curl": "8.5", "nfs-common": "2.6"})).steps[0].action == "ok"


def test_a_command_is_guarded_by_creates_and_unless() -> None:
    text = "steps:\n  - command: make-it\n    creates: /var/it\n    unless: test -f /x\n"
    assert plan_of(text, Facts(guards={0: GuardFact(True, 1)})).steps[0].reason == "/var/it exists"
    assert plan_of(text, Facts(guards={0: GuardFact(False, 0)})).steps[0].reason == "unless succeeded"
    runs = plan_of(text, Facts(guards={0: GuardFact(False, 1)})).steps[0]
    assert runs.action == "change" and runs.commands == ("make-it",)


def test_facts_come_back_from_the_script_output_by_section() -> None:
    playbook = Playbook.parse("steps:\n  - file: /etc/a\n    content: x\n  - packages: [curl]\n"
                              "  - command: c\n    creates: /c\n    unless: u\n", "t.yaml")
    items = [i for i in render(playbook, CPU_HOST) if isinstance(i, Rendered)]
    script = facts_script(items, "n1")
    assert "base64 -w0 -- /etc/a" in script and "dpkg-query" in script and "sh -c u " in script
    output = ("@@n1 file 0\n644 root:root 2\n" + base64.b64encode(b"x\n").decode() + "\n"
              "@@n1 packages\ncurl\tinstall ok installed\t8.5\nvim\tunknown ok not-installed\t\n"
              "@@n1 guard 2\ncreates=0\nunless=1\n@@n1 end\n")
    facts = parse_facts(output, items, "n1")
    assert facts.files["/etc/a"] == FileFact(True, "0644", "root:root", "x\n")
    assert facts.packages == {"curl": "8.5"} and facts.guards == {2: GuardFact(False, 1)}


# --- when, handlers, loading ------------------------------------------------------------------------------


def test_when_reads_host_facts_and_skips_with_the_reason() -> None:
    assert evaluate("gpu and runtime == 'containerd'", GPU_HOST)
    assert evaluate("'gpu' in roles", GPU_HOST) and not evaluate("'gpu' in roles", CPU_HOST)
    assert evaluate("not gpu or gpus > 4", CPU_HOST)
    text = "steps:\n  - command: nvidia-smi\n    when: gpu\n"
    assert plan_of(text, Facts()).steps[0].reason == "when: gpu is false"
    assert plan_of(text, Facts(), GPU_HOST).steps[0].action == "change"


@pytest.mark.parametrize("expression", ["__import__('os').system('id')", "roles.pop()", "gpu.__class__",
                                        "[x for x in roles]", "f(1)", "lambda: 1"])
def test_when_never_evaluates_python(expression: str) -> None:
    with pytest.raises(InputError, match=r"steps\[0\]\.when"):
        Playbook.parse(f"steps:\n  - command: x\n    when: {json.dumps(expression)}\n", "t.yaml")


def test_when_with_an_unknown_name_is_an_error_not_a_skip() -> None:
    with pytest.raises(ValueError, match="unknown name 'gpus_count'"):
        evaluate("gpus_count > 1", CPU_HOST)


def test_handlers_run_once_per_host_and_only_after_a_change() -> None:
    text = FILE + "  - file: /etc/b\n    content: b\n    notify: restart app\n"
    changed = plan_of(text, Facts(files={"/etc/app.conf": FileFact(False), "/etc/b": FileFact(False)}))
    assert changed.handlers == ("daemon-reload", "restart app")
    script = apply_script(changed, "n")
    assert script.count("systemctl restart app") == 1 and script.index("daemon-reload") < script.index("restart app")
    unchanged = plan_of(text, Facts(files={"/etc/app.conf": FileFact(True, "0644", "root:root", "a = 2\n"),
                                           "/etc/b": FileFact(True, "0644", "root:root", "b")}))
    assert unchanged.handlers == () and apply_script(unchanged, "n") == "exec 2>&1\n"


@pytest.mark.parametrize(("text", "key", "message"), [
    ("steps:\n  - file: /a\n    content: x\n    mode: 0644\n", "steps[0].mode", "quote it"),
    ("steps:\n  - file: a\n    content: x\n", "steps[0].file", "absolute path"),
    ("steps:\n  - file: /a\n    content: x\n    notify: reboot\n", "steps[0].notify", "unknown handler"),
    ("steps:\n  - file: /a\n    content: x\n    colour: red\n", "steps[0].colour", "not a key"),
    ("steps:\n  - packages: ['curl; rm -rf /']\n", "steps[0].packages", "package names"),
    ("steps:\n  - file: /a\n    line: /b\n", "steps[0]", "exactly one of"),
])
def test_a_bad_playbook_names_file_line_and_key(text: str, key: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        Playbook.parse(text, "bad.yaml")
    assert any(p.key == key and message in p.message for p in caught.value.problems), caught.value
    assert str(caught.value).startswith("bad.yaml:")


def test_the_example_playbook_loads() -> None:
    playbook = Playbook.load(REPO / "playbooks" / "example.yaml")
    assert [s.kind for s in playbook.steps] == ["file", "file", "line", "block", "command", "packages"]


# --- quoting --------------------------------------------------------------------------------------------

HOSTILE = "x'; rm -rf / #"


def test_a_hostile_value_in_a_command_stays_one_inert_word() -> None:
    text = "steps:\n  - command: 'echo {{ hostname }}'\n    unless: 'test -e /{{ hostname }}'\n"
    playbook = Playbook.parse(text, "t.yaml")
    item = render(playbook, {"hostname": HOSTILE})[0]
    assert isinstance(item, Rendered)
    assert item.command == "echo " + shlex.quote(HOSTILE)
    assert run_shell(item.command).stdout == HOSTILE + "\n"
    assert item.unless == "test -e /" + shlex.quote(HOSTILE)


def test_hostile_paths_and_contents_reach_the_shell_quoted(tmp_path: Path) -> None:
    target = tmp_path / "f'; touch pwned; '"
    text = "steps:\n  - file: '{{ dir }}/{{ name }}'\n    content: '{{ name }}'\n"
    playbook = Playbook.parse(text.replace("content: '{{ name }}'", "content: \"$(touch pwned2)'\""), "t.yaml")
    plan = plan_host("h", render(playbook, {"dir": str(tmp_path), "name": target.name}), Facts())
    done = run_shell(f"cd {shlex.quote(str(tmp_path))} && " + plan.steps[0].script)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "$(touch pwned2)'"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_the_drivers_commands_quote_every_value(tmp_path: Path) -> None:
    path = str(tmp_path / "a b'; touch pwned #")
    assert run_shell(sudo_command("true").replace("sudo -n -- ", "")).returncode == 0
    done = subprocess.run(["sh", "-c", write_file_command(path, "0600", None)], input="secret",
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    assert Path(path).read_text() == "secret" and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [Path(path).name]


# --- whole runs against this machine's shell -----------------------------------------------------------------


class LocalShell:
    """Stands in for SshDriver: each call runs here with sh; `sudo` and `systemctl` are shims
    (the shim records the handler calls), so runs are real but need no root and no host."""

    def __init__(self, bin_dir: Path) -> None:
        self.round_trips: dict[str, int] = {}
        self.deadlines = Deadlines()
        bin_dir.mkdir()
        (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\n[ "$1" = -- ] && shift\nexec "$@"\n')
        self.calls = bin_dir / "systemctl.calls"
        (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(self.calls))}\n')
        for shim in ("sudo", "systemctl"):
            (bin_dir / shim).chmod(0o755)
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    async def run(self, host: str, command: str, *, sudo: bool = False, stdin: str | None = None,
                  timeout: float | None = None) -> Result:
        line = sudo_command(command) if sudo else command
        self.round_trips[host] = self.round_trips.get(host, 0) + 1
        done = subprocess.run(["sh", "-c", line], input=stdin, capture_output=True, text=True, env=self.env,
                              timeout=30)
        return Result(host, line, done.returncode, done.stdout, done.stderr)

    def handler_calls(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


LOCAL = """
steps:
  - file: "{{ root }}/{{ hostname }}/unit.service"
    content: "[Service]\\nExecStart=/bin/true\\n"
    mode: "0640"
    become: true
    notify: [daemon-reload, restart demo]
  - line: "{{ root }}/{{ hostname }}/limits.conf"
    text: nofile=65536
    regexp: "^nofile="
  - block: "{{ root }}/{{ hostname }}/hosts"
    text: "{{ hostname }} gpu={{ gpu }}"
  - command: "echo made > {{ root }}/{{ hostname }}/gpu-marker"
    creates: "{{ root }}/{{ hostname }}/gpu-marker"
    when: gpu
  - packages: [dpkg]
"""


def local_run(shell: LocalShell, root: Path, *, check: bool = False, text: str = LOCAL) -> Any:
    playbook = Playbook.parse(text, "local.yaml")
    hosts = {h["hostname"]: {**h, "root": str(root)} for h in (GPU_HOST, CPU_HOST)}
    return asyncio.run(run_playbook(shell, playbook, hosts, check=check,  # type: ignore[arg-type]
                                    pending_dir=str(root / "owed")))


needs_dpkg = pytest.mark.skipif(run_shell("command -v dpkg-query").returncode != 0, reason="no dpkg-query here")


@needs_dpkg
def test_a_run_converges_in_two_round_trips_and_the_next_changes_nothing(tmp_path: Path) -> None:
    shell, root = LocalShell(tmp_path / "bin"), tmp_path / "hosts"
    first = local_run(shell, root)
    assert first.failed == {}
    gpu = first.hosts["node-04"]
    assert [s.status for s in gpu.steps] == ["changed", "changed", "changed", "changed", "ok"]
    assert [s.status for s in first.hosts["node-01"].steps] == ["changed", "changed", "changed", "skipped", "ok"]
    assert [h.status for h in gpu.handlers] == ["changed", "changed"]
    assert gpu.round_trips == 2 and shell.round_trips == {"node-04": 2, "node-01": 2}
    assert (root / "node-04" / "gpu-marker").read_text() == "made\n"
    assert not (root / "node-01" / "gpu-marker").exists()
    assert stat.S_IMODE((root / "node-04" / "unit.service").stat().st_mode) == 0o640
    assert (root / "node-01" / "hosts").read_text() == "# BEGIN botlab\nnode-01 gpu=False\n# END botlab\n"
    assert sorted(shell.handler_calls()) == ["daemon-reload", "daemon-reload", "restart demo", "restart demo"]

    second = local_run(shell, root)
    assert second.changed == [] and second.failed == {}
    assert all(h.handlers == [] and h.round_trips == 1 for h in second.hosts.values())
    assert len(shell.handler_calls()) == 4  # no handler ran again


@needs_dpkg
def test_check_mode_shows_commands_and_diffs_and_changes_nothing(tmp_path: Path) -> None:
    shell, root = LocalShell(tmp_path / "bin"), tmp_path / "hosts"
    check = local_run(shell, root, check=True)
    assert check.check and not root.exists() and shell.handler_calls() == []
    unit = check.hosts["node-04"].steps[0]
    assert unit.status == "changed" and "+ExecStart=/bin/true" in unit.diff and unit.commands
    assert [h.name for h in check.hosts["node-04"].handlers] == ["daemon-reload", "restart demo"]
    assert shell.round_trips == {"node-04": 1, "node-01": 1}
    # what check mode showed is what then runs
    run = local_run(shell, root)
    assert run.hosts["node-04"].steps[0].commands[2:] == unit.commands[2:]


@needs_dpkg
def test_a_failed_step_stops_that_host_only_and_its_handlers(tmp_path: Path) -> None:
    shell, root = LocalShell(tmp_path / "bin"), tmp_path / "hosts"
    text = LOCAL.replace("  - packages: [dpkg]\n", "  - command: 'test {{ hostname }} != node-01 || "
                                                   "{ echo broken >&2; exit 7; }'\n  - command: echo after\n")
    result = local_run(shell, root, text=text)
    assert set(result.failed) == {"node-01"} and "failed (exit 7): broken" in result.failed["node-01"]
    cpu = result.hosts["node-01"]
    assert [s.status for s in cpu.steps][-2:] == ["failed", "skipped"]
    assert [h.status for h in cpu.handlers] == ["skipped", "skipped"]
    assert result.hosts["node-04"].error is None
    with pytest.raises(Exception, match="failed on 1 of 2 hosts: node-01: step"):
        result.raise_for_failures()


def test_a_step_plan_is_what_the_apply_script_runs() -> None:
    plan = plan_of(FILE, Facts(files={"/etc/app.conf": FileFact(False)}))
    assert isinstance(plan.steps[0], StepPlan)
    assert plan.steps[0].script in apply_script(plan, "n")


def test_handlers_owed_by_a_run_cut_short_run_even_when_no_step_changes() -> None:
    facts = Facts(files={"/etc/app.conf": FileFact(True, "0644", "root:root", "a = 2\n")},
                  pending=("restart app",))
    playbook = Playbook.parse(FILE, "test.yaml")
    plan = plan_host("node-01", render(playbook, CPU_HOST), facts, playbook.pending_file("/var/lib/x"))
    assert plan.todo == () and plan.needed
    assert plan.handlers == ("restart app",) and plan.owed == ("restart app",)
    script = apply_script(plan, "n")
    record = script.index("/var/lib/x/test.tmp")  # recorded first, removed after the last handler
    assert record < script.index("systemctl restart app") < script.index("rm -f -- /var/lib/x/test")
    assert not plan_host("node-01", render(playbook, CPU_HOST), Facts(files=facts.files)).needed


def test_owed_handlers_are_read_back_from_the_hosts_record() -> None:
    steps = [r for r in render(Playbook.parse(FILE, "t.yaml"), CPU_HOST) if isinstance(r, Rendered)]
    script = facts_script(steps, "abc", "/var/lib/botlab/handlers/t")
    assert "cat -- /var/lib/botlab/handlers/t" in script
    output = "@@abc pending\nrestart app\nrm -rf /\n\n@@abc end\n"
    assert parse_facts(output, steps, "abc").pending == ("restart app",)  # only known handlers


@needs_dpkg
def test_a_handler_that_failed_is_owed_and_runs_on_the_next_run(tmp_path: Path) -> None:
    shell, root = LocalShell(tmp_path / "bin"), tmp_path / "hosts"
    flaky = tmp_path / "bin" / "systemctl"
    flaky.write_text(f'#!/bin/sh\nif [ "$1" = restart ] && [ -e {tmp_path}/fail ]; then rm {tmp_path}/fail; exit 1;'
                     f' fi\necho "$@" >> {shlex.quote(str(shell.calls))}\n')
    (tmp_path / "fail").touch()
    playbook = Playbook.parse(LOCAL, "local.yaml")

    def run() -> Any:
        hosts = {"node-04": {**GPU_HOST, "root": str(root)}}
        return asyncio.run(run_playbook(shell, playbook, hosts,  # type: ignore[arg-type]
                                        pending_dir=str(root / "owed")))

    first = run()
    assert "handler 'restart demo' failed" in first.failed["node-04"]  # its files are written, the restart owed
    assert (root / "owed" / "local").read_text() == "daemon-reload\nrestart demo\n"
    second = run()
    assert second.failed == {} and second.changed == []
    assert [(h.name, h.status) for h in second.hosts["node-04"].handlers] == [("daemon-reload", "changed"),
                                                                            ("restart demo", "changed")]
    assert shell.handler_calls() == ["daemon-reload", "daemon-reload", "restart demo"]
    assert not (root / "owed" / "local").exists()
    assert third_changes_nothing(run())


def third_changes_nothing(result: Any) -> bool:
    return result.failed == {} and all(h.handlers == [] for h in result.hosts.values())
