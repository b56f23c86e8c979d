"""fab rollback: back to the image and configuration that ran before, through deploy's safe rolling path."""

from __future__ import annotations

from invoke import task

from nodeops.errors import InvalidInput, raise_failures
from nodeops.job import prepare
from nodeops.operation import Operation
from nodeops.rollback import rollback as roll_back

from ._cli import (
    INVENTORY_HELP,
    SERVICES_HELP,
    SHARD_HELP,
    YES_HELP,
    Sharded,
    cli,
    confirm,
    load,
    progress,
    services_of,
)


@task(klass=Sharded,
      help={**INVENTORY_HELP, "service": "the service to roll back (required when the inventory has several)",
            "shard": SHARD_HELP, "to": "a version (image tag) that ran before; default: the one before what runs now",
            "json": SERVICES_HELP["json"], "yes": YES_HELP})  # fmt: skip
@cli
def rollback(c, env=None, inventory=None, service=None, shard=None, to=None, json_=False, yes=False):
    """Return a service to a previous image and configuration (from the audit log), rolled as its activation rolls."""
    inv = load(env, inventory)
    names = services_of(inv, service, shard) or list(inv.services)
    if len(names) != 1:
        raise InvalidInput(f"--service: name the one service to roll back (services: {', '.join(names)})")
    [job] = prepare(inv, names)  # the role, secrets and files, before the lock and any host
    with progress("rollback", inv, names, json_) as report, Operation(inv, "rollback", names, report, {"to": to}) as op:
        [job] = prepare(inv, names)  # again under the lock: a secret rotated meanwhile is read at its new version
        # asked under the lock, once the target is read from the audit log: what is confirmed is what is done
        op.results = [
            roll_back(
                op.fleet,
                inv,
                job,
                to,
                report,
                op.stop,
                ask=lambda line: confirm(f"rollback in {inv.environment}", names, [line], yes),
            )
        ]
        raise_failures(op.results)
