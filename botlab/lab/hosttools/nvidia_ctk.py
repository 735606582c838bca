"""The lab's nvidia-ctk (NVIDIA Container Toolkit CLI 1.17.8): `--version` and `runtime configure`.

`runtime configure` edits the engine's configuration as the real command does (cmd/nvidia-ctk/runtime/configure
and pkg/config/engine/{docker,containerd} of nvidia-container-toolkit v1.17.8):
- docker: /etc/docker/daemon.json gets runtimes.<name> = {"args": [], "path": "nvidia-container-runtime"} (a
  bare name, found through PATH), default-runtime with --set-as-default, written as Go's json.MarshalIndent
  with 4 spaces.
- containerd: /etc/containerd/config.toml (version 2; CRI plugin io.containerd.grpc.v1.cri) gets a runtime copied
  from runc's (or the default runtime's) settings with options.BinaryName = /usr/bin/nvidia-container-runtime;
  --config-source=command starts from `containerd config dump` instead of the file.
Logging is logrus' text format to stderr, as without a terminal. Other subcommands are refused loudly.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tomllib
from typing import Any

import containerd
import dockerd
import gojson
import hostlib
import tomlw

VERSION = "1.17.8"
COMMIT = "f202b80a9b9d0db00d9b1d73c0128c8962c55f4d"


class CtkError(Exception):
    pass


FLAGS = {
    "dry-run": "bool", "runtime": "string", "config": "string", "executable-path": "string", "config-mode": "string",
    "config-source": "string", "oci-hook-path": "string", "nvidia-runtime-name": "string",
    "nvidia-runtime-path": "string", "runtime-path": "string", "nvidia-runtime-hook-path": "string",
    "nvidia-set-as-default": "bool", "set-as-default": "bool", "cdi.enabled": "bool", "cdi.enable": "bool",
    "enable-cdi": "bool", "help": "bool", "h": "bool",
}
ALIASES = {"runtime-path": "nvidia-runtime-path", "set-as-default": "nvidia-set-as-default",
           "cdi.enable": "cdi.enabled", "enable-cdi": "cdi.enabled", "h": "help"}


def parse_flags(args: list[str]) -> dict[str, Any]:
    """urfave/cli v2 flags: -name or --name, =value or a separate value; bools take =true/false only."""
    opts: dict[str, Any] = {"dry-run": False, "runtime": "docker", "config": "", "executable-path": "",
                            "config-mode": "", "config-source": "file", "nvidia-runtime-name": "nvidia",
                            "nvidia-runtime-path": "nvidia-container-runtime",
                            "nvidia-runtime-hook-path": "/usr/bin/nvidia-container-runtime-hook",
                            "nvidia-set-as-default": False, "cdi.enabled": False, "help": False}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise CtkError(f"unexpected argument {arg}")
        name, eq, value = arg.lstrip("-").partition("=")
        if name not in FLAGS:
            raise CtkError(f"flag provided but not defined: -{name}")
        canonical = ALIASES.get(name, name)
        if FLAGS[name] == "bool":
            if eq and value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise CtkError(f'invalid boolean value "{value}" for -{name}: parse error')
            opts[canonical] = (value.lower() in ("1", "t", "true")) if eq else True
        else:
            if not eq:
                if i >= len(args):
                    raise CtkError(f"flag needs an argument: -{name}")
                value = args[i]
                i += 1
            opts[canonical] = value
    return opts


def validate(opts: dict[str, Any]) -> None:
    if opts["config-mode"] == "oci-hook":
        raise CtkError("the botlab virtual lab does not emulate nvidia-ctk runtime configure --config-mode=oci-hook")
    if opts["config-mode"] not in ("", "config-file"):
        hostlib.log("warning", f'Ignoring unsupported config mode for {opts["runtime"]}: "{opts["config-mode"]}"')
    runtime = opts["runtime"]
    if runtime not in ("containerd", "crio", "docker"):
        raise CtkError(f"unrecognized runtime '{runtime}'")
    if runtime == "crio":
        raise CtkError("the botlab virtual lab does not emulate CRI-O (nvidia-ctk runtime configure --runtime=crio)")
    if runtime == "containerd":
        if opts["nvidia-runtime-path"] == "nvidia-container-runtime":
            opts["nvidia-runtime-path"] = "/usr/bin/nvidia-container-runtime"
        if not opts["nvidia-runtime-path"].startswith("/"):
            raise CtkError(f'the NVIDIA runtime path "{opts["nvidia-runtime-path"]}" is not an absolute path')
    if opts["executable-path"] and runtime == "docker":
        hostlib.log("warning", f'Ignoring executable-path="{opts["executable-path"]}" flag for docker')
        opts["executable-path"] = ""
    if opts["config-source"] == "command":
        if runtime == "docker":
            hostlib.log("warning", "A command Config Source is not supported for docker; using file")
            opts["config-source"] = "file"
    elif opts["config-source"] != "file":
        raise CtkError(f"unrecognized Config Source: {opts['config-source']}")
    if not opts["config"]:
        opts["config"] = {"containerd": containerd.DEFAULT_CONFIG, "docker": dockerd.DEFAULT_CONFIG}[runtime]


def write_output(path: str, text: str) -> int:
    """config.Raw(path).Write(): stdout for a dry run; an empty result removes the file."""
    if not path:
        sys.stdout.write(text + "\n")
        return len(text)
    target = hostlib.host_path(path)
    if not text:
        try:
            target.unlink()
        except FileNotFoundError:
            raise CtkError(f"unable to flush config: unable to remove empty file: remove {path}: no such file or "
                           "directory") from None
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return len(text)


def configure_docker(opts: dict[str, Any]) -> None:
    path = opts["config"]
    target = hostlib.host_path(path)
    if target.is_dir():
        raise CtkError("unable to load config for runtime docker: config file is a directory")
    config: dict[str, Any]
    if not target.exists():
        hostlib.log("info", "Config file does not exist; using empty config")
        config = {}
    else:
        hostlib.log("info", f"Loading config from {path}")
        text = target.read_text().strip()
        if not text:
            raise CtkError("unable to load config for runtime docker: EOF")
        error = gojson.syntax_error(text)
        if error:
            if error == "unexpected end of JSON input":
                error = "unexpected EOF"
            raise CtkError(f"unable to load config for runtime docker: {error}")
        loaded = json.loads(text)  # valid JSON: syntax_error found nothing
        if not isinstance(loaded, dict):
            raise CtkError(f"unable to load config for runtime docker: json: cannot unmarshal "
                           f"{gojson.go_type_name(loaded)} into Go value of type docker.Config")
        config = loaded
    runtimes = config.get("runtimes")
    if runtimes is not None and not isinstance(runtimes, dict):
        raise CtkError("unable to update config: runtimes is not a map")
    runtimes = dict(runtimes or {})
    runtimes[opts["nvidia-runtime-name"]] = {"path": opts["nvidia-runtime-path"], "args": []}
    config["runtimes"] = runtimes
    if opts["nvidia-set-as-default"]:
        config["default-runtime"] = opts["nvidia-runtime-name"]
    if opts["cdi.enabled"]:
        features = config.get("features")
        config["features"] = {**(features if isinstance(features, dict) else {}), "cdi": True}
    output = "" if opts["dry-run"] else path
    written = write_output(output, gojson.marshal_indent(config))
    finish(output, written, "docker")


def containerd_source(opts: dict[str, Any]) -> dict[str, Any]:
    if opts["config-source"] == "command":
        executable = opts["executable-path"] or "containerd"
        resolved = hostlib.which(executable, os.environ.get("PATH"))
        if resolved is None:
            raise CtkError(f"unable to load config for runtime containerd: failed to load config: failed to run "
                           f"command {executable} [config dump]: exec: \"{executable}\": executable file not found "
                           "in $PATH")
        proc = subprocess.run([executable, "config", "dump"], executable=str(hostlib.host_path(resolved)),
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CtkError(f"unable to load config for runtime containerd: failed to load config: failed to run "
                           f"command {executable} [config dump]: exit status {proc.returncode}")
        text = proc.stdout
        where = "command output"
    else:
        target = hostlib.host_path(opts["config"])
        if target.is_dir():
            raise CtkError(f"unable to load config for runtime containerd: failed to load config: config file "
                           f"{opts['config']} is a directory")
        if not target.exists():
            return {}
        text = target.read_text()
        where = opts["config"]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CtkError(f"unable to load config for runtime containerd: failed to load config: {exc} "
                       f"({where})") from None


def configure_containerd(opts: dict[str, Any]) -> None:
    config = containerd_source(opts)
    if not config:
        version = 2
    else:
        raw = config.get("version")
        if raw is None:
            version = 1
        elif isinstance(raw, int) and not isinstance(raw, bool):
            version = raw
        else:
            raise CtkError(f"unable to load config for runtime containerd: failed to parse config version: "
                           f"unsupported type for version field: {raw}")
    hostlib.log("info", f"Using config version {version}")
    plugin = {1: "cri", 2: "io.containerd.grpc.v1.cri"}.get(version, "io.containerd.cri.v1.runtime")
    hostlib.log("info", f'Using CRI runtime plugin name "{plugin}"')
    config["version"] = version
    name, path = opts["nvidia-runtime-name"], opts["nvidia-runtime-path"]
    containerd = config.setdefault("plugins", {}).setdefault(plugin, {}).setdefault("containerd", {})
    runtimes = containerd.setdefault("runtimes", {})
    default = containerd.get("default_runtime_name", "")
    candidates = ([default] if default and not default.startswith("nvidia") else []) + ["runc", "crun"]
    for candidate in candidates:
        if isinstance(runtimes.get(candidate), dict):
            runtimes[name] = copy.deepcopy(runtimes[candidate])
            break
    if not isinstance(runtimes.get(name), dict):
        hostlib.log("warning", f"could not infer options from runtimes [{' '.join(candidates)}]; using defaults")
        runtimes[name] = {"runtime_type": "io.containerd.runc.v2", "runtime_root": "", "runtime_engine": "",
                          "privileged_without_host_devices": False}
    runtimes[name].setdefault("options", {})["BinaryName"] = path
    if opts["nvidia-set-as-default"]:
        containerd["default_runtime_name"] = name
    if opts["cdi.enabled"]:
        config["plugins"][plugin]["enable_cdi"] = True
    output = "" if opts["dry-run"] else opts["config"]
    written = write_output(output, tomlw.dumps(config).rstrip("\n"))
    finish(output, written, "containerd")


def finish(output: str, written: int, runtime: str) -> None:
    if output:
        if written == 0:
            hostlib.log("info", f"Removed empty config from {output}")
        else:
            hostlib.log("info", f"Wrote updated config to {output}")
        hostlib.log("info", f"It is recommended that {runtime} daemon be restarted.")


def main(argv: list[str]) -> int:
    args = argv[1:]
    while args and args[0] in ("--debug", "-d", "--quiet", "-debug", "-quiet"):
        args = args[1:]
    try:
        if not args or args[0] in ("-h", "--help", "help"):
            print("NAME:\n   NVIDIA Container Toolkit CLI - Tools to configure the NVIDIA Container Toolkit\n\n"
                  "USAGE:\n   nvidia-ctk [global options] command [command options] [arguments...]\n\nVERSION:\n"
                  f"   {VERSION}\ncommit: {COMMIT}")
            return 0
        if args[0] in ("-v", "--version", "-version"):
            print(f"NVIDIA Container Toolkit CLI version {VERSION}\ncommit: {COMMIT}")
            return 0
        if args[0].startswith("-"):
            raise CtkError(f"flag provided but not defined: {args[0]}")
        if args[:2] != ["runtime", "configure"]:
            if args[0] not in ("runtime", "hook", "info", "cdi", "system", "config"):
                raise CtkError(f"No help topic for '{args[0]}'")
            raise CtkError(f"the botlab virtual lab does not emulate \"nvidia-ctk {' '.join(args[:2])}\"")
        opts = parse_flags(args[2:])
        if opts["help"]:
            print("NAME:\n   NVIDIA Container Toolkit CLI runtime configure - Add a runtime to the specified "
                  "container engine")
            return 0
        validate(opts)
        if opts["runtime"] == "docker":
            configure_docker(opts)
        else:
            configure_containerd(opts)
        return 0
    except CtkError as exc:
        hostlib.log("error", str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
