"""Pure logic of the lab's hosts: what a deploy's user_data and MAAS keys give a host, the GPU
facts the host tools show, and the kernel names a lab uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from botlab.lab.hosts import cloudinit, names
from botlab.lab.hosts.manager import gpu_facts
from botlab.lab.spec import generate_spec

OPERATOR = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0bEoVbPQSaHcuLNYKwjTBtYP8VSjsTKFl8SXVYWrK operator"
JUJU = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJuju0000000000000000000000000000000000000000 juju-client-key"


def cloud_config(doc: dict[str, object]) -> bytes:
    return ("#cloud-config\n" + yaml.safe_dump(doc)).encode()


def test_maas_keys_and_cloud_config_keys_are_authorized_once_each() -> None:
    config = cloudinit.parse(cloud_config({"ssh_authorized_keys": [JUJU, OPERATOR]}), [OPERATOR, " "], "node-01")
    assert config.default_user == "ubuntu"
    assert config.authorized_keys == [OPERATOR, JUJU]


def test_host_keys_come_from_ssh_keys_else_a_fresh_one_per_boot() -> None:
    given = cloudinit.new_host_key("node-01")
    config = cloudinit.parse(cloud_config({"ssh_keys": {"ed25519_private": given.private,
                                                        "ed25519_public": given.public}}), [], "node-01")
    assert [(k.kind, k.public) for k in config.host_keys] == [("ed25519", given.public)]
    first = cloudinit.parse(None, [OPERATOR], "node-01").host_keys
    second = cloudinit.parse(None, [OPERATOR], "node-01").host_keys
    assert len(first) == len(second) == 1
    assert first[0].public != second[0].public and first[0].public.endswith(" root@node-01")


def test_user_data_that_is_not_cloud_config_gives_no_keys_and_bad_cloud_config_is_refused() -> None:
    assert cloudinit.parse(b"#!/bin/sh\necho hi\n", [], "n").authorized_keys == []
    with pytest.raises(cloudinit.UserDataError, match="not valid YAML"):
        cloudinit.parse(b"#cloud-config\nssh_authorized_keys: [unclosed\n", [], "n")
    with pytest.raises(cloudinit.UserDataError, match="ssh_keys must be a mapping"):
        cloudinit.parse(cloud_config({"ssh_keys": ["x"]}), [], "n")


def test_gpu_facts_follow_the_lab_spec() -> None:
    spec = generate_spec(2, 1)
    plain, gpu = spec.machines
    assert gpu_facts(plain, plain.hostname) == {"hostname": plain.hostname, "gpus": [], "nvidia_toolkit": False}
    facts = gpu_facts(gpu, gpu.hostname)
    assert [g["index"] for g in facts["gpus"]] == list(range(8))
    assert {g["model"] for g in facts["gpus"]} == {"NVIDIA A100-SXM4-80GB"}
    assert len({g["uuid"] for g in facts["gpus"]}) == 8 and len({g["bus_id"] for g in facts["gpus"]}) == 8
    assert facts["gpus"][0]["memory_mib"] == 80 * 1024 - 512
    assert facts["driver_version"] == gpu.gpus.driver_version and facts["nvidia_toolkit"] is False
    assert gpu_facts(gpu, gpu.hostname) == facts  # the same GPUs every boot


def test_kernel_names_fit_and_are_per_lab(tmp_path: Path) -> None:
    one, two = names.lab_id(tmp_path / "a"), names.lab_id(tmp_path / "b")
    assert one != two and len(one) == 6
    for name in (names.bridge(one), names.veth_outside(one, 99999), names.veth_inside(one, 99999)):
        assert len(name) <= 15  # IFNAMSIZ - 1
        assert name.startswith(names.link_prefixes(one))
    assert names.netns(one, "node-01").startswith(names.netns_prefix(one))
