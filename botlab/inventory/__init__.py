"""The inventory: one lab described in `inventory/<lab>/lab.yaml` (plus optional
`hosts/<hostname>.yaml`), loaded into frozen dataclasses and validated as a whole.

- values.py: the kinds of value a key can hold (parsers, docs labels)
- schema.py: every key once, with its type, default, requiredness and meaning
- model.py:  the frozen dataclasses stages read (defaults taken from the schema)
- load.py:   reading YAML, merging hosts/ files, walking the schema, checks across keys
- find.py:   which inventory a command uses
- docs.py:   docs/inventory.md's key tables, generated from the schema

Imports only the standard library and yaml: it is on every CLI call's path.
"""

from botlab.inventory.find import ENV_VAR, find_inventory
from botlab.inventory.load import HOSTS_FOLDER, INVENTORY_FILE, load_inventory
from botlab.inventory.model import (
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
from botlab.inventory.schema import (
    CNIS,
    CONTAINER_RUNTIMES,
    DEFAULT_ARCHITECTURE,
    DEFAULT_EXPORT_PATH,
    DEFAULT_KUBEFLOW_CHANNEL,
    DEFAULT_KUBERNETES_CHANNEL,
    DEFAULT_STORAGE_CLASS,
    GPU_METHODS,
    HOST_FILE_KEYS,
    SECTIONS,
)
from botlab.inventory.values import ROLES, FrozenMap, describe, parse_address_range, parse_memory

__all__ = [
    "CNIS",
    "CONTAINER_RUNTIMES",
    "DEFAULT_ARCHITECTURE",
    "DEFAULT_EXPORT_PATH",
    "DEFAULT_KUBEFLOW_CHANNEL",
    "DEFAULT_KUBERNETES_CHANNEL",
    "DEFAULT_STORAGE_CLASS",
    "ENV_VAR",
    "GPU_METHODS",
    "HOSTS_FOLDER",
    "HOST_FILE_KEYS",
    "INVENTORY_FILE",
    "ROLES",
    "SECTIONS",
    "FrozenMap",
    "Hardware",
    "Inventory",
    "JujuConfig",
    "KubeflowConfig",
    "KubernetesConfig",
    "MaasConfig",
    "Machine",
    "MetallbConfig",
    "NfsConfig",
    "Power",
    "SshConfig",
    "describe",
    "find_inventory",
    "load_inventory",
    "parse_address_range",
    "parse_memory",
]
