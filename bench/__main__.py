"""Run every benchmark: `python -m bench [name ...]`."""

from __future__ import annotations

import sys

from bench import cli_startup, enlist, fanout, inventory, kubernetes, lab_hosts, requests

BENCHMARKS = {"cli_startup": cli_startup.run, "requests": requests.run, "enlist": enlist.run,
              "kubernetes": kubernetes.run, "lab_hosts": lab_hosts.run, "inventory": inventory.run,
              "fanout": fanout.run}


def main(names: list[str]) -> None:
    for name in names or list(BENCHMARKS):
        BENCHMARKS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
