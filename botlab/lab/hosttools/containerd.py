"""The lab's containerd (1.7.12 as Ubuntu ships it): the daemon, `config default`, `config dump`, `--version`.

Configuration loading follows containerd 1.7's services/server/config: the main file (/etc/containerd/config.toml,
or -c/--config) is read only if it exists or was named; `imports` are followed breadth-first, each import
resolved relative to the directory of the file naming it, globs expanded (sorted), files loaded once. Files merge
as mergeConfig() does: plain values override when set, lists append, and each `[plugins."<uri>"]` section of a
later file *replaces* the whole section of earlier ones (so a drop-in that adds a runtime must carry the CRI
section it wants in full). A plugin's section is then decoded onto the plugin's defaults as go-toml v1 does:
tables of structs merge, maps (e.g. `containerd.runtimes`, a runtime's `options`) are replaced. The CRI plugin
then validates as containerd's ValidatePluginConfig(); when that fails, containerd still runs without CRI (it
logs "failed to load plugin"), unless the plugin is in `required_plugins`.

Differences: TOML syntax errors carry Python's tomllib wording within go-toml's "(line, col): ..." shape; unknown
keys inside known plugin sections are kept in `config dump` (containerd drops them); only the main plugins'
defaults are modelled.
"""

from __future__ import annotations

import copy
import glob
import os
import re
import sys
import time
import tomllib
from typing import Any

import hostlib
import tomlw

VERSION = "1.7.12"
PACKAGE = "github.com/containerd/containerd"
REVISION = ""
DEFAULT_CONFIG = "/etc/containerd/config.toml"
STATE_PATH = "/run/containerd/lab-state.json"
CRI = "io.containerd.grpc.v1.cri"


class ContainerdError(Exception):
    pass


def zero_runtime() -> dict[str, Any]:
    return {"base_runtime_spec": "", "cni_conf_dir": "", "cni_max_conf_num": 0, "container_annotations": [],
            "pod_annotations": [], "privileged_without_host_devices": False,
            "privileged_without_host_devices_all_devices_allowed": False, "runtime_engine": "", "runtime_path": "",
            "runtime_root": "", "runtime_type": "", "sandbox_mode": "", "snapshotter": ""}


def runc_options() -> dict[str, Any]:
    return {"BinaryName": "", "CriuImagePath": "", "CriuPath": "", "CriuWorkPath": "", "IoGid": 0, "IoUid": 0,
            "NoNewKeyring": False, "NoPivotRoot": False, "Root": "", "ShimCgroup": "", "SystemdCgroup": False}


def cri_default() -> dict[str, Any]:
    runc = zero_runtime()
    runc.update(runtime_type="io.containerd.runc.v2", sandbox_mode="podsandbox", options=runc_options())
    return {
        "cdi_spec_dirs": ["/etc/cdi", "/var/run/cdi"], "device_ownership_from_security_context": False,
        "disable_apparmor": False, "disable_cgroup": False, "disable_hugetlb_controller": True,
        "disable_proc_mount": False, "disable_tcp_service": True, "drain_exec_sync_io_timeout": "0s",
        "enable_cdi": False, "enable_selinux": False, "enable_tls_streaming": False,
        "enable_unprivileged_icmp": False, "enable_unprivileged_ports": False, "ignore_image_defined_volumes": False,
        "image_pull_progress_timeout": "5m0s", "max_concurrent_downloads": 3, "max_container_log_line_size": 16384,
        "netns_mounts_under_state_dir": False, "restrict_oom_score_adj": False,
        "sandbox_image": "registry.k8s.io/pause:3.8", "selinux_category_range": 1024, "stats_collect_period": 10,
        "stream_idle_timeout": "4h0m0s", "stream_server_address": "127.0.0.1", "stream_server_port": "0",
        "systemd_cgroup": False, "tolerate_missing_hugetlb_controller": True, "unset_seccomp_profile": "",
        "cni": {"bin_dir": "/opt/cni/bin", "conf_dir": "/etc/cni/net.d", "conf_template": "", "ip_pref": "",
                "max_conf_num": 1, "setup_serially": False},
        "containerd": {
            "default_runtime_name": "runc", "disable_snapshot_annotations": True, "discard_unpacked_layers": False,
            "ignore_blockio_not_enabled_errors": False, "ignore_rdt_not_enabled_errors": False, "no_pivot": False,
            "snapshotter": "overlayfs", "default_runtime": zero_runtime(), "untrusted_workload_runtime": zero_runtime(),
            "runtimes": {"runc": runc},
        },
        "image_decryption": {"key_model": "node"},
        "registry": {"config_path": "", "auths": {}, "configs": {}, "headers": {}, "mirrors": {}},
        "x509_key_pair_streaming": {"tls_cert_file": "", "tls_key_file": ""},
    }


def plugin_defaults() -> dict[str, dict[str, Any]]:
    return {
        "io.containerd.gc.v1.scheduler": {"deletion_threshold": 0, "mutation_threshold": 100, "pause_threshold": 0.02,
                                          "schedule_delay": "0s", "startup_delay": "100ms"},
        CRI: cri_default(),
        "io.containerd.internal.v1.opt": {"path": "/opt/containerd"},
        "io.containerd.internal.v1.restart": {"interval": "10s"},
        "io.containerd.internal.v1.tracing": {"sampling_ratio": 1.0, "service_name": "containerd"},
        "io.containerd.metadata.v1.bolt": {"content_sharing_policy": "shared"},
        "io.containerd.monitor.v1.cgroups": {"no_prometheus": False},
        "io.containerd.nri.v1.nri": {"disable": True, "disable_connections": False,
                                     "plugin_config_path": "/etc/nri/conf.d", "plugin_path": "/opt/nri/plugins",
                                     "plugin_registration_timeout": "5s", "plugin_request_timeout": "2s",
                                     "socket_path": "/var/run/nri/nri.sock"},
        "io.containerd.runtime.v1.linux": {"no_shim": False, "runtime": "runc", "runtime_root": "",
                                           "shim": "containerd-shim", "shim_debug": False},
        "io.containerd.runtime.v2.task": {"platforms": ["linux/amd64"], "sched_core": False},
        "io.containerd.service.v1.diff-service": {"default": ["walking"]},
        "io.containerd.service.v1.tasks-service": {"blockio_config_file": "", "rdt_config_file": ""},
        "io.containerd.snapshotter.v1.overlayfs": {"mount_options": [], "root_path": "", "sync_remove": False,
                                                   "upperdir_label": False},
        "io.containerd.transfer.v1.local": {"config_path": "", "max_concurrent_downloads": 3,
                                            "max_concurrent_uploaded_layers": 3},
    }


# Paths (inside a plugin's section) that are Go maps: go-toml replaces them instead of merging into defaults.
MAP_PATHS = {(CRI, "containerd", "runtimes"), (CRI, "registry", "mirrors"), (CRI, "registry", "configs"),
             (CRI, "registry", "auths"), (CRI, "registry", "headers")}
RUNTIME_SECTIONS = {(CRI, "containerd", "default_runtime"), (CRI, "containerd", "untrusted_workload_runtime")}


def base_config() -> dict[str, Any]:
    """platformAgnosticDefaultConfig() of containerd 1.7."""
    decryption = ["--decryption-keys-path", "/etc/containerd/ocicrypt/keys"]
    env = ["OCICRYPT_KEYPROVIDER_CONFIG=/etc/containerd/ocicrypt/ocicrypt_keyprovider.conf"]
    return {
        "version": 1, "root": "/var/lib/containerd", "state": "/run/containerd", "temp": "", "plugin_dir": "",
        "oom_score": 0, "disabled_plugins": [], "required_plugins": [], "imports": [],
        "grpc": {"address": "/run/containerd/containerd.sock", "tcp_address": "", "tcp_tls_ca": "",
                 "tcp_tls_cert": "", "tcp_tls_key": "", "uid": 0, "gid": 0, "max_recv_message_size": 16777216,
                 "max_send_message_size": 16777216},
        "ttrpc": {"address": "", "uid": 0, "gid": 0},
        "debug": {"address": "", "uid": 0, "gid": 0, "level": "", "format": ""},
        "metrics": {"address": "", "grpc_histogram": False},
        "cgroup": {"path": ""},
        "plugins": {}, "proxy_plugins": {}, "timeouts": {},
        "stream_processors": {
            "io.containerd.ocicrypt.decoder.v1.tar": {
                "accepts": ["application/vnd.oci.image.layer.v1.tar+encrypted"], "args": decryption, "env": env,
                "path": "ctd-decoder", "returns": "application/vnd.oci.image.layer.v1.tar"},
            "io.containerd.ocicrypt.decoder.v1.tar.gzip": {
                "accepts": ["application/vnd.oci.image.layer.v1.tar+gzip+encrypted"], "args": decryption,
                "env": env, "path": "ctd-decoder", "returns": "application/vnd.oci.image.layer.v1.tar+gzip"},
        },
    }


TIMEOUTS = {"io.containerd.timeout.bolt.open": "0s", "io.containerd.timeout.metrics.shimstats": "2s",
            "io.containerd.timeout.shim.cleanup": "5s", "io.containerd.timeout.shim.load": "5s",
            "io.containerd.timeout.shim.shutdown": "3s", "io.containerd.timeout.task.state": "2s"}
REPLACED_MAPS = ("plugins", "proxy_plugins", "timeouts", "stream_processors")
APPENDED_LISTS = ("disabled_plugins", "required_plugins", "imports")


# --- loading -----------------------------------------------------------------------------------------------------

def _position(text: str, name: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(name)}\s*=", line):
            return number, len(line) - len(line.lstrip()) + 1
    return 1, 1


def load_file(path: str) -> dict[str, Any]:
    """loadConfigFile(): parse one TOML file, with containerd's errors."""
    try:
        text = hostlib.host_path(path).read_text()
    except FileNotFoundError:
        raise ContainerdError(f"failed to load TOML: {path}: open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise ContainerdError(f"failed to load TOML: {path}: read {path}: is a directory") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if match:
            message = f"({match.group(1)}, {match.group(2)}): {message[:match.start()]}"
        elif "(at end of document)" in message:
            lines = text.splitlines() or [""]
            message = f"({len(lines)}, {len(lines[-1]) + 1}): {message.replace(' (at end of document)', '')}"
        raise ContainerdError(f"failed to load TOML: {path}: {message}") from None
    for name, expected in (("version", int), ("root", str), ("state", str), ("oom_score", int)):
        if name in data and (not isinstance(data[name], expected) or isinstance(data[name], bool)):
            line, col = _position(text, name)
            kind = {str: "string", int: "int64", bool: "bool", float: "float64"}.get(type(data[name]), "[]interface {}")
            raise ContainerdError(f"failed to unmarshal TOML: ({line}, {col}): Can't convert {data[name]}({kind}) to "
                                  f"{'int' if expected is int else 'string'}")
    for name in APPENDED_LISTS:
        if name in data and not (isinstance(data[name], list) and all(isinstance(v, str) for v in data[name])):
            line, col = _position(text, name)
            raise ContainerdError(f"failed to unmarshal TOML: ({line}, {col}): Can't convert {data[name]} to []string")
    return data


def resolve_imports(parent: str, imports: list[str]) -> list[str]:
    """resolveImports(): relative to the parent's directory; globs expanded."""
    out: list[str] = []
    for entry in imports:
        path = os.path.normpath(entry)
        if not path.startswith("/"):
            path = os.path.normpath(os.path.join(os.path.dirname(parent), path))
        if "*" in path:
            root = str(hostlib.host_path("/")).rstrip("/")
            matches = sorted(glob.glob(str(hostlib.host_path(path))))
            out += ["/" + m[len(root):].lstrip("/") if root else m for m in matches]
        else:
            out.append(path)
    return out


def merge(to: dict[str, Any], frm: dict[str, Any]) -> None:
    """mergeConfig(): mergo.Merge(WithOverride, WithAppendSlice), then whole plugin sections replaced."""
    for name, item in frm.items():
        if name in REPLACED_MAPS:
            if isinstance(item, dict):
                to.setdefault(name, {}).update(copy.deepcopy(item))
        elif name in APPENDED_LISTS:
            to[name] = list(to.get(name, [])) + list(item)
        elif isinstance(item, dict) and isinstance(to.get(name), dict):
            for field, value in item.items():
                if value not in ("", 0, False, None, [], {}):
                    to[name][field] = copy.deepcopy(value)
        elif item not in ("", 0, None, [], {}) or name not in to:
            to[name] = copy.deepcopy(item)


def load_config(path: str) -> tuple[dict[str, Any], list[str]]:
    """LoadConfig(): the merged configuration and the files it came from, in load order."""
    config = base_config()
    loaded: list[str] = []
    pending = [path]
    while pending:
        current, pending = pending[0], pending[1:]
        if current in loaded:
            continue
        data = load_file(current)
        merge(config, data)
        loaded.append(current)
        pending += resolve_imports(current, list(data.get("imports", [])))
    config["imports"] = loaded
    version = config.get("version", 1)
    if version > 2:
        hostlib.log("error", f"containerd config version `{version}` is not supported, the max version is `2`, use "
                             "`containerd config default` to generate a new config or manually revert to version `2`")
        raise ContainerdError(f"failed to load TOML from {path}: unsupported config version `{version}`")
    if version >= 2:
        for kind, names in (("disabled plugin", config["disabled_plugins"]),
                            ("required plugin", config["required_plugins"]), ("plugin key", config["plugins"])):
            for name in names:
                if not name.startswith("io.containerd.") or len(name.split(".", 3)) < 4:
                    raise ContainerdError(f"failed to load TOML from {path}: invalid {kind} URI \"{name}\" expect "
                                          "io.containerd.x.vx")
    return config, loaded


def decode_plugin(uri: str, config: dict[str, Any]) -> dict[str, Any]:
    """Config.Decode(): the plugin's section (by URI, or by ID in a version 1 config) over its defaults."""
    defaults = plugin_defaults()[uri]
    key = uri if config.get("version", 1) >= 2 else uri.rsplit(".", 1)[-1]
    section = config["plugins"].get(key)
    if not isinstance(section, dict):
        return defaults
    return _decode(defaults, section, (uri,))


def _decode(default: dict[str, Any], tree: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    result = copy.deepcopy(default)
    for name, item in tree.items():
        here = (*path, name)
        if here in MAP_PATHS and isinstance(item, dict):
            if here == (CRI, "containerd", "runtimes"):
                result[name] = {rt: _decode(zero_runtime(), spec, (*here, "*")) if isinstance(spec, dict) else spec
                                for rt, spec in item.items()}
            else:
                result[name] = copy.deepcopy(item)
        elif here in RUNTIME_SECTIONS and isinstance(item, dict):
            result[name] = _decode(zero_runtime(), item, (*here, "*"))
        elif isinstance(item, dict) and isinstance(result.get(name), dict) and name != "options":
            result[name] = _decode(result[name], item, here)
        else:
            result[name] = copy.deepcopy(item)
    return result


def validate_cri(cri: dict[str, Any]) -> str | None:
    """ValidatePluginConfig() of the CRI plugin (the runtime checks): an error text, or None."""
    ctd = cri.get("containerd", {})
    runtimes = ctd.get("runtimes") or {}
    if ctd.get("untrusted_workload_runtime", {}).get("runtime_type") and "untrusted" in runtimes:
        return "conflicting definitions: configuration includes both `untrusted_workload_runtime` and " \
               '`runtimes["untrusted"]`'
    name = ctd.get("default_runtime_name", "")
    if ctd.get("default_runtime", {}).get("runtime_type"):
        name = "default"
        runtimes = {**runtimes, "default": ctd["default_runtime"]}
    if not name:
        return "`default_runtime_name` is empty"
    if name not in runtimes:
        return ("no corresponding runtime configured in `containerd.runtimes` for `containerd` "
                f'`default_runtime_name = "{name}"')
    for runtime in runtimes.values():
        if not isinstance(runtime, dict):
            continue
        if runtime.get("runtime_engine") and runtime.get("runtime_type") != "io.containerd.runtime.v1.linux":
            return "`runtime_engine` only works for runtime io.containerd.runtime.v1.linux"
        if runtime.get("runtime_root") and runtime.get("runtime_type") != "io.containerd.runtime.v1.linux":
            return "`runtime_root` only works for runtime io.containerd.runtime.v1.linux"
        if runtime.get("privileged_without_host_devices_all_devices_allowed") and not runtime.get(
                "privileged_without_host_devices"):
            return "`privileged_without_host_devices_all_devices_allowed` requires `privileged_without_host_devices` " \
                   "to be enabled"
    return None


def dump(config: dict[str, Any]) -> str:
    """outputConfig(): the merged configuration with every plugin's decoded configuration, as version 2."""
    out = {k: copy.deepcopy(v) for k, v in config.items() if k != "plugins"}
    out["plugins"] = {uri: decode_plugin(uri, config) for uri in sorted(plugin_defaults())}
    out["timeouts"] = {**TIMEOUTS, **out.get("timeouts", {})}
    out["version"] = 2
    return tomlw.dumps(out)


# --- the command --------------------------------------------------------------------------------------------------

def parse(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    opts: dict[str, Any] = {"config": DEFAULT_CONFIG, "config_set": False}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in ("-c", "--config", "-l", "--log-level", "-a", "--address", "--root", "--state"):
            if not eq:
                if i + 1 >= len(argv):
                    raise ContainerdError(f"flag needs an argument: {name}")
                value = argv[i + 1]
                i += 1
            key = {"-c": "config", "--config": "config", "-l": "log_level", "--log-level": "log_level",
                   "-a": "address", "--address": "address", "--root": "root", "--state": "state"}[name]
            opts[key] = value
            if key == "config":
                opts["config_set"] = True
        elif arg in ("-v", "--version"):
            opts["version"] = True
        elif arg in ("-h", "--help"):
            opts["help"] = True
        elif arg.startswith("-") and not rest:
            raise ContainerdError(f"flag provided but not defined: {arg}")
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def configured(opts: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    path = opts["config"]
    if opts["config_set"] or hostlib.host_path(path).exists():
        return load_config(path)
    return base_config(), []


def main(argv: list[str]) -> int:
    try:
        opts, rest = parse(argv[1:])
        if opts.get("version"):
            print(f"containerd {PACKAGE} {VERSION} {REVISION}")
            return 0
        if opts.get("help"):
            print("NAME:\n   containerd - \n                    __        _                     __\n"
                  "USAGE:\n   containerd [global options] command [command options] [arguments...]")
            return 0
        if rest[:1] == ["config"]:
            return config_command(opts, rest[1:])
        if rest:
            raise ContainerdError(f"No help topic for '{rest[0]}'")
        return serve(argv, opts)
    except ContainerdError as exc:
        print(f"containerd: {exc}", file=sys.stderr, flush=True)
        return 1


def config_command(opts: dict[str, Any], rest: list[str]) -> int:
    if rest[:1] == ["default"]:
        sys.stdout.write(dump(base_config()))
        return 0
    if rest[:1] == ["dump"]:
        config, _ = configured(opts)
        sys.stdout.write(dump(config))
        return 0
    print("NAME:\n   containerd config - Information on the containerd config\n\nUSAGE:\n   containerd config "
          "command [command options] [arguments...]\n\nCOMMANDS:\n   default  See the output of the default config\n"
          "   dump     See the output of the final main config with imported in subconfig files")
    return 0


def serve(argv: list[str], opts: dict[str, Any]) -> int:
    started = time.monotonic()
    config, loaded = configured(opts)
    for key in ("root", "state"):
        if opts.get(key):
            config[key] = opts[key]
    if opts.get("address"):
        config["grpc"]["address"] = opts["address"]
    address = config["grpc"]["address"]
    if not address:
        raise ContainerdError("grpc address cannot be empty: invalid argument")
    hostlib.log("info", "starting containerd", revision=REVISION, version=VERSION)
    other = hostlib.live_state(STATE_PATH)
    if other is not None and other.get("pid") != os.getpid() and other.get("address") == address:
        raise ContainerdError(f"failed to get listener for main endpoint: listen unix {address}: bind: address "
                              "already in use")
    for directory in (config["root"], config["state"]):
        hostlib.host_path(directory).mkdir(parents=True, exist_ok=True)
    cri = decode_plugin(CRI, config)
    cri_error = None
    if CRI in config["disabled_plugins"]:
        cri_status = "disabled"
    else:
        hostlib.log("info", f'loading plugin "{CRI}"...', type="io.containerd.grpc.v1")
        error = validate_cri(cri)
        if error:
            cri_status, cri_error = "error", f"invalid plugin config: {error}"
            hostlib.log("warning", f"failed to load plugin {CRI}", error=cri_error)
            if CRI in config["required_plugins"]:
                raise ContainerdError(f"load required plugin {CRI}: {cri_error}")
        else:
            cri_status = "ok"
    runtimes = {}
    for name, runtime in sorted((cri.get("containerd", {}).get("runtimes") or {}).items()):
        if isinstance(runtime, dict):
            options = runtime.get("options") if isinstance(runtime.get("options"), dict) else {}
            runtimes[name] = {"runtime_type": runtime.get("runtime_type", ""),
                              "runtime_path": runtime.get("runtime_path", ""), "options": options,
                              "binary_name": (options or {}).get("BinaryName", "")}
    state = {
        "pid": os.getpid(), "pid_start": hostlib.proc_start_ticks(os.getpid()), "started_at": time.time(),
        "version": VERSION, "argv": argv, "address": address, "config_path": opts["config"], "imports": loaded,
        "root": config["root"], "state": config["state"], "cri": {"status": cri_status, "error": cri_error,
                                                                  "config": cri},
        "runtimes": runtimes if cri_status == "ok" else {},
        "default_runtime_name": cri.get("containerd", {}).get("default_runtime_name") if cri_status == "ok" else None,
        "disabled_plugins": config["disabled_plugins"],
    }
    hostlib.write_json(STATE_PATH, state)
    hostlib.log("info", "serving...", address=f"{address}.ttrpc")
    hostlib.log("info", "serving...", address=address)
    hostlib.log("info", f"containerd successfully booted in {time.monotonic() - started:.6f}s")

    def cleanup() -> None:
        hostlib.log("info", "Stop CRI service")
        hostlib.remove_own_state(STATE_PATH)

    hostlib.block_stop_signals()
    hostlib.notify_ready()
    hostlib.serve_until_stopped(cleanup)
    return 0  # not reached: serve_until_stopped() exits


if __name__ == "__main__":
    sys.exit(main(sys.argv))
