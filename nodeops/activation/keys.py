"""Activation ``keys`` (KeysModel): every node runs and answers its health path; only the active holds the role's
hot files (the keys). The holder is the node whose running container carries the ``io.nodeops.hot=true`` label
(NodeView.hot). A change never moves the keys: the standby is replaced without them, the active in place with them
(unless ``deploy --via-standby``: handed over to the standby and back, plan_via_standby). A planned promotion is
fence-first: the holder restarted without its hot files (or stopped), seen fenced, and only then the new one started
with them. Two holders seen, or a node that cannot be seen, is refused (it might hold them). Carried out by
nodeops.run.via (a change, through ServiceRunner, and --via-standby's promotions) and nodeops.run.fence (a
promotion, and what holds the keys after a failure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from nodeops import program
from nodeops.activation.base import Applies, Model, refuse_unreachable, target
from nodeops.errors import InvalidInput, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Service
from nodeops.plan import IN_PLACE, Desired, LeaseFacts, ServicePlan, Step
from nodeops.run import fence as fencing
from nodeops.run.runner import ChangeFailed, ServiceRunner


def holders(name: str, states: Mapping[str, NodeView]) -> list[NodeView]:
    """The nodes of ``states`` that hold the hot keys: none or one; Unsafe (exit 4) for two or more."""
    found = [s for s in states.values() if s.hot]
    if len(found) > 1:
        nodes = ", ".join(s.node.name for s in found)
        raise Unsafe(f"{name}: {len(found)} nodes hold the hot keys ({nodes}); only one may: stop all but one "
                     f"before anything else (see {program()} status)")  # fmt: skip
    return found


def refuse_lost(name: str, states: Mapping[str, NodeView]) -> None:
    """Unsafe (exit 4) when a node of ``states`` cannot be reached, naming its part: the standby to be promoted when
    a node seen holds the keys (the remedy: make it reachable; --force is for a lost holder), else a node that might
    hold them (a planned promotion must see the holder fenced)."""
    lost = [s.node.name for s in states.values() if not s.reachable]
    seen_holder = next((s.node.name for s in states.values() if s.hot), None)
    if lost and seen_holder is not None:
        raise Unsafe(f"{name}: {', '.join(lost)} cannot be reached: it is the standby to be promoted ({seen_holder} "
                     "holds the hot keys), and the keys never go to a node that cannot be seen; make it reachable "
                     "again, then promote (--force is for a holder that cannot be reached, not a standby)")  # fmt: skip
    refuse_unreachable(name, states, "it might hold the hot keys, and a planned promotion must see the holder fenced "
                       "(--force cannot fence it either)")  # fmt: skip


STANDBY_FIRST = "standby first, without the hot keys"


def fence_first(old: str | None, new: str, fence: str) -> tuple[Step, ...]:
    """A planned promotion's steps from ``old`` (None: no node holds the keys) to ``new``: the fence (``restart``:
    ``old`` replaced without its hot files; ``stop``), await-fenced, ``new`` replaced with the hot files and awaited
    serving, a restarted ``old`` awaited serving last, as the standby. Pure."""
    steps: list[Step] = []
    if old is not None:
        fenced = (Step("replace", old, "fence: restarted without the hot keys") if fence == "restart"
                  else Step("stop", old, "fence: stopped"))  # fmt: skip
        steps += [fenced, Step("await-fenced", old)]
    steps += [Step("replace", new, "promoted, with the hot keys", hot=True), Step("await-serving", new)]
    if old is not None and fence == "restart":
        steps.append(Step("await-serving", old))
    return tuple(steps)


class KeysModel(Model):
    """The hot keys decide: the node whose running container was started with them is the active."""

    name = "keys"
    every_node_serves = True
    lb_answers_from_active = False  # every node answers 200: the load balancer picks either, holder or not
    fence_first = True
    holding = "hold the hot keys"
    rollback_how = "standby first, then the active in place with its hot keys, no handover"
    unseen_risk = "under activation keys a node that cannot be seen might hold the hot keys"
    standby_note = "running without the hot keys"
    as_well = "holds the hot keys as well: two holders"
    active_is = "holds the hot keys"
    one_active = "{node} holds the hot keys and serves {path}"
    no_active = "no node{reached} holds the hot keys"
    many_active = "{n} nodes hold the hot keys ({nodes}): expected exactly one"

    def __init__(self, fresh: str = "active") -> None:
        """``fresh``: which node a fresh start (no container runs) brings up first: ``active`` (the preferred active
        with the hot keys, then the standby without them; a role's one ``activation: keys``, as it always did) or
        ``standby`` (the standby without them, then the preferred active with them; a keys kind of a role with
        kinds, nodeops.activation.KIND_MODELS).

        Why ``standby`` first (issue 16: a pool's relays, then its standby, then its producer): the hot keys go
        out last, to a service that already has a running keyless spare. A standby that fails to start stops the
        run before any hot file is written anywhere: no node holds the keys, as before the run, rather than a
        holder left forging with no spare to promote (and a failed run to explain). A holder that fails to start
        (a key its node refuses, a bad image) leaves the standby up, one ``promote-standby`` from serving with the
        keys, rather than nothing running. The image and the files are proven on the keyless node first, and a
        fresh start takes the nodes in the order an upgrade does (standby, then holder). A fresh start costs no
        outage either way (nothing served before)."""
        self.fresh = fresh

    def plan_change(self, service: Service, states: Mapping[str, NodeView], desired: Desired,
                    force: bool = False, lease: LeaseFacts | None = None) -> ServicePlan:  # noqa: ARG002 (lease's)  # fmt: skip
        """Every node to ``desired``; the hot keys stay where they are (moving them is a promotion).

        The standby (no keys) first, then the holder in place, with its keys; each awaited serving. A fresh service
        starts the preferred active with the keys, then the standby without (``fresh`` ``standby``: the standby,
        then the preferred active). Refuses (Unsafe): a node that cannot be reached (it might hold the keys), two
        holders, and running containers of which none holds the keys (choosing one is a promotion)."""
        name = service.name
        refuse_unreachable(name, states, "it might hold the hot keys")
        held = holders(name, states)
        running = [s for s in states.values() if s.container and s.container.running]

        def stale(node: str, hot: bool) -> bool:
            return force or not desired.matches(states[node].container, node) or states[node].hot != hot

        if len(service.nodes) == 1:
            only = service.nodes[0].name
            if not stale(only, True):
                return ServicePlan(name, (), "up to date")
            return ServicePlan(name, (Step("replace", only, "single node, with the hot keys", hot=True),
                                      Step("await-serving", only)), "single node out of date")  # fmt: skip
        if not running:
            active, standby = service.active_preferred.name, service.standby_preferred.name
            starts = {"active": (Step("replace", active, "preferred active, with the hot keys", hot=True),
                                 Step("await-serving", active)),
                      "standby": (Step("replace", standby, "standby, without the hot keys"),
                                  Step("await-serving", standby))}  # fmt: skip
            then = "standby" if self.fresh == "active" else "active"
            first = "preferred active" if self.fresh == "active" else "standby"
            return ServicePlan(name, starts[self.fresh] + starts[then],
                               f"no container runs: fresh start, {first} first")  # fmt: skip
        if not held:
            nodes = ", ".join(s.node.name for s in running)
            raise Unsafe(f"{name}: containers run on {nodes} but none holds the hot keys; choose the active first "
                         f"({program()} promote-standby)")  # fmt: skip
        active = held[0].node.name
        standby = next(n.name for n in service.nodes if n.name != active)
        steps: list[Step] = []
        if stale(standby, False):
            steps += [Step("replace", standby, STANDBY_FIRST), Step("await-serving", standby)]
        if stale(active, True):
            steps += [Step("replace", active, IN_PLACE, hot=True),
                      Step("await-serving", active)]  # fmt: skip
        reason = "standby first, the keys stay on the active" if steps else "up to date"
        return ServicePlan(name, tuple(steps), reason)

    def promotion(self, service: Service, states: Mapping[str, NodeView], to: str | None, fence: str,
                  keep_old_stopped: bool) -> ServicePlan:  # noqa: ARG002 (the lease model's)  # fmt: skip
        """Fence first: the holder replaced without its hot files (``fence`` ``restart``) or stopped (``stop``),
        await-fenced (seen holding nothing), then ``to`` replaced with the hot files and awaited serving; a restarted
        old holder is awaited serving last, as the standby. Unsafe: a node unreachable, two holders, ``to`` already
        the holder or not running."""
        name = service.name
        refuse_lost(name, states)
        held = holders(name, states)
        old = held[0].node.name if held else None
        if to is None and old is None:  # no holder: the node whose container runs gets the keys (the first, if any)
            to = next((n.name for n in service.nodes
                       if states[n.name].container and states[n.name].container.running), to)  # fmt: skip
        new = target(name, service, old, to)
        if not (states[new].container and states[new].container.running):
            raise Unsafe(f"{name}: {new} does not run: deploy it as the standby before promoting it")
        how = f"fence {old} first, then the keys" if old else "no node holds the keys, nothing to fence"
        return ServicePlan(name, fence_first(old, new, fence), f"planned promotion of {new}: {how}")

    def refuse_via_standby(self, service: Service) -> None:
        """InvalidInput (exit 2) when ``service`` has no standby to hand the keys to (one node)."""
        if len(service.nodes) < 2:
            raise InvalidInput(f"{service.name}: --via-standby: {service.nodes[0].name} has no standby to hand "
                               "the hot keys to (one node); deploy without it (the holder is restarted in "
                               "place)")  # fmt: skip

    def plan_via_standby(self, service: Service, states: Mapping[str, NodeView], desired: Desired) -> ServicePlan:
        """``fab deploy --via-standby``: plan_change's plan, but a holder whose inputs change is not restarted in place
        with its keys: the standby upgraded first (as plan_change does), the keys handed over to it as a planned
        promotion hands them (fence_first, restart fence: its steps' ``part`` "handover"), the old holder upgraded as
        the standby, and the keys handed back to it (``part`` "hand back"), so the keys end where they were. The
        plan_change plan itself when the holder stays as it is (nothing to hand over: its inputs match, or no node
        holds the keys). InvalidInput for one node (refuse_via_standby); plan_change's refusals. Pure."""
        self.refuse_via_standby(service)
        plan = self.plan_change(service, states, desired)
        at = next((i for i, s in enumerate(plan.steps) if s.hot and states[s.node].hot), None)
        if at is None:
            return plan
        old = plan.steps[at].node
        new = next(n.name for n in service.nodes if n.name != old)
        over = [dataclasses.replace(s, part="handover", to=new) for s in fence_first(old, new, "restart")]
        back = [dataclasses.replace(s, part="hand back", to=old) for s in fence_first(new, old, "restart")]
        upgrade = [Step("replace", old, STANDBY_FIRST), Step("await-serving", old)]
        reason = f"standby first, then the hot keys handed over to {new} and back to {old} (--via-standby)"
        return ServicePlan(service.name, (*plan.steps[:at], *over, *upgrade, *back), reason)

    def runner(self, change: Any) -> Applies:
        return ServiceRunner(change)  # a --via-standby plan's promotions: nodeops.run.via, through it

    def failure(self, change: Any, what: str, unsafe: bool = False) -> ChangeFailed:
        return fencing.failure(change, what, unsafe)

    def holds(self, container: Container | None, serving: bool, failing: Sequence[str]) -> bool:  # noqa: ARG002
        """The node's running container carries the hot label (Container.hot), whatever it answers."""
        return container is not None and container.hot
