"""The lab's docker CLI (24.0.7): `info`, `version`, `ps`, `images` against the *running* lab dockerd.

Everything comes from the state the running daemon wrote (/run/docker/lab-state.json), never from daemon.json:
a configuration changed on disk shows only after the daemon restarted, as with the real engine. With no daemon
it fails as the real CLI does ("Cannot connect to the Docker daemon at ..."). --format takes a subset of Go
templates: fields (.A.B), json, index, join, lower, upper, range (with $k, $v), if/else; anything else is refused
with the CLI's template error. Commands that would need containers are refused loudly, naming the command.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from typing import Any

import containerd
import hostlib
from dockerd import API_VERSION, BUILD, STATE_PATH, VERSION

GO_VERSION = "go1.21.1"
BUILT = "Wed Mar 13 20:23:54 2024"
DEFAULT_HOST = "unix:///var/run/docker.sock"


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# --- a small Go text/template ------------------------------------------------------------------------------------

class TemplateError(Exception):
    pass


class _Missing:
    def __str__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def go_json(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_print(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def _tokenize(template: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        if start < 0:
            tokens.append(("text", template[pos:]))
            return tokens
        end = template.find("}}", start)
        if end < 0:
            raise TemplateError("template: :1: unclosed action")
        text = template[pos:start]
        inner = template[start + 2:end]
        if inner.startswith("-") and inner[1:2] in (" ", "\t", "\n"):
            text = text.rstrip()
            inner = inner[1:]
        trim_after = inner.endswith("-") and inner[-2:-1] in (" ", "\t", "\n")
        if trim_after:
            inner = inner[:-1]
        tokens.append(("text", text))
        tokens.append(("action", inner.strip()))
        pos = end + 2
        if trim_after:
            while pos < len(template) and template[pos] in " \t\r\n":
                pos += 1


def _words(action: str) -> list[str]:
    return re.findall(r'"(?:[^"\\]|\\.)*"|`[^`]*`|[^\s]+', action)


class Template:
    FUNCS = ("json", "index", "join", "lower", "upper", "len", "print", "println")

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self._check(0, top=True)

    def _check(self, index: int, top: bool = False) -> int:
        while index < len(self.tokens):
            kind, value = self.tokens[index]
            index += 1
            if kind == "text":
                continue
            words = _words(value)
            if not words:
                raise TemplateError("template: :1: missing value for command")
            head = words[0]
            if head in ("range", "if", "with"):
                index = self._check(index)
            elif head in ("end",):
                if top:
                    raise TemplateError("template: :1: unexpected {{end}}")
                return index
            elif head == "else":
                continue
            elif not head.startswith((".", "$", '"')) and head not in self.FUNCS:
                raise TemplateError(f'template: :1: function "{head}" not defined')
        if not top:
            raise TemplateError("template: :1: unexpected EOF")
        return index

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._run(0, data, {"$": data}, out)
        return "".join(out)

    def _value(self, word: str, dot: Any, env: dict[str, Any]) -> Any:
        if word.startswith('"'):
            return json.loads(word)
        if word.startswith("`"):
            return word[1:-1]
        if word.startswith("$"):
            name, _, rest = word.partition(".")
            value = env.get(name, MISSING)
            return self._fields(value, rest.split(".") if rest else [], word)
        if word == ".":
            return dot
        if word.startswith("."):
            return self._fields(dot, word[1:].split("."), word)
        if word.isdigit():
            return int(word)
        raise TemplateError(f'template: :1: function "{word}" not defined')

    def _fields(self, value: Any, names: list[str], word: str) -> Any:
        for name in names:
            if isinstance(value, dict):
                if "__struct__" in value and name not in value:
                    raise TemplateError(f'template: :1:2: executing "" at <{word}>: can\'t evaluate field {name} '
                                        f"in type {value['__struct__']}")
                value = value.get(name, MISSING)
            elif value is None or value is MISSING:
                return MISSING
            else:
                raise TemplateError(f'template: :1:2: executing "" at <{word}>: can\'t evaluate field {name} in '
                                    f"type {type(value).__name__}")
        return value

    def _eval(self, words: list[str], dot: Any, env: dict[str, Any]) -> Any:
        head, args = words[0], words[1:]
        if head == "json":
            return go_json(_plain(self._value(args[0], dot, env) if args else dot))
        if head == "index":
            value = self._value(args[0], dot, env)
            for key in args[1:]:
                k = self._value(key, dot, env)
                value = value.get(k, MISSING) if isinstance(value, dict) else (
                    value[k] if isinstance(value, list) and isinstance(k, int) and k < len(value) else MISSING)
            return value
        if head == "join":
            return str(self._value(args[1], dot, env)).join(str(v) for v in self._value(args[0], dot, env) or [])
        if head in ("lower", "upper"):
            text = str(self._value(args[0], dot, env))
            return text.lower() if head == "lower" else text.upper()
        if head == "len":
            return len(self._value(args[0], dot, env) or [])
        if head in ("print", "println"):
            text = " ".join(_render_value(self._value(a, dot, env)) for a in args)
            return text + ("\n" if head == "println" else "")
        return self._value(head, dot, env)

    def _run(self, index: int, dot: Any, env: dict[str, Any], out: list[str] | None) -> int:
        """Execute tokens from `index` until the matching end/else; returns the index after it."""
        while index < len(self.tokens):
            kind, value = self.tokens[index]
            index += 1
            if kind == "text":
                if out is not None:
                    out.append(value)
                continue
            words = _words(value)
            head = words[0]
            if head in ("end", "else"):
                return index - 1 if head == "else" else index
            if head == "range":
                index = self._range(index, words[1:], dot, env, out)
            elif head in ("if", "with"):
                index = self._if(index, head, words[1:], dot, env, out)
            elif out is not None:
                out.append(_render_value(self._eval(words, dot, env)))
        return index

    def _skip(self, index: int) -> int:
        return self._run(index, None, {}, None)

    def _range(self, index: int, words: list[str], dot: Any, env: dict[str, Any], out: list[str] | None) -> int:
        names: list[str] = []
        if ":=" in words:
            names = [w.rstrip(",") for w in words[:words.index(":=")]]
            words = words[words.index(":=") + 1:]
        if out is None:
            return self._finish(self._skip(index))
        collection = self._eval(words, dot, env)
        items = sorted(collection.items()) if isinstance(collection, dict) else list(
            enumerate(collection if isinstance(collection, list) else []))
        end = self._skip(index)
        for key, item in items:
            scope = dict(env)
            if len(names) == 2:
                scope[names[0]], scope[names[1]] = key, item
            elif len(names) == 1:
                scope[names[0]] = item
            self._run(index, item, scope, out)
        return self._finish(end)

    def _if(self, index: int, head: str, words: list[str], dot: Any, env: dict[str, Any],
            out: list[str] | None) -> int:
        value = self._eval(words, dot, env) if out is not None else None
        truth = bool(value) and value is not MISSING
        after_body = self._run(index, value if head == "with" else dot, env, out if truth else None)
        if self.tokens[after_body][1].strip() == "else" if after_body < len(self.tokens) else False:
            after_body = self._run(after_body + 1, dot, env, out if not truth else None)
        return after_body

    def _finish(self, index: int) -> int:
        if index < len(self.tokens) and _words(self.tokens[index][1])[:1] == ["else"]:
            return self._skip(index + 1)
        return index


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "__struct__"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return None if value is MISSING else value


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is MISSING:
        return "<no value>"
    return go_print(_plain(value))


def parse_template(template: str) -> Template:
    """--format's template (`json` is short for {{json .}}), parsed before anything is asked of the daemon."""
    try:
        return Template("{{json .}}" if template == "json" else template)
    except TemplateError as exc:
        raise CliError(f"template parsing error: {exc}", 64) from None


def render(template: Template, data: Any) -> str:
    try:
        return template.render(data)
    except TemplateError as exc:
        raise CliError(str(exc), 1) from None


# --- the daemon's view ----------------------------------------------------------------------------------------------

def daemon_state(host: str) -> dict[str, Any]:
    state = hostlib.live_state(STATE_PATH)
    if state is None or not _listens_on(state, host):
        raise CliError(f"Cannot connect to the Docker daemon at {host}. Is the docker daemon running?")
    return state


def _try_daemon_state(host: str) -> tuple[dict[str, Any] | None, str | None]:
    """daemon_state(), or None and the error the CLI prints when the daemon cannot be reached."""
    try:
        return daemon_state(host), None
    except CliError as exc:
        return None, str(exc)


def _listens_on(state: dict[str, Any], host: str) -> bool:
    def norm(addr: str) -> str:
        if addr.startswith("fd://"):
            return "unix:///run/docker.sock"
        return addr.replace("unix:///var/run/", "unix:///run/")

    return norm(host) in {norm(h) for h in state.get("hosts", [])}


def _containerd_version() -> str:
    return containerd.VERSION if hostlib.live_state(containerd.STATE_PATH) else ""


def server_info(state: dict[str, Any]) -> dict[str, Any]:
    name = hostlib.hostname()
    runtimes = {k: dict(v) for k, v in sorted(state.get("runtimes", {}).items())}
    info: dict[str, Any] = {
        "__struct__": "system.Info",
        "ID": f"LAB0:{name.upper()[:4]:<4}:{state.get('pid', 0):08d}".replace(" ", "X"),
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0, "Images": 0,
        "Driver": state.get("storage_driver", "overlay2"),
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Using metacopy", "false"],
                         ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "ipvlan", "macvlan", "null", "overlay"],
                    "Authorization": None,
                    "Log": ["awslogs", "fluentd", "gcplogs", "gelf", "journald", "json-file", "local", "logentries",
                            "splunk", "syslog"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True,
        "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True, "BridgeNfIptables": True,
        "BridgeNfIp6tables": True, "Debug": bool(state.get("debug")), "NFd": 24, "OomKillDisable": False,
        "NGoroutines": 33, "SystemTime": "", "LoggingDriver": "json-file",
        "CgroupDriver": state.get("cgroup_driver", "systemd"), "CgroupVersion": "2", "NEventsListener": 0,
        "KernelVersion": platform.release(), "OperatingSystem": "Ubuntu 22.04.4 LTS", "OSVersion": "22.04",
        "OSType": "linux", "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": None},
        "NCPU": os.cpu_count() or 1, "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "GenericResources": None, "DockerRootDir": state.get("data_root", "/var/lib/docker"),
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": name, "Labels": state.get("labels", []),
        "ExperimentalBuild": False, "ServerVersion": state.get("version", VERSION), "Runtimes": runtimes,
        "DefaultRuntime": state.get("default_runtime", "runc"),
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False, "Error": "",
                  "RemoteManagers": None},
        "LiveRestoreEnabled": bool(state.get("live_restore")), "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin", "name=cgroupns"],
        "Warnings": None,
    }
    return info


def client_info(debug: bool) -> dict[str, Any]:
    return {"Debug": debug, "Version": VERSION, "GitCommit": BUILD, "GoVersion": GO_VERSION, "Os": "linux",
            "Arch": "amd64", "BuildTime": BUILT, "Context": "default", "Plugins": [], "Warnings": None}


def empty_info() -> dict[str, Any]:
    """The zero system.Info the CLI formats when the daemon cannot be reached."""
    return {"__struct__": "system.Info", "ID": "", "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0,
            "ContainersStopped": 0, "Images": 0, "Driver": "", "DriverStatus": None, "SystemStatus": None,
            "Plugins": {"Volume": None, "Network": None, "Authorization": None, "Log": None}, "Debug": False,
            "LoggingDriver": "", "CgroupDriver": "", "CgroupVersion": "", "KernelVersion": "",
            "OperatingSystem": "", "OSType": "", "Architecture": "", "NCPU": 0, "MemTotal": 0, "DockerRootDir": "",
            "Name": "", "Labels": None, "ExperimentalBuild": False, "ServerVersion": "", "Runtimes": None,
            "DefaultRuntime": "", "Swarm": {"LocalNodeState": ""}, "LiveRestoreEnabled": False,
            "InitBinary": "", "SecurityOptions": None, "Warnings": None}


# --- commands -------------------------------------------------------------------------------------------------------

def _format_option(args: list[str], command: str) -> tuple[str | None, list[str]]:
    fmt: str | None = None
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-f", "--format"):
            if i + 1 >= len(args):
                raise CliError(f"flag needs an argument: {'--format' if arg == '--format' else repr('f')[1:-1]}\n"
                               f"See 'docker {command} --help'.", 125)
            fmt = args[i + 1]
            i += 2
            continue
        if arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
        elif arg.startswith("-f") and len(arg) > 2:
            fmt = arg[2:]
        else:
            rest.append(arg)
        i += 1
    return fmt, rest


def cmd_info(args: list[str], host: str, debug: bool) -> int:
    fmt, rest = _format_option(args, "info")
    if rest:
        raise CliError("\"docker info\" accepts no arguments.\nSee 'docker info --help'.\n\nUsage:  docker info "
                       "[OPTIONS]\n\nDisplay system-wide information", 1)
    template = parse_template(fmt) if fmt is not None else None
    state, error = _try_daemon_state(host)
    info = server_info(state) if state else empty_info()
    info["ClientInfo"] = client_info(debug)
    if template is not None:
        if error:
            print(error, file=sys.stderr)
        print(render(template, info))
        return 0
    print("Client:")
    print(f" Version:    {VERSION}")
    print(" Context:    default")
    print(f" Debug Mode: {'true' if debug else 'false'}")
    print()
    print("Server:")
    if error:
        print(f"ERROR: {error}", file=sys.stderr)
        print("errors pretty printing info", file=sys.stderr)
        return 1
    print_server_info(info)
    return 0


def print_server_info(info: dict[str, Any]) -> None:
    lines = [
        f" Containers: {info['Containers']}", f"  Running: {info['ContainersRunning']}",
        f"  Paused: {info['ContainersPaused']}", f"  Stopped: {info['ContainersStopped']}",
        f" Images: {info['Images']}",
        f" Server Version: {info['ServerVersion']}", f" Storage Driver: {info['Driver']}",
    ]
    lines += [f"  {k}: {v}" for k, v in info["DriverStatus"]]
    lines += [f" Logging Driver: {info['LoggingDriver']}", f" Cgroup Driver: {info['CgroupDriver']}",
              f" Cgroup Version: {info['CgroupVersion']}", " Plugins:",
              f"  Volume: {' '.join(info['Plugins']['Volume'])}", f"  Network: {' '.join(info['Plugins']['Network'])}",
              f"  Log: {' '.join(info['Plugins']['Log'])}", f" Swarm: {info['Swarm']['LocalNodeState']}"]
    if info["Runtimes"]:
        lines.append(f" Runtimes: {' '.join(sorted(info['Runtimes']))}")
        lines.append(f" Default Runtime: {info['DefaultRuntime']}")
    lines += [f" Init Binary: {info['InitBinary']}", " containerd version: ", " runc version: ", " init version: ",
              " Security Options:", "  apparmor", "  seccomp", "   Profile: builtin", "  cgroupns",
              f" Kernel Version: {info['KernelVersion']}", f" Operating System: {info['OperatingSystem']}",
              f" OSType: {info['OSType']}", f" Architecture: {info['Architecture']}", f" CPUs: {info['NCPU']}",
              f" Total Memory: {info['MemTotal'] / 2**30:.4g}GiB", f" Name: {info['Name']}", f" ID: {info['ID']}",
              f" Docker Root Dir: {info['DockerRootDir']}", f" Debug Mode: {'true' if info['Debug'] else 'false'}"]
    if info["Labels"]:
        lines.append(" Labels:")
        lines += [f"  {label}" for label in info["Labels"]]
    lines += [f" Experimental: {'true' if info['ExperimentalBuild'] else 'false'}", " Insecure Registries:",
              "  127.0.0.0/8", f" Live Restore Enabled: {'true' if info['LiveRestoreEnabled'] else 'false'}"]
    print("\n".join(lines))
    print()


def cmd_version(args: list[str], host: str, debug: bool) -> int:
    fmt, _ = _format_option(args, "version")
    template = parse_template(fmt) if fmt is not None else None
    client = {"Platform": {"Name": ""}, "Version": VERSION, "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION,
              "GitCommit": BUILD, "GoVersion": GO_VERSION, "Os": "linux", "Arch": "amd64", "BuildTime": BUILT,
              "Context": "default"}
    state, error = _try_daemon_state(host)
    server = None
    if state:
        components = [
            {"Name": "Engine", "Version": state.get("version", VERSION),
             "Details": {"ApiVersion": API_VERSION, "Arch": "amd64", "BuildTime": BUILT, "Experimental": "false",
                         "GitCommit": BUILD, "GoVersion": GO_VERSION, "KernelVersion": platform.release(),
                         "MinAPIVersion": "1.12", "Os": "linux"}},
            {"Name": "containerd", "Version": _containerd_version(), "Details": {"GitCommit": ""}},
            {"Name": "runc", "Version": "1.1.12-0ubuntu2~22.04.1", "Details": {"GitCommit": ""}},
            {"Name": "docker-init", "Version": "0.19.0", "Details": {"GitCommit": ""}},
        ]
        server = {"Platform": {"Name": ""}, "Components": components, "Version": state.get("version", VERSION),
                  "ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "GitCommit": BUILD, "GoVersion": GO_VERSION,
                  "Os": "linux", "Arch": "amd64", "KernelVersion": platform.release(), "BuildTime": BUILT}
    if template is not None:
        print(render(template, {"Client": client, "Server": server}))
        if error:
            print(error, file=sys.stderr)
            return 1
        return 0
    print("Client:")
    for key, value in (("Version", VERSION), ("API version", API_VERSION), ("Go version", GO_VERSION),
                       ("Git commit", BUILD), ("Built", BUILT), ("OS/Arch", "linux/amd64"), ("Context", "default")):
        print(f" {key + ':':<18} {value}")
    if server is None:
        print(error, file=sys.stderr)
        return 1
    print()
    print("Server:")
    print(" Engine:")
    for key, value in (("Version", server["Version"]), ("API version", f"{API_VERSION} (minimum version 1.12)"),
                       ("Go version", GO_VERSION), ("Git commit", BUILD), ("Built", BUILT),
                       ("OS/Arch", "linux/amd64"), ("Experimental", "false")):
        print(f"  {key + ':':<17} {value}")
    for component in server["Components"][1:]:
        print(f" {component['Name']}:")
        print(f"  {'Version:':<17} {component['Version']}")
        print(f"  {'GitCommit:':<17} ")
    return 0


def _empty_listing(args: list[str], host: str, command: str, header: str) -> int:
    """A listing of what the lab never has (containers, images): the table header alone (none with -q or
    --format), once the daemon is known to run."""
    fmt, rest = _format_option(args, command)
    daemon_state(host)
    if "-q" not in rest and "--quiet" not in rest and fmt is None:
        print(header)
    return 0


def cmd_ps(args: list[str], host: str, debug: bool) -> int:
    return _empty_listing(args, host, "ps", "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES")


def cmd_images(args: list[str], host: str, debug: bool) -> int:
    return _empty_listing(args, host, "images", "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE")


COMMANDS = {"info": cmd_info, "version": cmd_version, "ps": cmd_ps, "images": cmd_images}
KNOWN = ("attach", "build", "builder", "commit", "config", "container", "context", "cp", "create", "diff", "events",
         "exec", "export", "history", "image", "import", "inspect", "kill", "load", "login", "logout", "logs",
         "manifest", "network", "node", "pause", "plugin", "port", "pull", "push", "rename", "restart", "rm", "rmi",
         "run", "save", "search", "secret", "service", "stack", "start", "stats", "stop", "swarm", "system", "tag",
         "top", "trust", "unpause", "update", "volume", "wait")


def main(argv: list[str]) -> int:
    args = argv[1:]
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    debug = False
    while args and args[0].startswith("-"):
        arg = args.pop(0)
        if arg in ("-v", "--version"):
            print(f"Docker version {VERSION}, build {BUILD}")
            return 0
        if arg in ("-H", "--host") and args:
            host = args.pop(0)
        elif arg.startswith("--host="):
            host = arg.split("=", 1)[1]
        elif arg in ("-D", "--debug"):
            debug = True
        elif arg in ("--context", "-c", "--config", "-l", "--log-level") and args:
            args.pop(0)
        elif arg in ("-h", "--help"):
            print("Usage:  docker [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers")
            return 0
        else:
            print(f"unknown flag: {arg}\nSee 'docker --help'.", file=sys.stderr)
            return 125
    if not args:
        print("Usage:  docker [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers")
        return 0
    command, rest = args[0], args[1:]
    if command == "system" and rest[:1] == ["info"]:
        command, rest = "info", rest[1:]
    try:
        if command in COMMANDS:
            return COMMANDS[command](rest, host, debug)
        if command in KNOWN:
            daemon_state(host)
            raise CliError(f"docker: the botlab virtual lab does not emulate \"docker {command}\" (no containers "
                           "run in the lab).", 1)
        raise CliError(f"docker: '{command}' is not a docker command.\nSee 'docker --help'", 1)
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
