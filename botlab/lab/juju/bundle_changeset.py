"""The change list of a bundle deployment: ids, `requires`, Juju's stable topological sort,
and the JSON-shaped `args` of each change kind (Go structs with `omitempty` tags)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from botlab.lab.juju.bundle_base import Base
from botlab.lab.juju.bundle_data import ExposedEndpointSpec
from botlab.lab.juju.bundle_parse import BundleChangesError


@dataclass
class Change:
    """One change; `machine` is the machine number an addMachines change makes (or hosts its
    container on), `base_machine` the top-level machine an addUnit change lands on."""

    id: str
    method: str
    args: dict[str, Any]
    requires: list[str]
    machine: str = ""
    base_machine: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The change as the Bundle facade sends it (BundleChangesMapArgs)."""
        return {"id": self.id, "method": self.method, "args": self.args, "requires": list(self.requires)}


@dataclass
class ChangeSet:
    """Changes in the order they were added; an id is `<method>-<position>`."""

    changes: list[Change] = field(default_factory=list)

    def add(self, method: str, args: dict[str, Any], requires: Iterable[str] = ()) -> Change:
        """Append a change and return it."""
        change = Change(f"{method}-{len(self.changes)}", method, args, list(requires))
        self.changes.append(change)
        return change

    def dependents(self) -> dict[str, list[str]]:
        """Change id -> ids of the changes that require it."""
        result: dict[str, list[str]] = {}
        for change in self.changes:
            for dependency in change.requires:
                result.setdefault(dependency, []).append(change.id)
        return result

    def sorted(self) -> list[Change]:
        """Requirements first; each pass takes, in insertion order, every change whose
        requirements are done (juju's toposortFlatten). Each `requires` ends up sorted."""
        for change in self.changes:
            change.requires.sort()
        in_degree = {c.id: len(c.requires) for c in self.changes}
        followers = self.dependents()
        by_id = {c.id: c for c in self.changes}
        order: list[Change] = []
        while in_degree:
            before = len(in_degree)
            for change in self.changes:
                if in_degree.get(change.id) == 0:
                    order.append(by_id[change.id])
                    del in_degree[change.id]
                    for follower in followers.get(change.id, []):
                        in_degree[follower] -= 1
            if len(in_degree) == before:
                raise BundleChangesError("sort failed")
        return order


@dataclass
class Sequence:
    """Next machine, container and unit numbers (an empty model starts everything at 0)."""

    values: dict[str, int] = field(default_factory=dict)

    def _next(self, key: str) -> int:
        value = self.values.get(key, 0)
        self.values[key] = value + 1
        return value

    def next_machine(self) -> str:
        """The next top-level machine number."""
        return str(self._next("machine"))

    def next_container(self, parent: str, container_type: str) -> str:
        """The next container id on `parent`, e.g. 0/lxd/1."""
        return f"{parent}/{container_type}/{self._next(f'machine-{parent}/{container_type}')}"


def placeholder(change_id: str) -> str:
    """A reference to another change's result: `$deploy-1`."""
    return "$" + change_id


def json_value(value: Any) -> Any:
    """`value` as it comes back from Go's JSON encoding (whole floats print as integers)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_value(v) for v in value]
    return value


def omit_empty(args: dict[str, Any]) -> dict[str, Any]:
    """Drop the entries Go's `omitempty` leaves out: "", 0, false, nil and empty maps/slices."""
    return {k: json_value(v) for k, v in args.items() if v not in ("", 0, None, False, {}, [])}


def add_charm_args(charm: str, revision: int | None, base: Base, channel: str) -> dict[str, Any]:
    """AddCharmParams."""
    args = {"charm": charm, **omit_empty({"base": str(base), "channel": channel})}
    if revision is not None:
        args["revision"] = revision
    return args


def machine_args(base: Base, constraints: str, container_type: str = "", parent: str = "") -> dict[str, Any]:
    """AddMachineParams."""
    return omit_empty(
        {"base": str(base), "constraints": constraints, "container-type": container_type, "parent-id": parent}
    )


def expose_args(application: str, endpoints: dict[str, ExposedEndpointSpec] | None) -> dict[str, Any]:
    """ExposeParams."""
    mapped = {
        name: omit_empty({"expose-to-spaces": spec.expose_to_spaces, "expose-to-cidrs": spec.expose_to_cidrs})
        for name, spec in (endpoints or {}).items()
    }
    return {"application": application, **omit_empty({"exposed-endpoints": mapped})}


def annotations_args(entity_id: str, entity_type: str, annotations: dict[str, str]) -> dict[str, Any]:
    """SetAnnotationsParams."""
    return {"id": entity_id, "entity-type": entity_type, "annotations": dict(annotations)}
