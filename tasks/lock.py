"""fab lock.status / lock.release: the deploy locks on the bastion, seen and (when stale) cleared."""

from __future__ import annotations

import json

from invoke import task

from nodeops import program
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput
from nodeops.ledger import describe_locks
from nodeops.operation import locks, release_stale
from nodeops.run.report import Reporter

from ._cli import INVENTORY_HELP, cli, is_interactive, load, services_of


@task(help={**INVENTORY_HELP, "json": "one JSON object per lock"})
@cli
def status(c, env=None, inventory=None, json_=False):
    """The environment's deploy locks: who holds each, since when, and whether that run is still alive."""
    inv = load(env, inventory)
    with Fleet(inv) as fleet:
        found = locks(fleet)
    if json_ or not is_interactive():
        for lock in found:
            print(json.dumps({"event": "lock", "service": lock.service, **lock.record()}))
        return
    print("\n".join(describe_locks(found)) or f"no lock held in {inv.environment}")


@task(
    help={
        **INVENTORY_HELP,
        "service": "comma-separated services whose stale lock to remove (default: every service)",
        "force": "required: confirms the run that held the lock is gone and what it left was checked",
        "json": "one JSON object per event",
    }
)
@cli
def release(c, env=None, inventory=None, service=None, force=False, json_=False):
    """Remove stale deploy locks (their run is gone), audited; a live run's lock is never taken."""
    if not force:
        raise InvalidInput(f"lock.release changes what protects a pair from two runs: check {program()} status, then "
                           "repeat with --force")  # fmt: skip
    inv = load(env, inventory)
    names = services_of(inv, service) or list(inv.services)
    removed = release_stale(inv, names, Reporter(json_ or not is_interactive()))
    if not removed and is_interactive() and not json_:
        print(f"no stale lock among {', '.join(names)}")
