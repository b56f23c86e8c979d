"""The roll of a database password rotation: both nodes of the pair replaced onto the pending secret (a running node
keeps the password it started with, and the config hash, which leaves secrets out, cannot show the change): standby
first, one planned handover (measured), then the old active, through the deploy's executor
(nodeops.run.runner.ServiceRunner, by ServiceDeploy.execute). Observed once by the preflight, reused by every roll
(the undo's roll back included)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

from nodeops.deploy import ServiceDeploy
from nodeops.edges.ssh import Fleet
from nodeops.errors import Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView, unhealthy_note
from nodeops.inventory import Inventory, Service
from nodeops.job import Job, foreign_versions, rendering
from nodeops.plan import Desired, plan_service, the_active
from nodeops.rotate.rules import rotation_plan
from nodeops.run.report import Reporter
from nodeops.secrets import Secret


def as_recorded(job: Job, node: str, container: Container) -> str:
    """The config hash of ``job`` on ``node`` (its own, for a role that renders per node) with each secret at the
    version ``container`` (``node``'s) records in its labels (values unchanged): what it must be labelled with when
    it runs the job's configuration on older secret versions."""
    recorded = json.loads(container.label("secrets") or "{}")
    secrets = {n: Secret(s.reveal(), n, recorded.get(n, s.version)) for n, s in job.secrets.items()}
    rendered, nodes = rendering(job.role, job.profile, job.service, secrets)
    return nodes.get(node, rendered).config(container.started_hot)


def refuse_moved_secrets(inventory: Inventory, service: Service, states: Mapping[str, NodeView]) -> None:
    """Unsafe (exit 4), before anything changes, when a node's container records a secret version of another backend
    than the one the inventory names now (nodeops.job.foreign_versions: the inventory moved the secret since): the
    roll could not put that node back on its inputs if it failed. The message says what to do."""
    for name, state in states.items():
        c = state.container
        recorded = json.loads(c.label("secrets") or "{}") if c is not None else {}
        if elsewhere := foreign_versions(inventory, service, recorded):
            raise Unsafe(f"{service.name} {name}: container {c.name}: {elsewhere}")


def job_with(job: Job, values: Mapping[str, Secret]) -> Job:
    """``job`` with some secrets replaced (the pending values): files rendered again, in memory. Its
    redactor is ``job``'s, which already masks the pending values. A secret read from the same backend
    secret as a replaced one (another key of its JSON document) is now read from the new version too."""
    refs = job.service.secrets
    moved = {(refs[n].backend, refs[n].name): v.version for n, v in values.items()}
    secrets = {n: Secret(s.reveal(), n, moved[(refs[n].backend, refs[n].name)])
               if (refs[n].backend, refs[n].name) in moved else s for n, s in job.secrets.items()}  # fmt: skip
    secrets.update(values)
    rendered, nodes = rendering(job.role, job.profile, job.service, secrets)  # each node its own, as job_for
    return dataclasses.replace(job, rendered=rendered, nodes=nodes, secrets=secrets)


class PairRoll:
    """The pair of ``job``'s service under a rotation: its preflight (observe) and its rolls (roll). ``deploy``: the
    executor, observed once; ``touched``: a node was replaced, so an undo must roll the pair back."""

    def __init__(self, job: Job, fleet: Fleet, report: Reporter) -> None:
        self.job = job
        self.deploy = ServiceDeploy(job, fleet, report)  # observed once (a roll's preflight), reused by every roll
        self.desired: Desired | None = None  # what the preflight observed: the image as pulled on the pair
        self.tolerated: tuple[str, ...] = ()  # the checks the active failed then: a roll may end failing those
        self.touched = False  # a node was replaced: an undo must roll the pair back

    def observe(self) -> None:
        """The roll's preflight: the pair connected, checked and pulled once for the whole run; refused
        (exit 4) before anything changes unless it is one sound active and a standby, each on secret versions of the
        backends the inventory names (refuse_moved_secrets)."""
        states, self.desired = self.deploy.observe()
        refuse_moved_secrets(self.deploy.fleet.inventory, self.job.service, states)
        active = the_active(states.values(), self.job.service.name, "a rotation rolls a pair with one active")
        # the active must run the inventory's configuration; its secrets may be at older versions (an API password
        # rotation moves one without restarting anything): compare with the versions it records
        c = active.container
        own = {"config_hash": as_recorded(self.job, active.node.name, c), "nodes": {}} if c else {}  # its own hash
        check = dataclasses.replace(self.desired, **own)
        rotation_plan(self.job.service, states, check)
        self.tolerated = active.failing
        if note := unhealthy_note(active):
            self.deploy.say(active.node.name, f"{note}: rolled from like a healthy active; the new active may fail "
                            "the same checks, no others", failing=list(active.failing))  # fmt: skip

    def roll(self, job: Job) -> None:
        """Both nodes replaced with ``job``'s files: standby, handover (measured), old active. The pair
        observed by the preflight is reused: only the containers' states are read again."""
        run = self.deploy
        run.job = job
        desired = dataclasses.replace(self.desired, config_hash=job.rendered.config_hash)
        # The active was checked by the preflight (observe); it now runs another secret version than ``job``'s.
        plan = dataclasses.replace(plan_service(job.service, run.states(), desired, force=True),
                                   reason="forced rolling replace onto the new secret version")  # fmt: skip
        run.say("", f"roll: {plan.reason}; " + "; ".join(s.describe() for s in plan.steps), step="roll")
        self.touched = True
        run.new_change()  # what each node runs now is what a failure of this roll puts back
        run.execute(plan)
        run.verify(tolerated=self.tolerated)
        run.drop_previous()
        run.say("", "roll: both nodes run on the new secret", step="rolled")
