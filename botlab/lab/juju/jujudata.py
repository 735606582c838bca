"""Write a JUJU_DATA folder as `juju bootstrap` leaves it on the client, so that libjuju's
plain `Controller().connect()` / `Model().connect()` find the emulated controller.

    controllers.yaml   the controller: api-endpoints, ca-cert, uuid, cloud, ...; current-controller
    accounts.yaml      user and password (0600)
    models.yaml        the models that exist now, current-model
    clouds.yaml        the MAAS cloud (as `juju add-cloud --client` writes it)
    credentials.yaml   its credential (0600)
    ssh/juju_id_rsa{,.pub}   the client's key pair (libjuju's add_model reads the .pub)
    cookies/<controller>.json
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class JujuDataSpec:
    controller: str
    controller_uuid: str
    endpoints: tuple[str, ...]
    ca_cert: str
    version: str
    user: str
    password: str
    cloud: str
    cloud_type: str
    cloud_endpoint: str
    region: str
    auth_type: str
    credential_name: str
    credential_attrs: dict[str, str]
    models: tuple[tuple[str, str, str], ...]  # (owner/name, uuid, type)
    current_model: str | None


def _write(path: Path, data: Any, *, private: bool = False) -> None:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


def ensure_client_key(folder: Path) -> str:
    """The client's SSH key pair under folder/ssh (made once, RSA like Juju's); returns the
    public key line (comment juju-client-key)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssh = folder / "ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    private, public = ssh / "juju_id_rsa", ssh / "juju_id_rsa.pub"
    if private.exists() and public.exists():
        return public.read_text().strip()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fd = os.open(private, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    line = f"{line} juju-client-key"
    public.write_text(line + "\n")
    return line


def write_juju_data(folder: Path, spec: JujuDataSpec) -> Path:
    """Write (or rewrite) the JUJU_DATA folder; returns it. Other controllers already in
    the files are kept; this one becomes the current controller."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    controllers = _load(folder / "controllers.yaml")
    controllers.setdefault("controllers", {})[spec.controller] = {
        "uuid": spec.controller_uuid,
        "api-endpoints": list(spec.endpoints),
        "ca-cert": spec.ca_cert,
        "cloud": spec.cloud,
        "region": spec.region,
        "type": spec.cloud_type,
        "agent-version": spec.version,
        "controller-machine-count": 1,
        "active-controller-machine-count": 1,
        "machine-count": 1,
    }
    controllers["current-controller"] = spec.controller
    _write(folder / "controllers.yaml", controllers)

    accounts = _load(folder / "accounts.yaml")
    accounts.setdefault("controllers", {})[spec.controller] = {
        "user": spec.user,
        "password": spec.password,
        "last-known-access": "superuser",
    }
    _write(folder / "accounts.yaml", accounts, private=True)

    models = _load(folder / "models.yaml")
    entry: dict[str, Any] = {
        "models": {name: {"uuid": uuid, "type": kind, "branch": "master"} for name, uuid, kind in spec.models}
    }
    if spec.current_model:
        entry["current-model"] = spec.current_model
    models.setdefault("controllers", {})[spec.controller] = entry
    _write(folder / "models.yaml", models)

    clouds = _load(folder / "clouds.yaml")
    clouds.setdefault("clouds", {})[spec.cloud] = {
        "type": spec.cloud_type,
        "auth-types": [spec.auth_type],
        "endpoint": spec.cloud_endpoint,
    }
    _write(folder / "clouds.yaml", clouds)

    credentials = _load(folder / "credentials.yaml")
    credentials.setdefault("credentials", {})[spec.cloud] = {
        spec.credential_name: {"auth-type": spec.auth_type, **spec.credential_attrs},
    }
    _write(folder / "credentials.yaml", credentials, private=True)

    ensure_client_key(folder)
    cookies = folder / "cookies"
    cookies.mkdir(mode=0o700, exist_ok=True)
    jar = cookies / f"{spec.controller}.json"
    if not jar.exists():
        jar.write_text("[]")
    return folder


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}
