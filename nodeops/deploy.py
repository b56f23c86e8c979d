"""The deploy engine: preflight (no host touched), observe, plan, execute, verify.

Per service:
  1. preflight (nodeops.job.prepare): role, profile, secrets and every file
     rendered in memory; any problem here is exit 2 and no host has been
     contacted;
  2. observe (nodeops.run.survey): connect to the pair through the bastion (an
     unreachable node stops the run before anything changes), check the files
     directory is RAM-backed, pull the image (its id is what "up to date"
     compares), inspect the containers, probe /health;
  3. plan (the role's activation model: nodeops.activation), its diff shown (nodeops.run.preview)
     and stopped there with --dry-run; what must be refused is refused before
     anything changed (nodeops.run.guards);
  4. execute (nodeops.run.runner, handover, restore): files created 0400 for
     the container user before their first byte (content on stdin, never in an
     argument), containers replaced standby first, a planned handover for the
     active, rollback to the previous container when a node does not come up;
  5. verify (nodeops.run.end): the active serves (directly and through the load
     balancer), the standby waits, no secret file is left that the nodes no
     longer need, and no secret value sits in a container's environment.

Secret files and restarts (documented in docs/security.md): a node reads its
config, secrets and password files when its process starts, and `.api` only
once it holds the lease. Each file is shredded as soon as its node has read
it: start files once the container runs, lease files once it serves. A
standby therefore keeps `.api` (0400, RAM only) until it takes over. With
shredded files a container cannot start again by itself, so the inventory
refuses an automatic restart policy unless `secret_files: keep`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from nodeops.activation import Model, model_of
from nodeops.commands import node as cmd
from nodeops.edges.ssh import Fleet
from nodeops.errors import Interrupted, NodeopsError, OperationFailed, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.holders import keep_line
from nodeops.facts.now import now_of, standing_line
from nodeops.facts.view import NodeView
from nodeops.inventory import Node
from nodeops.job import Job, recorded_texts, restore_job
from nodeops.lease import LeaseView
from nodeops.plan import Desired, LeaseFacts, ServicePlan, secret_changes, starts_beside_serving
from nodeops.records import Deployed, DryRun
from nodeops.run.change import ServiceChange
from nodeops.run.guards import Guards
from nodeops.run.handover import PlannedHandover
from nodeops.run.keys import gap_figure
from nodeops.run.preview import Preview
from nodeops.run.report import Reporter
from nodeops.run.restore import Restore, previous_on
from nodeops.run.runner import ChangeFailed
from nodeops.run.survey import Survey
from nodeops.stopping import StopRequests


def refuse_while_fenced(change: ServiceDeploy) -> None:
    """Unsafe (exit 4), before any host is looked at, while a forced promotion's pending version waits on
    ``change``'s service (nodeops.rotate.service.fence_pending; a role with a chain fence: its secrets' stages read):
    a deploy would restart the holder in place on the store's current hot keys, the ones the promotion supersedes
    (the lost holder's), undoing the fence; only promote-standby --force completes it (review rev16c F3)."""
    from nodeops.rotate.service import fence_pending  # noqa: PLC0415 (rotate's roll imports this module)

    if (fence := fence_pending(change.fleet.inventory, change.job)) is not None:
        raise Unsafe(
            fence.refusal(change.service.name, "a deploy would restart their holder on the keys it supersedes")
        )


def plan_for(
    change: ServiceDeploy, states: Mapping[str, NodeView], desired: Desired, via_standby: bool = False
) -> ServicePlan:
    """``change``'s model's plan for ``states`` (``via_standby``: its plan_via_standby, activation keys only: deploy
    refuses it for others before any host, exit 2; no lease to read); planned again with the lease facts
    (ServiceDeploy.lease_facts) only when it would start a node beside the one that serves
    (plan.starts_beside_serving), the one plan they decide: an up-to-date pair costs no lease query and no rendering
    of the serving node's inputs. Unsafe when the model refuses; with two holders of the hot keys, saying which to
    keep (nodeops.facts.holders)."""
    model = change.model
    from nodeops.rotate.service import read_fence  # noqa: PLC0415 (rotate's roll imports this module)

    try:
        if via_standby:
            return model.plan_via_standby(change.service, states, desired)
        plan = model.plan_change(change.service, states, desired)
    except Unsafe as exc:
        keep = keep_line(change.job, states.values(), read_fence(change.fleet.inventory, change.job))
        raise Unsafe(f"{exc}; {keep}" if keep else str(exc)) from None
    if starts_beside_serving(plan, states) and (facts := change.lease_facts(states)) is not None:
        plan = model.plan_change(change.service, states, desired, lease=facts)
    return plan


class ServiceDeploy(ServiceChange):
    """The deploy verb's change to one service's pair (see the module's docstring): observe, plan, run through the
    executor (nodeops.run), verify, and the audit record of what now runs; its state, connections and node steps are
    ServiceChange's. Promote and rotate carry out their changes through it too."""

    @functools.cached_property
    def model(self) -> Model:
        """The role's activation model (nodeops.activation.model_of), chosen once: everything that differs by model
        (planning, running, what serves, the end check, the wait after a start) is asked of it."""
        return model_of(self.job.role)

    # -- observe -----------------------------------------------------------------
    def observe(self, dry_run: bool = False) -> tuple[dict[str, NodeView], Desired]:
        """Each node's state and what the run wants, the image pulled unless ``dry_run`` (Survey.observe)."""
        return Survey(self).observe(dry_run)

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

    def confirm(self, what: str, unsafe: bool = False) -> ChangeFailed:
        """The error that ends a failed change, saying what serves now (the model's: Model.failure)."""
        return self.model.failure(self, what, unsafe)

    def handover(self, old: Node, new: Node, restore_standby: bool = True, shred: bool = True) -> float | None:
        """Planned failover from ``old`` to ``new``: the outage in seconds, or None (PlannedHandover.run)."""
        return PlannedHandover(self).run(old, new, restore_standby, shred)

    def execute(self, plan: ServicePlan) -> None:
        """Carry the plan out, step by step, through the model's runner (Model.runner)."""
        self.model.runner(self).apply(plan)

    def show_diff(self, states: Mapping[str, NodeView], recorded: str | None, plan: ServicePlan) -> None:
        """What the change does, node by node, as event lines (nodeops.run.preview.Preview.show); the hot files
        (activation keys) only for the nodes that hold the keys after ``plan``: those it starts with them, and those
        that hold them now (a change never moves them)."""
        Preview(self).show(states, recorded, holders_after(plan, states))

    def standing(self) -> str:
        """What runs where now, in one line (for an interrupted run's message and audit entry): ``now()`` in words."""
        return standing_line(self.now())

    def now(self) -> dict:
        """What runs on the pair at this moment, observed now (nodeops.facts.now.now_of); nothing is raised."""
        return now_of(self.observer)

    def verify(self, tolerated: Collection[str] = ()) -> dict:
        """The end state, checked: who is active (who serves under all), for the report (Model.end)."""
        return self.model.end(self, tolerated)

    def lease_facts(self, states: Mapping[str, NodeView]) -> LeaseFacts | None:
        """The lease row and the lease client id the serving node's reply names (the role's ``lease_client``), for
        the lease planner to see the node that serves hold it; None under another model, or when not exactly one
        node serves (the planner refuses that itself), or when the serving node's own inputs cannot be rendered
        again. The row is read in the database those inputs name (restore_job of its container), not the change's:
        a change that moves the lease is refused by Guards.refuse_lease_move with its own message."""
        serving = [s for s in states.values() if s.active]
        if self.model.name != "lease" or self.job.role.lease is None or len(serving) != 1 or not serving[0].container:
            return None
        try:
            own = restore_job(self.fleet.inventory, self.job, serving[0].node.name, serving[0].container)
        except Unsafe:  # no record of its inputs: no evidence either way, the standby's own wait decides
            return None
        self.job = dataclasses.replace(self.job, redact=own.redact)  # its values masked too, as keep_restorable does
        with LeaseView(self.fleet, own) as read:
            row = read()
        return LeaseFacts(row, self.job.role.hooks.lease_client(self.answers.get(serving[0].node.name, b"")))

    def plan(self, states: Mapping[str, NodeView], desired: Desired, via_standby: bool = False) -> ServicePlan:
        """The model's plan for ``states`` (plan_for; ``via_standby``: the model's plan_via_standby)."""
        return plan_for(self, states, desired, via_standby)

    # -- the whole ---------------------------------------------------------------
    def run(self, dry_run: bool, via_standby: bool = False) -> dict:
        refuse_while_fenced(self)
        states, desired = self.observe(dry_run)
        plan = self.plan(states, desired, via_standby)
        steps = [s.describe() for s in plan.steps]
        moved = secret_changes(states.values(), self.job.rendered.secret_versions)
        try:
            recorded, refused = (Guards(self).database_version() if plan.changes else None), None
        except Unsafe as exc:  # credentials the database refuses: said after the diff, which shows what moved
            recorded, refused = None, exc
        self.recorded = recorded
        self.show_diff(states, recorded, plan)
        self.say("", f"plan: {plan.reason}" + "".join(f"; {step}" for step in steps), steps=steps)
        if refused is not None:
            raise refused
        self.keep_restorable(step.node for step in plan.steps if step.action in ("replace", "handover"))
        Guards(self).refuse_lease_move()
        Guards(self).refuse_downgrade(recorded)
        if dry_run:
            return DryRun(service=self.service.name, changed=plan.changes, planned=steps, secrets_moved=moved).record()
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
        return finished(self, plan.changes, result, holders_after(plan, states))

    def drop_previous(self) -> None:
        """Remove the previous containers, kept until the service succeeded: any failure before could roll back."""
        for node in self.conns:
            self.on(node).remove(cmd.previous_name(self.service.name), check=False)

    def ran(self, holders: Collection[str] = ()) -> dict:
        """What now runs, for the audit log (``fab rollback`` reads it back): no secret in it. A role whose nodes run
        hashes of their own (Job.config_hashes): each node's (the holder's for ``holders``, Rendered.config) and files
        too (``nodes``), ``config`` and ``files`` the first node's; every secret's version, the hot files' too."""
        own = {n: {"config": self.job.at(n).rendered.config(n in holders), "files": recorded_texts(self.job.at(n))}
               for n in self.job.config_hashes()}  # fmt: skip
        return {"image": self.service.image, "digest": self.digest, "config": self.job.rendered.config_hash,
                "variables": dict(self.service.variables),
                "secret_versions": dict(self.job.rendered.secret_versions),
                "files": recorded_texts(self.job), **({"nodes": own} if own else {})}  # fmt: skip


def holders_after(plan: ServicePlan, states: Mapping[str, NodeView]) -> set[str]:
    """The nodes that hold the hot keys (activation keys) after ``plan``: those it starts with them, and those that
    hold them now (a change never moves them)."""
    return {s.node for s in plan.steps if s.hot} | {name for name, s in states.items() if s.hot}


def finished(run: ServiceDeploy, changed: bool, result: dict, holders: Collection[str]) -> dict:
    """The end of ``run``, verified (``result``: who is active, or serves): said, each gap in which no node used the
    hot keys with it (run.keys.keys_gap), and its record (records.Deployed, ``keys_gaps`` when there were any; each
    node's inputs as ``holders``, the nodes that hold the hot keys after it, run them: ServiceDeploy.ran)."""
    gaps = list(run.keys_gaps)
    said = "".join(f"; {g['how']} {g['node']}: no node used the hot keys for {gap_figure(g)}" for g in gaps)
    run.say(result.get("active", ""), ("active" if "active" in result else "every node serves") +
            ("" if changed else "; nothing changed") + said)  # fmt: skip
    return Deployed(service=run.service.name, changed=changed, **result, **run.ran(holders),
                    **({"keys_gaps": gaps} if gaps else {})).record()  # fmt: skip


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
           stop: StopRequests | None = None, inexact_ok: bool = False,
           via_standby: bool = False) -> list[dict]:  # fmt: skip
    """Deploy every job's service, in parallel, each pair on its own. A service that failed has
    ``error`` (its NodeopsError) in its result; errors.raise_failures turns those into the run's.
    ``stop``: once set, no service starts and each running one stops at its next safe point.
    ``inexact_ok``: a container whose inputs cannot be rendered again may be replaced (restore_job).
    ``via_standby``: a keys holder whose inputs change hands its keys to the standby and back (ServiceDeploy.plan;
    refuse_via_standby first, before any host)."""

    def one(job: Job) -> dict:
        run = ServiceDeploy(job, fleet, report)
        run.stop, run.inexact_ok = stop or run.stop, inexact_ok
        if run.stop.is_set():
            return per_service(report, job.service.name, not_started(job.service.name))
        return per_service(report, job.service.name, lambda: run.run(dry_run, via_standby),
                           None if dry_run else run.now)  # fmt: skip

    with ThreadPoolExecutor(max_workers=min(8, len(jobs) or 1)) as pool:
        return list(pool.map(one, jobs))
