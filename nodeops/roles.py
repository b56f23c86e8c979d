"""Roles: one folder per kind of node (``roles/<name>/role.yaml``, its templates in ``templates/<name>/``) -> a
frozen model.

A role says which image user owns the node's files, which port it serves and
where its health check is, where the node sees its files (``mount``), the
variables a service may override (``defaults``), the secrets it needs, and
per *profile* (a way to start the node: Chainlink v2 with TOML files, v1 with
an env file) which files to render and the command line.

Search path: a list of folders that hold role folders, first match wins
(``role_search_path``: the ``roles/`` folder of the inventory's project (the
nearest folder above the inventory with ``nodeops.yaml``; an inventory outside
any project: ``roles/`` next to it), then the built-in roles: ``roles/`` of
the source repository, installed as ``nodeops/builtin/roles``).
The role's ``role.yaml`` is the first one found; its templates are looked up,
file by file, in the ``templates/<role>/`` folder beside each ``roles/``
folder on the path (``templates_folder``), in order: ``<project>/templates/``,
then the built-in ``templates/`` (installed as ``nodeops/builtin/templates``).
So an operator overrides one template by shipping just that file under
``<project>/templates/<role>/`` (``templates/chainlink/v2/secrets.toml.j2``):
the others fall back to the built-in ones of the same role. A
``roles/<role>/templates/`` folder (the layout before) is refused, so that an
override is never silently ignored.

What data cannot say, a role says in a small Python module beside its
``role.yaml``: ``roles/<role>/role.py``, through the role interface
(nodeops.role_hooks: its log format, which node a health reply came from,
rotation kinds of its own). The module is the one beside the ``role.yaml``
in effect, else the same role's further on the search path (an operator's
copy of a built-in ``role.yaml`` keeps the built-in module, as it keeps the
templates); none: the engine's defaults. It is run once per process
(``load_hooks``); the Role carries its hooks (``Role.hooks``). A role folder
is a package (``role_package``): ``role.py`` and the modules beside it import
each other relatively (``from .keys import sign``), and ``role_module``
imports one of them by name, the same from the repository, a project and the
wheel.

A service picks a profile with its variable ``PROFILE`` (the inventory has
no profile field), else the role's ``default_profile``.

Two rules a role states as data, checked per service before any host
(``check_service``): ``writable_paths`` names variables that hold a path the
node writes to, refused at or under ``mount`` (the node sees that folder
read-only); ``secret_variables`` maps a variable to the secret name a service
may give instead of it (an RPC URL that embeds an API key), never both.

``defaults`` and ``variables`` (those without a default) list every variable the role
knows: a service that sets any other is refused (``check_variables``). ``unused_with`` names, per variable,
the defaults its templates do not read while a service sets it (Chainlink: with ``EVM_CHAINS``, the single
chain's ``ETH_CHAIN_ID``, ``ETH_URL``, ...): deploy's diff leaves them out (``Role.read_variables``).

Every problem is one ``RoleError`` (exit 2) naming the role file and the
path inside it (``profiles.v2.files.config.toml.template``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import re
import sys
import threading
import traceback
from collections.abc import Collection, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory import Inventory, Service, shares_host
from nodeops.project import project_of
from nodeops.role_file import (  # role.yaml's model and its validation
    MAX_NODES,
    PROFILE_VARIABLE,
    BackupSpec,
    LeaseSpec,
    Profile,
    Role,
    RoleError,
    RoleFile,
    RotationSpec,
    check_kinds,
    parse_role,
    path_problem,
)
from nodeops.role_hooks import DEFAULT_HOOKS, MODULE_FILE, RoleHooks, hooks_from

__all__ = [
    "BUILTIN_ROLES",
    "BUILTIN_TEMPLATES",
    "PROFILE_VARIABLE",
    "BackupSpec",
    "LeaseSpec",
    "Profile",
    "Role",
    "RoleError",
    "RoleFile",
    "RoleHooks",
    "RotationSpec",
    "check_service",
    "check_variables",
    "load_role",
    "profile_name",
    "role_for",
    "role_module",
    "role_package",
    "role_search_path",
    "templates_folder",
]


def _builtin() -> Path:
    """The folder holding the built-in ``roles/`` and ``templates/``: ``nodeops/builtin`` when installed from a
    wheel (pyproject.toml maps the repository's ``roles/`` and ``templates/`` there), else the source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "builtin"
    return installed if installed.is_dir() else here.parent


ROLE_FILE = "role.yaml"
TEMPLATES = "templates"
BUILTIN_ROLES = _builtin() / "roles"
BUILTIN_TEMPLATES = _builtin() / TEMPLATES


def templates_folder(roles_folder: Path, role: str) -> Path:
    """Where the templates of ``role`` are for a folder of role folders: ``templates/<role>`` beside it
    (``<project>/roles`` -> ``<project>/templates/<role>``), whether or not it exists."""
    return roles_folder.parent / TEMPLATES / role


_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_MODULE = re.compile(r"[a-z_][a-z0-9_]*")  # a module beside role.py: an identifier


# ---------------------------------------------------------------- finding a role


def role_search_path(inventory_source: Path | None = None) -> tuple[Path, ...]:
    """``<project>/roles`` of the inventory's project (``nodeops.project.project_of``; listed whether
    or not it exists, so an unknown role's error names it), then the built-in roles."""
    if inventory_source is None:
        return (BUILTIN_ROLES,)
    mine = project_of(inventory_source) / "roles"
    return (BUILTIN_ROLES,) if mine.resolve() == BUILTIN_ROLES else (mine, BUILTIN_ROLES)


def role_for(inventory: Inventory, service: Service, search_path: Sequence[Path] | None = None) -> Role:
    """The role of ``service``, serving on the service's ``port`` when it sets one; errors name the inventory file
    and ``services.<svc>.role``. ``InventoryError`` when another service with nodes on the same host serves on the
    same port (the inventory refuses that alone when it can tell without the roles: the same explicit port, or the
    same role with neither setting one), or publishes a port of the other's (a role's ``ports``)."""
    if search_path is None:
        search_path = role_search_path(inventory.source)
    file = str(inventory.source)

    def served(s: Service) -> Role:
        role = load_role(s.role, search_path, file=file, where=f"services.{s.name}.role")
        return dataclasses.replace(role, port=s.port) if s.port else role

    role = served(service)
    for other in inventory.services.values():
        if other.name == service.name or not shares_host(other, service):
            continue
        a, b, theirs = *sorted((other.name, service.name)), served(other)
        if theirs.port == role.port:
            raise InventoryError(file, f"services.{service.name}.port", f"services {a} and {b} share a host and "
                                 f"both serve on port {role.port}: set a different port on one of them")  # fmt: skip
        if both := sorted({theirs.port, *theirs.ports.values()} & {role.port, *role.ports.values()}):
            whose = other.name if theirs.port == both[0] else service.name if role.port == both[0] else None
            fix = f"set services.{whose}.port to another" if whose else "put them on different hosts"
            raise InventoryError(file, f"services.{service.name}.nodes", f"services {a} and {b} share a host and "
                                 f"both publish port {both[0]} (a role's ports are published as they are): "
                                 f"{fix}")  # fmt: skip
    return role


def load_role(
    name: str, search_path: Sequence[Path] = (BUILTIN_ROLES,), *, file: str | None = None, where: str | None = None
) -> Role:
    """Find role ``name`` on ``search_path`` and validate it.

    ``file``/``where`` locate the reference for an unknown role (the inventory
    file and ``services.X.role``).
    """
    folders = tuple(Path(p) for p in search_path)
    if not _NAME.fullmatch(name):
        _unknown(name, folders, file, where, f"invalid role name {name!r}")
    definition = next((f / name / ROLE_FILE for f in folders if (f / name / ROLE_FILE).is_file()), None)
    if definition is None:
        _unknown(name, folders, file, where, f"unknown role {name!r}")
    old = next((f / name / TEMPLATES for f in folders if (f / name / TEMPLATES).is_dir()), None)
    if old is not None:  # the layout before: an override there would silently stop applying
        new = templates_folder(old.parent.parent, name)
        raise RoleError(str(old), "", f"a role's templates are read from {new} now, not from roles/: move the files "
                        "there (same paths inside), then remove this folder")  # fmt: skip
    start = next(i for i, f in enumerate(folders) if f / name / ROLE_FILE == definition)
    module = next((f / name / MODULE_FILE for f in folders[start:] if (f / name / MODULE_FILE).is_file()), None)
    hooks = DEFAULT_HOOKS if module is None else load_hooks(module)
    return parse_role(name, definition, tuple(templates_folder(f, name) for f in folders), hooks)


_LOADED: dict[Path, RoleHooks] = {}  # a module is run once per process
_LOADING = threading.RLock()  # role_module takes it again inside load_hooks


def role_package(folder: Path) -> str:
    """The import name of role folder ``folder`` (``roles/<role>``) as a package, registered once per process
    (``nodeops_role_<12 hex digits of the folder's resolved path>``, a package with no ``__init__``): the modules of
    a role import each other relatively (``from .keys import sign`` in ``roles/<role>/certs.py`` or its
    ``role.py``), the same way from the repository, an operator's project and the installed wheel (where the
    built-in roles are ``nodeops/builtin/roles``)."""
    key = folder.resolve()
    name = f"nodeops_role_{hashlib.sha256(str(key).encode()).hexdigest()[:12]}"
    with _LOADING:
        if name not in sys.modules:
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [str(key)]
            sys.modules[name] = importlib.util.module_from_spec(spec)
    return name


def role_module(role: str, module: str, search_path: Sequence[Path] = (BUILTIN_ROLES,)) -> ModuleType:
    """Module ``module`` of role ``role``: ``<folder>/<role>/<module>.py`` of the first folder on ``search_path``
    that has it, imported once per process as part of its role's package (``role_package``). RoleError (exit 2)
    naming the file when there is none or it cannot be run."""
    folders = tuple(Path(p) for p in search_path)
    name = f"{role}/{module}.py"
    found = _NAME.fullmatch(role) and _MODULE.fullmatch(module)
    file = next((f / name for f in folders if (f / name).is_file()), None) if found else None
    if file is None:
        raise RoleError(name, "", f"no such role module in {', '.join(str(f) for f in folders) or 'no folders'}")
    return _import(file)


def _import(file: Path) -> ModuleType:
    """Role module ``file`` imported; whatever its code raises meanwhile (an Exception, sys.exit, a
    KeyboardInterrupt, any BaseException) is a RoleError (exit 2) naming the file and line it was raised at, when
    that is in the role's folder (else ``file``), and what it raised, in one line."""
    try:
        return importlib.import_module(f"{role_package(file.parent)}.{file.stem}")
    except BaseException as err:  # noqa: BLE001 (whatever a role's code raises at import is the role's problem)
        where, line = _raised_at(err, file)
        if isinstance(err, SystemExit):
            why = f"it called sys.exit({err.code!r}) while it was imported; a role's module only defines its hooks"
        else:
            said = " ".join(str(err.msg if isinstance(err, SyntaxError) else err).split())  # one line
            why = f"{type(err).__name__}: {said}" if said else type(err).__name__
        raise RoleError(str(where), f"line {line}" if line else "", f"cannot load the role's module: {why}") from None


def _raised_at(err: BaseException, file: Path) -> tuple[Path, int | None]:
    """The file and line in ``file``'s folder where ``err`` was raised (a SyntaxError's own), else (``file``, None)."""
    folder = file.parent.resolve()
    if isinstance(err, SyntaxError) and err.filename and Path(err.filename).resolve().parent == folder:
        return Path(err.filename), err.lineno
    inside = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve().parent == folder]
    return (Path(inside[-1].filename), inside[-1].lineno) if inside else (file, None)


def load_hooks(module: Path) -> RoleHooks:
    """The hooks role module ``module`` (a ``role.py``) defines over the engine's defaults (nodeops.role_hooks),
    run once per process as the module ``role`` of its folder's package (``role_package``: it may import the
    modules beside it relatively); RoleError (exit 2) naming the file (and the name of the wrong shape) when it
    cannot be run or defines a hook of the wrong shape."""
    key = module.resolve()
    with _LOADING:
        if key not in _LOADED:
            found = hooks_from(vars(_import(key)), str(module))
            if isinstance(found, tuple):
                raise RoleError(str(module), found[0], found[1])
            _LOADED[key] = found
    return _LOADED[key]


def _unknown(name: str, folders: tuple[Path, ...], file: str | None, where: str | None, what: str) -> NoReturn:
    searched = ", ".join(str(f) for f in folders) or "no folders"
    found = sorted({r.name for f in folders if f.is_dir() for r in f.iterdir() if (r / ROLE_FILE).is_file()})
    problem = f"{what}: no {name}/{ROLE_FILE} in {searched} (roles found: {', '.join(found) or 'none'})"
    if file:
        raise InventoryError(file, where or "", problem)
    raise InvalidInput(f"{where}: {problem}" if where else problem)


def profile_name(role: Role, service: Service, file: str | None = None) -> str:
    """The profile a service selects with its ``PROFILE`` variable, else the role's default."""
    chosen = service.variables.get(PROFILE_VARIABLE, role.default_profile)
    if not isinstance(chosen, str) or chosen not in role.profiles:
        where = f"services.{service.name}.variables.{PROFILE_VARIABLE}"
        problem = f"role {role.name!r} has no profile {chosen!r} (profiles: {', '.join(role.profiles)})"
        if file:
            raise InventoryError(file, where, problem)
        raise InvalidInput(f"{where}: {problem}")
    return str(chosen)


def check_service(role: Role, service: Service, file: str) -> None:
    """The role's rules for one service's inputs (no host needed), or ``InventoryError`` (exit 2) naming ``file``
    (the inventory) and the variable or secret reference, with the fix.

    ``writable_paths``: each such variable (the service's value, else the role's default) is an absolute path
    (or ``~``/``~/...``, the image user's home) and not at or under the role's ``mount``, which the node sees
    read-only (Chainlink makes its root directory ``<= 0700`` and stops if it cannot: issue 13).
    ``secret_variables``: a service gives the value as the variable or as the secret reference, not both.
    ``port``: not one of the role's ``ports``. ``nodes``: at most what the role's ``activation`` takes
    (role_file.MAX_NODES: 2 under lease and keys, an active and a standby; 32 under all), at ``services.<svc>.nodes``.
    """
    check_kinds(role, service, file)
    if role.port in role.ports.values():  # the role refuses its own; a service's port (role_for) may meet one
        name = next(n for n, p in role.ports.items() if p == role.port)
        raise InventoryError(file, f"services.{service.name}.port", f"port {role.port} is the role's ports.{name}, "
                             "published already: choose another")  # fmt: skip
    most, count = MAX_NODES.get(role.activation or "", 0), len(service.nodes)
    if role.activation is not None and count > most:
        what = "an active and an optional standby" if most == 2 else "every node serves"
        raise InventoryError(file, f"services.{service.name}.nodes",
                             f"expected 1 to {most} nodes ({what}), got {count}: role {role.name} has activation "
                             f"{role.activation}; only activation all takes up to {MAX_NODES['all']}")  # fmt: skip
    for var in role.writable_paths:
        if var not in service.variables:
            continue  # the role's default, checked when the role was loaded
        problem = path_problem(service.variables[var], role.mount)
        if problem:
            default = role.defaults[var]
            raise InventoryError(file, f"services.{service.name}.variables.{var}",
                                 f"{problem}; remove it to use the role's default {default!r}")  # fmt: skip
    for var, secret in role.secret_variables.items():
        if service.variables.get(var) not in (None, "") and secret in service.secrets:
            raise InventoryError(
                file, f"services.{service.name}.variables.{var}",
                f"given both as this variable and as the secret reference services.{service.name}.secrets.{secret}; "
                "keep one (the secret reference, if the value holds a key or password)",
            )  # fmt: skip


def check_variables(
    inventory: Inventory, service: Service, role: Role, search_path: Sequence[Path] | None = None
) -> None:
    """Every variable ``service`` sets is one its role knows (``Role.known_variables``: role.yaml's ``defaults`` and
    ``variables``, and ``PROFILE``), else ``InventoryError`` (exit 2) naming the inventory file and
    ``services.<svc>.variables.<name>`` (``defaults.variables.<name>`` when the service takes it from ``defaults:``),
    a close name when there is one (``LOGLEVEL``: ``LOG_LEVEL``) and the role's variables. A typo would otherwise
    change only the config hash: a rolling replace that changes nothing. A variable of ``defaults:`` that the role
    of another service knows is meant for that one: not refused here (``search_path``: as ``role_for``'s). Then the
    values: the role's ``variable_problems`` hook's first problem, and a lease variable of the wrong kind."""
    known = role.known_variables
    for name in service.variables:
        if name in known:
            continue
        where = f"services.{service.name}.variables.{name}"
        if name in service.inherited:
            others = {s.role: s for s in inventory.services.values() if s.role != role.name}
            if any(name in role_for(inventory, other, search_path).known_variables for other in others.values()):
                continue
            where = f"defaults.variables.{name}"
        problem = f"role {role.name!r} has no variable {name}{_close_name(name, known)}"
        raise InventoryError(str(inventory.source), where, f"{problem}; its variables: {', '.join(sorted(known))}")
    for path, problem in role.hooks.variable_problems({**role.defaults, **service.variables}):
        raise InventoryError(str(inventory.source), _set_at(service, path), problem)  # the first: one line
    spec = role.lease
    for name, kind in () if spec is None else ((spec.host, "host"), (spec.port, "port"), (spec.database, "name"),
                                                (spec.sslmode, "name")):  # fmt: skip
        problem = lease_variable_problem(kind, service.variables[name]) if name in service.variables else None
        if problem:
            raise InventoryError(str(inventory.source), _set_at(service, name), f"{problem} (it locates the lease "
                                 "database)")  # fmt: skip


def _set_at(service: Service, path: str) -> str:
    """Where the variable of ``path`` (``PUBLIC_PEERS[0].port``) is set: ``defaults.variables.<path>`` when the
    service takes it from ``defaults:``, else ``services.<svc>.variables.<path>``."""
    name = re.split(r"[.\[]", path, maxsplit=1)[0]
    return f"{'defaults' if name in service.inherited else f'services.{service.name}'}.variables.{path}"


def lease_variable_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` cannot be the lease database's ``kind`` (``port``: a number 1-65535, as an integer or its
    digits; ``host``/``name``: one non-empty word), with the fix; None when it can. Pure."""
    if kind == "port":
        number = not isinstance(value, bool) and isinstance(value, (int, str)) and str(value).isdigit()
        return None if number and 1 <= int(value) <= 65535 else f"must be a port number (1-65535), got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        return f"must be a {kind}: one value, got {value!r}"
    return None


def _close_name(name: str, known: Collection[str]) -> str:
    """`` (did you mean X?)`` for the known name ``name`` is most likely a typo of, else ''."""

    def squashed(n: str) -> str:
        return n.replace("_", "").upper()

    same = [k for k in sorted(known) if squashed(k) == squashed(name)]
    match = same or difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.75)
    return f" (did you mean {match[0]}?)" if match else ""
