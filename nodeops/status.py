"""What runs where, observed: each node's role, container and version, the lease, the pair's state."""

from __future__ import annotations

from collections.abc import Sequence

from nodeops.deploy import Job, ServiceDeploy
from nodeops.errors import NodeopsError
from nodeops.inventory import Inventory
from nodeops.lease import lease_reader
from nodeops.promote import Seen, observe
from nodeops.remote import Fleet


def node_role(s: Seen) -> str:
    if not s.reachable:
        return "unknown"
    if s.serving:
        return "active"
    return "standby" if s.container is not None and s.container.running else "down"


def pair_state(seen: Sequence[Seen]) -> str:
    """healthy: one active, every other node a running standby; degraded: served, but a standby is
    missing or unknown; down: nobody serves; unsafe: more than one serves."""
    roles = [node_role(s) for s in seen]
    active = roles.count("active")
    if active > 1:
        return "unsafe"
    if active == 0:
        return "down"
    return "healthy" if roles.count("standby") == len(roles) - 1 else "degraded"


def status(inventory: Inventory, jobs: Sequence[Job], report) -> list[dict]:
    results = []
    with Fleet(inventory) as fleet:
        for job in jobs:
            run = ServiceDeploy(job, fleet, report)
            seen = observe(run)
            lease = "n/a"
            if job.role.lease is not None:
                try:
                    with lease_reader(fleet, job) as read:
                        lease = read().describe()
                except NodeopsError as exc:
                    lease = f"unreadable: {exc}"
            results.append({
                "service": job.service.name,
                "state": pair_state(list(seen.values())),
                "lease": lease,
                "nodes": [{
                    "node": s.node.name, "host": s.node.host, "role": node_role(s),
                    "container": s.container.status if s.container else None,
                    "version": s.container.label("version") if s.container else None,
                    "digest": s.container.label("digest") if s.container else None,
                    "config": (s.container.label("config") or "")[:12] if s.container else None,
                } for s in seen.values()],
            })  # fmt: skip
    return results
