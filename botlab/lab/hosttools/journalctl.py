"""The lab's journalctl: shows what systemctl and the services wrote to /var/log/botlab-lab/journal/.

Supports -u/--unit (repeatable), -n/--lines, -e/-x/-b/--no-pager (harmless); lines are shown as written.
"""

from __future__ import annotations

import os
import sys

import hostlib
import unitfile


def main(argv: list[str]) -> int:
    units: list[str] = []
    lines: int | None = None
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-u", "--unit", "-n", "--lines"):
            if i + 1 >= len(args):
                print(f"journalctl: option '{arg}' requires an argument", file=sys.stderr)
                return 1
            i += 1
            if arg in ("-u", "--unit"):
                units.append(unitfile.mangle_name(args[i]))
            else:
                lines = int(args[i])
        elif arg.startswith(("--unit=", "--lines=")):
            key, _, value = arg.partition("=")
            if key == "--unit":
                units.append(unitfile.mangle_name(value))
            else:
                lines = int(value)
        elif arg.startswith("-u") and len(arg) > 2:
            units.append(unitfile.mangle_name(arg[2:]))
        elif arg in ("-e", "-x", "-xe", "-ex", "-b", "--no-pager", "-q", "--quiet", "--boot", "--pager-end",
                     "--catalog", "--no-hostname", "-l", "--full"):
            if "e" in arg.lstrip("-") and lines is None and arg != "--no-pager":
                lines = 1000
        elif arg.startswith("-xeu") or arg.startswith("-eu"):
            units.append(unitfile.mangle_name(arg.split("u", 1)[1] or args[i + 1]))
            if not arg.split("u", 1)[1]:
                i += 1
            lines = lines or 1000
        else:
            print(f"journalctl: unrecognized option '{arg}'", file=sys.stderr)
            return 1
        i += 1
    directory = hostlib.host_path(hostlib.JOURNAL_DIR)
    if not units and directory.is_dir():
        units = sorted(name[:-4] for name in os.listdir(directory) if name.endswith(".log"))
    output: list[str] = []
    for unit in units:
        output += hostlib.journal_tail(unit, 0)
    if lines is not None:
        output = output[-lines:]
    if not output:
        print("-- No entries --")
    else:
        print("\n".join(output))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
