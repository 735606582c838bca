"""A non-editable install carries what botlab reads at run time from outside its package: the
bundle template and every playbook and template (setup.cfg's data_files, found under
sys.prefix/share/botlab when there is no source checkout)."""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_bundle_playbook_and_template_is_installed_as_data() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    listed = {}
    for target, files in config["options.data_files"].items():
        for name in files.replace(",", "\n").split():
            listed[name] = target
    shipped = sorted(str(p.relative_to(REPO)) for folder in ("bundles", "playbooks")
                     for p in (REPO / folder).rglob("*") if p.is_file())
    assert sorted(listed) == shipped
    for name, target in listed.items():
        assert target == "share/botlab/" + str(Path(name).parent), name
