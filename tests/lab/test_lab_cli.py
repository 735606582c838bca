"""`botlab lab start|status|stop` as an operator runs them: files written, the lab answers,
and stop leaves no process behind."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from botlab.app import Environment
from botlab.cli import main
from botlab.inventory import load_inventory
from botlab.lab.control import process_alive

pytestmark = pytest.mark.lab


def run(tmp: Path, *args: str) -> tuple[int, dict]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--output", "json", *args], Environment(cwd=tmp, environ=dict(os.environ),
                                                         stdout=out, stderr=err))
    return code, (json.loads(out.getvalue()) if out.getvalue() else {"stderr": err.getvalue()})


def alive(pid: int) -> bool:
    return process_alive(pid)  # a zombie (our child, not yet reaped) counts as gone


def test_lab_start_writes_a_complete_inventory_and_stop_leaves_nothing_running(tmp_path: Path) -> None:
    code, started = run(tmp_path, "lab", "start", "--dir", "mylab", "--machines", "4", "--gpus", "1",
                        "--name", "rehearsal")
    assert code == 0, started
    pid = started["pid"]
    try:
        assert alive(pid)
        lab_dir = tmp_path / "mylab"
        for secret in ("secrets/maas-api-key", "secrets/power-pass", "keys/id_ed25519"):
            assert (lab_dir / secret).stat().st_mode & 0o777 == 0o600, secret
        inv = load_inventory(lab_dir / "inventory")
        assert inv.name == "rehearsal"
        assert [m.hostname for m in inv.machines] == ["node-01", "node-02", "node-03", "node-04"]
        assert inv.machine("node-04").hardware.gpus == 8 and inv.machine("node-04").has_role("gpu")
        assert inv.maas.url == started["maas_url"]
        assert inv.secret("maas.api_key").reveal().count(":") == 2

        assert started["juju_endpoint"].startswith("127.0.0.1:")
        assert (Path(started["juju_data"]) / "controllers.yaml").exists()
        assert inv.juju.data_dir == Path(started["juju_data"]).resolve()

        code, status = run(tmp_path, "lab", "status", "--dir", "mylab")
        assert code == 0 and status["running"] is True
        assert status["juju_endpoint"] == started["juju_endpoint"]
        assert status["machines"] == {"node-01": "Ready", "node-02": "Ready"}  # 2 not enlisted

        code, again = run(tmp_path, "lab", "start", "--dir", "mylab")
        assert code == 2 and "already running" in again["error"][0]
    finally:
        code, stopped = run(tmp_path, "lab", "stop", "--dir", "mylab")
    assert code == 0 and stopped["stopped"] is True
    assert not alive(pid)
    assert not (tmp_path / "mylab" / "lab.json").exists()
    code, status = run(tmp_path, "lab", "status", "--dir", "mylab")
    assert status == {"running": False}


def test_lab_start_rejects_a_bad_spec_file_with_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("machines: [{hostname: Bad_Name}]\n")
    code, doc = run(tmp_path, "lab", "start", "--dir", "x", "--spec", str(spec))
    assert code == 2
    assert "spec.yaml" in doc["error"][0]
    assert not (tmp_path / "x" / "lab.json").exists()


def test_lab_models_fetch_charms_from_the_labs_own_charmhub(tmp_path: Path) -> None:
    """A model created on the lab's controller inherits charmhub-url from the controller's
    model defaults, so `model.deploy("etcd")` never reaches the real Charmhub."""
    import asyncio

    from juju.client.jujudata import FileJujuData
    from juju.controller import Controller

    code, started = run(tmp_path, "lab", "start", "--dir", "lab", "--machines", "2", "--gpus", "0")
    assert code == 0, started
    try:
        info = json.loads((tmp_path / "lab" / "lab.json").read_text())

        async def scenario() -> str:
            data = FileJujuData()
            data.path = started["juju_data"]
            controller = Controller(jujudata=data)
            await controller.connect()
            try:
                # authorized-keys given: libjuju then reads no key from ~/.local/share/juju.
                key = (tmp_path / "lab" / "keys" / "id_ed25519.pub").read_text().strip()
                model = await controller.add_model("probe", config={"authorized-keys": key})
                try:
                    config = await model.get_config()
                    return str(config["charmhub-url"].value)
                finally:
                    await model.disconnect()
            finally:
                await controller.disconnect()

        assert asyncio.run(scenario()) == info["charmhub_url"]
        assert info["charmhub_url"].startswith("http://127.0.0.1:")
    finally:
        run(tmp_path, "lab", "stop", "--dir", "lab")
