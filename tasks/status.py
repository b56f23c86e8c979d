"""fab status: who is active, what runs where, is the pair healthy, who holds the lock."""

from __future__ import annotations

import json

from invoke import task
from rich import box
from rich.console import Console
from rich.table import Table

from nodeops.deploy import Reporter, prepare
from nodeops.remote import Fleet
from nodeops.status import status as observe_status

from ._cli import SERVICES_HELP, cli, is_interactive, load, services_of


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


@task(help=SERVICES_HELP)
@cli
def status(c, env=None, inventory=None, service=None, json_=False):
    """Observed state per service: each node's role, container, version and uptime, the lease, the lock holder."""
    inv = load(env, inventory)
    jobs = prepare(inv, services_of(inv, service))  # the database credentials for reading the lease
    with Fleet(inv) as fleet:
        results = observe_status(fleet, inv, jobs, Reporter.silent())
    if json_ or not is_interactive():
        for result in results:
            print(json.dumps({"event": "status", **result}))
        return
    table = Table(box=box.SIMPLE, show_edge=False)
    for col in ("service", "state", "node", "role", "container", "version", "up", "lease", "lock"):
        table.add_column(col)
    for r in results:
        style = {"healthy": "green", "degraded": "yellow", "mixed": "yellow"}.get(r["state"], "red")
        lease = r["lease"] and (r["lease"].get("describe") or f"unreadable: {r['lease']['error']}")
        lock = r["lock"] and f"{r['lock']['state']}: {r['lock']['holder'].get('who', '?')}"
        for i, n in enumerate(r["nodes"]):
            first = (r["service"], f"[{style}]{r['state']}[/]") if i == 0 else ("", "")
            role = n["role"] + (f", unhealthy (failing: {', '.join(n['failing'])})" if n.get("failing") else "")
            node = (n["node"], role, n["container"] or "-", n["version"] or "-", _uptime(n["uptime_seconds"]))
            table.add_row(*first, *node, *((lease or "n/a", lock or "-") if i == 0 else ("", "")))
    console = Console(highlight=False)
    console.print(table)
    for r in results:
        if r["mixed"]:
            console.print(f"[yellow]{r['service']}: mixed: {r['mixed']}[/] (fab deploy brings both to the inventory's)")
