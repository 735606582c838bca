"""Pinned upstream artifacts: `botlab fetch` downloads what the inventory needs into the state
folder's cache and checks each sha256; a later run needs no network; a file with another sum
(from a mirror, or a damaged cached copy) is refused naming the artifact and both sums. The
downloads go to an HTTP server on loopback that this test starts."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botlab import artifacts
from botlab.app import Environment
from botlab.cli import main
from tests.support.inventory import BASE, write_inventory

STAND_IN = b"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: nvidia-device-plugin-daemonset}\n"
SUM = hashlib.sha256(STAND_IN).hexdigest()


class Files(http.server.BaseHTTPRequestHandler):
    served: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = self.served.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"not found")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[tuple[str, type[Files]]]:
    Files.served, Files.hits = {"/plugin.yml": STAND_IN}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", Files
    finally:
        httpd.shutdown()
        httpd.server_close()


def botlab(inventory: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(cwd=inventory.parent, environ={**os.environ, "BOTLAB_TEST_MAAS_KEY": "k"}, stdout=out,
                      stderr=err)
    code = main(["-i", str(inventory), "-o", "json", *args], env)
    return code, json.loads(out.getvalue() or "{}"), err.getvalue()


def inventory(tmp_path: Path, url: str, sha: str = SUM) -> Path:
    return write_inventory(tmp_path, BASE + f"artifacts:\n  nvidia_device_plugin:\n    url: {url}\n    sha256: {sha}\n")


def test_fetch_downloads_checks_and_caches_then_needs_no_network(
        tmp_path: Path, server: tuple[str, type[Files]]) -> None:
    url, files = server
    inv = inventory(tmp_path, url + "/plugin.yml")
    code, doc, err = botlab(inv, "fetch")
    assert code == 0, err
    [fetched] = doc["artifacts"]
    assert (fetched["name"], fetched["action"], fetched["sha256"]) == ("nvidia_device_plugin", "downloaded", SUM)
    assert Path(fetched["path"]).read_bytes() == STAND_IN
    assert Path(fetched["path"]).parent == inv.parent / ".botlab" / "artifacts"
    assert (inv.parent / ".botlab").stat().st_mode & 0o777 == 0o700  # the state folder, made by fetch
    code, _doc, err = botlab(inv, "status")
    assert code == 0, err  # ... is one the state store accepts

    files.served = {}  # the site goes offline: the cache is enough
    code, doc, err = botlab(inv, "fetch")
    assert code == 0, err
    assert doc["artifacts"][0]["action"] == "cached"
    assert files.hits == ["/plugin.yml"]


def test_a_file_with_another_sum_is_refused_naming_the_artifact_and_both_sums(
        tmp_path: Path, server: tuple[str, type[Files]]) -> None:
    url, _files = server
    wrong = "ab" * 32
    inv = inventory(tmp_path, url + "/plugin.yml", wrong)
    code, _doc, err = botlab(inv, "fetch")
    assert code == 1
    assert "nvidia_device_plugin" in err and f"sha256 {SUM}, expected {wrong}" in err, err
    assert not list((inv.parent / ".botlab" / "artifacts").glob("nvidia*"))  # nothing cached


def test_a_damaged_cached_copy_is_refused(tmp_path: Path, server: tuple[str, type[Files]]) -> None:
    url, _files = server
    inv = inventory(tmp_path, url + "/plugin.yml")
    assert botlab(inv, "fetch")[0] == 0
    [cached] = (inv.parent / ".botlab" / "artifacts").glob("nvidia_device_plugin-*")
    cached.write_bytes(STAND_IN + b"# edited\n")
    code, _doc, err = botlab(inv, "fetch")
    assert code == 1 and f"the cached copy {cached}" in err and f"expected {SUM}" in err, err


def test_an_unreachable_source_is_named_with_what_to_do(tmp_path: Path, server: tuple[str, type[Files]]) -> None:
    url, _files = server
    code, _doc, err = botlab(inventory(tmp_path, url + "/missing.yml"), "fetch")
    assert code == 1 and f"cannot download {url}/missing.yml" in err and "mirror" in err, err


def test_the_pinned_device_plugin_is_the_upstream_v0_20_0_manifest() -> None:
    pinned = artifacts.PINNED["nvidia_device_plugin"]
    assert pinned.url.endswith("/NVIDIA/k8s-device-plugin/v0.20.0/deployments/static/nvidia-device-plugin.yml")
    # sha256 of that file at tag v0.20.0 (NVIDIA/k8s-device-plugin, deployments/static/nvidia-device-plugin.yml)
    assert pinned.sha256 == "325835e0b0d9263ae673e41d878f849e880642142e9f9b15d1a3400da6a2260d"


def test_an_inventory_without_gpu_hosts_needs_nothing(tmp_path: Path) -> None:
    text = BASE.replace("roles: [worker, gpu]", "roles: [worker]").replace("gpus: 1", "gpus: 0")
    code, doc, err = botlab(write_inventory(tmp_path, text), "fetch")
    assert code == 0 and doc["artifacts"] == [], err
