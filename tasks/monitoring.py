"""fab monitoring.render: the Prometheus and Grafana files that watch an environment (docs/monitoring.md)."""

from __future__ import annotations

import re
from pathlib import Path

from invoke import task

from nodeops.errors import InvalidInput
from nodeops.monitoring.base import base
from nodeops.monitoring.model import monitored_services
from nodeops.monitoring.output import write_tree
from nodeops.monitoring.render import Settings, render

from ._cli import INVENTORY_HELP, cli, load

_HOST_PORT = re.compile(r"[A-Za-z0-9.\[\]:-]+:[0-9]{1,5}")
_DURATION = re.compile(r"([0-9]+(ms|s|m|h))+")
_URL = re.compile(r"https?://[!-~]+")


def settings(exporter: str, interval: str, prometheus_url: str, dashboards: str) -> Settings:
    """The options, checked: InvalidInput (exit 2) naming the flag and what it expects."""
    if not _HOST_PORT.fullmatch(exporter):
        raise InvalidInput(f"--exporter {exporter!r}: expected HOST:PORT of the node_exporter serving fab check's "
                           "textfile (localhost:9100)")  # fmt: skip
    if not _DURATION.fullmatch(interval) or not re.search(r"[1-9]", interval):
        raise InvalidInput(f"--interval {interval!r}: expected a Prometheus duration above 0 (15s, 1m)")
    if not _URL.fullmatch(prometheus_url):
        raise InvalidInput(f"--prometheus-url {prometheus_url!r}: expected http(s)://HOST:PORT of the Prometheus "
                           "Grafana queries")  # fmt: skip
    if not dashboards.startswith("/") or any(c.isspace() for c in dashboards):
        raise InvalidInput(f"--dashboards {dashboards!r}: expected an absolute folder on the Grafana host")
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
    ports, monitored = monitored_services(inv)
    files = render(inv, ports, monitored, base(inv), chosen)
    written, removed = write_tree(Path(out), files)
    print(f"{len(files)} files for {inv.environment} in {out}: {len(written)} written, {len(removed)} removed, "
          f"{len(files) - len(written)} unchanged")  # fmt: skip
