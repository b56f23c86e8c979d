"""fab deploy: render, push through the bastion, run, verify, shred."""

from __future__ import annotations

from invoke import task

from nodeops.activation import model_of
from nodeops.deploy import deploy as deploy_services
from nodeops.errors import raise_failures
from nodeops.job import prepare
from nodeops.operation import Operation

from ._cli import INEXACT_HELP, SHARDED_HELP, Sharded, cli, load, progress, services_of


@task(
    klass=Sharded,
    help={
        **SHARDED_HELP,
        "dry_run": "render, resolve secrets, observe the nodes (pulling nothing) and print what would change and "
        "the plan; change nothing, record nothing in the audit log",
        "allow_inexact_restore": INEXACT_HELP,
        "via_standby": "activation keys: a holder whose inputs change hands its hot keys to the upgraded standby "
        "and back, each a planned promotion (fence first), instead of one restart in place; refused (exit 2) for "
        "a service with no keys or no standby",
    },  # fmt: skip
)
@cli
def deploy(c, env=None, inventory=None, service=None, shard=None, dry_run=False, allow_inexact_restore=False,
           via_standby=False, json_=False):  # fmt: skip
    """Bring each service pair to its inventory state: standby first, a planned handover, verified, no secret left."""
    inv = load(env, inventory)
    names = services_of(inv, service, shard)
    jobs = prepare(inv, names)  # every role, secret and file, before any host is contacted
    names = [job.service.name for job in jobs]
    for job in jobs if via_standby else ():  # exit 2 before any host: a service with no keys or no standby
        model_of(job.role).refuse_via_standby(job.service)
    with progress("deploy", inv, names, json_, dry_run) as report:
        with Operation(inv, "deploy", names, report, dry_run=dry_run) as op:
            jobs = prepare(inv, names)  # again under the lock: a secret rotated meanwhile is read at its new version
            results = op.results = deploy_services(op.fleet, jobs, report, dry_run=dry_run, stop=op.stop,
                                                   inexact_ok=allow_inexact_restore,
                                                   via_standby=via_standby)  # fmt: skip
            raise_failures(results)
    changed = [r["service"] for r in results if r.get("changed")]
    if dry_run:
        report("", "", f"dry run: {len(results)} service(s), {len(changed)} would change; nothing was changed",
               dry_run=True)  # fmt: skip
    else:
        report(
            "",
            "",
            f"deployed {len(results)} service(s): {len(changed)} changed, {len(results) - len(changed)} unchanged",
        )
