"""Keys that hold secrets refuse plain values, naming file, line and key, never the value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from botlab.errors import ExitStatus, InputError
from botlab.inventory import load_inventory
from botlab.inventory.values import is_secret_name
from botlab.secrets import SecretRef
from tests.unit.test_inventory import BASE, edit, write_lab

PLAIN = "a secret: write {env: NAME} or {file: PATH}"
PARAMETERS = "parameters: {power_address: 10.0.0.12, power_pass: {env: IPMI_PASS}}"


def refused(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    return caught.value


def with_parameter(name: str, value: str) -> str:
    return edit(PARAMETERS, PARAMETERS[:-1] + f", {name}: {value}}}")


# (edit of BASE: old, new) -> line and key of the one problem; the new text holds the value
# fmt: off
CASES = [
    ("maas-api-key", "api_key: {env: MAAS_API_KEY}", "api_key: plain-maas-key-1", 4, "maas.api_key"),
    ("maas-api-key-number", "api_key: {env: MAAS_API_KEY}", "api_key: 73315566", 4, "maas.api_key"),
    ("juju-password", "  cloud: maas-cloud\n", "  cloud: maas-cloud\n  password: plain-juju-pw-2\n", 8,
     "juju.password"),
    ("power-pass", "power_pass: {env: IPMI_PASS}", "power_pass: plain-ipmi-pass-3", 22,
     "machines[1].power.parameters.power_pass"),
    ("power-pass-number", "power_pass: {env: IPMI_PASS}", "power_pass: 90210", 22,
     "machines[1].power.parameters.power_pass"),
]
PARAMETER_NAMES = ["ipmi_password", "api_token", "secret_key", "PowerPassword", "BMC_KEY", "power_pass_2"]
# fmt: on


@pytest.mark.parametrize(("old", "new", "line", "key"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plain_secret_is_refused_with_file_line_and_key(
    tmp_path: Path, old: str, new: str, line: int, key: str
) -> None:
    path = write_lab(tmp_path, edit(old, new))
    error = refused(path)
    assert [str(p) for p in error.problems] == [f"{path}:{line}: {key}: {PLAIN}"]
    assert error.exit_status == ExitStatus.BAD_INPUT
    value = new.split(": ")[-1].strip()
    assert value not in str(error) + repr(error)


@pytest.mark.parametrize("name", PARAMETER_NAMES)
def test_power_parameters_named_as_secrets_are_secrets(tmp_path: Path, name: str) -> None:
    assert is_secret_name(name)
    path = write_lab(tmp_path, with_parameter(name, "plain-bmc-secret-4"))
    error = refused(path)
    assert [str(p) for p in error.problems] == [f"{path}:22: machines[1].power.parameters.{name}: {PLAIN}"]
    assert "plain-bmc-secret-4" not in str(error)
    inv = load_inventory(write_lab(tmp_path, with_parameter(name, "{env: BMC_SECRET}")))
    assert inv.machine("gpu-01").power.parameters[name] == SecretRef("env", "BMC_SECRET")  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["power_user", "power_driver", "power_id", "power_verify_ssl", "cipher_suite_id"])
def test_other_power_parameters_stay_plain(tmp_path: Path, name: str) -> None:
    assert not is_secret_name(name)
    inv = load_inventory(write_lab(tmp_path, with_parameter(name, "LAN_2_0")))
    assert inv.machine("gpu-01").power.parameters[name] == "LAN_2_0"  # type: ignore[union-attr]


def test_plain_secret_in_a_hosts_file_points_into_it(tmp_path: Path) -> None:
    path = write_lab(
        tmp_path,
        hosts={
            "nfs-01.yaml": "power:\n  type: ipmi\n  parameters:\n    power_user: admin\n    power_pass: hosts-pw-5\n"
        },
    )
    error = refused(path)
    hosts = path.parent / "hosts" / "nfs-01.yaml"
    assert [str(p) for p in error.problems] == [f"{hosts}:5: machines[2].power.parameters.power_pass: {PLAIN}"]
    assert "hosts-pw-5" not in str(error)


def test_plain_secret_in_a_hosts_file_is_refused_even_where_lab_yaml_wins(tmp_path: Path) -> None:
    path = write_lab(tmp_path, hosts={"gpu-01.yaml": "power:\n  parameters: {power_pass: overridden-pw-6}\n"})
    error = refused(path)
    hosts = path.parent / "hosts" / "gpu-01.yaml"
    assert [str(p) for p in error.problems] == [f"{hosts}:2: machines[1].power.parameters.power_pass: {PLAIN}"]
    assert "overridden-pw-6" not in str(error)


@pytest.mark.parametrize(
    "url",
    [
        "http://admin:url-pw-7@maas.example:5240/MAAS/",
        "ftp://admin:url-pw-7@maas.example/",
        "http://admin:url-pw-7@maas.example:99999999/",
    ],
)
def test_credentials_in_the_maas_url_are_refused(tmp_path: Path, url: str) -> None:
    path = write_lab(tmp_path, edit("url: http://maas.example:5240/MAAS/", f"url: {url}"))
    error = refused(path)
    (problem,) = error.problems
    assert str(problem).startswith(f"{path}:3: maas.url: a secret: credentials do not belong in maas.url; ")
    assert "url-pw-7" not in str(error)


def test_a_bad_url_with_a_user_does_not_show_it(tmp_path: Path) -> None:
    path = write_lab(tmp_path, edit("url: http://maas.example:5240/MAAS/", "url: ftp://user-8@maas.example/"))
    (problem,) = refused(path).problems
    assert "expected an http(s) URL" in problem.message and "user-8" not in problem.message


@pytest.mark.parametrize(
    "value",
    ["{env: 'key-9:with:colons'}", "{file: ''}", "{key-9-as-source: x}", "{env: X, key-9-extra: y}", "[key-9]"],
)
def test_malformed_references_do_not_echo_what_was_written(tmp_path: Path, value: str) -> None:
    path = write_lab(tmp_path, edit("api_key: {env: MAAS_API_KEY}", f"api_key: {value}"))
    (problem,) = refused(path).problems
    assert str(problem).startswith(f"{path}:4: maas.api_key: ")
    assert "key-9" not in problem.message


def test_every_plain_secret_is_reported_at_once_and_no_value_reaches_the_output(tmp_path: Path) -> None:
    values = ["all-maas-10", "all-juju-11", "all-ipmi-12", "all-token-13", "all-host-14"]
    text = (
        BASE.replace("{env: MAAS_API_KEY}", values[0])
        .replace("  cloud: maas-cloud\n", f"  cloud: maas-cloud\n  password: {values[1]}\n")
        .replace("power_pass: {env: IPMI_PASS}", f"power_pass: {values[2]}, api_token: {values[3]}")
    )
    path = write_lab(
        tmp_path, text, hosts={"nfs-01.yaml": f"power: {{type: ipmi, parameters: {{pass: {values[4]}}}}}\n"}
    )
    error = refused(path)
    hosts = path.parent / "hosts" / "nfs-01.yaml"
    assert [str(p) for p in error.problems] == [
        f"{path}:4: maas.api_key: {PLAIN}",
        f"{path}:8: juju.password: {PLAIN}",
        f"{path}:23: machines[1].power.parameters.api_token: {PLAIN}",
        f"{path}:23: machines[1].power.parameters.power_pass: {PLAIN}",
        f"{hosts}:1: machines[2].power.parameters.pass: {PLAIN}",
    ]
    out = subprocess.run(
        [sys.executable, "-m", "botlab.cli", "-i", str(path), "validate"], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 2
    assert f"juju.password: {PLAIN}" in out.stderr
    shown = str(error) + repr(error) + out.stdout + out.stderr
    assert [v for v in values if v in shown] == []
    assert not (path.parent / ".botlab").exists()
