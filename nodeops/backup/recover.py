"""fab restore: one backup into a new database, checked before and after (see nodeops.backup)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodeops.backup.dump import facts
from nodeops.backup.rules import (
    MANIFEST_SUFFIX,
    check_manifest,
    check_target,
    credentials,
    folder,
    libpq_environment,
    policy_of,
    restore_argv,
    spec_of,
    split_key,
    stamp_of,
    tool,
)
from nodeops.backup.store import READ_SIZE, S3, HashingReader, HashingWriter
from nodeops.edges import proc
from nodeops.edges.postgres import sql
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput, NodeopsError, OperationFailed
from nodeops.inventory import Inventory
from nodeops.job import Job
from nodeops.lease import ADMIN_DATABASE, database, locate
from nodeops.records import Restored
from nodeops.run.report import Reporter
from nodeops.secrets import Secret, read_reference


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
    with fleet.tunnel(host, port, service=req.job.service.name) as local:
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
