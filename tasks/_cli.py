"""What every task shares: the repo root, inventory selection, and the one
place where a NodeopsError becomes a one-line message and its exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from invoke import Exit
from rich import box
from rich.console import Console
from rich.table import Table

from nodeops.errors import InvalidInput, NodeopsError
from nodeops.inventory import Inventory, inventory_path, load_inventory

ROOT = Path(__file__).resolve().parent.parent

INVENTORY_HELP = {
    "env": "environment name: loads inventory/NAME.yaml",
    "inventory": "path of an inventory file (overrides --env)",
}
SERVICES_HELP = {
    **INVENTORY_HELP,
    "service": "comma-separated services (default: every service)",
    "json": "one JSON object per event (the default when stdout is not a terminal)",
}
INEXACT_HELP = ("replace containers whose own inputs cannot be rendered again (started by hand or by an older "
                "nodeops): a failure then restarts them on this run's inputs")  # fmt: skip


def cli(body):
    """Turn user-facing errors into ``nodeops: <message>`` on stderr and the documented exit code."""

    @functools.wraps(body)
    def wrapper(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except NodeopsError as err:
            raise Exit(f"nodeops: {err}", code=err.exit_code) from None

    return wrapper


def load(env: str | None, inventory: str | None) -> Inventory:
    return load_inventory(inventory_path(ROOT, env, inventory))


def services_of(inventory: Inventory, selection: str | None) -> list[str]:
    """The services named by --service a,b (all when empty); an unknown name is exit 2."""
    names = [s for s in (selection or "").split(",") if s]
    unknown = [n for n in names if n not in inventory.services]
    if unknown:
        raise InvalidInput(f"--service {','.join(unknown)}: no such service in {inventory.source} "
                           f"(services: {', '.join(inventory.services)})")  # fmt: skip
    return names


RESULT_STYLES = {"pass": "green", "warn": "yellow", "unknown": "dim", "FAIL": "red"}


def print_checks(checks: Sequence, result: Callable[[Any], str]) -> None:
    """A table of checks (fab verify, fab check): service and node once per node, ``result(check)``
    (one of RESULT_STYLES) in its colour, and the one-line reason."""
    table = Table(box=box.SIMPLE, show_edge=False)
    for col in ("service", "node", "check", "result", "reason"):
        table.add_column(col, no_wrap=col != "reason")
    for i, ch in enumerate(checks):
        first = i == 0 or (checks[i - 1].service, checks[i - 1].node) != (ch.service, ch.node)
        where = (ch.service, ch.node or "-") if first else ("", "")
        shown = result(ch)
        table.add_row(*where, ch.check, f"[{RESULT_STYLES[shown]}]{shown}[/]", ch.reason)
    Console(highlight=False).print(table)


def is_interactive() -> bool:
    """A person at a terminal: stdout is one, and no CI runner says otherwise (every major one sets CI=true)."""
    return sys.stdout.isatty() and os.environ.get("CI", "").lower() not in ("true", "1", "yes")
