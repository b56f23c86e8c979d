"""fab lock.status / lock.release: the deploy locks on the bastion, seen and (when stale) cleared."""

from __future__ import annotations

import json
from collections.abc import Sequence

from invoke import task

from nodeops import program
from nodeops.commands.bastion import LockInfo
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput
from nodeops.ledger import describe_locks
from nodeops.operation import locks, release_stale
from nodeops.run.report import Reporter

from ._cli import INVENTORY_HELP, cli, is_interactive, load, services_of


@task(help={**INVENTORY_HELP, "json": "one JSON object per lock, then a summary (the default when stdout is not a "
                                      "terminal)"})  # fmt: skip
@cli
def status(c, env=None, inventory=None, json_=False):
    """The environment's deploy locks: who holds each, since when, and whether that run is still alive."""
    inv = load(env, inventory)
    with Fleet(inv) as fleet:
        found = locks(fleet)
    print(*status_lines(found, inv.environment, json_ or not is_interactive()), sep="\n")


def status_lines(found: Sequence[LockInfo], environment: str, as_json: bool) -> list[str]:
    """What lock.status prints for the locks ``found`` in ``environment``. JSON: one ``{"event": "lock", "service",
    "state", "bastion_pid", "holder"}`` line per lock, then ``{"event": "summary", "env", "locks": N, "stale": M}``,
    printed when no lock is held too (a reader gets an answer, never empty output); text: one line per holding run
    (describe_locks), or ``no lock held in ENV``. Pure."""
    if not as_json:
        return describe_locks(found) or [f"no lock held in {environment}"]
    stale = sum(lock.state == "stale" for lock in found)
    summary = {"event": "summary", "env": environment, "locks": len(found), "stale": stale}
    return [*(json.dumps({"event": "lock", "service": lock.service, **lock.record()}) for lock in found),
            json.dumps(summary)]  # fmt: skip


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
