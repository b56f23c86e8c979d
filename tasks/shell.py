"""nodeops shell: an interactive terminal on a node (or in its service's container) through the pinned bastion."""

from __future__ import annotations

import os
import sys

from invoke import Exit, task

from nodeops.access import container_shell_command
from nodeops.edges.ssh import Fleet, interactive
from nodeops.errors import InvalidInput

from ._cli import INVENTORY_HELP, cli, load


@task(
    positional=[],  # every argument by its flag: a positional one would take `--help` as its value
    help={
        **INVENTORY_HELP,
        "node": "the node to open a shell on",
        "container": "a shell inside the node's service container (docker exec -it) instead of on the host",
    },
)
@cli
def shell(c, node, env=None, inventory=None, container=False):
    """An interactive shell on a node through the bastion; exits with the remote shell's exit status."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidInput("shell needs a terminal (stdin and stdout); for one command without one: nodeops exec")
    inv = load(env, inventory)
    target = inv.node(node)
    command = container_shell_command(inv.services[target.service].runtime, target.service) if container else None
    with Fleet(inv, services=[target.service]) as fleet:
        conn, _ = fleet.connect(target)
        code = interactive(conn, command, os.environ.get("TERM", "xterm"))
    if code:
        raise Exit(code=code)
