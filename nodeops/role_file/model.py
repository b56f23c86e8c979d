"""``role.yaml``: a role's definition, validated like the inventory (nodeops.inventory: the same validators, the
same generated pydantic models, the same path-qualified one-line errors).

Each key is declared once, on the frozen dataclasses here (annotation = validator, default); ``_RoleSpec`` and the
models under it are generated from them (nodeops.inventory.schema._spec). Rules that span keys (a lease's variables
are the role's, a template exists, ...) are checked on the validated model (``_check``), once every key is valid.
Every problem is one ``RoleError`` (exit 2) naming the role file and the path inside it
(``profiles.v2.files.config.toml.template``).
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Annotated, Any, Literal, NoReturn, Union

from pydantic import AfterValidator, BeforeValidator, Discriminator, PlainValidator, Tag
from pydantic_core import PydanticCustomError

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory.load import _load_yaml, _make, validate
from nodeops.inventory.model import derived, in_file
from nodeops.inventory.schema import _SPECS, _spec
from nodeops.inventory.values import (
    _NAME,
    _NAME_PATTERN,
    Variable,
    _accepts,
    _count,
    _fail,
    _integer,
    _matching,
    _Port,
    _shown,
    _up_to,
    _variable,
)
from nodeops.role_hooks import DEFAULT_HOOKS, MODULE_FILE, RoleHooks

PROFILE_VARIABLE = "PROFILE"
ACTIVATIONS = ("lease", "keys", "all")  # how a role's nodes say who is active: docs/roles.md#activation


class RoleError(InventoryError):
    """A problem in a role's files, located by the role file and the path inside it (exit 2)."""


# ---------------------------------------------------------------- what one key accepts


def _a_list(what: str, *, none_is_empty: bool = True) -> BeforeValidator:
    """A list (``null``: an empty one, if ``none_is_empty``), else "expected a list of ``what``"."""

    def check(value: Any) -> Any:
        if value is None and none_is_empty:
            return []
        if not isinstance(value, list):
            raise PydanticCustomError("invalid", f"expected a list of {what}, got {_shown(value)}")
        return value

    return BeforeValidator(check)


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


def _choice(*allowed: str) -> PlainValidator:
    @_accepts(" or ".join(allowed))
    def check(value: Any) -> str:
        if value in allowed:
            return value
        _fail(check.accepts, value)

    return PlainValidator(check)


@_accepts("true or false")
def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    _fail(_boolean.accepts, value)


@_accepts("an HTTP path starting with '/'")
def _http_path(value: Any) -> str:
    if isinstance(value, str) and value.startswith("/"):
        return value
    _fail(_http_path.accepts, value)


@_accepts("an absolute path in the container")
def _container_path(value: Any) -> str:
    if isinstance(value, str) and PurePosixPath(value).is_absolute() and ".." not in PurePosixPath(value).parts:
        return value
    _fail(_container_path.accepts, value)


@_accepts("a path relative to templates/<role>/")
def _template(value: Any) -> str:
    if isinstance(value, str):
        parts = PurePosixPath(value).parts
        if parts and not PurePosixPath(value).is_absolute() and ".." not in parts:
            return value
    _fail(_template.accepts, value)


@_accepts(f"a name matching {_NAME_PATTERN}, not 'all' (that is --secret all)")
def _rotation_name(value: Any) -> str:
    if isinstance(value, str) and value != "all" and _NAME.fullmatch(value):
        return value
    _fail(_rotation_name.accepts, value)


@_accepts("a plain file name [A-Za-z0-9._-]+")
def _file_name(value: Any) -> str:
    if isinstance(value, str) and value not in (".", "..") and _FILE_NAME.fullmatch(value):
        return value
    _fail(_file_name.accepts, value)


_FILE_NAME = re.compile(r"[A-Za-z0-9._-]+")


@_accepts(" or ".join(ACTIVATIONS))
def _activation(value: Any) -> str | None:
    if value is None or value in ACTIVATIONS:
        return value
    _fail(_activation.accepts, value)


def _any(value: Any) -> Any:
    """Any value: a rule across keys (``_check``) says what it must be, naming the choices."""
    return value


_Checked = Annotated[str, PlainValidator(_any)]
_StopSeconds = Annotated[float, _up_to(3600, "a number of seconds 0 < n <= 3600")]
_SecretName = Annotated[str, _matching(_NAME_PATTERN, f"a secret name matching {_NAME_PATTERN}")]
_VariableName = Annotated[str, _matching(r"[A-Za-z_][A-Za-z0-9_]*", "a variable name [A-Za-z_][A-Za-z0-9_]*")]
_Table = Annotated[str, _matching(r"[a-z_][a-z0-9_]{0,62}", "a table name [a-z_][a-z0-9_]*")]  # spliced into SQL
_Column = Annotated[str, _matching(r"[a-z_][a-z0-9_]{0,62}", "a column name [a-z_][a-z0-9_]*")]  # spliced into SQL


# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class RoleFile:
    """A file rendered for the node: ``name`` in the node's folder, from ``template``."""

    name: str = derived()
    template: Annotated[str, PlainValidator(_template)]
    secret: Annotated[bool, PlainValidator(_boolean)]
    read: Annotated[Literal["start", "lease"], _choice("start", "lease")] = "start"  # when the node reads it: at
    # start, or only once it holds the lease
    hot: Annotated[bool, PlainValidator(_boolean)] = False  # a hot key (activation keys): only the active gets it


@dataclass(frozen=True)
class Profile:
    name: str = derived()
    files: Annotated[
        Mapping[Annotated[str, PlainValidator(_file_name)], RoleFile], AfterValidator(_count(1, None, "file"))
    ]
    command: Annotated[
        tuple[str, ...], _a_list("arguments", none_is_empty=False), AfterValidator(_count(1, None, "argument"))
    ]  # with "{mount}" placeholders
    env_file: str | None = None  # one of ``files``, passed as ``--env-file``

    def argv(self, mount: str) -> tuple[str, ...]:
        return tuple(arg.format(mount=mount) for arg in self.command)

    @property
    def shows_secrets(self) -> bool:
        """Whether secret values reach the container's configuration, which ``docker inspect`` shows anyone: its
        ``env_file`` is a secret file (docker copies an env file into it). Deploy checks the others show none."""
        return self.env_file is not None and self.files[self.env_file].secret


@dataclass(frozen=True)
class LeaseSpec:
    """Where the role's nodes keep their lease: a PostgreSQL table of one row, its columns naming the holder's
    client id (``client``) and when the lease expires (``expires``, a timestamptz: database time), the
    variables that locate the database and the secrets that log in to it."""

    table: _Table
    host: str  # variable names
    port: str
    database: str
    sslmode: str
    user: str  # secret names
    password: str
    client: _Column = "client_id"  # optional: the columns of the built-in role's table (Chainlink's lease_lock)
    expires: _Column = "expires_at"


@dataclass(frozen=True)
class BackupSpec:
    """``backup:``: what fab backup's manifest records from the database besides the dump (the database is
    the one ``lease:`` locates): every row of the tables holding the node's encrypted keys, as digests, and
    the version the node last ran on it, from ``version_table``'s ``version`` column."""

    key_tables: Annotated[tuple[_Table, ...], _a_list("table names", none_is_empty=False)]
    version_table: _Table | None = None


@dataclass(frozen=True)
class RotationSpec:
    """``rotation.<name>``: what ``fab rotate-secrets --secret <name>`` changes, and where it is checked.

    The engine's kinds: ``postgres-password`` (``ALTER ROLE`` of ``user`` on the
    server the role's ``lease:`` locates, as the admin role whose user and
    password the service's secrets ``admin_user`` and ``admin_password`` hold;
    then the pair is rolled onto it) and ``refused`` (cannot be changed in
    place: ``reason`` says why and what to do). Any other kind is the role's
    own, provided by its module (nodeops.role_hooks ``ROTATIONS``: the password
    of the API user ``user``, changed on the active node), checked when the
    role is loaded (nodeops.roles.load_role). The keys each kind takes:
    ``ROTATION_KINDS``, and ``ROLE_ROTATION_KEYS`` for a role's own.
    """

    name: str = derived()
    kind: str
    secret: str  # the role secret whose value is rotated
    user: str | None = None  # the role secret naming whose password it is (database role, API email)
    admin_user: _SecretName | None = None  # postgres-password: service secrets (optional in `secrets:`) of the admin
    admin_password: _SecretName | None = None
    reason: str | None = None  # refused


@dataclass(frozen=True, kw_only=True)
class Role:
    name: str = derived()
    source: Path = derived()  # the role.yaml in effect
    template_dirs: tuple[Path, ...] = derived()  # templates/<role> beside each roles/ folder, in order (operator's
    # first, built-in last), each whether or not it exists
    hooks: RoleHooks = derived(default=DEFAULT_HOOKS)  # what its module (role.py) provides, over the engine's
    # defaults (nodeops.role_hooks); set by nodeops.roles.load_role
    description: str = in_file(default="")
    user: Annotated[int, _integer(0, 2**31 - 1)]  # container uid; the node's files are owned by it
    port: _Port  # API/UI port
    health: Annotated[str, PlainValidator(_http_path)]  # HTTP path; 200 = healthy
    mount: Annotated[str, PlainValidator(_container_path)]  # where the node sees its files
    stop_timeout: _StopSeconds = in_file(default=10.0)  # seconds for a graceful stop
    standby_log: str | None = in_file(default=None)  # what a standby logs while it waits (case-insensitive): extra
    # evidence, never required
    defaults: Annotated[
        Mapping[_VariableName, Annotated[Variable, PlainValidator(_variable)]],
        BeforeValidator(_none_is_empty),
    ] = in_file(default={})
    secrets: Annotated[tuple[_SecretName, ...], _a_list("secret names")] = in_file(default=())  # secret names a
    # service must define
    activation: Annotated[str | None, PlainValidator(_activation)] = in_file(default=None)  # lease, keys or all;
    # not set: keys when a file is hot, else lease (default_activation)
    lease: LeaseSpec | None = in_file(default=None)  # how to read who holds the active role; None: no lease
    profiles: Annotated[
        Mapping[Annotated[str, _matching(_NAME_PATTERN, f"a profile name matching {_NAME_PATTERN}")], Profile],
        AfterValidator(_count(1, None, "profile")),
    ]
    default_profile: _Checked  # one of ``profiles``
    rotation: Annotated[
        Mapping[Annotated[str, PlainValidator(_rotation_name)], RotationSpec], BeforeValidator(_none_is_empty)
    ] = in_file(default={})  # what fab rotate-secrets can rotate, in the order --secret all takes
    backup: BackupSpec | None = None  # what fab backup records of the node's keys; None: the role has no backup
    writable_paths: Annotated[tuple[str, ...], _a_list("variable names")] = ()  # variables holding a path the node
    # writes: never at or under `mount`
    secret_variables: Annotated[Mapping[str, _Checked], BeforeValidator(_none_is_empty)] = field(
        default_factory=lambda: MappingProxyType({})
    )  # variable -> the secret a service may give instead of it
    variables: Annotated[tuple[_VariableName, ...], _a_list("variable names")] = ()  # role.yaml ``variables``: the
    # ones a service may set that have no default
    unused_with: Annotated[
        Mapping[str, Annotated[tuple[str, ...], _a_list("variables of the role's defaults", none_is_empty=False)]],
        BeforeValidator(_none_is_empty),
    ] = field(default_factory=lambda: MappingProxyType({}))  # variable -> the defaults its templates do not read
    # while a service sets it

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


# ---------------------------------------------------------------- the schema of role.yaml

ROTATION_KINDS = {  # the engine's kinds -> the keys each takes, all required
    "postgres-password": ("secret", "user", "admin_user", "admin_password"),
    "refused": ("secret", "reason"),
}
ROLE_ROTATION_KEYS = ("secret", "user")  # what a kind of the role's own takes (nodeops.role_hooks ROTATIONS)
_ROLE_KIND, _UNKNOWN_KIND = "role's own", "unknown"  # the tags of a kind the role's module provides, and of any other
_PARSING: ContextVar[RoleHooks] = ContextVar("role_hooks", default=DEFAULT_HOOKS)  # the hooks of the role parse_role
# reads (its module's rotation kinds are valid kinds)


@_accepts("a kind of the role's module (role.py ROTATIONS)")
def _role_kind(value: Any) -> str:
    """A rotation kind that is not the engine's: one the module of the role being parsed provides."""
    hooks = _PARSING.get()
    if isinstance(value, str) and value in hooks.rotations:
        return value
    where = f"its module {hooks.source}" if hooks.source else f"no {MODULE_FILE} beside the role.yaml"
    own = ", ".join(hooks.rotations) or "none"
    _fail(f"one of {', '.join(ROTATION_KINDS)} or a kind the role's module provides ({where}; its kinds: {own})",
          value)  # fmt: skip


_RoleKind = Annotated[str, PlainValidator(_role_kind)]


def _rotation_tag(value: Any) -> str | None:
    """Which spec validates a ``rotation.<name>`` mapping: its engine kind, a kind of the role's own, or an unknown
    one (whose spec takes every key and refuses the kind, so that the kind is what the error names); None
    (missing key 'kind') when it names none. Whatever is not a mapping goes to one spec, which says so."""
    if not isinstance(value, Mapping):
        return _ROLE_KIND
    kind = value.get("kind")
    if kind is None:
        return None
    if isinstance(kind, str) and kind in ROTATION_KINDS:
        return kind
    return _ROLE_KIND if isinstance(kind, str) and kind in _PARSING.get().rotations else _UNKNOWN_KIND


_ROTATION_KEYS = ("secret", "user", "admin_user", "admin_password", "reason")


_SPECS[LeaseSpec] = _spec(LeaseSpec, "_LeaseSpec")
_SPECS[BackupSpec] = _spec(BackupSpec, "_RoleBackupSpec")
_SPECS[RoleFile] = _spec(RoleFile, "_RoleFileSpec")
_SPECS[Profile] = _spec(Profile, "_ProfileSpec")
_SPECS[RotationSpec] = Annotated[
    Union[  # noqa: UP007 (a tuple of types, built at run time)
        tuple(
            Annotated[
                _spec(
                    RotationSpec,
                    f"_RotationSpec[{kind}]",
                    keys=("kind", *keys),
                    required=keys if kind != _UNKNOWN_KIND else (),
                    types_={"kind": Literal[kind] if kind in ROTATION_KINDS else _RoleKind},
                ),
                Tag(kind),
            ]  # fmt: skip
            for kind, keys in (
                *ROTATION_KINDS.items(),
                (_ROLE_KIND, ROLE_ROTATION_KEYS),
                (_UNKNOWN_KIND, _ROTATION_KEYS),
            )
        )
    ],
    Discriminator(_rotation_tag),
]
_RoleSpec = _spec(
    Role, "_RoleSpec",
    keys=("description", "user", "port", "health", "mount", "stop_timeout", "standby_log", "activation", "lease",
          "rotation",
          "backup", "defaults", "secrets", "writable_paths", "secret_variables", "profiles", "default_profile",
          "variables", "unused_with"),
)  # fmt: skip


def parse_role(name: str, source: Path, template_dirs: tuple[Path, ...], hooks: RoleHooks = DEFAULT_HOOKS) -> Role:
    """Read and validate ``source`` (role ``name``'s role.yaml), its templates looked up in ``template_dirs``, its
    module's ``hooks`` (nodeops.role_hooks: the rotation kinds of its own): the Role, or ``RoleError`` (exit 2)
    naming the file, the path inside it and what it expected."""
    file = str(source)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RoleError(file, "", f"cannot read the role file: {err}") from None
    data, positions = _load_yaml(text, file, RoleError)
    parsing = _PARSING.set(hooks)
    try:
        spec = validate(_RoleSpec, data, positions, file, RoleError)
    finally:
        _PARSING.reset(parsing)
    role = _make(spec, name=name, source=source, template_dirs=template_dirs, hooks=hooks)
    _check(role, file)
    return dataclasses.replace(role, activation=default_activation(role))


def default_activation(role: Role) -> str:
    """The role's activation model: ``activation`` as written, else ``keys`` when one of its files is ``hot``, else
    ``lease`` (a role.yaml written before the key: one node answers its health path, the others wait). Pure."""
    hot = any(f.hot for p in role.profiles.values() for f in p.files.values())
    return role.activation or ("keys" if hot else "lease")


# ---------------------------------------------------------------- rules across keys


def _check(role: Role, file: str) -> None:
    """The rules that span keys, in the order of the file's keys."""

    def fail(where: str, problem: str) -> NoReturn:
        raise RoleError(file, where, problem)

    defaults, secrets = role.defaults, role.secrets
    known = {*defaults, *role.variables}
    if role.lease is not None:
        if default_activation(role) != "lease":
            fail("lease", f"a lease needs activation: lease (this role's is {default_activation(role)}): remove it")
        _check_lease(role.lease, secrets, known, fail)
    for name, spec in role.rotation.items():
        at = f"rotation.{name}"
        for key in ("secret", "user"):
            value = getattr(spec, key)
            if value is not None and value not in secrets:
                fail(f"{at}.{key}", f"expected one of the role's secrets ({', '.join(secrets)}), got {value!r}")
        for key in ("admin_user", "admin_password"):
            value = getattr(spec, key)
            if value is not None and value in secrets:
                fail(f"{at}.{key}", f"expected a secret name outside the role's required secrets, got {value!r}")
        if spec.kind == "postgres-password" and role.lease is None:
            fail(at, "a postgres-password rotation needs the role's lease: section (it locates the database)")
    if role.backup is not None and role.lease is None:
        fail("backup", "a backup needs the role's lease: section (it locates the database)")
    for i, var in enumerate(role.writable_paths):
        if var not in defaults:
            fail(f"writable_paths[{i}]", f"expected a variable of the role's defaults, got {var!r}")
        if problem := path_problem(defaults[var], role.mount):
            fail(f"defaults.{var}", problem)
    for var, secret in role.secret_variables.items():
        if var not in defaults:
            fail(f"secret_variables.{var}", "expected a variable of the role's defaults")
        if not isinstance(secret, str) or not _NAME.fullmatch(secret) or secret in secrets:
            problem = f"expected a secret name matching {_NAME_PATTERN} outside the role's required secrets"
            fail(f"secret_variables.{var}", f"{problem}, got {secret!r}")
    for profile in role.profiles.values():
        _check_profile(profile, role, fail)
    if role.default_profile not in role.profiles:
        fail("default_profile", f"expected one of {', '.join(role.profiles)}, got {role.default_profile!r}")
    for i, var in enumerate(role.variables):
        if var in defaults or var == PROFILE_VARIABLE or var in role.variables[:i]:
            fail(f"variables[{i}]", f"{var} is declared already (defaults, PROFILE or earlier in this list)")
    for var, names in role.unused_with.items():
        if var not in known:
            fail(f"unused_with.{var}", "expected a variable the role declares (defaults or variables)")
        for i, unused in enumerate(names):
            if unused not in defaults or unused == var:
                fail(f"unused_with.{var}[{i}]", f"expected a variable of the role's defaults other than {var}, got "
                     f"{unused!r}")  # fmt: skip


def _check_lease(lease: LeaseSpec, secrets: tuple[str, ...], variables: set[str], fail: Any) -> None:
    for key in ("host", "port", "database", "sslmode"):
        if (name := getattr(lease, key)) not in variables:
            fail(f"lease.{key}", f"expected a variable of the role's defaults or variables, got {name!r}")
    for key in ("user", "password"):
        if (name := getattr(lease, key)) not in secrets:
            fail(f"lease.{key}", f"expected one of the role's secrets ({', '.join(secrets)}), got {name!r}")


def _check_profile(profile: Profile, role: Role, fail: Any) -> None:
    at, activation = f"profiles.{profile.name}", default_activation(role)
    if activation == "keys" and not any(f.hot for f in profile.files.values()):
        fail(f"{at}.files", "activation keys needs at least one file marked hot: true (the keys the active holds)")
    for f in profile.files.values():
        if f.hot and activation != "keys":
            fail(f"{at}.files.{f.name}.hot", f"a hot file needs activation: keys (this role's is {activation})")
        if f.hot and not f.secret:
            fail(f"{at}.files.{f.name}.secret", "a hot file holds keys: set secret: true")
        if f.read == "lease" and activation != "lease":
            fail(f"{at}.files.{f.name}.read", f"read: lease needs activation: lease (this role's is {activation})")
        if not any((d / f.template).is_file() for d in role.template_dirs):
            searched = ", ".join(str(d) for d in role.template_dirs)
            fail(f"{at}.files.{f.name}.template", f"template {f.template!r} not found in {searched}")
    for i, arg in enumerate(profile.command):
        try:
            arg.format(mount=role.mount)
        except (KeyError, IndexError, ValueError) as err:
            fail(f"{at}.command[{i}]", f"only the placeholder {{mount}} is known ({type(err).__name__}: {err})")
    if profile.env_file is not None and profile.env_file not in profile.files:
        fail(f"{at}.env_file", f"expected one of this profile's files ({', '.join(profile.files)}), got "
             f"{profile.env_file!r}")  # fmt: skip


def path_problem(value: Any, mount: str) -> str | None:
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
