"""The inventory schema: every key, once, with its type, default, requiredness and meaning.

The loader (load.py) derives allowed keys, required keys and defaults from it; the model's
dataclasses (model.py) take their defaults from it; docs/inventory.md's key tables are
generated from it (`python -m botlab.inventory.docs --update docs/inventory.md`) and a test
keeps them in step. To add a key, declare it here, add its field to the model, and
regenerate the docs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botlab.inventory.values import (
    ADDRESSES,
    BOOLEAN,
    EXISTING_FILE,
    EXPORT_PATH,
    MACS,
    MEMORY,
    NETWORK,
    PATH,
    POWER_PARAMETERS,
    ROLE_LIST,
    SECRET,
    URL,
    FrozenMap,
    Type,
    choice,
    integer,
    text,
)
from botlab.names import default_model


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a key that must be written."""


@dataclass(frozen=True)
class Derived:
    """A default computed from other values: `compute(siblings, top)` gets the values read
    so far in the same mapping and at the top level (by model field name); `shown` is how
    the docs write it."""

    shown: str
    compute: Callable[[Mapping[str, Any], Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Key:
    """One key. `default` is REQUIRED, a model value, a Derived, or (for a mapping) `{}`:
    every key of the mapping takes its default. `shown` overrides how the docs write the
    default; `attr` is the model's field when it is not `name`."""

    name: str
    type: Type[Any] | Node | Items
    doc: str
    default: Any = REQUIRED
    shown: str | None = None
    attr: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def field(self) -> str:
        return self.attr or self.name


@dataclass(frozen=True, eq=False)
class Node:
    """A mapping of known keys (hashed by identity, so the loader can bind it to a model class)."""

    keys: tuple[Key, ...]
    label: str = "mapping"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys if k.required)

    def key(self, name: str) -> Key:
        for key in self.keys:
            if key.name == name:
                return key
        raise KeyError(name)


# 10,000 machines validate in about 2 s; a longer list than this is refused unread (a list
# of a million scalars in an 8 MiB file would otherwise take a minute to report).
MAX_MACHINES = 50_000


@dataclass(frozen=True)
class Items:
    """A non-empty list of at most `most` mappings, each read with `node`; `noun` names one item."""

    node: Node
    noun: str
    label: str = "list"
    most: int = MAX_MACHINES


# --------------------------------------------------------------------------- kinds of text

LAB_NAME = text(
    "a lab name (lowercase letters, digits and '-', at most 32 characters, starting and ending with a letter or digit)",
    re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z"),
)
HOSTNAME = text(
    "a hostname (a DNS label: lowercase letters, digits and '-', at most 63 characters)",
    re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z"),
)
_JUJU_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/(?:stable|candidate|beta|edge)\Z")

CONTAINER_RUNTIMES = ("containerd", "docker")
GPU_METHODS = ("charm", "ssh")
CNIS = ("calico", "flannel", "cilium")

# --------------------------------------------------------------------------- the declaration

MAAS = Node(
    (
        Key(
            "url",
            URL,
            "MAAS API URL, `http://` or `https://`, e.g. `http://maas.example:5240/MAAS/`; no credentials in it",
        ),
        Key("api_key", SECRET, "MAAS API key (`maas apikey --username=...`)"),
        Key(
            "commission_retries",
            integer(0),
            "how many times to re-commission a machine whose commissioning fails",
            default=2,
        ),
        Key("timeout", integer(1), "seconds to wait for machines to become Ready / Deployed", default=3600),
        Key("concurrency", integer(1, 256), "MAAS API requests in flight at once", default=32),
    )
)

JUJU = Node(
    (
        Key("controller", text("a Juju controller name", _JUJU_NAME), "an existing Juju controller on the MAAS cloud"),
        Key(
            "model",
            text("a Juju model name (lowercase letters, digits and '-')", re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")),
            "the model the cluster is deployed in; lowercase letters, digits, `-`; **must start with `<lab>-`**",
            default=Derived(f"`{default_model('<lab>')}`",
                            lambda _, top: default_model(top["name"]) if top.get("name") else "k8s"),
        ),
        Key("cloud", text("a Juju cloud name", _JUJU_NAME), "the MAAS cloud's name in Juju"),
        Key(
            "data_dir",
            PATH,
            "`JUJU_DATA`: where the Juju client keeps its controllers and accounts",
            default=None,
            shown="Juju's own",
        ),
        Key("password", SECRET, "the controller password, when the Juju client needs a login", default=None),
    )
)

SSH = Node(
    (
        Key(
            "user",
            text("a user name (lowercase letters, digits, '_', '-')", re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")),
            "the user MAAS deploys with and botlab logs in as",
            default="ubuntu",
        ),
        Key("public_key", PATH, "installed on every deployed machine"),
        Key("private_key", PATH, "used by the gpu and storage stages"),
    )
)

HARDWARE = Node(
    (
        Key("cores", integer(1), "CPU cores", default=None, shown="not checked"),
        Key(
            "memory",
            MEMORY,
            "memory: an integer of MiB, or `512M`, `32G`, `32GiB`, `32GB`, `32Gi`, `1T`, `1.5G`. "
            "Units are binary (`1G` = 1024 MiB) however written",
            default=None,
            shown="not checked",
            attr="memory_mib",
        ),
        Key("gpus", integer(0), "NVIDIA GPUs", default=0),
    )
)

POWER = Node(
    (
        Key(
            "type",
            text("a power type like ipmi or redfish"),
            "MAAS power type: `ipmi`, `redfish`, `virsh`, `manual`, `webhook`, ...",
        ),
        Key(
            "parameters",
            POWER_PARAMETERS,
            "MAAS power parameters; each value a string, a number or boolean "
            "(sent as text), or a secret reference. A parameter whose name contains `pass`, `secret`, `token` or "
            "`key` (any case: `power_pass`, `ipmi_password`, `api_token`, `secret_key`) holds a secret and must be "
            "a reference",
            default=FrozenMap(),
        ),
    )
)

MACHINE = Node(
    (
        Key("hostname", HOSTNAME, "a DNS label (lowercase letters, digits, `-`, at most 63); unique in the lab"),
        Key(
            "roles",
            ROLE_LIST,
            "one or more of `control-plane`, `worker`, `etcd`, `load-balancer`, `gpu`, `nfs`; no repeats",
        ),
        Key(
            "hardware",
            HARDWARE,
            "what the machine is expected to have, checked against MAAS's hardware facts",
            default={},
            shown="all unknown, `gpus: 0`",
        ),
        Key(
            "macs",
            MACS,
            "MAC addresses (`52:54:00:12:34:56`, or with `-`); stored lowercase with `:`; unique "
            "across the lab. Needed to create a machine MAAS does not know yet",
            default=(),
        ),
        Key(
            "architecture",
            text("an architecture like amd64/generic", re.compile(r"[a-z0-9_]+/[a-z0-9_.-]+\Z")),
            "MAAS architecture, `<arch>/<subarch>`",
            default="amd64/generic",
        ),
        Key("power", POWER, "how MAAS powers a machine it does not know yet", default=None),
    )
)

# The keys a hosts/<hostname>.yaml file may hold, in the order error messages list them.
HOST_FILE_KEYS = ("hardware", "power", "macs", "architecture")

KUBERNETES = Node(
    (
        Key(
            "channel",
            text("a channel like 1.31/stable", _CHANNEL),
            "Charmed Kubernetes channel, `<track>/<risk>` (risk: `stable`, `candidate`, `beta`, `edge`)",
            default="1.31/stable",
        ),
        Key("container_runtime", choice(CONTAINER_RUNTIMES), "the workers' container runtime", default="containerd"),
        Key(
            "gpu_method",
            choice(GPU_METHODS),
            "how the NVIDIA runtime is registered: through the containerd "
            "charm's own option, or by botlab over SSH. `charm` requires `containerd`",
            default=Derived(
                "`charm` for containerd, `ssh` for docker",
                lambda keys, _: "charm" if keys["container_runtime"] == "containerd" else "ssh",
            ),
        ),
        Key("cni", choice(CNIS), "the cluster network", default="calico"),
        Key(
            "bundle",
            EXISTING_FILE,
            "your own Juju bundle template (Jinja2); the file must exist",
            default=None,
            shown="botlab's own",
        ),
        Key(
            "timeout",
            integer(1),
            "seconds the kubernetes stage waits for MAAS to deploy the machines and the units "
            "to settle; changing it does not re-run the stage",
            default=3600,
        ),
    )
)

NFS = Node(
    (
        Key(
            "server",
            text("a hostname of the lab"),
            "hostname of the machine that serves NFS; a machine of the lab with role `nfs`",
        ),
        Key(
            "export_path",
            EXPORT_PATH,
            "the exported folder: an absolute path of letters, digits, `.`, `_`, `-`, `/`; no `..`; not `/`",
            default="/srv/nfs/kubedata",
        ),
        Key(
            "allowed_network",
            NETWORK,
            "who may mount the export: the cluster's network (`10.0.0.0/24`, "
            '`fd00::/64`; host bits must be zero). `"*"` (quoted) lets anyone mount it: write it only on purpose',
        ),
        Key(
            "storage_class",
            text(
                "a StorageClass name (DNS-1123: lowercase letters, digits, '-', '.')",
                re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\Z"),
                253,
            ),
            "the StorageClass name (DNS-1123: lowercase letters, digits, `-`, `.`)",
            default="nfs-client",
        ),
        Key("default_class", BOOLEAN, "make it the cluster's default StorageClass", default=True),
    )
)

METALLB = Node(
    (
        Key(
            "version",
            text("a pinned version like v0.14.8", re.compile(r"v\d+\.\d+\.\d+\Z")),
            "the MetalLB release, pinned: `vX.Y.Z`",
        ),
        Key(
            "addresses",
            ADDRESSES,
            "addresses for LoadBalancer Services, at least one: each a range `first-last` "
            "(same IP family, first <= last) or a CIDR (host bits zero). IPv4 and IPv6 both work. No two entries "
            "may overlap; the error names both",
        ),
    )
)

SHA256 = text("a sha256 (64 lowercase hex digits)", re.compile(r"[0-9a-f]{64}\Z"))

ARTIFACT = Node(
    (
        Key("url", URL, "where to download it: a mirror of the upstream file, or a copy on an air-gapped site"),
        Key("sha256", SHA256, "the file's sha256: a download or cached copy with another sum stops the stage"),
    ),
    label="artifact",
)

ARTIFACTS = Node(
    (
        Key(
            "nvidia_device_plugin",
            ARTIFACT,
            "the NVIDIA device plugin's static manifest (the gpu stage)",
            default=None,
            shown="NVIDIA/k8s-device-plugin v0.20.0, pinned in botlab/artifacts.py",
        ),
    )
)

KUBEFLOW = Node(
    (
        Key(
            "channel",
            text("a channel like 1.9/stable", _CHANNEL),
            "Charmed Kubeflow channel, `<track>/<risk>`",
            default="1.9/stable",
        ),
    )
)

TOP = Node(
    (
        Key("lab", LAB_NAME, "the lab's name; prefixes everything botlab creates in shared systems", attr="name"),
        Key("maas", MAAS, "the MAAS that manages the machines"),
        Key("juju", JUJU, "the Juju controller that deploys on them"),
        Key("ssh", SSH, "how botlab logs in to deployed machines"),
        Key("machines", Items(MACHINE, "machine", most=MAX_MACHINES), "the lab's machines, at least one"),
        Key("kubernetes", KUBERNETES, "the cluster", default={}, shown="every key's default"),
        Key("nfs", NFS, "shared storage", default=None, shown="off"),
        Key("metallb", METALLB, "LoadBalancer addresses", default=None, shown="off"),
        Key("kubeflow", KUBEFLOW, "Kubeflow on the cluster", default=None, shown="off"),
        Key("artifacts", ARTIFACTS, "where the upstream files botlab applies come from (`botlab fetch`)",
            default={}, shown="the pinned upstream files"),
    )
)

SECTIONS = TOP.names


def lookup(path: str) -> Key:
    """The key at a dotted path such as `maas.timeout` or `machines.hardware.gpus`."""
    node: Node | None = TOP
    key = None
    for part in path.split("."):
        if node is None:
            raise KeyError(path)
        key = node.key(part)
        kind = key.type
        node = kind.node if isinstance(kind, Items) else kind if isinstance(kind, Node) else None
    if key is None:
        raise KeyError(path)
    return key


def default(path: str) -> Any:
    """The model's default for the key at `path` (a Derived one computed from its siblings'
    defaults); the model's dataclasses take theirs from here."""
    key = lookup(path)
    if key.required or (isinstance(key.type, Node) and key.default is not None):
        raise ValueError(f"{path} has no plain default: the model builds it")
    if isinstance(key.default, Derived):
        parent = path.rpartition(".")[0]
        siblings = lookup(parent).type if parent else TOP
        node = siblings.node if isinstance(siblings, Items) else siblings
        assert isinstance(node, Node)
        plain = {k.field: k.default for k in node.keys if not isinstance(k.default, Derived)}
        return key.default.compute(plain, {})
    return key.default


DEFAULT_ARCHITECTURE = default("machines.architecture")
DEFAULT_KUBERNETES_CHANNEL = default("kubernetes.channel")
DEFAULT_KUBEFLOW_CHANNEL = default("kubeflow.channel")
DEFAULT_EXPORT_PATH = default("nfs.export_path")
DEFAULT_STORAGE_CLASS = default("nfs.storage_class")
