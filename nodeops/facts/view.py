"""One node as observed (NodeView): the typed picture every verb reads, built by nodeops.facts.observe. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from nodeops.facts.container import Container
from nodeops.inventory import Node


@dataclass(frozen=True)
class NodeView:
    """One node as observed: its container (None: none, or not reached), whether it answers its role's health
    path with 200 (``serving``), the checks it names failing when it answers otherwise (``failing``:
    nodeops.facts.health.failing_checks), and, for a node that could not be reached, why (``unreachable``: the
    connection's one-line error, e.g. ``cl-b (10.230.0.11:22): cannot connect after 1 attempt(s): Timeout opening
    channel``; None when it was reached)."""

    node: Node
    container: Container | None
    serving: bool  # answers its health path with 200
    failing: tuple[str, ...] = ()  # answers it, not 200: it holds the lease, unhealthy
    unreachable: str | None = None

    @property
    def reachable(self) -> bool:
        return self.unreachable is None

    @property
    def active(self) -> bool:
        """Holds the lease: it answers its health path at all (200 or not; a Chainlink node opens its port only once
        it holds the database lease)."""
        return self.serving or bool(self.failing)

    @property
    def hot(self) -> bool:
        """Holds the hot keys (activation ``keys``): its container runs and was started with the role's hot files, as
        its ``io.nodeops.hot`` label (``true``) records; the files themselves are shredded once read, so the label the
        container was created with is the fact. A stopped container holds nothing (its keys were only in memory)."""
        return self.container is not None and self.container.hot

    def describe(self) -> str:
        """``cl1-b: running, not serving``, ``cl1-a: unreachable``, ``cl1-a: active, unhealthy (failing: X)``..."""
        if not self.reachable:
            return f"{self.node.name}: unreachable"
        if self.container is None:
            return f"{self.node.name}: no container"
        if self.failing:
            return str(unhealthy_note(self))
        state = "serving" if self.serving else ("running, not serving" if self.container.running else "")
        return f"{self.node.name}: {state or f'container {self.container.status}'}"


def unhealthy_note(state: NodeView) -> str | None:
    """``cl1-a: active, unhealthy (failing: X, Y)`` for an active that answers, not 200; None when it is healthy."""
    if not state.failing:
        return None
    return f"{state.node.name}: active, unhealthy (failing: {', '.join(state.failing)})"
