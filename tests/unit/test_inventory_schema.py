"""The schema is the one statement of every key: the model's fields and defaults follow it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from botlab.errors import InputError
from botlab.inventory import Inventory, KubernetesConfig, NfsConfig, load_inventory
from botlab.inventory.load import MODELS
from botlab.inventory.schema import TOP, Derived, Items, Node, default, lookup
from tests.unit.test_inventory import edit, problems_of, write_lab


def _init_fields(cls: type) -> dict[str, dataclasses.Field[object]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _nodes() -> list[tuple[str, Node]]:
    found: list[tuple[str, Node]] = []

    def walk(prefix: str, node: Node) -> None:
        for key in node.keys:
            inner = key.type.node if isinstance(key.type, Items) else key.type
            if isinstance(inner, Node):
                found.append((prefix + key.name, inner))
                walk(prefix + key.name + ".", inner)

    walk("", TOP)
    return found


@pytest.mark.parametrize(("path", "node"), _nodes(), ids=[p for p, _ in _nodes()])
def test_each_mapping_has_a_model_class_with_one_field_per_key(path: str, node: Node) -> None:
    cls = MODELS[node]
    assert isinstance(cls, type)
    assert set(_init_fields(cls)) == {k.field for k in node.keys}


@pytest.mark.parametrize(("path", "node"), _nodes(), ids=[p for p, _ in _nodes()])
def test_model_defaults_are_the_schema_defaults(path: str, node: Node) -> None:
    fields = _init_fields(MODELS[node])  # type: ignore[arg-type]
    for key in node.keys:
        f = fields[key.field]
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        where = f"{path}.{key.name}"
        if key.required:
            assert not has_default, f"{where} is required but the model gives it a default"
        elif isinstance(key.type, Node) and key.default is not None:
            assert f.default_factory is MODELS[key.type], f"{where}: the model must build every key's default"
        elif isinstance(key.default, Derived) and not has_default:
            continue  # derived from outside the mapping (juju.model from the lab's name)
        else:
            assert f.default == default(where), f"{where}: model {f.default!r} != schema {default(where)!r}"


def test_the_inventory_has_one_field_per_top_level_key() -> None:
    fields = _init_fields(Inventory)
    assert set(fields) - {"path", "locations"} == {k.field for k in TOP.keys}
    for key in TOP.keys:
        assert (fields[key.field].default is dataclasses.MISSING) == (key.default is not None), key.name


def test_derived_defaults() -> None:
    assert default("kubernetes.gpu_method") == KubernetesConfig().gpu_method == "charm"
    assert lookup("machines.hardware.memory").field == "memory_mib"
    with pytest.raises(KeyError):
        lookup("machines.hardware.colour")


def test_nfs_allowed_network_is_required_in_model_and_schema(tmp_path: Path) -> None:
    assert lookup("nfs.allowed_network").required
    assert _init_fields(NfsConfig)["allowed_network"].default is dataclasses.MISSING
    problems = problems_of(write_lab(tmp_path, edit("  allowed_network: 10.0.0.0/24\n", "")))
    assert problems == [f"{tmp_path}/inventory/demo/lab.yaml:27: nfs.allowed_network: required key is missing"]


def test_nfs_allowed_network_star_must_be_written(tmp_path: Path) -> None:
    inv = load_inventory(write_lab(tmp_path, edit("allowed_network: 10.0.0.0/24", 'allowed_network: "*"')))
    assert inv.nfs is not None and inv.nfs.allowed_network == "*"


def test_required_key_without_a_value(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_inventory(write_lab(tmp_path, edit("  allowed_network: 10.0.0.0/24\n", "  allowed_network:\n")))
    assert [p.message for p in caught.value.problems] == ["required, but has no value"]
