"""Loading an inventory: read lab.yaml, merge hosts/ files, walk the schema to build the
model, then check what no single key can (duplicates, roles, references between keys).

Loading reads files only: it resolves no secrets and touches no system. Every user mistake
becomes a Problem (`file:line: key: message`); all of them are raised at once as one
InputError, sorted by file and line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from botlab.errors import InputError, Location, Problem
from botlab.inventory import schema
from botlab.inventory.model import (
    ArtifactsConfig,
    ArtifactSource,
    Hardware,
    Inventory,
    JujuConfig,
    KubeflowConfig,
    KubernetesConfig,
    MaasConfig,
    Machine,
    MetallbConfig,
    NfsConfig,
    Power,
    SshConfig,
)
from botlab.inventory.schema import Derived, Items, Key, Node
from botlab.inventory.values import POWER_PARAMETERS, Bad, Type, describe, suggest
from botlab.names import default_model
from botlab.yamlsource import (
    DOCUMENT_KEY,
    YamlDocument,
    gc_paused,
    join_key,
    load_yaml,
    parent_keys,
    size_text,
    subtree,
)

INVENTORY_FILE = "lab.yaml"
HOSTS_FOLDER = "hosts"

# Size caps, checked from each file's stat before it is read (and no more than cap + 1
# bytes are ever read). 10,000 machines written out in full take 2.6 MiB of lab.yaml and
# validate in about 2 s and 170 MiB (bench/inventory.py); 8 MiB leaves room for three times
# that, or for generous comments. A hosts file holds one machine's facts: a few hundred
# bytes. All files together are capped as well, so thousands of hosts files cannot add up
# to gigabytes.
MAX_INVENTORY_BYTES = 8 * 1024 * 1024
MAX_HOST_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024

# Which model class each mapping of the schema becomes.
MODELS: dict[Node, Callable[..., Any]] = {
    schema.MAAS: MaasConfig,
    schema.JUJU: JujuConfig,
    schema.SSH: SshConfig,
    schema.MACHINE: Machine,
    schema.HARDWARE: Hardware,
    schema.POWER: Power,
    schema.KUBERNETES: KubernetesConfig,
    schema.NFS: NfsConfig,
    schema.METALLB: MetallbConfig,
    schema.KUBEFLOW: KubeflowConfig,
    schema.ARTIFACTS: ArtifactsConfig,
    schema.ARTIFACT: ArtifactSource,
}


class _Checker:
    """Walks raw YAML data along the schema into the model, collecting Problems."""

    def __init__(self, file: str, folder: Path, locations: dict[str, Location]) -> None:
        self.file = file
        self.folder = folder
        self.locations = locations
        self.problems: list[Problem] = []
        self._failed: set[str] = set()  # the keys of problems and all their parents
        self.top: dict[str, Any] = {}

    def where(self, path: str) -> Location:
        for candidate in parent_keys(path):
            if candidate in self.locations:
                return self.locations[candidate]
        return Location(self.file)

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.where(path), path or DOCUMENT_KEY, message))
        self._failed.update(k for k in parent_keys(path) if k)

    def assume_failed(self, paths: Iterable[str]) -> None:
        """Treat `paths` as failed (reported elsewhere): checks building on them are skipped."""
        self._failed.update(paths)

    def failed(self, path: str) -> bool:
        """Whether a problem was reported at `path` or below it (checks that build on a
        bad value would only repeat it)."""
        return path in self._failed

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> Any:
        """`value` if it is a mapping (its unknown and missing keys reported), else None."""
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {describe(value)}")
            return None
        guessed: set[str] = set()
        for key in value:
            if key not in allowed:
                guess = suggest(key, [k for k in allowed if k not in value])
                if guess:
                    guessed.add(guess)
                hint = f"did you mean {guess!r}?" if guess else f"allowed keys: {', '.join(allowed)}"
                self.error(join_key(path, key), f"unknown key; {hint}")
        for key in required:
            # a misspelt key already says "did you mean 'key'?"
            if key not in value and key not in guessed:
                self.error(join_key(path, key), "required key is missing")
        return value

    # ----------------------------------------------------------------- the walk

    def values(self, m: dict[str, Any] | None, path: str, node: Node) -> dict[str, Any]:
        """The model's field values of mapping `m` at `path` (None: every key's fallback)."""
        result: dict[str, Any] = {}
        if not path:
            self.top = result
        keys = sorted(node.keys, key=lambda k: isinstance(k.default, Derived))  # derived ones last
        for key in keys:
            result[key.field] = self.value(m, path, key, result)
        return result

    def value(self, m: dict[str, Any] | None, parent: str, key: Key, siblings: dict[str, Any]) -> Any:
        path = join_key(parent, key.name)
        raw = None if m is None else m.get(key.name)
        if raw is None:
            if m is not None and key.name in m:
                if key.required:
                    self.error(path, "required, but has no value")
                elif not parent and key.default is None:
                    # an optional section written empty: say so rather than switch it off
                    self.error(path, f"has no value: write `{key.name}: {{}}` for the defaults, or remove it")
            return self.fallback(path, key, siblings)
        try:
            return self.read(raw, path, key.type)
        except Bad as exc:
            self.error(path, str(exc))
            return self.fallback(path, key, siblings)

    def fallback(self, path: str, key: Key, siblings: dict[str, Any]) -> Any:
        """The value of a key that is absent or wrong: its default, or a blank stand-in
        for a required one (the inventory is refused then, but checks across keys run)."""
        kind = key.type
        if isinstance(key.default, Derived):
            return key.default.compute(siblings, self.top)
        if key.required:
            if isinstance(kind, Type):
                return kind.blank
            return () if isinstance(kind, Items) else None
        if isinstance(kind, Node) and key.default is not None:
            return MODELS[kind](**self.values(None, path, kind))  # every key's default
        return key.default

    def read(self, raw: Any, path: str, kind: Type[Any] | Node | Items) -> Any:
        if isinstance(kind, Node):
            return self.build(raw, path, kind)
        if isinstance(kind, Items):
            if not isinstance(raw, list):
                raise Bad(f"expected a list of {kind.noun}s, got {describe(raw)}")
            if not raw:
                raise Bad(f"expected at least one {kind.noun}, got an empty list")
            if len(raw) > kind.most:
                raise Bad(f"expected at most {kind.most:,} {kind.noun}s, got {len(raw):,}")
            return tuple(self.build(item, join_key(path, i), kind.node) for i, item in enumerate(raw))
        return kind.parse(raw, path, self)

    def build(self, raw: Any, path: str, node: Node) -> Any:
        m = self.mapping(raw, path, node.names, node.required)
        return MODELS[node](**self.values(m, path, node))

    # ----------------------------------------------------------------- across keys

    def cross_check(self, root: dict[str, Any], values: dict[str, Any]) -> None:
        self.juju_model(root, values["name"], values["juju"])
        self.gpu_method(values["kubernetes"])
        self.machines(values["machines"])
        self.nfs_server(values["machines"], values["nfs"])

    def juju_model(self, root: dict[str, Any], lab: str, juju: JujuConfig | None) -> None:
        raw = root.get("juju")
        written = isinstance(raw, dict) and raw.get("model") is not None
        if not (lab and juju and written) or self.failed("juju.model") or juju.model.startswith(f"{lab}-"):
            return
        self.error(
            "juju.model",
            f"must start with the lab's name and '-' ({lab}-...), e.g. {default_model(lab)},"
            f" got {describe(juju.model)}",
        )

    def gpu_method(self, kubernetes: KubernetesConfig) -> None:
        runtime = kubernetes.container_runtime
        if kubernetes.gpu_method == "charm" and runtime != "containerd":
            self.error(
                "kubernetes.gpu_method",
                f"charm needs container_runtime containerd (the {runtime} runtime is "
                "configured over ssh: use gpu_method: ssh)",
            )

    def machines(self, machines: tuple[Machine, ...]) -> None:
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

    def nfs_server(self, machines: tuple[Machine, ...], nfs: NfsConfig | None) -> None:
        if nfs is None or not nfs.server:
            return
        index = next((i for i, m in enumerate(machines) if m.hostname == nfs.server), None)
        if index is None:
            # a machine whose hostname is bad may be the one meant
            if machines and all(m.hostname for m in machines):
                guess = suggest(nfs.server, [m.hostname for m in machines])
                hint = f"; did you mean {guess!r}?" if guess else ""
                self.error("nfs.server", f"{nfs.server!r} is not a machine of the lab{hint}")
        elif not machines[index].has_role("nfs") and not self.failed(f"machines[{index}].roles"):
            self.error("nfs.server", f"machine {nfs.server!r} does not have role nfs: add nfs to its roles")


def _display(path: Path) -> str:
    """How a file is named in messages: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


def absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def load_inventory(path: Path) -> Inventory:
    """Load and validate the inventory at `path` (a lab.yaml, or its folder).

    Raises InputError carrying every problem found, sorted by file and line (lab.yaml
    first, then hosts/ files); never another exception for a user mistake.
    """
    with gc_paused():
        return _load(absolute(Path(path)))


def _load(path: Path) -> Inventory:
    if path.is_dir():
        path = path / INVENTORY_FILE
    file = _display(path)
    doc = load_yaml(path, file, MAX_INVENTORY_BYTES, "an inventory file")
    problems = list(doc.problems)
    if doc.data is None:
        if doc.empty:
            problems.append(Problem(Location(file, 1), DOCUMENT_KEY, "the inventory is empty; see docs/inventory.md"))
        raise InputError(_sorted(problems, file))
    locations = dict(doc.locations)
    checker = _Checker(file, path.parent, locations)
    root = checker.mapping(doc.data, "", schema.TOP.names, schema.TOP.required)
    if root is None:
        raise InputError(_sorted(problems + checker.problems, file))
    if isinstance(root.get("machines"), list):
        root = dict(root)
        unread: set[int] = set()
        root["machines"] = _merge_hosts(path.parent, root["machines"], locations, problems, doc.size, unread)
        # a machine whose hosts file is unreadable lacks its facts: that is the one problem
        checker.assume_failed(f"machines[{i}].{key}" for i in unread for key in schema.HOST_FILE_KEYS)

    values = checker.values(root, "", schema.TOP)
    checker.cross_check(root, values)
    problems.extend(checker.problems)
    if problems:
        raise InputError(_sorted(problems, file))
    return Inventory(path=path, locations=MappingProxyType(locations), **values)


def _merge_hosts(
    folder: Path,
    machines: list[Any],
    locations: dict[str, Location],
    problems: list[Problem],
    total: int,
    unread: set[int],
) -> list[Any]:
    """Merge each `hosts/<hostname>.yaml` into its machine entry: dicts merge deeply and
    lab.yaml wins on conflicts. Merged values keep the location of the file they came from.
    `total` is the bytes read so far (lab.yaml's); reading stops at MAX_TOTAL_BYTES. The
    indexes of machines whose hosts file could not be read are added to `unread`."""
    hosts_dir = folder / HOSTS_FOLDER
    try:
        entries = sorted(hosts_dir.iterdir()) if hosts_dir.is_dir() else []
    except OSError as exc:
        problems.append(Problem(Location(_display(hosts_dir)), HOSTS_FOLDER, f"cannot be read: {exc.strerror or exc}"))
        return machines
    index: dict[str, int] = {}
    for i, entry in enumerate(machines):
        if isinstance(entry, dict) and isinstance(entry.get("hostname"), str):
            index.setdefault(entry["hostname"], i)
    merged = list(machines)
    over = False  # past MAX_TOTAL_BYTES: files are named-checked, no longer read
    for host_file in entries:
        if host_file.name.startswith("."):
            continue
        file = _display(host_file)
        key = f"{HOSTS_FOLDER}/{host_file.name}"
        if host_file.suffix == ".yml":
            problems.append(
                Problem(Location(file, 1), key, f"rename to {host_file.stem}.yaml (hosts files end in .yaml)")
            )
            continue
        if host_file.suffix != ".yaml":
            continue
        hostname = host_file.stem
        if hostname not in index:
            guess = suggest(hostname, index)
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
        if over:
            unread.add(index[hostname])
            continue
        doc = load_yaml(host_file, file, MAX_HOST_FILE_BYTES, f"a {HOSTS_FOLDER}/ file")
        total += doc.size
        if total > MAX_TOTAL_BYTES:
            over = True
            unread.add(index[hostname])
            problems.append(
                Problem(
                    Location(file),
                    DOCUMENT_KEY,
                    f"the inventory's files add up to more than {size_text(MAX_TOTAL_BYTES)} here: "
                    f"{INVENTORY_FILE} and its {HOSTS_FOLDER}/ files together may be at most that much",
                )
            )
            continue
        problems.extend(doc.problems)
        if doc.data is None:
            if not doc.empty:
                unread.add(index[hostname])
            continue
        i = index[hostname]
        prefix = f"machines[{i}]"
        host_locations = _prefixed(doc, prefix)
        checker = _Checker(file, folder, host_locations)
        data = checker.mapping(doc.data, prefix, schema.HOST_FILE_KEYS)
        if data is not None:
            _refuse_plain_secrets(checker, data, prefix)
        problems.extend(checker.problems)
        if data is None:
            continue
        data = {k: v for k, v in data.items() if k in schema.HOST_FILE_KEYS}
        entry = merged[i]
        if isinstance(entry, dict):
            merged[i] = _deep_merge(entry, data, prefix, host_locations, locations)
    return merged


def _refuse_plain_secrets(checker: _Checker, data: dict[str, Any], prefix: str) -> None:
    """Read a hosts file's own power parameters, so a secret written there in plain is
    refused even where lab.yaml's value wins the merge (the same problem found again after
    the merge is reported once)."""
    power = data.get("power")
    parameters = power.get("parameters") if isinstance(power, dict) else None
    if isinstance(parameters, dict):
        POWER_PARAMETERS.parse(parameters, f"{prefix}.power.parameters", checker)


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
