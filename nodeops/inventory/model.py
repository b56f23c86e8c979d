"""The inventory's model: frozen dataclasses the engine uses, each field declared once.

A field's annotation carries its validator (nodeops.inventory.values), its default is the file's default and the
string under it is its description: nodeops.inventory.schema generates the file's pydantic models from these
classes, and docs/inventory-reference.md is generated from those. Where the file and the engine differ, the field
says so: ``in_file`` (another key in the file, or a file default for an argument the constructor keeps required)
and ``derived`` (not a key of the file: set while the model is built, such as a node's service).

Built only by nodeops.inventory.load (validated there); code and tests may construct them directly (not validated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, PlainValidator

from nodeops.errors import InvalidInput
from nodeops.inventory.values import (
    Variable,
    _count,
    _Host,
    _HostKeys,
    _Image,
    _integer,
    _matching,
    _Name,
    _not_a_value,
    _not_inline,
    _Path,
    _Port,
    _references,
    _Seconds,
    _shown,
    _StateDir,
    _up_to,
    _url,
    _variable,
    _Word,
)

FILE_KEY = "file_key"  # field metadata: the key's name in the file, when it is not the field's
FILE_DEFAULT = "file_default"  # field metadata: the default in the file, when the constructor has none
DERIVED = "derived"  # field metadata: not a key of the file
BEFORE = "BEFORE"  # class attribute: a check of the whole mapping before its keys (a value pasted in, ...)


def in_file(*, key: str | None = None, default: Any = MISSING) -> Any:
    """A field written as ``key`` in the file (None: its own name), optional there with ``default``; the
    constructor keeps it a required argument (its place in positional calls stays)."""
    return field(metadata={FILE_KEY: key, FILE_DEFAULT: default})


def derived(**kwargs: Any) -> Any:
    """A field that is not a key of the file: set by nodeops.inventory.load while it builds the model."""
    return field(metadata={DERIVED: True}, **kwargs)


@dataclass(frozen=True, kw_only=True)
class Bastion:
    """A host reachable from outside; every connection to a node of its services goes through it, one login per
    run. Its host key is pinned: exactly one of ``host_key`` and ``known_hosts``. Its services' deploy locks and
    their audit log live on it (``state_dir``)."""

    name: str = derived(default="bastion")  # its key under ``bastions:``; ``bastion`` for the one ``bastion:``
    where: str = derived(default="bastion")  # its path in the file, for messages: ``bastion`` or ``bastions.NAME``
    host: _Host
    """Its address, as the operator's machine reaches it."""
    port: _Port = 22
    """Its SSH port."""
    user: _Word
    """The user nodeops logs in as; every operator and CI job shares it (or a shared ``state_dir``)."""
    identity_file: _Path | None = None
    """The private key for the bastion (unencrypted); never ``-i``."""
    host_keys: _HostKeys = in_file(key="host_key", default=())
    """Its pinned host key (one, or a list): from the instance's console output, never a first connection."""
    known_hosts: _Path | None = None
    """... or an OpenSSH known_hosts file that pins it."""
    state_dir: _StateDir = ".nodeops"
    """Where the deploy locks and the audit log live on the bastion."""
    lock_timeout: Annotated[int, _integer(4, 3600)] = 60
    """Seconds a run may go unheard (frozen, cut off) before its locks are stale."""


@dataclass(frozen=True)
class SshSettings:
    """How the nodes are reached: through the bastion, over their private addresses."""

    user: _Word
    """The user nodeops logs in as on every node."""
    identity_file: _Path | None = None
    """The private key for the nodes (unencrypted); the only identity used."""
    known_hosts: _Path | None = None
    """Pins for nodes that have no ``host_key`` of their own (``nodeops hostkeys --write`` fills it)."""
    max_parallel: Annotated[int, _integer(1, 512)] = 16
    """Node connections at once."""
    connect_timeout: _Seconds = 10.0
    """Seconds to connect to a node (and to receive its SSH banner)."""
    command_timeout: _Seconds = 600.0
    """Seconds a whole command on a node may take."""
    connect_retries: Annotated[int, _integer(0, 10)] = 3
    """Retries, with backoff, of transient connect failures (a channel refused or reset, a dropped banner)."""


@dataclass(frozen=True)
class SecretBackend:
    """Where secret values come from, by kind; the keys of another kind are None (the file refuses them: one
    mapping per kind, nodeops.inventory.schema.BACKEND_KINDS)."""

    name: str = derived()
    kind: Literal["aws-secretsmanager", "aws-ssm", "aws-kms", "sops", "env"]
    """This backend's kind."""
    region: Annotated[str, _matching(r"[a-z]{2}(-[a-z]+)+-[0-9]+", "an AWS region such as us-east-1")] | None = None
    """The region the secrets (and, for ``backup``, the bucket) are in (``sops``: of its KMS keys, when they
    are used)."""
    endpoint_url: Annotated[str, PlainValidator(_url)] | None = None
    """Another endpoint (on loopback with no credentials configured, as the lab's moto: dummy credentials;
    ``sops``: its KMS endpoint)."""
    profile: _Word | None = None
    """An AWS profile of the operator's configuration."""
    prefix: Annotated[str, _matching(r"[A-Za-z0-9_]*", "an environment variable prefix [A-Za-z0-9_]*")] | None = None
    """Put before every variable name (``NODEOPS_``)."""


@dataclass(frozen=True)
class SecretRef:
    """Where one secret value lives (never the value)."""

    TITLE = "secret reference"  # its heading in docs/inventory-reference.md (it is used at several keys)
    BEFORE = staticmethod(_not_a_value)

    backend: _Name
    """One of ``secret_backends``."""
    name: _Word
    """The secret's name in that backend (``chainlink/DBSecret``)."""
    key: _Word | None = None
    """A field of a JSON secret; without it, the whole value."""


@dataclass(frozen=True)
class Node:
    """One node host of a service. Names are unique across the inventory; each node needs a pinned key, its
    own ``host_key`` or ``ssh.known_hosts``."""

    name: _Name
    """The node's name (``--node``, ``--nodes``, ``-H``)."""
    host: _Host
    """Its private address, reached through the bastion."""
    port: _Port = in_file(default=22)
    """Its SSH port."""
    preferred: Literal["active", "standby"] | None = in_file(default=None)
    """Which node a fresh pair starts as the active: exactly one per service is ``active``. Required on every node of
    a role without kinds; under a role with kinds, on each node of a kind that has an active (exactly one ``active``
    per such kind: Cardano's producers), never on those of a kind whose nodes all serve (the relays)."""
    host_keys: _HostKeys = in_file(key="host_key", default=())
    """Its pinned host key (one, or a list)."""
    service: str = derived()
    kind: _Name | None = None
    """Its kind, one its role declares (``kinds:`` in role.yaml; Cardano: ``relay`` or ``producer``); only, and then
    required, for a role with kinds (checked with the role, before any host is touched)."""


@dataclass(frozen=True)
class CheckPolicy:
    """``fab check``'s limits, all optional, at the top level and per service (a service's key overrides the
    top level's); unset: the defaults of ``CheckPolicy`` (``FALLBACKS``)."""

    secret_max_age_days: Annotated[int, _integer(1, 3650)] = 90
    """Age of a secret's current value, by its backend's date (`aws-kms` and `env` keep none), to rotate before."""
    disk_max_percent: Annotated[int, _integer(1, 100)] = 90
    """Of ``/``, ``/run`` and the container engine's storage."""
    memory_max_percent: Annotated[int, _integer(1, 100)] = 90
    """Used memory, ``MemTotal - MemAvailable``."""
    load_max_per_cpu: Annotated[float, _up_to(1000, "a number > 0 and <= 1000")] = 2.0
    """The 5-minute load average per CPU."""
    log_error_lines: Annotated[int, _integer(0, 1_000_000)] = 10
    """Error-level lines allowed in the container's log ..."""
    log_minutes: Annotated[int, _integer(1, 1440)] = 15
    """... in this many last minutes."""


_Recipient = Annotated[str, _matching(r"age1[02-9ac-hj-np-z]{58}", "an age public key age1... (age-keygen -y)")]


@dataclass(frozen=True, kw_only=True)
class BackupPolicy:
    """``fab backup`` and ``fab restore`` (optional): encrypted dumps of each service's database in S3."""

    bucket: Annotated[str, _matching(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name [a-z0-9.-], 3 to 63")]
    """The S3 bucket."""
    aws: _Name
    """A secret backend of kind aws-secretsmanager: its region, endpoint and credentials serve S3 too."""
    recipients: Annotated[
        tuple[_Recipient, ...],
        BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
        AfterValidator(_count(1, None, "recipient")),
    ]
    """Age public keys every backup is encrypted to (one or a list); list an offline spare too."""
    prefix: Annotated[str, _matching(r"([A-Za-z0-9._-]+/)*", "an S3 key prefix ending in / (or empty)")] = "nodeops/"
    """Objects are ``<prefix><environment>/<service>/<id>.dump.age`` (and ``.manifest.json``)."""
    identity: SecretRef | None = None
    """The age identity (``AGE-SECRET-KEY-1...``), read by ``fab restore`` only ..."""
    identity_file: _Path | None = None
    """... or a file the operator holds (at most one of the two)."""
    keep_daily: Annotated[int, _integer(1, 3660)] = 7
    """Keep the newest backup of each of the last N days that have one."""
    keep_weekly: Annotated[int, _integer(0, 520)] = 4
    """Keep the newest backup of each of the last M ISO weeks that have one."""


_VariableName = Annotated[str, _matching(r"[A-Za-z_][A-Za-z0-9_]*", "a variable name [A-Za-z_][A-Za-z0-9_]*")]


@dataclass(frozen=True)
class Service:
    """One service: a pair of nodes (or one) running one role. Every key of ``defaults`` may be set here too."""

    name: str = derived()
    role: _Name
    """The role: ``<project>/roles/<role>/``, else the built-in one."""
    image: _Image
    """The node's image; pin a digest too (``...:2.10.0@sha256:<64 hex>``)."""
    runtime: Literal["docker", "podman"] = in_file(default="docker")
    """The container engine's CLI on the nodes."""
    variables: Mapping[_VariableName, Annotated[Variable, PlainValidator(_variable)]] = in_file(default={})
    """Non-secret values the role's templates use: those its ``role.yaml`` declares (``defaults`` and ``variables``;
    chainlink: ``ETH_CHAIN_ID``, ``DATABASE_HOST``, ``EVM_CHAINS``, ... see docs/roles.md) and ``PROFILE``. Any other
    is refused (exit 2) before any host, naming a close one (``LOGLEVEL``: ``LOG_LEVEL``); in ``defaults:``, one
    that no service's role declares."""
    secrets: Annotated[Mapping[_Name, SecretRef], BeforeValidator(_references)] = in_file(default={})
    """References to the secrets the role needs (chainlink: ``db``, ``db_user``, ``keystore``, ``api_email``,
    ``api_password``; ``eth_url``, ``eth_http_url`` instead of the variables; ``db_admin_user``, ``db_admin`` for
    ``rotate-secrets --secret db`` and ``restore``)."""
    nodes: Annotated[tuple[Node, ...], AfterValidator(_count(1, 32, "nodes"))]
    """Its nodes: exactly one ``preferred: active``. How many its role takes depends on the role's ``activation``
    (checked with the role, before any host is touched): 1 or 2 (an active and an optional standby) under ``lease``
    and ``keys``, up to 32 under ``all`` (every node serves)."""
    restart: Literal["no", "on-failure", "always", "unless-stopped"] = "no"
    """The container's restart policy; only ``no`` with ``secret_files: shred``."""
    log_driver: _Name = "json-file"
    """The container's log driver (``awslogs``, ...)."""
    log_options: Mapping[_Word, _Word] = field(default_factory=lambda: MappingProxyType({}))
    """The log driver's options (``awslogs-group``, ...)."""
    secret_files: Literal["shred", "keep"] = "shred"
    """``shred`` each secret file once its node read it, or ``keep`` them on the node's tmpfs (0400, gone at
    reboot)."""
    load_balancer: Annotated[str, PlainValidator(_url)] | None = None
    """The URL users reach the service by, checked after every deploy and by ``fab check``."""
    check: CheckPolicy = CheckPolicy()
    """``fab check``'s limits for this service, key by key over the top-level ``check``."""
    port: _Port | None = None
    """The port the node serves and publishes on; unset: the role's. Services may share a host on different
    ports."""
    bastion: _Name | None = None
    """The bastion it is reached through: a name under ``bastions:``. Required when ``bastions:`` names several;
    with one bastion (``bastion:``, or one entry of ``bastions:``) it is that one, and may be left out. Its deploy
    lock and its audit records live on that bastion."""
    inherited: frozenset[str] = derived(default=frozenset())  # the names of ``variables`` taken from ``defaults:``

    @property
    def active_preferred(self) -> Node:
        return next(n for n in self.nodes if n.preferred == "active")

    @property
    def standby_preferred(self) -> Node | None:
        return next((n for n in self.nodes if n.preferred == "standby"), None)


@dataclass(frozen=True)
class Inventory:
    """One environment's inventory file. Unknown keys are errors everywhere; keys starting with ``x-`` at the top
    level are not read (YAML anchor holders: ``x-common: &common ...``, then ``<<: *common``)."""

    source: Path = derived()
    environment: _Name
    """The environment's name: ``--env NAME`` loads ``inventory/NAME.yaml`` only if it says NAME here (the deploy
    lock and the audit log are per environment)."""
    bastions: Mapping[_Name, Bastion] = in_file(default={})  # the one ``bastion:`` too, named ``bastion``
    """The SSH bastions by name (one per region or VPC, each with its own pinned key, user and ``state_dir``), each
    service naming its own (``services.NAME.bastion``); exactly one of ``bastion`` and ``bastions``."""
    ssh: SshSettings
    """How the nodes are reached."""
    secret_backends: Mapping[_Name, SecretBackend] = in_file(default={})
    """Where secret values come from (never the values), by name."""
    services: Annotated[Mapping[_Name, Service], AfterValidator(_count(1, None, "service"))]
    """The services, by name."""
    backup: BackupPolicy | None = None
    """``fab backup`` and ``fab restore``."""
    webhook: Annotated[SecretRef, BeforeValidator(_not_inline)] | None = None
    """The webhook's URL, as a secret reference (the URL carries a token): it is POSTed one JSON message per
    operation end and per ``fab check`` run with failing checks; one that fails or takes over 5 s is a warning."""

    def bastion_of(self, service: str) -> Bastion:
        """The bastion ``service`` (a name of ``services``) is reached through: the only one, or the one it names
        (KeyError for an unknown service when there are several)."""
        if len(self.bastions) == 1:
            return next(iter(self.bastions.values()))
        return self.bastions[self.services[service].bastion]

    def bastions_of(self, services: Sequence[str]) -> dict[str, list[str]]:
        """``services`` grouped by the name of their bastion, in the order of ``bastions`` and of ``services``."""
        grouped: dict[str, list[str]] = {name: [] for name in self.bastions}
        for service in services:
            grouped[self.bastion_of(service).name].append(service)
        return {name: names for name, names in grouped.items() if names}

    @property
    def nodes(self) -> tuple[Node, ...]:
        """All nodes, in file order."""
        return tuple(n for s in self.services.values() for n in s.nodes)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes)
        raise InvalidInput(f"unknown node {_shown(name)} (known: {known})")

    def select_nodes(self, names: Sequence[str] | None) -> tuple[Node, ...]:
        """The named nodes in file order (all of them if none are named)."""
        if not names:
            return self.nodes
        wanted = {self.node(name).name for name in names}
        return tuple(n for n in self.nodes if n.name in wanted)
