"""The stage contract's pure parts: declared inputs are exactly what is fingerprinted, typed
outputs round-trip and refuse other shapes, and stages never import one another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from botlab.inventory import load_inventory
from botlab.outputs import ClusterHost, EnlistOutputs, KubernetesOutputs, OutputsError
from botlab.pipeline import Inputs, fingerprint_of
from botlab.stages.enlist import EnlistStage
from botlab.stages.kubernetes import KubernetesStage
from tests.support.inventory import BASE, write_inventory

ROOT = Path(__file__).resolve().parents[2]


def inventory(tmp_path: Path, text: str = BASE):  # type: ignore[no-untyped-def]
    return load_inventory(write_inventory(tmp_path, text))


def test_declared_keys_select_exclude_and_map_over_machines(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    data = Inputs(keys=("lab", "machines[].hostname", "kubernetes", "-kubernetes.timeout", "maas.url"),
                  ).inventory_data(inv)
    assert data["lab"] == "demo"
    assert data["machines"] == [{"hostname": "cp-01"}, {"hostname": "gpu-01"}, {"hostname": "nfs-01"}]
    assert "timeout" not in data["kubernetes"] and data["kubernetes"]["channel"] == "1.31/stable"
    assert data["maas"] == {"url": "http://127.0.0.1:5240/MAAS/"}
    with pytest.raises(ValueError, match="unknown inventory key 'nosuch'"):
        Inputs(keys=("kubernetes.nosuch",)).inventory_data(inv)


def fingerprint(stage: EnlistStage | KubernetesStage, tmp_path: Path, text: str) -> str:
    inv = inventory(tmp_path, text)
    return fingerprint_of(stage, {"inventory": stage.inputs.inventory_data(inv)})


@pytest.mark.parametrize(("stage", "edit", "reruns"), [
    (KubernetesStage(), ("  container_runtime: containerd\n", "  container_runtime: containerd\n  timeout: 60\n"),
     False),  # how long to wait is not what is built
    (KubernetesStage(), ("channel: 1.31/stable", "channel: 1.30/stable"), True),
    (KubernetesStage(), ("hardware: {cores: 4, memory: 8G}", "hardware: {cores: 8, memory: 8G}"), False),
    (KubernetesStage(), ("addresses: [10.0.0.200-10.0.0.210]", "addresses: [10.0.0.200-10.0.0.220]"), False),
    (EnlistStage(), ("hardware: {cores: 4, memory: 8G}", "hardware: {cores: 8, memory: 8G}"), True),
    (EnlistStage(), ("http://127.0.0.1:5240/MAAS/", "http://127.0.0.2:5240/MAAS/"), True),
    (EnlistStage(), ("channel: 1.31/stable", "channel: 1.30/stable"), False),
])
def test_the_fingerprint_is_the_declaration(tmp_path: Path, stage: EnlistStage | KubernetesStage,
                                             edit: tuple[str, str], reruns: bool) -> None:
    before = fingerprint(stage, tmp_path / "a", BASE)
    assert edit[0] in BASE
    after = fingerprint(stage, tmp_path / "b", BASE.replace(*edit))
    assert (before != after) is reruns


def test_files_named_by_the_declaration_count_by_content(tmp_path: Path) -> None:
    stage = KubernetesStage()
    inv = inventory(tmp_path)
    before = stage.inputs.inventory_data(inv)["files"]
    inv.ssh.public_key.write_text("ssh-ed25519 AAAAother operator\n")
    after = stage.inputs.inventory_data(inv)["files"]
    assert before["ssh.public_key"] != after["ssh.public_key"]
    assert before["bundle template"] == after["bundle template"] is not None


def test_outputs_round_trip_and_refuse_other_versions_and_shapes() -> None:
    out = KubernetesOutputs(controller="lab", model="demo-k8s", model_uuid="u", kubeconfig=None,
                            applications=("etcd",), hosts={"cp-01": ClusterHost("0", "10.0.0.5", ("ssh-ed25519 A",),
                                                                                ("etcd/0",))})
    data = out.to_data()
    assert data["version"] == KubernetesOutputs.version
    assert KubernetesOutputs.from_data(data) == out
    assert KubernetesOutputs.from_data({**data, "version": 1}) is None
    assert KubernetesOutputs.from_data(None) is None
    with pytest.raises(OutputsError, match=r"KubernetesOutputs.hosts.cp-01.machine: expected str, got int"):
        KubernetesOutputs.from_data({**data, "hosts": {"cp-01": {**data["hosts"]["cp-01"], "machine": 0}}})
    with pytest.raises(OutputsError, match=r"EnlistOutputs.lab_tag: missing"):
        EnlistOutputs.from_data({"version": EnlistOutputs.version})


def test_stages_share_data_through_outputs_never_by_importing_each_other() -> None:
    stages = ROOT / "botlab" / "stages"
    own = {p.stem for p in stages.glob("*.py")} - {"__init__"}
    for path in stages.glob("*.py"):
        if path.stem == "__init__":
            continue
        helpers = {path.stem + "_diff", path.stem + "_plan"}  # a stage's own pure logic
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("botlab.stages."):
                imported = node.module.rsplit(".", 1)[1]
                assert imported in helpers or imported not in own, f"{path.name} imports {node.module}"
