"""What each stage hands to the stages after it: typed, versioned records kept in the
checkpoint store. A stage reads an upstream record through its context
(`ctx.outputs(KubernetesOutputs)`), never by importing the stage that wrote it.

A record whose stored version differs from the type's `version` reads as absent, so the
stage that wrote it runs again and writes the current shape.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

OutputsT = TypeVar("OutputsT", bound="Outputs")


class OutputsError(ValueError):
    """A stored record does not have the shape its type declares."""


@dataclass(frozen=True)
class Outputs:
    """Base of every stage's outputs. Subclasses set `stage` and `version` (bump it when the
    shape changes) and hold plain fields: str, int, bool, None, tuples, dicts with string
    keys and nested dataclasses."""

    stage: ClassVar[str]
    version: ClassVar[int] = 1

    def to_data(self) -> dict[str, Any]:
        return {"version": self.version, **to_plain(self)}

    @classmethod
    def from_data(cls: type[OutputsT], data: Mapping[str, Any] | None) -> OutputsT | None:
        """The record as this type, or None if absent or written by another version."""
        if not data or data.get("version") != cls.version:
            return None
        body = {k: v for k, v in data.items() if k != "version"}
        built: OutputsT = _build(cls, body, cls.__name__)
        return built


def to_plain(value: Any) -> Any:
    """Dataclasses, mappings and sequences as JSON-able dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def _build(kind: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as the type `kind`, checked on the way."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _build(option, value, where)
            except OutputsError:
                continue
        raise OutputsError(f"{where}: {value!r} fits none of {kind}")
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, Mapping):
            raise OutputsError(f"{where}: expected a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        args = {}
        for f in dataclasses.fields(kind):
            if f.name in value:
                args[f.name] = _build(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise OutputsError(f"{where}.{f.name}: missing")
        return kind(**args)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise OutputsError(f"{where}: expected a list, got {type(value).__name__}")
        item = typing.get_args(kind)[0]
        return tuple(_build(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise OutputsError(f"{where}: expected a mapping, got {type(value).__name__}")
        item = typing.get_args(kind)[1]
        return {str(k): _build(item, v, f"{where}.{k}") for k, v in value.items()}
    if kind is Any:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise OutputsError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


# --- enlist -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    """What MAAS's commissioning found."""

    cores: int
    memory_mib: int
    gpus: int


@dataclass(frozen=True)
class EnlistedMachine:
    system_id: str
    roles: tuple[str, ...]
    tags: tuple[str, ...]
    pin_tag: str
    hardware: Hardware


@dataclass(frozen=True)
class EnlistOutputs(Outputs):
    """Which MAAS machine each inventory hostname is, its tags and commissioned hardware."""

    stage: ClassVar[str] = "enlist"
    version: ClassVar[int] = 2

    lab_tag: str
    machines: dict[str, EnlistedMachine] = field(default_factory=dict)


# --- kubernetes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterHost:
    """One inventory host as Juju deployed it: what the gpu and storage stages connect to."""

    machine: str  # Juju machine id
    address: str  # where SSH reaches it ("" while Juju reports none)
    host_keys: tuple[str, ...]  # its SSH host keys as Juju reports them (known_hosts lines' key part)
    units: tuple[str, ...]  # principal units on it


@dataclass(frozen=True)
class KubernetesOutputs(Outputs):
    stage: ClassVar[str] = "kubernetes"
    version: ClassVar[int] = 2

    controller: str
    model: str
    model_uuid: str
    kubeconfig: str | None
    applications: tuple[str, ...] = ()
    hosts: dict[str, ClusterHost] = field(default_factory=dict)


# --- gpu ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuHost:
    """One GPU host as the gpu stage left it."""

    runtime: str  # the runtime name configured: "nvidia-container-runtime" (charm) or "nvidia" (ssh)
    method: str  # charm | ssh
    gpus: int  # the GPUs `nvidia-smi -L` listed


@dataclass(frozen=True)
class GpuOutputs(Outputs):
    stage: ClassVar[str] = "gpu"
    version: ClassVar[int] = 1

    container_runtime: str
    hosts: dict[str, GpuHost] = field(default_factory=dict)
