"""fab lab.up / lab.down: the local lab of real SSH hosts behind a bastion (root only)."""

from __future__ import annotations

from invoke import task

from nodeops.lab.host import Lab
from nodeops.lab.topology import DEFAULT_CIDR, plan_lab
from tasks._cli import ROOT, cli

NAME_HELP = "lab name: namespaces nodeops-NAME-*, inventory/NAME.yaml (default: lab)"


@task(
    help={
        "nodes": "node hosts to run, in active/standby pairs (even, default 2)",
        "name": NAME_HELP,
        "cidr": f"private IPv4 range for the lab (default {DEFAULT_CIDR})",
    }
)
@cli
def up(c, nodes=2, name="lab", cidr=DEFAULT_CIDR):
    """Bring the lab up (idempotent: reuses what runs, adds or removes hosts to match --nodes)."""
    plan = plan_lab(name, cidr, int(nodes))
    inventory = Lab(ROOT, name).up(plan)
    print(
        f"lab {name!r} up: bastion {plan.bastion_public_ip}, {len(plan.nodes)} nodes in "
        f"{len(plan.services())} services behind it ({plan.cidr})"
    )
    print(f"inventory: {inventory.relative_to(ROOT)}   try: fab exec --env {name} --command 'hostname -I'")


@task(help={"name": NAME_HELP})
@cli
def down(c, name="lab"):
    """Remove every namespace, link, route and process the lab made, and its files."""
    removed = Lab(ROOT, name).down()
    print(f"lab {name!r} down: removed {len(removed)} namespaces")
