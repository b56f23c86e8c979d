"""The ``aws-kms`` secret backend: a ciphertext blob kept in the repository (base64, as ``aws kms encrypt
--output text --query CiphertextBlob`` prints it), decrypted by AWS KMS through the AWS edge (nodeops.edges.aws).

A reference's ``name`` is the file's path, relative to the inventory's folder; with ``key`` the plaintext is a JSON
object and the value is that key's string. The plaintext is UTF-8 text, kept in memory only. The file has no
versions (git has): the version is None and a version asked for is refused, and ``rotate-secrets`` refuses this
backend (nodeops.rotate.rules): the operator encrypts the new value and commits the file. The blob carries no date
either: ``fab check`` says its age is unknown (Backend.current_since's None), and git's log has when it changed.
"""

from __future__ import annotations

import base64
import binascii

from nodeops.edges import aws
from nodeops.inventory import SecretRef
from nodeops.secrets import Fail, repository_file
from nodeops.secrets.aws import AwsBackend, refused_read

__all__ = ["KmsBlob"]


class KmsBlob(AwsBackend):
    """One KMS client; each ciphertext file decrypted once."""

    SERVICE = "kms"
    WHAT = "KMS ciphertext file"

    def _get(self, ref: SecretRef, fail: Fail, version: str | None) -> tuple[str, None]:
        if version is not None:
            fail(f"version {version} was asked for, but secret backend {self.backend.name!r} (kind aws-kms) keeps "
                 "no versions")  # fmt: skip
        text = repository_file(self.file, ref.name, fail, self.WHAT)
        try:
            blob = base64.b64decode(b"".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            blob = b""
        if not blob:
            fail(f"{self.WHAT} {ref.name!r} is not base64 text (write `aws kms encrypt ... --output text --query "
                 "CiphertextBlob` into it)")  # fmt: skip
        try:
            plain = aws.attempt(self._client(), "decrypt", CiphertextBlob=blob)["Plaintext"]
        except aws.Failure as failure:
            error = failure  # classified below, outside the handler: no AWS error chained to what is raised
        else:
            try:
                return plain.decode(), None
            except UnicodeDecodeError:
                fail(f"the plaintext of {self.WHAT} {ref.name!r} is not UTF-8 text")
        not_ours = (f"{self.WHAT} {ref.name!r} is not a ciphertext {aws.backend_where(self.backend)} can decrypt "
                    "(another account, region or key, or a damaged file)")  # fmt: skip
        refused_read(self.backend, self.file, error, fail, f"{self.WHAT} {ref.name!r}", {
            "InvalidCiphertextException": not_ours,
            "NotFoundException": not_ours,
            "IncorrectKeyException": not_ours,
            "DisabledException": f"the KMS key of {self.WHAT} {ref.name!r} is disabled",
            "KMSInvalidStateException": f"the KMS key of {self.WHAT} {ref.name!r} is not usable (pending deletion?)",
        })  # fmt: skip
