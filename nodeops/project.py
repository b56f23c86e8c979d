"""The operator's project: the folder that holds ``nodeops.yaml``, ``inventory/`` and ``roles/``.

Every command finds it from the working folder by an upward search for the
marker file ``nodeops.yaml`` (as git finds ``.git`` and Fabric its fabfile):
``--env prod`` then means ``<project>/inventory/prod.yaml``. The nodeops source
repository carries the marker too, so ``--env lab`` works there.

``nodeops init`` writes a commented starting point (``scaffold/`` in this
package) into a folder, refusing to overwrite anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory import check_environment_name

__all__ = ["MARKER", "NoProject", "find_project", "init_files", "project_of", "project_root", "write_init"]

MARKER = "nodeops.yaml"
SCAFFOLD = Path(__file__).resolve().parent / "scaffold"


class NoProject(InvalidInput):
    """``--env`` given outside any project (exit 2)."""


def find_project(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding a ``nodeops.yaml`` file, or None.

    The marker is validated when found (``check_marker``): it holds only comments for now.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        marker = folder / MARKER
        if marker.is_file():
            check_marker(marker)
            return folder
    return None


def project_root(start: Path) -> Path:
    """``find_project(start)``, or NoProject naming where it looked and the two ways out."""
    root = find_project(start)
    if root is None:
        raise NoProject(f"--env: no nodeops project in {start.resolve()} or above (no {MARKER}): run nodeops init "
                        "there, or give --inventory PATH")  # fmt: skip
    return root


def project_of(inventory_file: Path) -> Path:
    """The project an inventory file belongs to: the nearest folder above it with ``nodeops.yaml``; an
    inventory outside any project belongs to its own folder (its ``roles/`` sits next to it)."""
    return find_project(inventory_file.parent) or inventory_file.resolve().parent


def check_marker(marker: Path) -> None:
    """``nodeops.yaml`` marks the project; nodeops reads no setting from it yet, so any key is an error
    (exit 2) rather than a setting silently ignored."""
    try:
        data = yaml.safe_load(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InventoryError(str(marker), "", f"unreadable project marker: {str(err).splitlines()[0]}") from None
    if data not in (None, {}):
        keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        problem = f"unexpected content ({keys}): this file only marks the project root; keep it to comments"
        raise InventoryError(str(marker), "", problem + " (settings live in inventory/*.yaml)")


@dataclass(frozen=True)
class InitFile:
    path: str  # relative to the project root
    text: str


def init_files(env: str) -> tuple[InitFile, ...]:
    """What ``nodeops init --env ENV`` writes, from the scaffold: ``{env}`` in a template becomes ``env``."""
    out = []
    for source in sorted(p for p in SCAFFOLD.rglob("*") if p.is_file()):
        rel = source.relative_to(SCAFFOLD).as_posix()
        rel = rel.replace("ENV", env).replace("dot-", ".")  # dot-gitignore -> .gitignore; no hidden file in a wheel
        out.append(InitFile(rel, source.read_text(encoding="utf-8").replace("{env}", env)))
    return tuple(out)


def write_init(root: Path, env: str) -> list[Path]:
    """Write ``init_files(env)`` under ``root``; if any of them exists, write nothing and raise (exit 2)."""
    check_environment_name(env)
    files = init_files(env)
    existing = [f.path for f in files if (root / f.path).exists()]
    if existing:
        raise InvalidInput(f"init: {', '.join(existing)} already exist in {root}; nothing was written "
                           "(move them away, or init another folder)")  # fmt: skip
    written = []
    for f in files:
        target = root / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8") as out:  # "x": never replaces a file made meanwhile
            out.write(f.text)
        written.append(target)
    return written
