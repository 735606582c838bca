"""The lab's dockerd: Docker Engine 24.0.7 as Ubuntu's docker.io, without containers.

It validates its flags and /etc/docker/daemon.json as moby's cmd/dockerd and daemon/config do (the same error
texts, the same order of checks), then writes the daemon's effective state to /run/docker/lab-state.json (what
`docker info` reports and what the lab's Juju emulator reads) and runs until SIGTERM. SIGHUP reloads the
configuration file's reloadable options (runtimes, default-runtime), as dockerd does.

Deliberate differences from the real daemon, each the closest real behaviour:
- A runtime whose binary does not exist: real dockerd 24 accepts it and only fails when a container uses it
  ("error while looking up the specified runtime path: ..."). Containers never run in the lab, so dockerd
  refuses to start with that same message (prefixed "failed to start daemon: "), which is the closest real
  check and what makes a wrong nvidia runtime path visible at `systemctl restart docker`.
- --containerd pointing at no running containerd: real dockerd retries for 60 s, then fails with the message
  used here; the lab fails at once.
- The same runtime name given with --add-runtime and in daemon.json: since Docker 18.09 (moby commit 8392d09,
  `skipDuplicates`) this is *not* a conflict; the file's definition wins, as mergo merges it. Other options
  given both ways are refused with "the following directives are specified both as a flag and in the
  configuration file: ...".
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import containerd
import gojson
import hostlib

VERSION = "24.0.7"
BUILD = "24.0.7-0ubuntu2~22.04.1"
API_VERSION = "1.43"
STATE_PATH = "/run/docker/lab-state.json"
DEFAULT_CONFIG = "/etc/docker/daemon.json"
STOCK_RUNTIME = "runc"
BUILTIN_RUNTIMES = {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}}
LOG_LEVELS = ("panic", "fatal", "error", "warn", "warning", "info", "debug", "trace")

# name: (kind, shorthand, daemon.json key when it differs from the flag's name)
FLAGS: dict[str, tuple[str, str, str]] = {
    "add-runtime": ("runtime", "", "runtimes"),
    "allow-nondistributable-artifacts": ("list", "", "allow-nondistributable-artifacts"),
    "api-cors-header": ("string", "", ""),
    "authorization-plugin": ("list", "", "authorization-plugins"),
    "bip": ("string", "", ""),
    "bridge": ("string", "b", ""),
    "cgroup-parent": ("string", "", ""),
    "config-file": ("string", "", ""),
    "containerd": ("string", "", ""),
    "containerd-namespace": ("string", "", ""),
    "containerd-plugins-namespace": ("string", "", ""),
    "cpu-rt-period": ("int", "", ""),
    "cpu-rt-runtime": ("int", "", ""),
    "cri-containerd": ("bool", "", ""),
    "data-root": ("string", "", ""),
    "debug": ("bool", "D", ""),
    "default-address-pool": ("list", "", "default-address-pools"),
    "default-cgroupns-mode": ("string", "", ""),
    "default-gateway": ("string", "", ""),
    "default-gateway-v6": ("string", "", ""),
    "default-ipc-mode": ("string", "", ""),
    "default-network-opt": ("map", "", "default-network-opts"),
    "default-runtime": ("string", "", ""),
    "default-shm-size": ("string", "", ""),
    "default-ulimit": ("map", "", "default-ulimits"),
    "dns": ("list", "", ""),
    "dns-opt": ("list", "", "dns-opts"),
    "dns-search": ("list", "", ""),
    "exec-opt": ("list", "", "exec-opts"),
    "exec-root": ("string", "", ""),
    "experimental": ("bool", "", ""),
    "fixed-cidr": ("string", "", ""),
    "fixed-cidr-v6": ("string", "", ""),
    "group": ("string", "G", ""),
    "help": ("bool", "h", ""),
    "host": ("list", "H", "hosts"),
    "host-gateway-ip": ("string", "", ""),
    "http-proxy": ("string", "", ""),
    "https-proxy": ("string", "", ""),
    "icc": ("bool", "", ""),
    "init": ("bool", "", ""),
    "init-path": ("string", "", ""),
    "insecure-registry": ("list", "", "insecure-registries"),
    "ip": ("string", "", ""),
    "ip-forward": ("bool", "", ""),
    "ip-masq": ("bool", "", ""),
    "ip6tables": ("bool", "", ""),
    "iptables": ("bool", "", ""),
    "ipv6": ("bool", "", ""),
    "label": ("list", "", "labels"),
    "live-restore": ("bool", "", ""),
    "log-driver": ("string", "", ""),
    "log-level": ("string", "l", ""),
    "log-opt": ("map", "", "log-opts"),
    "max-concurrent-downloads": ("int", "", ""),
    "max-concurrent-uploads": ("int", "", ""),
    "max-download-attempts": ("int", "", ""),
    "metrics-addr": ("string", "", ""),
    "mtu": ("int", "", ""),
    "network-control-plane-mtu": ("int", "", ""),
    "network-diagnostic-port": ("int", "", ""),
    "no-new-privileges": ("bool", "", ""),
    "no-proxy": ("string", "", ""),
    "node-generic-resource": ("list", "", "node-generic-resources"),
    "oom-score-adjust": ("int", "", ""),
    "pidfile": ("string", "p", ""),
    "raw-logs": ("bool", "", ""),
    "registry-mirror": ("list", "", "registry-mirrors"),
    "restart": ("bool", "r", ""),
    "rootless": ("bool", "", ""),
    "seccomp-profile": ("string", "", ""),
    "selinux-enabled": ("bool", "", ""),
    "shutdown-timeout": ("int", "", ""),
    "storage-driver": ("string", "s", ""),
    "storage-opt": ("list", "", "storage-opts"),
    "swarm-default-advertise-addr": ("string", "", ""),
    "tls": ("bool", "", ""),
    "tlscacert": ("string", "", ""),
    "tlscert": ("string", "", ""),
    "tlskey": ("string", "", ""),
    "tlsverify": ("bool", "", ""),
    "userland-proxy": ("bool", "", ""),
    "userland-proxy-path": ("string", "", ""),
    "userns-remap": ("string", "", ""),
    "validate": ("bool", "", ""),
    "version": ("bool", "v", ""),
}
FLAT_OPTIONS = {"cluster-store-opts", "default-network-opts", "log-opts", "runtimes", "default-ulimits", "features",
                "builder"}
SKIP_VALIDATE = {"features", "builder", "deprecated-key-path"}
SKIP_DUPLICATES = {"runtimes"}
# daemon.json keys whose JSON type json.Unmarshal checks against the Config struct (Go type, JSON kind).
FILE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "runtimes": ("map[string]types.Runtime", ("object",)),
    "default-runtime": ("string", ("string",)),
    "hosts": ("[]string", ("array",)),
    "exec-opts": ("[]string", ("array",)),
    "labels": ("[]string", ("array",)),
    "log-level": ("string", ("string",)),
    "data-root": ("string", ("string",)),
    "exec-root": ("string", ("string",)),
    "storage-driver": ("string", ("string",)),
    "containerd": ("string", ("string",)),
    "debug": ("bool", ("bool",)),
    "live-restore": ("bool", ("bool",)),
    "experimental": ("bool", ("bool",)),
    "iptables": ("bool", ("bool",)),
    "mtu": ("int", ("number",)),
    "features": ("map[string]bool", ("object",)),
    "log-opts": ("map[string]string", ("object",)),
    "registry-mirrors": ("[]string", ("array",)),
    "insecure-registries": ("[]string", ("array",)),
    "dns": ("[]string", ("array",)),
    "log-driver": ("string", ("string",)),
    "max-concurrent-downloads": ("int", ("number",)),
    "shutdown-timeout": ("int", ("number",)),
}


class DaemonError(Exception):
    """An error dockerd prints ("%s\\n" to stderr) before exiting 1."""


class FlagError(DaemonError):
    def __init__(self, message: str) -> None:
        super().__init__(f"Status: {message}\nSee 'dockerd --help'., Code: 125")


def _shorthand(letter: str) -> str | None:
    for name, (_kind, short, _key) in FLAGS.items():
        if short == letter:
            return name
    return None


def _display(name: str) -> str:
    short = FLAGS[name][1]
    return f"-{short}, --{name}" if short else f"--{name}"


def _next_argument(argv: list[str], i: int, flag: str) -> tuple[str, int]:
    """A flag's value from the next argument, argv[i], and the index after it; `flag` names it when there is none."""
    if i < len(argv):
        return argv[i], i + 1
    raise FlagError(f"flag needs an argument: {flag}")


def parse_flags(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """pflag's parsing: {flag: value} for the flags given (lists accumulate), in order of appearance."""
    given: dict[str, Any] = {}
    args: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args += argv[i:]
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in FLAGS:
                raise FlagError(f"unknown flag: --{name}")
            kind = FLAGS[name][0]
            if not eq:
                if kind == "bool":
                    value = "true"
                else:
                    value, i = _next_argument(argv, i, f"--{name}")
            _set_flag(given, name, value)
        elif arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                found = _shorthand(letter)
                if found is None:
                    raise FlagError(f"unknown shorthand flag: '{letter}' in {arg}")
                name = found
                if FLAGS[name][0] == "bool":
                    if letters.startswith("="):
                        _set_flag(given, name, letters[1:])
                        letters = ""
                    else:
                        _set_flag(given, name, "true")
                else:
                    if letters:
                        value = letters[1:] if letters.startswith("=") else letters
                        letters = ""
                    else:
                        value, i = _next_argument(argv, i, f"'{letter}' in {arg}")
                    _set_flag(given, name, value)
        else:
            args.append(arg)
    return given, args


def _set_flag(given: dict[str, Any], name: str, value: str) -> None:
    kind = FLAGS[name][0]
    try:
        if kind == "bool":
            if value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
            given[name] = value.lower() in ("1", "t", "true")
        elif kind == "int":
            if not value.lstrip("+-").isdigit():
                raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax')
            given[name] = int(value)
        elif kind == "list":
            given.setdefault(name, []).append(value)
        elif kind == "map":
            given.setdefault(name, {})
            key, _, val = value.partition("=")
            given[name][key] = val
        elif kind == "runtime":
            runtimes = given.setdefault(name, {})
            key, eq, path = value.partition("=")
            key, path = key.strip(), path.strip()
            if not eq or not key or not path:
                raise ValueError(f"invalid runtime argument: {value}")
            key = key.lower()
            if key == STOCK_RUNTIME:
                raise ValueError(f"runtime name '{STOCK_RUNTIME}' is reserved")
            if key in runtimes:
                raise ValueError(f"runtime '{key}' was already defined")
            runtimes[key] = {"path": path}
        else:
            given[name] = value
    except ValueError as exc:
        raise FlagError(f'invalid argument "{value}" for "{_display(name)}" flag: {exc}') from None


def flag_string(name: str, value: Any) -> str:
    """pflag's Value.String() of a flag as the conflict message prints it."""
    kind = FLAGS[name][0]
    if kind in ("runtime", "list"):  # a runtime flag's value is a map: its names
        return "[" + " ".join(value) + "]"
    if kind == "map":
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def json_key(name: str) -> str:
    return FLAGS[name][2] or name


def load_file_config(path: str, given: dict[str, Any]) -> dict[str, Any] | None:
    """getConflictFreeConfiguration(): the file's settings; None when the file does not exist."""
    try:
        raw = hostlib.host_path(path).read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise DaemonError(f"read {path}: is a directory") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DaemonError(f"failed to decode configuration JSON at offset {exc.start}: encoding: "
                          "invalid UTF-8") from None
    text = text.strip()
    if not text:
        return {}
    try:
        data = gojson.loads(text)
    except ValueError as exc:
        raise DaemonError(str(exc)) from None
    if not isinstance(data, dict):
        raise DaemonError(f"json: cannot unmarshal {gojson.go_type_name(data)} into Go value of type "
                          "map[string]interface {}")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in FLAT_OPTIONS:
            flat.update(value)
        else:
            flat[key] = value
    known = {name for name in FLAGS} | {json_key(name) for name in FLAGS}
    unknown = sorted(key for key in flat if key not in known and key not in SKIP_VALIDATE)
    if unknown:
        raise DaemonError(f"the following directives don't match any configuration option: {', '.join(unknown)}")
    conflicts = []
    for name in sorted(given):
        key = json_key(name)
        if key in flat and key not in SKIP_DUPLICATES:
            conflicts.append(f"{key}: (from flag: {flag_string(name, given[name])}, from file: "
                             f"{gojson.go_v(flat[key])})")
    if conflicts:
        raise DaemonError("the following directives are specified both as a flag and in the configuration file: "
                          + ", ".join(conflicts))
    _check_types(data)
    return data


def _check_types(data: dict[str, Any]) -> None:
    """json.Unmarshal into the Config struct: a value of the wrong JSON type is an error."""
    for key, (go_type, kinds) in FILE_TYPES.items():
        if key not in data or data[key] is None:
            continue
        kind = gojson.go_type_name(data[key])
        if kind not in kinds:
            raise DaemonError(f"json: cannot unmarshal {kind} into Go struct field Config.{key} of type {go_type}")
        if go_type == "[]string":
            for item in data[key]:
                if not isinstance(item, str):
                    raise DaemonError(f"json: cannot unmarshal {gojson.go_type_name(item)} into Go struct field "
                                      f"Config.{key} of type string")
    for runtime in (data.get("runtimes") or {}).values():
        if not isinstance(runtime, dict):
            raise DaemonError(f"json: cannot unmarshal {gojson.go_type_name(runtime)} into Go struct field "
                              f"Config.runtimes of type types.Runtime")
        for field, go_type, kind in (("path", "string", "string"), ("runtimeType", "string", "string"),
                                     ("runtimeArgs", "[]string", "array")):
            if field in runtime and runtime[field] is not None and gojson.go_type_name(runtime[field]) != kind:
                raise DaemonError(f"json: cannot unmarshal {gojson.go_type_name(runtime[field])} into Go struct "
                                  f"field Runtime.runtimes.{field} of type {go_type}")


def validate(config: dict[str, Any]) -> None:
    """config.Validate() of moby 24 (the checks that matter here)."""
    level = config.get("log-level")
    if level and level.lower() not in LOG_LEVELS:
        raise DaemonError(f"invalid logging level: {level}")
    for label in config.get("labels") or []:
        if "=" not in label:
            raise DaemonError(f"bad attribute format: {label}")
    mtu = config.get("mtu")
    if isinstance(mtu, (int, float)) and mtu < 0:
        raise DaemonError(f"invalid default MTU: {int(mtu)}")
    runtimes = config.get("runtimes") or {}
    if STOCK_RUNTIME in runtimes:
        raise DaemonError(f"runtime name '{STOCK_RUNTIME}' is reserved")
    default = config.get("default-runtime")
    if default and default not in BUILTIN_RUNTIMES and default not in runtimes and not _permissible_c8d(default):
        raise DaemonError(f"specified default runtime '{default}' does not exist")
    for host in config.get("hosts") or []:
        if not _valid_host(host):
            raise DaemonError(f"Invalid bind address format: {host}")


def _permissible_c8d(name: str) -> bool:
    if name.startswith("/") or "/" in name or "." not in name:
        return False
    parts = name.split(".")
    return len(parts) >= 4 and parts[0] == "io" and all(parts)


def _valid_host(host: str) -> bool:
    host = host.strip()
    if host.startswith("fd://") or host.startswith("unix://") or host.startswith("npipe://"):
        return True
    if host.startswith("tcp://") or host.startswith("ssh://"):
        return len(host.split("://", 1)[1]) > 0
    return False


def load_config(given: dict[str, Any]) -> dict[str, Any]:
    """loadDaemonCliConfig(): flags merged with daemon.json, validated."""
    config_file = given.get("config-file", DEFAULT_CONFIG)
    flag_config = {json_key(name): value for name, value in given.items()}
    try:
        file_config = load_file_config(config_file, given)
    except DaemonError as exc:
        raise DaemonError(f"unable to configure the Docker daemon with file {config_file}: {exc}") from None
    if file_config is None:
        if "config-file" in given:
            raise DaemonError(f"unable to configure the Docker daemon with file {config_file}: open {config_file}: "
                              "no such file or directory")
        config = dict(flag_config)
    else:
        config = dict(file_config)
        for key, value in flag_config.items():
            if key == "runtimes":
                merged = dict(value)
                merged.update(config.get("runtimes") or {})
                config["runtimes"] = merged
            elif key not in config or config[key] in (None, "", [], {}):
                config[key] = value
    # Validated once, with the default runtime set: runc is built in, so setting it changes no check's outcome.
    config.setdefault("default-runtime", STOCK_RUNTIME)
    try:
        validate(config)
    except DaemonError as exc:
        if file_config is None:
            raise
        raise DaemonError(f"unable to configure the Docker daemon with file {config_file}: merged configuration "
                          f"validation from file and command line flags failed: {exc}") from None
    config["_file"] = file_config
    config["_config_file"] = config_file
    return config


def effective_runtimes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The runtimes `docker info` lists: configured ones plus the built-in runc and io.containerd.runc.v2."""
    runtimes: dict[str, dict[str, Any]] = {}
    for name, runtime in (config.get("runtimes") or {}).items():
        entry: dict[str, Any] = {}
        if runtime.get("path"):
            entry["path"] = runtime["path"]
        if runtime.get("runtimeArgs"):
            entry["runtimeArgs"] = list(runtime["runtimeArgs"])
        if runtime.get("runtimeType"):
            entry["runtimeType"] = runtime["runtimeType"]
        if runtime.get("options"):
            entry["options"] = runtime["options"]
        runtimes[name] = entry
    runtimes.update({name: dict(value) for name, value in BUILTIN_RUNTIMES.items()})
    return dict(sorted(runtimes.items()))


def check_runtimes(config: dict[str, Any]) -> None:
    """setupRuntimes() of moby's daemon plus the binary look-up (see the module docstring)."""
    for name, runtime in sorted((config.get("runtimes") or {}).items()):
        path, kind = runtime.get("path") or "", runtime.get("runtimeType") or ""
        if not path and not kind:
            raise DaemonError(f"failed to start daemon: runtime {name}: either a runtimeType or a path must be "
                              "configured")
        if path and kind:
            raise DaemonError(f"failed to start daemon: runtime {name}: cannot configure both path and runtimeType "
                              "for the same runtime")
        if path and runtime.get("options"):
            raise DaemonError(f"failed to start daemon: runtime {name}: options cannot be used with a path runtime")
        if not path:
            continue
        if hostlib.which(path, os.environ.get("PATH")) is None:
            if "/" in path:
                reason = f"stat {path}: no such file or directory"
                if hostlib.host_path(path).exists():
                    reason = f"stat {path}: permission denied"
            else:
                reason = "executable file not found in $PATH"
            raise DaemonError(f'failed to start daemon: error while looking up the specified runtime path: exec: '
                              f'"{path}": {reason}')


def check_listeners(config: dict[str, Any]) -> list[str]:
    hosts = list(config.get("hosts") or []) or ["unix:///var/run/docker.sock"]
    for host in hosts:
        if host.startswith("fd://") and not os.environ.get("LISTEN_FDS"):
            raise DaemonError("failed to load listeners: no sockets found via socket activation: make sure the "
                              "service was started by systemd")
    return hosts


def check_containerd(config: dict[str, Any]) -> None:
    address = config.get("containerd")
    if not address:
        hostlib.log("info", "containerd not running, starting managed containerd")
        return
    state = hostlib.live_state(containerd.STATE_PATH)
    if state is None or state.get("address") != address:
        raise DaemonError(f'failed to start daemon: failed to dial "{address}": failed to dial "{address}": '
                          "context deadline exceeded")


def cgroup_driver(config: dict[str, Any]) -> str:
    driver = "systemd"
    for opt in config.get("exec-opts") or []:
        key, _, value = opt.partition("=")
        if key.strip().lower() == "native.cgroupdriver":
            if value.strip() not in ("cgroupfs", "systemd"):
                raise DaemonError(f"failed to start daemon: native.cgroupdriver option {value.strip()} not supported")
            driver = value.strip()
    return driver


def write_state(config: dict[str, Any], argv: list[str], hosts: list[str], driver: str) -> None:
    state = {
        "pid": os.getpid(),
        "pid_start": hostlib.proc_start_ticks(os.getpid()),
        "started_at": time.time(),
        "version": VERSION,
        "api_version": API_VERSION,
        "build": BUILD,
        "argv": argv,
        "config_file": config["_config_file"],
        "config_file_content": config["_file"],
        "hosts": hosts,
        "containerd": config.get("containerd") or None,
        "data_root": config.get("data-root") or "/var/lib/docker",
        "exec_root": config.get("exec-root") or "/var/run/docker",
        "debug": bool(config.get("debug")),
        "log_level": config.get("log-level") or "info",
        "runtimes": effective_runtimes(config),
        "default_runtime": config.get("default-runtime") or STOCK_RUNTIME,
        "exec_opts": list(config.get("exec-opts") or []),
        "cgroup_driver": driver,
        "storage_driver": config.get("storage-driver") or "overlay2",
        "live_restore": bool(config.get("live-restore")),
        "labels": list(config.get("labels") or []),
        "features": dict(config.get("features") or {}),
    }
    hostlib.write_json(STATE_PATH, state)


def main(argv: list[str]) -> int:
    try:
        given, args = parse_flags(argv[1:])
        if given.get("version"):
            print(f"Docker version {VERSION}, build {BUILD}")
            return 0
        if given.get("help"):
            print("Usage:\tdockerd [OPTIONS]\n\nA self-sufficient runtime for containers.")
            return 0
        if args:
            raise DaemonError("\"dockerd\" accepts no argument(s).\nSee 'dockerd --help'.\n\nUsage:  dockerd "
                              "[OPTIONS]\n\nA self-sufficient runtime for containers.")
        return run(argv, given)
    except DaemonError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 1


def run(argv: list[str], given: dict[str, Any]) -> int:
    config = load_config(given)
    if given.get("validate"):
        print("configuration OK", file=sys.stderr)
        return 0
    hostlib.log("info", "Starting up")
    if os.environ.get("BOTLAB_HOST_ROOT") is None and os.geteuid() != 0:
        raise DaemonError("dockerd needs to be started with root privileges. To run dockerd in rootless mode as an "
                          "unprivileged user, see https://docs.docker.com/go/rootless/")
    data_root = config.get("data-root") or "/var/lib/docker"
    hostlib.host_path(data_root).mkdir(parents=True, exist_ok=True)
    pidfile = config.get("pidfile") or "/var/run/docker.pid"
    old = hostlib.read_json(pidfile) if hostlib.host_path(pidfile).exists() else None
    if isinstance(old, int) and old != os.getpid() and hostlib.same_process(old, None):
        raise DaemonError(f"failed to start daemon, ensure docker is not running or delete {pidfile}: process with "
                          f"PID {old} is still running")
    hostlib.write_atomic(pidfile, f"{os.getpid()}")
    try:
        hosts = check_listeners(config)
        check_containerd(config)
        driver = cgroup_driver(config)
        check_runtimes(config)
    except DaemonError:
        hostlib.host_path(pidfile).unlink(missing_ok=True)
        raise
    hostlib.log("info", "Loading containers: start.")
    hostlib.log("info", "Loading containers: done.")
    write_state(config, argv, hosts, driver)
    hostlib.log("info", "Docker daemon", commit=BUILD, graphdriver=config.get("storage-driver") or "overlay2",
                version=VERSION)
    hostlib.log("info", "Daemon has completed initialization")

    def reload(signum: int, frame: Any) -> None:
        try:
            fresh = load_config(given)
        except DaemonError as exc:
            hostlib.log("error", f"Error reconfiguring the daemon: {exc}")
            return
        state = hostlib.read_json(STATE_PATH) or {}
        state.update(runtimes=effective_runtimes(fresh), default_runtime=fresh.get("default-runtime"),
                     config_file_content=fresh["_file"])
        hostlib.write_json(STATE_PATH, state)
        hostlib.log("info", "Reloaded configuration")

    def cleanup() -> None:
        hostlib.log("info", "Processing signal 'terminated'")
        hostlib.remove_own_state(STATE_PATH)
        hostlib.host_path(pidfile).unlink(missing_ok=True)
        hostlib.log("info", "Daemon shutdown complete")

    signal.signal(signal.SIGHUP, reload)
    hostlib.block_stop_signals()
    for host in hosts:
        hostlib.log("info", f"API listen on {'/run/docker.sock' if host.startswith('fd') else host.split('://', 1)[1]}")
    hostlib.notify_ready()
    hostlib.serve_until_stopped(cleanup)
    return 0  # not reached: serve_until_stopped() exits


if __name__ == "__main__":
    sys.exit(main(sys.argv))
