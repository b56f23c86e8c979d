"""The inventory: one YAML file per environment -> a validated, frozen model.

Every problem becomes one InventoryError located by its path inside the file
(``services.chainlink.nodes[1].host``). The file holds only references to
secrets, so errors may echo offending values (truncated to 40 characters).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, NoReturn
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from nodeops.errors import InvalidInput, InventoryError

_NAME_PATTERN = "[a-z0-9][a-z0-9_-]*"
_NAME = re.compile(_NAME_PATTERN)
# Names become file names on the bastion (<state_dir>/<env>/locks/<service>.json), container names on the
# nodes (nodeops-<service>-previous) and S3 keys: a DNS label's 63 characters keep every one of them far
# below the file systems' 255 bytes.
NAME_MAX = 63
STATE_DIR_MAX = 255  # one file name's worth; the bastion scripts append <env>/locks/<service>.json to it
_HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")

# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class HostKey:
    """A pinned SSH host key."""

    keytype: str
    blob_b64: str

    @property
    def line(self) -> str:
        return f"{self.keytype} {self.blob_b64}"


@dataclass(frozen=True)
class Bastion:
    host: str
    port: int
    user: str
    identity_file: Path | None
    host_keys: tuple[HostKey, ...]
    known_hosts: Path | None
    state_dir: str = ".nodeops"  # on the bastion, relative to the user's home: deploy locks and the audit log
    lock_timeout: int = 60  # seconds a run may go unheard (frozen, cut off) before its locks are stale


@dataclass(frozen=True)
class SshSettings:
    """How to reach the nodes (through the bastion)."""

    user: str
    identity_file: Path | None
    known_hosts: Path | None
    max_parallel: int
    connect_timeout: float
    command_timeout: float
    connect_retries: int


@dataclass(frozen=True)
class SecretBackend:
    """Where secret values come from; fields not of its kind are None."""

    name: str
    kind: Literal["aws-secretsmanager", "env"]
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    prefix: str | None = None


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret value: never the value itself."""

    backend: str
    name: str
    key: str | None = None


@dataclass(frozen=True)
class Node:
    name: str
    host: str
    port: int
    preferred: Literal["active", "standby"]
    host_keys: tuple[HostKey, ...]
    service: str


@dataclass(frozen=True)
class CheckPolicy:
    """The limits of fab check (``check:`` at the top of the inventory and per service, key by key)."""

    secret_max_age_days: int = 90  # age of a secret's AWSCURRENT version: rotate before
    disk_max_percent: int = 90  # of /, /run and the container engine's storage
    memory_max_percent: int = 90  # used: MemTotal - MemAvailable
    load_max_per_cpu: float = 2.0  # 5-minute load average / CPUs
    log_error_lines: int = 10  # error-level lines allowed in the container's log ...
    log_minutes: int = 15  # ... in this many last minutes


@dataclass(frozen=True)
class BackupPolicy:
    """Where fab backup puts encrypted dumps, to whom they are encrypted, and how many it keeps (``backup:``)."""

    bucket: str  # S3 bucket
    aws: str  # a secret backend of kind aws-secretsmanager: its region, endpoint and credentials serve S3 too
    recipients: tuple[str, ...]  # age public keys (age1...) every backup is encrypted to
    prefix: str = "nodeops/"  # objects are <prefix><environment>/<service>/<id>.dump.age (+ .manifest.json)
    identity: SecretRef | None = None  # the age identity (AGE-SECRET-KEY-1...): read by fab restore only
    identity_file: Path | None = None  # ... or a file the operator holds
    keep_daily: int = 7  # the newest backup of each of the last N days that have one
    keep_weekly: int = 4  # the newest backup of each of the last M ISO weeks that have one


Scalar = str | int | float | bool
# A variable's value: a scalar, or a list or mapping of them nested at most VARIABLE_DEPTH deep (read-only by
# convention: templates run in an immutable sandbox).
Variable = Scalar | list[Any] | dict[str, Any]
VARIABLE_DEPTH = 4  # EVM_CHAINS: the list > a chain > its nodes > a node > its scalars


@dataclass(frozen=True)
class Service:
    name: str
    role: str
    image: str
    runtime: Literal["docker", "podman"]
    variables: Mapping[str, Variable]
    secrets: Mapping[str, SecretRef]
    nodes: tuple[Node, ...]
    restart: Literal["no", "on-failure", "always", "unless-stopped"] = "no"
    log_driver: str = "json-file"
    log_options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    secret_files: Literal["shred", "keep"] = "shred"
    load_balancer: str | None = None  # the URL users reach the service by, checked after a deploy
    check: CheckPolicy = CheckPolicy()
    port: int | None = None  # the port the node serves (and publishes) on; None: the role's
    inherited: frozenset[str] = frozenset()  # the names of ``variables`` taken from ``defaults:`` (not set here)

    @property
    def active_preferred(self) -> Node:
        return next(n for n in self.nodes if n.preferred == "active")

    @property
    def standby_preferred(self) -> Node | None:
        return next((n for n in self.nodes if n.preferred == "standby"), None)


@dataclass(frozen=True)
class Inventory:
    source: Path
    environment: str
    bastion: Bastion
    ssh: SshSettings
    secret_backends: Mapping[str, SecretBackend]
    services: Mapping[str, Service]
    backup: BackupPolicy | None = None
    webhook: SecretRef | None = None  # notify.webhook: gets a JSON message at each operation's end (nodeops.notify)

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


# ---------------------------------------------------------------- loading


def check_environment_name(env: str) -> None:
    """An environment name names a file (inventory/NAME.yaml): InvalidInput unless it is a name (_name_problem)."""
    if problem := _name_problem(env):
        raise InvalidInput(f"invalid environment name {_shown(env)}: {problem}")


def check_environment(inventory: Inventory, env: str) -> None:
    """``--env NAME`` loaded ``inventory/NAME.yaml``: its ``environment:`` must be NAME, or InventoryError (exit 2).
    The deploy lock and the audit log are kept per environment (``<state_dir>/<environment>/``): a file copied from
    another environment's and not edited would share that one's lock and audit log."""
    if inventory.environment != env:
        was = inventory.environment
        raise InventoryError(str(inventory.source), "environment", f"is {was!r} but the file is loaded as --env "
                             f"{env}: set environment: {env} (the deploy lock and the audit log are kept per "
                             f"environment; a copied file must not share {was!r}'s)")  # fmt: skip


def inventory_path(root: Path, env: str | None, override: str | None) -> Path:
    """The inventory file chosen by --inventory PATH, else by --env NAME."""
    if env:
        check_environment_name(env)
    if override:
        path = Path(override).expanduser()
    elif env:
        path = root / "inventory" / f"{env}.yaml"
    else:
        raise InvalidInput("give --env NAME or --inventory PATH")
    if not path.is_file():
        raise InvalidInput(f"inventory file not found: {path}")
    return path


def load_inventory(path: Path) -> Inventory:
    """Read and validate an inventory file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InventoryError(str(path), "", f"not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise InventoryError(str(path), "", f"cannot read the file: {err.strerror or err}") from None
    return parse_inventory(text, path)


def parse_inventory(text: str, source: Path) -> Inventory:
    """Validate an inventory's text; relative paths in it are relative to ``source``'s folder."""
    file = str(source)
    data, positions = _load_yaml(text, file)
    if data is None:
        raise InventoryError(file, "", "empty file: expected a mapping with environment, bastion, ssh and services")
    try:
        spec = _InventorySpec.model_validate(data, context={"base": source.parent})
    except ValidationError as err:
        raise _first_error(err, data, positions, file) from None
    inventory = _build(spec, source)
    _check(inventory)
    return inventory


class _Loader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys in a mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        problem=f"duplicate key {_shown(key)} (first at line {seen[key].line + 1})",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, file: str) -> tuple[Any, dict[tuple[Any, ...], tuple[int, int]]]:
    """The document and where each of its values starts, by path of keys and indexes."""
    loader = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        if root is None:
            return None, {}
        return loader.construct_document(root), _positions(loader, root)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = ", ".join(filter(None, (err.context, err.problem))) or str(err)
        raise InventoryError(file, where, f"invalid YAML: {_one_line(problem)}") from None
    except yaml.reader.ReaderError as err:  # a control character, refused before parsing
        before = text[: err.position]
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        where = f"line {line}, column {column}"
        raise InventoryError(file, where, f"invalid YAML: character #x{err.character:04x}: {err.reason}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _positions(loader: _Loader, root: yaml.Node) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(line, column) of every value, by its path; a missing key sorts at its mapping's start."""
    found: dict[tuple[Any, ...], tuple[int, int]] = {}
    seen: set[int] = set()  # a node reached again through an alias is not walked again
    todo: list[tuple[tuple[Any, ...], yaml.Node]] = [((), root)]
    while todo:
        path, node = todo.pop()
        found[path] = (node.start_mark.line, node.start_mark.column)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            todo += [(path + (loader.construct_object(k),), v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(path + (i,), v) for i, v in enumerate(node.value)]
    return found


# ---------------------------------------------------------------- pydantic errors -> one line

_EXPECTED = {
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
    "string_type": "a string",
}


def _first_error(
    exc: ValidationError, data: Any, positions: dict[tuple[Any, ...], tuple[int, int]], file: str
) -> InventoryError:
    """The error that comes first in the file, located and worded for a human."""
    found = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if err["type"] == "unknown_key":
            loc += (err["ctx"]["key"],)
        elif err["type"].startswith("union_tag_"):  # the one tagged union: secret backends by kind
            loc += ("kind",)
        where, walked = _where(loc, data)
        while walked not in positions:
            walked = walked[:-1]
        found.append((positions[walked], where, _problem(err, loc)))
    _, where, problem = min(found, key=lambda f: f[0])
    return InventoryError(file, where, problem)


def _where(loc: tuple[Any, ...], data: Any) -> tuple[str, tuple[Any, ...]]:
    """Map pydantic's loc onto the document: the dotted path, and the keys walked.

    Parts that are not in the document are dropped: union tags, '[key]', and
    the index pydantic gives a host_key written as a single string. A last
    part missing from a mapping is a missing key and is kept.
    """
    where, walked, node = "", (), data
    for i, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            where += f"[{part}]"
        elif isinstance(node, dict) and (part in node or (i == len(loc) - 1 and part != "[key]")):
            where += f".{_label(part)}"
        else:
            continue
        walked += (part,)
        node = node.get(part) if isinstance(node, dict) else node[part]
    return where.lstrip("."), walked


def _problem(err: ErrorDetails, loc: tuple[Any, ...]) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind in ("missing", "union_tag_not_found"):
        return f"missing required key {_shown(loc[-1])}"
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {_shown(err['input'])}"
    if kind == "union_tag_invalid":
        return f"expected one of {ctx['expected_tags']}, got {_shown(ctx['tag'])}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_shown(err['input'])}"
    return _one_line(err["msg"])  # our own validators' messages are complete sentences


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _label(key: Any) -> str:
    return key if isinstance(key, str) and key.isprintable() and len(key) <= 40 else _shown(key)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- field validators


def _fail(expected: str, value: Any) -> NoReturn:
    raise PydanticCustomError("invalid", f"expected {expected}, got {_shown(value)}")


def _accepts(expected: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Records on a validator what it accepts (``f.accepts``): the type column of the inventory reference
    (docs/inventory-reference.md, written by tools/inventory_reference.py) is read from it."""

    def mark(check: Callable[..., Any]) -> Callable[..., Any]:
        check.accepts = expected  # type: ignore[attr-defined]
        return check

    return mark


def _matching(pattern: str, expected: str) -> PlainValidator:
    regex = re.compile(pattern)

    @_accepts(expected)
    def check(value: Any) -> str:
        if isinstance(value, str) and regex.fullmatch(value):
            return value
        _fail(expected, value)

    return PlainValidator(check)


def _integer(low: int, high: int) -> PlainValidator:
    @_accepts(f"an integer {low}..{high}")
    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        _fail(check.accepts, value)

    return PlainValidator(check)


@_accepts("a number of seconds > 0")
def _seconds(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    _fail(_seconds.accepts, value)


def _count(low: int, high: int | None, what: str) -> Callable[[Sized], Sized]:
    wanted = f"at least {low}" if high is None else f"{low} to {high}"

    @_accepts(f"{wanted} {what}")
    def check(items: Sized) -> Sized:
        if low <= len(items) and (high is None or len(items) <= high):
            return items
        raise PydanticCustomError("invalid", f"expected {check.accepts}, got {len(items)}")

    return check


def _name_problem(value: Any) -> str | None:
    """Why ``value`` is not a name (environment, service, node, role, secret, backend), or None."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        return f"expected a name matching {_NAME_PATTERN}, got {_shown(value)}"
    if len(value) > NAME_MAX:
        return (f"a name of at most {NAME_MAX} characters, got {len(value)}: it names files on the bastion and "
                "containers on the nodes; shorten it")  # fmt: skip
    return None


@_accepts(f"a name {_NAME_PATTERN}, at most {NAME_MAX} characters")
def _name(value: Any) -> str:
    if problem := _name_problem(value):
        raise PydanticCustomError("invalid", problem)
    return value


_STATE_DIR = re.compile(r"[A-Za-z0-9._/-]+")


@_accepts(
    f"a directory on the bastion (letters, digits, . _ / -; no part starting with -; not / or . itself; "
    f"at most {STATE_DIR_MAX} characters), relative to the user's home or absolute"
)
def _state_dir(value: Any) -> str:
    """A directory on the bastion that no command can take for an option, short enough for the files under it."""
    if (
        isinstance(value, str)
        and _STATE_DIR.fullmatch(value)
        and len(value) <= STATE_DIR_MAX
        and not any(part.startswith("-") for part in value.split("/"))
        and value.strip("/.")
    ):
        return value
    _fail(f"a directory path on the bastion of its own (letters, digits, . _ / -; no part starting with -; "
          f"not / or . itself; at most {STATE_DIR_MAX} characters)", value)  # fmt: skip


_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


@_accepts("a hostname or IP address")
def _host(value: Any) -> str:
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            labels = value.split(".")
            if (
                len(value) <= 253
                and all(_HOST_LABEL.fullmatch(label) for label in labels)
                and not labels[-1].isdigit()  # 10.0.1.300 is a bad address, not a hostname
            ):
                return value
    _fail(_host.accepts, value)


@_accepts("a file path (relative to the inventory file's folder; ~ expanded)")
def _path(value: Any, info: ValidationInfo) -> Path:
    """A path: ``~`` expanded, relative to the inventory file's folder."""
    if not isinstance(value, str) or not value:
        _fail("a file path", value)
    return info.context["base"] / Path(value).expanduser()


@_accepts("an http(s) URL")
def _url(value: Any) -> str:
    if isinstance(value, str) and not any(c.isspace() for c in value):
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc:
            return value
    _fail(_url.accepts, value)


@_accepts("a number > 0 and <= 1000")
def _per_cpu(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1000:
        return float(value)
    _fail(_per_cpu.accepts, value)


_VARIABLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def variable_problem(value: Any, depth: int = VARIABLE_DEPTH) -> str | None:
    """Why ``value`` cannot be a variable (``where: problem``, ``where`` inside the value, e.g. ``[0].nodes``), or
    None: a string, number or boolean, or a list or mapping (keys ``[A-Za-z_][A-Za-z0-9_-]*``) of them, nested at
    most ``depth`` deep. Shared by the inventory and role.yaml ``defaults``."""
    if isinstance(value, str | int | float | bool):
        return None
    if not isinstance(value, list | dict):
        return f": expected a string, number or boolean (or a list or mapping of them), got {_shown(value)}"
    if depth == 0:
        return f": lists and mappings nest at most {VARIABLE_DEPTH} deep"
    items = enumerate(value) if isinstance(value, list) else value.items()
    for k, item in items:
        if isinstance(value, dict) and not (isinstance(k, str) and _VARIABLE_KEY.fullmatch(k)):
            return f": expected keys matching {_VARIABLE_KEY.pattern}, got {_shown(k)}"
        if problem := variable_problem(item, depth - 1):
            return (f"[{k}]" if isinstance(k, int) else f".{k}") + problem
    return None


@_accepts(f"a string, number or boolean, or a list or mapping of them (nested at most {VARIABLE_DEPTH} deep)")
def _variable(value: Any) -> Variable:
    if problem := variable_problem(value):
        where, _, what = problem.partition(": ")
        raise PydanticCustomError("invalid", f"{'at ' + where + ': ' if where else ''}{what}")
    return value


@_accepts(f"a public key 'TYPE BASE64 [comment]' with TYPE one of {', '.join(_HOST_KEY_TYPES)}")
def _host_key(value: Any) -> HostKey:
    """An OpenSSH public key line, checked without paramiko (SSH wire format)."""
    parts = value.split() if isinstance(value, str) else []
    if len(parts) < 2 or parts[0] not in _HOST_KEY_TYPES:
        _fail(_host_key.accepts, value)
    keytype, blob_b64 = parts[:2]
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except binascii.Error:
        _fail("the key data to be base64", blob_b64)
    if not blob.startswith(struct.pack(">I", len(keytype)) + keytype.encode()):
        _fail(f"key data that encodes a {keytype} key", blob_b64)
    return HostKey(keytype, blob_b64)


def _key_list(value: Any) -> Any:
    """One key or a list of them (validated one by one, so errors carry the index)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        return value
    _fail("a host key or a non-empty list of host keys", value)


_Name = Annotated[str, PlainValidator(_name)]
_StateDir = Annotated[str, PlainValidator(_state_dir)]
_Word = Annotated[str, _matching(r"[!-~]+", "a non-empty string without spaces")]
_Image = Annotated[
    str,
    _matching(
        r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?/)?"  # registry
        r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"  # repository
        r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?",  # tag, digest
        "an image reference repo[:tag][@sha256:digest]",
    ),
]
_Host = Annotated[str, PlainValidator(_host)]
_Port = Annotated[int, _integer(1, 65535)]
_Seconds = Annotated[float, PlainValidator(_seconds)]
_Path = Annotated[Path, PlainValidator(_path)]
_HostKeys = Annotated[tuple[Annotated[HostKey, PlainValidator(_host_key)], ...], BeforeValidator(_key_list)]


# ---------------------------------------------------------------- the schema of the file


class _Spec(BaseModel):
    """A mapping in the file: frozen, and unknown keys are errors that list the allowed ones."""

    # use_attribute_docstrings: the string under each field is its description (docs/inventory-reference.md)
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    # keys starting with this are not read at all (only the top level has some: x-... anchor holders)
    IGNORED_PREFIX: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            ignored = cls.IGNORED_PREFIX
            data = {k: v for k, v in data.items() if not (ignored and isinstance(k, str) and k.startswith(ignored))}
            for key in data:
                if key not in cls.model_fields:
                    allowed = ", ".join(cls.model_fields) + (f", {ignored}..." if ignored else "")
                    raise PydanticCustomError(
                        "unknown_key", f"unknown key {_shown(key)} (allowed: {allowed})", {"key": key}
                    )
        return data


class _BastionSpec(_Spec):
    """The only host reachable from outside; every connection to a node goes through it, one login per run.
    Its host key is pinned: exactly one of ``host_key`` and ``known_hosts``."""

    host: _Host
    """Its address, as the operator's machine reaches it."""
    port: _Port = 22
    """Its SSH port."""
    user: _Word
    """The user nodeops logs in as; every operator and CI job shares it (or a shared ``state_dir``)."""
    identity_file: _Path | None = None
    """The private key for the bastion (unencrypted); never ``-i``."""
    host_key: _HostKeys = ()
    """Its pinned host key (one, or a list): from the instance's console output, never a first connection."""
    known_hosts: _Path | None = None
    """... or an OpenSSH known_hosts file that pins it."""
    state_dir: _StateDir = ".nodeops"
    """Where the deploy locks and the audit log live on the bastion."""
    lock_timeout: Annotated[int, _integer(4, 3600)] = 60
    """Seconds a run may go unheard (frozen, cut off) before its locks are stale."""


class _SshSpec(_Spec):
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


class _AwsSpec(_Spec):
    """AWS Secrets Manager: reads each secret's ``AWSCURRENT`` version, with the usual AWS credential chain."""

    kind: Literal["aws-secretsmanager"]
    """This backend's kind."""
    region: Annotated[str, _matching(r"[a-z]{2}(-[a-z]+)+-[0-9]+", "an AWS region such as us-east-1")]
    """The region the secrets (and, for ``backup``, the bucket) are in."""
    endpoint_url: Annotated[str, PlainValidator(_url)] | None = None
    """Another endpoint (on loopback with no credentials configured, as the lab's moto: dummy credentials)."""
    profile: _Word | None = None
    """An AWS profile of the operator's configuration."""


class _EnvSpec(_Spec):
    """The process environment, for CI: a reference ``{name: chainlink/DBSecret, key: password}`` reads
    ``PREFIX`` + the name upper-cased with every other character as ``_``, then ``_KEY``
    (``NODEOPS_CHAINLINK_DBSECRET_PASSWORD``). It keeps no versions."""

    kind: Literal["env"]
    """This backend's kind."""
    prefix: Annotated[str, _matching(r"[A-Za-z0-9_]*", "an environment variable prefix [A-Za-z0-9_]*")] = ""
    """Put before every variable name (``NODEOPS_``)."""


class _SecretRefSpec(_Spec):
    """Where one secret value lives (never the value)."""

    TITLE: ClassVar[str] = "secret reference"  # its heading in docs/inventory-reference.md (it is used at several keys)

    backend: _Name
    """One of ``secret_backends``."""
    name: _Word
    """The secret's name in that backend (``chainlink/DBSecret``)."""

    @model_validator(mode="before")
    @classmethod
    def _not_a_value(cls, data: Any) -> Any:
        """Anything but a mapping here is most likely the secret itself, pasted in: refused without echoing it."""
        if not isinstance(data, dict):
            raise PydanticCustomError(
                "invalid",
                "expected a secret reference {backend, name, key}, not a value (the value is not shown): store "
                "the secret in a secret backend and reference it here",
            )
        return data

    key: _Word | None = None
    """A field of a JSON secret; without it, the whole value."""


class _NodeSpec(_Spec):
    """One node host of a service. Names are unique across the inventory; each node needs a pinned key, its
    own ``host_key`` or ``ssh.known_hosts``."""

    name: _Name
    """The node's name (``--node``, ``--nodes``, ``-H``)."""
    host: _Host
    """Its private address, reached through the bastion."""
    port: _Port = 22
    """Its SSH port."""
    preferred: Literal["active", "standby"]
    """Which node a fresh pair starts as the active: exactly one per service is ``active``."""
    host_key: _HostKeys = ()
    """Its pinned host key (one, or a list)."""


class _CheckSpec(_Spec):
    """``fab check``'s limits, all optional, at the top level and per service (a service's key overrides the
    top level's); unset: the defaults of ``CheckPolicy`` (``FALLBACKS``)."""

    FALLBACKS: ClassVar[dict[str, Any]] = {f.name: f.default for f in fields(CheckPolicy)}

    secret_max_age_days: Annotated[int, _integer(1, 3650)] | None = None
    """Age of a secret's ``AWSCURRENT`` version to rotate before."""
    disk_max_percent: Annotated[int, _integer(1, 100)] | None = None
    """Of ``/``, ``/run`` and the container engine's storage."""
    memory_max_percent: Annotated[int, _integer(1, 100)] | None = None
    """Used memory, ``MemTotal - MemAvailable``."""
    load_max_per_cpu: Annotated[float, PlainValidator(_per_cpu)] | None = None
    """The 5-minute load average per CPU."""
    log_error_lines: Annotated[int, _integer(0, 1_000_000)] | None = None
    """Error-level lines allowed in the container's log ..."""
    log_minutes: Annotated[int, _integer(1, 1440)] | None = None
    """... in this many last minutes."""


class _BackupSpec(_Spec):
    """``fab backup`` and ``fab restore`` (optional): encrypted dumps of each service's database in S3."""

    bucket: Annotated[str, _matching(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name [a-z0-9.-], 3 to 63")]
    """The S3 bucket."""
    aws: _Name
    """A secret backend of kind aws-secretsmanager: its region, endpoint and credentials serve S3 too."""
    recipients: Annotated[
        tuple[Annotated[str, _matching(r"age1[02-9ac-hj-np-z]{58}", "an age public key age1... (age-keygen -y)")], ...],
        BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
        AfterValidator(_count(1, None, "recipient")),
    ]
    """Age public keys every backup is encrypted to (one or a list); list an offline spare too."""
    prefix: Annotated[str, _matching(r"([A-Za-z0-9._-]+/)*", "an S3 key prefix ending in / (or empty)")] = "nodeops/"
    """Objects are ``<prefix><environment>/<service>/<id>.dump.age`` (and ``.manifest.json``)."""
    identity: _SecretRefSpec | None = None
    """The age identity (``AGE-SECRET-KEY-1...``), read by ``fab restore`` only ..."""
    identity_file: _Path | None = None
    """... or a file the operator holds (at most one of the two)."""
    keep_daily: Annotated[int, _integer(1, 3660)] = 7
    """Keep the newest backup of each of the last N days that have one."""
    keep_weekly: Annotated[int, _integer(0, 520)] = 4
    """Keep the newest backup of each of the last M ISO weeks that have one."""


def _not_inline(value: Any) -> Any:
    """A webhook written as its URL: refused without echoing it (the URL carries its token)."""
    if isinstance(value, str):
        raise PydanticCustomError(
            "invalid",
            "expected a secret reference {backend, name, key}, not the URL itself "
            "(its value is not shown): the URL carries a token; store it in a secret backend",
        )
    return value


def _references(value: Any) -> Any:
    """``secrets:`` written as something else than a mapping (a value pasted in): refused without echoing it."""
    if not isinstance(value, dict):
        raise PydanticCustomError("invalid", "expected a mapping of secret names to references {backend, name, key}, "
                                  "not a value (the value is not shown)")  # fmt: skip
    return value


class _NotifySpec(_Spec):
    """``notify:``, where nodeops reports to (nodeops.notify)."""

    webhook: Annotated[_SecretRefSpec, BeforeValidator(_not_inline)]
    """The webhook's URL, as a secret reference (the URL carries a token): it is POSTed one JSON message per
    operation end and per ``fab check`` run with failing checks; one that fails or takes over 5 s is a warning."""


class _DefaultsSpec(_Spec):
    """``defaults:``, what every service shares (any service key but ``nodes``, ``load_balancer`` and ``check``). A
    service's own value replaces it, key by key, except the mappings ``variables``, ``secrets`` and ``log_options``
    (``MERGED``), merged per entry (a list variable is replaced whole). When neither sets a key, its fallback
    (``FALLBACKS``) applies; ``role`` and ``image`` (``REQUIRED``) must be set in one of the two."""

    MERGED: ClassVar[tuple[str, ...]] = ("variables", "secrets", "log_options")
    FALLBACKS: ClassVar[dict[str, Any]] = {"runtime": "docker", "restart": "no", "log_driver": "json-file",
                                           "secret_files": "shred"}  # fmt: skip
    REQUIRED: ClassVar[tuple[str, ...]] = ("role", "image")

    role: _Name | None = None
    """The role: ``<project>/roles/<role>/``, else the built-in one."""
    image: _Image | None = None
    """The node's image; pin a digest too (``...:2.10.0@sha256:<64 hex>``)."""
    runtime: Literal["docker", "podman"] | None = None
    """The container engine's CLI on the nodes."""
    variables: dict[
        Annotated[str, _matching(r"[A-Za-z_][A-Za-z0-9_]*", "a variable name [A-Za-z_][A-Za-z0-9_]*")],
        Annotated[Variable, PlainValidator(_variable)],
    ] = {}
    """Non-secret values the role's templates use: those its ``role.yaml`` declares (``defaults`` and ``variables``;
    chainlink: ``ETH_CHAIN_ID``, ``DATABASE_HOST``, ``EVM_CHAINS``, ... see docs/roles.md) and ``PROFILE``. Any other
    is refused (exit 2) before any host, naming a close one (``LOGLEVEL``: ``LOG_LEVEL``); in ``defaults:``, one
    that no service's role declares."""
    secrets: Annotated[dict[_Name, _SecretRefSpec], BeforeValidator(_references)] = {}
    """References to the secrets the role needs (chainlink: ``db``, ``db_user``, ``keystore``, ``api_email``,
    ``api_password``; ``eth_url``, ``eth_http_url`` instead of the variables; ``db_admin_user``, ``db_admin`` for
    ``rotate-secrets --secret db`` and ``restore``)."""
    restart: Literal["no", "on-failure", "always", "unless-stopped"] | None = None
    """The container's restart policy; only ``no`` with ``secret_files: shred``."""
    log_driver: _Name | None = None
    """The container's log driver (``awslogs``, ...)."""
    log_options: dict[_Word, _Word] = {}
    """The log driver's options (``awslogs-group``, ...)."""
    secret_files: Literal["shred", "keep"] | None = None
    """``shred`` each secret file once its node read it, or ``keep`` them on the node's tmpfs (0400, gone at
    reboot)."""
    port: _Port | None = None
    """The port the node serves and publishes on; unset: the role's. Services may share a host on different
    ports."""


class _ServiceSpec(_DefaultsSpec):
    """One service: a pair of nodes (or one) running one role. Every key of ``defaults`` may be set here too."""

    nodes: Annotated[tuple[_NodeSpec, ...], AfterValidator(_count(1, 2, "nodes (an active and an optional standby)"))]
    """Its nodes: exactly one ``preferred: active``, at most one standby."""
    load_balancer: Annotated[str, PlainValidator(_url)] | None = None
    """The URL users reach the service by, checked after every deploy and by ``fab check``."""
    check: _CheckSpec = _CheckSpec()
    """``fab check``'s limits for this service, key by key over the top-level ``check``."""


class _InventorySpec(_Spec):
    """One environment's inventory file. Unknown keys are errors everywhere; keys starting with ``x-`` at the top
    level are not read (YAML anchor holders: ``x-common: &common ...``, then ``<<: *common``)."""

    environment: _Name
    """The environment's name: ``--env NAME`` loads ``inventory/NAME.yaml`` only if it says NAME here (the deploy
    lock and the audit log are per environment)."""
    bastion: _BastionSpec
    """The SSH bastion."""
    ssh: _SshSpec
    """How the nodes are reached."""
    secret_backends: dict[_Name, Annotated[_AwsSpec | _EnvSpec, Field(discriminator="kind")]] = {}
    """Where secret values come from (never the values), by name."""
    defaults: _DefaultsSpec = _DefaultsSpec()
    """What every service shares."""
    services: Annotated[dict[_Name, _ServiceSpec], AfterValidator(_count(1, None, "service"))]
    """The services, by name."""
    check: _CheckSpec = _CheckSpec()
    """``fab check``'s limits for every service."""
    backup: _BackupSpec | None = None
    """``fab backup`` and ``fab restore``."""
    notify: _NotifySpec | None = None
    """Notifications: a JSON message per operation end and per failing ``fab check`` run."""
    IGNORED_PREFIX: ClassVar[str | None] = "x-"  # YAML anchor holders (x-common: &common ...)


def _shared(defaults: _DefaultsSpec, s: _ServiceSpec, name: str, file: str) -> dict[str, Any]:
    """A service's keys of ``_DefaultsSpec`` over ``defaults`` (mappings merged per entry, the rest replaced)."""
    out: dict[str, Any] = {}
    for key in _DefaultsSpec.model_fields:
        mine, shared = getattr(s, key), getattr(defaults, key)
        if key in _DefaultsSpec.MERGED:
            out[key] = MappingProxyType({**shared, **mine})
        else:
            out[key] = next((v for v in (mine, shared, _DefaultsSpec.FALLBACKS.get(key)) if v is not None), None)
    for key in _DefaultsSpec.REQUIRED:
        if out[key] is None:
            raise InventoryError(file, f"services.{name}", f"missing required key {key!r} (set it here or in defaults)")
    out["secrets"] = MappingProxyType({k: SecretRef(**ref.model_dump()) for k, ref in out["secrets"].items()})
    return out


def _build(spec: _InventorySpec, source: Path) -> Inventory:
    services = {}
    for name, s in spec.services.items():
        services[name] = Service(
            **_shared(spec.defaults, s, name, str(source)),
            name=name,
            nodes=tuple(
                Node(**n.model_dump(exclude={"host_key"}), host_keys=n.host_key, service=name) for n in s.nodes
            ),
            load_balancer=s.load_balancer,
            inherited=frozenset(spec.defaults.variables).difference(s.variables),
            check=CheckPolicy(**{**spec.check.model_dump(exclude_none=True), **s.check.model_dump(exclude_none=True)}),
        )
    return Inventory(
        source=source,
        environment=spec.environment,
        bastion=Bastion(**spec.bastion.model_dump(exclude={"host_key"}), host_keys=spec.bastion.host_key),
        ssh=SshSettings(**spec.ssh.model_dump()),
        secret_backends=MappingProxyType(
            {name: SecretBackend(name=name, **be.model_dump()) for name, be in spec.secret_backends.items()}
        ),
        services=MappingProxyType(services),
        backup=None
        if spec.backup is None
        else BackupPolicy(
            **spec.backup.model_dump(exclude={"identity"}),
            identity=SecretRef(**spec.backup.identity.model_dump()) if spec.backup.identity else None,
        ),
        webhook=SecretRef(**spec.notify.webhook.model_dump()) if spec.notify else None,
    )


# ---------------------------------------------------------------- rules across fields


def _check(inv: Inventory) -> None:
    """Rules that span several fields, checked in file order."""

    def fail(where: str, problem: str) -> NoReturn:
        raise InventoryError(str(inv.source), where, problem)

    if bool(inv.bastion.host_keys) == bool(inv.bastion.known_hosts):
        fail("bastion", "pin the bastion's host key: set exactly one of host_key or known_hosts")
    if inv.backup is not None:
        _check_backup(inv.backup, inv.secret_backends, fail)
    if inv.webhook is not None and inv.webhook.backend not in inv.secret_backends:
        defined = ", ".join(inv.secret_backends) or "none"
        fail("notify.webhook.backend", f"unknown secret backend {_shown(inv.webhook.backend)} (defined: {defined})")
    names: dict[str, str] = {}
    addresses: dict[tuple[str, int], list[tuple[str, Service]]] = {}  # a host: its nodes, where and whose
    for service in inv.services.values():
        at = f"services.{service.name}"
        for key, ref in service.secrets.items():
            if ref.backend not in inv.secret_backends:
                defined = ", ".join(inv.secret_backends) or "none"
                problem = f"unknown secret backend {_shown(ref.backend)} (defined: {defined})"
                fail(f"{at}.secrets.{key}.backend", problem)
        if service.secret_files == "shred" and service.restart != "no":
            fail(
                f"{at}.restart",
                f"restart {service.restart!r} would restart a node whose secret files were shredded "
                "(it could not start); use restart: no (nodeops redeploys, the standby covers) "
                "or secret_files: keep",
            )
        active = None
        for i, node in enumerate(service.nodes):
            here = f"{at}.nodes[{i}]"
            if node.name in names:
                fail(f"{here}.name", f"duplicate node name {_shown(node.name)} (also at {names[node.name]})")
            names[node.name] = here
            address = (_canonical_host(node.host), node.port)
            for where, other in addresses.get(address, []):
                if other.name == service.name:
                    fail(f"{here}.host", f"duplicate address {_shown(f'{node.host}:{node.port}')} (also at {where})")
                if (port := _serving_port(other)) == _serving_port(service):
                    fix = f"set a different port on one of them (services.{service.name}.port)"
                    fail(f"{here}.host", f"services {other.name} and {service.name} share host {node.host} and "
                         f"both serve on {port}: {fix}")  # fmt: skip
            addresses.setdefault(address, []).append((here, service))
            if not node.host_keys and inv.ssh.known_hosts is None:
                fail(here, "no pinned host key: set host_key or ssh.known_hosts")
            if node.preferred == "active":
                if active:
                    fail(f"{here}.preferred", f"a second active node (also at {active}): mark exactly one active")
                active = here
        if active is None:
            fail(f"{at}.nodes", "no node has 'preferred: active': mark exactly one active")


def _check_backup(b: BackupPolicy, backends: Mapping[str, SecretBackend], fail: Callable[[str, str], NoReturn]) -> None:
    aws = backends.get(b.aws)
    if aws is None or aws.kind != "aws-secretsmanager":
        kinds = ", ".join(n for n, be in backends.items() if be.kind == "aws-secretsmanager") or "none"
        fail("backup.aws", f"{_shown(b.aws)} is not a secret backend of kind aws-secretsmanager (those: {kinds}); "
             "S3 is reached with its region, endpoint and credentials")  # fmt: skip
    if b.identity is not None and b.identity.backend not in backends:
        fail("backup.identity.backend", f"unknown secret backend {_shown(b.identity.backend)}")
    if b.identity is not None and b.identity_file is not None:
        fail("backup", "set at most one of identity (a secret reference) and identity_file")


def _serving_port(service: Service) -> int | str:
    """The port ``service``'s nodes serve and publish on, as far as the inventory alone can tell: its own ``port``,
    else a label that equals only another service's of the same role without one (roles.role_for compares the
    roles' ports)."""
    return service.port or f"the {service.role} role's port"


def shares_host(a: Service, b: Service) -> bool:
    """Whether two services have nodes on one host (the same address and SSH port)."""
    hosts = [{(_canonical_host(n.host), n.port) for n in s.nodes} for s in (a, b)]
    return bool(hosts[0] & hosts[1])


def _canonical_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()
