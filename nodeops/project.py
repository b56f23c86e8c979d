"""The operator's project: the folder that holds ``nodeops.yaml``, ``inventory/`` and ``roles/``.

Every command finds it from the working folder by an upward search for the
marker file ``nodeops.yaml`` (as git finds ``.git`` and Fabric its fabfile):
``--env prod`` then means ``<project>/inventory/prod.yaml``. The nodeops source
repository carries the marker too, so ``--env lab`` works there.

``nodeops init`` writes a commented starting point (``scaffold/`` in this
package) into a folder, or one more environment into the project around it
(``plan_init``), all or nothing and never over an existing file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory import check_environment_name

__all__ = [
    "MARKER",
    "Init",
    "NoProject",
    "find_project",
    "init_files",
    "plan_init",
    "project_of",
    "project_root",
    "write_init",
    "write_new_files",
]

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


DEFAULT_ENV = "prod"  # the first environment of a new project when --env is not given


@dataclass(frozen=True)
class Init:
    """What one ``nodeops init`` writes: ``files`` under ``root``, either a new project or one environment."""

    root: Path
    files: tuple[InitFile, ...]
    new_project: bool  # False: one environment added to the existing project at root


def plan_init(here: Path, project: Path | None, env: str | None, nested: bool) -> Init:
    """What ``nodeops init [--env ENV] [--nested]`` run in folder ``here`` writes; reads none of the operator's files.

    ``project`` is the project found at or above ``here`` (``find_project(here)``), both resolved paths.

    - outside any project, or with ``nested``: a new project in ``here``, every scaffold file for ``env``
      (default ``prod``); being nearer, it then wins over ``project`` for every command run inside ``here``;
    - inside a project, with ``env``: only ``inventory/ENV.yaml`` (the same commented starting point), in
      ``project``, however deep ``here`` is;
    - inside a project without ``env`` (what would silently have nested a second project), or ``nested``
      where ``here`` is the project's root itself: InvalidInput (exit 2) naming the root and the way on.

    An invalid environment name is InvalidInput (``check_environment_name``).
    """
    if env is not None:
        check_environment_name(env)
    if project is None or (nested and project != here):
        return Init(here, init_files(env or DEFAULT_ENV), new_project=True)
    if nested:
        raise InvalidInput(f"init --nested: {here} is a nodeops project's root already ({MARKER}); nothing was "
                           "written: a nested project goes in a folder below it (or add an environment: nodeops "
                           "init --env NAME)")  # fmt: skip
    if env is None:
        if project == here:
            raise InvalidInput(f"init: {here} is a nodeops project already ({MARKER}); nothing was written: add "
                               "an environment to it with nodeops init --env NAME")  # fmt: skip
        raise InvalidInput(f"init: {here} is inside the nodeops project at {project} ({MARKER}); nothing was "
                           "written: add an environment to it with nodeops init --env NAME, or start a separate "
                           "project here with nodeops init --nested")  # fmt: skip
    [inventory] = [f for f in init_files(env) if f.path == f"inventory/{env}.yaml"]
    return Init(project, (inventory,), new_project=False)


def write_init(here: Path, env: str | None = None, nested: bool = False) -> Init:
    """Plan (``plan_init``) and write what ``nodeops init`` run in ``here`` writes (``write_new_files``).

    Returns the plan carried out; raises InvalidInput (exit 2, nothing written) on a refusal, an existing
    file or a file that cannot be written; an invalid marker above ``here`` is InventoryError (exit 2).
    """
    here = here.resolve()
    init = plan_init(here, find_project(here), env, nested)
    if init.new_project:
        fix = "move them away, or init another folder"
    else:
        fix = "edit that file, or choose another --env name"
    write_new_files(init.root, init.files, fix)
    return init


def write_new_files(root: Path, files: Sequence[InitFile], fix: str) -> list[Path]:
    """Write ``files`` under ``root``, all or nothing; returns their paths.

    Each file is written in full to a hidden file beside its target, then linked into place (``os.link``
    never replaces a file), so a file is never seen half written and none is overwritten. Refused before
    anything is written when a target exists (InvalidInput, exit 2, naming them and ``fix``); when a
    write fails (a target that appears meanwhile, a parent that is not a folder, a full disk), the files
    and folders made so far are removed and InvalidInput names the file and the reason. On Ctrl-C, the
    same removal, then the interrupt goes on.
    """
    existing = [f.path for f in files if os.path.lexists(root / f.path)]
    if existing:
        verb = "already exists" if len(existing) == 1 else "already exist"
        raise InvalidInput(f"init: {', '.join(existing)} {verb} in {root}; nothing was written ({fix})")
    made: list[Path] = []  # folders, parents first
    staged: list[Path] = []
    placed: list[Path] = []
    current = ""  # the file being written or placed, for the message
    try:
        for f in files:
            current, target = f.path, root / f.path
            _make_folders(target.parent, made)
            temp = target.with_name(f".{target.name}.{os.urandom(6).hex()}.nodeops-init")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
            staged.append(temp)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(f.text)
        for f, temp in zip(files, staged, strict=True):
            current, target = f.path, root / f.path
            os.link(temp, target)  # FileExistsError if it appeared since the check above
            placed.append(target)
    except BaseException as err:
        for path in (*placed, *staged):
            path.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(err, FileExistsError) and str(root / current) in (err.filename2, err.filename):
            raise InvalidInput(f"init: {current} appeared in {root} meanwhile; nothing was written ({fix})") from None
        if isinstance(err, OSError):
            reason = err.strerror or str(err)
            if err.filename is not None:
                reason += f": {err.filename}"
            raise InvalidInput(f"init: cannot write {current} in {root}: {reason}; nothing was written") from None
        raise
    for temp in staged:
        temp.unlink()
    return placed


def _make_folders(folder: Path, made: list[Path]) -> None:
    """Make ``folder`` and its missing parents, appending each to ``made`` once made (parents first)."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for m in reversed(missing):
        m.mkdir()  # FileExistsError when m is a file: the caller names it
        made.append(m)
