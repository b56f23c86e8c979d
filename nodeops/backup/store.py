"""The pieces that stream (see nodeops.backup): counting and hashing readers and writers for pyrage, the
backup bucket and its multipart uploads, through the AWS edge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from nodeops.backup.rules import policy_of
from nodeops.edges import aws
from nodeops.errors import NodeopsError
from nodeops.inventory import Inventory

PART_SIZE = 8 * 1024 * 1024  # S3 multipart: at least 5 MiB per part but the last
READ_SIZE = 1024 * 1024


# ---------------------------------------------------------------- the pieces that stream


class HashingReader:
    """A file-like reader for pyrage over ``read`` (a pipe, an S3 body): counts and hashes what passes."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._read(size if size and size > 0 else READ_SIZE)
        self.sha.update(data)
        self.size += len(data)
        return data


class HashingWriter:
    """A file-like writer for pyrage: counts and hashes what passes, then hands it to ``sink``."""

    def __init__(self, sink: Callable[[bytes], object]) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.sink(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


class S3:
    """The backup bucket, through the AWS edge with the inventory's AWS backend (moto's S3 in the lab)."""

    def __init__(self, inventory: Inventory) -> None:
        self.policy = policy_of(inventory)
        self.client = aws.client(inventory.secret_backends[self.policy.aws], str(inventory.source), "s3")
        self.bucket = self.policy.bucket

    def call(self, what: str, method: str, **args: Any) -> Any:
        return aws.call(self.client, f"s3://{self.bucket}: {what} failed", method, Bucket=self.bucket, **args)

    def keys(self, prefix: str) -> list[str]:
        keys, args = [], {"Prefix": prefix}
        while True:
            page = self.call(f"listing {prefix}", "list_objects_v2", **args)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            args["ContinuationToken"] = page["NextContinuationToken"]

    def body(self, key: str) -> Any:
        return self.call(f"reading {key}", "get_object", Key=key)["Body"]


class Upload:
    """An S3 multipart upload fed by write(): parts of PART_SIZE, the last one smaller; abort() on failure."""

    def __init__(self, s3: S3, key: str) -> None:
        self.s3, self.key = s3, key
        self.id = s3.call(f"starting the upload of {key}", "create_multipart_upload", Key=key)["UploadId"]
        self.buffer = bytearray()
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= PART_SIZE:
            self._send(bytes(self.buffer[:PART_SIZE]))
            del self.buffer[:PART_SIZE]

    def _send(self, data: bytes) -> None:
        n = len(self.parts) + 1
        reply = self.s3.call(f"uploading part {n} of {self.key}", "upload_part", Key=self.key, UploadId=self.id,
                             PartNumber=n, Body=data)  # fmt: skip
        self.parts.append({"PartNumber": n, "ETag": reply["ETag"]})

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        self.s3.call(f"completing the upload of {self.key}", "complete_multipart_upload", Key=self.key,
                     UploadId=self.id, MultipartUpload={"Parts": self.parts})  # fmt: skip

    def abort(self) -> None:
        try:
            self.s3.call(f"aborting the upload of {self.key}", "abort_multipart_upload", Key=self.key, UploadId=self.id)
        except NodeopsError:
            pass  # the failure that led here is the one to report; S3 lifecycle rules reap stray parts
