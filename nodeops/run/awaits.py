"""What a change waits for on its pair: a node serving, a node waiting for the lease as the standby (with the
evidence that it does), the service answering (through its load balancer when it has one).

Every wait is bounded (the timeouts below, seconds) and polls (POLL) what the change observes: its nodes' health
replies and containers (the change's Observer), the lease row (nodeops.lease.LeaseView) and the container's log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from nodeops.edges import http
from nodeops.errors import OperationFailed
from nodeops.facts.container import Container, connected_to, socket_table
from nodeops.inventory import Node
from nodeops.lease import LeaseView
from nodeops.plan import standby_evidence

SERVE_TIMEOUT = 120.0  # a node's first boot migrates its database
WAIT_TIMEOUT = 60.0
LB_TIMEOUT = 15.0
STANDBY_STABLE = 2.0  # a standby must stay up, not serving, this long
UNHEALTHY_GRACE = 20.0  # a node that took the lease may answer 503 this long while its checks come up
POLL = 0.2


class Awaits:
    """The waits of ``change`` (nodeops.deploy.ServiceDeploy: its service, job, fleet, health, inspect, say,
    last_log, waiting_logged and the bodies of its nodes' latest health replies, ``answers``)."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def await_serving(self, node: Node, timeout: float = SERVE_TIMEOUT, accept: Collection[str] = ()) -> float:
        """Seconds until ``node`` answers 200; OperationFailed if its container stops or ``timeout`` passes.

        A node that answers unhealthy (it took the lease) for UNHEALTHY_GRACE seconds is accepted if every
        check it fails is in ``accept`` (those the active it replaces failed: the pair is no worse than
        before), and fails the wait at once otherwise."""
        run = self.change
        started, sick_since = time.monotonic(), None
        while not (found := run.health(node))[0]:
            sick_since = (sick_since or time.monotonic()) if found[1] else None
            if sick_since is not None and time.monotonic() - sick_since >= UNHEALTHY_GRACE:
                failing = ", ".join(found[1])
                done = run.model.answering  # what answering means under the role's model ("holds the lease")
                if set(found[1]) <= set(accept):
                    said = f"{done}, unhealthy as" if done else "answers unhealthy, as"
                    run.say(node.name, f"{said} the active it replaced (failing: {failing})", failing=list(found[1]))
                    break
                raise OperationFailed(
                    f"{run.service.name} {node.name}: {f'{done} but ' if done else ''}answers unhealthy after "
                    f"{UNHEALTHY_GRACE:g}s (failing: {failing}); {run.last_log(node.name)}"
                )
            c = run.inspect(node.name)
            if c is None or not c.running or time.monotonic() - started > timeout:
                state = f"container {c.status} (exit {c.exit_code})" if c else "no container"
                waited = time.monotonic() - started
                raise OperationFailed(
                    f"{run.service.name} {node.name}: not serving {run.job.role.health} after {waited:.0f}s: "
                    f"{state}; {run.last_log(node.name)}"
                )
            time.sleep(POLL)
        return time.monotonic() - started

    def await_waiting(self, node: Node, job: Any = None) -> str:
        """Running, not answering its health path, for STANDBY_STABLE seconds in a row, and shown to wait for the
        lease (waiting_evidence: the lease held by the other node), within WAIT_TIMEOUT; returns the evidence.
        ``job``: the inputs the node runs on (a nodeops.job.Job; this run's by default), whose credentials read
        the lease. OperationFailed when its container stops, it answers (it took the lease) or the time passes."""
        run = self.change
        started, stable_since, why = time.monotonic(), None, "not yet running stably"
        with LeaseView(run.fleet, job or run.job) as lease:
            while True:
                c = run.inspect(node.name)
                serving = any(run.health(node))  # answers at all, 200 or not: it holds the lease
                late = time.monotonic() - started > WAIT_TIMEOUT
                if c is None or not c.running or serving or late:
                    late_why = f"after {WAIT_TIMEOUT:g}s, {why}"
                    alone = serving and self.others_silent(node)
                    what = ("it took the lease: no other node answers" if alone else "serves: two actives?" if serving
                            else "no container" if c is None else f"container {c.status}" if not c.running
                            else late_why)  # fmt: skip
                    raise OperationFailed(f"{run.service.name} {node.name}: not a waiting standby ({what}); "
                                          f"{run.last_log(node.name)}")  # fmt: skip
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= STANDBY_STABLE:
                    waiting, why = self.waiting_evidence(node, lease, c)
                    if waiting:
                        return why
                time.sleep(POLL)

    def others_silent(self, node: Node) -> bool:
        """Does no node of the pair but ``node`` answer its health path (200 or not: a node that answers holds the
        lease)? With ``node`` answering: it holds the lease alone."""
        return not any(any(self.change.health(n)) for n in self.change.service.nodes if n is not node)

    def waiting_evidence(self, node: Node, lease: Callable[[], object], container: Container) -> tuple[bool, str]:
        """plan.standby_evidence for ``node`` (running, answering nothing; ``container``: its container as just
        inspected): the other node's health answer and the id it names, the lease row as ``lease`` reads it (a
        LeaseView), the role's ``standby_log`` line if logged, whether its process is connected to the lease
        database (lease_connected)."""
        run = self.change
        other = next((n for n in run.service.nodes if n.name != node.name), None)
        answers = other is not None and any(run.health(other))
        other_id = run.job.role.hooks.lease_client(run.answers.get(other.name, b"")) if answers else None
        return standby_evidence(other and other.name, answers, other_id, lease(), run.waiting_logged(node.name),
                                self.lease_connected(node.name, container))  # fmt: skip

    def lease_connected(self, node: str, c: Container) -> bool | None:
        """Whether the process of ``node``'s container ``c`` (as just inspected) holds a TCP connection to the lease
        database's port (the job's variable the role's ``lease.port`` names), read from its network namespace's
        socket tables on the node host (facts.container.connected_to); None when the role keeps no lease, the port
        is no number, the container runs no process or the tables cannot be read (then the other evidence decides,
        as before)."""
        run = self.change
        lease = run.job.role.lease
        if lease is None or not c.pid:
            return None
        try:
            port = int(run.job.variables[lease.port])
        except (KeyError, TypeError, ValueError):
            return None
        return connected_to(run.x(node, socket_table(c.pid), check=False).stdout, port)

    def service_answers(self) -> bool:
        """Is the service served? Through its load balancer when it has one, else by either node."""
        service = self.change.service
        if service.load_balancer:
            return http.status(service.load_balancer, http.PROBE_TIMEOUT) == 200
        return any(self.change.serving(n) for n in service.nodes)

    def await_service(self) -> None:
        """Wait until the service answers (through its load balancer when it has one), up to LB_TIMEOUT."""
        service = self.change.service
        deadline = time.monotonic() + LB_TIMEOUT
        while not self.service_answers():
            if time.monotonic() > deadline:
                where = service.load_balancer or "neither node"
                raise OperationFailed(f"{service.name}: {where} does not answer 200 within {LB_TIMEOUT:g}s")
            time.sleep(POLL)
