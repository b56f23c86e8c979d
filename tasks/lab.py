"""fab lab.up / lab.down: the local lab of real SSH hosts behind a bastion (root only).

A development feature of the source repository: the lab's code and image sources (lab/) are
not in the wheel, and an installed nodeops says so in one line (exit 2).
"""

from __future__ import annotations

from pathlib import Path

from invoke import task

from nodeops.errors import InvalidInput
from nodeops.project import project_root

from ._cli import cli

try:
    from lab import topology  # the plan only: what a flag's help names; the rest is imported by the task that runs
except ImportError:  # an installed wheel carries no lab
    topology = None

NAME_HELP = "lab name: namespaces nodeops-NAME-*, inventory/NAME.yaml (default: lab)"


def _lab():
    """lab's modules (host, topology, monitoring), or exit 2 where they are not installed. Imported here, not with
    the task list: every other fab command would pay for them at start."""
    if topology is None:
        raise InvalidInput("lab.*: the lab is a development feature of the nodeops source repository; run it "
                           "from a checkout (see its README), not from an installed nodeops")  # fmt: skip
    from lab import host, monitoring

    return host, topology, monitoring


@task(
    help={
        "nodes": "node hosts to run, in active/standby pairs (even, default 2)",
        "name": NAME_HELP,
        "cidr": f"private IPv4 range for the lab (default {topology and topology.DEFAULT_CIDR})",
        "pool": topology and topology.POOL_HELP,
    }
)
@cli
def up(c, nodes=2, name="lab", cidr=None, pool=False):
    """Bring the lab up (idempotent: reuses what runs, adds or removes hosts to match --nodes and --pool)."""
    lab, plans, monitoring = _lab()
    root = project_root(Path.cwd())
    plan = plans.plan_lab(name, cidr or plans.DEFAULT_CIDR, int(nodes), pool=bool(pool))
    here = lab.Lab(root, name)
    inventory = here.up(plan)
    if here.kernel_changes:
        print(f"kernel limits raised for the labs up: {', '.join(here.kernel_changes)} (lab.down puts them back)")
    print(
        f"lab {name!r} up: bastion {plan.bastion_public_ip}, {len(plan.nodes)} nodes in "
        f"{len(plan.services())} services behind it ({plan.cidr})"
    )
    if plan.chain:
        print(f"pool: {', '.join(h.name for h in plan.pool)} behind the bastion; chain service {plan.chain_address} "
              f"(its description: {here.state_file}, key \"pool\")")  # fmt: skip
    print(f"inventory: {inventory.relative_to(root)}   try: fab exec --env {name} --command 'hostname -I'")
    print(f"prometheus: http://{plan.prometheus_address} on the mon host, through the bastion: "
          f"{monitoring.tunnel_command(here, plan)}, then http://localhost:9090")  # fmt: skip
    print(
        f"fab check's textfile: fab check --env {name} --textfile "
        f"{monitoring.textfile_dir(here, plan) / 'nodeops.prom'}"
    )


@task(help={"name": NAME_HELP})
@cli
def down(c, name="lab"):
    """Remove every namespace, link, route and process the lab made, and its files."""
    lab, _, _ = _lab()
    here = lab.Lab(project_root(Path.cwd()), name)
    removed = here.down()
    print(f"lab {name!r} down: removed {len(removed)} namespaces")
    if here.kernel_changes:
        print(f"kernel limits lowered to what the labs still up need: {', '.join(here.kernel_changes)}")
