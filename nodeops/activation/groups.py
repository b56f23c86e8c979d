"""A service of a role with node kinds (role.yaml ``kinds:``; Cardano: a pool's relays and its producers): one
service planned as its kind groups, each by its own activation model, in the order the role declares its kinds
(Groups). Each group is the service narrowed to the nodes of one kind (``group``): its model sees only them, so a
group under ``all`` is never all down, a group under ``keys`` never has two holders, whatever the other kinds do.
The engine knows the kinds as data (their names and models), nothing of any chain.

Built: the planners (a change: the groups' plans one after the other; a promotion: the one group with a standby),
their runner (GroupsRunner: each group's steps by its model's runner, on the change seen as that group's,
GroupChange), the end check (each group's, merged), the audit's ``now`` (the active of the kind that has one, and
who serves) and the words of one node or the service (a node's role and whether it is active, asked of its kind's
model; the service's state, the worst of its groups'; what runs now, for a rollback), read by status, check
(its groups, Model.groups) and rollback through the role's model (nodeops.activation.model_of).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from nodeops.activation.base import Applies, Model
from nodeops.errors import Interrupted, InvalidInput, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Service
from nodeops.plan import Desired, LeaseFacts, ServicePlan
from nodeops.run.runner import ChangeFailed

# a service's states (Model.state_of), worst first: unknown (no active seen, an unreachable node may be it) below down
# (nothing serves, known), above degraded (what is seen serves)
WORST_FIRST = ("unsafe", "down", "unknown", "degraded", "mixed", "healthy")


def group(service: Service, kind: str) -> Service:
    """``service`` narrowed to its nodes of ``kind``, in inventory order. Pure."""
    return dataclasses.replace(service, nodes=tuple(n for n in service.nodes if n.kind == kind))


def kind_by_kind(groups: Groups, service: Service, states: Mapping[str, NodeView], plan_of) -> ServicePlan:
    """``plan_of(model, group, views)`` for each kind of ``groups``, in the role's order, as one plan: the steps one
    after the other, the reason naming each kind's."""
    steps, reasons = [], []
    for kind, model, mine, seen in groups.groups(service, states):
        plan = plan_of(model, mine, seen)
        steps += plan.steps
        reasons.append(f"{kind}: {plan.reason}")
    return ServicePlan(service.name, tuple(steps), "; ".join(reasons))


class GroupChange:
    """``change`` (nodeops.deploy.ServiceDeploy) seen as one kind group's: its ``service`` is the group (the service
    narrowed to one kind), its ``model`` the kind's, ``confirm`` that model's failure on the group; every other
    attribute, read or set, is the change's own (what a runner records on it, the files it held back, where a stop
    came, stays the change's). So a model's runner and end check see only their group's nodes."""

    def __init__(self, change: Any, service: Service, model: Model) -> None:
        object.__setattr__(self, "_change", change)
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "model", model)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._change, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._change, name, value)

    def confirm(self, what: str, unsafe: bool = False) -> ChangeFailed:
        """The error that ends a failed step of this group: ``what``, then what serves of the group now."""
        return self.model.failure(self, what, unsafe)


class GroupsRunner:
    """Carries a Groups plan out: its steps cut where the kind changes, each part run by its kind's model's runner on
    the change seen as that kind's group (GroupChange), in the plan's order. A failure ends the run where it came, as
    that runner says it, the parts after it untouched. A stop (Ctrl-C, SIGTERM) is honoured by the running part at its
    safe points, or between two parts: Interrupted, saying which kinds are done and that the next was not touched."""

    def __init__(self, groups: Groups, change: Any) -> None:
        self.groups, self.change = groups, change

    def apply(self, plan: ServicePlan) -> None:
        run = self.change
        kinds = {n.name: n.kind for n in run.service.nodes}
        cut: list[tuple[str, list]] = []
        for step in plan.steps:
            if not cut or cut[-1][0] != kinds[step.node]:
                cut.append((kinds[step.node], []))
            cut[-1][1].append(step)
        for i, (kind, steps) in enumerate(cut):
            if i and run.stop.is_set():
                done = ", ".join(dict.fromkeys(k for k, _ in cut[:i]))
                raise Interrupted(f"{plan.service}: stopped as asked once the {done} nodes were done, before "
                                  f"`{steps[0].describe()}`: no {kind} node was touched; {run.standing()}")  # fmt: skip
            part = self.groups.part(run, kind)
            part.model.runner(part).apply(ServicePlan(plan.service, tuple(steps), plan.reason), then=i < len(cut) - 1)


class Groups(Model):
    """The models of a role's kinds, asked group by group (see the module's docstring); ``kinds``: kind -> its
    model, in the role's order (nodeops.activation.model_of builds it from role.yaml's ``kinds:``)."""

    name = "kinds"
    lb_answers_from_active = False

    def __init__(self, kinds: Mapping[str, Model]) -> None:
        self.kinds = dict(kinds)
        models = self.kinds.values()
        self.has_standby = any(m.has_standby for m in models)
        self.every_node_serves = all(m.every_node_serves for m in models)
        self.silent_standby = any(m.silent_standby for m in models)
        self.fence_first = any(m.fence_first for m in models)
        self.unseen_risk = "; ".join(dict.fromkeys(m.unseen_risk for m in models if m.unseen_risk))
        self.rollback_how = "kind by kind: " + "; then ".join(f"{k}, {m.rollback_how}" for k, m in self.kinds.items())

    def groups(self, service: Service, states: Mapping[str, NodeView]) -> list[tuple[str, Model, Service, dict]]:
        """(kind, its model, the service narrowed to it, those nodes' views) per kind, in the role's order."""
        out = []
        for kind, model in self.kinds.items():
            mine = group(service, kind)
            out.append((kind, model, mine, {n.name: states[n.name] for n in mine.nodes}))
        return out

    def part(self, change: Any, kind: str) -> GroupChange:
        """``change`` seen as ``kind``'s group (GroupChange)."""
        return GroupChange(change, group(change.service, kind), self.kinds[kind])

    def for_kind(self, kind: str | None) -> Model:
        return self.kinds[kind]

    # -- planners ---------------------------------------------------------------------------------------------
    def plan_change(self, service: Service, states: Mapping[str, NodeView], desired: Desired,
                    force: bool = False, lease: LeaseFacts | None = None) -> ServicePlan:  # fmt: skip
        """Each kind's plan (its model's plan_change on its group), one after the other in the role's order
        (Cardano: the relays rolled one at a time, then the producers, standby first); the reason names each
        kind's. A group's refusal (Unsafe, exit 4) refuses the whole plan, before any step."""
        return kind_by_kind(self, service, states,
                            lambda model, mine, seen: model.plan_change(mine, seen, desired, force, lease))  # fmt: skip

    def refuse_via_standby(self, service: Service) -> None:
        """InvalidInput (exit 2) unless a kind of the role has hot keys (activation keys) and each such kind's group
        a standby (KeysModel.refuse_via_standby on it)."""
        keys = [kind for kind, model in self.kinds.items() if model.fence_first]
        if not keys:
            raise InvalidInput(
                f"{service.name}: --via-standby hands the hot keys over to the standby and back: no "
                f"kind of its role ({', '.join(self.kinds)}) is of activation keys; deploy without it"
            )
        for kind in keys:
            self.kinds[kind].refuse_via_standby(group(service, kind))

    def plan_via_standby(self, service: Service, states: Mapping[str, NodeView], desired: Desired) -> ServicePlan:
        """As plan_change, each keys kind by its model's plan_via_standby (its holder's keys handed over and back)."""
        self.refuse_via_standby(service)
        return kind_by_kind(self, service, states, lambda model, mine, seen: (model.plan_via_standby if
                            model.fence_first else model.plan_change)(mine, seen, desired))  # fmt: skip

    def plan_promotion(self, service: Service, states: Mapping[str, NodeView], to: str | None = None,
                       fence: str = "restart", keep_old_stopped: bool = False) -> ServicePlan:  # fmt: skip
        """A planned promotion within one group: ``to``'s kind, else the one kind that has a standby; its model's
        plan_promotion on that group, its reason naming that kind and the kinds it leaves untouched. Unsafe (exit 4)
        when ``to``'s kind has no standby (every node serves) or no kind has one; InvalidInput (exit 2) for an
        unknown node."""
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
        plan = model.plan_promotion(mine, seen, to, fence, keep_old_stopped)
        others = "".join(f"; {other}: untouched" for other in self.kinds if other != kind)
        return dataclasses.replace(plan, service=service.name, reason=f"{kind}: {plan.reason}{others}")

    # -- carrying a plan out, through ``change`` (nodeops.deploy.ServiceDeploy) ------------------------------------
    def runner(self, change: Any) -> Applies:
        return GroupsRunner(self, change)

    def failure(self, change: Any, what: str, unsafe: bool = False) -> ChangeFailed:
        """A failure found outside a group's step (the change's own checks): ``what``, then what serves, said by the
        first kind with an active (its holder, its standby and every node it sees), else by the first kind."""
        kind = next((k for k, m in self.kinds.items() if m.has_standby), next(iter(self.kinds)))
        part = self.part(change, kind)
        return part.model.failure(part, what, unsafe)

    def end(self, change: Any, tolerated: Collection[str] = ()) -> dict:
        """Each group's end check (its model's, on its nodes), the results merged: ``serving`` from a kind whose
        nodes all serve, ``active`` from the one with an active."""
        result: dict = {}
        for kind in self.kinds:
            part = self.part(change, kind)
            result |= part.model.end(part, tolerated)
        return result

    # -- the read-only words, asked of each node's kind --------------------------------------------------------
    def holds(self, container: Container | None, serving: bool, failing: Sequence[str]) -> bool:
        """Whether a node seen so is the active of a kind that has one (``keys``: the hot label, which only a node
        of that kind carries). A ``lease`` kind beside others would count any node answering: read a node's own
        kind with is_active when the node is known."""
        return any(m.holds(container, serving, failing) for m in self.kinds.values() if m.has_standby)

    def now(self, active: Sequence[str], serving: Sequence[str]) -> dict:
        """The audit's ``now``: the one active (None unless exactly one), and every node that answers 200."""
        return {"active": active[0] if len(active) == 1 else None, "serving": list(serving)}

    def is_active(self, view: NodeView) -> bool:
        """Whether the node is the active of its kind, of a kind that has one (as holds: a node of a kind whose
        nodes all serve is never the active)."""
        model = self.for_kind(view.node.kind)
        return model.has_standby and model.is_active(view)

    def role_of(self, view: NodeView) -> str:
        """The node's word under its kind's model (Model.role_of)."""
        return self.for_kind(view.node.kind).role_of(view)

    def state_of(self, seen: Sequence[NodeView], mixed: str | None) -> str:
        """The worst of the groups' states (WORST_FIRST), each under its kind's model."""
        states = [model.state_of([s for s in seen if s.node.kind == kind], mixed)
                  for kind, model in self.kinds.items() if any(s.node.kind == kind for s in seen)]  # fmt: skip
        return min(states, key=WORST_FIRST.index, default="down")

    def standby_verdict(self, view: NodeView) -> tuple[str, str]:
        return self.for_kind(view.node.kind).standby_verdict(view)

    def running_on(self, seen: Iterable[NodeView], to: str | None) -> tuple[str, str] | None:
        """(version, config label) of what the service runs now: what each kind runs under its model (its holder's;
        every node's), when they agree (a kind with nothing running says nothing); None when none runs. Kinds on
        different ones (a deploy or rollback stopped between two kinds) have no one "what runs now": without ``to``,
        InvalidInput (exit 2) naming what each kind runs and the fix; with it, the first kind's."""
        seen = list(seen)
        ran = {kind: on for kind, model in self.kinds.items()
               if (on := model.running_on([s for s in seen if s.node.kind == kind], to)) is not None}  # fmt: skip
        if len(set(ran.values())) > 1 and to is None:
            each = ", ".join(f"its {kind} nodes run {version or '?'} config {config[:12] or '?'}"
                             for kind, (version, config) in ran.items())  # fmt: skip
            raise InvalidInput(f"{seen[0].node.service}: {each}: there is no one version to roll back from; name the "
                               "version every node goes to with --to VERSION")  # fmt: skip
        return next(iter(ran.values()), None)
