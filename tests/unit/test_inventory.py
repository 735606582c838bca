"""Writing an inventory: what loads, what is refused, and where the errors point."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from botlab.errors import InputError, Location
from botlab.inventory import (
    Hardware,
    Inventory,
    load_inventory,
    parse_address_range,
    parse_memory,
)
from botlab.secrets import SecretRef

REPO = Path(__file__).resolve().parents[2]

# Line numbers matter: the table below names them.
BASE = """\
lab: demo
maas:
  url: http://maas.example:5240/MAAS/
  api_key: {env: MAAS_API_KEY}
juju:
  controller: lab-controller
  cloud: maas-cloud
ssh:
  public_key: keys/id.pub
  private_key: keys/id
machines:
  - hostname: cp-01
    roles: [control-plane, etcd]
    hardware: {cores: 8, memory: 32G}
    macs: ["52:54:00:00:00:01"]
  - hostname: gpu-01
    roles: [worker, gpu]
    hardware: {cores: 32, memory: 256G, gpus: 4}
    macs: ["52:54:00:00:00:02"]
    power:
      type: ipmi
      parameters: {power_address: 10.0.0.12, power_pass: {env: IPMI_PASS}}
  - hostname: nfs-01
    roles: [nfs]
kubernetes:
  channel: 1.31/stable
nfs:
  server: nfs-01
  allowed_network: 10.0.0.0/24
metallb:
  version: v0.14.8
  addresses:
    - 10.0.0.200-10.0.0.220
    - 10.0.1.0/28
kubeflow:
  channel: 1.9/stable
"""


def write_lab(root: Path, text: str = BASE, hosts: dict[str, str] | None = None) -> Path:
    folder = root / "inventory" / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lab.yaml"
    path.write_text(text)
    for name, body in (hosts or {}).items():
        (folder / "hosts").mkdir(exist_ok=True)
        (folder / "hosts" / name).write_text(textwrap.dedent(body))
    return path


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"edit target {old!r} must occur once in BASE"
    return BASE.replace(old, new)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    return [str(p) for p in caught.value.problems]


def test_base_inventory_is_valid(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path))
    assert inv.name == "demo"
    assert inv.juju.model == "demo-k8s"
    assert [m.hostname for m in inv.machines] == ["cp-01", "gpu-01", "nfs-01"]
    assert inv.machine("gpu-01").hardware == Hardware(cores=32, memory_mib=256 * 1024, gpus=4)
    assert inv.ssh.public_key == tmp_path / "inventory" / "demo" / "keys" / "id.pub"
    assert inv.ssh.user == "ubuntu"
    assert inv.kubernetes.gpu_method == "charm"
    assert inv.nfs is not None and inv.nfs.export_path == "/srv/nfs/kubedata"
    assert inv.nfs.storage_class == "nfs-client" and inv.nfs.default_class is True
    assert inv.maas.commission_retries == 2 and inv.maas.timeout == 3600
    assert inv.maas.concurrency == 32
    assert inv.machine("cp-01").architecture == "amd64/generic"
    assert inv.state_dir == tmp_path / "inventory" / "demo" / ".botlab"
    assert [m.hostname for m in inv.with_role("worker")] == ["gpu-01"]


def test_example_inventory_is_valid() -> None:
    inv = load_inventory(REPO / "inventory" / "example" / "lab.yaml")
    assert len(inv.machines) == 5
    assert {r for m in inv.machines for r in m.roles} == {
        "control-plane",
        "etcd",
        "load-balancer",
        "worker",
        "gpu",
        "nfs",
    }
    assert inv.nfs is not None and inv.metallb is not None and inv.kubeflow is not None
    gpu = inv.machine("gpu-01")
    assert gpu.hardware.gpus == 4 and gpu.power is not None  # from hosts/gpu-01.yaml
    assert str(inv.where_machine("gpu-01", "hardware.gpus")).endswith("hosts/gpu-01.yaml:6")


# (edit of BASE: old, new) -> the line, the key and a fragment of the message
# fmt: off
INVALID = [
    ("lab-uppercase", "lab: demo", "lab: Demo", 1, "lab", "expected a lab name"),
    ("lab-too-long", "lab: demo", "lab: " + "a" * 33, 1, "lab", "at most 32"),
    ("lab-missing", "lab: demo", "# no name", 2, "lab", "required key is missing"),
    ("lab-duplicate-key", "maas:\n", "lab: again\nmaas:\n", 2, "lab",
     "duplicate key (first written at line 1)"),
    ("unknown-top-key", "kubeflow:", "kubeflw:", 35, "kubeflw", "did you mean 'kubeflow'?"),
    ("maas-url-scheme", "url: http://maas.example:5240/MAAS/", "url: ftp://maas", 3, "maas.url",
     "expected an http(s) URL"),
    ("maas-key-literal", "api_key: {env: MAAS_API_KEY}", "api_key: s3cr3t", 4, "maas.api_key",
     "a secret: write {env: NAME} or {file: PATH}"),
    ("maas-key-bad-env-name", "{env: MAAS_API_KEY}", "{env: 1BAD}", 4, "maas.api_key",
     "expected an environment variable name"),
    ("maas-key-bad-source", "{env: MAAS_API_KEY}", "{evn: MAAS_API_KEY}", 4, "maas.api_key",
     "did you mean 'env'?"),
    ("maas-unknown-key", "  url: http", "  urll: http", 3, "maas.urll", "did you mean 'url'?"),
    ("maas-url-missing", "  url: http://maas.example:5240/MAAS/\n", "", 2, "maas.url",
     "required key is missing"),
    ("maas-concurrency-range", "  api_key: {env: MAAS_API_KEY}\n",
     "  api_key: {env: MAAS_API_KEY}\n  concurrency: 300\n", 5, "maas.concurrency",
     "expected an integer from 1 to 256, got 300"),
    ("maas-retries-negative", "  api_key: {env: MAAS_API_KEY}\n",
     "  api_key: {env: MAAS_API_KEY}\n  commission_retries: -1\n", 5, "maas.commission_retries",
     "expected an integer >= 0, got -1"),
    ("maas-timeout-text", "  api_key: {env: MAAS_API_KEY}\n",
     "  api_key: {env: MAAS_API_KEY}\n  timeout: soon\n", 5, "maas.timeout",
     "expected an integer above 0, got 'soon'"),
    ("juju-model-prefix", "  cloud: maas-cloud\n", "  cloud: maas-cloud\n  model: other-k8s\n",
     8, "juju.model", "must start with the lab's name"),
    ("juju-controller-missing", "  controller: lab-controller", "  # none", 5, "juju.controller",
     "required key is missing"),
    ("juju-data-dir-type", "  cloud: maas-cloud\n", "  cloud: maas-cloud\n  data_dir: 5\n", 8,
     "juju.data_dir", "expected a path, got 5"),
    ("ssh-user", "ssh:\n", "ssh:\n  user: Root\n", 9, "ssh.user", "expected a user name"),
    ("ssh-private-key-missing", "  private_key: keys/id\n", "", 8, "ssh.private_key",
     "required key is missing"),
    ("machines-empty", "machines:\n", "machines: []\nold_machines:\n", 11, "machines",
     "expected at least one machine"),
    ("hostname-not-dns", "hostname: cp-01", "hostname: CP_01", 12, "machines[0].hostname",
     "expected a hostname"),
    ("hostname-duplicate", "hostname: gpu-01", "hostname: cp-01", 16, "machines[1].hostname",
     "duplicate hostname 'cp-01'"),
    ("machine-unknown-key", "    roles: [nfs]", "    roles: [nfs]\n    architectur: x", 25,
     "machines[2].architectur", "did you mean 'architecture'?"),
    ("role-unknown", "[control-plane, etcd]", "[control-plane, etcd, master]", 13,
     "machines[0].roles[2]", "unknown role 'master'"),
    ("roles-empty", "[control-plane, etcd]", "[]", 13, "machines[0].roles",
     "expected a list of roles"),
    ("cores-zero", "{cores: 8, memory: 32G}", "{cores: 0, memory: 32G}", 14,
     "machines[0].hardware.cores", "expected an integer above 0, got 0"),
    ("memory-unit", "{cores: 8, memory: 32G}", "{cores: 8, memory: 32X}", 14,
     "machines[0].hardware.memory", "expected an amount of memory like 32G"),
    ("gpu-role-without-gpus", "gpus: 4", "gpus: 0", 18, "machines[1].hardware.gpus",
     "has role gpu, so hardware.gpus must be at least 1"),
    ("gpus-without-gpu-role", "{cores: 8, memory: 32G}", "{cores: 8, memory: 32G, gpus: 2}", 13,
     "machines[0].roles", "has hardware.gpus: 2 but not role gpu"),
    ("mac-format", '["52:54:00:00:00:01"]', '["52:54:00:00:01"]', 15, "machines[0].macs[0]",
     "expected a MAC address"),
    ("mac-duplicate-across-machines", '["52:54:00:00:00:02"]', '["52:54:00:00:00:01"]', 19,
     "machines[1].macs[0]", "MAC 52:54:00:00:00:01 is also listed for machines[0] (cp-01"),
    ("power-type-missing", "      type: ipmi\n", "", 20, "machines[1].power.type",
     "required key is missing"),
    ("power-parameter-list", "power_address: 10.0.0.12", "power_address: [10.0.0.12]", 22,
     "machines[1].power.parameters.power_address", "expected a string, a number or a secret"),
    ("power-parameter-bad-ref", "power_pass: {env: IPMI_PASS}", "power_pass: {vault: x}", 22,
     "machines[1].power.parameters.power_pass", "unknown secret source: use {env: NAME} or {file: PATH}"),
    ("architecture-form", "    roles: [nfs]", "    roles: [nfs]\n    architecture: x86", 25,
     "machines[2].architecture", "expected an architecture like amd64/generic"),
    ("workers-without-control-plane", "[control-plane, etcd]", "[etcd]", 11, "machines",
     "no control-plane machine"),
    ("workers-without-etcd", "[control-plane, etcd]", "[control-plane]", 11, "machines",
     "no etcd machine"),
    ("runtime-docker-with-charm", "  channel: 1.31/stable\n",
     "  channel: 1.31/stable\n  container_runtime: docker\n  gpu_method: charm\n", 28,
     "kubernetes.gpu_method", "charm needs container_runtime containerd"),
    ("cni-unknown", "  channel: 1.31/stable\n", "  channel: 1.31/stable\n  cni: weave\n", 27,
     "kubernetes.cni", "expected one of calico, flannel, cilium, got 'weave'"),
    ("kubernetes-channel-form", "channel: 1.31/stable", "channel: '1.31'", 26,
     "kubernetes.channel", "expected a channel like 1.31/stable"),
    ("bundle-missing", "  channel: 1.31/stable\n", "  channel: 1.31/stable\n  bundle: my.yaml\n",
     27, "kubernetes.bundle", "does not exist"),
    ("nfs-server-unknown", "server: nfs-01", "server: nfs-02", 28, "nfs.server",
     "'nfs-02' is not a machine of the lab; did you mean 'nfs-01'?"),
    ("nfs-server-without-role", "server: nfs-01", "server: cp-01", 28, "nfs.server",
     "does not have role nfs"),
    ("nfs-network-missing", "  allowed_network: 10.0.0.0/24\n", "", 27, "nfs.allowed_network",
     "required key is missing"),
    ("nfs-network-host-bits", "10.0.0.0/24", "10.0.0.5/24", 29, "nfs.allowed_network",
     "did you mean 10.0.0.0/24?"),
    ("nfs-export-relative", "  server: nfs-01\n", "  server: nfs-01\n  export_path: srv/nfs\n",
     29, "nfs.export_path", "expected an absolute path"),
    ("nfs-storage-class", "  server: nfs-01\n", "  server: nfs-01\n  storage_class: NFS_Client\n",
     29, "nfs.storage_class", "expected a StorageClass name"),
    ("nfs-default-class-type", "  server: nfs-01\n",
     "  server: nfs-01\n  default_class: maybe\n", 29, "nfs.default_class",
     "expected true or false, got 'maybe'"),
    ("nfs-section-null", "nfs:\n  server: nfs-01\n  allowed_network: 10.0.0.0/24\n",
     "nfs:\n\n\n", 27, "nfs", "has no value"),
    ("metallb-version", "version: v0.14.8", "version: 0.14.8", 31, "metallb.version",
     "expected a pinned version like v0.14.8"),
    ("metallb-address-bad", "- 10.0.0.200-10.0.0.220", "- 10.0.0.300", 33,
     "metallb.addresses[0]",
     "expected a range like 10.0.0.10-10.0.0.20 or a CIDR, got '10.0.0.300'"),
    ("metallb-range-reversed", "- 10.0.0.200-10.0.0.220", "- 10.0.0.220-10.0.0.200", 33,
     "metallb.addresses[0]", "ends before it starts"),
    ("metallb-range-overlap", "- 10.0.1.0/28", "- 10.0.0.210/31", 34, "metallb.addresses[1]",
     "10.0.0.210/31 overlaps metallb.addresses[0] (10.0.0.200-10.0.0.220)"),
    ("metallb-addresses-empty", "  addresses:\n    - 10.0.0.200-10.0.0.220\n    - 10.0.1.0/28\n",
     "  addresses: []\n\n\n", 32, "metallb.addresses", "expected at least one address range"),
    ("kubeflow-channel", "channel: 1.9/stable", "channel: latest", 36, "kubeflow.channel",
     "expected a channel like 1.9/stable"),
    ("yaml-syntax", "  cloud: maas-cloud", "  cloud: [maas-cloud", 8, "yaml",
     "while parsing a flow sequence started at line 7"),
]
# fmt: on


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "fragment"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_inventory_names_file_line_and_key(
    tmp_path: Path, old: str, new: str, line: int, key: str, fragment: str
) -> None:
    path = write_lab(tmp_path, edit(old, new))
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    wanted = f"{path}:{line}: {key}: "
    matching = [str(p) for p in caught.value.problems if str(p).startswith(wanted)]
    assert matching, f"no problem starting {wanted!r} in:\n{caught.value}"
    assert any(fragment in text for text in matching), f"{fragment!r} not in {matching}"


def test_every_problem_is_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    text = (
        BASE.replace("lab: demo", "lab: Demo")
        .replace("gpus: 4", "gpus: -1")
        .replace("- 10.0.0.200-10.0.0.220", "- 10.0.0.300")
        .replace("server: nfs-01", "server: nope")
    )
    problems = problems_of(write_lab(tmp_path, text))
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    keys = [p.split(": ")[1] for p in problems]
    for key in ("lab", "machines[1].hardware.gpus", "nfs.server", "metallb.addresses[0]"):
        assert key in keys


def test_error_paths_are_shown_relative_to_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_lab(tmp_path, edit("- 10.0.0.200-10.0.0.220", "- 10.0.0.300"))
    monkeypatch.chdir(tmp_path)
    problems = problems_of(Path("inventory/demo"))
    assert problems == [
        "inventory/demo/lab.yaml:33: metallb.addresses[0]: expected a range like "
        "10.0.0.10-10.0.0.20 or a CIDR, got '10.0.0.300'"
    ]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "the inventory is empty"),
        ("# only a comment\n", "the inventory is empty"),
        ("- a\n- b\n", "expected a mapping, got a list"),
        ("just text\n", "expected a mapping, got 'just text'"),
    ],
)
def test_unusable_documents_are_input_errors(tmp_path: Path, content: str, fragment: str) -> None:
    problems = problems_of(write_lab(tmp_path, content))
    assert any(fragment in p for p in problems), problems


def test_missing_and_non_utf8_files_are_input_errors(tmp_path: Path) -> None:
    assert any("file does not exist" in p for p in problems_of(tmp_path / "nope.yaml"))
    path = write_lab(tmp_path)
    path.write_bytes(b"lab: demo\nmaas: \xff\n")
    assert problems_of(path) == [f"{path}:2: yaml: is not UTF-8 text"]


def test_unquoted_macs_are_not_read_as_base_60_numbers(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path, edit('["52:54:00:00:00:01"]', "[52:54:00:00:00:01]")))
    assert inv.machine("cp-01").macs == ("52:54:00:00:00:01",)


def test_macs_are_normalized_to_lowercase_colons(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path, edit('["52:54:00:00:00:01"]', '["52-54-00-AA-BB-0C"]')))
    assert inv.machine("cp-01").macs == ("52:54:00:aa:bb:0c",)


def test_gpu_method_defaults_to_ssh_for_docker(tmp_path: Path) -> None:
    text = edit("  channel: 1.31/stable\n", "  channel: 1.31/stable\n  container_runtime: docker\n")
    inv = load_inventory(write_lab(tmp_path, text))
    assert inv.kubernetes.gpu_method == "ssh"


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = edit(
        "    hardware: {cores: 32, memory: 256G, gpus: 4}",
        "    hardware: &gpubox {cores: 32, memory: 256G, gpus: 4}",
    ).replace("    roles: [nfs]\n", "    roles: [nfs]\n    hardware: {<<: *gpubox, gpus: 0}\n")
    inv = load_inventory(write_lab(tmp_path, text))
    assert inv.machine("nfs-01").hardware == Hardware(cores=32, memory_mib=262144, gpus=0)


def test_relative_and_home_paths_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    text = edit("  public_key: keys/id.pub", "  public_key: ~/.ssh/id.pub").replace(
        "  cloud: maas-cloud\n", "  cloud: maas-cloud\n  password: {file: ../secrets/juju}\n"
    )
    inv = load_inventory(write_lab(tmp_path, text))
    assert inv.ssh.public_key == tmp_path / "home" / ".ssh" / "id.pub"
    assert inv.juju.password == SecretRef("file", str(tmp_path / "inventory" / "secrets" / "juju"))


def test_existing_bundle_is_accepted(tmp_path: Path) -> None:
    text = edit("  channel: 1.31/stable\n", "  channel: 1.31/stable\n  bundle: bundle.yaml.j2\n")
    path = write_lab(tmp_path, text)
    (path.parent / "bundle.yaml.j2").write_text("applications: {}\n")
    assert load_inventory(path).kubernetes.bundle == path.parent / "bundle.yaml.j2"


def test_optional_sections_may_be_left_out(tmp_path: Path) -> None:
    text = BASE.split("nfs:\n")[0]
    inv = load_inventory(write_lab(tmp_path, text))
    assert inv.nfs is None and inv.metallb is None and inv.kubeflow is None


def test_kubeflow_with_defaults(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path, edit("kubeflow:\n  channel: 1.9/stable\n", "kubeflow: {}\n")))
    assert inv.kubeflow is not None and inv.kubeflow.channel == "1.9/stable"


# --------------------------------------------------------------------------- hosts/ files


def test_hosts_file_merges_into_its_machine_and_lab_yaml_wins(tmp_path: Path) -> None:
    path = write_lab(
        tmp_path,
        hosts={
            "nfs-01.yaml": """\
                # facts from the survey
                hardware:
                  cores: 4
                  memory: 16G
                macs: ["52:54:00:00:00:03"]
                power: {type: ipmi, parameters: {power_address: 10.0.0.13}}
            """,
            "gpu-01.yaml": """\
                hardware:
                  cores: 64
                  memory: 512G
                architecture: arm64/generic
                power:
                  type: redfish
                  parameters: {power_user: admin}
            """,
        },
    )
    inv = load_inventory(path)
    nfs = inv.machine("nfs-01")
    assert nfs.hardware == Hardware(cores=4, memory_mib=16 * 1024, gpus=0)
    assert nfs.macs == ("52:54:00:00:00:03",)
    gpu = inv.machine("gpu-01")
    # lab.yaml's values win; keys only in the hosts file are added (deep merge)
    assert gpu.hardware == Hardware(cores=32, memory_mib=256 * 1024, gpus=4)
    assert gpu.architecture == "arm64/generic"
    assert gpu.power is not None and gpu.power.type == "ipmi"
    assert dict(gpu.power.parameters) == {
        "power_address": "10.0.0.12",
        "power_pass": SecretRef("env", "IPMI_PASS"),
        "power_user": "admin",
    }
    hosts = path.parent / "hosts"
    assert inv.where_machine("nfs-01", "hardware.memory") == Location(str(hosts / "nfs-01.yaml"), 4)
    assert inv.where_machine("nfs-01", "macs[0]") == Location(str(hosts / "nfs-01.yaml"), 5)
    assert inv.where_machine("gpu-01", "hardware.cores") == Location(str(path), 18)
    assert inv.where_machine("gpu-01", "architecture") == Location(str(hosts / "gpu-01.yaml"), 4)
    assert inv.where_machine("gpu-01", "power.parameters.power_user") == Location(str(hosts / "gpu-01.yaml"), 7)
    assert inv.where_machine("gpu-01", "power.type") == Location(str(path), 21)


def test_problems_in_hosts_files_point_into_them(tmp_path: Path) -> None:
    path = write_lab(
        tmp_path,
        hosts={
            "nfs-01.yaml": "hardware:\n  cores: many\nhostname: other\n",
            "nfs-02.yaml": "hardware: {cores: 4}\n",
            "cp-01.yml": "hardware: {cores: 4}\n",
        },
    )
    hosts = path.parent / "hosts"
    assert problems_of(path) == [
        f"{hosts}/cp-01.yml:1: hosts/cp-01.yml: rename to cp-01.yaml (hosts files end in .yaml)",
        f"{hosts}/nfs-01.yaml:2: machines[2].hardware.cores: expected an integer above 0, got 'many'",
        f"{hosts}/nfs-01.yaml:3: machines[2].hostname: unknown key; allowed keys: hardware, power, macs, architecture",
        f"{hosts}/nfs-02.yaml:1: hosts/nfs-02.yaml: no machine 'nfs-02' in lab.yaml machines: "
        "a hosts file is named after its machine's hostname; did you mean nfs-01.yaml?",
    ]


def test_duplicate_mac_between_lab_yaml_and_hosts_file(tmp_path: Path) -> None:
    path = write_lab(tmp_path, hosts={"nfs-01.yaml": 'macs: ["52:54:00:00:00:01"]\n'})
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path.parent}/hosts/nfs-01.yaml:1: machines[2].macs[0]: ")
    assert f"also listed for machines[0] (cp-01, at {path}:15)" in problems[0]


# --------------------------------------------------------------------------- locations


def test_where_falls_back_to_the_nearest_written_parent(tmp_path: Path) -> None:
    path = write_lab(tmp_path)
    inv = load_inventory(path)
    assert inv.where("metallb.addresses[1]") == Location(str(path), 34)
    assert inv.where("maas.timeout") == Location(str(path), 2)  # default: its section
    assert inv.where("nonsense") == Location(str(path), 1)
    assert inv.where_machine("gpu-01") == Location(str(path), 16)
    assert inv.where_machine("gpu-01", "hardware.gpus") == Location(str(path), 18)
    assert inv.where_machine("ghost", "hardware") == Location(str(path), 11)


# --------------------------------------------------------------------------- secrets in the model


def test_secret_values_never_appear_in_the_inventory(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path))
    environ = {"MAAS_API_KEY": "consumer:token:very-secret-1", "IPMI_PASS": "ipmi-secret-2"}
    secrets = inv.resolve_secrets(environ)
    assert secrets["maas.api_key"].reveal() == "consumer:token:very-secret-1"
    assert secrets["machines[1].power.parameters.power_pass"].reveal() == "ipmi-secret-2"
    shown = repr(inv) + str(inv) + json.dumps(inv.fingerprint_data()) + repr(secrets)
    assert "very-secret-1" not in shown and "ipmi-secret-2" not in shown


def test_unresolvable_secrets_name_where_they_were_referenced(tmp_path: Path) -> None:
    path = write_lab(tmp_path)
    inv = load_inventory(path)
    with pytest.raises(InputError) as caught:
        inv.resolve_secrets({})
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4: maas.api_key: environment variable MAAS_API_KEY is not set (export MAAS_API_KEY=...)",
        f"{path}:22: machines[1].power.parameters.power_pass: environment variable IPMI_PASS "
        "is not set (export IPMI_PASS=...)",
    ]


def test_power_parameters_resolve_their_secrets(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path))
    params = inv.power_parameters("gpu-01", {"IPMI_PASS": "pw-for-power-1"})
    assert params["power_address"] == "10.0.0.12"
    assert str(params["power_pass"]) == "***"
    assert inv.power_parameters("cp-01", {}) == {}


# --------------------------------------------------------------------------- fingerprints


def test_fingerprint_data_shows_references_not_values(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path))
    data = inv.fingerprint_data("maas", "machines")
    assert set(data) == {"maas", "machines"}
    assert data["maas"]["api_key"] == {"env": "MAAS_API_KEY"}
    gpu = next(m for m in data["machines"] if m["hostname"] == "gpu-01")
    assert gpu["power"]["parameters"]["power_pass"] == {"env": "IPMI_PASS"}
    json.dumps(inv.fingerprint_data())  # all of it is JSON-able
    assert set(inv.fingerprint_data()) == {
        "artifacts",
        "lab",
        "maas",
        "juju",
        "ssh",
        "machines",
        "kubernetes",
        "nfs",
        "metallb",
        "kubeflow",
    }


def test_fingerprint_data_is_stable_across_loads_and_reordering(tmp_path: Path) -> None:
    first = load_inventory(write_lab(tmp_path / "a")).fingerprint_data()
    again = load_inventory(write_lab(tmp_path / "a")).fingerprint_data()
    assert json.dumps(first) == json.dumps(again)
    reordered = BASE.replace("[control-plane, etcd]", "[etcd, control-plane]")
    moved = load_inventory(write_lab(tmp_path / "b", reordered)).fingerprint_data()
    moved["ssh"] = first["ssh"]  # the folder differs, so the key paths do
    assert json.dumps(moved, sort_keys=True) == json.dumps(first, sort_keys=True)


@pytest.mark.parametrize(
    ("old", "new", "section"),
    [
        ("- 10.0.1.0/28", "- 10.0.2.0/28", "metallb"),
        ("allowed_network: 10.0.0.0/24", 'allowed_network: "*"', "nfs"),
        ("gpus: 4", "gpus: 8", "machines"),
        ("channel: 1.31/stable", "channel: 1.32/stable", "kubernetes"),
        ("{env: MAAS_API_KEY}", "{env: OTHER_KEY}", "maas"),
    ],
)
def test_fingerprint_changes_only_in_the_touched_section(tmp_path: Path, old: str, new: str, section: str) -> None:
    before = load_inventory(write_lab(tmp_path)).fingerprint_data()
    after = load_inventory(write_lab(tmp_path, edit(old, new))).fingerprint_data()
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {section}


def test_fingerprint_data_rejects_unknown_sections(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path))
    with pytest.raises(ValueError, match="unknown inventory sections"):
        inv.fingerprint_data("metal")


def test_inventories_compare_by_content_and_are_hashable(tmp_path: Path) -> None:
    a = load_inventory(write_lab(tmp_path))
    b = load_inventory(write_lab(tmp_path))
    assert a == b and hash(a) == hash(b)
    assert isinstance(a, Inventory)


# --------------------------------------------------------------------------- value parsers


@pytest.mark.parametrize(
    ("value", "mib"),
    [
        (4096, 4096),
        ("32G", 32768),
        ("32GiB", 32768),
        ("32GB", 32768),
        ("32Gi", 32768),
        ("32 g", 32768),
        ("512M", 512),
        ("512MiB", 512),
        ("1T", 1048576),
        ("1.5G", 1536),
        ("2048", 2048),
    ],
)
def test_memory_accepts_mib_and_binary_units(value: object, mib: int) -> None:
    assert parse_memory(value) == mib


@pytest.mark.parametrize("value", ["32X", "G", "", "-1G", 0, -5, True, 3.5, "0G", None])
def test_memory_rejects_nonsense(value: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_memory(value)


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("10.0.0.1-10.0.0.10", "10.0.0.10-10.0.0.20", True),
        ("10.0.0.1-10.0.0.10", "10.0.0.11-10.0.0.20", False),
        ("10.0.0.0/24", "10.0.0.128-10.0.1.5", True),
        ("10.0.0.0/25", "10.0.0.128/25", False),
        ("10.0.0.0/16", "10.0.3.0/24", True),
        ("fd00::/64", "fd00::10-fd00::20", True),
        ("fd00::/64", "fd00:0:0:1::-fd00:0:0:1::ff", False),
        ("10.0.0.0/8", "::a00:0/104", False),  # same integers, different families
    ],
)
def test_metallb_overlap_detection(tmp_path: Path, a: str, b: str, overlap: bool) -> None:
    text = edit("- 10.0.0.200-10.0.0.220\n    - 10.0.1.0/28", f"- {a}\n    - {b}")
    path = write_lab(tmp_path, text)
    if overlap:
        problems = problems_of(path)
        assert len(problems) == 1 and "overlaps metallb.addresses[0]" in problems[0]
        assert problems[0].startswith(f"{path}:34: metallb.addresses[1]: ")
    else:
        load_inventory(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1-fd00::1", "mixes IPv4 and IPv6"),
        ("10.0.0.5/24", "did you mean 10.0.0.0/24?"),
        ("10.0.0.5", "expected a range"),
        ("10.0.0.1-", "expected a range"),
    ],
)
def test_address_range_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        parse_address_range(text)


def test_importing_the_inventory_is_light() -> None:
    # (python-libmaas's .pth pre-creates an empty `maas` namespace: compare with before)
    code = (
        "import sys; before = set(sys.modules); import botlab.inventory; "
        "heavy = {'juju', 'maas', 'kubernetes', 'jinja2', 'aiohttp', 'click', 'rich', "
        "'fabric', 'paramiko'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in set(sys.modules) - before}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
