"""nodeops shards: the --shard I/N matrix of an environment, for a CI system to run one job per shard."""

from __future__ import annotations

import json

from invoke import task
from rich import box
from rich.console import Console
from rich.table import Table

from nodeops.errors import InvalidInput
from nodeops.shards import MAX_SHARDS, matrix

from ._cli import INVENTORY_HELP, cli, is_interactive, load


@task(
    positional=[],  # every argument by its flag: a positional one would take `--help` as its value
    help={
        **INVENTORY_HELP,
        "count": f"how many shards (required: 1 to {MAX_SHARDS}); fewer are printed when there are fewer services",
        "json": 'one object {"include": [{"shard": "I/N", "services": "a,b", "bastions": "host:port"}, ...]}, a '
        "GitHub Actions matrix as it is (the default when stdout is not a terminal)",
    },
)
@cli
def shards(c, count: int, env=None, inventory=None, json_=False):
    """Print the services split into --count balanced shards, each the --shard I/N of one CI job.

    Deterministic (the same on every machine), one bastion's services together when the counts allow."""
    if not 1 <= count <= MAX_SHARDS:
        raise InvalidInput(f"--count {count}: expected a number of shards from 1 to {MAX_SHARDS} (such as --count 4)")
    inv = load(env, inventory)
    rows = matrix(inv, count)
    if json_ or not is_interactive():
        print(json.dumps({"include": rows}))  # no "event" key: a CI matrix would take it as a dimension
        return
    table = Table(box=box.SIMPLE, show_edge=False)
    for col in ("shard", "services", "bastions"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(row[col]) for col in ("shard", "services", "bastions")))
    Console(highlight=False).print(table)
