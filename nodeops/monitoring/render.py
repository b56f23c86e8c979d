"""The files of ``fab monitoring.render``, in memory: pure (the inventory, each service's role port and the roles'
monitoring models in; relative path -> bytes out). Layout (docs/monitoring.md)::

    prometheus/prometheus-<env>.yml                 scrape configs (file-based discovery) and rule_files, relative to it
    prometheus/targets/<env>/check.json             the node_exporter that serves fab check's textfile
    prometheus/targets/<env>/<role>/<service>.json  one target per node: labels env, service, node, role
    prometheus/rules/nodeops-<env>.yml              the engine's rules (nodeops.monitoring.base), for this environment
    prometheus/rules/<role>.yml                     each role's rules (the same for every environment: shared)
    grafana/dashboards/<env>/nodeops-<env>[-<role>].json     built with grafana-foundation-sdk
    grafana/provisioning/dashboards/nodeops-<env>.yaml       a file provider for the environment's dashboards' folder
    grafana/provisioning/datasources/nodeops-<env>.yaml      the Prometheus datasource (uid nodeops-prometheus-<env>)

Every name but a role's rules is per environment, so several environments rendered into one folder, and copied into
one Prometheus and one Grafana, never overwrite one another (docs/monitoring.md, Several environments).

Prometheus reads a role's nodes at ``http://<node host>:<service port><scrape path>``: it must reach the nodes'
private addresses (run it inside their network, as the bastion is). A node that does not listen (a Chainlink standby
waits for the lease with no listener) is a target that is down: ``up`` is 0 for it, which is what "who is active"
reads for a role whose active alone serves.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableHide
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from nodeops.inventory import Inventory
from nodeops.monitoring.base import CHECK_JOB
from nodeops.monitoring.model import Monitoring, Panel, Rule

PANEL_BUILDERS = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}


@dataclass(frozen=True)
class Settings:
    """``fab monitoring.render``'s options: where the node_exporter serving fab check's textfile listens
    (``host:port``), the scrape and rule evaluation interval (a Prometheus duration), the URL Grafana reaches
    Prometheus at, and the folder on the Grafana host the dashboards are copied to."""

    exporter: str = "localhost:9100"
    interval: str = "15s"
    prometheus_url: str = "http://localhost:9090"
    dashboards_path: str = "/var/lib/grafana/dashboards/nodeops"


def datasource_uid(env: str) -> str:
    """The uid of environment ``env``'s Prometheus datasource in Grafana (its dashboards query it)."""
    return uid("nodeops-prometheus", env)


def job(role: str) -> str:
    """The Prometheus job of a role's nodes."""
    return f"nodeops_{role}"


def _yaml(data: object, header: str) -> bytes:
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=200)
    return f"# {header}\n{body}".encode()


def _json(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def targets(inventory: Inventory, ports: Mapping[str, int], roles: Mapping[str, str]) -> dict[str, list[dict]]:
    """Per role, per service (``<env>/<role>/<service>.json``): one file_sd target group per node (``host:port``,
    labels env, service, node, role).
    ``ports``: each service's port (its role's, or its own); ``roles``: each service's role, for the services whose
    role is scraped."""
    out: dict[str, list[dict]] = {}
    for name, service in inventory.services.items():
        if name not in roles:
            continue
        out[f"{inventory.environment}/{roles[name]}/{name}.json"] = [
            {"targets": [f"{node.host}:{ports[name]}"],
             "labels": {"env": inventory.environment, "service": name, "node": node.name, "role": roles[name]}}
            for node in service.nodes
        ]  # fmt: skip
    return out


def prometheus_config(env: str, scraped: Mapping[str, Monitoring], rule_files: list[str], settings: Settings) -> dict:
    """prometheus-<env>.yml: fab check's textfile (honor_labels: its samples keep their own service and node) and one
    job per scraped role, each reading the environment's targets from files (file_sd: edit nothing here to add a
    node, render again); ``rule_files``: the environment's own (another's absent() rules would fire here)."""
    jobs = [{"job_name": CHECK_JOB, "honor_labels": True,
             "file_sd_configs": [{"files": [f"targets/{env}/check.json"]}]}]  # fmt: skip
    for role, monitoring in sorted(scraped.items()):
        jobs.append({"job_name": job(role), "metrics_path": monitoring.scrape.path,
                     "file_sd_configs": [{"files": [f"targets/{env}/{role}/*.json"]}]})  # fmt: skip
    return {"global": {"scrape_interval": settings.interval, "evaluation_interval": settings.interval,
                       "external_labels": {"nodeops_env": env}},
            "rule_files": sorted(rule_files), "scrape_configs": jobs}  # fmt: skip


def rule_group(name: str, rules: tuple[Rule, ...]) -> dict:
    """One Prometheus rule group: each rule with its ``for``, ``severity`` label and annotations."""
    return {"groups": [{"name": name, "rules": [
        {"alert": r.alert, "expr": r.expr, "for": r.for_, "labels": {"severity": r.severity},
         "annotations": {"summary": r.summary, **({"description": r.description} if r.description else {})}}
        for r in rules]}]}  # fmt: skip


def uid(*parts: str) -> str:
    """A Grafana uid (at most 40 characters): the parts joined, or a digest of them when too long."""
    joined = "-".join(parts)
    return joined if len(joined) <= 40 else "nodeops-" + hashlib.sha256(joined.encode()).hexdigest()[:32]


def seconds(duration: str) -> float:
    """A Prometheus duration (``15s``, ``1m30s``, ``500ms``) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h|d)", duration))


def variables(env: str, interval: str) -> dict[str, str]:
    """The dashboards' constant variables (hidden), which a panel's query may use: ``$env``, the environment;
    ``$interval`` and ``$interval_seconds``, Prometheus' scrape and evaluation interval (a subquery's step, and
    what one step weighs in seconds)."""
    return {"env": env, "interval": interval, "interval_seconds": f"{seconds(interval):g}"}


def dashboard(env: str, monitoring: Monitoring, dash_uid: str, interval: str = "15s") -> dict:
    """The Grafana dashboard of ``monitoring``'s panels, for ``env`` (its constant, hidden ``variables``), as the
    JSON model Grafana provisions (grafana-foundation-sdk builds and encodes it)."""
    source = DataSourceRef(type_val="prometheus", uid=datasource_uid(env))
    board = (gd.Dashboard(f"{monitoring.dashboard} ({env})").uid(dash_uid).tags(["nodeops", env])
             .refresh("30s").time("now-6h", "now").timezone("utc").readonly())  # fmt: skip
    for name, value in variables(env, interval).items():
        board = board.with_variable(gd.ConstantVariable(name).value(value).label(name))
    for number, panel in enumerate(monitoring.panels, start=1):
        board = board.with_panel(_panel(panel, number, source))
    encoded = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    for variable in encoded.get("templating", {}).get("list", []):
        variable["hide"] = int(VariableHide.HIDE_VARIABLE)
    return encoded


def _panel(panel: Panel, number: int, source: DataSourceRef):
    query = gp.Dataquery().expr(panel.expr).ref_id("A")
    if panel.legend:
        query = query.legend_format(panel.legend)
    if panel.kind != "timeseries":
        query = query.instant()
    if panel.kind == "table":
        query = query.format(PromQueryFormat.TABLE)
    built = PANEL_BUILDERS[panel.kind]().id(number).title(panel.title).datasource(source).with_target(query)
    built = built.height(8).span(6 if panel.kind == "stat" else 12)
    if panel.unit:
        built = built.unit(panel.unit)
    return built.description(panel.description) if panel.description else built


def provisioning(env: str, settings: Settings) -> dict[str, bytes]:
    """Grafana's provisioning files: the environment's dashboards' folder (a file provider reading
    ``<dashboards_path>/<env>``) and its Prometheus datasource."""
    folder = f"{settings.dashboards_path.rstrip('/')}/{env}"
    return {
        f"grafana/provisioning/dashboards/nodeops-{env}.yaml": _yaml(
            {"apiVersion": 1, "providers": [{"name": f"nodeops-{env}", "folder": "nodeops", "type": "file",
                                             "disableDeletion": True, "allowUiUpdates": False,
                                             "options": {"path": folder}}]},
            f"Grafana: the nodeops dashboards of {env}, read from {folder} (copy grafana/dashboards/{env}/ there)"),
        f"grafana/provisioning/datasources/nodeops-{env}.yaml": _yaml(
            {"apiVersion": 1, "datasources": [{"name": f"nodeops Prometheus ({env})", "uid": datasource_uid(env),
                                               "type": "prometheus", "access": "proxy",
                                               "url": settings.prometheus_url}]},
            f"Grafana: the Prometheus the nodeops dashboards of {env} query"),
    }  # fmt: skip


def render(inventory: Inventory, ports: Mapping[str, int], monitored: Mapping[str, Monitoring | None],
           engine: Monitoring, settings: Settings) -> dict[str, bytes]:  # fmt: skip
    """Every file of the monitoring of ``inventory`` (relative path -> bytes). ``ports``: each service's port;
    ``monitored``: each service's role's monitoring (None: the role has no monitoring file, its nodes are not
    scraped and it has no dashboard); ``engine``: nodeops.monitoring.base's."""
    env = inventory.environment
    roles = {s: m for s, m in monitored.items() if m is not None}
    by_role = {m.name: m for m in roles.values()}
    scraped = {name: m for name, m in by_role.items() if m.scrape is not None}
    rules = {f"prometheus/rules/nodeops-{env}.yml": _yaml(rule_group(f"nodeops-{env}", engine.rules),
                                                          f"nodeops' own alert rules for {env}")}  # fmt: skip
    for name, monitoring in sorted(by_role.items()):
        if monitoring.rules:
            rules[f"prometheus/rules/{name}.yml"] = _yaml(
                rule_group(name, monitoring.rules), f"the {name} role's alert rules ({monitoring.source.name})"
            )
    config = prometheus_config(env, scraped, [r.removeprefix("prometheus/") for r in rules], settings)
    files: dict[str, bytes] = {
        f"prometheus/prometheus-{env}.yml": _yaml(config, f"Prometheus: nodeops {env} (fab monitoring.render)"),
        f"prometheus/targets/{env}/check.json": _json([{"targets": [settings.exporter], "labels": {"env": env}}]),
        **rules,
        f"grafana/dashboards/{env}/nodeops-{env}.json": _json(
            dashboard(env, engine, uid("nodeops", env), settings.interval)
        ),
        **provisioning(env, settings),
    }
    scraped_services = {s: m.name for s, m in roles.items() if m.scrape is not None}
    for path, groups in targets(inventory, ports, scraped_services).items():
        files[f"prometheus/targets/{path}"] = _json(groups)
    for name, monitoring in sorted(by_role.items()):
        board = dashboard(env, monitoring, uid("nodeops", env, name), settings.interval)
        files[f"grafana/dashboards/{env}/nodeops-{env}-{name}.json"] = _json(board)
    return files
