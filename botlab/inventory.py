"""The inventory: one lab described in `inventory/<lab>/lab.yaml` (plus optional
`hosts/<hostname>.yaml`), loaded into frozen dataclasses and validated as a whole.

Loading reads files only: it resolves no secrets and touches no system. Every user mistake
becomes a Problem (`file:line: key: message`); all of them are raised at once as one
InputError. Imports only the standard library and yaml: it is on every CLI call's path.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from botlab.errors import InputError, Location, Problem
from botlab.secrets import Secret, SecretRef, is_env_name
from botlab.yamlsource import DOCUMENT_KEY, YamlDocument, join_key, load_yaml, parent_keys, subtree

ROLES = ("control-plane", "worker", "etcd", "load-balancer", "gpu", "nfs")
SECTIONS = ("lab", "maas", "juju", "ssh", "machines", "kubernetes", "nfs", "metallb", "kubeflow")

INVENTORY_FILE = "lab.yaml"
HOSTS_FOLDER = "hosts"
ENV_VAR = "BOTLAB_INVENTORY"

CONTAINER_RUNTIMES = ("containerd", "docker")
GPU_METHODS = ("charm", "ssh")
CNIS = ("calico", "flannel", "cilium")

DEFAULT_ARCHITECTURE = "amd64/generic"
DEFAULT_KUBERNETES_CHANNEL = "1.31/stable"
DEFAULT_KUBEFLOW_CHANNEL = "1.9/stable"
DEFAULT_EXPORT_PATH = "/srv/nfs/kubedata"
DEFAULT_STORAGE_CLASS = "nfs-client"

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping (so frozen dataclasses holding one stay hashable).

    Reads like a dict; compares equal to any mapping with the same items.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._items: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Hardware:
    """What a machine is expected to have; None where the inventory does not say."""

    cores: int | None = None
    memory_mib: int | None = None
    gpus: int = 0


@dataclass(frozen=True)
class Power:
    """How MAAS powers a machine it does not know yet. Parameter values are strings or
    secret references (resolve them with `Inventory.power_parameters`)."""

    type: str
    parameters: FrozenMap[str, str | SecretRef] = field(default_factory=FrozenMap)


@dataclass(frozen=True)
class Machine:
    hostname: str
    roles: tuple[str, ...]
    hardware: Hardware = field(default_factory=Hardware)
    macs: tuple[str, ...] = ()
    architecture: str = DEFAULT_ARCHITECTURE
    power: Power | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class MaasConfig:
    url: str
    api_key: SecretRef
    commission_retries: int = 2
    timeout: int = 3600
    concurrency: int = 32


@dataclass(frozen=True)
class JujuConfig:
    controller: str
    model: str
    cloud: str
    data_dir: Path | None = None
    password: SecretRef | None = None


@dataclass(frozen=True)
class SshConfig:
    user: str
    public_key: Path
    private_key: Path


@dataclass(frozen=True)
class KubernetesConfig:
    channel: str = DEFAULT_KUBERNETES_CHANNEL
    container_runtime: str = "containerd"
    gpu_method: str = "charm"
    cni: str = "calico"
    bundle: Path | None = None
    timeout: int = 3600  # seconds the kubernetes stage waits for machines and units to settle


@dataclass(frozen=True)
class NfsConfig:
    server: str
    export_path: str = DEFAULT_EXPORT_PATH
    allowed_network: str = "*"
    storage_class: str = DEFAULT_STORAGE_CLASS
    default_class: bool = True


@dataclass(frozen=True)
class MetallbConfig:
    version: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class KubeflowConfig:
    channel: str = DEFAULT_KUBEFLOW_CHANNEL


@dataclass(frozen=True)
class Inventory:
    name: str
    path: Path
    maas: MaasConfig
    juju: JujuConfig
    ssh: SshConfig
    machines: tuple[Machine, ...]
    kubernetes: KubernetesConfig
    nfs: NfsConfig | None = None
    metallb: MetallbConfig | None = None
    kubeflow: KubeflowConfig | None = None
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
        return {f.name: _plain(getattr(value, f.name)) for f in sorted(fields(value), key=_name)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _name(f: Any) -> str:
    return str(f.name)


# --------------------------------------------------------------------------- parsing helpers

_LAB = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_DNS_1123 = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\Z")
_JUJU_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_JUJU_MODEL = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")
_UNIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")
_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/(?:stable|candidate|beta|edge)\Z")
_VERSION = re.compile(r"v\d+\.\d+\.\d+\Z")
_MAC = re.compile(r"[0-9a-f]{2}(?:([:-])[0-9a-f]{2})(?:\1[0-9a-f]{2}){4}\Z", re.IGNORECASE)
_ARCH = re.compile(r"[a-z0-9_]+/[a-z0-9_.-]+\Z")
_EXPORT_PATH = re.compile(r"/[A-Za-z0-9._/-]*\Z")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([MGT])(?:iB|B|i)?)?\Z", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


class _Bad(Exception):
    """A value is wrong; the message says what was expected and what came."""


def describe(value: Any) -> str:
    """A value as an error message shows it after `got`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float, str)):
        return repr(value)
    return f"{type(value).__name__} {value!s}"


def _expected(what: str, value: Any) -> _Bad:
    return _Bad(f"expected {what}, got {describe(value)}")


def _suggest(word: str, choices: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def parse_memory(value: Any) -> int:
    """Memory in MiB from an integer (MiB) or text like `32G`, `32GiB`, `512M`, `1T`,
    `1.5G`. Units are binary: 1G = 1024 MiB (also when written `GB`). ValueError if not."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected an amount of memory like 32G or MiB as an integer, got {describe(value)}")
    if isinstance(value, int):
        mib = value
    else:
        match = _MEMORY.match(value.strip())
        if not match:
            raise ValueError(f"expected an amount of memory like 32G, 32GiB, 512M or 1T, got {describe(value)}")
        number, unit = match.group(1), (match.group(2) or "").upper()
        mib = round(float(number) * _MEMORY_UNITS[unit])
    if mib <= 0:
        raise ValueError(f"expected an amount of memory above zero, got {describe(value)}")
    return mib


def parse_address_range(text: Any) -> tuple[int, int, int]:
    """A MetalLB address entry, `a-b` or a CIDR, as (IP version, first, last) integers.
    ValueError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(_range_expected(text))
    text = text.strip()
    if "-" in text:
        start_text, _, end_text = text.partition("-")
        try:
            start = ipaddress.ip_address(start_text.strip())
            end = ipaddress.ip_address(end_text.strip())
        except ValueError:
            raise ValueError(_range_expected(text)) from None
        if start.version != end.version:
            raise ValueError(f"range {text!r} mixes IPv4 and IPv6 addresses")
        if int(start) > int(end):
            raise ValueError(f"range {text!r} ends before it starts")
        return start.version, int(start), int(end)
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(_range_expected(text)) from None
            raise ValueError(f"{text!r} has host bits set: did you mean {loose}?") from None
        return network.version, int(network.network_address), int(network.broadcast_address)
    raise ValueError(_range_expected(text))


def _range_expected(value: Any) -> str:
    return f"expected a range like 10.0.0.10-10.0.0.20 or a CIDR, got {describe(value)}"


def _normalize_range(text: str) -> str:
    text = text.strip()
    if "-" in text:
        start, _, end = text.partition("-")
        return f"{ipaddress.ip_address(start.strip())}-{ipaddress.ip_address(end.strip())}"
    return str(ipaddress.ip_network(text))


# --------------------------------------------------------------------------- the checker


class _Checker:
    """Collects Problems while turning raw YAML data into the model."""

    def __init__(self, file: str, folder: Path, locations: dict[str, Location]) -> None:
        self.file = file
        self.folder = folder
        self.locations = locations
        self.problems: list[Problem] = []

    def where(self, path: str) -> Location:
        for candidate in parent_keys(path):
            if candidate in self.locations:
                return self.locations[candidate]
        return Location(self.file)

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.where(path), path or DOCUMENT_KEY, message))

    def mapping(
        self,
        value: Any,
        path: str,
        allowed: tuple[str, ...],
        required: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {describe(value)}")
            return None
        guessed: set[str] = set()
        for key in value:
            if key not in allowed:
                guess = _suggest(key, [k for k in allowed if k not in value])
                if guess:
                    guessed.add(guess)
                hint = f"did you mean {guess!r}?" if guess else f"allowed keys: {', '.join(allowed)}"
                self.error(join_key(path, key), f"unknown key; {hint}")
        for key in required:
            # a misspelt key already says "did you mean 'key'?"
            if key not in value and key not in guessed:
                self.error(join_key(path, key), "required key is missing")
        return value

    def failed(self, path: str) -> bool:
        """Whether a problem was reported at `path` or below it (checks that build on a
        bad value would only repeat it)."""
        return any(p.key == path or p.key.startswith((path + ".", path + "[")) for p in self.problems)

    def take(
        self,
        m: dict[str, Any] | None,
        parent: str,
        key: str,
        parse: Callable[[Any, str], T],
        default: T,
        *,
        required: bool = False,
    ) -> T:
        """Parse `m[key]`; a missing or null optional key gives `default`."""
        path = join_key(parent, key)
        if m is None or m.get(key) is None:
            if required and m is not None and key in m:
                self.error(path, "required, but has no value")
            return default
        try:
            return parse(m[key], path)
        except _Bad as exc:
            self.error(path, str(exc))
            return default

    def section(
        self,
        root: dict[str, Any],
        key: str,
        allowed: tuple[str, ...],
        required: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        """An optional top-level section: absent gives None; `key:` with no value is an
        error rather than a silent "off"."""
        if key not in root:
            return None
        if root[key] is None:
            self.error(key, f"has no value: write `{key}: {{}}` for the defaults, or remove it")
            return None
        return self.mapping(root[key], key, allowed, required)

    # ----------------------------------------------------------------- value parsers

    @staticmethod
    def text(
        what: str = "a string", pattern: re.Pattern[str] | None = None, max_len: int | None = None
    ) -> Callable[[Any, str], str]:
        def parse(value: Any, path: str) -> str:
            if not isinstance(value, str) or not value.strip():
                raise _expected(what, value)
            if pattern is not None and not pattern.match(value):
                raise _expected(what, value)
            if max_len is not None and len(value) > max_len:
                raise _expected(what, value)
            return value

        return parse

    @staticmethod
    def choice(options: tuple[str, ...]) -> Callable[[Any, str], str]:
        def parse(value: Any, path: str) -> str:
            if isinstance(value, str) and value in options:
                return value
            message = f"expected one of {', '.join(options)}, got {describe(value)}"
            guess = _suggest(value, options) if isinstance(value, str) else None
            raise _Bad(message + (f"; did you mean {guess!r}?" if guess else ""))

        return parse

    @staticmethod
    def integer(low: int, high: int | None = None) -> Callable[[Any, str], int]:
        def parse(value: Any, path: str) -> int:
            if high is None:
                what = "an integer above 0" if low == 1 else f"an integer >= {low}"
            else:
                what = f"an integer from {low} to {high}"
            if isinstance(value, bool) or not isinstance(value, int):
                raise _expected(what, value)
            if value < low or (high is not None and value > high):
                raise _expected(what, value)
            return value

        return parse

    @staticmethod
    def boolean(value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise _expected("true or false", value)
        return value

    def path(self, value: Any, path: str) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise _expected("a path", value)
        try:
            resolved = Path(value).expanduser()
        except RuntimeError:
            raise _Bad(f"cannot expand ~ in {value!r}") from None
        if not resolved.is_absolute():
            resolved = self.folder / resolved
        return Path(os.path.normpath(resolved))

    def secret_ref(self, value: Any, path: str) -> SecretRef:
        if isinstance(value, str):
            raise _Bad("must not be a literal: use {env: NAME} or {file: PATH}")
        if not isinstance(value, dict):
            raise _expected("a secret reference {env: NAME} or {file: PATH}", value)
        keys = list(value)
        if len(keys) != 1 or keys[0] not in ("env", "file"):
            unknown = [k for k in keys if k not in ("env", "file")]
            if len(keys) == 1 and unknown:
                guess = _suggest(unknown[0], ("env", "file"))
                hint = f"; did you mean {guess!r}?" if guess else ""
                raise _Bad(f"unknown secret source {unknown[0]!r}: use {{env: NAME}} or {{file: PATH}}{hint}")
            raise _Bad(f"expected exactly one of {{env: NAME}} or {{file: PATH}}, got keys {', '.join(keys) or 'none'}")
        source = keys[0]
        inner = value[source]
        if source == "env":
            if not isinstance(inner, str) or not is_env_name(inner):
                raise _Bad(f"expected an environment variable name in {{env: NAME}}, got {describe(inner)}")
            return SecretRef("env", inner)
        if not isinstance(inner, str) or not inner.strip():
            raise _Bad(f"expected a path in {{file: PATH}}, got {describe(inner)}")
        return SecretRef("file", str(self.path(inner, path)))

    def memory(self, value: Any, path: str) -> int:
        try:
            return parse_memory(value)
        except ValueError as exc:
            raise _Bad(str(exc)) from None

    def url(self, value: Any, path: str) -> str:
        what = "an http(s) URL like http://maas.example:5240/MAAS/"
        if not isinstance(value, str):
            raise _expected(what, value)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise _expected(what, value) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _expected(what, value)
        return value

    def network(self, value: Any, path: str) -> str:
        what = 'a network like 10.0.0.0/24, or "*" for any'
        if value == "*":
            return "*"
        if not isinstance(value, str):
            raise _expected(what, value)
        try:
            return str(ipaddress.ip_network(value.strip(), strict=True))
        except ValueError:
            try:
                loose = ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                raise _expected(what, value) from None
            raise _Bad(f"{value!r} has host bits set: did you mean {loose}?") from None

    def export_path(self, value: Any, path: str) -> str:
        what = "an absolute path of letters, digits, '.', '_', '-' and '/'"
        if not isinstance(value, str) or not _EXPORT_PATH.match(value):
            raise _expected(what, value)
        if ".." in value.split("/"):
            raise _Bad(f"expected a path without '..', got {describe(value)}")
        normal = os.path.normpath(value)
        if normal == "/":
            raise _Bad("refusing to export the root folder /")
        return normal

    def string_list(self, value: Any, path: str, what: str) -> list[tuple[int, str]]:
        """The string items of a list, with their indexes; other items are reported."""
        if not isinstance(value, list):
            raise _expected(f"a list of {what}", value)
        items: list[tuple[int, str]] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                items.append((index, item))
            else:
                self.error(join_key(path, index), f"expected {what}, got {describe(item)}")
        return items

    def roles(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise _expected(f"a list of roles (any of {', '.join(ROLES)})", value)
        roles: list[str] = []
        for index, role in self.string_list(value, path, "a role"):
            item = join_key(path, index)
            if role not in ROLES:
                guess = _suggest(role, ROLES)
                hint = f"did you mean {guess!r}?" if guess else f"roles are {', '.join(ROLES)}"
                self.error(item, f"unknown role {role!r}; {hint}")
            elif role in roles:
                self.error(item, f"role {role!r} is listed twice")
            else:
                roles.append(role)
        return tuple(roles)

    def macs(self, value: Any, path: str) -> tuple[str, ...]:
        macs: list[str] = []
        for index, mac in self.string_list(value, path, "a MAC address like 52:54:00:12:34:56"):
            if not _MAC.match(mac.strip()):
                self.error(
                    join_key(path, index),
                    f"expected a MAC address like 52:54:00:12:34:56, got {describe(mac)}",
                )
                continue
            normal = mac.strip().lower().replace("-", ":")
            if normal in macs:
                self.error(join_key(path, index), f"MAC {normal} is listed twice")
            else:
                macs.append(normal)
        return tuple(macs)

    # ----------------------------------------------------------------- sections

    def maas(self, value: Any) -> MaasConfig:
        m = self.mapping(
            value,
            "maas",
            ("url", "api_key", "commission_retries", "timeout", "concurrency"),
            ("url", "api_key"),
        )
        return MaasConfig(
            url=self.take(m, "maas", "url", self.url, "", required=True),
            api_key=self.take(m, "maas", "api_key", self.secret_ref, SecretRef("env", ""), required=True),
            commission_retries=self.take(m, "maas", "commission_retries", self.integer(0), 2),
            timeout=self.take(m, "maas", "timeout", self.integer(1), 3600),
            concurrency=self.take(m, "maas", "concurrency", self.integer(1, 256), 32),
        )

    def juju(self, value: Any, lab: str | None) -> JujuConfig:
        m = self.mapping(
            value,
            "juju",
            ("controller", "model", "cloud", "data_dir", "password"),
            ("controller", "cloud"),
        )
        name = self.text("a Juju controller name", _JUJU_NAME)
        default_model = f"{lab}-k8s" if lab else "k8s"
        model = self.take(
            m,
            "juju",
            "model",
            self.text("a Juju model name (lowercase letters, digits and '-')", _JUJU_MODEL),
            default_model,
        )
        if lab and m is not None and m.get("model") is not None and not model.startswith(f"{lab}-"):
            self.error(
                "juju.model",
                f"must start with the lab's name and '-' ({lab}-...), e.g. {default_model}, got {describe(model)}",
            )
        return JujuConfig(
            controller=self.take(m, "juju", "controller", name, "", required=True),
            model=model,
            cloud=self.take(m, "juju", "cloud", self.text("a Juju cloud name", _JUJU_NAME), "", required=True),
            data_dir=self.take(m, "juju", "data_dir", self.path, None),
            password=self.take(m, "juju", "password", self.secret_ref, None),
        )

    def ssh(self, value: Any) -> SshConfig:
        m = self.mapping(value, "ssh", ("user", "public_key", "private_key"), ("public_key", "private_key"))
        return SshConfig(
            user=self.take(
                m,
                "ssh",
                "user",
                self.text("a user name (lowercase letters, digits, '_', '-')", _UNIX_USER),
                "ubuntu",
            ),
            public_key=self.take(m, "ssh", "public_key", self.path, Path(), required=True),
            private_key=self.take(m, "ssh", "private_key", self.path, Path(), required=True),
        )

    def kubernetes(self, value: Any) -> KubernetesConfig:
        path = "kubernetes"
        allowed = ("channel", "container_runtime", "gpu_method", "cni", "bundle", "timeout")
        m = {} if value is None else self.mapping(value, path, allowed)
        runtime = self.take(m, path, "container_runtime", self.choice(CONTAINER_RUNTIMES), "containerd")
        gpu_method = self.take(
            m,
            path,
            "gpu_method",
            self.choice(GPU_METHODS),
            "charm" if runtime == "containerd" else "ssh",
        )
        if gpu_method == "charm" and runtime != "containerd":
            self.error(
                "kubernetes.gpu_method",
                f"charm needs container_runtime containerd (the {runtime} runtime is "
                "configured over ssh: use gpu_method: ssh)",
            )
        bundle = self.take(m, path, "bundle", self.path, None)
        if bundle is not None and not _is_file(bundle):
            self.error("kubernetes.bundle", f"file {bundle} does not exist")
        return KubernetesConfig(
            channel=self.take(
                m,
                path,
                "channel",
                self.text("a channel like 1.31/stable", _CHANNEL),
                DEFAULT_KUBERNETES_CHANNEL,
            ),
            container_runtime=runtime,
            gpu_method=gpu_method,
            cni=self.take(m, path, "cni", self.choice(CNIS), "calico"),
            bundle=bundle,
            timeout=self.take(m, path, "timeout", self.integer(1), 3600),
        )

    def nfs(self, root: dict[str, Any]) -> NfsConfig | None:
        m = self.section(
            root,
            "nfs",
            ("server", "export_path", "allowed_network", "storage_class", "default_class"),
            ("server", "allowed_network"),
        )
        if m is None:
            return None
        return NfsConfig(
            server=self.take(m, "nfs", "server", self.text("a hostname of the lab"), "", required=True),
            export_path=self.take(m, "nfs", "export_path", self.export_path, DEFAULT_EXPORT_PATH),
            allowed_network=self.take(m, "nfs", "allowed_network", self.network, "*", required=True),
            storage_class=self.take(
                m,
                "nfs",
                "storage_class",
                self.text(
                    "a StorageClass name (DNS-1123: lowercase letters, digits, '-', '.')",
                    _DNS_1123,
                    253,
                ),
                DEFAULT_STORAGE_CLASS,
            ),
            default_class=self.take(m, "nfs", "default_class", self.boolean, True),
        )

    def metallb(self, root: dict[str, Any]) -> MetallbConfig | None:
        m = self.section(root, "metallb", ("version", "addresses"), ("version", "addresses"))
        if m is None:
            return None
        return MetallbConfig(
            version=self.take(
                m,
                "metallb",
                "version",
                self.text("a pinned version like v0.14.8", _VERSION),
                "",
                required=True,
            ),
            addresses=self.take(m, "metallb", "addresses", self.addresses, (), required=True),
        )

    def addresses(self, value: Any, path: str) -> tuple[str, ...]:
        if isinstance(value, list) and not value:
            raise _Bad("expected at least one address range or CIDR, got an empty list")
        ranges: list[tuple[int, str, int, int, int]] = []
        normal: list[str] = []
        for index, text in self.string_list(value, path, "a range like 10.0.0.10-10.0.0.20 or a CIDR"):
            item = join_key(path, index)
            try:
                version, first, last = parse_address_range(text)
            except ValueError as exc:
                self.error(item, str(exc))
                continue
            shown = _normalize_range(text)
            for other_index, other, v, a, b in ranges:
                if v == version and first <= b and a <= last:
                    self.error(
                        item,
                        f"{shown} overlaps {join_key(path, other_index)} ({other})",
                    )
            ranges.append((index, shown, version, first, last))
            normal.append(shown)
        return tuple(normal)

    def kubeflow(self, root: dict[str, Any]) -> KubeflowConfig | None:
        m = self.section(root, "kubeflow", ("channel",))
        if m is None:
            return None
        return KubeflowConfig(
            channel=self.take(
                m,
                "kubeflow",
                "channel",
                self.text("a channel like 1.9/stable", _CHANNEL),
                DEFAULT_KUBEFLOW_CHANNEL,
            ),
        )

    def machines(self, value: Any) -> tuple[Machine, ...]:
        if not isinstance(value, list):
            self.error("machines", f"expected a list of machines, got {describe(value)}")
            return ()
        if not value:
            self.error("machines", "expected at least one machine, got an empty list")
            return ()
        return tuple(self.machine(item, f"machines[{i}]") for i, item in enumerate(value))

    def machine(self, value: Any, path: str) -> Machine:
        m = self.mapping(value, path, MACHINE_KEYS, ("hostname", "roles"))
        hostname_text = self.text(
            "a hostname (a DNS label: lowercase letters, digits and '-', at most 63 characters)",
            _DNS_LABEL,
        )
        return Machine(
            hostname=self.take(m, path, "hostname", hostname_text, "", required=True),
            roles=self.take(m, path, "roles", self.roles, (), required=True),
            hardware=self.take(m, path, "hardware", self.hardware, Hardware()),
            macs=self.take(m, path, "macs", self.macs, ()),
            architecture=self.take(
                m,
                path,
                "architecture",
                self.text("an architecture like amd64/generic", _ARCH),
                DEFAULT_ARCHITECTURE,
            ),
            power=self.take(m, path, "power", self.power, None),
        )

    def hardware(self, value: Any, path: str) -> Hardware:
        m = self.mapping(value, path, ("cores", "memory", "gpus"))
        return Hardware(
            cores=self.take(m, path, "cores", self.integer(1), None),
            memory_mib=self.take(m, path, "memory", self.memory, None),
            gpus=self.take(m, path, "gpus", self.integer(0), 0),
        )

    def power(self, value: Any, path: str) -> Power:
        m = self.mapping(value, path, ("type", "parameters"), ("type",))
        return Power(
            type=self.take(m, path, "type", self.text("a power type like ipmi or redfish"), "", required=True),
            parameters=self.take(m, path, "parameters", self.power_parameters, FrozenMap()),
        )

    def power_parameters(self, value: Any, path: str) -> FrozenMap[str, str | SecretRef]:
        if not isinstance(value, dict):
            raise _expected("a mapping of power parameters", value)
        result: dict[str, str | SecretRef] = {}
        for name, item in value.items():
            key = join_key(path, name)
            if isinstance(item, dict):
                try:
                    result[name] = self.secret_ref(item, key)
                except _Bad as exc:
                    self.error(key, str(exc))
            elif isinstance(item, bool):
                result[name] = "true" if item else "false"
            elif isinstance(item, (str, int, float)):
                result[name] = str(item)
            else:
                self.error(
                    key,
                    "expected a string, a number or a secret reference "
                    f"{{env: NAME}} / {{file: PATH}}, got {describe(item)}",
                )
        return FrozenMap(result)

    # ----------------------------------------------------------------- cross-references

    def cross_check(self, machines: tuple[Machine, ...], nfs: NfsConfig | None) -> None:
        first_host: dict[str, int] = {}
        first_mac: dict[str, tuple[int, int]] = {}
        for i, machine in enumerate(machines):
            path = f"machines[{i}]"
            if machine.hostname:
                if machine.hostname in first_host:
                    j = first_host[machine.hostname]
                    self.error(
                        f"{path}.hostname",
                        f"duplicate hostname {machine.hostname!r} (also machines[{j}], "
                        f"at {self.where(f'machines[{j}].hostname')})",
                    )
                else:
                    first_host[machine.hostname] = i
            for k, mac in enumerate(machine.macs):
                if mac in first_mac and first_mac[mac][0] != i:
                    j, n = first_mac[mac]
                    self.error(
                        f"{path}.macs[{k}]",
                        f"MAC {mac} is also listed for machines[{j}] "
                        f"({machines[j].hostname}, at {self.where(f'machines[{j}].macs[{n}]')})",
                    )
                else:
                    first_mac.setdefault(mac, (i, k))
            gpus = machine.hardware.gpus
            if self.failed(f"{path}.hardware") or self.failed(f"{path}.roles"):
                continue
            if machine.has_role("gpu") and gpus < 1:
                self.error(
                    f"{path}.hardware.gpus",
                    f"{machine.hostname or path} has role gpu, so hardware.gpus must be at least 1, got {gpus}",
                )
            if gpus >= 1 and machine.roles and not machine.has_role("gpu"):
                self.error(
                    f"{path}.roles",
                    f"{machine.hostname or path} has hardware.gpus: {gpus} but not role "
                    "gpu: add gpu to its roles, or set gpus: 0",
                )
        roles_failed = any(self.failed(f"machines[{i}].roles") for i in range(len(machines)))
        if any(m.has_role("worker") for m in machines) and not roles_failed:
            for role in ("control-plane", "etcd"):
                if not any(m.has_role(role) for m in machines):
                    self.error(
                        "machines",
                        f"the lab has workers but no {role} machine: give at least one machine role {role}",
                    )
        if nfs is None or not nfs.server:
            return
        if nfs.server not in first_host:
            # a machine whose hostname is bad may be the one meant
            unsure = not machines or any(not m.hostname for m in machines)
            if not unsure:
                guess = _suggest(nfs.server, first_host)
                hint = f"; did you mean {guess!r}?" if guess else ""
                self.error("nfs.server", f"{nfs.server!r} is not a machine of the lab{hint}")
        else:
            index = first_host[nfs.server]
            if not machines[index].has_role("nfs") and not self.failed(f"machines[{index}].roles"):
                self.error(
                    "nfs.server",
                    f"machine {nfs.server!r} does not have role nfs: add nfs to its roles",
                )


MACHINE_KEYS = ("hostname", "roles", "hardware", "macs", "architecture", "power")
HOST_FILE_KEYS = ("hardware", "power", "macs", "architecture")
TOP_KEYS = SECTIONS


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _display(path: Path) -> str:
    """How a file is named in messages: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


# --------------------------------------------------------------------------- loading


def load_inventory(path: Path) -> Inventory:
    """Load and validate the inventory at `path` (a lab.yaml, or its folder).

    Raises InputError carrying every problem found, sorted by file and line (lab.yaml
    first, then hosts/ files); never another exception for a user mistake.
    """
    path = _absolute(Path(path))
    if path.is_dir():
        path = path / INVENTORY_FILE
    file = _display(path)
    doc = load_yaml(path, file)
    problems = list(doc.problems)
    if doc.data is None:
        if doc.empty:
            problems.append(Problem(Location(file, 1), DOCUMENT_KEY, "the inventory is empty; see docs/inventory.md"))
        raise InputError(_sorted(problems, file))
    locations = dict(doc.locations)
    checker = _Checker(file, path.parent, locations)
    root = checker.mapping(doc.data, "", TOP_KEYS, ("lab", "maas", "juju", "ssh", "machines"))
    if root is None:
        raise InputError(_sorted(problems + checker.problems, file))

    if isinstance(root.get("machines"), list):
        root = dict(root)
        root["machines"] = _merge_hosts(path.parent, root["machines"], locations, problems)

    name = checker.take(
        root,
        "",
        "lab",
        checker.text(
            "a lab name (lowercase letters, digits and '-', at most 32 "
            "characters, starting and ending with a letter or digit)",
            _LAB,
        ),
        "",
        required=True,
    )
    maas = checker.maas(root.get("maas")) if "maas" in root else None
    juju = checker.juju(root.get("juju"), name or None) if "juju" in root else None
    ssh = checker.ssh(root.get("ssh")) if "ssh" in root else None
    machines = checker.machines(root.get("machines")) if "machines" in root else ()
    kubernetes = checker.kubernetes(root.get("kubernetes"))
    nfs = checker.nfs(root)
    metallb = checker.metallb(root)
    kubeflow = checker.kubeflow(root)
    checker.cross_check(machines, nfs)

    problems.extend(checker.problems)
    if problems or maas is None or juju is None or ssh is None:
        raise InputError(_sorted(problems, file))
    return Inventory(
        name=name,
        path=path,
        maas=maas,
        juju=juju,
        ssh=ssh,
        machines=machines,
        kubernetes=kubernetes,
        nfs=nfs,
        metallb=metallb,
        kubeflow=kubeflow,
        locations=MappingProxyType(locations),
    )


def _merge_hosts(
    folder: Path, machines: list[Any], locations: dict[str, Location], problems: list[Problem]
) -> list[Any]:
    """Merge each `hosts/<hostname>.yaml` into its machine entry: dicts merge deeply and
    lab.yaml wins on conflicts. Merged values keep the location of the file they came from."""
    hosts_dir = folder / HOSTS_FOLDER
    try:
        entries = sorted(hosts_dir.iterdir()) if hosts_dir.is_dir() else []
    except OSError as exc:
        problems.append(
            Problem(
                Location(_display(hosts_dir)),
                HOSTS_FOLDER,
                f"cannot be read: {exc.strerror or exc}",
            )
        )
        return machines
    index: dict[str, int] = {}
    for i, entry in enumerate(machines):
        if isinstance(entry, dict) and isinstance(entry.get("hostname"), str):
            index.setdefault(entry["hostname"], i)
    merged = list(machines)
    for host_file in entries:
        if host_file.name.startswith("."):
            continue
        file = _display(host_file)
        if host_file.suffix == ".yml":
            problems.append(
                Problem(
                    Location(file, 1),
                    f"{HOSTS_FOLDER}/{host_file.name}",
                    f"rename to {host_file.stem}.yaml (hosts files end in .yaml)",
                )
            )
            continue
        if host_file.suffix != ".yaml":
            continue
        hostname = host_file.stem
        key = f"{HOSTS_FOLDER}/{host_file.name}"
        if hostname not in index:
            guess = _suggest(hostname, index)
            hint = f"; did you mean {guess}.yaml?" if guess else ""
            problems.append(
                Problem(
                    Location(file, 1),
                    key,
                    f"no machine {hostname!r} in {INVENTORY_FILE} machines: a hosts file is named "
                    f"after its machine's hostname{hint}",
                )
            )
            continue
        doc = load_yaml(host_file, file)
        problems.extend(doc.problems)
        if doc.data is None:
            continue
        i = index[hostname]
        prefix = f"machines[{i}]"
        host_locations = _prefixed(doc, prefix)
        checker = _Checker(file, folder, host_locations)
        data = checker.mapping(doc.data, prefix, HOST_FILE_KEYS)
        problems.extend(checker.problems)
        if data is None:
            continue
        data = {k: v for k, v in data.items() if k in HOST_FILE_KEYS}
        entry = merged[i]
        if isinstance(entry, dict):
            merged[i] = _deep_merge(entry, data, prefix, host_locations, locations)
    return merged


def _prefixed(doc: YamlDocument, prefix: str) -> dict[str, Location]:
    result: dict[str, Location] = {}
    for key, location in doc.locations.items():
        if not key:
            result[prefix] = location
        elif key.startswith("["):
            result[prefix + key] = location
        else:
            result[f"{prefix}.{key}"] = location
    return result


def _deep_merge(
    lab: dict[str, Any],
    host: dict[str, Any],
    path: str,
    host_locations: dict[str, Location],
    locations: dict[str, Location],
) -> dict[str, Any]:
    result = dict(lab)
    for key, value in host.items():
        key_path = join_key(path, key)
        if result.get(key) is None:
            result[key] = value
            locations.update(subtree(host_locations, key_path))
        elif isinstance(result[key], dict) and isinstance(value, dict):
            result[key] = _deep_merge(result[key], value, key_path, host_locations, locations)
    return result


def _sorted(problems: list[Problem], main_file: str) -> list[Problem]:
    def order(p: Problem) -> tuple[int, str, int, str]:
        return (p.location.file != main_file, p.location.file, p.location.line or 0, p.key)

    return sorted(dict.fromkeys(problems), key=order)


# --------------------------------------------------------------------------- finding it


def find_inventory(option: str | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """The absolute path of the lab.yaml to use.

    `option` (`-i PATH`) names the file or its folder; else `$BOTLAB_INVENTORY` does;
    else `./lab.yaml` if the working folder is an inventory folder; else the only
    `inventory/*/lab.yaml` (or `inventory/lab.yaml`) under `cwd`. Relative paths resolve
    against `cwd`. InputError if what is named does not exist, or none or several are found.
    """
    cwd = _absolute(cwd)
    if option:
        return _named(option, cwd, "-i")
    named = environ.get(ENV_VAR, "")
    if named.strip():
        return _named(named, cwd, ENV_VAR)
    here = cwd / INVENTORY_FILE
    if here.is_file():
        return _absolute(here)
    found = sorted(cwd.glob(f"inventory/*/{INVENTORY_FILE}"))
    if (cwd / "inventory" / INVENTORY_FILE).is_file():
        found.insert(0, cwd / "inventory" / INVENTORY_FILE)
    found = [p for p in found if p.is_file()]
    where = Location(str(cwd))
    if not found:
        raise InputError(
            Problem(
                where,
                "inventory",
                f"no inventory found: expected inventory/<lab>/{INVENTORY_FILE} under this folder; "
                f"name one with -i PATH or {ENV_VAR}=PATH",
            )
        )
    if len(found) > 1:
        listed = ", ".join(str(p.relative_to(cwd)) for p in found)
        raise InputError(
            Problem(
                where,
                "inventory",
                f"several inventories found ({listed}): choose one with -i PATH or {ENV_VAR}=PATH",
            )
        )
    return _absolute(found[0])


def _named(text: str, cwd: Path, source: str) -> Path:
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        raise InputError(Problem(Location(text), source, f"cannot expand ~ in {text!r}")) from None
    if not path.is_absolute():
        path = cwd / path
    path = _absolute(path)
    if path.is_dir():
        candidate = path / INVENTORY_FILE
        if not candidate.is_file():
            raise InputError(
                Problem(
                    Location(str(path)),
                    source,
                    f"this folder holds no {INVENTORY_FILE}: name the inventory file or its folder",
                )
            )
        return candidate
    if not path.exists():
        raise InputError(Problem(Location(str(path)), source, "no such file or folder"))
    return path
