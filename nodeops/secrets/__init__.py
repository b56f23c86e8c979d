"""Secret values: a type that will not print itself, and the backends that produce them.

``Secret`` wraps one value. ``str()``, ``repr()`` and ``format()`` give a
redaction (``Secret('***', name='db')``), never the value; ``reveal()`` is the
one way out. Pickling and copying to another form are refused. While a
template is being rendered (``strict_rendering()``, used by nodeops.render)
every one of those conversions *raises* ``SecretLeak`` instead: a template
that prints a secret without an escaping filter fails with a clear error
rather than writing a redaction marker into a config file.
``mask_secrets`` hides every form of the values in a text (a message, a log).

``resolve(inventory, service)`` turns a service's secret references into
Secrets, one backend client per backend and one read per secret name.
Errors name the inventory file, the path ``services.<svc>.secrets.<name>``
and what was looked up (a secret name, a JSON key, an environment variable
name), never a value.

Backends: one module per kind, each a ``Backend`` (``describe(ref)``,
``read(ref, fail, version)``, optionally ``current_since(ref)``), found
through ``BACKENDS`` (kind -> its class):

- ``aws-secretsmanager`` (nodeops.secrets.aws), through the AWS edge
  (nodeops.edges.aws);
- ``aws-ssm`` (nodeops.secrets.ssm): Parameter Store, through the AWS edge;
- ``aws-kms`` (nodeops.secrets.kms): a base64 ciphertext file of the repository, decrypted by KMS;
- ``sops`` (nodeops.secrets.sops): a SOPS-encrypted file of the repository, decrypted by the ``sops``
  program through the local-process edge (nodeops.edges.proc), in memory;
- ``env`` (nodeops.secrets.env, for CI).

Adding a kind is a new module here with its ``Backend`` subclass, one line in
``BACKENDS``, and the kind's fields in the inventory's ``secret_backends``
(nodeops.inventory); a kind ``rotate-secrets`` can write also has its store in
nodeops.rotate.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import importlib
import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn
from urllib.parse import quote

from nodeops.errors import InvalidInput, InventoryError
from nodeops.inventory import Inventory, SecretBackend, SecretRef, Service

__all__ = [
    "BACKENDS",
    "CURRENT_ONLY",
    "Backend",
    "Fail",
    "Secret",
    "SecretAge",
    "SecretLeak",
    "mask_secrets",
    "open_backend",
    "json_object",
    "kind_in_words",
    "read_reference",
    "repository_file",
    "resolve",
    "secret_ages",
    "secret_forms",
    "strict_rendering",
    "version_of_kind",
]

REDACTED = "***"
_STRICT: ContextVar[bool] = ContextVar("nodeops_secret_strict", default=False)


class SecretLeak(InvalidInput):
    """A Secret was turned into text where only an escaping filter may reveal it (inside a template)."""

    def __init__(self, secret: Secret) -> None:
        self.secret_name = secret.name
        label = f"secret {secret.name!r}" if secret.name else "a secret"
        super().__init__(
            f"{label} is printed without an escaping filter; write it through one of "
            "toml, urlpart, dotenv or line (e.g. {{ secrets.NAME | toml }})"
        )


@contextlib.contextmanager
def strict_rendering() -> Iterator[None]:
    """Within this block (this thread/context only) turning a Secret into text raises SecretLeak."""
    token = _STRICT.set(True)
    try:
        yield
    finally:
        _STRICT.reset(token)


class Secret:
    """A secret value. Printing it in any way shows a redaction; ``reveal()`` returns the value.

    ``name`` is a label for messages (the service's name for the secret, e.g.
    ``db``); it is not secret. ``version`` is the backend's id of the version the
    value was read from (Secrets Manager's VersionId, a UUID), None where the
    backend keeps no versions (``env``); it is not secret either, and it is how a
    container's labels name the secrets it was started with. Equality and hashing
    go by value.
    """

    __slots__ = ("_value", "name", "version")

    def __init__(self, value: str, name: str = "", version: str | None = None) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret value must be a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "version", version)

    def reveal(self) -> str:
        return self._value

    def _redacted(self) -> str:
        if _STRICT.get():
            raise SecretLeak(self)
        return f"Secret({REDACTED!r}, name={self.name!r})" if self.name else f"Secret({REDACTED!r})"

    def __repr__(self) -> str:
        return self._redacted()

    def __str__(self) -> str:
        return self._redacted()

    def __format__(self, spec: str) -> str:
        return format(self._redacted(), spec)

    def __eq__(self, other: object) -> bool:
        if _STRICT.get():  # a template comparing a secret could let its output (a hash) confirm a guess
            raise SecretLeak(self)
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled (that would write its value in plain text)")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        self.__reduce__()

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: Any) -> Secret:
        return self

    def __bool__(self) -> bool:
        return bool(self._value)


# ---------------------------------------------------------------- masking values in text

MASK = "*****"
MASK_MIN = 4  # shorter values (a short user name such as cl1) are not hunted: they would mask unrelated words,
# and no password a node accepts is that short (Chainlink: 16 to 50 characters)


def secret_forms(secrets: Iterable[Secret], public: Iterable[str] = ()) -> list[str]:
    """Every form the values of ``secrets`` take in text (as is, percent-encoded, JSON-escaped) of at least
    ``MASK_MIN`` characters, longest first (so a longer form is masked before a part of it), except a form that is
    part of one of the ``public`` names (a service, node, role, variable or secret name: what status, container
    names and the inventory show to anyone who reads the text): masking it would hide the name the reader needs (a
    database user named after its service: `*****-a` for the node cl10-a) and reveal nothing, since the name is
    shown everywhere else. A value that merely contains a public name is masked whole."""
    names = tuple(public)
    forms = set()
    for s in secrets:
        value = s.reveal()
        forms |= {value, quote(value, safe="", errors="surrogatepass"), json.dumps(value)[1:-1]}
    kept = (f for f in forms if len(f) >= MASK_MIN and not any(f in name for name in names))
    return sorted(kept, key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[Secret], public: Iterable[str] = ()) -> str:
    """``text`` with every form (``secret_forms``: ``public`` names excepted) of every secret replaced by
    ``MASK``."""
    for form in secret_forms(secrets, public):
        text = text.replace(form, MASK)
    return text


# ---------------------------------------------------------------- resolving references


def resolve(inventory: Inventory, service: Service, *, environ: Mapping[str, str] | None = None,
            skip: Collection[str] = (),
            versions: Mapping[str, str | None] | None = None) -> dict[str, Secret]:  # fmt: skip
    """Every secret reference of ``service`` but those named in ``skip``, read through its backend, as {name: Secret}.

    One client per backend, one read per secret name and version (several keys of
    one JSON secret cost one call). ``environ`` defaults to ``os.environ``; it is
    what the ``env`` backend reads.
    ``versions``: {name: version id} to read instead of the current version (what
    a container was started with, to start it again exactly); a name it leaves
    out, or maps to None, is read at its current version.
    """
    env = os.environ if environ is None else environ
    file = str(inventory.source)
    by_backend: dict[str, list[tuple[str, SecretRef]]] = {}
    for name, ref in service.secrets.items():
        if name not in skip:
            by_backend.setdefault(ref.backend, []).append((name, ref))
    out: dict[str, Secret] = {}
    for backend_name, refs in by_backend.items():
        backend = inventory.secret_backends.get(backend_name)
        if backend is None:  # the inventory loader already refuses this; kept for hand-made models
            where = f"services.{service.name}.secrets.{refs[0][0]}.backend"
            raise InventoryError(file, where, f"unknown secret backend {backend_name!r}")
        reader = open_backend(backend, env, file)
        for name, ref in refs:
            where = f"services.{service.name}.secrets.{name}"

            def fail(problem: str, where: str = where, error: type = InventoryError) -> NoReturn:
                raise error(file, where, problem)

            value, version = reader.read(ref, fail, (versions or {}).get(name))
            if value == "":
                fail(f"{reader.describe(ref)} is empty")
            out[name] = Secret(value, name, version)
    return out


def read_reference(inventory: Inventory, ref: SecretRef, where: str, label: str) -> Secret:
    """One secret reference outside a service (``where``: its path in the inventory, e.g. ``backup.identity``)."""
    file = str(inventory.source)

    def fail(problem: str, error: type = InventoryError) -> NoReturn:
        raise error(file, where, problem)

    reader = open_backend(inventory.secret_backends[ref.backend], os.environ, file)
    value, version = reader.read(ref, fail)
    if value == "":
        fail(f"{reader.describe(ref)} is empty")
    return Secret(value, label, version)


class SecretAge(NamedTuple):
    """One secret's age: ``seconds`` since its current value was written, by its backend's date (None: the backend
    keeps none: ``aws-kms``, ``env``); ``kind``: its backend's kind, which messages name."""

    seconds: float | None
    kind: str


def secret_ages(inventory: Inventory, service: Service, now: datetime.datetime) -> dict[str, SecretAge]:
    """Each secret of ``service``'s age, by secret name (a Secrets Manager secret, a parameter, a file), from its
    backend's date (``Backend.current_since``: no value is read). Errors: OperationFailed (a date unreadable)."""
    file, opened, ages = str(inventory.source), {}, {}
    for ref in service.secrets.values():
        if ref.name in ages:
            continue
        b = inventory.secret_backends[ref.backend]
        backend = opened.get(b.name) or opened.setdefault(b.name, open_backend(b, os.environ, file))
        since = backend.current_since(ref)
        ages[ref.name] = SecretAge(None if since is None else (now - since).total_seconds(), b.kind)
    return ages


# ---------------------------------------------------------------- the backend interface

# fail(problem, error=InventoryError): raises error(file, path of the reference, problem)
Fail = Callable[..., NoReturn]


class Backend(abc.ABC):
    """One of the inventory's ``secret_backends``, opened for one command (one client, reused for every read).

    ``backend``: its inventory model (name, kind and the fields of its kind); ``environ``: the environment
    (what the ``env`` backend reads); ``file``: the inventory's path, for messages.
    """

    def __init__(self, backend: SecretBackend, environ: Mapping[str, str], file: str) -> None:
        self.backend, self.environ, self.file = backend, environ, file

    @abc.abstractmethod
    def describe(self, ref: SecretRef) -> str:
        """What ``ref`` reads, for messages, never a value (``environment variable NODEOPS_CL_DBSECRET``,
        ``key 'password' of secret 'cl/DBSecret'``): "<describe(ref)> is empty" must read well."""

    @abc.abstractmethod
    def read(self, ref: SecretRef, fail: Fail, version: str | None = None) -> tuple[str, str | None]:
        """(value, version id) of ``ref``: its current version, or ``version`` when given (a backend that keeps
        no versions returns None as the id, and refuses a ``version``). Every problem goes through ``fail``:
        ``fail(problem)`` for exit 2 (missing, refused, malformed), ``fail(problem, error=BackendUnreachable)``
        for exit 5 (the backend could not be read: nothing was done). ``problem`` names what was looked up,
        never a value."""

    def current_since(self, ref: SecretRef) -> datetime.datetime | None:  # noqa: ARG002 - no dates: unused
        """When ``ref``'s current value was written, read without its value; None (this default) for a
        backend that keeps no dates (``env``; ``aws-kms``: a ciphertext file carries none). Errors: OperationFailed."""
        return None


# Each kind of secret backend: the class that reads it, "module:class", imported when a backend of that kind is
# opened. A new kind: its module here (a Backend subclass), its line below, and its fields in the inventory
# (nodeops.inventory: the kind's spec in ``secret_backends``). tests/unit/test_secrets.py checks that this table
# and the inventory's kinds agree.
BACKENDS: Mapping[str, str] = MappingProxyType({
    "env": "nodeops.secrets.env:EnvBackend",
    "aws-secretsmanager": "nodeops.secrets.aws:SecretsManager",
    "aws-ssm": "nodeops.secrets.ssm:ParameterStore",
    "aws-kms": "nodeops.secrets.kms:KmsBlob",
    "sops": "nodeops.secrets.sops:SopsFile",
})  # fmt: skip


# The shape of each kind's version ids (a kind not here keeps none: its Secrets carry None): Secrets Manager's VersionId
# (32 to 64 characters, its ClientRequestToken's rule; nodeops writes UUIDs), Parameter Store's version number, a KMS
# ciphertext file's ``kms:`` and 16 hex digits of the blob's sha256 (nodeops.secrets.kms.blob_version), a SOPS file's
# ``sops:`` and 16 hex digits of the sha256 of its encrypted values (nodeops.secrets.sops.values_version).
VERSION_IDS: Mapping[str, str] = MappingProxyType({
    "aws-secretsmanager": r"[A-Za-z0-9-]{32,64}",
    "aws-ssm": r"[0-9]+",
    "aws-kms": r"kms:[0-9a-f]{16}",
    "sops": r"sops:[0-9a-f]{16}",
})  # fmt: skip

# The kinds whose version ids say that a value changed but that hold only their current value (a file of the
# repository: git has the older ones): a container's older version of them cannot be read again.
CURRENT_ONLY = frozenset({"aws-kms", "sops"})


def version_of_kind(kind: str, version: str | None) -> bool:
    """Whether ``version`` (what a container records of a secret) can be a version id of a backend of ``kind``: None
    for a kind that keeps no versions, an id of its shape (VERSION_IDS) for the others. False tells a secret the
    inventory moved to another backend since (nodeops.job.foreign_versions)."""
    shape = VERSION_IDS.get(kind)
    if shape is None:
        return version is None
    return version is not None and re.fullmatch(shape, version) is not None


def json_object(text: str | bytes) -> dict | None:
    """``text`` parsed as a JSON object; None when it is not JSON or not an object (the caller says which value)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def kind_in_words(value: object) -> str:
    """What a parsed YAML or JSON ``value`` is, in words for a message: ``a number``, ``true or false``, ``a list``,
    ``a mapping``, ``empty (null)``, ``a date``, else ``a <type>``."""
    if isinstance(value, bool):
        return "true or false"
    words = {int: "a number", float: "a number", list: "a list", dict: "a mapping", type(None): "empty (null)",
             datetime.date: "a date", datetime.datetime: "a date and time"}  # fmt: skip
    return words.get(type(value), f"a {type(value).__name__}")


def repository_file(file: str, name: str, fail: Fail, what: str) -> bytes:
    """The bytes of the file ``name`` names, relative to the inventory ``file``'s folder (or absolute): an
    encrypted file of the repository (``sops``, ``aws-kms``). A file that cannot be read is ``fail`` (exit 2)
    naming ``what`` (``SOPS file``) and the path, never its content."""
    path = Path(file).parent / name
    try:
        return path.read_bytes()
    except OSError as err:
        fail(f"{what} {name!r} cannot be read ({path}: {err.strerror or type(err).__name__}); the path is relative "
             "to the inventory's folder")  # fmt: skip


def open_backend(backend: SecretBackend, environ: Mapping[str, str], file: str) -> Backend:
    """``backend`` opened through the class ``BACKENDS`` names for its kind (``file``: the inventory, for
    messages). An unknown kind is exit 2 at ``secret_backends.<name>.kind`` (the loader refuses it first)."""
    target = BACKENDS.get(backend.kind)
    if target is None:
        raise InventoryError(file, f"secret_backends.{backend.name}.kind", f"unsupported kind {backend.kind!r}")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(backend, environ, file)
