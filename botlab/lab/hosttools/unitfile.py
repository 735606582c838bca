"""systemd 252's unit file loading, as the lab's systemctl needs it.

Reproduces what systemd does with a unit and its drop-ins (src/shared/conf-parser.c, src/core/load-fragment.c,
src/core/load-dropin.c, service_verify() in src/core/service.c):

- A fragment that fails to parse stops loading: an error from a setting parser (e.g. a bad ExecStart=) makes the
  unit "bad-setting" (ENOEXEC), a syntax error (a bad section header) makes it "error" (EBADMSG, "Bad message").
- A drop-in that fails to parse is *not* fatal: systemd ignores the error, so the drop-in's lines from the bad
  line on are simply not applied (they are logged).
- Unknown sections/keys, lines without '=', assignments outside a section: logged and ignored.
- After loading, service_verify() refuses (bad-setting) e.g. two ExecStart= on a non-oneshot service.

Messages are kept in the unit (`messages`) as systemd logs them ("<file>:<line>: <text>" or "<unit>: <text>").
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import hostlib

UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
)
UNIT_SUFFIXES = (
    "service", "socket", "target", "device", "mount", "automount", "swap", "path", "timer", "slice", "scope",
)
WHITESPACE = " \t\n\r"
SERVICE_TYPES = ("simple", "exec", "forking", "oneshot", "dbus", "notify", "idle")
RESTART_VALUES = ("no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always")
KILL_MODES = ("control-group", "process", "mixed", "none")
EXEC_KEYS = ("ExecCondition", "ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost")
DEFAULT_TIMEOUT_USEC = 90_000_000

LIST_KEYS = {
    "Unit": ("Documentation", "After", "Before", "Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Conflicts",
             "OnFailure", "OnSuccess", "Upholds", "PropagatesReloadTo", "ReloadPropagatedFrom", "JoinsNamespaceOf",
             "RequiresMountsFor"),
    "Install": ("WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also"),
    "Socket": ("ListenStream", "ListenDatagram", "ListenSequentialPacket", "ListenFIFO", "ListenNetlink"),
}
# Settings parsed as opaque strings (known, so no "Unknown key name" warning).
PLAIN_KEYS = {
    "Unit": ("Description", "SourcePath", "DefaultDependencies", "StopWhenUnneeded", "RefuseManualStart",
             "RefuseManualStop", "AllowIsolate", "IgnoreOnIsolate", "JobTimeoutSec", "JobRunningTimeoutSec",
             "JobTimeoutAction", "StartLimitIntervalSec", "StartLimitInterval", "StartLimitBurst", "StartLimitAction",
             "FailureAction", "SuccessAction", "CollectMode", "ConditionPathExists", "ConditionPathIsDirectory",
             "ConditionFileNotEmpty", "ConditionVirtualization", "ConditionKernelCommandLine", "ConditionHost",
             "ConditionFileIsExecutable", "ConditionDirectoryNotEmpty", "ConditionPathExistsGlob", "ConditionUser",
             "ConditionGroup", "ConditionCapability", "ConditionSecurity", "ConditionACPower", "ConditionNeedsUpdate",
             "ConditionFirstBoot", "ConditionArchitecture", "ConditionControlGroupController", "AssertPathExists",
             "AssertPathIsDirectory", "AssertFileNotEmpty", "AssertVirtualization", "AssertKernelCommandLine"),
    "Service": ("PIDFile", "GuessMainPID", "User", "Group", "SupplementaryGroups", "WorkingDirectory",
                "RootDirectory", "RestartSec", "TimeoutAbortSec", "RuntimeMaxSec", "WatchdogSec", "NotifyAccess",
                "Sockets", "BusName", "FileDescriptorStoreMax", "SuccessExitStatus", "RestartPreventExitStatus",
                "RestartForceExitStatus", "PermissionsStartOnly", "RootDirectoryStartOnly", "StartLimitBurst",
                "StartLimitInterval", "StartLimitIntervalSec", "StartLimitAction", "FailureAction", "OOMPolicy",
                "KillSignal", "FinalKillSignal", "SendSIGKILL", "SendSIGHUP", "RestartKillSignal",
                "TimeoutStopFailureMode",
                "PassEnvironment", "UnsetEnvironment", "UMask", "Nice", "OOMScoreAdjust", "IOSchedulingClass",
                "IOSchedulingPriority", "CPUSchedulingPolicy", "CPUSchedulingPriority", "CPUAffinity", "LimitCPU",
                "LimitFSIZE", "LimitDATA", "LimitSTACK", "LimitCORE", "LimitRSS", "LimitNOFILE", "LimitAS",
                "LimitNPROC", "LimitMEMLOCK", "LimitLOCKS", "LimitSIGPENDING", "LimitMSGQUEUE", "LimitNICE",
                "LimitRTPRIO", "LimitRTTIME", "TasksMax", "TasksAccounting", "Delegate", "Slice", "CPUAccounting",
                "CPUQuota", "CPUWeight", "CPUShares", "MemoryAccounting", "MemoryLimit", "MemoryMax", "MemoryHigh",
                "MemoryLow", "MemoryMin", "MemorySwapMax", "IOAccounting", "IOWeight", "BlockIOAccounting",
                "DeviceAllow", "DevicePolicy", "StandardInput", "StandardOutput", "StandardError", "SyslogIdentifier",
                "SyslogFacility", "SyslogLevel", "LogLevelMax", "TTYPath", "ProtectSystem", "ProtectHome",
                "PrivateTmp", "PrivateDevices", "PrivateNetwork", "PrivateUsers", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
                "ProtectHostname", "NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities",
                "SecureBits", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "RuntimeDirectory",
                "RuntimeDirectoryMode", "RuntimeDirectoryPreserve", "StateDirectory", "StateDirectoryMode",
                "CacheDirectory", "LogsDirectory", "ConfigurationDirectory", "DynamicUser", "RestrictNamespaces",
                "RestrictRealtime", "RestrictSUIDSGID", "RestrictAddressFamilies", "LockPersonality",
                "MemoryDenyWriteExecute", "SystemCallFilter", "SystemCallArchitectures", "SystemCallErrorNumber",
                "KeyringMode", "IgnoreSIGPIPE", "TimerSlackNSec", "Personality", "MountFlags", "LimitNOFILESoft"),
    "Install": ("DefaultInstance",),
    "Socket": ("SocketMode", "SocketUser", "SocketGroup", "Accept", "Service", "DirectoryMode", "Backlog",
               "BindIPv6Only", "ReusePort", "RemoveOnStop", "Symlinks", "FileDescriptorName", "PassCredentials",
               "PassSecurity", "MaxConnections", "KeepAlive", "NoDelay", "Priority", "ReceiveBuffer", "SendBuffer"),
}
SECTIONS = {
    "service": ("Unit", "Service", "Install"),
    "socket": ("Unit", "Socket", "Install"),
    "target": ("Unit", "Install"),
}


class ParseError(Exception):
    """A setting or line systemd refuses; `errno` is "ENOEXEC" (bad-setting) or "EBADMSG" (error)."""

    def __init__(self, errno: str) -> None:
        super().__init__(errno)
        self.errno = errno


def mangle_name(name: str) -> str:
    """What `systemctl start docker` operates on: docker.service."""
    if "." in name and name.rsplit(".", 1)[1] in UNIT_SUFFIXES:
        return name
    return f"{name}.service"


def unit_suffix(name: str) -> str:
    return name.rsplit(".", 1)[1]


def _digest(path: str) -> str:
    target = hostlib.host_path(path)
    try:
        if target.is_symlink():
            return "link:" + os.readlink(target)
        return hashlib.sha256(target.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def find_fragment(name: str) -> str | None:
    for directory in UNIT_DIRS:
        path = f"{directory}/{name}"
        real = hostlib.host_path(path)
        if real.is_symlink() or real.exists():
            return path
    return None


def dropin_dirs(name: str) -> list[str]:
    """The drop-in directories of a unit, highest priority first: <dir>/<name>.d and the type-wide <dir>/<type>.d."""
    dirs = [f"{d}/{name}.d" for d in UNIT_DIRS]
    dirs += [f"{d}/{unit_suffix(name)}.d" for d in UNIT_DIRS]
    return dirs


def find_dropins(name: str) -> list[str]:
    """Drop-in files as systemd orders them: by file name; a name in a higher-priority directory hides the same
    name in a lower one; a symlink to /dev/null masks it."""
    chosen: dict[str, str] = {}
    for directory in dropin_dirs(name):
        real = hostlib.host_path(directory)
        if not real.is_dir():
            continue
        for entry in sorted(os.listdir(real)):
            if not entry.endswith(".conf") or entry in chosen:
                continue
            chosen[entry] = f"{directory}/{entry}"
    result = []
    for entry in sorted(chosen):
        path = chosen[entry]
        real = hostlib.host_path(path)
        if real.is_symlink() and os.readlink(real) == "/dev/null":
            continue
        if real.is_file():
            result.append(path)
    return result


def _sources(fragment: str | None, dropins: list[str]) -> list[list[str]]:
    paths = ([fragment] if fragment else []) + dropins
    return [[path, _digest(path)] for path in paths]


def sources_of(name: str) -> list[list[str]]:
    """The files a unit's definition comes from, with their content digests, to tell when they change on disk."""
    return _sources(find_fragment(name), find_dropins(name))


# --- word splitting (extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE) -------------------------------------

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
                   '"': '"', "'": "'", "s": " "}


def _cunescape_one(text: str, pos: int) -> tuple[str, int] | None:
    """The character an escape at text[pos:] (after the backslash) stands for, and its length."""
    if pos >= len(text):
        return None
    c = text[pos]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], 1
    for lead, width in (("x", 2), ("u", 4), ("U", 8)):
        if c == lead:
            digits = text[pos + 1:pos + 1 + width]
            if len(digits) == width and all(d in "0123456789abcdefABCDEF" for d in digits):
                value = int(digits, 16)
                if value == 0:
                    return None
                return chr(value), 1 + width
            return None
    if c in "01234567":
        digits = text[pos:pos + 3]
        if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) != 0:
            return chr(int(digits, 8)), 3
    return None


def extract_first_word(text: str, pos: int, relax: bool = False) -> tuple[str | None, int]:
    """The next word of `text` from `pos` and where parsing goes on; ValueError("EINVAL") for unbalanced quotes or
    (unless `relax`) an unknown escape sequence."""
    while pos < len(text) and text[pos] in WHITESPACE:
        pos += 1
    if pos >= len(text):
        return None, pos
    word: list[str] = []
    quote: str | None = None
    while pos < len(text):
        c = text[pos]
        if c == "\\":
            escaped = _cunescape_one(text, pos + 1)
            if escaped is not None:
                word.append(escaped[0])
                pos += 1 + escaped[1]
                continue
            if pos + 1 >= len(text) or not relax:
                raise ValueError("EINVAL")
            word.append("\\" + text[pos + 1])
            pos += 2
            continue
        if quote is not None:
            if c == quote:
                quote = None
            else:
                word.append(c)
        elif c in WHITESPACE:
            break
        elif c in "'\"":
            quote = c
        else:
            word.append(c)
        pos += 1
    if quote is not None:
        raise ValueError("EINVAL")
    while pos < len(text) and text[pos] in WHITESPACE:
        pos += 1
    return "".join(word), pos


# --- specifiers -----------------------------------------------------------------------------------------------------

def _specifiers(name: str) -> dict[str, str]:
    stem = name.rsplit(".", 1)[0]
    prefix, _, instance = stem.partition("@")
    hostname = hostlib.hostname()
    return {
        "n": name, "N": stem, "p": prefix, "P": prefix, "i": instance, "I": instance, "j": prefix.rsplit("-", 1)[-1],
        "J": prefix.rsplit("-", 1)[-1], "f": "/" + (instance or prefix), "H": hostname, "l": hostname.split(".")[0],
        "t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "E": "/etc", "T": "/tmp", "V": "/var/tmp",
        "h": "/root", "u": "root", "U": "0", "g": "root", "G": "0", "s": "/bin/sh", "%": "%", "y": "", "Y": "",
    }


def expand_specifiers(name: str, text: str) -> str:
    """unit_full_printf(): %n, %i, %t, ...; ValueError for an unknown one (systemd: -EBADSLT)."""
    if "%" not in text:
        return text
    table = _specifiers(name)
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "%":
            if i + 1 >= len(text) or text[i + 1] not in table:
                raise ValueError("Invalid slot")
            out.append(table[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# --- values ---------------------------------------------------------------------------------------------------------

_TIME_UNITS = {
    "us": 1, "usec": 1, "µs": 1, "ms": 1000, "msec": 1000, "s": 10**6, "sec": 10**6, "second": 10**6,
    "seconds": 10**6, "m": 60 * 10**6, "min": 60 * 10**6, "minute": 60 * 10**6, "minutes": 60 * 10**6,
    "h": 3600 * 10**6, "hr": 3600 * 10**6, "hour": 3600 * 10**6, "hours": 3600 * 10**6, "d": 86400 * 10**6,
    "day": 86400 * 10**6, "days": 86400 * 10**6, "w": 604800 * 10**6, "week": 604800 * 10**6,
    "weeks": 604800 * 10**6, "M": 2629800 * 10**6, "month": 2629800 * 10**6, "months": 2629800 * 10**6,
    "y": 31557600 * 10**6, "year": 31557600 * 10**6, "years": 31557600 * 10**6,
}


def parse_sec(text: str) -> int | None:
    """A systemd time span in microseconds (None: infinity); ValueError when invalid."""
    text = text.strip()
    if text == "infinity":
        return None
    parts = re.findall(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Zµ]*)", text)
    if not parts or "".join(a + b for a, b in parts) != re.sub(r"\s+", "", text):
        raise ValueError(text)
    total = 0.0
    for number, unit in parts:
        if unit not in _TIME_UNITS and unit != "":
            raise ValueError(text)
        total += float(number) * _TIME_UNITS.get(unit, 10**6)
    return int(total)


def format_timespan(usec: int | None) -> str:
    """systemd's format_timespan() as `show` prints TimeoutStartUSec=: "1min 30s", "infinity"."""
    if usec is None:
        return "infinity"
    if usec == 0:
        return "0"
    units = (("y", 31557600 * 10**6), ("month", 2629800 * 10**6), ("w", 604800 * 10**6), ("d", 86400 * 10**6),
             ("h", 3600 * 10**6), ("min", 60 * 10**6), ("s", 10**6), ("ms", 1000), ("us", 1))
    parts = []
    for unit, size in units:
        if usec >= size:
            parts.append(f"{usec // size}{unit}")
            usec %= size
    return " ".join(parts)


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "yes", "y", "true", "t", "on"):
        return True
    if low in ("0", "no", "n", "false", "f", "off"):
        return False
    raise ValueError(text)


def _string_is_safe(text: str) -> bool:
    return not any(ord(c) < 0x20 or c in "\x7f\\\"'" for c in text)


def _filename_is_valid(text: str) -> bool:
    return bool(text) and "/" not in text and text not in (".", "..") and len(text) <= 255


def _path_is_valid(text: str) -> bool:
    return bool(text) and len(text) < 4096 and all(len(part) <= 255 for part in text.split("/"))


def _env_assignment_is_valid(text: str) -> bool:
    name, eq, _ = text.partition("=")
    return bool(eq) and bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name))


# --- the parser -----------------------------------------------------------------------------------------------------

class _Loader:
    """Parses one unit's fragment and drop-ins into a JSON-serialisable definition."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = unit_suffix(name)
        self.messages: list[list[str]] = []
        self.unit: dict[str, Any] = {
            "Description": "", **{k: [] for k in LIST_KEYS["Unit"]},
        }
        self.install: dict[str, Any] = {k: [] for k in LIST_KEYS["Install"]}
        self.service: dict[str, Any] = {
            "Type": None, "Restart": "no", "RemainAfterExit": False, "TimeoutStartUSec": DEFAULT_TIMEOUT_USEC,
            "TimeoutStopUSec": DEFAULT_TIMEOUT_USEC, "start_timeout_defined": False, "KillMode": "control-group",
            "Environment": [], "EnvironmentFile": [],
        }
        self.socket: dict[str, Any] = {k: [] for k in LIST_KEYS["Socket"]}
        self.exec: dict[str, list[dict[str, Any]]] = {k: [] for k in EXEC_KEYS}
        self.plain: dict[str, str] = {}
        self.handlers: dict[tuple[str, str], Callable[[str, int, str, str], None]] = {}
        for section, keys in LIST_KEYS.items():
            for key in keys:
                self.handlers[(section, key)] = self._list_setter(section)
        for section, keys in PLAIN_KEYS.items():
            for key in keys:
                self.handlers[(section, key)] = self._plain
        self.handlers[("Unit", "Description")] = self._description
        for key in EXEC_KEYS:
            self.handlers[("Service", key)] = self._exec
        self.handlers.update({
            ("Service", "Type"): self._choice_setter(SERVICE_TYPES, "service type"),
            ("Service", "Restart"): self._choice_setter(RESTART_VALUES, "service restart specifier"),
            ("Service", "RemainAfterExit"): self._bool,
            ("Service", "TimeoutSec"): self._timeout,
            ("Service", "TimeoutStartSec"): self._timeout,
            ("Service", "TimeoutStopSec"): self._timeout,
            ("Service", "KillMode"): self._choice_setter(KILL_MODES, "kill mode specification"),
            ("Service", "Environment"): self._environment,
            ("Service", "EnvironmentFile"): self._environment_file,
        })

    def log(self, level: str, text: str) -> None:
        self.messages.append([level, text])

    def syntax(self, level: str, path: str, line: int, text: str) -> None:
        self.log(level, f"{path}:{line}: {text}")

    # -- config_parse()

    def parse_file(self, path: str, text: str) -> str | None:
        """Parse one file; the errno systemd's config_parse() would return, or None."""
        sections = SECTIONS.get(self.kind, ("Unit", "Install"))
        state: dict[str, Any] = {"section": None, "ignored": False}
        continuation: str | None = None
        lines = re.split(r"\r\n|\r|\n", text)
        if lines and lines[-1] == "":
            lines.pop()
        number = 0
        for index, raw in enumerate(lines):
            number += 1
            buf = raw.lstrip("\ufeff") if index == 0 else raw
            stripped = buf.lstrip(WHITESPACE)
            if stripped and stripped[0] in "#;":
                continue
            current = continuation + buf if continuation is not None else buf
            escaped = False
            for ch in current:
                escaped = False if escaped else ch == "\\"
            if escaped:
                continuation = current[:-1] + " "
                continue
            continuation = None
            error = self._parse_line(path, number, sections, state, current)
            if error:
                return error
        if continuation is not None:
            return self._parse_line(path, number + 1, sections, state, continuation)
        return None

    def _parse_line(
        self, path: str, line: int, sections: tuple[str, ...], state: dict[str, Any], text: str
    ) -> str | None:
        text = text.strip(WHITESPACE)
        if not text:
            return None
        if text[0] == "[":
            if text[-1] != "]":
                self.syntax("err", path, line, f"Invalid section header '{text}'")
                return "EBADMSG"
            name = text[1:-1]
            if not _string_is_safe(name):
                self.syntax("err", path, line, f"Bad characters in section header '{text}'")
                return "EBADMSG"
            if name not in sections:
                if not name.startswith("X-"):
                    self.syntax("warning", path, line, f"Unknown section '{name}'. Ignoring.")
                state["section"], state["ignored"] = None, True
            else:
                state["section"], state["ignored"] = name, False
            return None
        if state["section"] is None:
            if not state["ignored"]:
                self.syntax("warning", path, line, "Assignment outside of section. Ignoring.")
            return None
        if "=" not in text:
            self.syntax("warning", path, line, "Missing '=', ignoring line.")
            return None
        if text.startswith("="):
            self.syntax("warning", path, line, "Missing key name before '=', ignoring line.")
            return None
        key, _, value = text.partition("=")
        key, value = key.strip(WHITESPACE), value.strip(WHITESPACE)
        handler = self.handlers.get((state["section"], key))
        if handler is None:
            if not key.startswith("X-"):
                section = state["section"]
                self.syntax("warning", path, line, f"Unknown key name '{key}' in section '{section}', ignoring.")
            return None
        try:
            handler(path, line, key, value)
        except ParseError as exc:
            return exc.errno
        return None

    def _next_word(self, path: str, line: int, value: str, pos: int,
                   warn_escapes: bool = True) -> tuple[str | None, int] | None:
        """extract_first_word_and_warn(): the next word of `value` from `pos`, retried relaxed on an unknown escape
        sequence (logged when `warn_escapes`); None after logging when the quoting is unbalanced."""
        try:
            return extract_first_word(value, pos)
        except ValueError:
            pass
        try:
            word, pos = extract_first_word(value, pos, relax=True)
        except ValueError:
            self.syntax("err", path, line, f'Unbalanced quoting, ignoring: "{value}"')
            return None
        if word is not None and warn_escapes:
            self.syntax("warning", path, line, f'Ignoring unknown escape sequences: "{word}"')
        return word, pos

    def _words(self, path: str, line: int, value: str) -> list[str] | None:
        """extract_first_word_and_warn() over a whole value; None after logging when it cannot be split."""
        words: list[str] = []
        pos = 0
        while True:
            found = self._next_word(path, line, value, pos)
            if found is None:
                return None
            word, pos = found
            if word is None:
                return words
            words.append(word)

    def _expanded_words(self, path: str, line: int, value: str) -> Iterator[str]:
        """The words of `value` with their specifiers expanded; a word with an unknown specifier is logged and
        skipped (as it comes, so messages stay in order with the caller's); none when `value` cannot be split."""
        for word in self._words(path, line, value) or []:
            try:
                yield expand_specifiers(self.name, word)
            except ValueError:
                self.syntax("warning", path, line, f"Failed to resolve unit specifiers in {word}, ignoring: "
                                                   "Invalid slot")

    # -- setting parsers (config_parse_*)

    def _description(self, path: str, line: int, key: str, value: str) -> None:
        self.unit["Description"] = value

    def _plain(self, path: str, line: int, key: str, value: str) -> None:
        self.plain[key] = value

    def _list_setter(self, section: str) -> Callable[[str, int, str, str], None]:
        def setter(path: str, line: int, key: str, value: str) -> None:
            table = {"Unit": self.unit, "Install": self.install, "Socket": self.socket}[section]
            if not value:
                table[key] = []
                return
            for word in self._expanded_words(path, line, value):
                if word not in table[key]:
                    table[key].append(word)
        return setter

    def _choice_setter(self, choices: tuple[str, ...], what: str) -> Callable[[str, int, str, str], None]:
        """A [Service] setting that takes one of `choices` (Type=, Restart=, KillMode=); else logged and ignored."""
        def setter(path: str, line: int, key: str, value: str) -> None:
            if value not in choices:
                self.syntax("warning", path, line, f"Failed to parse {what}, ignoring: {value}")
                return
            self.service[key] = value
        return setter

    def _bool(self, path: str, line: int, key: str, value: str) -> None:
        try:
            self.service[key] = parse_bool(value)
        except ValueError:
            self.syntax("warning", path, line, f"Failed to parse boolean value, ignoring: {value}")

    def _timeout(self, path: str, line: int, key: str, value: str) -> None:
        try:
            usec = parse_sec(value)
        except ValueError:
            self.syntax("warning", path, line, f"Failed to parse {key}= parameter, ignoring: {value}")
            return
        if usec == 0:
            usec = None
        if key in ("TimeoutSec", "TimeoutStartSec"):
            self.service["TimeoutStartUSec"] = usec
            self.service["start_timeout_defined"] = True
        if key in ("TimeoutSec", "TimeoutStopSec"):
            self.service["TimeoutStopUSec"] = usec

    def _environment(self, path: str, line: int, key: str, value: str) -> None:
        if not value:
            self.service["Environment"] = []
            return
        env: list[str] = self.service["Environment"]
        for word in self._expanded_words(path, line, value):
            if not _env_assignment_is_valid(word):
                self.syntax("warning", path, line, f"Invalid environment assignment, ignoring: {word}")
                continue
            name = word.split("=", 1)[0]
            env[:] = [e for e in env if e.split("=", 1)[0] != name] + [word]

    def _environment_file(self, path: str, line: int, key: str, value: str) -> None:
        if not value:
            self.service["EnvironmentFile"] = []
            return
        try:
            value = expand_specifiers(self.name, value)
        except ValueError:
            self.syntax("warning", path, line, f"Failed to resolve unit specifiers in '{value}', ignoring: "
                                               "Invalid slot")
            return
        target = value[1:] if value.startswith("-") else value
        if not target.startswith("/"):
            self.syntax("warning", path, line, f"{key}= path is not absolute, ignoring: {target}")
            return
        self.service["EnvironmentFile"].append(value)

    def _exec(self, path: str, line: int, key: str, value: str) -> None:
        """config_parse_exec(): errors are ENOEXEC (bad-setting) unless the command has the '-' prefix."""
        commands = self.exec[key]
        if not value:
            commands.clear()
            return
        pos = 0
        semicolon = True
        while semicolon:
            semicolon = False
            # config_parse_exec() logs no "unknown escape sequences" warning for the first word here.
            found = self._next_word(path, line, value, pos, warn_escapes=False)
            if found is None:
                return
            first, pos = found
            if first is None:
                return
            if first == ";":
                semicolon = True
                continue
            prefixes: list[str] = []
            f = first
            while f and f[0] in "-@:+!":
                c = f[0]
                if c in prefixes and not (c == "!" and prefixes.count("!") == 1):
                    break
                if c in "+!" and ("+" in prefixes or prefixes.count("!") >= 2 or (c == "+" and "!" in prefixes)):
                    break
                prefixes.append(c)
                f = f[1:]
            ignore = "-" in prefixes
            suffix = ", ignoring" if ignore else ""
            level = "warning" if ignore else "err"

            def refuse(text: str, ignore: bool = ignore, level: str = level) -> None:
                self.syntax(level, path, line, text)
                if not ignore:
                    raise ParseError("ENOEXEC")

            try:
                exe = expand_specifiers(self.name, f)
            except ValueError:
                return refuse(f"Failed to resolve unit specifiers in '{f}'{suffix}: Invalid slot")
            if not exe:
                return refuse(f"Empty path in command line{suffix}: '{value}'")
            if not _string_is_safe(exe):
                return refuse(f"Executable name contains special characters{suffix}: {exe}")
            if exe.endswith("/"):
                return refuse(f"Executable path specifies a directory{suffix}: {exe}")
            if not (_path_is_valid(exe) if exe.startswith("/") else _filename_is_valid(exe)):
                return refuse(f"Neither a valid executable name nor an absolute path{suffix}: {exe}")
            argv: list[str] = [] if "@" in prefixes else [exe]
            while pos < len(value):
                if value[pos] == ";" and (pos + 1 >= len(value) or value[pos + 1] in WHITESPACE):
                    pos += 1
                    while pos < len(value) and value[pos] in WHITESPACE:
                        pos += 1
                    semicolon = True
                    break
                if value.startswith("\\;", pos) and (pos + 2 >= len(value) or value[pos + 2] in WHITESPACE):
                    pos += 2
                    while pos < len(value) and value[pos] in WHITESPACE:
                        pos += 1
                    argv.append(";")
                    continue
                found = self._next_word(path, line, value, pos)
                if found is None:
                    if not ignore:
                        raise ParseError("ENOEXEC")
                    return
                word, pos = found
                if word is None:
                    break
                try:
                    argv.append(expand_specifiers(self.name, word))
                except ValueError:
                    return refuse(f"Failed to resolve unit specifiers in {word}{suffix}: Invalid slot")
            if not argv:
                return refuse(f"Empty executable name or zeroeth argument{suffix}: {value}")
            commands.append({"path": os.path.normpath(exe) if exe.startswith("/") else exe, "argv": argv,
                             "prefixes": "".join(prefixes), "ignore": ignore, "no_env_expand": ":" in prefixes})
            value = value[pos:]
            pos = 0
        return None

    # -- service_add_extras() / service_verify()

    def finish_service(self) -> str | None:
        svc = self.service
        if svc["Type"] is None:
            svc["Type"] = "simple" if self.exec["ExecStart"] else "oneshot"
        if svc["Type"] == "oneshot" and not svc["start_timeout_defined"]:
            svc["TimeoutStartUSec"] = None
        start, stop = self.exec["ExecStart"], self.exec["ExecStop"]
        refusal = None
        if not start and not stop and "SuccessAction" not in self.plain:
            refusal = "Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing."
        elif svc["Type"] != "oneshot" and not start:
            refusal = "Service has no ExecStart= setting, which is only allowed for Type=oneshot services. Refusing."
        elif not svc["RemainAfterExit"] and not start and "SuccessAction" not in self.plain:
            refusal = ("Service has no ExecStart= and no SuccessAction= settings and does not have "
                       "RemainAfterExit=yes set. Refusing.")
        elif svc["Type"] != "oneshot" and len(start) > 1:
            refusal = ("Service has more than one ExecStart= setting, which is only allowed for Type=oneshot "
                       "services. Refusing.")
        elif svc["Type"] == "oneshot" and svc["Restart"] not in ("no", "on-failure", "on-abnormal", "on-watchdog",
                                                                  "on-abort"):
            refusal = ("Service has Restart= set to either always or on-success, which isn't allowed for "
                       "Type=oneshot services. Refusing.")
        if refusal:
            self.log("err", f"{self.name}: {refusal}")
            return "ENOEXEC"
        return None


def load(name: str) -> dict[str, Any]:
    """Load a unit from the host's unit directories as `systemctl daemon-reload` would."""
    loader = _Loader(name)
    fragment = find_fragment(name)
    dropins = find_dropins(name)
    definition: dict[str, Any] = {
        "name": name, "kind": loader.kind, "fragment_path": fragment, "dropin_paths": [], "load_state": "loaded",
        "load_error": None, "sources": _sources(fragment, dropins),
    }
    if fragment is None:
        definition.update(load_state="not-found", load_error="No such file or directory")
        return definition
    real = hostlib.host_path(fragment)
    if real.is_symlink() and os.readlink(real) == "/dev/null":
        definition.update(load_state="masked", load_error="Unit is masked.")
        return definition
    try:
        text = real.read_text(errors="replace")
    except OSError as exc:
        definition.update(load_state="error", load_error=exc.strerror or "Input/output error")
        return definition
    error = loader.parse_file(fragment, text)
    if error is None:
        for dropin in dropins:
            definition["dropin_paths"].append(dropin)
            try:
                loader.parse_file(dropin, hostlib.host_path(dropin).read_text(errors="replace"))
            except OSError:
                continue
        if loader.kind == "service":
            error = loader.finish_service()
    if error == "ENOEXEC":
        definition.update(load_state="bad-setting", load_error="Unit has a bad unit file setting.")
    elif error == "EBADMSG":
        definition.update(load_state="error", load_error="Bad message")
    definition.update(
        unit=loader.unit, install=loader.install, service=loader.service, socket=loader.socket, exec=loader.exec,
        plain=loader.plain, messages=loader.messages,
    )
    return definition


BASE_UNITS_PATH = "/etc/botlab-lab/base-units.json"


def base_units() -> set[str]:
    """Units of the build machine's root that are no part of the lab host (recorded by install_base)."""
    data = hostlib.read_json(BASE_UNITS_PATH)
    return set(data.get("units", [])) if isinstance(data, dict) else set()


def all_unit_names() -> list[str]:
    """Every unit file name found in the unit directories, but the build machine's own."""
    ignored = base_units()
    names: set[str] = set()
    for directory in UNIT_DIRS:
        real = hostlib.host_path(directory)
        if not real.is_dir():
            continue
        for entry in os.listdir(real):
            if "." in entry and entry.rsplit(".", 1)[1] in UNIT_SUFFIXES and not (real / entry).is_dir():
                names.add(entry)
    return sorted(names - ignored)
