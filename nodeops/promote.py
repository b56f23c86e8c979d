"""Planned failover: the standby becomes the active, measured, with the old active restored on failure.

The state is read from the nodes, not from the inventory: whoever serves its
health check holds the database lease (a Chainlink node opens its port only
once it holds it). A pair whose state is unclear, or whose standby is not a
running, waiting node of the wanted image and configuration, is refused
before the active is touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from nodeops.commands import node as cmd
from nodeops.deploy import Job, Reporter, ServiceDeploy
from nodeops.errors import InvalidInput, NodeopsError, OperationFailed, Unsafe
from nodeops.inventory import Inventory
from nodeops.remote import Fleet


def promote_service(run: ServiceDeploy, keep_old_stopped: bool) -> dict:
    service, job = run.service, run.job
    if len(service.nodes) != 2:
        raise InvalidInput(f"{service.name}: has no standby to promote (one node)")
    run.connect_all()
    states = {n.name: (n, run.inspect(n.name), run.serving(n)) for n in service.nodes}
    serving = [node for node, _, up in states.values() if up]
    if len(serving) != 1:
        raise Unsafe(f"{service.name}: {len(serving)} nodes serve; a planned promotion needs exactly one active "
                     "(see the pair with fab exec / docker ps)")  # fmt: skip
    active = serving[0]
    standby, container, _ = next(s for s in states.values() if s[0] is not active)
    refuse = f"{service.name}: refusing before touching the active {active.name}: standby {standby.name}"
    if container is None or not container.running:
        raise Unsafe(f"{refuse} has no running container (fab deploy replaces it)")
    wanted = (cmd.image_tag(service.image), job.rendered.config_hash)
    if (container.label("version"), container.label("config")) != wanted:
        raise Unsafe(f"{refuse} runs {container.label('version')} / config {str(container.label('config'))[:12]}, "
                     f"not the inventory's {wanted[0]} / {wanted[1][:12]} (fab deploy brings it up to date)")  # fmt: skip
    if not run.waiting_logged(standby.name):
        raise Unsafe(f"{refuse} is not waiting for the database lease")
    run.say("", f"promote {standby.name}: stop {active.name} gracefully, {standby.name} takes the lease")
    outage = run.handover(active, standby, restore_standby=False)
    if keep_old_stopped:
        run.say(active.name, "left stopped (--keep-old-stopped): the pair has no standby")
    else:
        run.upload(active.name)  # its files were shredded once read
        run.x(active.name, cmd.sh(cmd.start(run.runtime, run.name)))
        run.await_waiting(active)
        run.shred(active.name, job.files_read("start"))
        run.say(active.name, "restarted as the standby, waiting for the lease")
    return {"service": service.name, "active": standby.name, "outage_seconds": round(outage, 3)}


def promote(inventory: Inventory, jobs: Sequence[Job], report: Reporter, keep_old_stopped: bool) -> list[dict]:
    """Promote the standby of every job's service; raise (after every service was tried) if any failed."""
    results, failed = [], []
    with Fleet(inventory) as fleet:
        for job in jobs:
            try:
                results.append(promote_service(ServiceDeploy(job, fleet, report), keep_old_stopped))
            except NodeopsError as exc:
                report(job.service.name, "", f"FAILED: {exc}")
                failed.append(exc)
    if failed:
        error = OperationFailed("; ".join(map(str, failed)))
        error.exit_code = max(e.exit_code for e in failed)
        raise error
    return results
