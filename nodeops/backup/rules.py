"""What a backup is, pure: its id and object names, the retention policy, the manifest, the pg_dump and
pg_restore commands and environment, and the inventory's and role's backup settings (see nodeops.backup).
"""

from __future__ import annotations

import datetime
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from nodeops.edges.postgres import sql
from nodeops.errors import InvalidInput, OperationFailed
from nodeops.inventory import BackupPolicy, Inventory
from nodeops.job import Job
from nodeops.roles import BackupSpec
from nodeops.secrets import Secret

FORMAT = 1


UNFINISHED_GRACE = datetime.timedelta(days=1)  # an object without a manifest younger than this may be in progress
_ID = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-f]{6})")
_DATABASE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
OBJECT_SUFFIX, MANIFEST_SUFFIX = ".dump.age", ".manifest.json"


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
