"""fab audit: the environment's recent operations and steps, from the log on the bastion."""

from __future__ import annotations

import json

from invoke import task

from nodeops.operation import audit_log
from nodeops.remote import Fleet

from ._cli import INVENTORY_HELP, cli, is_interactive, load


@task(help={**INVENTORY_HELP, "lines": "how many of the latest entries (default 50)",
            "steps": "show every step, not just each operation's start and end",
            "json": "the entries as JSON lines, as stored"})  # fmt: skip
@cli
def audit(c, env=None, inventory=None, lines=50, steps=False, json_=False):
    """Recent entries of the audit log on the bastion: who ran what, on which services, with what result."""
    inv = load(env, inventory)
    with Fleet(inv) as fleet:
        entries = audit_log(fleet, inv, lines, steps)
    if json_ or not is_interactive():
        for entry in entries:
            print(json.dumps(entry))
        return
    for e in entries:
        if e.get("event") == "step":
            print(f"{e.get('time')}  {e.get('run')}    {e.get('service') or '':<10} {e.get('node') or '':<10} "
                  f"{e.get('message')}")  # fmt: skip
        elif e.get("event") == "start":
            print(
                f"{e.get('time')}  {e.get('run')} start  {e.get('op')} {','.join(e.get('services', []))} "
                f"by {e.get('who')} from {e.get('from')}" + (f" (CI {e['ci_run']})" if e.get("ci_run") else "")
            )
        else:
            outcome = e.get("result") if not e.get("error") else f"{e.get('result')}: {e['error']}"
            print(f"{e.get('time')}  {e.get('run')} end    {e.get('op')} exit {e.get('exit_code')} "
                  f"after {e.get('seconds')}s: {outcome}")  # fmt: skip
