"""Shell completion: `_BOTLAB_COMPLETE=bash_source botlab` prints click's script, and the
installed command answers completion requests for commands, options and stage names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from botlab import cli
from botlab.app import Environment
from botlab.pipeline import STAGE_ORDER

BOTLAB = Path(sys.executable).parent / "botlab"


def complete(words: str, cwd: Path, shell: str = "bash") -> list[str]:
    """What `botlab` offers for the last of `words` (empty after a trailing space)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {**os.environ, "COMP_WORDS": words, "COMP_CWORD": str(cword), "_BOTLAB_COMPLETE": f"{shell}_complete"}
    done = subprocess.run([str(BOTLAB)], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.splitlines()]


@pytest.mark.parametrize(("shell", "marker"), [("bash", "_botlab_completion"), ("zsh", "#compdef botlab"),
                                               ("fish", "function _botlab_completion")])
def test_source_prints_the_completion_script(tmp_path: Path, shell: str, marker: str) -> None:
    env = {**os.environ, "_BOTLAB_COMPLETE": f"{shell}_source"}
    done = subprocess.run([str(BOTLAB)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert marker in done.stdout
    assert "_BOTLAB_COMPLETE=" in done.stdout


def test_commands_complete(tmp_path: Path) -> None:
    assert "up" in complete("botlab u", tmp_path)
    assert set(complete("botlab ", tmp_path)) >= {"validate", "plan", "up", "status", "down", "rebuild", "logs",
                                                  "render", "lab"}
    assert complete("botlab lab st", tmp_path) == ["start", "status", "stop"]


def test_options_complete(tmp_path: Path) -> None:
    assert complete("botlab up --f", tmp_path) == ["--from", "--force"]
    assert "--output" in complete("botlab status --", tmp_path)


@pytest.mark.parametrize("words", ["botlab up ", "botlab plan ", "botlab up --from ", "botlab up --only ",
                                   "botlab logs ", "botlab render ", "botlab -i lab plan "])
def test_stage_names_complete(tmp_path: Path, words: str) -> None:
    assert complete(words, tmp_path) == list(STAGE_ORDER)


def test_stage_names_complete_by_prefix_and_nothing_runs(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text("lab: demo\n")
    assert complete("botlab up --only k", tmp_path) == ["kubernetes", "kubeflow"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.yaml"]  # no state, no lock


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_through_the_sourced_script(tmp_path: Path) -> None:
    script = (
        'eval "$(_BOTLAB_COMPLETE=bash_source botlab)"\n'
        "COMP_WORDS=(botlab up --only k); COMP_CWORD=3\n"
        "_botlab_completion botlab\n"
        'echo "${COMPREPLY[*]}"\n'
    )
    env = {**os.environ, "PATH": f"{BOTLAB.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["kubernetes", "kubeflow"]


def test_completing_in_process_leaves_the_commands_as_they_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"COMP_WORDS": "botlab up ", "COMP_CWORD": "2", "_BOTLAB_COMPLETE": "bash_complete"}.items():
        monkeypatch.setenv(name, value)
    assert cli.main([], Environment(cwd=tmp_path, environ={})) == 0
    assert "plain,enlist" in capsys.readouterr().out
    up = cli.cli.commands["up"]
    assert {p.name: p.type for p in up.params}["stage"] == click.STRING
