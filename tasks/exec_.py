"""fab exec: one command on every node (or a chosen few), through the bastion."""

from __future__ import annotations

import json
import time

from invoke import Exit, task
from rich import box
from rich.console import Console
from rich.table import Table

from nodeops.edges.ssh import Fleet
from nodeops.errors import EXIT_OK, EXIT_UNSAFE, HostKeyRejected, InvalidInput

from ._cli import INVENTORY_HELP, Sharded, cli, is_interactive, load, services_of


@task(
    klass=Sharded,
    name="exec",
    positional=[],  # every argument by its flag: a positional one would take `--help` as its value
    help={
        **INVENTORY_HELP,
        "command": "shell command to run on each node",
        "nodes": "comma-separated node names (default: every node)",
        "shard": "I/N: only the nodes of shard I of N of the services (instead of --nodes/-H; nodeops shards)",
        "max_parallel": "connections at once (default: ssh.max_parallel from the inventory)",
        "json": "one JSON object per host and a summary line instead of a table (the default when stdout is not "
        "a terminal, or with CI=true)",
    },
)
@cli
def exec_(c, command, env=None, inventory=None, nodes=None, shard=None, max_parallel=0, json_=False):
    """Run one command on every node through the bastion; exit non-zero if any host failed."""
    if not command.strip():
        raise InvalidInput("--command: expected a non-empty shell command")
    inv = load(env, inventory)
    if shard is not None and nodes:
        raise InvalidInput(f"--nodes/-H {nodes} and --shard {shard}: give one of them")  # -H fills --nodes (program)
    if shard is not None:
        chosen = set(services_of(inv, None, shard))
        targets = tuple(n for n in inv.nodes if n.service in chosen)
    else:
        targets = inv.select_nodes([n for n in (nodes or "").split(",") if n])
    started = time.monotonic()
    services = list(dict.fromkeys(n.service for n in targets))  # only their bastions are opened
    with Fleet(inv, max_parallel=max_parallel or None, services=services) as fleet:
        outcomes = fleet.run(targets, command)
    elapsed = time.monotonic() - started

    failed = [o for o in outcomes if not o.ok or o.value.exit_code != 0]
    unsafe = any(isinstance(o.error, HostKeyRejected) for o in outcomes)
    code = EXIT_UNSAFE if unsafe else (1 if failed else EXIT_OK)
    summary = {
        "event": "summary",
        "hosts": len(outcomes),
        "ok": len(outcomes) - len(failed),
        "failed": [o.node.name for o in failed],
        "seconds": round(elapsed, 3),
        "exit_code": code,
    }
    if json_ or not is_interactive():
        for o in outcomes:
            print(
                json.dumps(
                    {
                        "event": "host",
                        "node": o.node.name,
                        "service": o.node.service,
                        "host": o.node.host,
                        "ok": o.ok and o.value.exit_code == 0,
                        "exit_code": o.value.exit_code if o.ok else None,
                        "stdout": o.value.stdout if o.ok else "",
                        "stderr": o.value.stderr if o.ok else "",
                        "error": str(o.error) if o.error else None,
                        "seconds": round(o.seconds, 3),
                        "attempts": o.attempts,
                    }
                )
            )
        print(json.dumps(summary))
    else:
        _table(outcomes, summary)
    if code:
        raise Exit(code=code)


def _table(outcomes, summary) -> None:
    console = Console(highlight=False)
    table = Table(box=box.SIMPLE, show_edge=False)
    for col in ("node", "service", "address", "result", "exit", "time", "output"):
        table.add_column(col, no_wrap=col != "output")
    for o in outcomes:
        if o.ok:
            res = o.value
            output = res.stdout.strip() or res.stderr.strip()
            result = "ok" if res.exit_code == 0 else "failed"
            exit_code = str(res.exit_code)
        else:
            output, result, exit_code = (
                str(o.error),
                "refused" if isinstance(o.error, HostKeyRejected) else "error",
                "-",
            )
        style = "green" if result == "ok" else "red"
        table.add_row(
            o.node.name,
            o.node.service,
            f"{o.node.host}:{o.node.port}",
            f"[{style}]{result}[/]",
            exit_code,
            f"{o.seconds:.2f}s",
            output,
        )
    console.print(table)
    console.print(f"{summary['ok']}/{summary['hosts']} hosts ok in {summary['seconds']:.2f}s")
