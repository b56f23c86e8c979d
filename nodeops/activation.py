"""Activation models: how a role says which of a service's nodes is active, and what a change or a promotion plans for
each (role.yaml ``activation``; docs/roles.md#activation). Pure: (model, service, node views) -> steps.

- ``lease``: every node runs; the one holding the role's lease answers its health path, the others wait silently. A
  change rolls the standby first, then hands over once (nodeops.plan.plan_service, unchanged); a planned promotion is
  one handover.
- ``keys``: every node runs and answers its health path; only the active holds the role's hot files (the keys). The
  holder is the node whose running container carries the ``io.nodeops.hot=true`` label (NodeView.hot). A change never
  moves the keys: the standby is replaced without them, the active in place with them. A planned promotion is
  fence-first: the holder restarted without its hot files (or stopped), seen fenced, and only then the new one started
  with them. Two holders seen, or a node that cannot be seen, is refused (it might hold them).
- ``all``: every node serves (relays); no standby, no lease, no handover. A change replaces one node at a time, the
  nodes that answer nothing first, each awaited serving before the next; a plan that would stop a node while no other
  serves is refused, never planned.

The engine knows these three models and nothing of any chain.
"""

from __future__ import annotations

from collections.abc import Mapping

from nodeops import program
from nodeops.errors import InvalidInput, Unsafe
from nodeops.facts.view import NodeView
from nodeops.inventory import Service
from nodeops.plan import Desired, ServicePlan, Step, plan_service, the_active

FENCES = ("restart", "stop")  # how a planned keys promotion fences the old holder
NOT_SERVING = "not serving"  # plan_all's detail of a replace planned while no other node serves (nodeops.run.rolling)


def plan_change(
    activation: str, service: Service, states: Mapping[str, NodeView], desired: Desired, force: bool = False
) -> ServicePlan:
    """The steps that bring ``service``'s nodes (``states``: name -> view, one per node) to ``desired`` under the
    role's ``activation`` (lease, keys or all). ``force``: nodes that already match are replaced too (a rotation).
    Raises Unsafe (exit 4) when the picture does not allow a safe plan (see the model's planner)."""
    if activation == "all":
        return plan_all(service, states, desired, force)
    if activation == "keys":
        return plan_keys(service, states, desired, force)
    return plan_service(service, states, desired, force)


def _refuse_unreachable(service: str, states: Mapping[str, NodeView], why: str) -> None:
    lost = [s.node.name for s in states.values() if not s.reachable]
    if lost:
        raise Unsafe(f"{service}: {', '.join(lost)} cannot be reached: {why}; resolve that first "
                     f"(see {program()} status)")  # fmt: skip


def plan_all(service: Service, states: Mapping[str, NodeView], desired: Desired, force: bool = False) -> ServicePlan:
    """Activation ``all``: every node to ``desired`` and answering its health path, one node at a time.

    A node is changed when it does not match ``desired``, answers nothing, or ``force``. Those answering nothing
    go first (they serve nobody), then the others; each replace is followed by await-serving. Refuses (Unsafe) an
    unreachable node, and a replace that would stop a node answering its health path while no other node serves
    (200): never every node down (a service of one serving node cannot change without an outage: refused)."""
    name = service.name
    _refuse_unreachable(name, states, "every node of an activation all service is changed in turn")
    names = [n.name for n in service.nodes]
    stale = [n for n in names if force or not desired.matches(states[n].container) or not states[n].active]
    order = sorted(stale, key=lambda n: states[n].active)  # the silent first (stable: inventory order within)
    serving = {n for n in names if states[n].serving}
    steps: list[Step] = []
    for node in order:
        others = sorted(serving - {node})
        if states[node].active and not others:
            fix = "add a second node" if len(names) == 1 else "bring another node up first"
            raise Unsafe(f"{name}: replacing {node} would leave no node serving (activation all: every node serves, "
                         f"never all down); {fix} (see {program()} status)")  # fmt: skip
        detail = f"rolling, {', '.join(others)} serve" if others else NOT_SERVING
        steps += [Step("replace", node, detail), Step("await-serving", node)]
        serving.add(node)  # awaited serving before the next step
    reason = "rolling, one node at a time, never all down" if steps else "up to date"
    return ServicePlan(name, tuple(steps), reason)


def _holders(name: str, states: Mapping[str, NodeView]) -> list[NodeView]:
    holders = [s for s in states.values() if s.hot]
    if len(holders) > 1:
        nodes = ", ".join(s.node.name for s in holders)
        raise Unsafe(f"{name}: {len(holders)} nodes hold the hot keys ({nodes}); only one may: stop all but one "
                     f"before anything else (see {program()} status)")  # fmt: skip
    return holders


def plan_keys(service: Service, states: Mapping[str, NodeView], desired: Desired, force: bool = False) -> ServicePlan:
    """Activation ``keys``: every node to ``desired``; the hot keys stay where they are (moving them is a promotion).

    The standby (no keys) first, then the holder in place, with its keys; each awaited serving. A fresh service
    starts the preferred active with the keys, then the standby without. Refuses (Unsafe): a node that cannot be
    reached (it might hold the keys), two holders, and running containers of which none holds the keys (choosing
    one is a promotion)."""
    name = service.name
    _refuse_unreachable(name, states, "it might hold the hot keys")
    holders = _holders(name, states)
    running = [s for s in states.values() if s.container and s.container.running]

    def stale(node: str, hot: bool) -> bool:
        return force or not desired.matches(states[node].container) or states[node].hot != hot

    if len(service.nodes) == 1:
        only = service.nodes[0].name
        if not stale(only, True):
            return ServicePlan(name, (), "up to date", "keys")
        return ServicePlan(name, (Step("replace", only, "single node, with the hot keys", hot=True),
                                  Step("await-serving", only)), "single node out of date", "keys")  # fmt: skip
    if not running:
        active, standby = service.active_preferred.name, service.standby_preferred.name
        return ServicePlan(name, (
            Step("replace", active, "preferred active, with the hot keys", hot=True),
            Step("await-serving", active),
            Step("replace", standby, "standby, without the hot keys"),
            Step("await-serving", standby),
        ), "no container runs: fresh start, preferred active first", "keys")  # fmt: skip
    if not holders:
        nodes = ", ".join(s.node.name for s in running)
        raise Unsafe(f"{name}: containers run on {nodes} but none holds the hot keys; choose the active first "
                     f"({program()} promote-standby)")  # fmt: skip
    active = holders[0].node.name
    standby = next(n.name for n in service.nodes if n.name != active)
    steps: list[Step] = []
    if stale(standby, False):
        steps += [Step("replace", standby, "standby first, without the hot keys"), Step("await-serving", standby)]
    if stale(active, True):
        steps += [Step("replace", active, "the active in place, with the hot keys (no handover)", hot=True),
                  Step("await-serving", active)]  # fmt: skip
    reason = "standby first, the keys stay on the active" if steps else "up to date"
    return ServicePlan(name, tuple(steps), reason, "keys")


def plan_promotion(
    activation: str,
    service: Service,
    states: Mapping[str, NodeView],
    to: str | None = None,
    fence: str = "restart",
    keep_old_stopped: bool = False,
) -> ServicePlan:
    """A planned promotion of ``to`` (default: the node that is not active) under ``activation``.

    ``lease``: one handover from the active (nodeops.plan.the_active), then the old active started again on its own
    inputs and awaited waiting as the standby (``start-again``; ``keep-stopped`` with ``keep_old_stopped``: it stays
    stopped, the pair has no standby), and last the new active's lease files shredded (``shred``): the old active
    comes back first, so that were the new one cut off now the pair's other node is up to take over. ``keys``: fence
    first: the holder replaced without its hot files (``fence`` ``restart``) or stopped (``stop``), await-fenced
    (seen holding nothing), then ``to`` replaced with the hot files and awaited serving; a restarted old holder is
    awaited serving last, as the standby. ``all``: refused, there is no standby. Raises Unsafe (exit 4) when the
    picture allows no safe promotion (a node unreachable under keys, two holders, ``to`` already active or not
    running, a single node), and InvalidInput (exit 2) for an unknown ``fence``."""
    name = service.name
    if fence not in FENCES:
        raise InvalidInput(f"{name}: unknown fence {fence!r}: expected {' or '.join(FENCES)}")
    if activation == "all":
        raise Unsafe(f"{name}: activation all has no standby to promote: every node serves")
    if len(service.nodes) < 2:
        raise Unsafe(f"{name}: a single node has no standby to promote")
    if activation != "keys":
        old = the_active(states.values(), name, "a planned promotion hands over from the one").node.name
        new = _target(name, service, old, to)
        after = Step("keep-stopped", old, "--keep-old-stopped") if keep_old_stopped else Step("start-again", old)
        steps = (Step("handover", old, to=new), after, Step("shred", new, "lease"))
        return ServicePlan(name, steps, f"planned promotion of {new}: one handover")
    _refuse_unreachable(name, states, "a planned promotion must see the holder fenced (the old one lost: --force)")
    holders = _holders(name, states)
    old = holders[0].node.name if holders else None
    if to is None and old is None:  # no holder: the node whose container runs gets the keys (the first, if several)
        to = next((n.name for n in service.nodes if states[n.name].container and states[n.name].container.running), to)
    new = _target(name, service, old, to)
    if not (states[new].container and states[new].container.running):
        raise Unsafe(f"{name}: {new} does not run: deploy it as the standby before promoting it")
    steps: list[Step] = []
    if old is not None:
        fenced = (Step("replace", old, "fence: restarted without the hot keys") if fence == "restart"
                  else Step("stop", old, "fence: stopped"))  # fmt: skip
        steps += [fenced, Step("await-fenced", old)]
    steps += [Step("replace", new, "promoted, with the hot keys", hot=True), Step("await-serving", new)]
    if old is not None and fence == "restart":
        steps.append(Step("await-serving", old))
    return ServicePlan(name, tuple(steps), f"planned promotion of {new}: fence first, then the keys", "keys")


def _target(name: str, service: Service, active: str | None, to: str | None) -> str:
    if to is None:
        return next(n.name for n in service.nodes if n.name != active)
    if to not in {n.name for n in service.nodes}:
        raise InvalidInput(f"{name}: no node {to!r} (nodes: {', '.join(n.name for n in service.nodes)})")
    if to == active:
        raise Unsafe(f"{name}: {to} is the active already: nothing to promote")
    return to
