"""The lab serves stand-ins for the pinned upstream files and its inventory points at them with
their sha256: `botlab fetch` caches them; with the lab's artifact server offline, the cache is
enough, and without a cached copy the download failure names the URL and what to do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.kubelab import KubeLab, running_lab

pytestmark = pytest.mark.lab


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[KubeLab]:
    with running_lab(tmp_path, hosts=False, machines=2, gpus=1) as vlab:
        yield vlab


def serving(lab: KubeLab, on: bool) -> None:
    lab._call(lab.info.control_url + "artifacts", "POST", {"serving": on})


def test_fetch_caches_the_labs_stand_ins_and_an_offline_site_uses_the_cache(lab: KubeLab) -> None:
    source = yaml.safe_load(lab.inventory.read_text())["artifacts"]["nvidia_device_plugin"]
    assert source["url"].startswith("http://127.0.0.1:")
    assert source["url"].endswith("/_lab/artifacts/nvidia_device_plugin")
    doc = lab.json("fetch")
    assert doc["_code"] == 0, doc
    [fetched] = doc["artifacts"]
    data = Path(fetched["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == source["sha256"] == fetched["sha256"]
    manifest = yaml.safe_load(data)
    assert (manifest["kind"], manifest["metadata"]["name"]) == ("DaemonSet", "nvidia-device-plugin-daemonset")

    serving(lab, False)
    again = lab.json("fetch")
    assert again["_code"] == 0 and again["artifacts"][0]["action"] == "cached", again
    Path(fetched["path"]).unlink()
    assert lab.botlab("fetch") == 1
    assert f"cannot download {source['url']}" in lab.stderr and "HTTP 503 Service Unavailable" in lab.stderr, lab.stderr
