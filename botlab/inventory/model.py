"""The inventory's model: frozen, hashable dataclasses, and what stages ask of them (where a
key was written, its secrets resolved, the plain data a fingerprint hashes).

Defaults come from the schema (schema.py), never restated here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from botlab.errors import InputError, Location, Problem
from botlab.inventory.schema import SECTIONS, default
from botlab.inventory.values import FrozenMap
from botlab.secrets import Secret, SecretRef
from botlab.yamlsource import parent_keys


@dataclass(frozen=True)
class Hardware:
    """What a machine is expected to have; None where the inventory does not say."""

    cores: int | None = field(default=default("machines.hardware.cores"))
    memory_mib: int | None = field(default=default("machines.hardware.memory"))
    gpus: int = field(default=default("machines.hardware.gpus"))


@dataclass(frozen=True)
class Power:
    """How MAAS powers a machine it does not know yet. Parameter values are strings or
    secret references (resolve them with `Inventory.power_parameters`)."""

    type: str
    parameters: FrozenMap[str, str | SecretRef] = field(default=default("machines.power.parameters"))


@dataclass(frozen=True)
class Machine:
    hostname: str
    roles: tuple[str, ...]
    hardware: Hardware = field(default_factory=Hardware)
    macs: tuple[str, ...] = field(default=default("machines.macs"))
    architecture: str = field(default=default("machines.architecture"))
    power: Power | None = field(default=default("machines.power"))

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class MaasConfig:
    url: str
    api_key: SecretRef
    commission_retries: int = field(default=default("maas.commission_retries"))
    timeout: int = field(default=default("maas.timeout"))
    concurrency: int = field(default=default("maas.concurrency"))


@dataclass(frozen=True)
class JujuConfig:
    controller: str
    model: str  # the schema's default depends on the lab's name
    cloud: str
    data_dir: Path | None = field(default=default("juju.data_dir"))
    password: SecretRef | None = field(default=default("juju.password"))


@dataclass(frozen=True)
class SshConfig:
    public_key: Path
    private_key: Path
    user: str = field(default=default("ssh.user"))


@dataclass(frozen=True)
class KubernetesConfig:
    channel: str = field(default=default("kubernetes.channel"))
    container_runtime: str = field(default=default("kubernetes.container_runtime"))
    gpu_method: str = field(default=default("kubernetes.gpu_method"))
    cni: str = field(default=default("kubernetes.cni"))
    bundle: Path | None = field(default=default("kubernetes.bundle"))
    timeout: int = field(default=default("kubernetes.timeout"))


@dataclass(frozen=True)
class NfsConfig:
    server: str
    allowed_network: str  # required: the export is restricted to the cluster's network
    export_path: str = field(default=default("nfs.export_path"))
    storage_class: str = field(default=default("nfs.storage_class"))
    default_class: bool = field(default=default("nfs.default_class"))


@dataclass(frozen=True)
class MetallbConfig:
    version: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class KubeflowConfig:
    channel: str = field(default=default("kubeflow.channel"))


@dataclass(frozen=True)
class ArtifactSource:
    """Where one upstream file comes from, and the sha256 it must have."""

    url: str
    sha256: str


@dataclass(frozen=True)
class ArtifactsConfig:
    nvidia_device_plugin: ArtifactSource | None = field(default=default("artifacts.nvidia_device_plugin"))


@dataclass(frozen=True)
class Inventory:
    name: str
    path: Path
    maas: MaasConfig
    juju: JujuConfig
    ssh: SshConfig
    machines: tuple[Machine, ...]
    kubernetes: KubernetesConfig
    nfs: NfsConfig | None = field(default=default("nfs"))
    metallb: MetallbConfig | None = field(default=default("metallb"))
    kubeflow: KubeflowConfig | None = field(default=default("kubeflow"))
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)
    locations: Mapping[str, Location] = field(default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        return self.folder / ".botlab"

    @property
    def hostnames(self) -> tuple[str, ...]:
        return tuple(m.hostname for m in self.machines)

    def machine(self, hostname: str) -> Machine:
        for machine in self.machines:
            if machine.hostname == hostname:
                return machine
        raise KeyError(hostname)

    def with_role(self, role: str) -> tuple[Machine, ...]:
        return tuple(m for m in self.machines if m.has_role(role))

    def where(self, key: str) -> Location:
        """Where `key` was written; else its nearest written parent; else the file."""
        for candidate in parent_keys(key):
            if candidate in self.locations:
                return self.locations[candidate]
        return Location(self._file())

    def where_machine(self, hostname: str, key: str = "") -> Location:
        """Where `key` of machine `hostname` was written (in lab.yaml or its hosts/ file),
        e.g. `where_machine("gpu-01", "hardware.gpus")`."""
        for index, machine in enumerate(self.machines):
            if machine.hostname == hostname:
                return self.where(self.machine_key(index, key))
        return self.where("machines")

    @staticmethod
    def machine_key(index: int, key: str = "") -> str:
        base = f"machines[{index}]"
        if not key:
            return base
        return base + key if key.startswith("[") else f"{base}.{key}"

    def secret_refs(self) -> dict[str, SecretRef]:
        """Every secret reference in the inventory, by key path."""
        refs: dict[str, SecretRef] = {"maas.api_key": self.maas.api_key}
        if self.juju.password is not None:
            refs["juju.password"] = self.juju.password
        for index, machine in enumerate(self.machines):
            if machine.power is None:
                continue
            for name, value in machine.power.parameters.items():
                if isinstance(value, SecretRef):
                    refs[self.machine_key(index, f"power.parameters.{name}")] = value
        return refs

    def secret(self, key: str, environ: Mapping[str, str] | None = None) -> Secret:
        """Resolve the secret reference at `key` (e.g. `maas.api_key`); an InputError names
        where the reference was written. KeyError if `key` holds no reference."""
        ref = self.secret_refs()[key]
        return ref.resolve(environ, where=self.where(key), key=key)

    def resolve_secrets(self, environ: Mapping[str, str] | None = None) -> dict[str, Secret]:
        """Resolve every secret reference; one InputError lists every one that fails."""
        resolved: dict[str, Secret] = {}
        problems: list[Problem] = []
        for key in self.secret_refs():
            try:
                resolved[key] = self.secret(key, environ)
            except InputError as exc:
                problems.extend(exc.problems)
        if problems:
            raise InputError(problems)
        return resolved

    def power_parameters(self, hostname: str, environ: Mapping[str, str] | None = None) -> dict[str, str | Secret]:
        """Machine `hostname`'s power parameters with secret references resolved."""
        index = self.hostnames.index(hostname)
        power = self.machines[index].power
        if power is None:
            return {}
        result: dict[str, str | Secret] = {}
        for name, value in power.parameters.items():
            if isinstance(value, SecretRef):
                result[name] = self.secret(self.machine_key(index, f"power.parameters.{name}"), environ)
            else:
                result[name] = value
        return result

    def fingerprint_data(self, *sections: str) -> dict[str, Any]:
        """Plain, JSON-able data of the named sections (all when none are named), in a
        stable order: secret references as `{"env": NAME}` / `{"file": PATH}`, paths as
        strings, machines sorted by hostname, no locations. An absent optional section is
        None. Reordering machines, roles, MACs or power parameters changes nothing."""
        unknown = [s for s in sections if s not in SECTIONS]
        if unknown:
            raise ValueError(f"unknown inventory sections {unknown}; known: {', '.join(SECTIONS)}")
        data: dict[str, Any] = {}
        for section in sorted(sections or SECTIONS):
            if section == "lab":
                data["lab"] = self.name
            elif section == "machines":
                data["machines"] = [_machine_data(m) for m in sorted(self.machines, key=lambda m: m.hostname)]
            else:
                data[section] = _plain(getattr(self, section))
        return data

    def _file(self) -> str:
        root = self.locations.get("")
        return root.file if root is not None else str(self.path)


def _machine_data(machine: Machine) -> dict[str, Any]:
    data = _plain(machine)
    data["roles"] = sorted(machine.roles)
    data["macs"] = sorted(machine.macs)
    return dict(sorted(data.items()))


def _plain(value: Any) -> Any:
    if isinstance(value, SecretRef):
        return value.as_data()
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in sorted(fields(value), key=lambda f: f.name)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
