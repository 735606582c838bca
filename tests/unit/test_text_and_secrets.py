"""Redaction that never reveals, and text from external systems that cannot drive a terminal
or forge a line.

- A short secret (a BMC password `gpu`) is masked only as a whole token: `gpu-01` stays
  `gpu-01` (substring redaction printed `***-01`, mangling the name and revealing the value).
- A long secret is masked wherever it appears: logs, state and output.
- Control characters (ANSI escapes, CR, LF) in text from outside are escaped at every sink:
  progress lines, command output (up, status, logs), error lines, log records, stored events.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from botlab import secrets
from botlab.app import StatusView
from botlab.errors import StageError
from botlab.pipeline import RunResult, StageOutcome
from botlab.report import PlainReporter
from botlab.sanitize import lines, one_line
from botlab.secrets import RedactingFilter, Secret, redact, redact_data
from botlab.state import Event, ProgressRecord, StageRecord
from botlab.views import events_text, run_text, status_text
from tests.support.runlab import Lab

HOSTILE = "\x1b[2J\x1b[31mboom\x1b[0m\r\nup: done (fake)"


@pytest.fixture(autouse=True)
def own_registry() -> Iterator[None]:
    """Secrets registered by a test stay in that test (the registry is process-wide)."""
    saved = set(secrets._registry._values)
    yield
    with secrets._registry._lock:
        secrets._registry._values = saved
        secrets._registry._pattern = None


def state_blobs(lab: Lab) -> list[bytes]:
    return [p.read_bytes() for p in (lab.inventory.parent / ".botlab").rglob("*") if p.is_file()]


def state_texts(lab: Lab) -> list[str]:
    """Every text value the store holds and every log line: the state folder's text, not its
    binary pages (where any byte, 0x1b included, may occur in a number or a page header)."""
    import sqlite3

    state = lab.inventory.parent / ".botlab"
    db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        texts = [v for t in tables for row in db.execute(f"SELECT * FROM {t}") for v in row if isinstance(v, str)]
    finally:
        db.close()
    return texts + [p.read_text() for p in (state / "logs").glob("*.log")]


def assert_clean(text: str) -> None:
    """No raw control character but line breaks, and no forged line."""
    assert "\x1b" not in text and "\r" not in text, repr(text)
    assert "up: done (fake)" not in text.splitlines(), text


# -- redaction ----------------------------------------------------------------------------------


def test_redact_masks_short_secrets_only_as_whole_tokens() -> None:
    Secret("node")
    assert redact("node-01 node.maas nodes anode") == "node-01 node.maas nodes anode"
    assert redact("power_pass=node, user node.") == "power_pass=***, user ***."
    assert redact('{"power_pass":"node"}') == '{"power_pass":"***"}'
    assert redact("ipmi://admin:node@10.0.0.1") == "ipmi://admin:***@10.0.0.1"


def test_redact_masks_long_secrets_anywhere() -> None:
    Secret("Zq9-long-secret-value")
    assert redact("x-Zq9-long-secret-valuey") == "x-***y"
    assert redact("Authorization: OAuth sig=&Zq9-long-secret-value") == "Authorization: OAuth sig=&***"


def test_redact_data_masks_whole_fields_whatever_their_length() -> None:
    Secret("ab")
    assert redact_data({"pw": "ab", "hosts": ["ab-01", "ab"], "n": 1}) == {"pw": "***", "hosts": ["ab-01", "***"],
                                                                          "n": 1}


def test_a_short_secret_does_not_mangle_hostnames_in_output_state_or_logs(lab: Lab) -> None:
    lab.environ["BOTLAB_TEST_MAAS_KEY"] = "gpu"  # a short secret that is also part of a hostname
    lab.environ["BOTLAB_TEST_LEAK"] = "1"  # a careless stage writes the revealed key into an event
    doc = lab.json("up")
    assert doc["_code"] == 0, doc
    out = lab.stdout
    assert lab.run("-v", "up", "--force") == 0
    out += lab.stdout + lab.stderr
    assert lab.run("status") == 0
    status = lab.stdout
    assert lab.run("logs", "enlist") == 0
    logs = lab.stdout
    text = out + status + logs
    assert "gpu-01" in status and "gpu-01" in out
    assert "***-01" not in text
    assert "connecting with key ***" in logs
    assert "key gpu" not in text
    blobs = state_blobs(lab)
    assert any(b"gpu-01" in b for b in blobs)
    assert not any(b"***-01" in b for b in blobs)
    assert not any(b"key gpu" in b or b"key=gpu" in b for b in blobs)
    assert any(b"key=***" in b for b in blobs)


def test_a_long_secret_is_redacted_in_logs_state_and_output(lab: Lab) -> None:
    secret = "Lq-7f3c9e21d4b8a6f0-maas-key"
    lab.environ["BOTLAB_TEST_MAAS_KEY"] = secret
    lab.environ["BOTLAB_TEST_LEAK"] = "1"
    assert lab.run("--output", "json", "up") == 0
    out = lab.stdout
    assert lab.run("-v", "up", "--force") == 0
    out += lab.stdout + lab.stderr
    assert lab.run("logs") == 0
    out += lab.stdout
    assert lab.run("status", "-o", "json") == 0
    out += lab.stdout
    assert secret not in out and "***" in out
    blobs = state_blobs(lab)
    assert any(b"***" in b for b in blobs)
    assert not any(secret.encode() in b for b in blobs)


# -- control characters ---------------------------------------------------------------------------


def test_sanitize_escapes_controls_visibly() -> None:
    assert one_line(HOSTILE) == "\\x1b[2J\\x1b[31mboom\\x1b[0m\\r\\nup: done (fake)"
    assert one_line("tab\there\x00\x7f\x9b\u202e") == "tab\\there\\x00\\x7f\\x9b\\u202e"
    assert lines("one\ntwo\x1b[1m\r") == "one\ntwo\\x1b[1m\\r"
    assert one_line("node-01: Ready") == "node-01: Ready"


def test_reporter_prints_one_line_per_event_whatever_the_detail() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.progress("enlist", "node-01", "Failed commissioning", HOSTILE)
    reporter.note("enlist", HOSTILE)
    outcome = StageOutcome("enlist", "failed", "x", error=StageError(HOSTILE, system="MAAS").render())
    reporter.stage_end(outcome)
    text = stream.getvalue()
    assert_clean(text)
    assert len(text.splitlines()) == 3
    assert "\\x1b[31mboom" in text


def test_views_escape_fields_from_outside() -> None:
    rec = StageRecord("enlist", "failed", None, None, None, 1.0, 2.0, HOSTILE, 1)
    prog = {"node-01": ProgressRecord("enlist", "node-01", "failed", HOSTILE, {}, 1.0)}
    view = StatusView(order=["enlist"], stages={"enlist": rec}, progress={"enlist": prog}, identities={})
    assert_clean(status_text(view))
    assert_clean(events_text([Event(1, 1, "enlist", 1.0, "error", HOSTILE)]))
    failed = StageOutcome("enlist", "failed", "x", error=HOSTILE)
    assert_clean(run_text(RunResult([failed], failed=failed), "up"))


def test_log_records_are_escaped(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("botlab.test.hostile")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("machine said %s", HOSTILE)
    finally:
        logger.removeHandler(handler)
    assert_clean(stream.getvalue())
    assert len(stream.getvalue().splitlines()) == 1


def test_hostile_text_from_a_stage_reaches_no_terminal_raw(lab: Lab) -> None:
    """A stage fails with a message from its system holding ANSI escapes, CR/LF and a forged
    `up: done (fake)` line: `up`, `status` and `logs` print it escaped, one line, and the
    store keeps it escaped."""
    lab.world.mkdir()
    (lab.world / "fail-kubernetes").write_text(HOSTILE)
    assert lab.run("up") == 1
    assert_clean(lab.stdout)
    assert_clean(lab.stderr)
    assert "\\x1b[31mboom" in lab.stdout
    assert lab.run("status") == 0
    assert_clean(lab.stdout)
    assert lab.run("logs", "kubernetes") == 0
    assert_clean(lab.stdout)
    assert "\\x1b[31mboom" in lab.stdout
    assert lab.run("status", "-o", "json") == 0
    error = json.loads(lab.stdout)["stages"][1]["error"]
    assert "\x1b" not in lab.stdout and "\\x1b[31mboom" in error  # escaped before it was stored
    texts = state_texts(lab)
    assert any("\\x1b[31mboom" in t for t in texts)  # the message was stored, escaped
    assert not any("\x1b" in t for t in texts)
