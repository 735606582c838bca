"""Model configuration as Juju 3.6 shows it: the keys, their types and defaults, and how
`ModelSet` values (libjuju sends strings) are coerced and validated.

Keys Juju does not know are accepted and stored as given (a real controller logs a warning
and keeps them). `name`, `uuid` and `type` cannot change; `agent-version` only by upgrading.
"""

from __future__ import annotations

import re
from typing import Any

from botlab.lab.juju.errors import JujuApiError, not_valid

BOOL = "bool"
INT = "int"
STRING = "string"
DURATION = "duration"

# key -> (type, default). Defaults are what `juju model-config` shows with source "default".
SCHEMA: dict[str, tuple[str, Any]] = {
    "agent-metadata-url": (STRING, ""),
    "agent-stream": (STRING, "released"),
    "apt-ftp-proxy": (STRING, ""),
    "apt-http-proxy": (STRING, ""),
    "apt-https-proxy": (STRING, ""),
    "apt-mirror": (STRING, ""),
    "apt-no-proxy": (STRING, ""),
    "automatically-retry-hooks": (BOOL, True),
    "backup-dir": (STRING, ""),
    "charmhub-url": (STRING, "https://api.charmhub.io"),
    "cloudinit-userdata": (STRING, ""),
    "container-image-metadata-defaults-disabled": (BOOL, False),
    "container-image-metadata-url": (STRING, ""),
    "container-image-stream": (STRING, "released"),
    "container-inherit-properties": (STRING, ""),
    "container-networking-method": (STRING, ""),
    "default-base": (STRING, ""),
    "default-space": (STRING, ""),
    "development": (BOOL, False),
    "disable-network-management": (BOOL, False),
    "disable-telemetry": (BOOL, False),
    "egress-subnets": (STRING, ""),
    "enable-os-refresh-update": (BOOL, True),
    "enable-os-upgrade": (BOOL, True),
    "extra-info": (STRING, ""),
    "firewall-mode": (STRING, "instance"),
    "ftp-proxy": (STRING, ""),
    "http-proxy": (STRING, ""),
    "https-proxy": (STRING, ""),
    "ignore-machine-addresses": (BOOL, False),
    "image-metadata-defaults-disabled": (BOOL, False),
    "image-metadata-url": (STRING, ""),
    "image-stream": (STRING, "released"),
    "juju-ftp-proxy": (STRING, ""),
    "juju-http-proxy": (STRING, ""),
    "juju-https-proxy": (STRING, ""),
    "juju-no-proxy": (STRING, "127.0.0.1,localhost,::1"),
    "logging-config": (STRING, ""),
    "logging-output": (STRING, ""),
    "lxd-snap-channel": (STRING, "5.0/stable"),
    "max-action-results-age": (DURATION, "336h"),
    "max-action-results-size": (STRING, "5G"),
    "max-status-history-age": (DURATION, "336h"),
    "max-status-history-size": (STRING, "5G"),
    "mode": (STRING, "requires-prompts"),
    "net-bond-reconfigure-delay": (INT, 17),
    "no-proxy": (STRING, "127.0.0.1,localhost,::1"),
    "num-container-provision-workers": (INT, 10),
    "num-provision-workers": (INT, 16),
    "provisioner-harvest-mode": (STRING, "destroyed"),
    "proxy-ssh": (BOOL, False),
    "resource-tags": (STRING, ""),
    "saas-ingress-allow": (STRING, "0.0.0.0/0,::/0"),
    "secret-backend": (STRING, "auto"),
    "snap-http-proxy": (STRING, ""),
    "snap-https-proxy": (STRING, ""),
    "snap-store-assertions": (STRING, ""),
    "snap-store-proxy": (STRING, ""),
    "snap-store-proxy-url": (STRING, ""),
    "ssh-allow": (STRING, "0.0.0.0/0,::/0"),
    "ssl-hostname-verification": (BOOL, True),
    "storage-default-block-source": (STRING, ""),
    "storage-default-filesystem-source": (STRING, ""),
    "test-mode": (BOOL, False),
    "transmit-vendor-metrics": (BOOL, True),
    "update-status-hook-interval": (DURATION, "5m"),
}

# Set on every model, shown with source "model".
MODEL_KEYS = ("name", "uuid", "type", "agent-version", "authorized-keys")
IMMUTABLE = ("name", "uuid", "type")
ENUMS: dict[str, tuple[str, ...]] = {
    "firewall-mode": ("instance", "global", "none"),
    "provisioner-harvest-mode": ("all", "none", "unknown", "destroyed"),
    "mode": ("", "requires-prompts", "strict"),
    "agent-stream": ("released", "proposed", "testing", "devel"),
    "image-stream": ("released", "daily"),
}
SUPPORTED_BASES = ("ubuntu@20.04", "ubuntu@22.04", "ubuntu@24.04")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_LOGGING = re.compile(r"^\s*(<root>|[a-zA-Z0-9_.\-]+)\s*=\s*(TRACE|DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\s*$", re.I)


def _go_repr(value: Any) -> str:
    """How Go's errors show a rejected value, e.g. string("maybe")."""
    if isinstance(value, str):
        return f'string("{value}")'
    if isinstance(value, bool):
        return f"bool({str(value).lower()})"
    return f"{type(value).__name__}({value!r})"


def duration_seconds(text: str) -> float:
    """Seconds in a Go duration such as 5m or 1h30m; ValueError if it is not one."""
    if not _DURATION.match(text):
        raise ValueError(f'time: invalid duration "{text}"')
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * units[u] for n, _f, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text))


def coerce(key: str, value: Any) -> Any:
    """`value` for `key` in its schema type; JujuApiError (not valid) if it cannot be."""
    kind = SCHEMA.get(key, (None, None))[0]
    if kind is None:
        if key == "authorized-keys" and not isinstance(value, str):
            raise not_valid(f"authorized-keys: expected string, got {_go_repr(value)}")
        return value
    if kind == BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise not_valid(f"{key}: expected bool, got {_go_repr(value)}")
    if kind == INT:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise not_valid(f"{key}: expected number, got {_go_repr(value)}")
    if not isinstance(value, str):
        raise not_valid(f"{key}: expected string, got {_go_repr(value)}")
    if kind == DURATION:
        try:
            seconds = duration_seconds(value)
        except ValueError as exc:
            raise not_valid(f"{key}: {exc}") from None
        if key == "update-status-hook-interval" and not 60 <= seconds <= 3600:
            raise not_valid(f"update-status-hook-interval cannot be less than 1m or greater than 60m, got {value}")
    if key in ENUMS and value not in ENUMS[key]:
        raise not_valid(f"{key}: expected one of {list(ENUMS[key])}, got {_go_repr(value)}")
    if key == "default-base" and value and value not in SUPPORTED_BASES:
        raise not_valid(f"invalid default base {value!r}: base not supported")
    if key == "logging-config" and value:
        for part in value.split(";"):
            if part.strip() and not _LOGGING.match(part):
                raise not_valid(f'logging-config: logger specification expected \'=\', found "{part}"')
    return value


def validate_update(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Coerced `changes` to apply over `current` (the model's own values); raises for keys
    that may not change."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if not isinstance(key, str) or not key:
            raise not_valid(f"invalid config key {key!r}")
        if key in IMMUTABLE and value != current.get(key):
            raise not_valid(f"cannot change {key} from {current.get(key)!r} to {value!r}".replace("'", '"'))
        if key == "agent-version" and value != current.get(key):
            raise JujuApiError('agent-version must be set via "upgrade-model"')
        out[key] = coerce(key, value)
    return out


def check_unset(keys: list[str]) -> None:
    for key in keys:
        if key in MODEL_KEYS:
            raise not_valid(f"cannot unset model attribute {key!r}".replace("'", '"'))


def with_sources(model_values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ModelGet's view: every known key's value with its source ("default" or "model")."""
    out = {key: {"value": default, "source": "default"} for key, (_kind, default) in SCHEMA.items()}
    for key, value in model_values.items():
        out[key] = {"value": value, "source": "model"}
    return dict(sorted(out.items()))


def effective(model_values: dict[str, Any]) -> dict[str, Any]:
    """Key -> value, defaults included (the config map the AllWatcher shows)."""
    return {k: v["value"] for k, v in with_sources(model_values).items()}
