"""Secret values: a type that will not print itself, and the backends that produce them.

``Secret`` wraps one value. ``str()``, ``repr()`` and ``format()`` give a
redaction (``Secret('***', name='db')``), never the value; ``reveal()`` is the
one way out. Pickling and copying to another form are refused. While a
template is being rendered (``strict_rendering()``, used by nodeops.render)
every one of those conversions *raises* ``SecretLeak`` instead: a template
that prints a secret without an escaping filter fails with a clear error
rather than writing a redaction marker into a config file.

``resolve(inventory, service)`` turns a service's secret references into
Secrets, one backend client per backend and one read per secret name.
Errors name the inventory file, the path ``services.<svc>.secrets.<name>``
and what was looked up (a secret name, a JSON key, an environment variable
name), never a value. Backends:

- ``aws-secretsmanager``: ``get_secret_value(SecretId=name,
  VersionStage="AWSCURRENT")``, always with the stage (moto, and a secret
  whose stages were just moved by a rotation, otherwise return the old value).
  With ``key`` the SecretString is a JSON object and the value is that key's
  string; without, the SecretString is the value.
- ``env`` (for CI): see ``env_variable_name``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

from nodeops.errors import BackendUnreachable, InvalidInput, InventoryError, OperationFailed
from nodeops.inventory import Inventory, SecretBackend, SecretRef, Service

__all__ = [
    "Secret",
    "SecretLeak",
    "aws_client",
    "backend_where",
    "env_variable_name",
    "is_loopback_url",
    "mask_secrets",
    "read_reference",
    "resolve",
    "secret_ages",
    "secret_forms",
    "strict_rendering",
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


def secret_forms(secrets: Iterable[Secret]) -> list[str]:
    """Every form the values of ``secrets`` take in text (as is, percent-encoded, JSON-escaped) of at least
    ``MASK_MIN`` characters, longest first (so a longer form is masked before a part of it)."""
    forms = set()
    for s in secrets:
        value = s.reveal()
        forms |= {value, quote(value, safe="", errors="surrogatepass"), json.dumps(value)[1:-1]}
    return sorted((f for f in forms if len(f) >= MASK_MIN), key=len, reverse=True)


def mask_secrets(text: str, secrets: Iterable[Secret], public: Iterable[str] = ()) -> str:
    """``text`` with every form (``secret_forms``) of every secret replaced by ``MASK``, except a form that is part
    of one of the ``public`` names (a service, node, role, variable or secret name: what status, container names
    and the inventory show to anyone who reads this text): masking it would hide the name the reader needs (a
    database user named after its service) and reveal nothing, since the name is shown everywhere else. A
    value that merely contains a public name is masked whole."""
    names = tuple(public)
    for form in secret_forms(secrets):
        if not any(form in name for name in names):
            text = text.replace(form, MASK)
    return text


# ---------------------------------------------------------------- resolving references


def resolve(inventory: Inventory, service: Service, *, environ: Mapping[str, str] | None = None,
            skip: Collection[str] = (),
            versions: Mapping[str, str | None] | None = None) -> dict[str, Secret]:  # fmt: skip
    """Every secret reference of ``service`` but those named in ``skip``, read through its backend, as {name: Secret}.

    One client per backend, one read per secret name and version (several keys of
    one JSON secret cost one call). ``environ`` defaults to ``os.environ``; it is
    read by the ``env`` backend and for the loopback rule of the AWS backend.
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
        reader = _reader(backend, env, file)
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

    reader = _reader(inventory.secret_backends[ref.backend], os.environ, file)
    value, version = reader.read(ref, fail)
    if value == "":
        fail(f"{reader.describe(ref)} is empty")
    return Secret(value, label, version)


def _reader(backend: SecretBackend, environ: Mapping[str, str], file: str) -> _EnvReader | _AwsReader:
    if backend.kind == "env":
        return _EnvReader(backend, environ)
    if backend.kind == "aws-secretsmanager":
        return _AwsReader(backend, file)
    raise InventoryError(file, f"secret_backends.{backend.name}.kind", f"unsupported kind {backend.kind!r}")


# fail(problem, error=InventoryError): raises error(file, path of the reference, problem)
_Fail = Callable[..., NoReturn]


def env_variable_name(prefix: str, name: str, key: str | None) -> str:
    """The environment variable the ``env`` backend reads for a reference.

    ``prefix`` + NAME, where NAME is the secret name upper-cased with every
    character outside [A-Z0-9] replaced by ``_``; with a ``key``, ``_`` + the
    key transformed the same way is appended. Prefix ``NODEOPS_``, name
    ``chainlink/DBSecret``, key ``password`` -> ``NODEOPS_CHAINLINK_DBSECRET_PASSWORD``.
    """

    def norm(text: str) -> str:
        return re.sub(r"[^A-Z0-9]", "_", text.upper())

    return prefix + norm(name) + (f"_{norm(key)}" if key else "")


class _EnvReader:
    def __init__(self, backend: SecretBackend, environ: Mapping[str, str]) -> None:
        self.prefix = backend.prefix or ""
        self.backend = backend.name
        self.environ = environ

    def describe(self, ref: SecretRef) -> str:
        return f"environment variable {env_variable_name(self.prefix, ref.name, ref.key)}"

    def read(self, ref: SecretRef, fail: _Fail, version: str | None = None) -> tuple[str, None]:
        """(value, None): an environment keeps no versions, so ``version`` cannot be honoured and is refused."""
        var = env_variable_name(self.prefix, ref.name, ref.key)
        if version is not None:
            fail(f"version {version} was asked for, but secret backend {self.backend!r} (kind env) keeps no versions")
        if var not in self.environ:
            fail(f"environment variable {var} is not set (secret backend {self.backend!r}, kind env)")
        return self.environ[var], None


def is_loopback_url(url: str | None) -> bool:
    """Whether ``url``'s host is localhost or a loopback address (127.0.0.0/8, ::1)."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def backend_where(b: SecretBackend) -> str:
    """An AWS backend named for messages: name, region and endpoint (never a credential)."""
    endpoint = f", endpoint {b.endpoint_url}" if b.endpoint_url else ""
    return f"secret backend {b.name!r} (region {b.region}{endpoint})"


def aws_client(b: SecretBackend, file: str, service: str = "secretsmanager") -> Any:
    """A client of the AWS ``service`` (Secrets Manager; S3 for fab backup) with backend ``b``'s region, endpoint
    and credentials (``file``: the inventory, for messages)."""
    import boto3  # slow to import: only when an AWS backend is used
    import botocore.config
    import botocore.exceptions
    import botocore.session

    try:
        core = botocore.session.Session(profile=b.profile)
        session = boto3.Session(botocore_session=core, region_name=b.region)
        extra: dict[str, str] = {}
        if is_loopback_url(b.endpoint_url) and not b.profile and not _has_ambient_credentials(core):
            # A loopback endpoint is the lab's moto_server (or a developer's local stand-in): it checks no
            # credentials, but botocore refuses to sign a request without some. Use the well-known dummy
            # pair moto documents, and only when the environment offers none: this is never a real
            # credential, and a loopback endpoint is never real AWS.
            extra = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        config = botocore.config.Config(
            connect_timeout=5, read_timeout=15, retries={"max_attempts": 3, "mode": "standard"}
        )
        return session.client(service, endpoint_url=b.endpoint_url, config=config, **extra)
    except botocore.exceptions.ProfileNotFound:
        raise InventoryError(
            file, f"secret_backends.{b.name}.profile", f"AWS profile {b.profile!r} not found in ~/.aws"
        ) from None
    except botocore.exceptions.BotoCoreError as err:
        raise InvalidInput(f"{file}: {backend_where(b)}: cannot create a client: {type(err).__name__}") from None


def secret_ages(inventory: Inventory, service: Service, now: datetime.datetime) -> dict[str, float | None]:
    """Seconds since each secret of ``service`` got its AWSCURRENT version, by secret name, from the
    versions' dates (list_secret_version_ids: no value is read); None for a backend that keeps no dates (env)."""
    file, clients, ages = str(inventory.source), {}, {}
    for ref in service.secrets.values():
        backend = inventory.secret_backends[ref.backend]
        if ref.name in ages:
            continue
        if backend.kind != "aws-secretsmanager":
            ages[ref.name] = None
            continue
        client = clients.get(backend.name) or clients.setdefault(backend.name, aws_client(backend, file))
        ages[ref.name] = (now - _current_since(client, ref.name, backend_where(backend))).total_seconds()
    return ages


@contextlib.contextmanager
def aws_failure(failed: str) -> Iterator[None]:
    """Inside the block, an AWS call's error becomes ``OperationFailed(f"{failed}: {code}")``: the service's
    error code, or the exception's type (never its text, which may quote the request)."""
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "") or type(err).__name__
        raise OperationFailed(f"{failed}: {code}") from None
    except botocore.exceptions.BotoCoreError as err:
        raise OperationFailed(f"{failed}: {type(err).__name__}") from None


def _current_since(client: Any, name: str, where: str) -> datetime.datetime:
    """When the secret's AWSCURRENT version was created. Never later than the secret's LastChangedDate:
    some stand-ins for Secrets Manager (moto) give every listed version the listing's time."""
    args: dict[str, Any] = {"SecretId": name, "MaxResults": 100}
    with aws_failure(f"{where}: listing the versions of secret {name!r} failed"):
        changed = client.describe_secret(SecretId=name).get("LastChangedDate")
        while True:
            page = client.list_secret_version_ids(**args)
            for version in page.get("Versions", []):
                if "AWSCURRENT" in version.get("VersionStages", ()):
                    return min(version["CreatedDate"], changed or version["CreatedDate"])
            if not page.get("NextToken"):
                raise OperationFailed(f"{where}: secret {name!r} has no version staged AWSCURRENT")
            args["NextToken"] = page["NextToken"]


class _AwsReader:
    """One Secrets Manager client for one backend; each secret name read once."""

    def __init__(self, backend: SecretBackend, file: str) -> None:
        self.backend = backend
        self.file = file
        self.client: Any = None
        self.cache: dict[tuple[str, str | None], tuple[str, str]] = {}  # (name, version asked) -> (text, version)

    def describe(self, ref: SecretRef) -> str:
        what = f"secret {ref.name!r}"
        return f"key {ref.key!r} of {what}" if ref.key else what

    def _where(self) -> str:
        return backend_where(self.backend)

    def _client(self) -> Any:
        return aws_client(self.backend, self.file)

    def read(self, ref: SecretRef, fail: _Fail, version: str | None = None) -> tuple[str, str]:
        """(value, version id) of ``ref``: at AWSCURRENT, or at ``version`` when given."""
        found = self.cache.get((ref.name, version))
        if found is None:
            found = self.cache[(ref.name, version)] = self._get(ref, fail, version)
        text, version = found
        if ref.key is None:
            return text, version
        try:
            doc = json.loads(text)
        except ValueError:
            fail(f"secret {ref.name!r} is not a JSON object, so it has no key {ref.key!r} ({self._where()})")
        if not isinstance(doc, dict):
            fail(f"secret {ref.name!r} is not a JSON object, so it has no key {ref.key!r} ({self._where()})")
        if ref.key not in doc:
            keys = ", ".join(sorted(str(k) for k in doc)) or "none"
            fail(f"secret {ref.name!r} has no key {ref.key!r} (its keys: {keys})")
        value = doc[ref.key]
        if not isinstance(value, str):
            fail(f"key {ref.key!r} of secret {ref.name!r} is a JSON {type(value).__name__}, not a string")
        return value, version

    def _get(self, ref: SecretRef, fail: _Fail, version: str | None) -> tuple[str, str]:
        import botocore.exceptions

        if self.client is None:
            self.client = self._client()
        where, unreachable, answered = self._where(), "", ""
        try:
            which = {"VersionId": version} if version else {"VersionStage": "AWSCURRENT"}
            response = self.client.get_secret_value(SecretId=ref.name, **which)
        except botocore.exceptions.ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                staged = f"version {version}" if version else "a version staged AWSCURRENT"
                fail(f"no secret {ref.name!r} with {staged} in {where}")
            if code in ("InvalidRequestException", "InvalidParameterException"):
                fail(f"secret {ref.name!r} cannot be read from {where}: {code} (deleted or scheduled for deletion?)")
            if code in (
                "AccessDeniedException",
                "UnrecognizedClientException",
                "InvalidSignatureException",
                "ExpiredTokenException",
                "InvalidClientTokenId",
            ):
                fail(f"reading secret {ref.name!r} from {where} was refused: {code}; check the AWS credentials")
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            answer = " ".join(filter(None, [code, f"(HTTP {status})" if status and str(status) != code else ""]))
            answered = f"{answer or type(err).__name__} for secret {ref.name!r}"
        except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError):
            fail(f"no AWS credentials for {where}: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ProxyConnectionError,
        ) as err:
            url = "" if self.backend.endpoint_url else f" ({getattr(err, 'kwargs', {}).get('endpoint_url', '?')})"
            unreachable = f"{url}: {type(err).__name__}"
        except botocore.exceptions.BotoCoreError as err:
            raise OperationFailed(
                f"{self.file}: {where}: reading secret {ref.name!r} failed: {type(err).__name__}"
            ) from None
        if answered:  # an error answer (404, throttling, 5xx): no host was contacted, so exit 5, not 1
            fail(f"{where} could not be read: it answered {answered}; nothing was done (check the endpoint and "
                 "the backend's status, then run again)", error=BackendUnreachable)  # fmt: skip
        if unreachable:  # raised here, outside the handler: no chained botocore error
            fail(f"{where} could not be reached{unreachable}; nothing was done (check the endpoint and the network, "
                 "then run again)", error=BackendUnreachable)  # fmt: skip
        if "SecretString" not in response:
            fail(f"secret {ref.name!r} holds binary data (SecretBinary), not a string")
        return response["SecretString"], response["VersionId"]


def _has_ambient_credentials(core: Any) -> bool:
    """Whether the environment or the shared AWS files hold credentials (instance metadata is not asked:
    on a machine outside EC2 that lookup costs a timeout, and a loopback endpoint is never EC2's)."""
    resolver = core.get_component("credential_provider")
    for provider in ("iam-role", "container-role"):
        with contextlib.suppress(Exception):
            resolver.remove(provider)
    try:
        return resolver.load_credentials() is not None
    except Exception:  # noqa: BLE001 - a broken shared file: treat as none, the real call reports it
        return False
