"""fab audit: the environment's recent operations and steps, from the log on the bastion."""

from __future__ import annotations

import json

from invoke import task
from rich.console import Console

from nodeops.console import audit_view
from nodeops.edges.ssh import Fleet
from nodeops.operation import audit_log

from ._cli import INVENTORY_HELP, cli, is_interactive, load


@task(help={**INVENTORY_HELP, "lines": "how many of the latest entries (default 50)",
            "steps": "show every step, not just each operation's start and end",
            "json": "the entries as JSON lines, as stored"})  # fmt: skip
@cli
def audit(c, env=None, inventory=None, lines=50, steps=False, json_=False):
    """Recent entries of the audit log on the bastion: who ran what, on which services, with what result."""
    inv = load(env, inventory)
    with Fleet(inv) as fleet:
        entries = [e.record() for e in audit_log(fleet, lines, steps)]  # each read through its type
    if json_ or not is_interactive():
        for entry in entries:
            print(json.dumps(entry))
        return
    Console(highlight=False).print(audit_view(entries))
