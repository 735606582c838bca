"""The gpu stage end to end on lab hosts (real OpenSSH, the lab's containerd charm and NVIDIA
tools), method charm: after `botlab up kubernetes` on 4 machines (2 with GPUs), `up gpu`
registers the charm's `nvidia-container-runtime` on exactly the GPU hosts, verified over SSH;
a second `up` changes nothing; the option changed behind botlab's back is repaired.

The stage is not in botlab's default stages yet (the ssh methods are not proven on lab hosts):
these tests give the CLI the three stages themselves."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from botlab.app import Environment
from botlab.cli import main
from botlab.lab.hosts.manager import hosts_supported
from botlab.pipeline import Stage
from botlab.stages.enlist import EnlistStage
from botlab.stages.gpu import GpuStage
from botlab.stages.kubernetes import KubernetesStage
from tests.support.kubelab import KubeLab, running_lab

WHY_NOT = hosts_supported()
pytestmark = [pytest.mark.lab, pytest.mark.skipif(WHY_NOT is not None, reason=f"lab hosts: {WHY_NOT}")]
GPU_HOSTS = ("node-03", "node-04")


def stages() -> Sequence[Stage[Any]]:
    return [EnlistStage(), KubernetesStage(), GpuStage()]


def botlab(lab: KubeLab, *args: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(cwd=lab.tmp, environ=dict(os.environ), stdout=out, stderr=err, stages=stages)
    code = main(["-i", str(lab.inventory), "--output", "json", *args], env)
    doc: dict[str, Any] = json.loads(out.getvalue())
    doc["_code"] = code
    doc["_stderr"] = err.getvalue()
    return doc


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeLab]:
    with running_lab(tmp_path_factory.mktemp("gpu"), machines=4, gpus=2) as vlab:
        doc = botlab(vlab, "up", "kubernetes")
        assert doc["_code"] == 0, doc
        yield vlab


def actions(doc: dict[str, Any]) -> dict[str, str]:
    return {s["stage"]: s["action"] for s in doc["stages"]}


def test_charm_method_registers_the_runtime_on_gpu_hosts_only_and_a_rerun_changes_nothing(lab: KubeLab) -> None:
    doc = botlab(lab, "up", "gpu")
    assert doc["_code"] == 0, doc
    status = botlab(lab, "status")
    gpu = next(s for s in status["stages"] if s["stage"] == "gpu")
    hosts = gpu["outputs"]["hosts"]
    assert sorted(hosts) == list(GPU_HOSTS)
    assert {h["runtime"] for h in hosts.values()} == {"nvidia-container-runtime"}
    enlisted = next(s for s in status["stages"] if s["stage"] == "enlist")["outputs"]["machines"]
    assert {h: x["gpus"] for h, x in hosts.items()} == {h: enlisted[h]["hardware"]["gpus"] for h in GPU_HOSTS}

    mark = lab.juju_seq()
    again = botlab(lab, "up", "gpu")
    assert again["_code"] == 0, again
    assert actions(again)["gpu"] == "verified", again
    assert lab.juju_mutations(mark) == []


def test_the_option_changed_behind_botlabs_back_is_repaired(lab: KubeLab) -> None:
    async def switch_off(model: Any) -> None:
        await model.applications["containerd-gpu"].set_config({"gpu_driver": "none"})

    lab.on_model(switch_off)
    doc = botlab(lab, "up", "gpu")
    assert doc["_code"] == 0, doc
    assert "reapplied" in actions(doc).values(), doc

    async def read(model: Any) -> Any:
        return (await model.applications["containerd-gpu"].get_config())["gpu_driver"]["value"]

    assert lab.on_model(read) == "nvidia"

