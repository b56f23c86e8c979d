"""The ``aws-secretsmanager`` secret backend: AWS Secrets Manager, through the AWS edge (nodeops.edges.aws).

A read is ``get_secret_value(SecretId=name, VersionStage="AWSCURRENT")``, always with the stage (moto, and a
secret whose stages a rotation just moved, otherwise return the old value), or ``VersionId=`` for a version
asked for. With ``key`` the SecretString is a JSON object and the value is that key's string; without, the
SecretString is the value. The version id (a UUID) travels with the value.

Exit codes of a failed read: 2 for what the inventory or the account must fix (no such secret, version or key,
not JSON, deleted, access refused, no credentials), 5 when the backend could not be read at all (unreachable,
or it answered an error such as 404, throttling or 5xx): nothing was done, run again.
"""

from __future__ import annotations

import abc
import datetime
from collections.abc import Mapping
from typing import Any, NoReturn

from nodeops.edges import aws
from nodeops.errors import BackendUnreachable, OperationFailed
from nodeops.inventory import SecretBackend, SecretRef
from nodeops.secrets import Backend, Fail, json_object, kind_in_words

__all__ = ["AwsBackend", "SecretsManager", "json_field", "refused_read"]

_REFUSED = (
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
)


MISSING_FIX = "create it there, or correct the reference"  # what a reference to nothing asks of the operator


def refused_read(backend: SecretBackend, file: str, error: aws.Failure, fail: Fail, what: str,
                 missing: Mapping[str, str]) -> NoReturn:  # fmt: skip
    """A failed read of ``what`` (``secret 'cl1/DBSecret'``, ``parameter '/cl1/db'``) from an AWS secret backend,
    through ``fail``: an error code in ``missing`` (code -> the problem) or an access refused is exit 2 (the
    inventory or the account must fix it), no credentials is exit 2, an endpoint that could not be reached or
    answered another error (404, throttling, 5xx) is exit 5 (BackendUnreachable: nothing was done); anything else
    is OperationFailed. Only the error's code, HTTP status and type name are said, never botocore's text."""
    where = aws.backend_where(backend)
    if error.kind == "answered":
        code, status = error.code, error.status
        if code in missing:
            fail(missing[code])
        if code in _REFUSED:
            fail(f"reading {what} from {where} was refused: {code}; check the AWS credentials")
        answer = " ".join(filter(None, [code, f"(HTTP {status})" if status and str(status) != code else ""]))
        # an error answer (404, throttling, 5xx): no host was contacted, so exit 5, not 1
        fail(f"{where} could not be read: it answered {answer or error.name} for {what}; nothing "
             "was done (check the endpoint and the backend's status, then run again)",
             error=BackendUnreachable)  # fmt: skip
    if error.kind == "credentials":
        fail(f"no AWS credentials for {where}: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if error.kind == "unreachable":
        url = "" if backend.endpoint_url else f" ({error.endpoint})"
        fail(f"{where} could not be reached{url}: {error.name}; nothing was done (check the endpoint and the "
             "network, then run again)", error=BackendUnreachable)  # fmt: skip
    raise OperationFailed(f"{file}: {where}: reading {what} failed: {error.name}")


def json_field(text: str, key: str, what: str, fail: Fail, where: str) -> str:
    """The string at ``key`` of ``text``, a JSON object (a secret's, a parameter's or a plaintext's value;
    ``what`` names it: ``secret 'cl1/DBSecret'``); anything else is ``fail`` (exit 2) naming ``what`` and the
    key, never the text."""
    doc = json_object(text)
    if doc is None:
        fail(f"{what} is not a JSON object, so it has no key {key!r} ({where})")
    if key not in doc:
        keys = ", ".join(sorted(str(k) for k in doc)) or "none"
        fail(f"{what} has no key {key!r} (its keys: {keys})")
    value = doc[key]
    if not isinstance(value, str):
        fail(f"key {key!r} of {what} is {kind_in_words(value)}, not a string")
    return value


class AwsBackend(Backend):
    """An AWS secret backend: one client of ``SERVICE`` (made on first use) and each name and version read once
    (``_get``: (text, version id) of one name); ``key`` picks a field of a JSON text (``json_field``)."""

    SERVICE = "secretsmanager"
    WHAT = "secret"  # how messages name what a reference reads

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.client: Any = None
        self.cache: dict[tuple[str, str | None], tuple[str, str | None]] = {}  # (name, version asked) -> found

    def describe(self, ref: SecretRef) -> str:
        what = f"{self.WHAT} {ref.name!r}"
        return f"key {ref.key!r} of {what}" if ref.key else what

    def _where(self) -> str:
        return aws.backend_where(self.backend)

    def _client(self) -> Any:
        if self.client is None:
            self.client = aws.client(self.backend, self.file, self.SERVICE)
        return self.client

    def read(self, ref: SecretRef, fail: Fail, version: str | None = None) -> tuple[str, str | None]:
        """(value, version id) of ``ref``: its current version, or ``version`` when given."""
        found = self.cache.get((ref.name, version))
        if found is None:
            found = self.cache[(ref.name, version)] = self._get(ref, fail, version)
        text, version = found
        if ref.key is None:
            return text, version
        return json_field(text, ref.key, f"{self.WHAT} {ref.name!r}", fail, self._where()), version

    @abc.abstractmethod
    def _get(self, ref: SecretRef, fail: Fail, version: str | None) -> tuple[str, str | None]:
        """(text, version id) of ``ref.name`` at its current version or at ``version``."""


class SecretsManager(AwsBackend):
    """Secrets Manager: AWSCURRENT, or a version id."""

    def _get(self, ref: SecretRef, fail: Fail, version: str | None) -> tuple[str, str]:
        client, where = self._client(), self._where()
        which = {"VersionId": version} if version else {"VersionStage": "AWSCURRENT"}
        try:
            response = aws.attempt(client, "get_secret_value", SecretId=ref.name, **which)
        except aws.Failure as failure:
            error = failure  # classified below, outside the handler: no AWS error chained to what is raised
        else:
            if "SecretString" not in response:
                fail(f"secret {ref.name!r} holds binary data (SecretBinary), not a string")
            return response["SecretString"], response["VersionId"]
        missing = f"no secret {ref.name!r} with " + (f"version {version}" if version else "a version staged AWSCURRENT")
        refused_read(self.backend, self.file, error, fail, f"secret {ref.name!r}", {
            "ResourceNotFoundException": f"{missing} in {where}: {MISSING_FIX}",
            "InvalidRequestException": f"secret {ref.name!r} cannot be read from {where}: InvalidRequestException "
                                       "(deleted or scheduled for deletion?)",
            "InvalidParameterException": f"secret {ref.name!r} cannot be read from {where}: InvalidParameterException "
                                         "(deleted or scheduled for deletion?)",
        })  # fmt: skip

    def current_since(self, ref: SecretRef) -> datetime.datetime:
        """When the secret's AWSCURRENT version was created, from its versions' dates (list_secret_version_ids: no
        value is read). Never later than the secret's LastChangedDate: some stand-ins for Secrets Manager (moto)
        give every listed version the listing's time."""
        client, name, where = self._client(), ref.name, self._where()
        failed = f"{where}: listing the versions of secret {name!r} failed"
        changed = aws.call(client, failed, "describe_secret", SecretId=name).get("LastChangedDate")
        args: dict[str, Any] = {"SecretId": name, "MaxResults": 100}
        while True:
            page = aws.call(client, failed, "list_secret_version_ids", **args)
            for version in page.get("Versions", []):
                if "AWSCURRENT" in version.get("VersionStages", ()):
                    return min(version["CreatedDate"], changed or version["CreatedDate"])
            if not page.get("NextToken"):
                raise OperationFailed(f"{where}: secret {name!r} has no version staged AWSCURRENT")
            args["NextToken"] = page["NextToken"]
