"""What a role says about watching its nodes, as data: ``roles/<role>/monitoring.yaml`` (optional) -> a frozen model.

A role's monitoring file names the path its nodes serve Prometheus metrics on (on the service's port), the panels
of its Grafana dashboard (a PromQL query each) and its Prometheus alert rules. The engine adds what nodeops itself
exports (``fab check``'s textfile: nodeops.monitoring.base) and names no chain; a second kind of node brings its
own file. The file is read with the inventory's YAML loader and validator (nodeops.inventory.load): every problem
is one ``RoleError`` (exit 2) naming the file and the path inside it (``rules.0.for``).

In a panel's query, ``$env`` stands for the environment, ``$interval`` and ``$interval_seconds`` for Prometheus'
scrape and evaluation interval (``--interval``): Grafana reads them as the dashboard's constant variables
(nodeops.monitoring.render.variables). An alert rule may not use ``$env`` (rules hold for every environment: they
group by ``env`` instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from nodeops.inventory import Inventory
from nodeops.inventory.load import _make, validate
from nodeops.inventory.model import derived, in_file
from nodeops.inventory.schema import _SPECS, _spec
from nodeops.inventory.values import _count, _matching
from nodeops.role_file import RoleError
from nodeops.role_file.parse import read_role_yaml
from nodeops.roles import role_for, role_search_path

MONITORING_FILE = "monitoring.yaml"

_Text = Annotated[str, _matching(r"[^\n]{1,200}", "a one-line text of 1 to 200 characters")]
_Query = Annotated[str, _matching(r"(?s)\S.{0,1999}", "a PromQL expression (up to 2000 characters)")]
_Duration = Annotated[str, _matching(r"0|([0-9]+(ms|s|m|h|d))+", "a Prometheus duration (30s, 5m, 1h30m)")]
_AlertName = Annotated[str, _matching(r"[A-Za-z][A-Za-z0-9_]{0,79}", "an alert name [A-Za-z][A-Za-z0-9_]*")]
_HttpPath = Annotated[str, _matching(r"/[!-~]{0,200}", "an HTTP path starting with /")]


def _no_env(expr: str) -> str:
    if "$env" in expr:
        raise PydanticCustomError("invalid", "an alert rule holds for every environment: group by env, not $env")
    return expr


@dataclass(frozen=True)
class Panel:
    """One panel of the role's dashboard: a PromQL query (``$env``: the dashboard's environment)."""

    title: _Text
    """The panel's title."""
    expr: _Query
    """Its query; every series it returns is drawn (one per ``legend``)."""
    kind: Literal["timeseries", "stat", "table"] = "timeseries"
    """How it is drawn: over time, the latest value, or a table of the latest values."""
    unit: Annotated[str, _matching(r"[a-z0-9_.]{0,40}", "a Grafana unit (s, percentunit, short, ...)")] = ""
    """Grafana's unit of the values (``s``, ``percentunit``, ``short``); empty: none."""
    legend: Annotated[str, _matching(r"[^\n]{0,200}", "a one-line legend format")] = ""
    """The legend of a series (``{{service}} {{node}}``); empty: Grafana's."""
    description: Annotated[str, _matching(r"[^\n]{0,400}", "a one-line description")] = ""
    """What the panel shows, in one line (Grafana's panel info)."""


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One Prometheus alert rule; it has a firing and a quiet case in the rule tests (docs/monitoring.md)."""

    alert: _AlertName
    """The alert's name."""
    expr: Annotated[str, _matching(r"(?s)\S.{0,1999}", "a PromQL expression"), AfterValidator(_no_env)]
    """Its expression; every series it returns is one alert (keep the ``env`` and ``service`` labels)."""
    for_: _Duration = in_file(key="for", default="0s")
    """How long the expression must hold before the alert fires (pending until then)."""
    severity: Literal["page", "warning", "info"] = "warning"
    """Its ``severity`` label, for Alertmanager's routes."""
    summary: _Text
    """Its ``summary`` annotation (Prometheus templates allowed: ``{{ $labels.service }}``)."""
    description: Annotated[str, _matching(r"[^\n]{0,400}", "a one-line description")] = ""
    """Its ``description`` annotation: what to do."""


@dataclass(frozen=True)
class Scrape:
    """Where the role's nodes serve Prometheus metrics: on the service's port (the role's ``port``, or the
    service's), at ``path``. A node that does not listen (a waiting standby) is a target that is down."""

    path: _HttpPath = "/metrics"
    """The metrics path."""


@dataclass(frozen=True, kw_only=True)
class Monitoring:
    """A role's ``monitoring.yaml``: its scrape path, dashboard and alert rules."""

    name: str = derived()  # the role's name
    source: Path | None = derived(default=None)  # the file
    dashboard: _Text
    """The title of the role's dashboard (the environment's name is added)."""
    scrape: Scrape | None = None
    """Where its nodes serve metrics; none: they are not scraped (the dashboard uses ``fab check``'s only)."""
    panels: Annotated[tuple[Panel, ...], AfterValidator(_count(1, 100, "panels"))]
    """The dashboard's panels, in order."""
    rules: Annotated[tuple[Rule, ...], AfterValidator(_count(0, 100, "rules"))] = ()
    """Its alert rules."""


_SPECS[Panel] = _spec(Panel, "_PanelSpec")
_SPECS[Rule] = _spec(Rule, "_RuleSpec")
_SPECS[Scrape] = _spec(Scrape, "_ScrapeSpec")
_MonitoringSpec = _spec(Monitoring, "_MonitoringSpec", keys=("dashboard", "scrape", "panels", "rules"))


def parse_monitoring(name: str, source: Path) -> Monitoring:
    """Read and validate role ``name``'s monitoring file ``source``: the Monitoring, or ``RoleError`` (exit 2)
    naming the file, the path inside it and what it expected."""
    file = str(source)
    data, positions = read_role_yaml(source, "the role's monitoring file")
    spec = validate(_MonitoringSpec, data, positions, file, RoleError)
    monitoring = _make(spec, name=name, source=source)
    alerts = [r.alert for r in monitoring.rules]
    twice = sorted({a for a in alerts if alerts.count(a) > 1})
    if twice:
        raise RoleError(file, f"rules[{alerts.index(twice[0], alerts.index(twice[0]) + 1)}].alert",
                        f"alert {twice[0]} is defined twice: give each rule its own name")  # fmt: skip
    return monitoring


def find_monitoring(role: str, folders: tuple[Path, ...]) -> Path | None:
    """The monitoring file of ``role``: the first ``<folder>/<role>/monitoring.yaml`` on the role search path
    ``folders`` (the project's roles/ first: an operator overrides the built-in file by shipping just this one, as a
    template); None: the role has none."""
    return next((Path(f) / role / MONITORING_FILE for f in folders if (Path(f) / role / MONITORING_FILE).is_file()),
                None)  # fmt: skip


def monitored_services(inventory: Inventory) -> tuple[dict[str, int], dict[str, Monitoring | None]]:
    """For each service of ``inventory``: the port its nodes serve on (its role's, or its own) and its role's
    monitoring (None: the role has no monitoring file). RoleError / InventoryError (exit 2) as nodeops.roles."""
    search = role_search_path(inventory.source)
    ports: dict[str, int] = {}
    monitored: dict[str, Monitoring | None] = {}
    for name, service in inventory.services.items():
        role = role_for(inventory, service, search)
        ports[name] = role.port
        found = find_monitoring(role.name, search)
        monitored[name] = None if found is None else parse_monitoring(role.name, found)
    return ports, monitored
