"""The sections of ``role.yaml`` below its top level: ``lease:``, ``backup:``, ``passwords:`` and ``rotation.<name>``
(its kinds: the engine's, a kind of the role's module, or an unknown one, each validated by its own generated
spec).

Each key is declared once, on the frozen dataclasses here; their specs are generated from them
(nodeops.inventory.schema._spec)."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, PlainValidator, Tag

from nodeops.inventory.model import derived
from nodeops.inventory.schema import _SPECS, _spec
from nodeops.inventory.values import _accepts, _fail, _integer
from nodeops.role_file.values import _a_list, _boolean, _choice, _Column, _SecretName, _Table
from nodeops.role_hooks import DEFAULT_HOOKS, MODULE_FILE, RoleHooks


@dataclass(frozen=True)
class LeaseSpec:
    """Where the role's nodes keep their lease: a PostgreSQL table of one row, its columns naming the holder's
    client id (``client``) and when the lease expires (``expires``, a timestamptz: database time), the
    variables that locate the database and the secrets that log in to it."""

    table: _Table
    """The lease's table, of one row."""
    host: str
    """The variable that holds the database's host."""
    port: str
    """The variable that holds the database's port."""
    database: str
    """The variable that holds the database's name (``fab restore``'s messages name it)."""
    sslmode: str
    """The variable that holds libpq's ``sslmode`` for it."""
    user: str
    """The secret that holds the database user the nodes log in as."""
    password: str
    """The secret that holds its password."""
    client: _Column = "client_id"
    """The column naming the holder's client id (the built-in role's table's, Chainlink's ``lease_lock``)."""
    expires: _Column = "expires_at"
    """The column saying when the lease expires: a timestamptz, in the database's time."""


@dataclass(frozen=True)
class BackupSpec:
    """``backup:``: what fab backup's manifest records from the database besides the dump (the database is
    the one ``lease:`` locates): every row of the tables holding the node's encrypted keys, as digests, and
    the version the node last ran on it, from ``version_table``'s ``version`` column."""

    key_tables: Annotated[tuple[_Table, ...], _a_list("table names", none_is_empty=False)]
    """The tables holding the node's encrypted keys: every row recorded as a digest in the manifest."""
    version_table: _Table | None = None
    """The table whose ``version`` column says the version the node last ran on the database."""


CHARACTER_CLASSES = ("upper", "lower", "digit", "symbol")  # what PasswordRules.classes may name (nodeops.passwords)
_Length = Annotated[int, _integer(8, 1024)]


@dataclass(frozen=True)
class PasswordRules:
    """``passwords:``: what the role's node accepts as a password it is given, which a password fab rotate-secrets
    generates meets (nodeops.passwords.generate_password), besides the engine's own rules (letters, digits and
    a few plain symbols; no symbol first or last). Every key is optional. The defaults are the cautious side
    where caution costs a generated password nothing: no character three times in a row and never the user's name
    (Chainlink's rules, which a role copied before ``passwords:`` existed still needs), a length of 8 bytes or
    more; ``max_run: null`` and ``refuse_user: false`` lift them."""

    min_length: _Length = 8
    """The shortest password the node accepts, in bytes."""
    max_length: _Length | None = None
    """The longest, in bytes (at least ``min_length``); not set: no limit."""
    classes: Annotated[
        tuple[Annotated[str, _choice(*CHARACTER_CLASSES)], ...], _a_list("character classes", none_is_empty=False)
    ] = ()
    """Classes of characters a password has at least one of each of."""
    max_run: Annotated[int, _integer(1, 1024)] | None = 2
    """At most this many of one character in a row; ``null``: no limit."""
    refuse_user: Annotated[bool, PlainValidator(_boolean)] = True
    """Never containing the user it belongs to (the rotation's ``user``)."""


@dataclass(frozen=True)
class RotationSpec:
    """``rotation.<name>``: what ``fab rotate-secrets --secret <name>`` changes, and where it is checked.

    The engine's kinds: ``postgres-password`` (``ALTER ROLE`` of ``user`` on the
    server the role's ``lease:`` locates, as the admin role whose user and
    password the service's secrets ``admin_user`` and ``admin_password`` hold;
    then the pair is rolled onto it) and ``refused`` (cannot be changed in
    place: ``reason`` says why and what to do). Any other kind is the role's
    own, provided by its module (nodeops.role_hooks ``ROTATIONS``: the password
    of the API user ``user``, changed on the active node; ``ISSUERS``: a value
    the role issues from the secrets ``reads`` names, which only this rotation
    reads), checked when the role is loaded (nodeops.roles.load_role). The keys
    each kind takes: ``ROTATION_KINDS``, ``ROLE_ROTATION_KEYS`` and
    ``ISSUED_ROTATION_KEYS`` for a role's own.
    """

    name: str = derived()
    kind: str
    """``postgres-password``, ``refused``, or a kind the role's module provides (``role.py`` ``ROTATIONS``)."""
    secret: str
    """The role's secret whose value is rotated."""
    user: str | None = None
    """The role's secret naming whose password it is (the database role, the API user's email)."""
    admin_user: _SecretName | None = None
    """``postgres-password``: the service's secret (optional in ``secrets:``) holding the admin role's user."""
    admin_password: _SecretName | None = None
    """``postgres-password``: the service's secret holding the admin role's password."""
    reason: str | None = None
    """``refused``: why it cannot be changed in place, and what to do instead."""
    reads: Annotated[tuple[_SecretName, ...], _a_list("secret names")] = ()
    """A kind the role issues (``role.py`` ``ISSUERS``): the service's secrets the role issues the new value from,
    outside the role's required ``secrets:`` (a cold key, an issue counter): only this rotation reads them, never
    deploy, status or the rest."""


ROTATION_KINDS = {  # the engine's kinds -> the keys each takes, all required
    "postgres-password": ("secret", "user", "admin_user", "admin_password"),
    "refused": ("secret", "reason"),
}
ROLE_ROTATION_KEYS = ("secret", "user")  # what a kind of the role's own takes (nodeops.role_hooks ROTATIONS)
ISSUED_ROTATION_KEYS = ("secret", "reads")  # what a kind the role issues takes (nodeops.role_hooks ISSUERS)
# the tags of a kind the role's module provides (ROTATIONS, ISSUERS), and of any other
_ROLE_KIND, _ISSUED_KIND, _UNKNOWN_KIND = "role's own", "issued", "unknown"
_PARSING: ContextVar[RoleHooks] = ContextVar("role_hooks", default=DEFAULT_HOOKS)  # the hooks of the role parse_role
# reads (its module's rotation kinds are valid kinds)


@_accepts("a kind of the role's module (role.py ROTATIONS)")
def _role_kind(value: Any) -> str:
    """A rotation kind that is not the engine's: one the module of the role being parsed provides."""
    hooks = _PARSING.get()
    if isinstance(value, str) and (value in hooks.rotations or value in hooks.issuers):
        return value
    where = f"its module {hooks.source}" if hooks.source else f"no {MODULE_FILE} beside the role.yaml"
    own = ", ".join([*hooks.rotations, *hooks.issuers]) or "none"
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
    hooks = _PARSING.get()
    if isinstance(kind, str) and kind in hooks.issuers:
        return _ISSUED_KIND
    return _ROLE_KIND if isinstance(kind, str) and kind in hooks.rotations else _UNKNOWN_KIND


_ROTATION_KEYS = ("secret", "user", "admin_user", "admin_password", "reason", "reads")


_KIND_DOCS = {  # each kind's section of docs/role-reference.md (tools/role_reference.py)
    "postgres-password": "``rotation.<name>`` of the engine's kind ``postgres-password``: ``ALTER ROLE`` of ``user`` "
    "on the server the role's ``lease:`` locates, as the admin role whose user and password the service's secrets "
    "``admin_user`` and ``admin_password`` hold; then the pair is rolled onto it.",
    "refused": "``rotation.<name>`` of the engine's kind ``refused``: a secret that cannot be changed in place; "
    "``fab rotate-secrets --secret <name>`` is refused, saying ``reason``.",
    _ROLE_KIND: "``rotation.<name>`` of a kind the role's module provides (``role.py`` ``ROTATIONS``: the password "
    "of the API user ``user``, changed on the active node), checked when the role is loaded.",
    _ISSUED_KIND: "``rotation.<name>`` of a kind the role's module issues (``role.py`` ``ISSUERS``): the role makes "
    "the new value of ``secret``'s document from the secrets ``reads`` names (outside the role's ``secrets:``, read "
    "by this rotation alone) and the chain's facts, checked when the role is loaded.",
    _UNKNOWN_KIND: "``rotation.<name>`` of any other kind: refused (exit 2), naming the kind and the kinds there are.",
}
_SPECS[LeaseSpec] = _spec(LeaseSpec, "_LeaseSpec")
_SPECS[BackupSpec] = _spec(BackupSpec, "_RoleBackupSpec")
_SPECS[PasswordRules] = _spec(PasswordRules, "_PasswordRulesSpec")
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
                    doc=_KIND_DOCS[kind],
                    **({} if kind in ROTATION_KINDS else {"TITLE": f"rotation.NAME ({kind} kind)"}),
                ),
                Tag(kind),
            ]  # fmt: skip
            for kind, keys in (
                *ROTATION_KINDS.items(),
                (_ROLE_KIND, ROLE_ROTATION_KEYS),
                (_ISSUED_KIND, ISSUED_ROTATION_KEYS),
                (_UNKNOWN_KIND, _ROTATION_KEYS),
            )
        )
    ],
    Discriminator(_rotation_tag),
]
