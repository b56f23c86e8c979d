"""fab status: who is active, what runs where, is the pair healthy, who holds the lock."""

from __future__ import annotations

import json

from invoke import task
from rich.console import Console

from nodeops.console import status_view
from nodeops.edges.ssh import Fleet
from nodeops.job import prepare
from nodeops.status import status as observe_status

from ._cli import SHARDED_HELP, Sharded, cli, is_interactive, load, services_of


@task(klass=Sharded, help=SHARDED_HELP)
@cli
def status(c, env=None, inventory=None, service=None, shard=None, json_=False):
    """Observed state per service: each node's role, container, version, uptime, the lease, the lock holder.

    Also a rotation left under way, with the command that completes it."""
    inv = load(env, inventory)
    jobs = prepare(inv, services_of(inv, service, shard))  # the database credentials for reading the lease
    with Fleet(inv, services=[job.service.name for job in jobs]) as fleet:
        results = observe_status(fleet, jobs)
    if json_ or not is_interactive():
        for result in results:
            print(json.dumps({"event": "status", **result}))
        return
    console = Console(highlight=False)
    console.print(status_view(results, console.width))
