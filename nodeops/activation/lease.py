"""Activation ``lease`` (LeaseModel): every node runs; the one holding the role's lease answers its health path, the
others wait silently. A change rolls the standby first, then hands over once (nodeops.plan.plan_service); a planned
promotion is one handover. Carried out by nodeops.run.runner.ServiceRunner; after a failure, nodeops.run.confirm
says what serves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodeops.activation.base import Applies, Model, target
from nodeops.facts.view import NodeView
from nodeops.inventory import Service
from nodeops.plan import Desired, LeaseFacts, ServicePlan, Step, plan_service, the_active
from nodeops.run.confirm import WhatServes
from nodeops.run.runner import ChangeFailed, ServiceRunner


class LeaseModel(Model):
    """The database lease decides: the node that answers its health path at all (200 or 503) is the active."""

    name = "lease"
    silent_standby = True
    answering = "holds the lease"
    rotates = True
    rollback_how = "standby first, one planned handover"

    def plan_change(self, service: Service, states: Mapping[str, NodeView], desired: Desired,
                    force: bool = False, lease: LeaseFacts | None = None) -> ServicePlan:  # fmt: skip
        return plan_service(service, states, desired, force, lease)

    def promotion(self, service: Service, states: Mapping[str, NodeView], to: str | None,
                  fence: str, keep_old_stopped: bool) -> ServicePlan:  # noqa: ARG002 (the keys model's)  # fmt: skip
        """One handover from the active (nodeops.plan.the_active), then the old active started again on its own
        inputs and awaited waiting as the standby (``start-again``; ``keep-stopped`` with ``keep_old_stopped``: it
        stays stopped, the pair has no standby), and last the new active's lease files shredded (``shred``): the old
        active comes back first, so that were the new one cut off now the pair's other node is up to take over.
        ``fence`` is the keys model's (unused)."""
        name = service.name
        old = the_active(states.values(), name, "a planned promotion hands over from the one").node.name
        new = target(name, service, old, to)
        after = Step("keep-stopped", old, "--keep-old-stopped") if keep_old_stopped else Step("start-again", old)
        steps = (Step("handover", old, to=new), after, Step("shred", new, "lease"))
        return ServicePlan(name, steps, f"planned promotion of {new}: one handover")

    def runner(self, change: Any) -> Applies:
        return ServiceRunner(change)

    def failure(self, change: Any, what: str, unsafe: bool = False) -> ChangeFailed:
        return WhatServes(change).failure(what, unsafe)
