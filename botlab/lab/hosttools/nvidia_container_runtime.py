"""The lab's nvidia-container-runtime (1.17.8): `--version`, and, invoked as an OCI runtime, the failure the real
one gives on a host without an NVIDIA driver (its prestart hook's nvidia-container-cli cannot load NVML). On a
host with GPUs it refuses loudly: the lab runs no containers."""

from __future__ import annotations

import sys

import hostlib
from nvidia_ctk import COMMIT, VERSION

SPEC = "1.2.1"
RUNC_VERSION = "runc version 1.1.12-0ubuntu2~22.04.1\nspec: 1.0.2-dev\ngo: go1.21.1\nlibseccomp: 2.5.3"
NO_DRIVER = ("runc create failed: unable to start container process: error during container init: error running "
             "hook #0: error running hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\n"
             "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open shared "
             "object file: no such file or directory: unknown")
OCI_COMMANDS = ("create", "run", "start", "exec", "restore")
OTHER_COMMANDS = ("state", "delete", "kill", "features", "list", "ps", "pause", "resume", "update", "checkpoint",
                  "events")


def has_version_flag(args: list[str]) -> bool:
    for arg in args:
        name = arg.split("=", 1)[0]
        if name != name.lstrip("-") and name.lstrip("-") == "version":
            return True
    return False


def main(argv: list[str]) -> int:
    args = argv[1:]
    if has_version_flag(args):
        print(f"NVIDIA Container Runtime version {VERSION}\ncommit: {COMMIT}\nspec: {SPEC}\n")
        print(RUNC_VERSION)
        return 0
    command = next((a for a in args if a in OCI_COMMANDS or a in OTHER_COMMANDS), None)
    if command in OCI_COMMANDS and not hostlib.facts().get("gpus"):
        print(NO_DRIVER, file=sys.stderr)
        return 1
    print(f"nvidia-container-runtime: the botlab virtual lab does not emulate running containers "
          f"(command: {command or ' '.join(args) or 'none'})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
