"""The AWS edge: the only module that imports boto3 and botocore.

Its users: the Secrets Manager, Parameter Store and KMS backends (nodeops.secrets.aws, .ssm, .kms), fab
rotate-secrets (nodeops.rotate: a secret's versions and stages, a parameter's versions and labels) and fab
backup/restore (nodeops.backup: the S3 bucket). All of them reach AWS with a secret backend of the inventory (kind
``aws-secretsmanager``, ``aws-ssm`` or ``aws-kms``): its region, endpoint and profile.

- ``client(backend, file, service)``: a boto3 client of ``service`` with the backend's region, endpoint and
  credentials (the rules: see ``client``).
- ``call(client, failed, operation, **params)``: one call; any AWS error becomes
  ``OperationFailed(f"{failed}: {code}")``.
- ``attempt(client, operation, **params)``: one call; any AWS error becomes a ``Failure`` for the caller to
  classify (the Secrets Manager backend tells a missing secret, exit 2, from an unreachable endpoint, exit 5).

Neither lets botocore's message (which may quote the request) nor its exception (chained, its frames) into what
nodeops raises: only the service's error code, the HTTP status and the exception's type name pass.

boto3 is imported on first use, not with this module: it takes about 0.3 s, and a command that uses no AWS
backend never pays it.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from nodeops.errors import InvalidInput, InventoryError, OperationFailed
from nodeops.inventory import SecretBackend

__all__ = ["Failure", "attempt", "backend_where", "call", "client", "is_loopback_url"]


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


def client(b: SecretBackend, file: str, service: str = "secretsmanager") -> Any:
    """A client of the AWS ``service`` (Secrets Manager; SSM, KMS; S3 for fab backup) with backend ``b``'s region,
    endpoint and credentials (``file``: the inventory, for messages).

    Credentials: the backend's ``profile`` (from ~/.aws), else botocore's usual chain (environment, shared
    files, instance role). A loopback endpoint (``is_loopback_url``) with no profile and no credentials in the
    environment or the shared files gets moto's documented dummy pair. Timeouts: 5 s to connect, 15 s to read,
    3 attempts in botocore's standard retry mode.

    Errors: an unknown profile is ``InventoryError`` at ``secret_backends.<name>.profile`` (exit 2); any other
    failure to build the client is ``InvalidInput`` naming the backend and botocore's exception type (exit 2).
    """
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


class Failure(Exception):
    """An AWS call that failed, reduced to what a message may say (never botocore's text).

    ``kind``: ``answered`` (the endpoint answered with an error: ``code``, the service's error code, "" when
    the answer had none, and ``status``, the HTTP status, None if unknown), ``credentials`` (none found, or
    only part of a pair), ``unreachable`` (the endpoint was not reached: ``endpoint`` is the URL botocore
    tried) or ``other`` (any other botocore error). ``name``: botocore's exception type name.
    """

    def __init__(self, kind: str, name: str, code: str = "", status: int | None = None, endpoint: str = "?") -> None:
        super().__init__(f"{kind}: {code or name}")
        self.kind, self.name, self.code, self.status, self.endpoint = kind, name, code, status, endpoint

    @property
    def said(self) -> str:
        """The service's error code, else the exception's type name."""
        return self.code or self.name


def attempt(aws: Any, operation: str, **params: Any) -> dict:
    """``aws.<operation>(**params)`` (``aws``: a client from ``client``, or a stand-in with the same methods); a
    botocore error becomes ``Failure``, raised outside the handler: no botocore exception is chained to it.
    Other exceptions pass unchanged."""
    import botocore.exceptions as bx

    try:
        return getattr(aws, operation)(**params)
    except bx.ClientError as err:
        failure = Failure(
            "answered", type(err).__name__, err.response.get("Error", {}).get("Code", ""),
            err.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        )  # fmt: skip
    except bx.BotoCoreError as err:
        name = type(err).__name__
        if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            failure = Failure("credentials", name)
        elif isinstance(err, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ProxyConnectionError)):
            failure = Failure("unreachable", name, endpoint=getattr(err, "kwargs", {}).get("endpoint_url", "?"))
        else:
            failure = Failure("other", name)
    raise failure


def call(aws: Any, failed: str, operation: str, **params: Any) -> dict:
    """``attempt``, with an AWS error turned into ``OperationFailed(f"{failed}: {code}")``: the service's error
    code, or the exception's type name (exit 1)."""
    try:
        return attempt(aws, operation, **params)
    except Failure as failure:
        said = failure.said
    raise OperationFailed(f"{failed}: {said}")


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
