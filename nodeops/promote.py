"""Failover: the standby becomes the active, planned (measured, restored on failure) or, with
--force, unplanned (the active is gone: wait for its lease to expire, confirm the takeover).

The state is read from the system, not from the inventory: whoever answers its
health check at all, 200 or 503, holds the database lease (a Chainlink node opens
its port only once it holds it), and the lease row itself, by database time. An
active that answers 503 is still the active: a planned promotion works from it.
A pair whose state is unclear is refused with what was seen, before anything is touched.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nodeops import program
from nodeops.activation import MODELS, model_of
from nodeops.commands import node as cmd
from nodeops.deploy import ServiceDeploy, not_started, per_service
from nodeops.edges.ssh import Fleet
from nodeops.errors import Interrupted, InvalidInput, OperationFailed, Unsafe
from nodeops.facts.view import NodeView
from nodeops.inventory import Node
from nodeops.job import Job
from nodeops.lease import LeaseView, lease_reader
from nodeops.promote_forced import ForcedHandover
from nodeops.promote_keys import KeysHandover, assess_keys
from nodeops.records import DryRun, Promoted
from nodeops.run.awaits import SERVE_TIMEOUT
from nodeops.run.report import Reporter
from nodeops.run.runner import ServiceRunner
from nodeops.stopping import StopRequests


@dataclass(frozen=True)
class Handover:
    """What promote-standby will do to one pair, decided from what its nodes show (assess) before anything is
    touched: ``active`` hands over to ``standby`` (planned), or, with --force, ``standby`` waits for the gone
    active's lease to expire (``active`` None; ``what``: the nodes as seen)."""

    service: str
    seen: dict[str, NodeView]
    standby: NodeView
    active: Node | None = None
    what: str = ""
    evidence: str = ""  # why the standby is taken to wait for the lease (plan.standby_evidence), for the record

    def question(self, keep_old_stopped: bool) -> str:
        """The confirmation's line: which node is active now (and what it runs) and which takes over."""
        standby = self.standby.node.name
        if self.active is None and self.standby.active:
            return (f"{self.service}: the active is gone ({self.what}) and {standby} (standby, "
                    f"{version_of(self.standby)}) took its lease: confirm it by database time")  # fmt: skip
        if self.active is None:
            return (f"{self.service}: the active is gone ({self.what}): wait for its lease to expire by database "
                    f"time, then {standby} (standby, {version_of(self.standby)}) serves")  # fmt: skip
        after = "the old active stays stopped" if keep_old_stopped else "the old active becomes the standby"
        ran = version_of(self.seen[self.active.name])
        return f"{self.service}: hand over from {self.active.name} (active, {ran}) to {standby} (standby); {after}"


def version_of(seen: NodeView) -> str:
    """The version a node's container runs (Container.version: its ``version`` label, else the tag of the reference
    nodeops started it with); "?" when unknown."""
    c = seen.container
    return (c.version or "?") if c else "?"


def assess(run: ServiceDeploy, force: bool) -> Handover | KeysHandover | ForcedHandover:
    """Observe the pair and decide, touching nothing: a Handover, or the refusal (Unsafe, exit 4; InvalidInput,
    exit 2, for a request that cannot apply: one node, --force while the active answers). With --force, a node
    that serves while every other node is unreachable is the standby that already took the gone active's lease (as
    a Chainlink standby does once LeaseDuration passes): unplanned() confirms it by database time and shreds the
    files it reads once it holds the lease, so a rerun after that takeover ends as the run that waited for it
    would. Every refusal that can be known before acting is made here, so a question is asked only about what can
    be done."""
    service = run.service
    model = model_of(run.job.role)
    model.refuse_promotion(service.name)  # all: every node serves, no standby (Unsafe)
    # the nodes a promotion moves between: a role with kinds promotes within its kind that has a standby (a pool's
    # producers, never its relays); a role without kinds, every node
    if len([n for n in service.nodes if model.for_kind(n.kind).has_standby]) != 2:
        raise InvalidInput(f"{service.name}: has no standby to promote (one node)")
    if model.fence_first:  # keys: fence first, the keys moved (nodeops.promote_keys)
        return assess_keys(run, force)
    seen = run.observer.views()
    what = "; ".join(s.describe() for s in seen.values())
    serving = [s for s in seen.values() if s.active]
    if len(serving) > 1:
        raise Unsafe(f"{service.name}: two nodes serve at once ({what}); not touching either")
    if (
        serving
        and force
        and run.job.role.lease is not None
        and all(s is serving[0] or not s.reachable for s in seen.values())
    ):  # the gone active's lease expired before this run and the standby took it: confirm it and finish the takeover
        return Handover(service.name, seen, serving[0], what=what)
    if serving:
        if force:
            raise InvalidInput(force_refusal(service.name, serving[0]))
        active = serving[0].node
        standby, evidence = standby_ready(run, seen, active)
        return Handover(service.name, seen, standby, active, evidence=evidence)
    if not force:
        raise Unsafe(f"{service.name}: no node serves ({what}). If the active is gone, --force waits for its lease "
                     "to expire by database time and confirms the standby took over")  # fmt: skip
    if run.job.role.lease is None:
        raise InvalidInput(f"{service.name}: role {run.job.role.name} keeps no lease; --force cannot tell it is safe")
    waiting = [s for s in seen.values() if s.container is not None and s.container.running]
    if not waiting:
        raise Unsafe(f"{service.name}: no running standby to take over ({what}); nothing was started "
                     f"({program()} deploy replaces the nodes)")  # fmt: skip
    return Handover(service.name, seen, waiting[0], what=what)


def promote_service(run: ServiceDeploy, keep_old_stopped: bool, force: bool, asked: str | None = None) -> dict:
    """Assess the pair and act on it. ``asked``: the line a person confirmed (Handover.question); when the pair
    no longer matches it (another node active, another version), refused (Unsafe), nothing touched."""
    handover = assess(run, force)
    now = handover.question(keep_old_stopped)
    if asked is not None and now != asked:
        raise Unsafe(f"{run.service.name}: the pair changed since the question: now {now}; nothing was done "
                     f"({program()} promote-standby asks again)")  # fmt: skip
    if isinstance(handover, KeysHandover):
        return handover.promote(run, keep_old_stopped)
    if isinstance(handover, ForcedHandover):
        return handover.promote(run)
    if handover.active is None:
        return unplanned(run, handover.standby.node, handover.what)
    return planned(run, handover.seen, handover.active, keep_old_stopped, handover.evidence)


def dry_promotion(run: ServiceDeploy, keep_old_stopped: bool, force: bool) -> dict:
    """``promote-standby --dry-run`` of one service: observed and assessed as the promotion is (every refusal it
    would make, before any plan), then its plan said (``plan: <reason>; <step>; ...``) and returned as the result
    (records.DryRun: ``planned``, each step described), nothing touched. The plan is the one the promotion carries
    out: a keys promotion's (KeysHandover.plan: a role with kinds in its producers' kind); a lease handover's
    (LeaseModel.plan_promotion); an unplanned one (--force) starts nothing, so its one step is its question."""
    handover = assess(run, force)
    if isinstance(handover, KeysHandover):
        plan = handover.plan(run, keep_old_stopped)
        reason, steps = plan.reason, [s.describe() for s in plan.steps]
    elif isinstance(handover, ForcedHandover) or handover.active is None:
        reason, steps = "unplanned", [handover.question(keep_old_stopped)]
    else:
        plan = MODELS["lease"].plan_promotion(run.service, handover.seen, handover.standby.node.name,
                                              keep_old_stopped=keep_old_stopped)  # fmt: skip
        reason, steps = plan.reason, [s.describe() for s in plan.steps]
    run.say("", f"plan: {reason}" + "".join(f"; {step}" for step in steps), steps=steps)
    return DryRun(service=run.service.name, changed=True, planned=steps, secrets_moved=[]).record()


def force_refusal(service: str, active: NodeView) -> str:
    """Why --force is refused while ``active`` answers its health path (200 or not): it holds the lease."""
    if active.failing:
        return (f"{service}: {active.node.name} answers its health check unhealthy (failing: "
                f"{', '.join(active.failing)}), so it holds the lease: it is not gone. --force is for an active "
                "that is gone; without --force, promote-standby hands over from it")  # fmt: skip
    return f"{service}: {active.node.name} serves: --force is for an active that is gone"


def standby_ready(run: ServiceDeploy, seen: dict[str, NodeView], active: Node) -> tuple[NodeView, str]:
    """The standby of a planned handover from ``active`` and the evidence that it waits for the lease
    (plan.standby_evidence), or Unsafe (exit 4) naming why it cannot take over: unreachable, no running container,
    not running what the active runs, not shown to wait for the lease."""
    service, job = run.service, run.job
    standby = next(s for s in seen.values() if s.node is not active)
    refuse = f"{service.name}: refusing before touching the active {active.name}: standby {standby.node.name}"
    if not standby.reachable:
        raise Unsafe(f"{refuse} is unreachable")
    c = standby.container
    if c is None or not c.running:
        raise Unsafe(f"{refuse} has no running container ({program()} deploy replaces it)")
    # A promotion changes who is active, nothing else: the standby must run what the active runs (whatever the
    # inventory says now: a pair not yet deployed onto a change, or a secret moved in its backend, still fails over).
    a = seen[active.name].container
    ran = (
        (a.version, a.label("config"))
        if a
        else (cmd.image_tag(service.image), job.at(active.name).rendered.config_hash)
    )
    if (c.version, c.label("config")) != ran:
        raise Unsafe(
            f"{refuse} runs {c.version} / config {str(c.label('config'))[:12]}, not what the active runs: "
            f"{ran[0]} / {str(ran[1])[:12]} ({program()} deploy brings both to the inventory's)"
        )
    with LeaseView(run.fleet, job) as lease:
        waiting, why = run.waits.waiting_evidence(standby.node, lease, c)
    if not waiting:
        raise Unsafe(f"{refuse} is not shown to wait for the database lease: {why}")
    return standby, why


def planned(run: ServiceDeploy, seen: dict[str, NodeView], active: Node, keep_old_stopped: bool,
            evidence: str = "") -> dict:  # fmt: skip
    """Hand over from ``active`` to the other node (assess checked it can take over, ``evidence`` that it waits),
    as planned by the lease model (nodeops.activation.lease.LeaseModel.promotion) and carried out by the runner
    (ServiceRunner.promote): graceful stop, takeover, measured; then the old active restarted as the standby on its
    own inputs, unless ``keep_old_stopped``."""
    service = run.service
    standby = next(s for s in seen.values() if s.node is not active)
    plan = MODELS["lease"].plan_promotion(service, seen, standby.node.name, keep_old_stopped=keep_old_stopped)
    if run.stop.is_set():  # the last safe point: nothing was touched
        raise Interrupted(f"{service.name}: stopped before the handover as asked, nothing changed; {run.standing()}")
    run.say(standby.node.name, "waits for the lease", evidence=evidence)
    outage = ServiceRunner(run).promote(plan)
    figure = None if outage is None else round(outage, 3)  # None: not measured (OutageProbe.measured)
    return Promoted(service=service.name, active=standby.node.name, outage_seconds=figure,
                    outage_measured=outage is not None).record()  # fmt: skip


def unplanned(run: ServiceDeploy, standby: Node, what: str) -> dict:
    """Start nothing: a node that only looks dead may still hold the lease. Wait for the lease
    to expire by database time (a holder that keeps refreshing it is alive: refuse) and
    confirm that the waiting ``standby`` (assess found its container running) took it."""
    service = run.service
    with lease_reader(run.fleet, run.job) as read:
        first = read()
        run.say("", f"unplanned: {what}; lease {first.describe()}; waiting for {standby.name} to take it")
        started, deadline = time.monotonic(), time.monotonic() + max(first.remaining, 0) + SERVE_TIMEOUT
        last = first
        while not run.serving(standby):
            lease = read()
            if lease.holder == first.holder and lease.held and lease.remaining > last.remaining + 0.5:
                raise Unsafe(f"{service.name}: the lease of {first.holder[:8]} is being refreshed: its node is alive "
                             "(cut off from here, not from the database); not promoting")  # fmt: skip
            if time.monotonic() > deadline:
                raise OperationFailed(f"{service.name}: {standby.name} did not take the lease ({lease.describe()})")
            last = lease
            time.sleep(0.2)
        took = read()
    if not took.held:
        raise OperationFailed(f"{service.name}: {standby.name} serves but the lease is {took.describe()}")
    waited = time.monotonic() - started  # the part of the outage this run saw: it began before
    # A node opens its port only once it holds the lease: the holder now is the standby. When it was already the
    # holder at the first read, the old lease had expired before this run began and the standby took it then.
    when = (f"after {waited:.1f}s of waiting (it was {first.describe()})" if took.holder != first.holder else
            f"before this run waited (the lease, {first.describe()}, was already its own)")  # fmt: skip
    run.say(standby.name, f"took the lease {when}", waited_seconds=round(waited, 3))
    run.shred(standby.name, run.job.files_read("lease"))
    return Promoted(service=service.name, active=standby.name, outage_seconds=round(waited, 3)).record()


def stopped_after(run: ServiceDeploy, result: dict) -> dict:
    """``result`` of a promotion that ran to its end; Interrupted (exit 130) saying what runs now when a stop
    (Ctrl-C, SIGTERM) came while it ran: the handover under way was finished, as deploy finishes one."""
    if run.stop.is_set():
        raise Interrupted(f"{run.service.name}: the promotion was complete when the stop came; {run.standing()}")
    return result


def promote(fleet: Fleet, jobs: Sequence[Job], report: Reporter, keep_old_stopped: bool, force: bool = False,
            stop: StopRequests | None = None, inexact_ok: bool = False,
            ask: Callable[[list[str]], None] | None = None, dry_run: bool = False) -> list[dict]:  # fmt: skip
    """Promote the standby of every job's service, one after the other. A service that failed has
    ``error`` (its NodeopsError) in its result; errors.raise_failures turns those into the run's.
    ``stop``: once set, no further service starts, a service not yet at its handover stops before it, and a
    handover under way finishes (the old active restarted as the standby); each such service then ends
    Interrupted (exit 130), its message saying what runs.

    ``ask``: given one line per service that can be promoted (Handover.question: which node is active now,
    what it runs, which takes over), once, after every pair was observed and before any is touched; it raises
    to stop (tasks._cli.ask: InvalidInput when not confirmed). A service refused then (no standby to promote:
    Unsafe, exit 4) is not asked about. Each pair is observed again just before it is acted on, and refused if it
    no longer matches its line. None: nothing is asked (--yes, or no terminal).

    ``dry_run``: each service's plan said and returned (dry_promotion), nothing touched, nothing asked."""
    runs = []
    for job in jobs:
        run = ServiceDeploy(job, fleet, report)
        run.inexact_ok, run.stop = inexact_ok, stop or run.stop
        runs.append(run)
    asked: dict[str, str | None] = {run.service.name: None for run in runs}
    refused: dict[str, dict] = {}
    if ask is not None:
        for run in runs:
            line = functools.partial(lambda r: {"question": assess(r, force).question(keep_old_stopped)}, run)
            result = per_service(report, run.service.name, line)
            if "error" in result:
                refused[run.service.name] = result
            else:
                asked[run.service.name] = result["question"]
        lines = [line for line in asked.values() if line is not None]
        if lines:
            ask(lines)

    def one(run: ServiceDeploy) -> Callable[[], dict]:
        if stop is not None and stop.is_set():
            return not_started(run.service.name)
        if dry_run:
            return lambda: dry_promotion(run, keep_old_stopped, force)
        return lambda: stopped_after(run, promote_service(run, keep_old_stopped, force, asked[run.service.name]))

    # a dry run's result has no "now" (as deploy's): nothing changed, and its end line is no audit entry
    return [refused.get(run.service.name) or per_service(report, run.service.name, one(run),
                                                          None if dry_run else run.now) for run in runs]  # fmt: skip
