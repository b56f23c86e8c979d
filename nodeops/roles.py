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
import posixpath
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Literal, NoReturn

import yaml

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory import (  # _Loader: safe YAML that refuses duplicate keys
    Inventory,
    Service,
    _Loader,
    shares_host,
    variable_problem,
)
from nodeops.project import project_of

__all__ = [
    "BUILTIN_ROLES",
    "BUILTIN_TEMPLATES",
    "PROFILE_VARIABLE",
    "Profile",
    "Role",
    "RoleError",
    "RoleFile",
    "RotationSpec",
    "check_service",
    "check_variables",
    "load_role",
    "profile_name",
    "role_for",
    "role_search_path",
    "templates_folder",
]


def _builtin() -> Path:
    """The folder holding the built-in ``roles/`` and ``templates/``: ``nodeops/builtin`` when installed from a
    wheel (pyproject.toml maps the repository's ``roles/`` and ``templates/`` there), else the source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "builtin"
    return installed if installed.is_dir() else here.parent


PROFILE_VARIABLE = "PROFILE"
ROLE_FILE = "role.yaml"
TEMPLATES = "templates"
BUILTIN_ROLES = _builtin() / "roles"
BUILTIN_TEMPLATES = _builtin() / TEMPLATES


def templates_folder(roles_folder: Path, role: str) -> Path:
    """Where the templates of ``role`` are for a folder of role folders: ``templates/<role>`` beside it
    (``<project>/roles`` -> ``<project>/templates/<role>``), whether or not it exists."""
    return roles_folder.parent / TEMPLATES / role


Scalar = str | int | float | bool
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FILE_NAME = re.compile(r"[A-Za-z0-9._-]+")


class RoleError(InventoryError):
    """A problem in a role's files, located by the role file and the path inside it (exit 2)."""


@dataclass(frozen=True)
class RoleFile:
    """A file rendered for the node: ``name`` in the node's folder, from ``template``."""

    name: str
    template: str
    secret: bool
    read: Literal["start", "lease"] = "start"  # when the node reads it: at start, or only once it holds the lease


@dataclass(frozen=True)
class Profile:
    name: str
    files: Mapping[str, RoleFile]
    command: tuple[str, ...]  # with "{mount}" placeholders
    env_file: str | None  # one of ``files``, passed as ``--env-file``

    def argv(self, mount: str) -> tuple[str, ...]:
        return tuple(arg.format(mount=mount) for arg in self.command)


@dataclass(frozen=True)
class LeaseSpec:
    """Where the role's nodes keep their lease: a PostgreSQL table (client_id, expires_at), the
    variables that locate the database and the secrets that log in to it."""

    table: str
    host: str  # variable names
    port: str
    database: str
    sslmode: str
    user: str  # secret names
    password: str


@dataclass(frozen=True)
class BackupSpec:
    """``backup:``: what fab backup's manifest records from the database besides the dump (the database is
    the one ``lease:`` locates): every row of the tables holding the node's encrypted keys, as digests, and
    the version the node last ran on it, from ``version_table``'s ``version`` column."""

    key_tables: tuple[str, ...]
    version_table: str | None = None


@dataclass(frozen=True)
class RotationSpec:
    """``rotation.<name>``: what ``fab rotate-secrets --secret <name>`` changes, and where it is checked.

    Kinds: ``postgres-password`` (``ALTER ROLE`` of ``user`` on the server the
    role's ``lease:`` locates, as the admin role whose user and password the
    service's secrets ``admin_user`` and ``admin_password`` hold; then the pair
    is rolled onto it), ``chainlink-api-password`` (the API user ``user``
    changes it on the active node: ``PATCH /v2/user/password``) and
    ``refused`` (cannot be changed in place: ``reason`` says why and what to do).
    """

    name: str
    kind: Literal["postgres-password", "chainlink-api-password", "refused"]
    secret: str  # the role secret whose value is rotated
    user: str | None = None  # the role secret naming whose password it is (database role, API email)
    admin_user: str | None = None  # postgres-password: service secrets (optional in `secrets:`) of the admin
    admin_password: str | None = None
    reason: str | None = None  # refused


@dataclass(frozen=True)
class Role:
    name: str
    source: Path  # the role.yaml in effect
    template_dirs: tuple[Path, ...]  # templates/<role> beside each roles/ folder, in order (operator's first, built-in
    # last), each whether or not it exists
    description: str
    user: int  # container uid; the node's files are owned by it
    port: int  # API/UI port
    health: str  # HTTP path; 200 = healthy
    mount: str  # where the node sees its files
    stop_timeout: float  # seconds for a graceful stop
    standby_log: str | None  # what a standby logs while it waits (case-insensitive): extra evidence, never required
    defaults: Mapping[str, Scalar]
    secrets: tuple[str, ...]  # secret names a service must define
    lease: LeaseSpec | None  # how to read who holds the active role; None: the role has no lease
    profiles: Mapping[str, Profile]
    default_profile: str
    rotation: Mapping[str, RotationSpec]  # what fab rotate-secrets can rotate, in the order --secret all takes
    backup: BackupSpec | None = None  # what fab backup records of the node's keys; None: the role has no backup
    writable_paths: tuple[str, ...] = ()  # variables holding a path the node writes: never at or under `mount`
    secret_variables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # variable -> the
    # secret a service may give instead of it
    variables: tuple[str, ...] = ()  # role.yaml ``variables``: the ones a service may set that have no default
    unused_with: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))  # variable ->
    # the defaults its templates do not read while a service sets it

    def read_variables(self, own: Mapping[str, object]) -> dict[str, object]:
        """The variables the templates read for a service whose own variables are ``own``: the role's defaults
        overlaid by ``own``, without the defaults ``unused_with`` names for a variable ``own`` sets (Chainlink with
        ``EVM_CHAINS``: no ``ETH_CHAIN_ID``, ``ETH_URL``, ``ETH_HTTP_URL``, ``LINK_CONTRACT_ADDRESS``). What a diff
        compares, so that it lists no change that does nothing. Pure."""
        unused = {name for key, names in self.unused_with.items() if key in own for name in names}
        return {k: v for k, v in {**self.defaults, **own}.items() if k not in unused}

    @property
    def known_variables(self) -> frozenset[str]:
        """Every variable a service of this role may set: ``defaults``, ``variables`` and ``PROFILE``."""
        return frozenset({*self.defaults, *self.variables, PROFILE_VARIABLE})

    @property
    def admin_secrets(self) -> frozenset[str]:
        """Secrets only a rotation uses (an admin role's credentials): never read by deploy, status or the rest."""
        return frozenset(n for spec in self.rotation.values() for n in (spec.admin_user, spec.admin_password) if n)

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(self.profiles)
            raise InvalidInput(f"role {self.name!r} has no profile {name!r} (profiles: {known})") from None


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
    same role with neither setting one)."""
    if search_path is None:
        search_path = role_search_path(inventory.source)
    file = str(inventory.source)

    def served(s: Service) -> Role:
        role = load_role(s.role, search_path, file=file, where=f"services.{s.name}.role")
        return dataclasses.replace(role, port=s.port) if s.port else role

    role = served(service)
    for other in inventory.services.values():
        if other.name != service.name and shares_host(other, service) and served(other).port == role.port:
            a, b = sorted((other.name, service.name))
            raise InventoryError(file, f"services.{service.name}.port", f"services {a} and {b} share a host and "
                                 f"both serve on port {role.port}: set a different port on one of them")  # fmt: skip
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
    return _parse(name, definition, tuple(templates_folder(f, name) for f in folders))


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
    """
    for var in role.writable_paths:
        if var not in service.variables:
            continue  # the role's default, checked when the role was loaded
        problem = _path_problem(service.variables[var], role.mount)
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
    of another service knows is meant for that one: not refused here (``search_path``: as ``role_for``'s)."""
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
    if role.lease is None:
        return
    spec = role.lease
    for name, kind in ((spec.host, "host"), (spec.port, "port"), (spec.database, "name"), (spec.sslmode, "name")):
        problem = lease_variable_problem(kind, service.variables[name]) if name in service.variables else None
        if problem:
            where = f"{'defaults' if name in service.inherited else f'services.{service.name}'}.variables.{name}"
            raise InventoryError(str(inventory.source), where, f"{problem} (it locates the lease database)")


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


def _path_problem(value: Any, mount: str) -> str | None:
    """Why ``value`` cannot be a path the node writes to, given the read-only ``mount``; None if it can."""
    if not isinstance(value, str) or not value:
        return f"expected a path, got {value!r}"
    if value == "~" or value.startswith("~/"):
        return None
    if not value.startswith("/"):
        return f"expected an absolute path (or ~/...), got {value!r}: a relative one depends on the image's workdir"
    path, root = (posixpath.normpath("/" + p.lstrip("/")) for p in (value, mount))  # "//x/./y/.." is "/x"
    if path == root or path.startswith(root.rstrip("/") + "/"):
        return (f"{value!r} is at or under the role's mount {mount}, which the node sees read-only and cannot make "
                f"its own; set a writable path outside {mount}")  # fmt: skip
    return None


# ---------------------------------------------------------------- validating role.yaml

_TOP = {
    "description": False,
    "user": True,
    "port": True,
    "health": True,
    "mount": True,
    "stop_timeout": False,
    "standby_log": False,
    "lease": False,
    "rotation": False,
    "backup": False,
    "defaults": False,
    "secrets": False,
    "writable_paths": False,
    "secret_variables": False,
    "profiles": True,
    "default_profile": True,
    "variables": False,
    "unused_with": False,
}


def _parse(name: str, source: Path, template_dirs: tuple[Path, ...]) -> Role:
    file = str(source)

    def fail(where: str, problem: str) -> NoReturn:
        raise RoleError(file, where, problem)

    try:
        loader = _Loader(source.read_text(encoding="utf-8"))
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError) as err:
        fail("", f"cannot read the role file: {err}")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        fail(where, f"invalid YAML: {problem}")
    _mapping(data, "", _TOP, fail)

    description = _typed(data.get("description", ""), "description", str, "a string", fail)
    user = _int(data["user"], "user", 0, 2**31 - 1, fail)
    port = _int(data["port"], "port", 1, 65535, fail)
    health = _typed(data["health"], "health", str, "a string", fail)
    if not health.startswith("/"):
        fail("health", f"expected an HTTP path starting with '/', got {health!r}")
    mount = _typed(data["mount"], "mount", str, "a string", fail)
    if not PurePosixPath(mount).is_absolute() or ".." in PurePosixPath(mount).parts:
        fail("mount", f"expected an absolute path in the container, got {mount!r}")
    stop_timeout = data.get("stop_timeout", 10)
    if isinstance(stop_timeout, bool) or not isinstance(stop_timeout, int | float) or not 0 < stop_timeout <= 3600:
        fail("stop_timeout", f"expected a number of seconds 0 < n <= 3600, got {stop_timeout!r}")

    defaults = _typed(data.get("defaults") or {}, "defaults", dict, "a mapping", fail)
    for key, value in defaults.items():
        if not isinstance(key, str) or not _VARIABLE.fullmatch(key):
            fail(f"defaults.{key}", "expected a variable name [A-Za-z_][A-Za-z0-9_]*")
        if problem := variable_problem(value):
            where, _, what = problem.partition(": ")
            fail(f"defaults.{key}{where}", what)

    secrets = _typed(data.get("secrets") or [], "secrets", list, "a list of secret names", fail)
    for i, secret in enumerate(secrets):
        if not isinstance(secret, str) or not _NAME.fullmatch(secret):
            fail(f"secrets[{i}]", f"expected a secret name matching {_NAME.pattern}, got {secret!r}")

    undefaulted = _typed(data.get("variables") or [], "variables", list, "a list of variable names", fail)
    for i, var in enumerate(undefaulted):
        if not isinstance(var, str) or not _VARIABLE.fullmatch(var):
            fail(f"variables[{i}]", f"expected a variable name [A-Za-z_][A-Za-z0-9_]*, got {var!r}")
        if var in defaults or var == PROFILE_VARIABLE or var in undefaulted[:i]:
            fail(f"variables[{i}]", f"{var} is declared already (defaults, PROFILE or earlier in this list)")
    known = {*defaults, *undefaulted}

    writable = _typed(data.get("writable_paths") or [], "writable_paths", list, "a list of variable names", fail)
    for i, var in enumerate(writable):
        if var not in defaults:
            fail(f"writable_paths[{i}]", f"expected a variable of the role's defaults, got {var!r}")
        problem = _path_problem(defaults[var], mount)
        if problem:
            fail(f"defaults.{var}", problem)
    alternatives = _typed(data.get("secret_variables") or {}, "secret_variables", dict, "a mapping", fail)
    for var, secret in alternatives.items():
        if var not in defaults:
            fail(f"secret_variables.{var}", "expected a variable of the role's defaults")
        if not isinstance(secret, str) or not _NAME.fullmatch(secret) or secret in secrets:
            problem = f"expected a secret name matching {_NAME.pattern} outside the role's required secrets"
            fail(f"secret_variables.{var}", f"{problem}, got {secret!r}")

    unused_with = _typed(data.get("unused_with") or {}, "unused_with", dict, "a mapping", fail)
    for var, names in unused_with.items():
        if var not in known:
            fail(f"unused_with.{var}", "expected a variable the role declares (defaults or variables)")
        _typed(names, f"unused_with.{var}", list, "a list of variables of the role's defaults", fail)
        for i, unused in enumerate(names):
            if unused not in defaults or unused == var:
                fail(f"unused_with.{var}[{i}]", f"expected a variable of the role's defaults other than {var}, got "
                     f"{unused!r}")  # fmt: skip

    raw_profiles = _typed(data["profiles"], "profiles", dict, "a mapping of profiles", fail)
    if not raw_profiles:
        fail("profiles", "expected at least one profile")
    profiles = {}
    for pname, spec in raw_profiles.items():
        if not isinstance(pname, str) or not _NAME.fullmatch(pname):
            fail(f"profiles.{pname}", f"expected a profile name matching {_NAME.pattern}")
        profiles[pname] = _profile(pname, spec, mount, template_dirs, fail)
    default_profile = data["default_profile"]
    if default_profile not in profiles:
        fail("default_profile", f"expected one of {', '.join(profiles)}, got {default_profile!r}")

    return Role(
        name=name,
        source=source,
        template_dirs=template_dirs,
        description=description,
        user=user,
        port=port,
        health=health,
        mount=mount,
        stop_timeout=float(stop_timeout),
        standby_log=_typed(data.get("standby_log"), "standby_log", str, "a string", fail)
        if "standby_log" in data
        else None,
        defaults=MappingProxyType(dict(defaults)),
        secrets=tuple(secrets),
        lease=_lease(data["lease"], secrets, known, fail) if "lease" in data else None,
        profiles=MappingProxyType(profiles),
        default_profile=default_profile,
        rotation=_rotation(data.get("rotation") or {}, secrets, "lease" in data, fail),
        backup=_backup(data["backup"], "lease" in data, fail) if "backup" in data else None,
        writable_paths=tuple(writable),
        secret_variables=MappingProxyType(dict(alternatives)),
        variables=tuple(undefaulted),
        unused_with=MappingProxyType({var: tuple(names) for var, names in unused_with.items()}),
    )


def _profile(pname: str, spec: Any, mount: str, template_dirs: tuple[Path, ...], fail: Any) -> Profile:
    at = f"profiles.{pname}"
    _mapping(spec, at, {"files": True, "command": True, "env_file": False}, fail)
    raw_files = _typed(spec["files"], f"{at}.files", dict, "a mapping of file names", fail)
    if not raw_files:
        fail(f"{at}.files", "expected at least one file")
    files = {}
    for fname, fspec in raw_files.items():
        here = f"{at}.files.{fname}"
        if not isinstance(fname, str) or not _FILE_NAME.fullmatch(fname) or fname in (".", ".."):
            fail(here, "expected a plain file name [A-Za-z0-9._-]+")
        _mapping(fspec, here, {"template": True, "secret": True, "read": False}, fail)
        template = _typed(fspec["template"], f"{here}.template", str, "a template path", fail)
        parts = PurePosixPath(template).parts
        if not parts or PurePosixPath(template).is_absolute() or ".." in parts:
            fail(f"{here}.template", f"expected a path relative to templates/<role>/, got {template!r}")
        if not any((d / template).is_file() for d in template_dirs):
            searched = ", ".join(str(d) for d in template_dirs)
            fail(f"{here}.template", f"template {template!r} not found in {searched}")
        secret = _typed(fspec["secret"], f"{here}.secret", bool, "true or false", fail)
        read = fspec.get("read", "start")
        if read not in ("start", "lease"):
            fail(f"{here}.read", f"expected start or lease, got {read!r}")
        files[fname] = RoleFile(fname, template, secret, read)
    command = _typed(spec["command"], f"{at}.command", list, "a list of arguments", fail)
    if not command:
        fail(f"{at}.command", "expected at least one argument")
    for i, arg in enumerate(command):
        if not isinstance(arg, str):
            fail(f"{at}.command[{i}]", f"expected a string, got {arg!r}")
        try:
            arg.format(mount=mount)
        except (KeyError, IndexError, ValueError) as err:
            fail(f"{at}.command[{i}]", f"only the placeholder {{mount}} is known ({type(err).__name__}: {err})")
    env_file = spec.get("env_file")
    if env_file is not None and env_file not in files:
        fail(f"{at}.env_file", f"expected one of this profile's files ({', '.join(files)}), got {env_file!r}")
    return Profile(pname, MappingProxyType(files), tuple(command), env_file)


_LEASE = {"table": True, "host": True, "port": True, "database": True, "sslmode": True, "user": True, "password": True}


def _lease(data: Any, secrets: Sequence[str], variables: Collection[str], fail: Any) -> LeaseSpec:
    _mapping(data, "lease", _LEASE, fail)
    for key, value in data.items():
        _typed(value, f"lease.{key}", str, "a name", fail)
    if not _TABLE.fullmatch(data["table"]):
        fail("lease.table", f"expected a table name [a-z_][a-z0-9_]*, got {data['table']!r}")
    for key in ("host", "port", "database", "sslmode"):
        if data[key] not in variables:
            fail(f"lease.{key}", f"expected a variable of the role's defaults or variables, got {data[key]!r}")
    for key in ("user", "password"):
        if data[key] not in secrets:
            fail(f"lease.{key}", f"expected one of the role's secrets ({', '.join(secrets)}), got {data[key]!r}")
    return LeaseSpec(**data)


_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # spliced into SQL: a plain name only


def _backup(data: Any, has_lease: bool, fail: Any) -> BackupSpec:
    _mapping(data, "backup", {"key_tables": True, "version_table": False}, fail)
    if not has_lease:
        fail("backup", "a backup needs the role's lease: section (it locates the database)")
    tables = _typed(data["key_tables"], "backup.key_tables", list, "a list of table names", fail)
    version = data.get("version_table")
    named = [(f"backup.key_tables[{i}]", t) for i, t in enumerate(tables)] + [("backup.version_table", version)]
    for at, name in named:
        if name is not None and (not isinstance(name, str) or not _TABLE.fullmatch(name)):
            fail(at, f"expected a table name [a-z_][a-z0-9_]*, got {name!r}")
    return BackupSpec(tuple(tables), version)


_ROTATION_KEYS = {  # kind -> the keys it takes (required: True)
    "postgres-password": {"kind": True, "secret": True, "user": True, "admin_user": True, "admin_password": True},
    "chainlink-api-password": {"kind": True, "secret": True, "user": True},
    "refused": {"kind": True, "secret": True, "reason": True},
}


def _rotation(data: Any, secrets: Sequence[str], has_lease: bool, fail: Any) -> Mapping[str, RotationSpec]:
    _typed(data, "rotation", dict, "a mapping of rotatable secrets", fail)
    out = {}
    for name, spec in data.items():
        at = f"rotation.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name == "all":
            fail(at, f"expected a name matching {_NAME.pattern}, not 'all' (that is --secret all)")
        kind = spec.get("kind") if isinstance(spec, dict) else None
        if kind not in _ROTATION_KEYS:
            fail(f"{at}.kind", f"expected one of {', '.join(_ROTATION_KEYS)}, got {kind!r}")
        _mapping(spec, at, _ROTATION_KEYS[kind], fail)
        for key, value in spec.items():
            _typed(value, f"{at}.{key}", str, "a string", fail)
        for key in ("secret", "user"):
            if key in spec and spec[key] not in secrets:
                fail(f"{at}.{key}", f"expected one of the role's secrets ({', '.join(secrets)}), got {spec[key]!r}")
        for key in ("admin_user", "admin_password"):
            if key in spec and (not _NAME.fullmatch(spec[key]) or spec[key] in secrets):
                fail(f"{at}.{key}", f"expected a secret name outside the role's required secrets, got {spec[key]!r}")
        if kind == "postgres-password" and not has_lease:
            fail(at, "a postgres-password rotation needs the role's lease: section (it locates the database)")
        out[name] = RotationSpec(name=name, **spec)
    return MappingProxyType(out)


def _mapping(data: Any, at: str, keys: Mapping[str, bool], fail: Any) -> None:
    """``data`` is a mapping with only ``keys``, every required one present."""
    if not isinstance(data, dict):
        fail(at, f"expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in keys:
            fail(f"{at}.{key}".lstrip("."), f"unknown key {key!r} (allowed: {', '.join(keys)})")
    for key, required in keys.items():
        if required and key not in data:
            fail(f"{at}.{key}".lstrip("."), f"missing required key {key!r}")


def _typed(value: Any, at: str, kind: type, expected: str, fail: Any) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        fail(at, f"expected {expected}, got {value!r}"[:200])
    return value


def _int(value: Any, at: str, low: int, high: int, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        fail(at, f"expected an integer {low}..{high}, got {value!r}")
    return value
