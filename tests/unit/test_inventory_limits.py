"""Inventory size and shape limits: big labs validate; huge, endless, blocking, deeply nested
or exploding input is refused with one clear problem naming the file, cheaply."""

from __future__ import annotations

import io
import os
import socket
import threading
from pathlib import Path

import pytest

from bench.inventory import HEADER, lab_text
from botlab import yamlsource
from botlab.app import Environment
from botlab.cli import main
from botlab.errors import InputError
from botlab.inventory import load, load_inventory
from botlab.yamlsource import load_yaml, parse_yaml
from tests.unit.test_inventory import edit, write_lab

HOST_FILE = """\
hardware: {cores: 32, memory: 256G, gpus: 4}
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_inventory(path)
    return [str(p) for p in caught.value.problems]


def run(cwd: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), Environment(cwd=cwd, environ={}, stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def run_with_deadline(cwd: Path, *args: str, seconds: float = 20) -> tuple[int, str, str]:
    """`run`, failing the test instead of hanging it if botlab blocks (on a FIFO, say)."""
    result: list[tuple[int, str, str]] = []
    worker = threading.Thread(target=lambda: result.append(run(cwd, *args)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"botlab {' '.join(args)} still running after {seconds} s (blocked?)"
    return result[0]


# ------------------------------------------------------------------------- big labs


def test_12500_plain_machines_validate_in_full(tmp_path: Path) -> None:
    # 12,500 machines written out in full, no aliases: ~390,000 YAML nodes. The old value
    # cap (200,000 values, aliases or not) cut this off and reported every later value
    # (~900 problems: power parameters, machines, sections) as empty.
    n = 12_500
    inv = load_inventory(write_lab(tmp_path, lab_text(n)))
    assert len(inv.machines) == n
    last = inv.machines[-1]
    assert last.hostname == f"node-{n:05d}"
    assert last.macs == ("52:54:00:00:30:d3",)
    assert last.power is not None and str(last.power.parameters["power_address"]) == "10.0.48.211"
    assert inv.machine("node-00005").hardware.gpus == 4 and inv.machine("node-00005").has_role("gpu")
    assert inv.nfs is not None and inv.nfs.server == "node-00004"
    assert inv.metallb is not None and inv.kubernetes.channel == "1.31/stable"
    assert sum(m.has_role("gpu") for m in inv.machines) == (n - 4 + 3) // 4
    assert inv.locations[f"machines[{n - 1}].hardware.gpus"].line == lab_text(n).count("\n") - 7


def test_aliases_in_a_large_lab_are_not_capped_by_its_plain_values(tmp_path: Path) -> None:
    # 3,000 machines, each merging a shared power block: 24,000 values come from aliases,
    # on top of ~60,000 plain ones; well within the expansion cap.
    text = HEADER.replace("machines:\n", "x-ipmi: &ipmi\n  type: ipmi\n  parameters:\n"
                          "    power_user: admin\n    power_pass: {env: IPMI_PASS}\n")
    machines = "".join(
        f"  - hostname: n{i}\n    roles: [{'control-plane, etcd' if i == 0 else 'worker'}]\n"
        f"    power: {{<<: *ipmi}}\n"
        for i in range(3000)
    )
    doc = parse_yaml(text + "machines:\n" + machines, "lab.yaml")
    assert doc.ok, doc.problems[:3]
    assert len(doc.data["machines"]) == 3000
    assert doc.data["machines"][-1]["power"]["parameters"]["power_user"] == "admin"


# ------------------------------------------------------------------------- size caps


def test_a_lab_yaml_over_the_cap_is_refused_from_its_stat(tmp_path: Path) -> None:
    path = write_lab(tmp_path, "")
    with path.open("r+b") as f:
        f.truncate(52_000_000)  # sparse: 52 MB that cost nothing to write (or to refuse)
    code, out, err = run(tmp_path, "-i", str(path), "validate")
    assert code == 2 and out == ""
    assert err.splitlines() == [f"{path}: (document): is 49.6 MiB: an inventory file may be at most 8 MiB"]


def test_no_more_than_the_cap_plus_one_byte_is_read(tmp_path: Path) -> None:
    # /proc files say they are empty, then yield more: the cap holds while reading too.
    doc = load_yaml(Path("/proc/self/maps"), "maps", max_bytes=64, what="this file")
    assert [p.message for p in doc.problems] == ["is more than 64 bytes: this file may be at most 64 bytes"]


def test_a_hosts_file_over_the_cap_is_refused_naming_it(tmp_path: Path) -> None:
    path = write_lab(tmp_path, hosts={"gpu-01.yaml": HOST_FILE})
    host = path.parent / "hosts" / "gpu-01.yaml"
    os.truncate(host, 2 * 1024 * 1024)
    problems = problems_of(path)
    assert problems == [f"{load._display(host)}: (document): is 2 MiB: a hosts/ file may be at most 1 MiB"]


def test_all_files_together_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    padding = "# " + "x" * 2048 + "\n"
    path = write_lab(tmp_path, hosts={"gpu-01.yaml": padding + HOST_FILE, "nfs-01.yaml": "hardware: {cores: 4}\n"})
    monkeypatch.setattr(load, "MAX_TOTAL_BYTES", 2048)  # lab.yaml is under it, with gpu-01.yaml over
    assert path.stat().st_size < 2048
    problems = problems_of(path)
    first = load._display(path.parent / "hosts" / "gpu-01.yaml")
    assert problems == [
        f"{first}: (document): the inventory's files add up to more than 2 KiB here: "
        "lab.yaml and its hosts/ files together may be at most that much"
    ]


def test_a_list_of_a_million_machines_is_refused_unread(tmp_path: Path) -> None:
    path = write_lab(tmp_path, "machines: [" + ",".join(["x"] * 60_000) + "]\n")
    problems = problems_of(path)
    assert f"{load._display(path)}:1: machines: expected at most 50,000 machines, got 60,000" in problems
    assert len(problems) == 5  # and lab, maas, juju, ssh missing: nothing per machine


# ------------------------------------------------------------------------- not regular files


GPU_01_FACTS = "    hardware: {cores: 32, memory: 256G, gpus: 4}\n"


def test_a_fifo_as_a_hosts_file_is_refused_without_blocking(tmp_path: Path) -> None:
    # gpu-01's hardware lives only in its hosts file: the FIFO is the one problem, not
    # also "gpu-01 has role gpu, so hardware.gpus must be at least 1".
    path = write_lab(tmp_path, edit(GPU_01_FACTS, ""), hosts={"nfs-01.yaml": "hardware: {cores: 4}\n"})
    fifo = path.parent / "hosts" / "gpu-01.yaml"
    os.mkfifo(fifo)
    code, _, err = run_with_deadline(tmp_path, "-i", str(path), "validate")
    assert code == 2
    assert err.splitlines() == [
        f"{fifo}: (document): is a FIFO (named pipe), not a regular file: a hosts/ file must be a regular file"
    ]


def test_an_unreadable_hosts_file_is_one_problem(tmp_path: Path) -> None:
    path = write_lab(tmp_path, edit(GPU_01_FACTS, ""), hosts={"gpu-01.yaml": "hardware: {gpus: 4\n"})
    problems = problems_of(path)
    host = load._display(path.parent / "hosts" / "gpu-01.yaml")
    assert len(problems) == 1 and problems[0].startswith(f"{host}:2: yaml: ")


@pytest.mark.parametrize("named", ["file", "folder"])
def test_a_fifo_as_lab_yaml_is_refused_without_blocking(tmp_path: Path, named: str) -> None:
    folder = tmp_path / "inventory" / "demo"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "lab.yaml")
    target = folder / "lab.yaml" if named == "file" else folder
    code, out, err = run_with_deadline(tmp_path, "-i", str(target), "validate")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"{folder / 'lab.yaml'}: (document): is a FIFO (named pipe), not a regular file: "
        "an inventory file must be a regular file"
    ]
    code, out, err = run_with_deadline(tmp_path, "validate")  # found, not skipped
    assert code == 2 and "is a FIFO" in err


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_are_refused(tmp_path: Path, device: str) -> None:
    code, out, err = run_with_deadline(tmp_path, "-i", device, "validate")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"{device}: (document): is a character device, not a regular file: an inventory file must be a regular file"
    ]


def test_a_socket_as_a_hosts_file_is_refused(tmp_path: Path) -> None:
    path = write_lab(tmp_path)
    (path.parent / "hosts").mkdir()
    host = path.parent / "hosts" / "gpu-01.yaml"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(host))
        assert f"{load._display(host)}: (document): is a socket, not a regular file: " \
            "a hosts/ file must be a regular file" in problems_of(path)
    finally:
        sock.close()


def test_a_symlink_to_a_regular_file_still_works(tmp_path: Path) -> None:
    path = write_lab(tmp_path)
    link = tmp_path / "link.yaml"
    link.symlink_to(path)
    assert load_yaml(link).ok


# ------------------------------------------------------------------------- shape limits


def test_a_billion_laughs_is_refused_cheaply_at_the_level_that_explodes() -> None:
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for level in "bcdefghijkl":  # 10**12 values if expanded
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    doc = parse_yaml(bomb, "f.yaml")
    assert doc.data is None
    assert [str(p) for p in doc.problems] == [
        "f.yaml:6: yaml: too many values: aliases here expand to more than 1,000,000 (an alias bomb?)"
    ]


def test_deep_nesting_is_one_problem_not_a_crash() -> None:
    doc = parse_yaml("a:\n  b: " + "[" * 5000 + "]" * 5000 + "\n", "f.yaml")
    assert [str(p) for p in doc.problems] == ["f.yaml:2: yaml: nested more than 100 levels deep"]


def test_deep_nesting_through_aliases_is_refused() -> None:
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 3000))
    doc = parse_yaml(chain, "f.yaml")
    assert [str(p) for p in doc.problems] == ["f.yaml:100: yaml: aliases here nest values more than 100 levels deep"]


def test_too_many_nodes_is_one_problem_where_the_cap_is_crossed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsource, "MAX_NODES", 1000)
    text = "lab: x\nmachines:\n" + "".join(f"  - hostname: n{i}\n" for i in range(1000)) + "nfs: {}\n"
    doc = parse_yaml(text, "f.yaml")
    # 1 document + 2 top keys and values + 1 list: machine 332's hostname value is the 1001st node
    assert [str(p) for p in doc.problems] == ["f.yaml:334: yaml: more than 1,000 values in one file"]
    assert doc.data is None


def test_errors_read_the_same_with_or_without_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = ["a: 1\nb: c: d\n", "a: [1, 2\n", "a: *nope\n", "a: 1\n---\nb: 2\n", "a: \x07\n"]
    fast = [[str(p) for p in parse_yaml(text, "f.yaml").problems] for text in cases]
    monkeypatch.setattr(yamlsource, "_FastLoader", None)
    pure = [[str(p) for p in parse_yaml(text, "f.yaml").problems] for text in cases]
    assert fast == pure and all(fast)
    assert fast[0] == ["f.yaml:2: yaml: mapping values are not allowed here"]
