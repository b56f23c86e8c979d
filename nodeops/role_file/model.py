"""``role.yaml``: a role's definition, validated like the inventory (nodeops.inventory: the same validators, the
same generated pydantic models, the same path-qualified one-line errors).

Each key is declared once, on the frozen dataclasses here and in nodeops.role_file.sections (annotation =
validator, default); ``_RoleSpec`` and the models under it are generated from them (nodeops.role_file.parse).
Rules that span keys (a lease's variables are the role's, a template exists, ...) are checked on the validated
model (nodeops.role_file.rules), once every key is valid. Every problem is one ``RoleError`` (exit 2) naming the
role file and the path inside it (``profiles.v2.files.config.toml.template``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, PlainValidator

from nodeops.errors import InvalidInput
from nodeops.inventory.model import derived, in_file
from nodeops.inventory.values import _NAME_PATTERN, Variable, _count, _integer, _matching, _Port, _variable
from nodeops.role_file.kinds import KindSpec
from nodeops.role_file.sections import BackupSpec, LeaseSpec, PasswordRules, RotationSpec
from nodeops.role_file.values import (
    PROFILE_VARIABLE,
    _a_list,
    _activation,
    _boolean,
    _Checked,
    _choice,
    _container_path,
    _file_name,
    _http_path,
    _none_is_empty,
    _role_path,
    _rotation_name,
    _SecretName,
    _StopSeconds,
    _template,
    _VariableName,
)
from nodeops.role_hooks import DEFAULT_HOOKS, RoleHooks


@dataclass(frozen=True)
class RoleFile:
    """A file rendered for the node: ``name`` in the node's folder, from ``template``."""

    name: str = derived()
    template: Annotated[str, PlainValidator(_template)]
    """The Jinja2 template it is rendered from, under ``templates/<role>/`` (a path inside that folder)."""
    secret: Annotated[bool, PlainValidator(_boolean)]
    """Whether it holds a secret: written ``0400`` to the node's RAM (tmpfs) and shredded once read, never kept."""
    read: Annotated[Literal["start", "lease"], _choice("start", "lease")] = "start"
    """When the node reads it: at start, or only once it holds the lease (it is shredded after that)."""
    hot: Annotated[bool, PlainValidator(_boolean)] = False
    """A hot key (activation ``keys``): only the holder, the active node, is given it."""


@dataclass(frozen=True)
class Profile:
    """``profiles.<name>``: one way to start the node (Chainlink: ``v2`` with TOML files, ``v1`` with an env file),
    which a service picks with its variable ``PROFILE``."""

    name: str = derived()
    files: Annotated[
        Mapping[Annotated[str, PlainValidator(_file_name)], RoleFile], AfterValidator(_count(1, None, "file"))
    ]
    """The files rendered for the node, by their name in its folder (``mount``)."""
    command: Annotated[
        tuple[str, ...], _a_list("arguments", none_is_empty=False), AfterValidator(_count(1, None, "argument"))
    ]
    """The container's command line, each argument a string; ``{mount}`` stands for the role's ``mount``."""
    hot_command: Annotated[tuple[str, ...], _a_list("arguments")] = ()
    """Arguments only the node started with the hot files gets, after ``command`` (activation ``keys``: a block
    producer's key flags; the standby runs without them); ``{mount}`` as in ``command``. Paths, never a secret: a
    secret value in a container's arguments fails the deploy's end check."""
    env_file: str | None = None
    """One of ``files``, passed to the container as ``--env-file`` (a secret one shows its values to ``docker
    inspect``: deploy checks every other profile shows none)."""
    data_files: Annotated[
        Mapping[Annotated[str, PlainValidator(_file_name)], Annotated[str, PlainValidator(_role_path)]],
        BeforeValidator(_none_is_empty),
    ] = field(default_factory=lambda: MappingProxyType({}))
    """Public data files the node gets beside ``files``, by their name in its folder: each a file shipped in the
    role's folder (``genesis/mainnet/byron-genesis.json``: a path inside ``roles/<role>/``), uploaded with its bytes
    as they are (no template). The config hash covers each by its sha256; its text is never recorded (no container
    label, no audit line), so a diff names its change by hash. For files too large to record (megabytes of genesis:
    render.RECORDED_MAX); not set: none."""

    def argv(self, mount: str) -> tuple[str, ...]:
        return tuple(arg.format(mount=mount) for arg in self.command)

    def hot_argv(self, mount: str) -> tuple[str, ...]:
        """``hot_command`` with ``{mount}`` filled in: what the holder's command line gets after ``argv``."""
        return tuple(arg.format(mount=mount) for arg in self.hot_command)

    @property
    def shows_secrets(self) -> bool:
        """Whether secret values reach the container's configuration, which ``docker inspect`` shows anyone: its
        ``env_file`` is a secret file (docker copies an env file into it). Deploy checks the others show none."""
        return self.env_file is not None and self.files[self.env_file].secret


@dataclass(frozen=True, kw_only=True)
class Role:
    """``roles/<role>/role.yaml``: a kind of node, as data (nodeops.roles; docs/roles.md)."""

    name: str = derived()
    source: Path = derived()  # the role.yaml in effect
    template_dirs: tuple[Path, ...] = derived()  # templates/<role> beside each roles/ folder, in order (operator's
    # first, built-in last), each whether or not it exists
    hooks: RoleHooks = derived(default=DEFAULT_HOOKS)  # what its module (role.py) provides, over the engine's
    # defaults (nodeops.role_hooks); set by nodeops.roles.load_role
    description: str = in_file(default="")
    """What the role is, for people (``fab status`` and the docs show nothing else of it)."""
    user: Annotated[int, _integer(0, 2**31 - 1)]
    """The container's uid: the node's files are owned by it."""
    port: _Port
    """The port the node serves its API and health path on (a service may set another, ``services.<svc>.port``)."""
    health: Annotated[str, PlainValidator(_http_path)]
    """The node's health path: 200 is healthy; any answer says the node is up (under ``lease``: the active)."""
    mount: Annotated[str, PlainValidator(_container_path)]
    """Where the node sees its files inside the container, read-only."""
    ports: Annotated[
        Mapping[Annotated[str, _matching(_NAME_PATTERN, f"a port name matching {_NAME_PATTERN}")], _Port],
        BeforeValidator(_none_is_empty),
    ] = in_file(default={})
    """More ports the node serves, by name (Cardano: ``node-to-node: 3001``, ``metrics: 12798``), each published on
    the node's address as ``port`` is (the same number on the host); none the role's ``port`` or another's."""
    volumes: Annotated[
        Mapping[
            Annotated[str, _matching(_NAME_PATTERN, f"a volume name matching {_NAME_PATTERN}")],
            Annotated[str, PlainValidator(_container_path)],
        ],
        BeforeValidator(_none_is_empty),
    ] = in_file(default={})
    """The node's writable folders that outlive its container, by name -> the path in the container (Cardano:
    ``db: /data/db``, the chain): a Docker volume ``nodeops-<service>.<name>`` per service, created by the first
    ``docker run``, kept across replace, restore and rollback. Its persistent disk: no secret file is written under
    one, and none is at or under ``mount`` nor ``mount`` under one."""
    stop_timeout: _StopSeconds = in_file(default=10.0)
    """Seconds for a graceful stop (the node releases its lease) before the engine kills it."""
    init: Annotated[bool, PlainValidator(_boolean)] = in_file(default=False)
    """Run the node under the engine's init process (`docker run --init`: tini, podman's catatonit) as PID 1, which
    passes a stop's SIGTERM on to the node. Without it the node is PID 1, and the kernel drops a signal that PID 1 has
    no handler for: a stop that comes before the node installs its own (right after a start) waits out
    ``stop_timeout``, then kills it (docs/roles.md, "Stopping a node")."""
    standby_log: str | None = in_file(default=None)
    """What a standby logs while it waits for the lease (case-insensitive): extra evidence of a standby, never
    required."""
    defaults: Annotated[
        Mapping[_VariableName, Annotated[Variable, PlainValidator(_variable)]],
        BeforeValidator(_none_is_empty),
    ] = in_file(default={})
    """The variables the templates read, with their defaults; a service overrides them in its ``variables``."""
    secrets: Annotated[tuple[_SecretName, ...], _a_list("secret names")] = in_file(default=())
    """The secret names a service must give a reference for."""
    activation: Annotated[str | None, PlainValidator(_activation)] = in_file(default=None)
    """Which node is active: ``lease`` (the database lease holder), ``keys`` (the holder of the hot files) or
    ``all`` (every node serves); not set: ``keys`` when a file is hot, else ``lease``."""
    kinds: Annotated[
        Mapping[Annotated[str, _matching(_NAME_PATTERN, f"a kind name matching {_NAME_PATTERN}")], KindSpec],
        BeforeValidator(_none_is_empty),
    ] = in_file(default={})
    """The kinds of node one service is made of (an inventory node's ``kind``), each with its own activation, in the
    order a deploy takes them (Cardano: ``relay`` with ``all``, then ``producer`` with ``keys``); not set: every node
    is of one kind, under ``activation``. A role with kinds sets no ``activation``."""
    lease: LeaseSpec | None = in_file(default=None)
    """How to read who holds the active role in the nodes' database; not set: no lease."""
    profiles: Annotated[
        Mapping[Annotated[str, _matching(_NAME_PATTERN, f"a profile name matching {_NAME_PATTERN}")], Profile],
        AfterValidator(_count(1, None, "profile")),
    ]
    """The ways to start the node, by name."""
    default_profile: _Checked
    """The profile a service gets when it sets no ``PROFILE`` variable: one of ``profiles``."""
    rotation: Annotated[
        Mapping[Annotated[str, PlainValidator(_rotation_name)], RotationSpec], BeforeValidator(_none_is_empty)
    ] = in_file(default={})
    """What ``fab rotate-secrets`` can rotate, by the name ``--secret`` takes, in the order ``--secret all`` takes."""
    backup: BackupSpec | None = None
    """What ``fab backup`` records of the node's keys; not set: the role has no backup."""
    passwords: PasswordRules = PasswordRules()
    """What the node accepts as a password: a rotation generates passwords that meet it."""
    writable_paths: Annotated[tuple[str, ...], _a_list("variable names")] = ()
    """Variables holding a path the node writes to: refused at or under ``mount``, which the node sees read-only."""
    secret_variables: Annotated[Mapping[str, _Checked], BeforeValidator(_none_is_empty)] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Variable -> the secret a service may give instead of it (an RPC URL that embeds an API key), never both."""
    variables: Annotated[tuple[_VariableName, ...], _a_list("variable names")] = ()
    """The variables a service may set that have no default (with ``defaults``: every variable the role knows)."""
    unused_with: Annotated[
        Mapping[str, Annotated[tuple[str, ...], _a_list("variables of the role's defaults", none_is_empty=False)]],
        BeforeValidator(_none_is_empty),
    ] = field(default_factory=lambda: MappingProxyType({}))
    """Variable -> the defaults its templates do not read while a service sets it: deploy's diff leaves them out."""
    check_variables: Annotated[tuple[_VariableName, ...], _a_list("variable names")] = ()
    """Variables only the role's check and facts hooks read (``node_facts``, ``check_facts``: a threshold), each one
    the role declares (``defaults`` or ``variables``) and no template reads: out of the config hash, the rendered
    files and the container's labels, so a change of one restarts no node; the hooks get it as any other. Not set:
    none. Refused (exit 2, naming ``check_variables[i]``): one the role does not declare, one listed twice, one
    another key names (``unused_with``, ``writable_paths``, ``secret_variables``, ``lease``), and one a template
    reads by name (nodeops.role_file.reads)."""

    def read_variables(self, own: Mapping[str, object]) -> dict[str, object]:
        """The variables the templates read for a service whose own variables are ``own``: the role's defaults
        overlaid by ``own``, without the defaults ``unused_with`` names for a variable ``own`` sets (Chainlink with
        ``EVM_CHAINS``: no ``ETH_CHAIN_ID``, ``ETH_URL``, ``ETH_HTTP_URL``, ``LINK_CONTRACT_ADDRESS``) and without
        ``check_variables``. What a diff compares and the config hash covers, so that neither sees a change that
        does nothing to the node. Pure."""
        unused = {name for key, names in self.unused_with.items() if key in own for name in names}
        unused.update(self.check_variables)
        return {k: v for k, v in {**self.defaults, **own}.items() if k not in unused}

    def without_checks(self, variables: Mapping[str, object]) -> dict[str, object]:
        """``variables`` without ``check_variables``: what the templates are given (``vars``), a container's
        labels record (a service's own) and a fix forward names. Pure."""
        return {k: v for k, v in variables.items() if k not in self.check_variables}

    @property
    def known_variables(self) -> frozenset[str]:
        """Every variable a service of this role may set: ``defaults``, ``variables`` and ``PROFILE``."""
        return frozenset({*self.defaults, *self.variables, PROFILE_VARIABLE})

    @property
    def admin_secrets(self) -> frozenset[str]:
        """Secrets only a rotation uses (an admin role's credentials, what an issued rotation ``reads``): never read
        by deploy, status or the rest."""
        return frozenset(n for spec in self.rotation.values()
                         for n in (spec.admin_user, spec.admin_password, *spec.reads) if n)  # fmt: skip

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(self.profiles)
            raise InvalidInput(f"role {self.name!r} has no profile {name!r} (profiles: {known})") from None
