"""The ``aws-kms`` secret backend: a ciphertext blob kept in the repository (base64, as ``aws kms encrypt
--output text --query CiphertextBlob`` prints it), decrypted by AWS KMS through the AWS edge (nodeops.edges.aws).

A reference's ``name`` is the file's path, relative to the inventory's folder; with ``key`` the plaintext is a JSON
object and the value is that key's string. The plaintext is UTF-8 text, kept in memory only. The file has no
versions (git has): its version id is ``kms:`` and the first 16 hex digits of the sha256 of the ciphertext blob
(blob_version), which changes whenever the file does (KMS never encrypts a value the same way twice) and says
nothing of the value; an older version asked for is refused. ``rotate-secrets`` refuses this backend
(nodeops.rotate.rules): the operator encrypts the new value, commits the file and deploys. The blob carries no date
either: ``fab check`` says its age is unknown (Backend.current_since's None), and git's log has when it changed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from nodeops.edges import aws
from nodeops.inventory import SecretRef
from nodeops.secrets import Fail, repository_file
from nodeops.secrets.aws import AwsBackend, refused_read

__all__ = ["KmsBlob", "blob_version"]


def blob_version(blob: bytes) -> str:
    """The version id of a ciphertext blob: ``kms:`` and 16 hex digits of its sha256 (never of the plaintext)."""
    return "kms:" + hashlib.sha256(blob).hexdigest()[:16]


class KmsBlob(AwsBackend):
    """One KMS client; each ciphertext file decrypted once."""

    SERVICE = "kms"
    WHAT = "KMS ciphertext file"

    def _get(self, ref: SecretRef, fail: Fail, version: str | None) -> tuple[str, str]:
        text = repository_file(self.file, ref.name, fail, self.WHAT)
        try:
            blob = base64.b64decode(b"".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            blob = b""
        if not blob:
            fail(f"{self.WHAT} {ref.name!r} is not base64 text (write `aws kms encrypt ... --output text --query "
                 "CiphertextBlob` into it)")  # fmt: skip
        if version not in (None, blob_version(blob)):
            fail(f"version {version} is not in {self.WHAT} {ref.name!r} (it holds {blob_version(blob)}): the file "
                 "keeps only its current value, git its older ones")  # fmt: skip
        try:
            plain = aws.attempt(self._client(), "decrypt", CiphertextBlob=blob)["Plaintext"]
        except aws.Failure as failure:
            error = failure  # classified below, outside the handler: no AWS error chained to what is raised
        else:
            try:
                return plain.decode(), blob_version(blob)
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
