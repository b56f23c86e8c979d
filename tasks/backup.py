"""fab backup and fab restore: encrypted database backups in S3, and restores into a new database."""

from __future__ import annotations

from invoke import task

from nodeops.backup import backup as backup_service
from nodeops.backup import policy_of, prepare_backup, prepare_restore
from nodeops.backup import restore as restore_backup
from nodeops.deploy import per_service
from nodeops.errors import InvalidInput, raise_failures
from nodeops.job import prepare
from nodeops.operation import Operation

from ._cli import SERVICES_HELP, SHARDED_HELP, YES_HELP, Sharded, cli, confirm, load, progress, services_of


@task(klass=Sharded, help=SHARDED_HELP)
@cli
def backup(c, env=None, inventory=None, service=None, shard=None, json_=False):
    """Dump each service's database, encrypt it to the age recipients, upload it to S3 and apply the retention.

    The dump runs through the bastion and is uploaded with a manifest. Takes no deploy lock; audited."""
    inv = load(env, inventory)
    policy_of(inv)  # no backup: section -> exit 2 before any secret is read
    jobs = prepare(inv, services_of(inv, service, shard))  # the services' own database credentials; no admin secret
    kit = prepare_backup(inv, jobs)  # roles, database locations, pg_dump, recipients, the bucket: before the run
    names = [j.service.name for j in jobs]
    with progress("backup", inv, names, json_) as report, Operation(inv, "backup", names, report, lock=False) as op:
        op.results = [per_service(report, job.service.name,
                                  lambda job=job: backup_service(inv, kit, op.fleet, job, op.run, report))
                      for job in jobs]  # fmt: skip
        raise_failures(op.results)


@task(
    positional=[],  # every argument by its flag: a positional one would take `--help` as its value
    help={
        **SERVICES_HELP,
        "service": "the service whose backup is restored (its database server, role and credentials)",
        "from": "the backup id (fab backup prints it) or latest",
        "into": "the new database to restore into (refused if it exists or is the live one)",
        "replace_live": "allow --into to be an existing or the live database: it is dropped first (stop the pair)",
        "yes": YES_HELP,
    },
)
@cli
def restore(c, from_, into, env=None, inventory=None, service=None, replace_live=False, json_=False,
            yes=False):  # fmt: skip
    """Restore a backup into a new database: checksum verified before anything changes, key rows compared after."""
    inv = load(env, inventory)
    names = services_of(inv, service)
    if len(names) != 1:
        raise InvalidInput("--service names the one service whose backup is restored")
    job = prepare(inv, names, admin=True)[0]  # the admin role creates the database
    req, identity, s3, manifest = prepare_restore(inv, job, from_, into, replace_live)  # no change before this passes
    if replace_live:
        confirm(f"restore --replace-live in {inv.environment}", names,
                [f"{names[0]}: drop database {req.into} if it exists (WITH FORCE: stop the pair first), then "
                 f"restore backup {req.backup} into it"], yes)  # fmt: skip
    details = {"backup": req.backup, "into": req.into, "replace_live": replace_live}
    with progress("restore", inv, names, json_) as report, Operation(inv, "restore", names, report, details) as op:
        op.results = [restore_backup(op.fleet, req, identity, s3, manifest, report)]
