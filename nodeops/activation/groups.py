"""A service of a role with node kinds (role.yaml ``kinds:``; Cardano: a pool's relays and its producers): one
service planned as its kind groups, each by its own activation model, in the order the role declares its kinds
(Groups). Each group is the service narrowed to the nodes of one kind (``group``): its model sees only them, so a
group under ``all`` is never all down, a group under ``keys`` never has two holders, whatever the other kinds do.
The engine knows the kinds as data (their names and models), nothing of any chain.

What is built: the planners (a change: the groups' plans one after the other; a promotion: the one group with a
standby) and the words of one node or the service (a node's role and whether it is active, asked of its kind's model;
the service's state, the worst of its groups'). Not built: carrying a plan out (``runner`` refuses, exit 2: the
executor runs one model's plan on a whole service, a runner per group is to come), and the verbs that look a model up
by the role's one activation name (status, check, the audit's ``now``, rollback) are not wired to Groups
(docs/cardano.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from nodeops.activation.base import Applies, Model
from nodeops.errors import InvalidInput, Unsafe
from nodeops.facts.view import NodeView
from nodeops.inventory import Service
from nodeops.plan import Desired, LeaseFacts, ServicePlan

WORST_FIRST = ("unsafe", "down", "degraded", "mixed", "healthy")  # a service's states (Model.state_of), worst first


def group(service: Service, kind: str) -> Service:
    """``service`` narrowed to its nodes of ``kind``, in inventory order. Pure."""
    return dataclasses.replace(service, nodes=tuple(n for n in service.nodes if n.kind == kind))


class Groups(Model):
    """The models of a role's kinds, asked group by group (see the module's docstring); ``kinds``: kind -> its
    model, in the role's order (nodeops.activation.model_of builds it from role.yaml's ``kinds:``)."""

    name = "kinds"
    every_node_serves = False
    lb_answers_from_active = False

    def __init__(self, kinds: Mapping[str, Model]) -> None:
        self.kinds = dict(kinds)
        models = self.kinds.values()
        self.has_standby = any(m.has_standby for m in models)
        self.fence_first = any(m.fence_first for m in models)
        self.unseen_risk = "; ".join(dict.fromkeys(m.unseen_risk for m in models if m.unseen_risk))

    def groups(self, service: Service, states: Mapping[str, NodeView]) -> list[tuple[str, Model, Service, dict]]:
        """(kind, its model, the service narrowed to it, those nodes' views) per kind, in the role's order."""
        out = []
        for kind, model in self.kinds.items():
            mine = group(service, kind)
            out.append((kind, model, mine, {n.name: states[n.name] for n in mine.nodes}))
        return out

    def model_of_node(self, view: NodeView) -> Model:
        return self.kinds[view.node.kind]

    # -- planners ---------------------------------------------------------------------------------------------
    def plan_change(self, service: Service, states: Mapping[str, NodeView], desired: Desired,
                    force: bool = False, lease: LeaseFacts | None = None) -> ServicePlan:  # fmt: skip
        """Each kind's plan (its model's plan_change on its group), one after the other in the role's order
        (Cardano: the relays rolled one at a time, then the producers, standby first); the reason names each
        kind's. A group's refusal (Unsafe, exit 4) refuses the whole plan, before any step."""
        steps, reasons = [], []
        for kind, model, mine, seen in self.groups(service, states):
            plan = model.plan_change(mine, seen, desired, force, lease)
            steps += plan.steps
            reasons.append(f"{kind}: {plan.reason}")
        return ServicePlan(service.name, tuple(steps), "; ".join(reasons))

    def plan_promotion(self, service: Service, states: Mapping[str, NodeView], to: str | None = None,
                       fence: str = "restart", keep_old_stopped: bool = False) -> ServicePlan:  # fmt: skip
        """A planned promotion within one group: ``to``'s kind, else the one kind that has a standby; its model's
        plan_promotion on that group. Unsafe (exit 4) when ``to``'s kind has no standby (every node serves) or no
        kind has one; InvalidInput (exit 2) for an unknown node."""
        chosen = [(k, m, g, s) for k, m, g, s in self.groups(service, states)
                  if (to in s if to is not None else m.has_standby)]  # fmt: skip
        if to is not None and not chosen:
            raise InvalidInput(f"{service.name}: no node {to!r} (nodes: {', '.join(n.name for n in service.nodes)})")
        if not chosen:
            raise Unsafe(f"{service.name}: none of its kinds has a standby to promote: every node serves")
        kind, model, mine, seen = chosen[0]
        if not model.has_standby:
            raise Unsafe(f"{service.name}: {to} is of kind {kind} (activation {model.name}): every node of it "
                         "serves, none is promoted")  # fmt: skip
        return model.plan_promotion(mine, seen, to, fence, keep_old_stopped)

    # -- carrying a plan out: not yet ------------------------------------------------------------------------
    def runner(self, change: Any) -> Applies:
        raise InvalidInput(f"{change.service.name}: a service of node kinds (role {change.job.role.name}) is planned "
                           "but not carried out yet: no container was changed")  # fmt: skip

    # -- the read-only words, asked of each node's kind --------------------------------------------------------
    def is_active(self, view: NodeView) -> bool:
        return self.model_of_node(view).is_active(view)

    def role_of(self, view: NodeView) -> str:
        """The node's word under its kind's model (Model.role_of)."""
        return self.model_of_node(view).role_of(view)

    def state_of(self, seen: Sequence[NodeView], mixed: str | None) -> str:
        """The worst of the groups' states (WORST_FIRST), each under its kind's model."""
        states = [model.state_of([s for s in seen if s.node.kind == kind], mixed)
                  for kind, model in self.kinds.items() if any(s.node.kind == kind for s in seen)]  # fmt: skip
        return min(states, key=WORST_FIRST.index, default="down")

    def standby_verdict(self, view: NodeView) -> tuple[str, str]:
        return self.model_of_node(view).standby_verdict(view)
