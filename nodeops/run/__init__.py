"""The executor: node actions bound to one connection (node), what a run reports (report), the outage probe (probe)."""
