"""fab promote-standby: planned failover, measured, with the old active restored on failure."""

from __future__ import annotations

from invoke import task

from nodeops.errors import raise_failures
from nodeops.job import prepare
from nodeops.operation import Operation
from nodeops.promote import promote
from nodeops.roles import role_for

from ._cli import INEXACT_HELP, SHARDED_HELP, YES_HELP, Sharded, ask, cli, load, progress, services_of, will_ask


def outage_line(result: dict, forced: bool = False) -> str:
    """What a promotion's result says of its outage: the figure, or that none was measured (the service was not
    answering before the handover: nodeops.run.probe.OutageProbe.measured; ``forced``, --force: the lost holder could
    not be asked, as under a chain fence, nodeops.promote_forced); under activation keys, the time no node
    held the keys (``keys_gap_seconds``), or that none held them when the promotion began (``keys_held_before``); the
    figure in the chain's own unit beside it when the role's ``outage`` hook said it (``outage_chain_units``)."""
    unit = f" ({result['outage_chain_units']})" if result.get("outage_chain_units") else ""
    if result.get("keys_held_before") is False:
        return "no node held the hot keys when the promotion began"
    if result.get("keys_gap_seconds") is not None:
        return f"no node held the hot keys for {result['keys_gap_seconds']:.2f}s{unit}"
    if result.get("outage_measured", True):
        return f"outage {result['outage_seconds']:.2f}s{unit}"
    if forced:
        return "outage not measured: the lost holder could not be asked when it stopped serving"
    return "outage not measured: the service was not answering before the handover"


@task(
    klass=Sharded,
    name="promote-standby",
    help={
        **SHARDED_HELP,
        "keep_old_stopped": "leave the old active stopped instead of restarting it as the standby (activation "
        "keys: the old holder is fenced by a stop, not a restart without its keys)",
        "force": "the active is gone: wait for its lease to expire by database time, confirm the standby took it "
        "(activation keys: the role's chain-level fence, new hot keys the chain takes over the lost holder's)",
        "dry_run": "observe the nodes and print the promotion's plan, step by step (a role with kinds: in the kind "
        "whose active moves), touching nothing; refused as the promotion would be",
        "allow_inexact_restore": INEXACT_HELP,
        "yes": YES_HELP,
    },
)
@cli
def promote_standby(c, env=None, inventory=None, service=None, shard=None, keep_old_stopped=False, force=False,
                    dry_run=False, allow_inexact_restore=False, json_=False, yes=False):  # fmt: skip
    """Make the standby the active: graceful stop, takeover, measured outage; the old active becomes the standby."""
    inv = load(env, inventory)
    selected = services_of(inv, service, shard)
    # --force under a role's chain fence reads what its rotation reads (a pool's cold key and counter), only then
    admin = force and any(role_for(inv, inv.services[n]).hooks.chain_fence for n in selected or inv.services)
    jobs = prepare(inv, selected, admin=admin)  # the files a restarted node needs, before any host
    names = [job.service.name for job in jobs]
    command = f"promote-standby in {inv.environment}"
    # refused here (several services, no terminal, no --yes): before the lock; a dry run asks nothing
    asking = not dry_run and will_ask(command, names, yes)
    with progress("promote-standby", inv, names, json_, dry_run) as report:
        with Operation(inv, "promote-standby", names, report, {"force": force}, dry_run=dry_run) as op:
            # again under the lock: a secret rotated meanwhile is read at its new version
            jobs = prepare(inv, selected, admin=admin)
            # asked under the lock once every pair was observed: the line names who is active now and who takes over
            results = op.results = promote(op.fleet, jobs, report, keep_old_stopped, force, stop=op.stop,
                                           inexact_ok=allow_inexact_restore,
                                           ask=(lambda lines: ask(command, lines)) if asking else None,
                                           dry_run=dry_run)  # fmt: skip
            for result in results:
                if "error" not in result and not dry_run:
                    report(result["service"], result["active"], f"active now; {outage_line(result, force)}")
            raise_failures(results)
    if dry_run:
        report("", "", f"dry run: {len(results)} service(s) planned; nothing was changed", dry_run=True)
