"""fab verify: post-deploy checks on every node, through the bastion; pass/fail per check."""

from __future__ import annotations

import dataclasses
import json

from invoke import task
from rich.console import Console

from nodeops.edges.ssh import Fleet
from nodeops.job import prepare
from nodeops.verify import verify as run_checks

from ._cli import SHARDED_HELP, Sharded, cli, is_interactive, load, print_checks, services_of


@task(
    klass=Sharded,
    help={**SHARDED_HELP, "json": "one JSON object per check (the default when stdout is not a terminal)"},
)
@cli
def verify(c, env=None, inventory=None, service=None, shard=None, json_=False):
    """Check every node after a deploy: container user, port on the active only, no secret files, tmpfs, host keys."""
    inv = load(env, inventory)
    jobs = prepare(inv, services_of(inv, service, shard))  # which files each node may still hold
    with Fleet(inv, services=[job.service.name for job in jobs]) as fleet:
        result = run_checks(fleet, jobs)
    if json_ or not is_interactive():
        for check in result.checks:
            print(json.dumps({"event": "check", **dataclasses.asdict(check)}))
    else:
        print_checks(result.checks, lambda ch: "pass" if ch.ok else "FAIL")
        Console(highlight=False).print(f"{sum(ch.ok for ch in result.checks)}/{len(result.checks)} checks passed")
    error = result.error()
    if error:
        raise error
