"""Which inventory a command uses: `-i PATH`, `$BOTLAB_INVENTORY`, or the one under the
working folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from botlab.errors import InputError, Location, Problem
from botlab.inventory.load import INVENTORY_FILE, absolute

ENV_VAR = "BOTLAB_INVENTORY"


def find_inventory(option: str | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """The absolute path of the lab.yaml to use.

    `option` (`-i PATH`) names the file or its folder; else `$BOTLAB_INVENTORY` does;
    else `./lab.yaml` if the working folder is an inventory folder; else the only
    `inventory/*/lab.yaml` (or `inventory/lab.yaml`) under `cwd`. Relative paths resolve
    against `cwd`. InputError if what is named does not exist, or none or several are found.
    """
    cwd = absolute(cwd)
    if option:
        return _named(option, cwd, "-i")
    named = environ.get(ENV_VAR, "")
    if named.strip():
        return _named(named, cwd, ENV_VAR)
    here = cwd / INVENTORY_FILE
    if _present(here):
        return absolute(here)
    found = sorted(cwd.glob(f"inventory/*/{INVENTORY_FILE}"))
    if _present(cwd / "inventory" / INVENTORY_FILE):
        found.insert(0, cwd / "inventory" / INVENTORY_FILE)
    found = [p for p in found if _present(p)]
    where = Location(str(cwd))
    if not found:
        raise InputError(
            Problem(
                where,
                "inventory",
                f"no inventory found: expected inventory/<lab>/{INVENTORY_FILE} under this folder; "
                f"name one with -i PATH or {ENV_VAR}=PATH",
            )
        )
    if len(found) > 1:
        listed = ", ".join(str(p.relative_to(cwd)) for p in found)
        raise InputError(
            Problem(
                where,
                "inventory",
                f"several inventories found ({listed}): choose one with -i PATH or {ENV_VAR}=PATH",
            )
        )
    return absolute(found[0])


def _named(text: str, cwd: Path, source: str) -> Path:
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        raise InputError(Problem(Location(text), source, f"cannot expand ~ in {text!r}")) from None
    if not path.is_absolute():
        path = cwd / path
    path = absolute(path)
    if path.is_dir():
        candidate = path / INVENTORY_FILE
        if not _present(candidate):
            raise InputError(
                Problem(
                    Location(str(path)),
                    source,
                    f"this folder holds no {INVENTORY_FILE}: name the inventory file or its folder",
                )
            )
        return candidate
    if not path.exists():
        raise InputError(Problem(Location(str(path)), source, "no such file or folder"))
    return path


def _present(path: Path) -> bool:
    """Whether `path` exists and is not a folder. A FIFO or device is found too, for
    loading to refuse by name (only stat is called: nothing is opened here)."""
    return path.exists() and not path.is_dir()
