"""Secrets named by the inventory: resolving them, and keeping their values out of sight."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from botlab.errors import InputError, Location
from botlab.secrets import RedactingFilter, Secret, SecretRef, redact, register

WHERE = Location("inventory/demo/lab.yaml", 4)


def test_env_reference_resolves_from_the_given_environment() -> None:
    secret = SecretRef("env", "MAAS_API_KEY").resolve({"MAAS_API_KEY": "env-value-1"})
    assert secret.reveal() == "env-value-1"


def test_env_reference_defaults_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOTLAB_TEST_SECRET", "process-env-value-2")
    assert SecretRef("env", "BOTLAB_TEST_SECRET").resolve().reveal() == "process-env-value-2"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "environment variable MAAS_API_KEY is not set (export MAAS_API_KEY=...)"),
        ({"MAAS_API_KEY": ""}, "environment variable MAAS_API_KEY is empty"),
    ],
)
def test_missing_env_variable_is_named_with_where_it_was_referenced(environ: dict[str, str], message: str) -> None:
    with pytest.raises(InputError) as caught:
        SecretRef("env", "MAAS_API_KEY").resolve(environ, where=WHERE, key="maas.api_key")
    assert str(caught.value) == f"inventory/demo/lab.yaml:4: maas.api_key: {message}"


def write_secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_file_reference_resolves_without_its_trailing_newline(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "key", "file-value-3\n")
    assert SecretRef("file", str(path)).resolve().reveal() == "file-value-3"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_file_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    path = write_secret(tmp_path / "key", "file-value-4", mode)
    assert SecretRef("file", str(path)).resolve().reveal() == "file-value-4"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_secret(tmp_path / "key", "file-value-5", mode)
    with pytest.raises(InputError) as caught:
        SecretRef("file", str(path)).resolve(where=WHERE, key="maas.api_key")
    text = str(caught.value)
    assert text.startswith("inventory/demo/lab.yaml:4: maas.api_key: ")
    assert f"(mode {mode:04o})" in text and f"chmod 600 {path}" in text
    assert "file-value-5" not in text


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("folder", "is not a regular file"),
    ],
)
def test_unusable_secret_files_are_input_errors(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "key"
    if setup == "empty":
        write_secret(path, "\n")
    elif setup == "folder":
        path.mkdir()
    with pytest.raises(InputError) as caught:
        SecretRef("file", str(path)).resolve(where=WHERE, key="juju.password")
    assert str(caught.value) == f"inventory/demo/lab.yaml:4: juju.password: file {path} {message}"


def test_secret_ref_describes_itself_and_fingerprints_as_source_and_name() -> None:
    assert SecretRef("env", "X").describe() == "environment variable X"
    assert SecretRef("file", "/etc/botlab/key").describe() == "file /etc/botlab/key"
    assert dataclasses.asdict(SecretRef("env", "X")) == {"source": "env", "name": "X"}
    assert SecretRef("env", "X").as_data() == {"env": "X"}


def test_secret_never_shows_its_value() -> None:
    secret = Secret("shown-nowhere-6")
    for text in (str(secret), repr(secret), f"{secret}", format(secret), str([secret])):
        assert "shown-nowhere-6" not in text
    assert str(secret) == repr(secret) == "***"
    assert secret.reveal() == "shown-nowhere-6"
    assert secret == Secret("shown-nowhere-6") and secret != Secret("other-7")


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("botlab.test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_redacting_filter_masks_secrets_in_messages_and_args(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    secret = Secret("hunter2-redact-8")
    logger.info("logging in with %s and %r", secret.reveal(), {"key": secret.reveal()})
    logger.info("plain message with hunter2-redact-8 inside")
    logger.info("nothing secret here: %d", 42)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "logging in with *** and {'key': '***'}",
        "plain message with *** inside",
        "nothing secret here: 42",
    ]


def test_redacting_filter_masks_secrets_in_tracebacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    value = Secret("in-a-traceback-9").reveal()
    try:
        raise RuntimeError(f"login failed for {value}")
    except RuntimeError:
        logger.exception("request failed")
    assert "in-a-traceback-9" not in stream.getvalue()
    assert "RuntimeError: login failed for ***" in stream.getvalue()


def test_redact_masks_the_longest_secret_whole_and_registered_derivatives() -> None:
    Secret("abc-redact-10")
    Secret("abc-redact-10-and-more")
    register("derived-token-11")
    text = "x abc-redact-10-and-more y abc-redact-10 z derived-token-11"
    assert redact(text) == "x *** y *** z ***"
    assert redact("") == ""


def test_secret_values_do_not_leak_through_secret_ref_errors(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "key", "leaky-value-12", 0o644)
    with pytest.raises(InputError) as caught:
        SecretRef("file", str(path)).resolve()
    assert "leaky-value-12" not in repr(caught.value) + str(caught.value)


def test_redact_masks_secrets_inside_json_and_urls() -> None:
    value = Secret('q"uo/te&13').reveal()
    assert redact(json.dumps({"password": value})) == '{"password": "***"}'
    assert redact("GET /login?pw=q%22uo%2Fte%2613") == "GET /login?pw=***"
