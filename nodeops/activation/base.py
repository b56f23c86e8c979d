"""What every activation model answers (Model), and the planners' shared refusals. A model is chosen once from the
role (nodeops.activation.model_of) and asked, never tested by name, wherever the models differ: its planners, its
runner, what serves after a failure, its end check, and the read-only words of status, check, verify, the audit's
``now`` and rollback. Pure but for ``runner``, ``failure`` and ``end``, which act through the change they are given.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from nodeops import program
from nodeops.errors import InvalidInput, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Service
from nodeops.plan import Desired, LeaseFacts, ServicePlan
from nodeops.run.end import EndState
from nodeops.run.runner import ChangeFailed

FENCES = ("restart", "stop")  # how a planned keys promotion fences the old holder


class Applies(Protocol):
    """A model's runner (nodeops.run.runner.ServiceRunner, nodeops.run.rolling.AllRunner): carries out a plan."""

    def apply(self, plan: ServicePlan, then: bool = False) -> None: ...


class Model:
    """One activation model (role.yaml ``activation``; docs/roles.md#activation). Subclasses set the facts below and
    the planners; the views here hold for a model with one active and standbys (lease, keys)."""

    name = ""  # as role.yaml spells it
    silent_standby = False  # a standby answers nothing on its health path (lease: it waits for the lease)
    has_standby = True  # one node is the active, the others standbys (not under all: every node serves)
    every_node_serves = False  # every node answers its health path with 200: a started node is awaited serving
    lb_answers_from_active = True  # the load balancer's 200 comes from the active (the only node answering 200):
    # fab check compares the node its reply names (the role's lease_client) with the active's; False: any node's
    fence_first = False  # a planned promotion moves something that must never be on two nodes (keys)
    rotates = False  # fab rotate-secrets rolls the service onto a new secret (nodeops.rotate)
    holding = "serve"  # what only the active does, for a message: "after deploy 2 nodes serve, expected one"
    answering = ""  # what a node answering its health path has done beyond answering, for a message (lease: it
    # "holds the lease"; under keys and all a node answers whether or not it holds anything)
    rollback_how = ""  # how a rollback rolls the nodes, for its question (nodeops.rollback.question)
    unseen_risk = ""  # why a node that cannot be seen makes any change unsafe (nodeops.run.survey); "": it does not

    # -- planners ---------------------------------------------------------------------------------------------
    def plan_change(self, service: Service, states: Mapping[str, NodeView], desired: Desired,
                    force: bool = False, lease: LeaseFacts | None = None) -> ServicePlan:  # fmt: skip
        """The steps that bring ``service``'s nodes (``states``: name -> view, one per node) to ``desired``;
        ``force``: nodes that already match are replaced too (a rotation); ``lease``: the lease as read at the edge
        (plan.LeaseFacts; lease's planner refuses to start a node beside one that serves without holding it). Unsafe
        (exit 4) when the picture allows no safe plan."""
        raise NotImplementedError

    def plan_promotion(self, service: Service, states: Mapping[str, NodeView], to: str | None = None,
                       fence: str = "restart", keep_old_stopped: bool = False) -> ServicePlan:  # fmt: skip
        """A planned promotion of ``to`` (default: the node that is not active). InvalidInput (exit 2) for an unknown
        ``fence``; Unsafe (exit 4) for a model without a standby, a single node, or what the model's own planner
        (``promotion``) refuses."""
        if fence not in FENCES:
            raise InvalidInput(f"{service.name}: unknown fence {fence!r}: expected {' or '.join(FENCES)}")
        self.refuse_promotion(service.name)
        if len(service.nodes) < 2:
            raise Unsafe(f"{service.name}: a single node has no standby to promote")
        return self.promotion(service, states, to, fence, keep_old_stopped)

    def refuse_via_standby(self, service: Service) -> None:
        """InvalidInput (exit 2) unless ``deploy --via-standby`` applies to ``service``: a model with hot keys to hand
        over (keys) and a standby to hand them to. Pure: the inventory and the role decide, before any host."""
        raise InvalidInput(
            f"{service.name}: --via-standby hands the hot keys over to the standby and back: "
            f"activation {self.name} has no hot keys (it is for activation keys); deploy without it"
        )

    def plan_via_standby(self, service: Service, states: Mapping[str, NodeView], desired: Desired) -> ServicePlan:
        """``deploy --via-standby``'s plan (keys.KeysModel.plan_via_standby); here the refusal."""
        self.refuse_via_standby(service)
        return self.plan_change(service, states, desired)

    def refuse_promotion(self, service: str) -> None:
        """Unsafe when the model has no standby to promote (all); nothing otherwise."""
        if not self.has_standby:
            raise Unsafe(f"{service}: activation {self.name} has no standby to promote: every node serves")

    def promotion(self, service: Service, states: Mapping[str, NodeView], to: str | None, fence: str,
                  keep_old_stopped: bool) -> ServicePlan:  # fmt: skip
        raise NotImplementedError

    def groups(self, service: Service, states: Mapping[str, NodeView]) -> list[tuple[str, Model, Service, dict]]:
        """The service's nodes as the groups its model judges apart: (kind, model, service, those nodes' views);
        here one group, kind "", the whole service under this model (groups.Groups: one per kind of node)."""
        return [("", self, service, dict(states))]

    # -- carrying a change out, through ``change`` (nodeops.deploy.ServiceDeploy) -----------------------------
    def runner(self, change: Any) -> Applies:
        raise NotImplementedError

    def failure(self, change: Any, what: str, unsafe: bool = False) -> ChangeFailed:
        """The error that ends a failed change of ``change``'s service: ``what``, then what serves now."""
        raise NotImplementedError

    def end(self, change: Any, tolerated: Collection[str] = ()) -> dict:
        """The end state checked (nodeops.run.end.EndState): who is active, for the report."""
        return EndState(change).verify(tolerated, self.holds, self.holding)

    def for_kind(self, kind: str | None) -> Model:  # noqa: ARG002
        """The model a node of ``kind`` (inventory ``kind:``, None without) is judged under: this one, unless the
        role has kinds (activation.groups.Groups: the kind's own)."""
        return self

    # -- who is active: the fact, and the words every read-only view uses -------------------------------------
    def holds(self, container: Container | None, serving: bool, failing: Sequence[str]) -> bool:  # noqa: ARG002
        """Whether a node seen so (its service container, its health path answering 200, the checks it names
        failing otherwise) is an active. Default: it answers its health path at all, 200 or not."""
        return serving or bool(failing)

    def is_active(self, view: NodeView) -> bool:
        return self.holds(view.container, view.serving, view.failing)

    def role_of(self, view: NodeView) -> str:
        """A node's word in ``fab status`` (docs/status.schema.json): active, standby (runs, not active), down (no
        running container), unknown (unreachable)."""
        if not view.reachable:
            return "unknown"
        if self.is_active(view):
            return "active"
        return "standby" if view.container is not None and view.container.running else "down"

    def state_of(self, seen: Sequence[NodeView], mixed: str | None) -> str:
        """The service's state in ``fab status``: unsafe (more than one active), unknown (none seen active, and a node
        that could not be reached may be it), down (none), degraded (the active answers unhealthy, or a standby is
        missing or unknown), mixed (as healthy, but ``mixed``: the running nodes' inputs differ,
        nodeops.status.mixed_inputs), healthy."""
        roles = [self.role_of(s) for s in seen]
        active = roles.count("active")
        if active > 1:
            return "unsafe"
        if active == 0:
            return "unknown" if "unknown" in roles else "down"
        if not all(s.serving for s in seen if self.is_active(s)) or roles.count("standby") != len(roles) - 1:
            return "degraded"
        return "mixed" if mixed else "healthy"

    def standby_verdict(self, view: NodeView) -> tuple[str, str]:
        """``fab check``'s ``standby`` verdict of a node other than the active."""
        role = self.role_of(view)
        if role == "standby":
            return "pass", self.standby_note
        if role == "active":
            return "fail", self.as_well
        if role == "unknown":
            return "fail", "unreachable through the bastion"
        return "fail", f"container {view.container.status}, not running" if view.container else "no container"

    standby_note = "running, not serving: waits for the lease"  # a standby as it should be, in check's words
    as_well = "serves as well: two actives"  # a second active, in check's words
    # fab check's ``active`` verdict in the model's words (nodeops.check.check_active): what only the active is, the
    # one active serving, none, several ({path}: the role's health path; {node}, {n}, {nodes}: who; {reached}: "" or
    # " reached", when a node could not be asked)
    active_is = "holds the lease"
    one_active = "{node} serves {path}"
    no_active = "no node{reached} serves {path}"
    many_active = "{n} nodes serve {path} ({nodes}): expected exactly one"

    def now(self, active: Sequence[str], serving: Sequence[str]) -> dict:  # noqa: ARG002 (all: AllModel.now)
        """The audit's ``now`` (records.Now) beyond its nodes: ``active``: the nodes that hold; ``serving``: those
        that answer 200."""
        return {"active": active[0] if len(active) == 1 else None}

    def running_on(self, seen: Iterable[NodeView], to: str | None) -> tuple[str, str] | None:  # noqa: ARG002
        """(version, config label) of what the service runs now, as fab rollback compares records: the one active's
        container; None unless exactly one node is active. ``to``: rollback's ``--to`` (unused here)."""
        active = [s.container for s in seen if self.is_active(s)]
        c = active[0] if len(active) == 1 else None
        return (c.version or "", c.label("config") or "") if c else None


def refuse_unreachable(service: str, states: Mapping[str, NodeView], why: str) -> None:
    """Unsafe (exit 4) naming the nodes of ``states`` that could not be reached, saying ``why`` that matters."""
    lost = [s.node.name for s in states.values() if not s.reachable]
    if lost:
        raise Unsafe(f"{service}: {', '.join(lost)} cannot be reached: {why}; resolve that first "
                     f"(see {program()} status)")  # fmt: skip


def target(name: str, service: Service, active: str | None, to: str | None) -> str:
    """The node a promotion promotes: ``to``, else the first node that is not ``active``. InvalidInput for an unknown
    node; Unsafe when ``to`` is the active already."""
    if to is None:
        return next(n.name for n in service.nodes if n.name != active)
    if to not in {n.name for n in service.nodes}:
        raise InvalidInput(f"{name}: no node {to!r} (nodes: {', '.join(n.name for n in service.nodes)})")
    if to == active:
        raise Unsafe(f"{name}: {to} is the active already: nothing to promote")
    return to
