"""The kubernetes stage's bundle, rendered from the inventory: pinned machines, units by
role, GPU workers with the NVIDIA runtime option, strict templates. Juju's own bundle rules
(the lab's bundle-changes implementation) must accept every rendered bundle."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml

from botlab.app import Environment
from botlab.bundle import render_bundle
from botlab.cli import main
from botlab.errors import InputError
from botlab.inventory import load_inventory
from botlab.lab.juju.bundlechanges import get_changes_map_args
from tests.support.inventory import BASE, write_inventory

REPO = Path(__file__).resolve().parents[2]


def rendered(tmp_path: Path, text: str = BASE) -> dict:
    return yaml.safe_load(render_bundle(load_inventory(write_inventory(tmp_path, text))))


def test_every_kubernetes_machine_is_pinned_to_its_host_and_units_follow_roles(tmp_path: Path) -> None:
    bundle = rendered(tmp_path)
    assert bundle["machines"] == {
        "0": {"constraints": "tags=demo-pin-cp-01", "annotations": {"botlab/hostname": "cp-01"}},
        "1": {"constraints": "tags=demo-pin-gpu-01", "annotations": {"botlab/hostname": "gpu-01"}},
    }
    apps = bundle["applications"]
    assert apps["kubernetes-control-plane"]["to"] == ["0"]
    assert apps["etcd"]["to"] == ["0"]
    assert apps["kubernetes-worker-gpu"]["to"] == ["1"]
    assert "kubernetes-worker" not in apps  # no plain workers in this inventory
    assert apps["containerd-gpu"]["options"]["gpu_driver"] == "nvidia"
    assert apps["containerd"]["options"]["gpu_driver"] == "none"
    assert apps["kubernetes-control-plane"]["channel"] == "1.31/stable"
    # nfs-01 has no Kubernetes role: not a bundle machine (Juju refuses unused machines).
    hostnames = {m["annotations"]["botlab/hostname"] for m in bundle["machines"].values()}
    assert "nfs-01" not in hostnames


def test_gpu_method_ssh_leaves_the_runtime_to_the_gpu_stage(tmp_path: Path) -> None:
    bundle = rendered(tmp_path, BASE.replace("container_runtime: containerd",
                                             "container_runtime: containerd\n  gpu_method: ssh"))
    assert bundle["applications"]["containerd-gpu"]["options"]["gpu_driver"] == "none"


@pytest.mark.parametrize("inventory", ["example", "support"])
def test_rendered_bundles_pass_jujus_bundle_rules(tmp_path: Path, inventory: str) -> None:
    path = REPO / "inventory" / "example" if inventory == "example" else write_inventory(tmp_path)
    changes, errors = get_changes_map_args(render_bundle(load_inventory(path)))
    assert [e for e in errors if e] == []
    methods = [c["method"] for c in changes]
    assert methods.count("addMachines") >= 2 and "addRelation" in methods
    pinned = [c["args"]["constraints"] for c in changes if c["method"] == "addMachines"
              and not c["args"].get("container-type")]
    assert all(p.startswith("tags=demo-pin-") for p in pinned)


def test_docker_runtime_needs_an_operator_template(tmp_path: Path) -> None:
    inv = load_inventory(write_inventory(tmp_path, BASE.replace("container_runtime: containerd",
                                                                "container_runtime: docker")))
    with pytest.raises(InputError, match=r"kubernetes\.container_runtime: the built-in bundle uses containerd"):
        render_bundle(inv)


def test_an_operator_template_gets_the_same_variables_and_undefined_ones_fail(tmp_path: Path) -> None:
    template = tmp_path / "inventory" / "demo" / "old.yaml.j2"
    template.parent.mkdir(parents=True)
    template.write_text("machines: {% for m in machines %}{{ m.pin_tag }} {% endfor %}\n")
    text = BASE.replace("container_runtime: containerd",
                        "container_runtime: docker\n  bundle: old.yaml.j2")
    inv = load_inventory(write_inventory(tmp_path, text))
    assert render_bundle(inv) == "machines: demo-pin-cp-01 demo-pin-gpu-01 \n"
    template.write_text("line one\n{{ no_such_variable }}\n")
    with pytest.raises(InputError) as caught:
        render_bundle(inv)
    assert str(caught.value).startswith(f"{template}:2: kubernetes.bundle: template error:")


def test_render_command_prints_the_bundle_and_touches_nothing(tmp_path: Path) -> None:
    path = write_inventory(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    code = main(["-i", str(path), "render", "kubernetes"],
                Environment(cwd=tmp_path, environ=dict(os.environ), stdout=out, stderr=err))
    assert code == 0, err.getvalue()
    assert yaml.safe_load(out.getvalue())["machines"]["0"]["constraints"] == "tags=demo-pin-cp-01"
    assert not (path.parent / ".botlab").exists()
