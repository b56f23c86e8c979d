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

import datetime
import json
from typing import Any

from nodeops.edges import aws
from nodeops.errors import BackendUnreachable, OperationFailed
from nodeops.inventory import SecretRef
from nodeops.secrets import Backend, Fail

__all__ = ["SecretsManager"]

_REFUSED = (
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
)


class SecretsManager(Backend):
    """One Secrets Manager client for one backend (made on first use); each secret name and version read once."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.client: Any = None
        self.cache: dict[tuple[str, str | None], tuple[str, str]] = {}  # (name, version asked) -> (text, version)

    def describe(self, ref: SecretRef) -> str:
        what = f"secret {ref.name!r}"
        return f"key {ref.key!r} of {what}" if ref.key else what

    def _where(self) -> str:
        return aws.backend_where(self.backend)

    def _client(self) -> Any:
        if self.client is None:
            self.client = aws.client(self.backend, self.file)
        return self.client

    def read(self, ref: SecretRef, fail: Fail, version: str | None = None) -> tuple[str, str]:
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
        if error.kind == "answered":
            code, status = error.code, error.status
            if code == "ResourceNotFoundException":
                staged = f"version {version}" if version else "a version staged AWSCURRENT"
                fail(f"no secret {ref.name!r} with {staged} in {where}")
            if code in ("InvalidRequestException", "InvalidParameterException"):
                fail(f"secret {ref.name!r} cannot be read from {where}: {code} (deleted or scheduled for deletion?)")
            if code in _REFUSED:
                fail(f"reading secret {ref.name!r} from {where} was refused: {code}; check the AWS credentials")
            answer = " ".join(filter(None, [code, f"(HTTP {status})" if status and str(status) != code else ""]))
            # an error answer (404, throttling, 5xx): no host was contacted, so exit 5, not 1
            fail(f"{where} could not be read: it answered {answer or error.name} for secret {ref.name!r}; nothing "
                 "was done (check the endpoint and the backend's status, then run again)",
                 error=BackendUnreachable)  # fmt: skip
        if error.kind == "credentials":
            fail(f"no AWS credentials for {where}: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        if error.kind == "unreachable":
            url = "" if self.backend.endpoint_url else f" ({error.endpoint})"
            fail(f"{where} could not be reached{url}: {error.name}; nothing was done (check the endpoint and the "
                 "network, then run again)", error=BackendUnreachable)  # fmt: skip
        raise OperationFailed(f"{self.file}: {where}: reading secret {ref.name!r} failed: {error.name}")

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
