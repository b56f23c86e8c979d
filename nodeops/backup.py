"""fab backup and fab restore: encrypted dumps of each service's database in S3, and restores you can prove.

Backup, per service (its own database credentials, the ones the nodes use: no admin credential):

  pg_dump --format=custom, run here against a tunnel on the bastion (Fleet.tunnel: 127.0.0.1 only, the
  database never exposed; ``host`` is the real name for TLS, ``hostaddr`` the tunnel), its connection
  settings and password in the child's environment only (PG*; never argv, never a file)
  -> its stdout read in 8 KiB pieces, hashed (sha256 of the plaintext)
  -> age-encrypted in memory (pyrage, X25519 recipients from the inventory: the public key only; whoever
     runs backups, a CI job for instance, cannot read them)
  -> S3 multipart upload in 8 MiB parts, hashed again (sha256 of the object).
Nothing touches the operator's disk. Then ``<id>.manifest.json`` next to the object (no secret in it):
time, service, database, sizes and checksums of both forms, the node versions (the database's
``node_versions`` and each running container's label), and the digest of every row of the tables the role
names as its key store (Chainlink: ``encrypted_key_rings``, the keys encrypted with the keystore password:
they are in the dump as stored, and the digests let a restore drill show "same key rows"). The manifest is
written last: an object without one is an unfinished backup. Then the retention policy
(``retention``): the newest backup of each of the last ``keep_daily`` days that have one and of each of the
last ``keep_weekly`` ISO weeks that have one are kept (restic's --keep-daily/--keep-weekly), the rest
deleted with their manifests, and unfinished objects more than UNFINISHED_GRACE older than this run's (backups
take no lock: a younger one may be another run's, between its upload and its manifest).

One snapshot: on one connection (through one tunnel) a REPEATABLE READ transaction exports its snapshot
(pg_export_snapshot), the key rows and the node's version are read in it, and pg_dump --snapshot dumps that
same snapshot while the transaction stays open: the manifest's key rows are the dump's, whatever the nodes
write meanwhile.

Restore of one backup into a new database:

  1. before anything changes: the identity read (a secret reference or a file; only here) and checked
     against the manifest's recipients, the target name checked (not the live database without
     --replace-live), the whole object streamed once and its size and sha256 compared with the manifest:
     a truncated or corrupt object stops here (exit 1), nothing created;
  2. under the service's deploy lock: the target must not exist (exit 2; with --replace-live it is
     dropped), CREATE DATABASE ... OWNER <the service's role> as the admin role (which must be a member of
     it), PUBLIC's rights revoked;
  3. the object streamed again (and hashed again: it must be the bytes just checked) -> age-decrypted
     -> pg_restore --single-transaction as the service's role; the plaintext's sha256 compared at the
     end. Any failure drops the new database: nothing half-restored is left;
  4. the key rows of the restored database compared with the manifest's.

Decisions. age rather than a KMS envelope: encrypting needs only a public key, so the job that writes
backups cannot read them, and restoring needs no cloud account (a KMS key is one more thing that must survive
the disaster). pg_dump's custom format: compressed, and pg_restore can list or select from it; read from a
pipe it restores in order, which a full restore is. The dump runs here, through the bastion, rather than on
the bastion: nothing to install there, and the plaintext never exists outside this process's memory. Backups
take no deploy lock (a dump is a snapshot and changes nothing: a deploy must not fail a scheduled backup, nor
the reverse); restores do (they create and may drop databases on the service's server).

The drill, which proves the backup works, is the next step: deploy the pair against the restored
database (an inventory whose DATABASE_NAME is the new one) with the keystore password it always had; the
nodes boot only if they can decrypt their key ring, and their key rows must still equal the manifest's.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nodeops.commands import node as cmd
from nodeops.deploy import Job, Reporter
from nodeops.edges import aws, proc
from nodeops.edges.postgres import sql
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput, NodeopsError, OperationFailed
from nodeops.facts.container import inspect, parse_inspect
from nodeops.inventory import BackupPolicy, Inventory
from nodeops.lease import ADMIN_DATABASE, database, locate
from nodeops.records import BackedUp, Restored
from nodeops.roles import BackupSpec
from nodeops.secrets import Secret, read_reference

FORMAT = 1
PART_SIZE = 8 * 1024 * 1024  # S3 multipart: at least 5 MiB per part but the last
READ_SIZE = 1024 * 1024
UNFINISHED_GRACE = datetime.timedelta(days=1)  # an object without a manifest younger than this may be in progress
_ID = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-f]{6})")
_DATABASE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
OBJECT_SUFFIX, MANIFEST_SUFFIX = ".dump.age", ".manifest.json"


# ---------------------------------------------------------------- pure: names, retention, manifest, commands


def backup_id(when: datetime.datetime, run: str) -> str:
    """``20261121T030000Z-3f2a1c``: sortable by time; the run's id keeps two runs in one second apart."""
    return when.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + run[:6]


def stamp_of(bid: str) -> datetime.datetime:
    m = _ID.fullmatch(bid)
    if not m:
        raise InvalidInput(f"--from {bid[:60]!r}: not a backup id (like 20261121T030000Z-3f2a1c) or latest")
    return datetime.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)


def folder(policy: BackupPolicy, env: str, service: str) -> str:
    return f"{policy.prefix}{env}/{service}/"


def split_key(key: str, prefix: str) -> tuple[str, str] | None:
    """An object key under ``prefix`` -> (backup id, suffix); None for anything else."""
    name = key.removeprefix(prefix)
    for suffix in (OBJECT_SUFFIX, MANIFEST_SUFFIX):
        if key.startswith(prefix) and name.endswith(suffix) and _ID.fullmatch(name.removesuffix(suffix)):
            return name.removesuffix(suffix), suffix
    return None


def retention(ids: Iterable[str], keep_daily: int, keep_weekly: int) -> list[str]:
    """The backups to delete, newest first: all but the newest of each of the last ``keep_daily`` days that
    have a backup and the newest of each of the last ``keep_weekly`` ISO weeks that have one (UTC)."""
    newest_first = sorted(set(ids), key=stamp_of, reverse=True)
    periods: list[tuple[Callable[[datetime.datetime], object], int]] = [
        (lambda t: t.date(), keep_daily),
        (lambda t: t.isocalendar()[:2], keep_weekly),
    ]
    keep: set[str] = set()
    for period, count in periods:
        seen: list[object] = []
        for bid in newest_first:
            p = period(stamp_of(bid))
            if p in seen:
                continue
            if len(seen) == count:
                break
            seen.append(p)
            keep.add(bid)
    return [bid for bid in newest_first if bid not in keep]


def unfinished(objects: Iterable[str], manifests: Iterable[str], before: str,
               grace: datetime.timedelta = UNFINISHED_GRACE) -> list[str]:  # fmt: skip
    """Objects without a manifest (a run that died between upload and manifest), more than ``grace`` older than
    ``before`` (this run's id): backups take no lock, and a younger one may be a concurrent run's, not yet done."""
    done, cutoff = set(manifests), stamp_of(before) - grace
    return sorted(b for b in set(objects) - done if stamp_of(b) < cutoff)


def manifest_doc(**fields: Any) -> dict[str, Any]:
    return {"format": FORMAT, "kind": "nodeops-backup", **fields}


def check_manifest(doc: Any, where: str) -> Mapping[str, Any]:
    """A manifest read back: of this format, with what a restore needs."""
    needed = {"object": ("key", "bytes", "sha256", "recipients"), "dump": ("bytes", "sha256"), "database": ("name",)}
    ok = isinstance(doc, dict) and doc.get("kind") == "nodeops-backup" and doc.get("format") == FORMAT
    ok = ok and isinstance(doc.get("keys"), dict)
    for part, keys in needed.items():
        ok = ok and isinstance(doc.get(part), dict) and all(k in doc[part] for k in keys)
    if not ok:
        raise OperationFailed(f"{where}: not a nodeops backup manifest of format {FORMAT}")
    return doc


def key_rows_query(table: str) -> sql.Composed:
    """Each row's sha256 (its text form: UTC and ISO dates are set on the session first), sorted."""
    return sql.SQL("SELECT encode(sha256(convert_to(t::text, 'UTF8')), 'hex') FROM {} AS t ORDER BY 1").format(
        sql.Identifier(table)
    )


def libpq_environment(host: str, local_port: int, dbname: str, user: str, password: str, sslmode: str,
                      environ: Mapping[str, str]) -> dict[str, str]:  # fmt: skip
    """The environment of pg_dump/pg_restore: the connection through the tunnel, password included, and
    nothing of the operator's PG* settings (a PGSERVICE or PGHOST there must not redirect the dump)."""
    keep = {k: environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in environ}
    return {**keep, "LC_ALL": "C.UTF-8", "PGHOST": host, "PGHOSTADDR": "127.0.0.1", "PGPORT": str(local_port),
            "PGDATABASE": dbname, "PGUSER": user, "PGPASSWORD": password, "PGSSLMODE": sslmode,
            "PGAPPNAME": "nodeops-backup", "PGCONNECT_TIMEOUT": "10"}  # fmt: skip


def dump_argv(pg_dump: str, snapshot: str | None = None) -> list[str]:
    """``snapshot``: pg_export_snapshot's id, of a transaction kept open while pg_dump runs (fab backup's)."""
    return [pg_dump, "--format=custom", "--no-password", *([f"--snapshot={snapshot}"] if snapshot else [])]


def restore_argv(pg_restore: str, dbname: str) -> list[str]:
    """One transaction: a failure leaves the new database empty. Objects owned by the restoring (service) role."""
    return [pg_restore, "--no-password", "--exit-on-error", "--single-transaction", "--no-owner", "--dbname", dbname]


def check_target(into: str | None, live: str, replace_live: bool, variable: str) -> str:
    """--into: a plain new database name; the service's live database (``live``, the value of the role's
    ``variable``: its ``lease.database``) only with --replace-live."""
    if not into or not _DATABASE.fullmatch(into):
        raise InvalidInput(f"--into {str(into)[:60]!r}: give a new database name [a-z_][a-z0-9_]* (at most 63)")
    if into == live and not replace_live:
        raise InvalidInput(f"--into {into}: that is the service's live database ({variable}); restore into a new "
                           "one and point the inventory at it, or pass --replace-live")  # fmt: skip
    return into


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InvalidInput(f"{name} not found: install the PostgreSQL client (Debian: postgresql-client; ./setup does)")
    return path


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


# ---------------------------------------------------------------- backup


def policy_of(inventory: Inventory) -> BackupPolicy:
    if inventory.backup is None:
        raise InvalidInput(
            f"{inventory.source}: no backup: section (bucket, aws, recipients); see docs/commands/backup-restore.md"
        )
    return inventory.backup


def spec_of(job: Job) -> BackupSpec:
    if job.role.backup is None:  # (a role's backup: needs its lease:, checked when the role loads)
        raise InvalidInput(f"{job.service.name}: role {job.role.name!r} declares no backup: section in its role.yaml")
    return job.role.backup


def recipients_of(policy: BackupPolicy) -> list[Any]:
    import pyrage

    try:
        return [pyrage.x25519.Recipient.from_str(r) for r in policy.recipients]
    except pyrage.RecipientError as err:
        raise InvalidInput(f"backup.recipients: not an age X25519 public key: {err}") from None


def credentials(job: Job) -> tuple[Secret, Secret]:
    """The service's own database user and password (the ones its lease: names): revealed where they are used."""
    spec = job.role.lease
    return job.secrets[spec.user], job.secrets[spec.password]


@dataclass(frozen=True)
class BackupKit:
    """What every service's backup needs, checked once before the run changes or contacts anything."""

    policy: BackupPolicy
    pg_dump: str
    version: str  # pg_dump --version, for the manifest
    recipients: tuple[Any, ...]
    s3: S3


def prepare_backup(inventory: Inventory, jobs: Sequence[Job]) -> BackupKit:
    """The policy, each service's backup: section and database location, pg_dump, the recipients, the bucket."""
    policy = policy_of(inventory)
    for job in jobs:
        spec_of(job)
        locate(job)
    pg_dump, recipients = tool("pg_dump"), tuple(recipients_of(policy))
    environ = {"PATH": os.environ.get("PATH", "")}  # none of the operator's (or CI's) secrets
    try:
        version = proc.output([pg_dump, "--version"], environ, timeout=30).strip()
    except proc.ChildError as err:
        raise InvalidInput(f"{pg_dump} --version failed: {err}") from None
    return BackupKit(policy, pg_dump, version, recipients, S3(inventory))


@contextlib.contextmanager
def snapshot(conn: Any) -> Iterator[str]:
    """A REPEATABLE READ, read-only transaction kept open for the block: its snapshot's id (pg_dump --snapshot).
    Everything read on ``conn`` in the block sees that same snapshot."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield conn.execute("SELECT pg_export_snapshot()").fetchone()[0]


def facts(conn: Any, spec: BackupSpec) -> dict[str, Any]:
    """What the manifest records of the database: server version, the node's version, the key rows' digests.
    A database error leaves through lease.database() (one redacted line)."""
    conn.execute("SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'")
    keys = {t: [r[0] for r in conn.execute(key_rows_query(t)).fetchall()] for t in spec.key_tables}
    version = None
    if spec.version_table:
        query = sql.SQL("SELECT version FROM {} ORDER BY created_at DESC LIMIT 1")
        row = conn.execute(query.format(sql.Identifier(spec.version_table))).fetchone()
        version = row[0] if row else None
    return {"server_version": conn.info.parameter_status("server_version"), "keys": keys, "version": version}


def container_versions(fleet: Fleet, job: Job) -> dict[str, str | None]:
    """Each node's running container's version (Container.version; None: not running or unreachable; a backup
    goes on)."""
    service = job.service
    command = cmd.sh(inspect(service.runtime, cmd.container_name(service.name)))
    out = {}
    for o in fleet.run(service.nodes, command, timeout=30):
        c = parse_inspect(o.value.stdout) if o.ok and o.value.exit_code == 0 else None
        out[o.node.name] = c.version if c and c.running else None
    return out


def backup(inventory: Inventory, kit: BackupKit, fleet: Fleet, job: Job, run: str,
           report: Reporter) -> dict[str, Any]:  # fmt: skip
    """One service's backup, uploaded, its manifest written, then the retention policy applied."""
    import pyrage

    policy, spec, service, s3 = kit.policy, spec_of(job), job.service.name, kit.s3
    started, now = time.monotonic(), datetime.datetime.now(datetime.UTC)
    bid = backup_id(now, run)
    base = folder(policy, inventory.environment, service)
    key = base + bid + OBJECT_SUFFIX
    host, port, name, sslmode = locate(job)
    user, password = credentials(job)
    versions = container_versions(fleet, job)
    upload = Upload(s3, key)
    try:
        # One tunnel, one connection, one snapshot: the key rows and version read in it, pg_dump dumping it.
        with database(fleet, job, user.reveal(), password.reveal(), purpose="dump the database") as conn, \
                snapshot(conn) as snap:  # fmt: skip
            got = facts(conn, spec)
            env = libpq_environment(host, conn.info.port, name, user.reveal(), password.reveal(), sslmode,
                                    os.environ)  # fmt: skip
            child = proc.Child.reading(dump_argv(kit.pg_dump, snap), env)
            try:
                plain = HashingReader(child.stdout.read)
                sealed = HashingWriter(upload.write)
                try:
                    pyrage.encrypt_io(plain, sealed, list(kit.recipients))
                except (OSError, pyrage.EncryptError) as err:
                    raise OperationFailed(f"{service}: encrypting the dump failed: {err}") from None
                child.finish(
                    f"{service}: pg_dump of {host}:{port}/{name}", lambda text: job.redact.clip(text, tail=True)
                )
            finally:
                child.kill()
        upload.complete()
    except BaseException:
        upload.abort()
        raise
    doc = manifest_doc(
        id=bid, environment=inventory.environment, service=service, created=now.isoformat(timespec="seconds"),
        seconds=round(time.monotonic() - started, 2),
        database={"name": name, "server": f"{host}:{port}", "server_version": got["server_version"]},
        dump={"tool": kit.version, "format": "custom", "bytes": plain.size, "sha256": plain.sha.hexdigest()},
        object={"key": key, "bytes": sealed.size, "sha256": sealed.sha.hexdigest(), "encryption": "age X25519",
                "recipients": list(policy.recipients)},
        node={"database_version": got["version"], "containers": versions},
        keys=got["keys"],
    )  # fmt: skip
    s3.call(f"writing {bid}{MANIFEST_SUFFIX}", "put_object", Key=base + bid + MANIFEST_SUFFIX,
            Body=json.dumps(doc, indent=1).encode(), ContentType="application/json")  # fmt: skip
    rows = sum(len(v) for v in doc["keys"].values())
    report(service, "", f"backed up {name}: {bid} ({plain.size} bytes dumped, {sealed.size} encrypted, "
           f"{rows} key rows) in {doc['seconds']:.1f}s", backup=bid, bytes=sealed.size)  # fmt: skip
    deleted = apply_retention(s3, policy, base, bid)
    if deleted:
        report(service, "", f"retention (keep_daily {policy.keep_daily}, keep_weekly {policy.keep_weekly}): deleted "
               f"{', '.join(deleted)}", deleted=deleted)  # fmt: skip
    return BackedUp(service=service, backup=bid, object=key, bytes=sealed.size, plain_bytes=plain.size,
                    seconds=doc["seconds"], deleted=deleted).record()  # fmt: skip


def apply_retention(s3: S3, policy: BackupPolicy, base: str, current: str) -> list[str]:
    found: dict[str, list[str]] = {}
    for k in s3.keys(base):
        if parts := split_key(k, base):
            found.setdefault(parts[1], []).append(parts[0])
    manifests, objects = found.get(MANIFEST_SUFFIX, []), found.get(OBJECT_SUFFIX, [])
    doomed = retention(manifests, policy.keep_daily, policy.keep_weekly) + unfinished(objects, manifests, current)
    for bid in doomed:
        for suffix in (OBJECT_SUFFIX, MANIFEST_SUFFIX):
            s3.call(f"deleting {bid}{suffix}", "delete_object", Key=base + bid + suffix)
    return doomed


# ---------------------------------------------------------------- restore


def identity_of(inventory: Inventory) -> Any:
    """The age identity, read only here: from the secret backend, or the operator's file."""
    import pyrage

    policy = policy_of(inventory)
    if policy.identity is not None:
        value = read_reference(inventory, policy.identity, "backup.identity", "backup identity")
    elif policy.identity_file is not None:
        try:
            value = Secret(policy.identity_file.read_text(encoding="utf-8"), "backup identity")
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidInput(f"backup.identity_file: cannot read {policy.identity_file}: {err}") from None
    else:
        raise InvalidInput("backup: restoring needs identity (a secret reference) or identity_file: the age "
                           "identity whose public key is among the recipients")  # fmt: skip
    lines = [x.strip() for x in value.reveal().splitlines() if x.strip() and not x.startswith("#")]
    try:
        return pyrage.x25519.Identity.from_str(lines[0] if len(lines) == 1 else "")
    except pyrage.IdentityError:
        raise InvalidInput("backup.identity: not one age X25519 identity (AGE-SECRET-KEY-1...)") from None


def find_backup(s3: S3, base: str, chosen: str) -> str:
    ids = sorted({p[0] for k in s3.keys(base) if (p := split_key(k, base)) and p[1] == MANIFEST_SUFFIX}, key=stamp_of)
    if chosen == "latest":
        if not ids:
            raise InvalidInput(f"no backup in s3://{s3.bucket}/{base}")
        return ids[-1]
    stamp_of(chosen)
    if chosen not in ids:
        raise InvalidInput(f"--from {chosen}: no such backup in s3://{s3.bucket}/{base} (newest: "
                           f"{', '.join(ids[-3:]) or 'none'})")  # fmt: skip
    return chosen


def verify_object(s3: S3, manifest: Mapping[str, Any]) -> None:
    """The whole object streamed and hashed: its size and sha256 must be the manifest's."""
    key, want = manifest["object"]["key"], manifest["object"]
    reader = HashingReader(s3.body(key).read)
    while reader.read(READ_SIZE):
        pass
    if reader.size != want["bytes"]:
        raise OperationFailed(f"{key}: {reader.size} bytes, the manifest says {want['bytes']}: truncated or "
                              "damaged; nothing was restored")  # fmt: skip
    if reader.sha.hexdigest() != want["sha256"]:
        raise OperationFailed(f"{key}: sha256 {reader.sha.hexdigest()[:16]}... is not the manifest's "
                              f"{want['sha256'][:16]}...: corrupt; nothing was restored")  # fmt: skip


@dataclass(frozen=True)
class RestoreRequest:
    job: Job
    admin: tuple[Secret, Secret]  # the admin role's user and password (rotation: db's admin_user/admin_password)
    backup: str  # id or latest
    into: str
    replace_live: bool


def prepare_restore(inventory: Inventory, job: Job, chosen: str | None, into: str | None,
                    replace_live: bool) -> tuple[RestoreRequest, Any, S3, Mapping[str, Any]]:  # fmt: skip
    """Everything checked before any change: flags, identity, the backup and its manifest, the object's checksum."""
    policy, spec = policy_of(inventory), spec_of(job)
    if not chosen:
        raise InvalidInput("--from is required: a backup id (fab backup prints it) or latest")
    target = check_target(into, locate(job)[2], replace_live, job.role.lease.database)
    admin = next((s for s in job.role.rotation.values() if s.admin_user), None)
    if admin is None or admin.admin_user not in job.secrets or admin.admin_password not in job.secrets:
        raise InvalidInput(f"{job.service.name}: restoring creates a database: give the service the admin role's "
                           "secrets (db_admin_user, db_admin)")  # fmt: skip
    identity, s3 = identity_of(inventory), S3(inventory)
    tool("pg_restore")
    base = folder(policy, inventory.environment, job.service.name)
    bid = find_backup(s3, base, chosen)
    raw = s3.body(base + bid + MANIFEST_SUFFIX).read()
    try:
        manifest = check_manifest(json.loads(raw), f"{bid}{MANIFEST_SUFFIX}")
    except ValueError:
        raise OperationFailed(f"{bid}{MANIFEST_SUFFIX}: not JSON") from None
    if str(identity.to_public()) not in manifest["object"]["recipients"]:
        raise InvalidInput(f"{bid}: the backup identity's public key is not among its recipients: it cannot decrypt it")
    if set(manifest["keys"]) != set(spec.key_tables):
        tables = f"{sorted(manifest['keys'])}, the role has {list(spec.key_tables)}"
        raise InvalidInput(f"{bid}: records the key tables {tables}")
    verify_object(s3, manifest)
    pair = (job.secrets[admin.admin_user], job.secrets[admin.admin_password])
    return RestoreRequest(job, pair, bid, target, replace_live), identity, s3, manifest


def create_database(fleet: Fleet, req: RestoreRequest, owner: str) -> None:
    """As the admin role: the target must not exist (with --replace-live it is dropped), then created for ``owner``."""
    job, into = req.job, req.into
    with database(fleet, job, req.admin[0].reveal(), req.admin[1].reveal(), ADMIN_DATABASE,
                  f"create the database {into} as the admin role") as conn:  # fmt: skip
        if not conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (owner,)).fetchone()[0]:
            raise InvalidInput(f"{job.service.name}: the admin role is not a member of the service's role, "
                               "so it cannot create a database owned by it: GRANT <service> TO <admin>")  # fmt: skip
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (into,)).fetchone()
        name = sql.Identifier(into)
        if exists and not req.replace_live:
            raise InvalidInput(f"--into {into}: the database exists; restore into a new one (or --replace-live)")
        if exists:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(name, sql.Identifier(owner)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))


def drop_database(fleet: Fleet, req: RestoreRequest) -> None:
    with database(fleet, req.job, req.admin[0].reveal(), req.admin[1].reveal(), ADMIN_DATABASE,
                  "drop the half-restored database") as conn:  # fmt: skip
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(req.into)))


def load(fleet: Fleet, req: RestoreRequest, identity: Any, s3: S3, manifest: Mapping[str, Any]) -> None:
    """The object -> age -> pg_restore, as the service's role; both checksums compared at the end."""
    import pyrage

    (host, port, _, sslmode), key = locate(req.job), manifest["object"]["key"]
    user, password = credentials(req.job)
    with fleet.tunnel(host, port) as local:
        env = libpq_environment(host, local, req.into, user.reveal(), password.reveal(), sslmode, os.environ)
        child = proc.Child.writing(restore_argv(tool("pg_restore"), req.into), env)
        try:
            sealed = HashingReader(s3.body(key).read)
            plain = HashingWriter(child.stdin.write)
            failed: BaseException | None = None
            try:
                pyrage.decrypt_io(sealed, plain, [identity])
            except (OSError, pyrage.DecryptError) as err:  # a bad object, or pg_restore gone (a broken pipe)
                failed = err
            with contextlib.suppress(OSError):  # pg_restore may have exited already: its own error is the one
                child.stdin.close()
            child.finish(
                f"{req.job.service.name}: pg_restore into {req.into}", lambda text: req.job.redact.clip(text, tail=True)
            )
            if failed is not None:
                raise OperationFailed(f"{key}: decrypting failed ({failed})") from None
        finally:
            child.kill()
    if (sealed.size, sealed.sha.hexdigest()) != (manifest["object"]["bytes"], manifest["object"]["sha256"]):
        raise OperationFailed(f"{key}: changed in S3 while it was restored (checksum)")
    if (plain.size, plain.sha.hexdigest()) != (manifest["dump"]["bytes"], manifest["dump"]["sha256"]):
        raise OperationFailed(f"{key}: the decrypted dump's sha256 is not the manifest's")


def restore(fleet: Fleet, req: RestoreRequest, identity: Any, s3: S3, manifest: Mapping[str, Any],
            report: Reporter) -> dict[str, Any]:  # fmt: skip
    job, service, started = req.job, req.job.service.name, time.monotonic()
    user, password = credentials(job)
    create_database(fleet, req, user.reveal())
    report(service, "", f"created database {req.into} (owner: the service's role)")
    try:
        load(fleet, req, identity, s3, manifest)
    except BaseException as failure:
        try:
            drop_database(fleet, req)
        except NodeopsError as exc:
            raise OperationFailed(f"{failure}; and dropping the half-restored {req.into} failed: {exc}") from None
        report(service, "", f"dropped {req.into}: nothing half-restored is left")
        raise
    with database(fleet, job, user.reveal(), password.reveal(), req.into, "read the key rows") as conn:
        got = facts(conn, spec_of(job))
    if got["keys"] != manifest["keys"]:
        raise OperationFailed(f"{req.into}: its key rows are not the manifest's ({req.backup}); the database is "
                              "left for inspection")  # fmt: skip
    rows = sum(len(v) for v in got["keys"].values())
    seconds = round(time.monotonic() - started, 2)
    report(service, "", f"restored {req.backup} into {req.into} in {seconds:.1f}s: {manifest['dump']['bytes']} bytes, "
           f"{rows} key rows as in the manifest; the drill: deploy the pair with {job.role.lease.database}={req.into}",
           backup=req.backup, database=req.into)  # fmt: skip
    return Restored(service=service, backup=req.backup, database=req.into, seconds=seconds, key_rows=rows).record()
