"""fab monitoring.render: Prometheus scrape configuration, alert rules and Grafana dashboards for an environment,
from its inventory and its roles' monitoring files (docs/monitoring.md)."""
