"""The deploy engine: preflight (no host touched), observe, plan, execute, verify.

Per service:
  1. preflight: role, profile, secrets and every file rendered in memory; any
     problem here is exit 2 and no host has been contacted;
  2. observe: connect to the pair through the bastion (an unreachable node
     stops the run before anything changes), check the files directory is
     RAM-backed, pull the image (its id is what "up to date" compares),
     inspect the containers, probe /health;
  3. plan (nodeops.plan), printed and stopped there with --dry-run;
  4. execute: files created 0400 for the container user before their first
     byte (content on stdin, never in an argument), containers replaced
     standby first, a planned handover for the active, rollback to the
     previous container when a node does not come up;
  5. verify: the active serves (directly and through the load balancer), the
     standby waits, no secret file is left that the nodes no longer need,
     and no secret value sits in a container's environment.

Secret files and restarts (documented in docs/security.md): a node reads its
config, secrets and password files when its process starts, and `.api` only
once it holds the lease. Each file is shredded as soon as its node has read
it: start files once the container runs, lease files once it serves. A
standby therefore keeps `.api` (0400, RAM only) until it takes over. With
shredded files a container cannot start again by itself, so the inventory
refuses an automatic restart policy unless `secret_files: keep`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from nodeops.activation import plan_change
from nodeops.commands import node as cmd
from nodeops.edges.ssh import CommandResult, Fleet, Link, execute
from nodeops.errors import Interrupted, NodeopsError, OperationFailed, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.now import now_of, standing_line
from nodeops.facts.observe import Observer
from nodeops.facts.view import NodeView
from nodeops.inventory import Node
from nodeops.job import (
    Job,
    input_labels,
    recorded_texts,
)
from nodeops.plan import (
    Desired,
    ServicePlan,
    secret_changes,
)
from nodeops.records import Deployed, DryRun
from nodeops.run.awaits import Awaits
from nodeops.run.confirm import WhatServes
from nodeops.run.end import EndState
from nodeops.run.guards import Guards
from nodeops.run.handover import PlannedHandover
from nodeops.run.node import NodeActions, reason
from nodeops.run.preview import Preview
from nodeops.run.report import Reporter
from nodeops.run.restore import Restore, previous_on
from nodeops.run.runner import ChangeFailed, ServiceRunner
from nodeops.run.survey import Survey
from nodeops.stopping import StopRequests


class ServiceDeploy:
    edge = staticmethod(execute)  # the one call every command of the change goes through (NodeActions.execute)

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

    def connect_all(self) -> None:
        """Every node of the service, or the run stops here, before anything changed."""
        for node in self.service.nodes:
            self.observer.connect(node)

    # -- observe -----------------------------------------------------------------
    def observe(self, dry_run: bool = False) -> tuple[dict[str, NodeView], Desired]:
        """Each node's state and what the run wants, the image pulled unless ``dry_run`` (Survey.observe)."""
        return Survey(self).observe(dry_run)

    def states(self) -> dict[str, NodeView]:
        """Each node's container and whether it serves (once observe() has connected)."""
        return {n.name: NodeView(n, self.inspect(n.name), *self.health(n)) for n in self.service.nodes}

    # -- steps -------------------------------------------------------------------
    def run_spec(self, job: Job | None = None) -> cmd.RunSpec:
        """`docker run` of ``job`` (this run's by default; its image is this run's image, as pulled)."""
        job = job or self.job
        role, r, service = job.role, job.rendered, job.service
        labels = {"service": service.name, "role": role.name, "profile": job.profile,
                  "version": cmd.image_tag(service.image), "config": r.config_hash,
                  "digest": self.digest or "none", "port": str(role.port), **input_labels(job)}  # fmt: skip
        return cmd.RunSpec(
            runtime=self.runtime, service=service.name, image=service.image, command=r.command,
            user=role.user, port=role.port, mount=role.mount, labels=labels, restart=service.restart,
            log_driver=service.log_driver, log_options=service.log_options,
            stop_timeout=int(role.stop_timeout), env_file=r.env_file,
        )  # fmt: skip

    def upload(self, node: str, job: Job | None = None) -> None:
        """The node's files (``job``'s, this run's by default), each created 0400 for the container user
        before its first byte (NodeActions.upload)."""
        job = job or self.job
        self.on(node).upload({name: f.data for name, f in job.rendered.files.items()}, job.role.user)

    # -- undoing (nodeops.run.restore) -------------------------------------------
    def new_change(self) -> None:
        """Forget what keep_restorable() learnt: the next execute() is another change (a rotation rolls twice)."""
        Restore(self).new_change()

    def keep_restorable(self, nodes: Iterable[str]) -> None:
        """The inputs each of ``nodes``' containers was started from, learnt before the change (Restore)."""
        Restore(self).keep_restorable(nodes)

    def previous_on(self, node: str, container: Container | None) -> Job | None:
        """The inputs ``node``'s previous container goes back on (nodeops.run.restore.previous_on)."""
        return previous_on(self, node, container)

    def settle(self, name: str, job: Job) -> str:
        """What the node does after a start on ``job``'s files, its read files shredded (Restore.settle)."""
        return Restore(self).settle(name, job)

    def start_again(self, node: str, again: Job) -> str:
        """``node``'s container, stopped by this run, started again on ``again`` (Restore.start_again)."""
        return Restore(self).start_again(node, again)

    def restore(self, node: str, why: str) -> str:
        """The previous container put back on ``node``, a failure said, not raised (Restore.restore)."""
        return Restore(self).restore(node, why)

    def shred(self, node: str, names: Sequence[str]) -> None:
        """Shred ``names`` under the service's folder on ``node`` (NodeActions.shred)."""
        self.on(node).shred(names)

    def replace(self, node: str) -> None:
        """The node's container replaced by one on this run's inputs; the old one is kept, stopped, as the previous
        container (renamed first: until then a failure has changed nothing on the node)."""
        old = self.inspect(node)
        if old:
            self.on(node).set_aside()
            self.moved.add(node)
            if old.running:
                self.on(node).stop(int(self.job.role.stop_timeout), cmd.previous_name(self.service.name))
        self.start_new(node)
        self.say(node, f"started {self.name} ({self.service.image}, config {self.job.rendered.config_hash[:12]})")

    def start_new(self, node: str, job: Job | None = None) -> None:
        """A new container on ``node`` for ``job`` (this run's by default): its files, then `docker run` (the
        service's container name must be free)."""
        job = job or self.job
        self.upload(node, job)
        self.on(node).run(self.run_spec(job))
        self.ports[node] = job.role.port
        if job.rendered.env_file:  # the docker CLI has read it; the container never sees the file
            self.shred(node, [job.rendered.env_file])

    def confirm(self, what: str, unsafe: bool = False) -> ChangeFailed:
        """The error that ends a failed change, saying what serves now (WhatServes.failure)."""
        return WhatServes(self).failure(what, unsafe)

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

    def handover(self, old: Node, new: Node, restore_standby: bool = True, shred: bool = True) -> float | None:
        """Planned failover from ``old`` to ``new``: the outage in seconds, or None (PlannedHandover.run)."""
        return PlannedHandover(self).run(old, new, restore_standby, shred)

    def execute(self, plan: ServicePlan) -> None:
        """Carry the plan out, step by step (nodeops.run.runner.ServiceRunner.apply)."""
        ServiceRunner(self).apply(plan)

    def show_diff(self, states: Mapping[str, NodeView], recorded: str | None) -> None:
        """What the change does, node by node, as event lines (nodeops.run.preview.Preview.show)."""
        Preview(self).show(states, recorded)

    def standing(self) -> str:
        """What runs where now, in one line (for an interrupted run's message and audit entry): ``now()`` in words."""
        return standing_line(self.now())

    def now(self) -> dict:
        """What runs on the pair at this moment, observed now (nodeops.facts.now.now_of); nothing is raised."""
        return now_of(self.observer)

    def verify(self, tolerated: Collection[str] = ()) -> dict:
        """The end state, checked: who is active, for the report (nodeops.run.end.EndState.verify)."""
        return EndState(self).verify(tolerated)

    # -- the whole ---------------------------------------------------------------
    def run(self, dry_run: bool) -> dict:
        states, desired = self.observe(dry_run)
        plan = plan_change(self.job.role.activation, self.service, states, desired)
        steps = [s.describe() for s in plan.steps]
        moved = secret_changes(states.values(), self.job.rendered.secret_versions)
        try:
            recorded, refused = (Guards(self).database_version() if plan.changes else None), None
        except Unsafe as exc:  # credentials the database refuses: said after the diff, which shows what moved
            recorded, refused = None, exc
        self.recorded = recorded
        self.show_diff(states, recorded)
        self.say("", f"plan: {plan.reason}" + "".join(f"; {step}" for step in steps), steps=steps)
        if refused is not None:
            raise refused
        self.keep_restorable(step.node for step in plan.steps if step.action in ("replace", "handover"))
        Guards(self).refuse_lease_move()
        Guards(self).refuse_downgrade(recorded)
        if dry_run:
            return DryRun(service=self.service.name, changed=plan.changes, planned=steps, secrets_moved=moved).record()
        if plan.changes and self.job.role.activation != "lease":  # the executor carries out lease plans only, so far
            raise Unsafe(
                f"{self.service.name}: role {self.job.role.name} has activation {self.job.role.activation}: "
                "deploy plans it (--dry-run) but carries out only activation lease yet; nothing was changed"
            )
        try:
            self.execute(plan)
        except Interrupted:
            self.drop_previous()  # stopped at a safe point: the pair is whole, on what each label says
            raise
        try:
            result = self.verify(tolerated=[name for s in states.values() for name in s.failing])
        except ChangeFailed:
            raise
        except OperationFailed as exc:  # e.g. the new active died after the takeover: what serves now, said
            raise self.confirm(str(exc)) from None
        self.drop_previous()
        self.say(result["active"], "active" + ("" if plan.changes else "; nothing changed"))
        return Deployed(service=self.service.name, changed=plan.changes, **result, **self.ran()).record()

    def drop_previous(self) -> None:
        """Remove the previous containers, kept until the service succeeded: any failure before could roll back."""
        for node in self.conns:
            self.on(node).remove(cmd.previous_name(self.service.name), check=False)

    def ran(self) -> dict:
        """What now runs, for the audit log (``fab rollback`` reads it back): no secret in it."""
        return {"image": self.service.image, "digest": self.digest, "config": self.job.rendered.config_hash,
                "variables": dict(self.service.variables),
                "secret_versions": dict(self.job.rendered.secret_versions),
                "files": recorded_texts(self.job)}  # fmt: skip


def not_started(service: str) -> Callable[[], dict]:
    """The work of a service the run was asked to stop before it began."""

    def refuse() -> dict:
        raise Interrupted(f"{service}: not started: the run was asked to stop")

    return refuse


def per_service(report: Reporter, service: str, work: Callable[[], dict],
                now: Callable[[], dict] | None = None) -> dict:  # fmt: skip
    """``work()``'s result for one service or, when it fails, ``{"service", "error"}`` with the failure reported:
    one service failing never stops the others (errors.raise_failures makes their errors the run's). ``now``
    (ServiceDeploy.now): observed once the work ended, succeeded or not, and added as the result's ``now``, so that
    the audit log's end entry says what runs after the last step, not what a message said before it."""
    try:
        result = work()
    except NodeopsError as exc:
        stopped = isinstance(exc, Interrupted)
        report(service, "", f"{'STOPPED' if stopped else 'FAILED'}: {exc}", outcome="stopped" if stopped else "failed")
        result = {"service": service, "error": exc}
    return result if now is None else {**result, "now": now()}


def deploy(fleet: Fleet, jobs: Sequence[Job], report: Reporter, dry_run: bool = False,
           stop: StopRequests | None = None, inexact_ok: bool = False) -> list[dict]:  # fmt: skip
    """Deploy every job's service, in parallel, each pair on its own. A service that failed has
    ``error`` (its NodeopsError) in its result; errors.raise_failures turns those into the run's.
    ``stop``: once set, no service starts and each running one stops at its next safe point.
    ``inexact_ok``: a container whose inputs cannot be rendered again may be replaced (restore_job)."""

    def one(job: Job) -> dict:
        run = ServiceDeploy(job, fleet, report)
        run.stop, run.inexact_ok = stop or run.stop, inexact_ok
        if run.stop.is_set():
            return per_service(report, job.service.name, not_started(job.service.name))
        return per_service(report, job.service.name, lambda: run.run(dry_run), None if dry_run else run.now)

    with ThreadPoolExecutor(max_workers=min(8, len(jobs) or 1)) as pool:
        return list(pool.map(one, jobs))
