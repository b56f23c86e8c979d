"""fab monitoring.render: Prometheus scrape configuration, alert rules and Grafana dashboards for an environment,
from its inventory and its roles' monitoring files (docs/monitoring.md)."""

from __future__ import annotations

from nodeops.inventory import Inventory
from nodeops.monitoring.base import base
from nodeops.monitoring.model import monitored_services
from nodeops.monitoring.render import Settings, render


def render_inventory(inventory: Inventory, settings: Settings) -> dict[str, bytes]:
    """Every file of ``inventory``'s monitoring (relative path -> bytes), its roles' monitoring files read from the
    role search path: what ``fab monitoring.render`` writes, and the lab's Prometheus runs on. RoleError /
    InventoryError (exit 2) for a bad role or monitoring file."""
    ports, monitored = monitored_services(inventory)
    return render(inventory, ports, monitored, base(inventory), settings)
