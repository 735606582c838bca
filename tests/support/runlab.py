"""The real CLI, in-process, with the test-only stages over a fake world folder (see
tests/support/stages.py): what the runner tests drive."""

from __future__ import annotations

import io
import json
from pathlib import Path

from botlab.app import Environment
from botlab.cli import main
from botlab.lablock import memory_lock
from botlab.state import StateStore
from tests.support.inventory import write_inventory
from tests.support.stages import journal, lab_stages

SECRET = "s3cr3t-maas-key-value"


class Lab:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.inventory = write_inventory(tmp_path)
        self.world = tmp_path / "world"
        self.environ = {"BOTLAB_TEST_WORLD": str(self.world), "BOTLAB_TEST_MAAS_KEY": SECRET}
        self.stdout = ""
        self.stderr = ""

    def run(self, *args: str) -> int:
        out, err = io.StringIO(), io.StringIO()
        env = Environment(cwd=self.root, environ=self.environ, stdout=out, stderr=err,
                          stages=lab_stages, lab_lock=memory_lock)
        code = main(list(args), env)
        self.stdout, self.stderr = out.getvalue(), err.getvalue()
        return code

    def json(self, *args: str) -> dict:
        code = self.run("--output", "json", *args)
        doc = json.loads(self.stdout)
        doc["_code"] = code
        return doc

    def edit(self, old: str, new: str) -> None:
        text = self.inventory.read_text()
        assert old in text
        self.inventory.write_text(text.replace(old, new))

    def journal(self) -> list[str]:
        return journal(self.world)

    def actions(self, doc: dict) -> dict[str, str]:
        return {s["stage"]: s["action"] for s in doc["stages"]}

    def store(self) -> StateStore:
        return StateStore.open_existing(self.inventory.parent / ".botlab")
