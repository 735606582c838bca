"""The CLI surface: fast, light imports; help that documents exit codes; usage errors exit 2."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from botlab.app import Environment
from botlab.cli import main
from tests.unit.test_inventory import INVALID, edit, write_lab

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("juju", "maas.client", "kubernetes", "fabric", "paramiko", "aiohttp", "rich")


def test_importing_the_cli_imports_no_client_library() -> None:
    # A fresh interpreter: this test process has imported plenty already. ("maas" alone is a
    # namespace package that python-libmaas's .pth file creates at interpreter start-up.)
    probe = (
        "import sys, botlab.cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == ""


def test_help_runs_without_client_libraries_and_documents_exit_codes() -> None:
    probe = (
        "import sys\nfrom botlab.cli import main\n"
        "code = main(['--help'])\n"
        f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0
    assert "LOADED=\n" in done.stdout
    for line in ("0  done", "1  a stage failed", "2  bad input", "3  another run holds"):
        assert line in done.stdout
    for command in ("validate", "plan", "up", "status", "down", "rebuild", "logs"):
        assert command in done.stdout


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Environment(cwd=tmp_path, environ={}, stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def test_unknown_flag_or_command_exits_2(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "up", "--bogus")
    assert code == 2 and "No such option" in err
    code, _, err = run(tmp_path, "frobnicate")
    assert code == 2
    code, _, err = run(tmp_path, "--output", "yaml", "status")
    assert code == 2


def test_missing_inventory_exits_2_with_a_one_line_hint(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "validate")
    assert code == 2
    assert "Traceback" not in err
    assert "inventory" in err.lower()
    assert len(err.strip().splitlines()) == 1


def test_json_error_document_for_bad_input(tmp_path: Path) -> None:
    import json

    code, out, _ = run(tmp_path, "--output", "json", "validate")
    assert code == 2
    doc = json.loads(out)
    assert doc["exit_status"] == 2 and doc["error"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(Path("."), "--version")
    assert code == 0 and "botlab, version 0.1.0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("old", "new", "line", "key"),
    [case[1:5] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_every_invalid_inventory_exits_2_with_file_line_key_and_no_traceback(
    tmp_path: Path, old: str, new: str, line: int, key: str
) -> None:
    path = write_lab(tmp_path, edit(old, new))
    for command in ("validate", "plan", "up"):
        code, out, err = run(tmp_path, "-i", str(path), command)
        assert code == 2, (command, err)
        assert "Traceback" not in err
        assert any(f"lab.yaml:{line}: {key}: " in row for row in err.splitlines()), err
        assert out == ""
    assert not (path.parent / ".botlab").exists()  # nothing touched
