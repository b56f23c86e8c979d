"""fab rotate-secrets: new credentials with no outage, the Secrets Manager way."""

from __future__ import annotations

from invoke import task

from nodeops.errors import raise_failures
from nodeops.job import prepare
from nodeops.operation import Operation
from nodeops.rotate import STOPPING, prepare_rotations, rotate
from nodeops.rotate.rules import needs_admin

from ._cli import SHARDED_HELP, YES_HELP, Sharded, cli, confirm, load, progress, services_of


@task(
    klass=Sharded,
    name="rotate-secrets",
    help={
        **SHARDED_HELP,
        "secret": "a name under the role's rotation: (role.yaml; docs/commands/rotate-secrets.md) or all",
        "yes": YES_HELP,
    },  # fmt: skip
)
@cli
def rotate_secrets(c, env=None, inventory=None, service=None, shard=None, secret=None, json_=False, yes=False):
    """A new password per service: pending version, set where it is checked, tested, the pair rolled (db), current."""
    inv = load(env, inventory)
    selected = services_of(inv, service, shard)
    admin = needs_admin(inv, selected, secret)  # the admin role's secrets are read only for a database password
    jobs = prepare(inv, selected, admin=admin)  # every current secret and file, before any host
    rotations = prepare_rotations(inv, jobs, secret)  # refused (keystore), unknown or unrotatable: exit 2 here
    names = [r.job.service.name for r in rotations]
    plan = [f"{r.job.service.name}: new {', '.join(s.name for s in r.specs)} password"
            + (" (the pair rolled onto it: one planned handover)" if any(s.kind == "postgres-password" for s in r.specs)
               else "") for r in rotations]  # fmt: skip
    confirm(f"rotate-secrets in {inv.environment}", names, plan, yes)
    with progress("rotate-secrets", inv, names, json_) as report:
        with Operation(inv, "rotate-secrets", names, report, {"secret": secret}, stopping=STOPPING) as op:
            # again under the lock: what another run changed meanwhile is read as it is now
            rotations = prepare_rotations(inv, prepare(inv, selected, admin=admin), secret)
            results = op.results = rotate(inv, op.fleet, rotations, report, stop=op.stop)
            raise_failures(results)
    for r in results:
        outage = "" if r["outage_seconds"] is None else f"; outage {r['outage_seconds']:.2f}s"
        said = "".join(f"; {line}" for line in r.get("said", ()))  # the role's line on the value in force
        report(r["service"], "", f"rotated {', '.join(r['rotated'])}{outage}{said}", rotated=r["rotated"],
               outage_seconds=r["outage_seconds"])  # fmt: skip
