"""Which inventory a command uses: `-i`, `$BOTLAB_INVENTORY`, or the one under the cwd."""

from __future__ import annotations

from pathlib import Path

import pytest

from botlab.errors import InputError
from botlab.inventory import find_inventory


def make(root: Path, *labs: str) -> list[Path]:
    paths = []
    for lab in labs:
        folder = root / "inventory" / lab
        folder.mkdir(parents=True)
        (folder / "lab.yaml").write_text(f"lab: {lab}\n")
        paths.append(folder / "lab.yaml")
    return paths


def test_option_names_the_file(tmp_path: Path) -> None:
    (path,) = make(tmp_path, "demo")
    assert find_inventory(str(path), {}, tmp_path) == path


def test_option_names_the_folder_relative_to_cwd(tmp_path: Path) -> None:
    (path,) = make(tmp_path, "demo")
    assert find_inventory("inventory/demo", {}, tmp_path) == path


def test_option_wins_over_the_environment(tmp_path: Path) -> None:
    demo, other = make(tmp_path, "demo", "other")
    environ = {"BOTLAB_INVENTORY": str(other)}
    assert find_inventory("inventory/demo/lab.yaml", environ, tmp_path) == demo


def test_environment_variable_names_the_inventory(tmp_path: Path) -> None:
    _, other = make(tmp_path, "demo", "other")
    assert find_inventory(None, {"BOTLAB_INVENTORY": "inventory/other"}, tmp_path) == other


def test_the_only_inventory_under_cwd_is_found(tmp_path: Path) -> None:
    (path,) = make(tmp_path, "demo")
    assert find_inventory(None, {"BOTLAB_INVENTORY": ""}, tmp_path) == path


def test_the_virtual_labs_inventory_folder_is_found(tmp_path: Path) -> None:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "lab.yaml").write_text("lab: virtual\n")
    assert find_inventory(None, {}, tmp_path) == tmp_path / "inventory" / "lab.yaml"


def test_inside_an_inventory_folder_its_lab_yaml_is_used(tmp_path: Path) -> None:
    (path,) = make(tmp_path, "demo")
    assert find_inventory(None, {}, path.parent) == path


def test_no_inventory_says_how_to_name_one(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        find_inventory(None, {}, tmp_path)
    text = str(caught.value)
    assert text.startswith(f"{tmp_path}: inventory: no inventory found")
    assert "-i PATH" in text and "BOTLAB_INVENTORY" in text


def test_several_inventories_are_listed(tmp_path: Path) -> None:
    make(tmp_path, "blue", "red")
    with pytest.raises(InputError) as caught:
        find_inventory(None, {}, tmp_path)
    text = str(caught.value)
    assert "several inventories found" in text
    assert "inventory/blue/lab.yaml, inventory/red/lab.yaml" in text


@pytest.mark.parametrize(
    ("option", "environ", "message"),
    [
        ("nowhere", {}, "-i: no such file or folder"),
        (None, {"BOTLAB_INVENTORY": "nowhere"}, "BOTLAB_INVENTORY: no such file or folder"),
        (".", {}, "-i: this folder holds no lab.yaml"),
    ],
)
def test_named_inventory_that_is_not_there(
    tmp_path: Path, option: str | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        find_inventory(option, environ, tmp_path)
    assert message in str(caught.value)
