"""What the engine watches in every environment, whatever its roles: the textfile ``fab check`` writes
(docs/commands/check.md: ``nodeops_check_ok``, ``nodeops_node_*``, ``nodeops_secret_age_seconds``,
``nodeops_check_timestamp_seconds``), as panels and alert rules of the same shape a role's monitoring file has
(nodeops.monitoring.model), and that its node_exporter (job ``nodeops_check``) is scraped.
Pure: the inventory in, the model out."""

from __future__ import annotations

from collections import defaultdict

from nodeops.inventory import Inventory
from nodeops.monitoring.model import Monitoring, Panel, Rule

CHECK_JOB = "nodeops_check"  # the Prometheus job of the node_exporter serving fab check's textfile

NAME = "nodeops"
ROTATE_AT = 0.9  # of a service's secret_max_age_days: NodeopsSecretDueForRotation fires before fab check fails

PANELS = (
    Panel("Checks failing", 'sum by (service) (1 - nodeops_check_ok{env="$env"})', "stat", legend="{{service}}",
          description="fab check: checks that failed in its last run, per service (0: all passed)"),
    Panel("Check results", 'min by (service, node, check) (nodeops_check_ok{env="$env"})', "table",
          description="fab check: 1 passed, warned or unknown; 0 failed ('' node: a check of the whole service)"),
    Panel("Since the last fab check", 'time() - max(nodeops_check_timestamp_seconds{env="$env"})', "stat", "s",
          description="a run that could not check writes nothing: this grows"),
    Panel("Secret age", 'max by (service, secret) (nodeops_secret_age_seconds{env="$env"})', "table", "s",
          description="age of each secret's current version (AWS backend; rotate with fab rotate-secrets)"),
    Panel("Disk used", 'max by (node, mount) (nodeops_node_disk_used_ratio{env="$env"})', "timeseries",
          "percentunit", "{{node}} {{mount}}", "/, /run (the secret files' tmpfs) and the container storage"),
    Panel("Memory used", 'max by (node) (nodeops_node_memory_used_ratio{env="$env"})', "timeseries", "percentunit",
          "{{node}}", "MemTotal - MemAvailable, of MemTotal"),
    Panel("Load per CPU", 'max by (node) (nodeops_node_load_per_cpu{env="$env"})', "timeseries", "short",
          "{{node}}", "the 5-minute load average per CPU"),
    Panel("Error lines in the container's log", 'max by (node) (nodeops_node_log_error_lines{env="$env"})',
          "timeseries", "short", "{{node}}", "error-level lines in the last log_minutes"),
)  # fmt: skip


def rules(inventory: Inventory) -> tuple[Rule, ...]:
    """The engine's alert rules for ``inventory``'s environment (each selects its ``env``: a Prometheus that watches
    several environments loads one rule file per environment, nodeops-ENV.yml)."""
    env = inventory.environment
    return (
        Rule(alert="NodeopsCheckFailed", expr=f'nodeops_check_ok{{env="{env}"}} == 0', for_="10m", severity="page",
             summary="{{ $labels.env }} {{ $labels.service }} {{ $labels.node }}: check {{ $labels.check }} failed",
             description="failed in the fab check runs of the last 10 minutes: fab check --env ENV shows why"),
        Rule(alert="NodeopsCheckStale",
             expr=f'time() - max by (env) (nodeops_check_timestamp_seconds{{env="{env}"}}) > 900'
                  f' or absent_over_time(nodeops_check_timestamp_seconds{{env="{env}"}}[15m])',
             for_="1m", severity="warning", summary="fab check for {{ $labels.env }} has not completed for 15 minutes",
             description="the bastion, the inventory or the cron job: run fab check by hand to see"),
        Rule(alert="NodeopsCheckExporterDown",
             expr=f'up{{env="{env}",job="{CHECK_JOB}"}} == 0 or absent(up{{env="{env}",job="{CHECK_JOB}"}})',
             for_="5m", severity="warning",
             summary="{{ $labels.env }}: Prometheus cannot scrape fab check's textfile exporter {{ $labels.instance }}",
             description="no check result reaches Prometheus: start the node_exporter, or fix --exporter and render "
                         "again"),
        secret_rule(inventory),
    )  # fmt: skip


def secret_rule(inventory: Inventory) -> Rule:
    """NodeopsSecretDueForRotation for ``inventory``: a secret older than ROTATE_AT of its service's
    ``check.secret_max_age_days`` (services with the same limit share one selector)."""
    by_limit: dict[int, list[str]] = defaultdict(list)
    for service in inventory.services.values():
        by_limit[service.check.secret_max_age_days].append(service.name)
    env = inventory.environment
    parts = [f'nodeops_secret_age_seconds{{env="{env}",service=~"{"|".join(names)}"}} > '
             f"{round(ROTATE_AT * days * 86400)}" for days, names in sorted(by_limit.items())]  # fmt: skip
    return Rule(alert="NodeopsSecretDueForRotation", expr=" or ".join(parts), for_="0s", severity="warning",
                summary="{{ $labels.env }} {{ $labels.service }}: secret {{ $labels.secret }} is "
                "{{ $value | humanizeDuration }} old",
                description="run fab rotate-secrets before check.secret_max_age_days")  # fmt: skip


def base(inventory: Inventory) -> Monitoring:
    """The engine's panels and rules for ``inventory``."""
    return Monitoring(name=NAME, dashboard="nodeops: checks and hosts", panels=PANELS,
                      rules=rules(inventory))  # fmt: skip
