"""What every task shares: the repo root, inventory selection, and the one
place where a NodeopsError becomes a one-line message and its exit code."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from invoke import Exit

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


def is_interactive() -> bool:
    """A person at a terminal: stdout is one, and no CI runner says otherwise (every major one sets CI=true)."""
    return sys.stdout.isatty() and os.environ.get("CI", "").lower() not in ("true", "1", "yes")
