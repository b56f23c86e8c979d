"""The end state of a change, checked (EndState.verify): exactly one node serves (or answers unhealthy as it did
before the change; under activation ``all``, verify_all: every node serves), every container runs, no secret file is
left that the nodes no longer need (an interrupted run's leftovers shredded), no secret value sits in a container's
environment or command, and the service answers through its load balancer.

``change`` is the change that ran (nodeops.deploy.ServiceDeploy in a run), through the ``Verified`` protocol below.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from nodeops.edges.ssh import CommandResult
from nodeops.errors import OperationFailed, Unsafe
from nodeops.facts import files as file_facts
from nodeops.facts.container import Container

Holds = Callable[[Container | None, bool, Sequence[str]], bool]  # (container, answers 200, failing) -> an active


class Verified(Protocol):
    """What the check asks of a change: its service (``service``: nodeops.inventory.Service), inputs (``job``:
    nodeops.job.Job: the files read once a node holds the lease, the role's profile, the redactor that finds a
    leaked value), its waits (``waits``: nodeops.run.awaits.Awaits, await_service) and the observations and actions
    below."""

    service: Any
    job: Any
    waits: Any

    def inspect(self, node: str, name: str | None = None) -> Container | None: ...
    def health(self, node) -> tuple[bool, tuple[str, ...]]: ...
    def x(self, node: str, command: str, stdin: bytes | None = None, check: bool = True,
          timeout: float | None = None) -> CommandResult: ...  # fmt: skip
    def shred(self, node: str, names: Sequence[str]) -> None: ...
    def say(self, node: str, message: str, **data) -> None: ...


class EndState:
    """The end state of ``change``, checked (see the module's docstring)."""

    def __init__(self, change: Verified) -> None:
        self.change = change

    def verify(self, tolerated: Collection[str], holds: Holds, holding: str) -> dict:
        """The end state, checked: returns who is active, for the report. ``tolerated``: the checks the active
        failed before the run; an active that ends failing only those is reported, any other failure fails.
        ``holds``: whether a node seen so is an active (the role's model: nodeops.activation.Model.holds);
        ``holding``: what an active does, for the message (``serve``, ``hold the hot keys``)."""
        run = self.change
        states = {n.name: (run.inspect(n.name), *run.health(n)) for n in run.service.nodes}
        active = [name for name, (c, serving, failing) in states.items() if holds(c, serving, failing)]
        if len(active) != 1:
            raise OperationFailed(f"{run.service.name}: after deploy {len(active)} nodes {holding}, "
                                  "expected one")  # fmt: skip
        failing = states[active[0]][2]
        if failing and not set(failing) <= set(tolerated):
            raise OperationFailed(f"{run.service.name}: after deploy the active {active[0]} answers unhealthy "
                                  f"(failing: {', '.join(failing)})")  # fmt: skip
        keep_after = set(run.job.files_read("lease"))
        for name, (container, serving, answers_sick) in states.items():  # not `failing`: the active's, used below
            self.node_clean(name, container, set() if serving or answers_sick else keep_after)
        if failing:
            run.say(active[0], f"active, UNHEALTHY as before this run (failing: {', '.join(failing)})",
                    failing=list(failing))  # fmt: skip
            return {"active": active[0], "failing": list(failing)}
        if run.service.load_balancer:
            run.waits.await_service()
        return {"active": active[0]}

    def verify_all(self) -> dict:
        """The end state under activation ``all``: every node serves (200), its container running, no secret file
        left, no secret value in its environment or command, and the service answers through its load balancer;
        returns ``{"serving": [every node, in inventory order]}`` for the report. OperationFailed naming the nodes
        that do not serve."""
        run = self.change
        silent = [n.name for n in run.service.nodes if not run.health(n)[0]]
        if silent:
            raise OperationFailed(f"{run.service.name}: after deploy {', '.join(silent)} not serving (activation all: "
                                  "every node serves)")  # fmt: skip
        for n in run.service.nodes:
            self.node_clean(n.name, run.inspect(n.name), set())
        if run.service.load_balancer:
            run.waits.await_service()
        return {"serving": [n.name for n in run.service.nodes]}

    def node_clean(self, name: str, container: Container | None, allowed: set[str]) -> None:
        """``name``'s container runs; any secret file on it but ``allowed`` (what an interrupted run left behind) is
        shredded; no secret value is in what `docker inspect` shows of it (Unsafe otherwise)."""
        run = self.change
        if container is None or not container.running:
            raise OperationFailed(f"{run.service.name} {name}: container not running after deploy")
        if run.service.secret_files == "shred":
            left = run.x(name, file_facts.list_files(run.service.name)).stdout.split("\n")
            extra = {line.split()[0] for line in left if line.strip()} - allowed
            if extra:
                run.shred(name, sorted(extra))  # what an interrupted run left behind
        exposed = "\n".join((*container.env, *container.args))  # what `docker inspect` shows anyone
        if not run.job.role.profile(run.job.profile).shows_secrets and run.job.redact.leaks(exposed):
            raise Unsafe(f"{run.service.name} {name}: a secret value is in the container's environment or command")
