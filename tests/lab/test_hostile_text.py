"""Text from MAAS cannot drive the operator's terminal or forge a line: a machine whose
commissioning fails with a status message holding ANSI escapes, CR/LF and a forged
`up: done (fake)` line (the MAAS emulator's "fail" fault sets the status message) reaches
`up`, `status` and `logs` escaped, on one line, and is stored escaped."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from botlab.app import Environment
from botlab.cli import main
from botlab.lab import control, specs
from botlab.state import StateStore

pytestmark = pytest.mark.lab

HOSTILE = "\x1b[2J\x1b[H\x1b[31mBMC says hi\x1b[0m\r\nup: done (fake)"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[control.LabInfo]:
    doc = specs.spec_document(None, machines=2, gpus=0, unenlisted=1, commissioning_s=0.1, deploy_s=0.3, seed=5)
    doc["timings"]["testing_s"] = 0.05
    doc["faults"] = [{"kind": "fail", "stage": "commissioning", "count": None, "message": HOSTILE}]
    info = control.start(tmp_path / "lab", doc, name="alpha", hosts=False)
    try:
        yield info
    finally:
        control.stop(info.dir)


def botlab(info: control.LabInfo, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(cwd=info.dir, environ=dict(os.environ), stdout=out, stderr=err)
    code = main(["-i", str(info.inventory), *args], env)
    return code, out.getvalue(), err.getvalue()


def assert_clean(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text, repr(text)
    assert "up: done (fake)" not in text.splitlines(), text


def test_a_maas_status_message_with_escapes_and_crlf_is_printed_and_stored_escaped(
        lab: control.LabInfo) -> None:
    code, out, err = botlab(lab, "up", "enlist")
    assert code == 1, out + err
    assert_clean(out)
    assert_clean(err)
    assert "\\x1b[31mBMC says hi\\x1b[0m\\r\\nup: done (fake)" in out  # visible, and inert
    code, out, err = botlab(lab, "status")
    assert code == 0, err
    assert_clean(out)  # (its columns are cut before the message's escapes)
    code, out, err = botlab(lab, "logs", "enlist")
    assert code == 0, err
    assert_clean(out)
    assert "\\x1b[31mBMC says hi" in out
    store = StateStore.open_existing(lab.inventory.parent / ".botlab")
    try:
        stored = [e.message for e in store.events()] + [p.detail for p in store.progress("enlist").values()]
        record = store.stage("enlist")
    finally:
        store.close()
    assert record is not None and record.error is not None and "\x1b" not in record.error
    assert not any("\x1b" in m or "\r" in m or "\n" in m for m in stored)
    logs = list((lab.inventory.parent / ".botlab" / "logs").glob("*.log"))
    assert logs and not any(b"\x1b" in p.read_bytes() or b"\r" in p.read_bytes() for p in logs)
