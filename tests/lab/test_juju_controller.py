"""The Juju controller emulator driven by unmodified python-libjuju, found through a JUJU_DATA
folder exactly as libjuju finds a real controller."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
import yaml
from juju.client import client as juju_client
from juju.controller import Controller
from juju.errors import JujuAPIError, JujuError
from juju.model import Model

from botlab.lab.juju import JujuEmulator
from botlab.lab.juju.facades import REGISTRY, CallContext, facade_method
from botlab.lab.maas import MaasEmulator, run_maas
from botlab.lab.spec import LabSpec, generate_spec
from tests.lab.conftest import ED25519, FAST, control_call, eventually, run, wait_for
from tests.support.libjuju import connected_controller

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[LabSpec, MaasEmulator]]:
    spec = generate_spec(2, timings=FAST)
    with run_maas(spec) as maas:
        yield spec, maas


@pytest.fixture(autouse=True)
def juju_data(juju: JujuEmulator, juju_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test talks to the emulator through JUJU_DATA, as an operator's client does."""
    monkeypatch.setenv("JUJU_DATA", str(juju_data_dir))
    juju.clear_faults()
    return juju_data_dir


# --- finding and logging in to the controller ------------------------------------------------


def test_controller_connect_with_no_arguments_finds_the_controller_through_juju_data(
    juju: JujuEmulator, juju_data: Path, lab: tuple[LabSpec, MaasEmulator]
) -> None:
    _spec, maas = lab
    controllers = yaml.safe_load((juju_data / "controllers.yaml").read_text())
    assert controllers["current-controller"] == "botlab-lab"
    entry = controllers["controllers"]["botlab-lab"]
    assert entry["api-endpoints"] == [juju.endpoint] and entry["uuid"] == juju.controller_uuid
    assert entry["ca-cert"].startswith("-----BEGIN CERTIFICATE-----")
    for private in ("accounts.yaml", "credentials.yaml", "ssh/juju_id_rsa"):
        assert (juju_data / private).stat().st_mode & 0o777 == 0o600, private
    assert "juju-client-key" in (juju_data / "ssh/juju_id_rsa.pub").read_text()

    async def scenario() -> None:
        controller = await connected_controller()
        try:
            assert controller.controller_uuid == juju.controller_uuid
            assert controller.connection().info["server-version"] == "3.6.1"
            assert controller.connection().info["user-info"]["identity"] == "user-admin"
            assert {"controller", "default"} <= set(await controller.list_models())
            assert await controller.get_cloud() == "lab-maas"
            cloud = (await controller.cloud()).cloud
            assert (cloud.type_, cloud.endpoint, cloud.auth_types) == ("maas", maas.url, ["oauth1"])
            assert [r.name for r in cloud.regions] == ["default"]
            info = await controller.info()
            assert info.results[0].addresses == [juju.endpoint]
            assert info.results[0].cacert == juju.ca_cert
            user = await controller.get_current_user()
            assert user is not None and user.username == "admin" and user.access == "superuser"
            assert await controller.get_user("nobody") is None
        finally:
            await controller.disconnect()

    run(scenario)


def test_a_wrong_password_is_refused_with_jujus_error(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        controller = Controller()
        with pytest.raises(JujuAPIError) as refused:
            await controller.connect(endpoint=juju.endpoint, username="admin", password="wrong", cacert=juju.ca_cert)
        assert refused.value.error_code == "unauthorized access"
        assert refused.value.message == "invalid entity name or password"
        assert not controller.is_connected()

    run(scenario)
    logins = [e for e in juju.events() if e["kind"] == "rpc" and e["method"] == "Login"]
    assert logins[-1]["error_code"] == "unauthorized access"


# --- models ----------------------------------------------------------------------------------


def test_add_model_on_the_maas_cloud_then_list_inspect_and_connect_to_it_by_name(
    juju: JujuEmulator,
) -> None:
    async def scenario() -> None:
        controller = await connected_controller()
        try:
            model = await controller.add_model(
                "lab-k8s", cloud_name="lab-maas", credential_name="admin", config={"logging-config": "<root>=DEBUG"}
            )
            info = model.info
            assert (info.name, info.type_, info.provider_type, info.life) == ("lab-k8s", "iaas", "maas", "alive")
            assert (info.cloud_tag, info.cloud_region) == ("cloud-lab-maas", "default")
            assert info.cloud_credential_tag == "cloudcred-lab-maas_admin_admin"
            assert info.controller_uuid == juju.controller_uuid and info.owner_tag == "user-admin"
            assert str(info.agent_version) == "3.6.1" and info.status.status == "available"
            assert info.users[0].user == "admin" and info.users[0].access == "admin"
            assert model.is_connected() and model.machines == {}
            await model.disconnect()

            assert "lab-k8s" in await controller.list_models()
            uuids = await controller.model_uuids()
            full = await controller.get_model_info(model_uuid=uuids["lab-k8s"])
            assert full.uuid == uuids["lab-k8s"] and full.default_base == "ubuntu@24.04"

            # Not in models.yaml: libjuju asks the controller (Controller.AllModels).
            by_name = Model()
            await by_name.connect(model_name="admin/lab-k8s")
            try:
                assert by_name.info.uuid == uuids["lab-k8s"]
                config = await by_name.get_config()
                assert config["logging-config"].value == "<root>=DEBUG"
                assert config["logging-config"].source == "model"
            finally:
                await by_name.disconnect()

            again = await controller.get_model("lab-k8s")
            assert again.info.name == "lab-k8s"
            await again.disconnect()

            current = Model()  # models.yaml's current model
            await current.connect()
            assert current.info.name == "default"
            await current.disconnect()

            with pytest.raises(JujuError, match='model "lab-k8s" for admin already exists'):
                await controller.add_model("lab-k8s")
            with pytest.raises(JujuAPIError, match='region "nope" not found'):
                await controller.add_model("elsewhere", region="nope")
            # A credential MAAS would refuse: the model is not created (Juju validates it on the cloud).
            cloud = juju_client.CloudFacade.from_connection(controller.connection())
            await cloud.UpdateCredentialsCheckModels(credentials=[{
                "tag": "cloudcred-lab-maas_admin_stale",
                "credential": {"auth-type": "oauth1", "attrs": {"maas-oauth": "old:key:gone"}},
            }], force=False)
            with pytest.raises(JujuAPIError, match="Invalid API key"):
                await controller.add_model("stale", credential_name="stale")
            assert "stale" not in await controller.list_models()
        finally:
            await controller.disconnect()

    run(scenario)
    state = juju.snapshot()
    model = next(m for m in state["models"] if m["name"] == "lab-k8s")
    assert model["cloud"] == "lab-maas" and model["credential"] == "lab-maas/admin/admin"
    assert "maas-oauth" not in json.dumps(state) and juju.password not in json.dumps(state)


def test_model_config_and_constraints_round_trip_and_are_validated(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        controller = await connected_controller()
        model = await controller.add_model("cfg")
        try:
            config = await model.get_config()
            assert config["mode"].value == "requires-prompts" and config["name"].value == "cfg"
            assert config["enable-os-upgrade"].value is True and config["type"].value == "maas"
            await model.set_config({"enable-os-upgrade": "false", "update-status-hook-interval": "10m"})
            config = await model.get_config()
            assert config["enable-os-upgrade"].value is False
            assert config["enable-os-upgrade"].source == "model"
            assert config["update-status-hook-interval"].value == "10m"
            with pytest.raises(JujuAPIError, match=r'enable-os-upgrade: expected bool, got string\("maybe"\)'):
                await model.set_config({"enable-os-upgrade": "maybe"})
            with pytest.raises(JujuAPIError, match="cannot change name"):
                await model.set_config({"name": "other"})

            assert await model.get_constraints() == {}
            await model.set_constraints({"mem": 8192, "cores": 4, "tags": ["gpu"]})
            assert await model.get_constraints() == {"mem": 8192, "cores": 4, "tags": ["gpu"]}
            with pytest.raises(JujuAPIError, match="cannot unmarshal"):
                await model.set_constraints({"mem": "8G"})

            # The model's AllWatcher delta carries the new config, as libjuju's model state shows.
            await eventually(lambda: (_model_delta_config(model) or {}).get("enable-os-upgrade") is False)
        finally:
            await model.disconnect()
            await controller.disconnect()

    run(scenario)


def _model_delta_config(model: Model) -> dict[str, Any] | None:
    """The config in the latest "model" delta libjuju's AllWatcher applied."""
    history = model.state.state.get("model", {}).get(model.info.uuid)
    return history[-1].get("config") if history and history[-1] else None


def test_ssh_keys_are_the_models_authorized_keys(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        controller = await connected_controller()
        model = await controller.add_model("keys")
        try:
            # The client key libjuju sent at creation (juju-client-key) is Juju's own: hidden.
            assert (await model.get_ssh_keys()).results[0].result == []
            await model.add_ssh_key("admin", ED25519)
            listed = (await model.get_ssh_keys()).results[0].result
            assert len(listed) == 1 and listed[0].endswith(" (botlab@test)") and listed[0].count(":") == 15
            assert (await model.get_ssh_keys(raw_ssh=True)).results[0].result == [ED25519]
            with pytest.raises(JujuError, match="duplicate ssh key"):
                await model.add_ssh_key("admin", ED25519)
            with pytest.raises(JujuError, match="invalid ssh key"):
                await model.add_ssh_key("admin", "ssh-rsa not-a-key")
            await model.remove_ssh_key("admin", ED25519)
            assert (await model.get_ssh_keys()).results[0].result == []
            config = await model.get_config()
            keys = config["authorized-keys"].value
            assert "juju-client-key" in keys and "juju-system-key" in keys and "botlab@test" not in keys
        finally:
            await model.disconnect()
            await controller.disconnect()

    run(scenario)


def test_full_status_of_an_empty_model_has_every_field(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        controller = await connected_controller()
        model = await controller.add_model("empty")
        try:
            status = await model.get_status()
            assert status.model.name == "empty" and status.model.type_ == "iaas"
            assert status.model.cloud_tag == "cloud-lab-maas" and status.model.region == "default"
            assert status.model.version == "3.6.1" and status.model.model_status.status == "available"
            assert status.machines == {} and status.applications == {} and status.relations == []
            raw = (await model.connection().rpc({"type": "Client", "request": "FullStatus", "params": {}}))["response"]
            assert set(raw) >= {
                "model", "machines", "applications", "remote-applications", "offers", "relations",
                "controller-timestamp", "branches",
            }
            assert set(raw["model"]) >= {
                "name", "type", "cloud-tag", "region", "version", "available-version", "model-status",
                "meter-status", "sla",
            }
        finally:
            await model.disconnect()
            await controller.disconnect()

    run(scenario)


def test_annotations_on_the_model(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        controller = await connected_controller()
        model = await controller.add_model("notes")
        try:
            facade = juju_client.AnnotationsFacade.from_connection(model.connection())
            tag = f"model-{model.info.uuid}"
            await facade.Set(annotations=[{"entity": tag, "annotations": {"botlab/stage": "kubernetes"}}])
            got = await facade.Get(entities=[{"tag": tag}])
            assert got.results[0].annotations == {"botlab/stage": "kubernetes"}
            # Juju's annotations facade turns NotFound into ErrPerm, annotated
            # (juju/juju apiserver/facades/client/annotations; tests/lab/test_fidelity_juju.py)
            with pytest.raises(JujuError, match='while setting annotations to "application-nope": permission denied'):
                await facade.Set(annotations=[{"entity": "application-nope", "annotations": {"a": "b"}}])
        finally:
            await model.disconnect()
            await controller.disconnect()

    run(scenario)


def test_destroy_model_takes_it_away_and_closes_its_connections(juju: JujuEmulator) -> None:
    released: list[str] = []

    async def release_machines(controller: Any, model: Any) -> None:  # what a MAAS provider would do
        released.append(model.name)

    REGISTRY.add_destroy_hook(release_machines)

    async def scenario() -> None:
        controller = await connected_controller()
        try:
            model = await controller.add_model("doomed")
            uuid = model.info.uuid
            await controller.destroy_model("doomed")
            models = await wait_for(controller.list_models, lambda names: "doomed" not in names, timeout=5)
            assert {"controller", "default"} <= set(models)
            await eventually(lambda: not model.connection().is_open, what="the model connection closes")
            with pytest.raises(JujuAPIError, match='unknown model') as gone:
                await Model().connect(
                    endpoint=juju.endpoint, uuid=uuid, username="admin", password=juju.password, cacert=juju.ca_cert
                )
            assert gone.value.error_code == "model not found"
            with pytest.raises(JujuError, match="controller model"):
                await controller.destroy_model("controller")
            await model.disconnect()
        finally:
            await controller.disconnect()

    try:
        run(scenario)
    finally:
        REGISTRY.destroy_hooks.remove(release_machines)
    assert released == ["doomed"]
    kinds = [e["kind"] for e in juju.events() if e.get("model") == "doomed"]
    assert kinds.index("model-dying") < kinds.index("model-removed")


def test_bundle_changes_come_from_the_controller(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        model = Model()
        await model.connect()
        try:
            facade = juju_client.BundleFacade.from_connection(model.connection())
            bundle = "applications:\n  ubuntu:\n    charm: ubuntu\n    num_units: 1\n"
            plan = await facade.GetChangesMapArgs(bundleurl="", yaml=bundle)
            assert [c.method for c in plan.changes][:2] == ["addCharm", "deploy"]
            assert not any(plan.errors)
        finally:
            await model.disconnect()

    run(scenario)


# --- the RPC layer ---------------------------------------------------------------------------


def test_calls_nobody_implemented_fail_loudly_naming_facade_version_and_method(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        controller = await connected_controller()
        model = await controller.add_model("loud")
        try:
            conn = model.connection()
            with pytest.raises(JujuAPIError) as missing:
                await conn.rpc({"type": "Application", "version": 20, "request": "SetCharm", "params": {}})
            assert missing.value.error_code == "not implemented"
            assert "Application(20).SetCharm is not implemented" in missing.value.message
            with pytest.raises(JujuAPIError) as version:
                await conn.rpc({"type": "Client", "version": 99, "request": "FullStatus", "params": {}})
            assert version.value.message == 'unknown version (99) of interface "Client"'
            assert version.value.error_code == "not implemented"
            with pytest.raises(JujuAPIError, match='unknown object type "Nonsense"'):
                await conn.rpc({"type": "Nonsense", "version": 1, "request": "Do", "params": {}})
            with pytest.raises(JujuAPIError) as wrong_kind:
                await controller.connection().rpc({"type": "Client", "version": 8, "request": "FullStatus"})
            assert wrong_kind.value.message == 'facade "Client" not supported for controller API connection'
            assert wrong_kind.value.error_code == "not supported"
        finally:
            await model.disconnect()
            await controller.disconnect()

    run(scenario)
    calls = [e for e in juju.events() if e["kind"] == "rpc" and e["facade"] == "Application"]
    assert calls[-1]["method"] == "SetCharm" and calls[-1]["error_code"] == "not implemented"


def test_the_wire_protocol_before_and_after_login(juju: JujuEmulator) -> None:
    from websockets.asyncio.client import connect

    context = ssl.create_default_context(cadata=juju.ca_cert)
    context.check_hostname = False

    async def call(ws: Any, request_id: int, facade: str, version: int, method: str, **params: Any) -> Any:
        await ws.send(json.dumps({"request-id": request_id, "type": facade, "version": version,
                                  "request": method, "params": params}))
        return json.loads(await ws.recv())

    async def scenario() -> None:
        async with connect(f"wss://{juju.endpoint}/api", ssl=context) as ws:
            assert await call(ws, 1, "Client", 8, "FullStatus") == {
                "request-id": 1, "error": 'unknown version (8) of interface "Client"',
                "error-code": "not implemented", "response": {},
            }
            login = await call(ws, 2, "Admin", 3, "Login", **{"auth-tag": "user-admin", "credentials": juju.password})
            result = login["response"]
            assert result["controller-tag"] == f"controller-{juju.controller_uuid}" and "model-tag" not in result
            assert result["servers"][0][0]["port"] == int(juju.endpoint.split(":")[1])
            names = {f["name"]: f["versions"] for f in result["facades"]}
            assert names["ModelManager"] == [9, 10] and names["Controller"] == [11, 12] and names["Pinger"] == [1]
            assert "Client" not in names and "ModelConfig" in names  # as Juju filters a controller login
            assert await call(ws, 3, "Pinger", 1, "Ping") == {"request-id": 3, "response": {}}
            again = await call(ws, 4, "Admin", 3, "Login", **{"auth-tag": "user-admin", "credentials": "x"})
            assert again["error-code"] == "not supported"
            await ws.send("this is not JSON")  # Juju's codec drops a connection it cannot read
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
        model_uuid = next(m["uuid"] for m in juju.snapshot()["models"] if m["name"] == "default")
        async with connect(f"wss://{juju.endpoint}/model/{model_uuid}/api", ssl=context) as ws:
            login = await call(ws, 1, "Admin", 3, "Login", **{"auth-tag": "user-admin", "credentials": juju.password})
            assert login["response"]["model-tag"] == f"model-{model_uuid}"
            model_facades = {f["name"] for f in login["response"]["facades"]}
            assert {"Client", "AllWatcher", "ModelConfig", "KeyManager", "Annotations", "Pinger"} <= model_facades
            assert "ModelManager" not in model_facades
            assert (await call(ws, 2, "Admin", 3, "Login"))["error"] == "already logged in"

    run(scenario)


def test_a_blocked_allwatcher_next_does_not_hold_up_other_calls_on_its_connection(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        controller = await connected_controller()
        model = await controller.add_model("busy")
        try:
            conn = model.connection()
            watcher = (await conn.rpc({"type": "Client", "request": "WatchAll"}))["response"]["watcher-id"]
            first = await conn.rpc({"type": "AllWatcher", "request": "Next", "Id": watcher})
            assert first["response"]["deltas"][0][:2] == ["model", "change"]
            blocked = asyncio.ensure_future(conn.rpc({"type": "AllWatcher", "request": "Next", "Id": watcher}))
            for _ in range(3):  # other calls on the same connection answer while Next waits
                assert (await model.get_config())["name"].value == "busy"
                await conn.rpc({"type": "Pinger", "request": "Ping"})
            assert not blocked.done()
            await model.set_config({"development": "true"})  # a change wakes the watcher
            deltas = (await asyncio.wait_for(blocked, 5))["response"]["deltas"]
            assert deltas[0][:2] == ["model", "change"] and deltas[0][2]["config"]["development"] is True
            await conn.rpc({"type": "AllWatcher", "request": "Stop", "Id": watcher})
            with pytest.raises(JujuAPIError, match="unknown watcher id"):
                await conn.rpc({"type": "AllWatcher", "request": "Next", "Id": watcher})
        finally:
            await model.disconnect()
            await controller.disconnect()

    run(scenario)


def test_faults_drop_connections_and_fail_calls_and_libjuju_recovers(juju: JujuEmulator) -> None:
    async def scenario() -> None:
        controller = await connected_controller()
        model = await controller.add_model("flaky")
        try:
            juju.inject({"kind": "drop", "facade": "ModelConfig", "method": "ModelGet", "model": "flaky"})
            with pytest.raises(websockets.ConnectionClosed):
                await model.get_config()
            # libjuju reconnects (and restarts its AllWatcher) by itself.
            await eventually(lambda: model.connection().is_open, timeout=10, what="libjuju reconnects")
            assert (await model.get_config())["name"].value == "flaky"

            assert juju.drop_connections("flaky") == 1  # now, as a controller restart would
            await wait_for(lambda: _try(model.get_config), lambda ok: ok, timeout=10)

            juju.inject({"kind": "error", "facade": "Client", "method": "FullStatus", "message": "boom", "code": "x"})
            with pytest.raises(JujuAPIError, match="boom"):
                await model.get_status()
            assert (await model.get_status()).model.name == "flaky"  # count 1: used up
        finally:
            await model.disconnect()
            await controller.disconnect()

    run(scenario)
    events = juju.events()
    dropped = [e for e in events if e["kind"] == "rpc" and "drop" in e["injected"]]
    assert dropped and dropped[0]["method"] == "ModelGet"
    assert any(e["kind"] == "disconnect" and e["reason"] == "dropped by fault injection" for e in events)
    assert juju.active_faults() == []


async def _try(call: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
    try:
        await call()
    except (websockets.ConnectionClosed, JujuError, OSError):
        return False
    return True


def test_the_event_log_tells_mutating_calls_from_reads(juju: JujuEmulator) -> None:
    async def converge() -> None:
        """An idempotent 'apply': create the model only if missing, set config only if different."""
        controller = await connected_controller()
        try:
            if "rerun" not in await controller.list_models():
                await (await controller.add_model("rerun")).disconnect()
            model = await controller.get_model("rerun")
            if (await model.get_config())["automatically-retry-hooks"].value is not False:
                await model.set_config({"automatically-retry-hooks": "false"})
            await model.disconnect()
        finally:
            await controller.disconnect()

    before = juju.last_seq
    run(converge)
    first = [e for e in juju.events(before) if e["kind"] == "rpc" and e["mutating"]]
    assert [(e["facade"], e["method"]) for e in first] == [
        ("Cloud", "UpdateCredentialsCheckModels"), ("ModelManager", "CreateModel"), ("ModelConfig", "ModelSet"),
    ]
    assert first[1]["model"] is not None and first[2]["model"] == "rerun" and first[2]["user"] == "admin"
    reads = {e["method"] for e in juju.events(before) if e["kind"] == "rpc" and not e["mutating"]}
    assert {"Login", "ListModelSummaries", "ModelGet", "WatchAll", "Next"} <= reads

    again = juju.last_seq
    run(converge)  # the re-run changes nothing
    assert [e for e in juju.events(again) if e["kind"] == "rpc" and e["mutating"]] == []
    assert juju.counters()["ModelManager(10).CreateModel"] >= 1


def test_control_api_over_loopback_http(juju: JujuEmulator) -> None:
    def call(path: str, body: Any = None, method: str = "GET") -> Any:
        return control_call(juju.control_url + path, body, method)

    added = call("faults", {"kind": "slow", "delay_s": 0.01, "facade": "Pinger", "count": 2}, "POST")
    assert added["faults"][0]["kind"] == "slow"
    assert call("faults")["faults"][0]["facade"] == "Pinger"
    assert call("faults", method="DELETE") == {"faults": []}
    with pytest.raises(urllib.error.HTTPError) as bad:
        call("faults", {"kind": "explode"}, "POST")
    assert bad.value.code == 400
    state = call("state")
    assert state["controller"]["uuid"] == juju.controller_uuid
    assert juju.password not in json.dumps(state)
    events = call(f"events?since={juju.last_seq - 1}")
    assert events["last"] == juju.last_seq
    assert call("drop", {"model": "no-such-model"}, "POST") == {"dropped": 0}


def test_the_server_certificate_is_signed_by_the_ca_in_controllers_yaml(juju: JujuEmulator) -> None:
    context = ssl.create_default_context(cadata=juju.ca_cert)
    host, port = juju.endpoint.split(":")
    import socket

    with socket.create_connection((host, int(port)), timeout=5) as raw, context.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    strange = ssl.create_default_context()  # the system CAs do not know the lab's CA
    with socket.create_connection((host, int(port)), timeout=5) as raw, pytest.raises(ssl.SSLError):
        strange.wrap_socket(raw, server_hostname="127.0.0.1")


# --- the extension API ---------------------------------------------------------------------------


def test_a_facade_method_added_by_an_extension_module_serves_calls_and_publishes_deltas(
    juju: JujuEmulator,
) -> None:
    key = ("MachineManager", 10, "AddMachines")
    previous = REGISTRY.methods.get(key)  # the machines module serves it: stand in, then restore

    @facade_method("MachineManager", 10, "AddMachines", replace=True)
    async def add_machines(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        results = []
        for _ in params.get("params") or []:
            number = str(len(ctx.model.entities("machine")))
            ctx.model.put_entity("machine", {
                "id": number, "instance-id": "pending", "life": "alive", "base": "ubuntu@24.04",
                "agent-status": {"current": "pending", "message": "", "version": ""},
                "instance-status": {"current": "pending", "message": "", "version": ""},
                "jobs": ["JobHostUnits"], "addresses": [], "has-vote": False, "wants-vote": False,
                "container-type": "", "supported-containers": [], "supported-containers-known": False,
            })
            ctx.event("machine-added", machine=number)
            results.append({"machine": number})
        return {"machines": results}

    try:
        with pytest.raises(ValueError, match="libjuju does not speak MachineManager version 9"):
            facade_method("MachineManager", 9, "AddMachines")(add_machines)
        with pytest.raises(ValueError, match="no method 'Frobnicate'"):
            facade_method("MachineManager", 10, "Frobnicate")(add_machines)

        async def scenario() -> None:
            controller = await connected_controller()
            model = await controller.add_model("plugged")
            try:
                facade = juju_client.MachineManagerFacade.from_connection(model.connection())
                added = await facade.AddMachines(params=[{"jobs": ["JobHostUnits"]}])
                assert added.machines[0].machine == "0"
                await model.block_until(lambda: "0" in model.machines, timeout=5)
                assert model.machines["0"].safe_data["instance-id"] == "pending"
                summary = (await controller.get_model_info(model_uuid=model.info.uuid)).machines
                assert [m.id_ for m in summary] == ["0"]
            finally:
                await model.disconnect()
                await controller.disconnect()

        # Served by the stand-in now that it is registered.
        run(scenario)
        assert any(e["kind"] == "machine-added" for e in juju.events())
    finally:
        if previous is not None:
            REGISTRY.methods[key] = previous
        else:
            REGISTRY.methods.pop(key, None)


def test_juju_data_can_be_rewritten_and_lists_existing_models(juju: JujuEmulator, tmp_path: Path) -> None:
    folder = juju.write_juju_data(tmp_path / "again")
    models = yaml.safe_load((folder / "models.yaml").read_text())["controllers"]["botlab-lab"]
    assert models["current-model"] == "admin/default"
    assert {"admin/controller", "admin/default"} <= set(models["models"])
    accounts = yaml.safe_load((folder / "accounts.yaml").read_text())["controllers"]["botlab-lab"]
    assert accounts == {"user": "admin", "password": juju.password, "last-known-access": "superuser"}
    credentials = yaml.safe_load((folder / "credentials.yaml").read_text())["credentials"]["lab-maas"]
    assert credentials["admin"]["auth-type"] == "oauth1"
    assert os.stat(folder).st_mode & 0o777 == 0o700


# --- the lab daemon --------------------------------------------------------------------------------


def test_lab_start_serves_the_controller_and_points_the_inventory_at_its_juju_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botlab.inventory import load_inventory
    from botlab.lab import control
    from botlab.lab.spec import dump_spec

    lab_dir = tmp_path / "lab"
    info = control.start(lab_dir, dump_spec(generate_spec(2, timings=FAST)), name="demo")
    try:
        record = json.loads((lab_dir / "lab.json").read_text())
        inventory = load_inventory(lab_dir / "inventory")
        assert inventory.juju.data_dir == lab_dir.resolve() / "juju" == Path(record["juju_data"])
        assert (inventory.juju.controller, inventory.juju.cloud, inventory.juju.model) == (
            "botlab-lab", "lab-maas", "demo-k8s"
        )
        monkeypatch.setenv("JUJU_DATA", str(inventory.juju.data_dir))

        async def scenario() -> None:
            controller = await connected_controller()
            try:
                assert controller.connection().endpoint == record["juju_endpoint"]
                assert (await controller.cloud()).cloud.endpoint == info.maas_url
            finally:
                await controller.disconnect()

        run(scenario)
        with urllib.request.urlopen(record["juju_control_url"] + "counters", timeout=5) as answer:
            assert json.loads(answer.read())["total"] >= 1
    finally:
        control.stop(lab_dir)


def test_the_lab_specs_juju_section_is_checked() -> None:
    from botlab.lab.juju.emulator import juju_settings
    from botlab.lab.spec import load_spec

    settings = juju_settings(load_spec({
        "juju": {"controller": "lab2", "password": "s3cret", "destroy_s": 0,
                 "faults": [{"kind": "drop", "facade": "Client", "count": "always"}]},
    }))
    assert (settings.controller, settings.password, settings.destroy_s) == ("lab2", "s3cret", 0.0)
    assert settings.faults[0].kind == "drop" and settings.faults[0].count is None
    with pytest.raises(ValueError, match=r"juju\.colour: unknown setting"):
        juju_settings(load_spec({"juju": {"colour": "red"}}))
    with pytest.raises(ValueError, match=r"fault\.kind: must be one of drop, error, slow"):
        juju_settings(load_spec({"juju": {"faults": [{"kind": "explode"}]}}))
    with pytest.raises(ValueError, match=r"juju\.faults section"):
        juju_settings(load_spec({"faults": [{"kind": "slow", "service": "juju", "delay_s": 1}]}))
