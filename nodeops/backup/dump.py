"""fab backup: one service's database dumped, encrypted and uploaded, its manifest written, then the retention
policy applied (see nodeops.backup)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nodeops.backup.rules import (
    MANIFEST_SUFFIX,
    OBJECT_SUFFIX,
    backup_id,
    credentials,
    dump_argv,
    folder,
    key_rows_query,
    libpq_environment,
    manifest_doc,
    policy_of,
    recipients_of,
    retention,
    spec_of,
    split_key,
    tool,
    unfinished,
)
from nodeops.backup.store import S3, HashingReader, HashingWriter, Upload
from nodeops.commands import node as cmd
from nodeops.edges import proc
from nodeops.edges.postgres import sql
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput, OperationFailed
from nodeops.facts.container import inspect, parse_inspect
from nodeops.inventory import BackupPolicy, Inventory
from nodeops.job import Job
from nodeops.lease import database, locate
from nodeops.records import BackedUp
from nodeops.roles import BackupSpec
from nodeops.run.report import Reporter


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
