"""The observer: one typed picture of a service's nodes (nodeops.facts.view.NodeView), built from facts.

An unreachable node is a fact to report, not an error: its view says why (``unreachable``). Read-only verbs
(status, check, verify, rollback's look) observe through an Observer and never build an executor; the executor
(nodeops.deploy.ServiceDeploy) observes through the same Observer before and while it acts.
"""

from __future__ import annotations

from nodeops.commands.node import container_name, sh
from nodeops.edges.ssh import CommandResult, Fleet, Link, execute
from nodeops.errors import OperationFailed
from nodeops.facts.container import Container, inspect, parse_inspect, served_port
from nodeops.facts.health import failing_checks
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service
from nodeops.roles import Role


class Observer:
    """Reads one service's nodes through the fleet (SSH through the bastion): each node's container and its reply to
    the role's health path. Keeps each node's open connection (``conns``), the port its container serves as last
    inspected (``ports``: served_port) and the body of its latest health reply (``answers``: fab check reads who
    answered from the very reply that made it the active)."""

    def __init__(self, fleet: Fleet, service: Service, role: Role) -> None:
        self.fleet = fleet
        self.service = service
        self.role = role
        self.name = container_name(service.name)
        self.conns: dict[str, Link] = {}
        self.ports: dict[str, int] = {}
        self.answers: dict[str, bytes] = {}

    def connect(self, node: Node) -> Link:
        """A new connection to ``node``, kept for the commands that follow; OperationFailed when it cannot be made."""
        return self.adopt(node.name, self.fleet.connect(node)[0])

    def adopt(self, node: str, conn: Link) -> Link:
        """Keep ``conn``, a connection to ``node`` its caller opened (verify's fan-out: Fleet.map), for the commands
        that follow, in place of any kept before; returns it."""
        self.conns[node] = conn
        return conn

    def run(self, node: str, command: str, timeout: float | None = None) -> CommandResult:
        """``command`` on ``node``'s connection, within ``timeout`` seconds (the inventory's ssh.command_timeout)."""
        return execute(self.conns[node], command, timeout=timeout or self.fleet.settings.command_timeout)

    def container(self, node: str, name: str | None = None) -> Container | None:
        """The container ``name`` (the service's, by default) on ``node``; None when there is none. Inspecting the
        service's container records the port it serves (``ports``), which health() probes."""
        res = self.run(node, sh(inspect(self.service.runtime, name or self.name)))
        found = parse_inspect(res.stdout) if res.exit_code == 0 else None
        if name in (None, self.name):
            self.ports[node] = served_port(found, self.role.port)
        return found

    def health(self, node: Node) -> tuple[bool, tuple[str, ...]]:
        """``node``'s reply to its health path: (200, the checks it says fail: failing_checks). Non-empty failing
        checks: it answers, so it holds the lease, unhealthy. The port probed is the one the node's container serves,
        as last inspected (``ports``), else the role's."""
        port = self.ports.get(node.name, self.role.port)
        reply = self.fleet.http_get(node.host, port, self.role.health, service=node.service)
        if reply is None:
            self.answers.pop(node.name, None)
            return False, ()
        self.answers[node.name] = reply[1]
        return reply[0] == 200, failing_checks(reply, self.role.hooks.failing_checks)

    def view(self, node: Node) -> NodeView:
        """``node`` as it is now, over a new connection; unreachable is said in the view, never raised."""
        try:
            self.connect(node)
        except OperationFailed as exc:
            return NodeView(node, None, False, unreachable=str(exc))
        return NodeView(node, self.container(node.name), *self.health(node))

    def views(self) -> dict[str, NodeView]:
        """Every node of the service, in inventory order (view)."""
        return {node.name: self.view(node) for node in self.service.nodes}
