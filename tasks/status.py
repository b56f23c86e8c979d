"""fab status: who is active, what runs where, is the pair healthy."""

from __future__ import annotations

import json

from invoke import task
from rich import box
from rich.console import Console
from rich.table import Table

from nodeops.deploy import Reporter, prepare
from nodeops.status import status as observe_status
from tasks._cli import SERVICES_HELP, cli, is_interactive, load, services_of


@task(help=SERVICES_HELP)
@cli
def status(c, env=None, inventory=None, service=None, json_=False):
    """Observed state per service: each node's role, container and version, the lease, the pair's state."""
    inv = load(env, inventory)
    jobs = prepare(inv, services_of(inv, service))  # the database credentials for reading the lease
    results = observe_status(inv, jobs, Reporter(True, lambda _line: None))
    if json_ or not is_interactive():
        for result in results:
            print(json.dumps({"event": "status", **result}))
        return
    table = Table(box=box.SIMPLE, show_edge=False)
    for col in ("service", "state", "node", "role", "container", "version", "lease"):
        table.add_column(col)
    for r in results:
        style = {"healthy": "green", "degraded": "yellow"}.get(r["state"], "red")
        for i, n in enumerate(r["nodes"]):
            first = (r["service"], f"[{style}]{r['state']}[/]") if i == 0 else ("", "")
            node = (n["node"], n["role"], n["container"] or "-", n["version"] or "-")
            table.add_row(*first, *node, r["lease"] if i == 0 else "")
    Console(highlight=False).print(table)
