"""Activation ``all`` (AllModel): every node serves (relays); no standby, no lease, no handover. A change replaces one
node at a time, the nodes that answer nothing first, each awaited serving before the next; a plan that would stop a
node while no other serves is refused, never planned. Carried out by nodeops.run.rolling.AllRunner, which also says
what serves after a failure (AllServes)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from nodeops import program
from nodeops.activation.base import Applies, Model, refuse_unreachable
from nodeops.errors import InvalidInput, Unsafe
from nodeops.facts.view import NodeView
from nodeops.inventory import Service
from nodeops.plan import NOT_SERVING, Desired, LeaseFacts, ServicePlan, Step
from nodeops.run.end import EndState
from nodeops.run.rolling import AllRunner, AllServes
from nodeops.run.runner import ChangeFailed


class AllModel(Model):
    """Every node serves: none is the active, none a standby."""

    name = "all"
    has_standby = False
    every_node_serves = True
    lb_answers_from_active = False
    rollback_how = "every node, one at a time, each awaited serving, never all down"
    unseen_risk = "under activation all a node that cannot be seen might be the last one serving"

    def plan_change(self, service: Service, states: Mapping[str, NodeView], desired: Desired,
                    force: bool = False, lease: LeaseFacts | None = None) -> ServicePlan:  # noqa: ARG002 (lease's)  # fmt: skip
        """Every node to ``desired`` and answering its health path, one node at a time.

        A node is changed when it does not match ``desired``, answers nothing, or ``force``. Those answering nothing
        go first (they serve nobody), then the others; each replace is followed by await-serving. Refuses (Unsafe) an
        unreachable node, and a replace that would stop a node answering its health path while no other node serves
        (200): never every node down (a service of one serving node cannot change without an outage: refused)."""
        name = service.name
        refuse_unreachable(name, states, "every node of an activation all service is changed in turn")
        names = [n.name for n in service.nodes]
        stale = [n for n in names if force or not desired.matches(states[n].container, n) or not states[n].active]
        order = sorted(stale, key=lambda n: states[n].active)  # the silent first (stable: inventory order within)
        serving = {n for n in names if states[n].serving}
        steps: list[Step] = []
        for node in order:
            others = sorted(serving - {node})
            if states[node].active and not others:
                fix = "add a second node" if len(names) == 1 else "bring another node up first"
                raise Unsafe(f"{name}: replacing {node} would leave no node serving (activation all: every node "
                             f"serves, never all down); {fix} (see {program()} status)")  # fmt: skip
            detail = (
                f"rolling, {', '.join(others)} {'serves' if len(others) == 1 else 'serve'}" if others else NOT_SERVING
            )
            steps += [Step("replace", node, detail), Step("await-serving", node)]
            serving.add(node)  # awaited serving before the next step
        reason = "rolling, one node at a time, never all down" if steps else "up to date"
        return ServicePlan(name, tuple(steps), reason)

    def runner(self, change: Any) -> Applies:
        return AllRunner(change)

    def failure(self, change: Any, what: str, unsafe: bool = False) -> ChangeFailed:
        return AllServes(change).failure(what, unsafe)

    def end(self, change: Any, tolerated: Collection[str] = ()) -> dict:  # noqa: ARG002 (no active to tolerate)
        return EndState(change).verify_all()

    def role_of(self, view: NodeView) -> str:
        """serving (answers 200) or not serving (runs, answers otherwise or nothing), down, unknown."""
        if not view.reachable:
            return "unknown"
        if view.container is not None and view.container.running:
            return "serving" if view.serving else "not serving"
        return "down"

    def state_of(self, seen: Sequence[NodeView], mixed: str | None) -> str:
        """healthy (mixed) when every node serves, degraded when some do, down when none does, unknown when none is
        seen serving and a node could not be reached."""
        serving = sum(s.serving for s in seen)
        if serving == 0:
            return "down" if all(s.reachable for s in seen) else "unknown"
        return "degraded" if serving < len(seen) else "mixed" if mixed else "healthy"

    def now(self, active: Sequence[str], serving: Sequence[str]) -> dict:  # noqa: ARG002 (every node is active)
        """No one active; every node that answers 200, as ``serving``."""
        return {"active": None, "serving": list(serving)}

    def running_on(self, seen: Iterable[NodeView], to: str | None) -> tuple[str, str] | None:
        """What every running node runs: (version, config label), one for all; None when none runs. Nodes on
        different versions or configurations (a mixed service) have no one "what runs now" to roll back from: without
        ``to``, InvalidInput (exit 2) naming what each runs and the fix."""
        ran = {s.node.name: (s.container.version or "", s.container.label("config") or "")
               for s in seen if s.container is not None and s.container.running}  # fmt: skip
        if len(set(ran.values())) > 1 and to is None:
            each = ", ".join(f"{node} runs {version or '?'} config {config[:12] or '?'}"
                             for node, (version, config) in ran.items())  # fmt: skip
            service = next(s.node.service for s in seen)
            raise InvalidInput(f"{service}: its nodes run different versions or configurations ({each}): there is "
                               "no one version to roll back from; name the version every node goes to with --to "
                               "VERSION")  # fmt: skip
        return next(iter(ran.values()), None)
