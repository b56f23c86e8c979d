"""fab monitoring.render: the Prometheus and Grafana files that watch an environment (docs/monitoring.md)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from invoke import task
from pydantic_core import PydanticCustomError

from nodeops.errors import InvalidInput
from nodeops.inventory.values import _host
from nodeops.monitoring import render_inventory
from nodeops.monitoring.output import write_tree
from nodeops.monitoring.render import Settings, seconds

from ._cli import INVENTORY_HELP, cli, load

_DURATION = re.compile(r"([0-9]+(ms|s|m|h))+")
_FOLDER = re.compile(r"(/[A-Za-z0-9_.-]+)+/?")
MAX_INTERVAL = 300.0  # seconds: a longer scrape interval leaves series stale between scrapes (Prometheus: 5 min)


def _is_host(value: str) -> bool:
    """A hostname or an IP address (an IPv6 one in brackets), as the inventory's ``host`` takes them."""
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
        try:
            return ipaddress.ip_address(value).version == 6
        except ValueError:
            return False
    if ":" in value:  # a bare IPv6 address: its port would be ambiguous
        return False
    try:
        _host(value)
    except PydanticCustomError:
        return False
    return True


def _is_port(text: str | None) -> bool:
    return bool(text) and text.isdigit() and 0 < int(text) < 65536


def _is_url(value: str) -> bool:
    if any(c.isspace() or not c.isprintable() for c in value):
        return False
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        return False
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    return parts.scheme in ("http", "https") and "@" not in parts.netloc and _is_host(host) and port != 0


def settings(exporter: str, interval: str, prometheus_url: str, dashboards: str) -> Settings:
    """The options, checked: InvalidInput (exit 2) naming the flag, the value and what it expects."""
    host, _, port = exporter.rpartition(":")
    if not (_is_host(host) and _is_port(port)):
        raise InvalidInput(
            f"--exporter {exporter!r}: expected HOST:PORT of the node_exporter serving fab check's "
            "textfile (a hostname or IP address, [IPv6] in brackets, a port 1-65535: localhost:9100)"
        )
    if not (_DURATION.fullmatch(interval) and 0 < seconds(interval) <= MAX_INTERVAL):
        raise InvalidInput(f"--interval {interval!r}: expected a Prometheus duration above 0 and at most 5m "
                           "(15s, 1m): a longer one leaves series stale between scrapes")  # fmt: skip
    if not _is_url(prometheus_url):
        raise InvalidInput(f"--prometheus-url {prometheus_url!r}: expected http(s)://HOST[:PORT][/PATH] of the "
                           "Prometheus Grafana queries, with no user or password (the file is not secret)")  # fmt: skip
    parts = dashboards.split("/")
    if not _FOLDER.fullmatch(dashboards) or any(p in (".", "..") for p in parts):
        raise InvalidInput(f"--dashboards {dashboards!r}: expected an absolute folder on the Grafana host (letters, "
                           "digits, . _ - and /; no . or .. part)")  # fmt: skip
    return Settings(exporter, interval, prometheus_url, dashboards)


@task(name="render", help={**INVENTORY_HELP,
            "out": "the folder to write to (created if missing); files a render did not write are never overwritten",
            "exporter": "HOST:PORT of the node_exporter that serves fab check's textfile (default localhost:9100)",
            "interval": "scrape and rule evaluation interval (default 15s)",
            "prometheus_url": "the URL Grafana reaches Prometheus at (default http://localhost:9090)",
            "dashboards": "the folder on the Grafana host the dashboards are copied to "
                          "(default /var/lib/grafana/dashboards/nodeops)"})  # fmt: skip
@cli
def render_(c, env=None, inventory=None, out=None, exporter="localhost:9100", interval="15s",
            prometheus_url="http://localhost:9090", dashboards="/var/lib/grafana/dashboards/nodeops"):  # fmt: skip
    """Prometheus scrape configuration, alert rules and Grafana dashboards for the environment, into --out."""
    if not out:
        raise InvalidInput("--out is required: the folder to write the monitoring files to")
    chosen = settings(exporter, interval, prometheus_url, dashboards)
    inv = load(env, inventory)
    files = render_inventory(inv, chosen)
    written, removed = write_tree(Path(out), files, inv.environment)
    print(f"{len(files)} files for {inv.environment} in {out}: {len(written)} written, {len(removed)} removed, "
          f"{len(files) - len(written)} unchanged")  # fmt: skip
