"""One change to one service's pair, as every changing verb's executor sees it: what the change knows (its inputs,
the image's digest as pulled, each handover's outage, what it learnt of each node before it touched it, the way out
of a change that cannot be undone), its connections and observations (through the service's facts.observe.Observer),
and the node steps that the runner, the handover, the undoing and the end check share: replace a node's container,
start a new one, upload and shred its files, wait (nodeops.run.awaits).

nodeops.deploy.ServiceDeploy is the deploy verb's change built on it (promote and rotate use that one too); the parts
of the executor take it through their own small protocols (runner.Change, restore.Restorable, survey.Surveyed,
guards.Guarded, end.Verified, preview.Previewed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from types import MappingProxyType

from nodeops import program
from nodeops.commands import node as cmd
from nodeops.edges.ssh import CommandResult, Fleet, Link, execute
from nodeops.facts.container import Container
from nodeops.facts.observe import Observer
from nodeops.facts.view import NodeView
from nodeops.inventory import Node
from nodeops.job import Job, run_spec
from nodeops.run.awaits import Awaits
from nodeops.run.keys import refuse_second_holder
from nodeops.run.node import NodeActions, reason
from nodeops.run.report import Reporter
from nodeops.stopping import StopRequests


class ServiceChange:
    """One change to ``job``'s service pair, through ``fleet``, reported to ``report`` (see the module's docstring)."""

    edge = staticmethod(execute)  # the one call every command of the change goes through (NodeActions.execute)
    held_back: Mapping[str, tuple[str, ...]] = MappingProxyType({})  # node -> hot files its last upload left out
    given_hot: frozenset[str] = frozenset()  # nodes whose latest upload held the hot files (upload sets both anew)
    chain_fenced: frozenset[str] = frozenset()  # the lost holders --force's chain fence fences: not awaited (keys.py)
    keys_gaps: tuple[dict, ...] = ()  # each gap in which no node used the hot keys (keys.keys_gap; set afresh)
    shredded: Mapping[str, frozenset[str]] = MappingProxyType({})  # node -> the files shredded there since this
    # change last wrote its files (set likewise): a shred asked again of them has nothing to shred (shred())
    finishing: str | None = None  # the command that carries this change out again when it is not deploy's (rerun)

    def __init__(self, job: Job, fleet: Fleet, report: Reporter) -> None:
        self.job = job
        self.service = job.service
        self.fleet = fleet
        self.report = report
        self.runtime = job.service.runtime
        self.name = cmd.container_name(job.service.name)
        self.observer = Observer(fleet, job.service, job.role)  # its connections, ports and replies are the run's
        self.conns: dict[str, Link] = self.observer.conns
        self.digest: str | None = None  # of the image as pulled, recorded on the containers
        self.answers: dict[str, bytes] = self.observer.answers  # node -> body of its latest health reply (200 or not)
        self.outages: list[float | None] = []  # of each planned handover execute() ran, as probed (seconds; None:
        # not measured, the service was not answering before it: OutageProbe.measured)
        self.stop = StopRequests(lambda _line: None)  # replaced by the run's (Operation.stop): see execute()
        self.inexact_ok = False  # --allow-inexact-restore: a container whose inputs are unknown restarts on today's
        self.ran_on: dict[str, Job] = {}  # node -> the inputs its container was started from (restore_job)
        self.was_running: dict[str, bool] = {}  # node -> whether that container ran when the change began
        self.moved: set[str] = set()  # nodes whose container was renamed to the previous one by this run
        self.ports: dict[str, int] = self.observer.ports  # node -> the port its container serves, as last inspected
        self.pulled = False  # observe() pulled the image on every node: a restart may use it (previous_on)
        self.recorded: str | None = None  # the version the database recorded when the change began (run())
        self.forward: list[str] = []  # why a failed change cannot be undone, only fixed forward (previous_on)
        self.stuck = False  # a node was left stopped: no image this run knows runs on the database (exit 4)
        self.stop_seen: int | None = None  # the step a stop was first seen before, where it could not stop (execute)

    # -- plumbing ----------------------------------------------------------------
    @property
    def rerun(self) -> str:
        """The command that carries this change out again, as a failure's or a stop's message names it: deploy's,
        unless the change set ``finishing`` (a rollback: nodeops.rollback.finish_command; a deploy rolls forward)."""
        return self.finishing or (f"{program()} deploy --env {self.fleet.inventory.environment} --service "
                                  f"{self.service.name}")  # fmt: skip

    def say(self, node: str, message: str, **data) -> None:
        self.report(self.service.name, node, message, **data)

    def on(self, node: str) -> NodeActions:
        """The actions on ``node``, through its open connection, masked by this run's redactor as it is now (it
        widens as restore_job reads older secrets)."""
        return NodeActions(self.service.name, node, self.conns[node], runtime=self.runtime, redact=self.job.redact,
                           timeout=self.fleet.settings.command_timeout, say=partial(self.say, node),
                           secret_files=self.service.secret_files, execute=self.edge)  # fmt: skip

    def x(self, node: str, command: str, stdin: bytes | None = None, check: bool = True,
          timeout: float | None = None) -> CommandResult:  # fmt: skip
        """Run a shell line on ``node`` (NodeActions.x)."""
        return self.on(node).x(command, stdin, check, timeout)

    def why(self, res: CommandResult) -> str:
        """A failed command's reason, masked (nodeops.run.node.reason)."""
        return reason(res, self.job.redact)

    def inspect(self, node: str, name: str | None = None) -> Container | None:
        """The container ``name`` (the service's, by default) on ``node`` (Observer.container)."""
        return self.observer.container(node, name)

    def serving(self, node: Node) -> bool:
        """Does ``node`` answer its health path with 200?"""
        return self.health(node)[0]

    def health(self, node: Node) -> tuple[bool, tuple[str, ...]]:
        """``node``'s reply to its health path: (200, the checks it says fail) (Observer.health)."""
        return self.observer.health(node)

    def connect(self, node: Node) -> None:
        """A connection to ``node``, kept for the change's commands (Observer.connect); OperationFailed when it
        cannot be made (the survey decides what that means for the run: Survey.connect_every)."""
        self.observer.connect(node)

    def states(self) -> dict[str, NodeView]:
        """Each node's container and whether it serves (once observe() has connected)."""
        return {n.name: NodeView(n, self.inspect(n.name), *self.health(n)) for n in self.service.nodes}

    # -- steps -------------------------------------------------------------------
    def upload(self, node: str, job: Job | None = None, hot: bool | None = None) -> bool:
        """The node's files (``job``'s, this run's by default), each created 0400 for the container user before its
        first byte (NodeActions.upload); the role's hot files (activation keys) only with ``hot`` (None: as this change
        last gave ``node`` its files) and once no other node is seen holding them (keys.refuse_second_holder: Unsafe,
        exit 4). Returns whether the hot files went."""
        job = (job or self.job).at(node)  # its own files, when the role renders per node
        hot = (node in self.given_hot if hot is None else hot) and any(f.hot for f in job.rendered.files.values())
        if hot:
            refuse_second_holder(self, node)
        files = {name: f.data for name, f in job.rendered.files.items() if hot or not f.hot}
        self.held_back = {**self.held_back, node: tuple(name for name in job.rendered.files if name not in files)}
        self.given_hot = self.given_hot | {node} if hot else self.given_hot - {node}
        self.shredded = {**self.shredded, node: frozenset()}  # before the write: a failed one may have written some
        self.on(node).upload(files, job.role.user)
        return hot

    def shred(self, node: str, names: Sequence[str]) -> None:
        """Shred ``names`` under the service's folder on ``node`` (NodeActions.shred), but the hot files its latest
        upload left out and those ``shredded`` since the change last wrote its files: each shred is sent and said once,
        though an undo asks again (Restore.settle, then the failure's end). A failed shred counts for nothing."""
        done = self.shredded.get(node, frozenset())
        names = [name for name in names if name not in self.held_back.get(node, ()) and name not in done]
        self.on(node).shred(names)
        self.shredded = {**self.shredded, node: done | set(names)}

    def replace(self, node: str, hot: bool = False, job: Job | None = None) -> None:
        """The node's container replaced by one on ``job``'s inputs (this run's by default), with the role's hot
        files and label when ``hot``; the old one is kept, stopped, as the previous container (renamed first: until
        then a failure has changed nothing on the node)."""
        job = job or self.job
        old = self.inspect(node)
        if old:
            self.on(node).set_aside()
            self.moved.add(node)
            if old.running:
                self.on(node).stop(int(self.job.role.stop_timeout), cmd.previous_name(self.service.name))
        self.start_new(node, job, hot)
        self.say(node, f"started {self.name} ({job.service.image}, config {job.at(node).rendered.config(hot)[:12]})" +
                 (" with the hot keys" if hot else ""))  # fmt: skip

    def start_new(self, node: str, job: Job | None = None, hot: bool | None = None) -> None:
        """A new container on ``node`` for ``job`` (this run's by default): its files, then `docker run` (the
        service's container name must be free); ``hot`` as upload() takes it."""
        job = (job or self.job).at(node)
        keys = self.upload(node, job, hot)
        self.on(node).run(run_spec(job, self.digest, keys is True))
        self.ports[node] = job.role.port
        if job.rendered.env_file:  # the docker CLI has read it; the container never sees the file
            self.shred(node, [job.rendered.env_file])

    @property
    def waits(self) -> Awaits:
        """What this change waits for on its pair (nodeops.run.awaits)."""
        return Awaits(self)

    def waiting_logged(self, node: str) -> bool:
        """Whether the node's log has the role's ``standby_log`` line (False when the role names none). Printed
        at info level only: extra evidence of a standby, never required (a LOG_LEVEL of warn hides it)."""
        marker = self.job.role.standby_log
        return marker is not None and self.on(node).logged(marker)

    def last_log(self, node: str) -> str:
        """``last log line: ...`` of the node's container (NodeActions.last_log)."""
        return self.on(node).last_log()
