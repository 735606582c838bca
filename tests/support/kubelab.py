"""A virtual lab started with `botlab lab start`'s machinery for end-to-end stage tests, with
botlab run in-process through its CLI and the emulators read back through their control APIs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from botlab.app import Environment
from botlab.cli import main
from botlab.lab import control, specs
from botlab.pipeline import Stage
from botlab.stages import default_stages
from botlab.state import StateStore

T = TypeVar("T")


def without_lock(requests: list[dict[str, Any]], lab: str) -> list[dict[str, Any]]:
    """MAAS requests without those of the lab's lock (botlab/lablock.py), which every `up`,
    `down` and `rebuild` takes and releases: the DELETE of tag `<lab>_lock`, the tag create
    (POST .../tags/) that made each one deleted, and tag creates MAAS refused (400: a lock
    already held; nothing changed)."""
    from botlab.lablock import lock_tag

    def tag_create(e: dict[str, Any]) -> bool:
        return e.get("method") == "POST" and not e.get("op") and str(e.get("path", "")).rstrip("/").endswith("/tags")

    drop: set[int] = set()
    for i, e in enumerate(requests):
        if tag_create(e) and e.get("status") == 400:
            drop.add(i)
        elif e.get("method") == "DELETE" and str(e.get("path", "")).rstrip("/").endswith(f"/tags/{lock_tag(lab)}"):
            drop.add(i)
            made = next((j for j in range(i - 1, -1, -1) if j not in drop and tag_create(requests[j])
                         and requests[j].get("status") == 200), None)
            if made is not None:
                drop.add(made)
    return [e for i, e in enumerate(requests) if i not in drop]


class KubeLab:
    """A running virtual lab with 5 machines (node-04/05 with GPUs, node-03 the NFS host)."""

    def __init__(self, tmp: Path, info: control.LabInfo) -> None:
        self.tmp = tmp
        self.info = info
        self.inventory = info.inventory
        self.juju_url = info.juju_control_url
        self.stdout = self.stderr = ""

    # -- the emulators' control APIs -----------------------------------------------------------

    @staticmethod
    def _call(url: str, method: str = "GET", body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as answer:
            return json.loads(answer.read())

    def maas_events(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._call(f"{self.info.control_url}events?since={since}")["events"])

    def maas_seq(self) -> int:
        return int(self._call(self.info.control_url + "state")["last_seq"])

    def maas_machines(self) -> dict[str, dict[str, Any]]:
        return {m["hostname"]: m for m in self._call(self.info.control_url + "state")["machines"]}

    def juju_events(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._call(f"{self.juju_url}events?since={since}")["events"])

    def juju_seq(self) -> int:
        return int(self._call(self.juju_url + "state")["last_seq"])

    def juju_models(self) -> list[str]:
        return [m["name"] for m in self._call(self.juju_url + "state")["models"]]

    def juju_faults(self, fault: dict[str, Any] | None) -> None:
        self._call(self.juju_url + "faults", "POST" if fault else "DELETE", fault)

    def unit_faults(self, fault: dict[str, Any] | None) -> None:
        self._call(self.juju_url + "unit-faults", "POST" if fault else "DELETE", fault)

    def juju_mutations(self, since: int) -> list[str]:
        return [f"{e['facade']}.{e['method']}" for e in self.juju_events(since)
                if e["kind"] == "rpc" and e.get("mutating")]

    def maas_mutations(self, since: int) -> list[dict[str, Any]]:
        """Mutating MAAS requests since `since`, the lab's lock apart (see `without_lock`)."""
        return without_lock([e for e in self.maas_events(since) if e.get("kind") == "request" and e.get("mutating")],
                            self.info.name)

    # -- botlab -----------------------------------------------------------------------------------

    def stages(self) -> Sequence[Stage[Any]]:
        """botlab's stages; a lab without hosts has nothing at its machines' addresses, so its
        pipeline stops after kubernetes (the gpu stage works over SSH)."""
        if self.info.hosts:
            return default_stages()
        return [s for s in default_stages() if s.name in ("enlist", "kubernetes")]

    def botlab(self, *args: str) -> int:
        out, err = io.StringIO(), io.StringIO()
        env = Environment(cwd=self.tmp, environ=dict(os.environ), stdout=out, stderr=err, stages=self.stages)
        code = main(["-i", str(self.inventory), *args], env)
        self.stdout, self.stderr = out.getvalue(), err.getvalue()
        return code

    def json(self, *args: str) -> dict[str, Any]:
        code = self.botlab("--output", "json", *args)
        doc: dict[str, Any] = json.loads(self.stdout)
        doc["_code"] = code
        return doc

    def edit_inventory(self, **kubernetes: Any) -> None:
        doc = yaml.safe_load(self.inventory.read_text())
        doc.setdefault("kubernetes", {}).update(kubernetes)
        self.inventory.write_text(yaml.safe_dump(doc, sort_keys=False))

    def store(self) -> StateStore:
        return StateStore.open_existing(self.inventory.parent / ".botlab")

    def on_model(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run `work(model)` on the lab's Kubernetes model through python-libjuju, which finds
        the controller in the lab's JUJU_DATA folder (this process's environment is left alone)."""
        from juju.client.jujudata import FileJujuData
        from juju.controller import Controller

        async def scenario() -> T:
            data = FileJujuData()
            data.path = self.info.juju_data
            controller = Controller(jujudata=data)
            await controller.connect("botlab-lab")
            model = await controller.get_model("alpha-k8s")
            try:
                return await work(model)
            finally:
                await model.disconnect()
                await controller.disconnect()

        return asyncio.run(scenario())

    # -- lab hosts -----------------------------------------------------------------------------

    def host(self, hostname: str) -> Any:
        """A fabric Connection to a deployed lab host as the operator (any host key accepted:
        the tests that check keys do it through botlab)."""
        import paramiko
        from fabric import Connection

        address = self.maas_machines()[hostname]["ip_addresses"][0]
        conn = Connection(address, user="ubuntu", connect_timeout=10,
                          connect_kwargs={"key_filename": str(self.info.dir / "keys" / "id_ed25519"),
                                          "look_for_keys": False, "allow_agent": False})
        conn.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        return conn

    def host_sh(self, hostname: str, command: str) -> tuple[int, str]:
        """`command` on a lab host: (exit code, stdout)."""
        with self.host(hostname) as conn:
            result = conn.run(command, hide=True, warn=True, in_stream=False)
            return result.exited, result.stdout

    def host_netns(self, hostname: str) -> str:
        """The network namespace a lab host lives in (`ip -n NS link set eth0 down` cuts it off)."""
        from botlab.lab.hosts import names

        return names.netns(names.lab_id(self.info.dir), hostname)

    def stage(self, name: str, doc: dict[str, Any]) -> dict[str, Any]:
        return next(s for s in doc["stages"] if s["stage"] == name)


def start_lab(tmp: Path, *, deploy_s: float = 0.3, charms: dict[str, float] | None = None,
              machines: int = 5, gpus: int = 2, hosts: bool | None = None, toolkit: bool = False,
              unenlisted: int = 0) -> KubeLab:
    """A lab of `machines` (the last `gpus` with GPUs; `toolkit`: their hosts have the NVIDIA
    container toolkit installed; `unenlisted`: how many MAAS does not know yet) whose
    inventory `botlab` runs against."""
    doc = specs.spec_document(None, machines=machines, gpus=gpus, unenlisted=unenlisted, commissioning_s=0.1,
                              deploy_s=deploy_s, seed=11)
    for machine in doc["machines"]:
        if machine["gpus"]["count"]:
            machine["gpus"]["toolkit"] = toolkit
    doc["timings"].update(testing_s=0.05, release_s=0.1)
    doc["juju"] = {"destroy_s": 0.05, "charms": dict(charms or {})}
    lab = KubeLab(tmp, control.start(tmp / "lab", doc, name="alpha", hosts=hosts))
    lab.edit_inventory(timeout=60)
    return lab


@contextlib.contextmanager
def running_lab(tmp: Path, **options: Any) -> Iterator[KubeLab]:
    """`start_lab(tmp, **options)`, stopped (every process and namespace gone) afterwards."""
    vlab = start_lab(tmp, **options)
    try:
        yield vlab
    finally:
        control.stop(vlab.info.dir)
