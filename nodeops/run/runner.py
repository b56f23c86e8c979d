"""The service runner: applies a pure plan (nodeops.plan.ServicePlan) step by step on one service's pair, reports
each step, stops at safe points when asked (stop_action), and turns a failed step into its undoing and the message
that says what serves now; and a planned promotion's plan (Model.plan_promotion) the same way
(ServiceRunner.promote).

The runner decides the order and the failure path; what each step does on a node, and how a failure is undone, is
the change's (``change``: nodeops.deploy.ServiceDeploy, through the ``Change`` protocol below), whose node actions
send the commands (nodeops.run.node).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from nodeops.errors import EXIT_UNSAFE, Interrupted, OperationFailed, Unsafe
from nodeops.plan import IN_PLACE, ServicePlan, replaces_a_standby
from nodeops.run.keys import in_place_gap, refuse_second_holder


class ChangeFailed(OperationFailed):
    """A failed change whose message already says what serves now (ServiceDeploy.confirm)."""


class ChangeRefused(ChangeFailed):
    """A change stopped as unsafe (exit 4), its message saying what serves now: a node left stopped because no image
    the run holds can run on the database its new container migrated (ServiceDeploy.previous_on; the message names
    the fix forward), or a node the plan took for the standby found holding the lease (ServiceRunner.steps)."""

    exit_code = EXIT_UNSAFE


class Change(Protocol):
    """What the runner asks of the change it applies (nodeops.deploy.ServiceDeploy is the one): the service
    (``service``: nodeops.inventory.Service; ``name``: its container's), this run's inputs (``job``), the run's stop
    requests (``stop``: nodeops.stopping.StopRequests), the step a stop was first seen before where it could not stop
    (``stop_seen``), each handover's outage (``outages``, seconds or None) and the fix forward of a change that cannot
    be undone (``forward``); and the steps and undoings below."""

    service: Any
    name: str
    job: Any
    fleet: Any
    stop: Any
    stop_seen: int | None
    outages: list[float | None]
    forward: list[str]
    waits: Any  # nodeops.run.awaits.Awaits: await_serving, await_waiting, others_silent
    ran_on: dict[str, Any]  # node -> the inputs (nodeops.deploy.Job) its container was started from
    rerun: str  # the command that carries this change out again (ServiceChange.rerun)
    model: Any  # nodeops.activation.Model, the role's: whether a standby is silent (silent_standby)

    def keep_restorable(self, nodes) -> None: ...
    def health(self, node) -> tuple[bool, tuple[str, ...]]: ...
    def say(self, node: str, message: str, **data) -> None: ...
    def replace(self, node: str, hot: bool = False) -> None: ...
    def handover(self, old, new, restore_standby: bool = True, shred: bool = True) -> float | None: ...
    def shred(self, node: str, names) -> None: ...
    def restore(self, node: str, why: str) -> str: ...
    def confirm(self, what: str, unsafe: bool = False) -> ChangeFailed: ...
    def previous_on(self, node: str, container): ...
    def start_again(self, node: str, again) -> str: ...
    def settle(self, name: str, job) -> str: ...
    def inspect(self, node: str, name: str | None = None): ...
    def standing(self) -> str: ...


def stop_action(plan: ServicePlan, i: int) -> str | None:
    """What a run asked to stop (Ctrl-C, SIGTERM) does before step ``i`` of ``plan``, so that the pair is left whole:

    - ``"stop"``: stop as things are: before the first step, or (a fresh start) before the next node is replaced
      once the first one serves;
    - ``"undo"``: before the handover of a rolling replace (or while the standby is awaited), put the nodes this run
      replaced back on their previous containers, then stop: the pair as it was found;
    - ``"restart"``: just after a handover, start the old active (stopped by it) again on its own inputs as the
      standby, then stop, rather than replace it;
    - None: no safe point (a node replaced but not yet awaited, the old active being replaced after its
      handover): go on to the next step.

    A replace counts as a standby's when the plan awaits that node as a waiting standby right after it."""
    if i == 0:
        return "stop"
    done = plan.steps[:i]
    if done[-1].action == "handover":
        return "restart"
    if any(s.action == "handover" for s in done):
        return None
    replaced = [j for j, s in enumerate(done) if s.action == "replace"]
    if replaced and all(j + 1 < len(plan.steps) and plan.steps[j + 1].action == "await-waiting" for j in replaced):
        return "undo"
    return "stop" if plan.steps[i].action == "replace" else None


def standby_again_on_own(run: Change, node: str) -> str:
    """The old active of ``run``'s finished handover (its container stopped by it) started again on its own inputs
    (previous_on) and checked as the standby (settle); returns what was done, as "; ...". Never raises: a
    failure is said (what runs is said after it, by standing)."""
    try:
        again = run.previous_on(node, run.inspect(node))
        if again is None:
            return f"; {node}'s container was left stopped (it could not run on the database)"
        how = run.start_again(node, again)
        run.say(node, f"started {run.name} again {how}, as the standby")
        return f"; {node}'s container was started again {how} as the standby, and it {run.settle(node, again)}"
    except OperationFailed as exc:
        return f"; starting {node}'s container again as the standby failed: {exc}"


class ServiceRunner:
    """Applies one plan to ``change``'s pair (see the module's docstring)."""

    def __init__(self, change: Change) -> None:
        self.change = change
        self.service = change.service.name

    def apply(self, plan: ServicePlan, then: bool = False) -> None:
        """Carry the plan out; a failed step puts the node's previous container back (on its own inputs) and raises,
        saying what serves now (confirm). When ``stop`` is set (Ctrl-C, SIGTERM), the run stops at the next safe point
        (stop_action, carried out by stop_before), raising Interrupted that says what it did and what runs now. A stop
        past the last safe point (the old active replaced after its handover) lets the change end, and Interrupted says
        so, naming its step; unless ``then``: more follows (activation.groups.GroupsRunner), which honours it."""
        run = self.change
        if any(step.part for step in plan.steps):  # deploy --via-standby's promotions among the steps
            from nodeops.run.via import ViaStandbyRunner  # noqa: PLC0415 (via runs its change's parts through this)

            return ViaStandbyRunner(run).apply(plan, then)
        try:
            self.steps(plan)
        except ChangeFailed:
            raise
        except OperationFailed as exc:  # a failure no step undid (a node cut off, say): what serves now, said
            raise run.confirm(str(exc)) from None
        if not run.stop.is_set() or then:
            return
        if not plan.steps:
            raise Interrupted(f"{self.service}: up to date, nothing to change when the stop came; {run.standing()}")
        during = plan.steps[(len(plan.steps) if run.stop_seen is None else run.stop_seen) - 1]
        raise Interrupted(f"{self.service}: the stop came during `{during.describe()}`, past the last safe point, so "
                          f"the change went on to its end: it is complete; {run.standing()}")  # fmt: skip

    def stop_before(self, plan: ServicePlan, i: int) -> None:
        """A stop (Ctrl-C, SIGTERM) seen before step ``i``, carried out as stop_action says: returns (the run goes
        on) only when step ``i`` is no safe point; raises Interrupted otherwise, its message saying what was done
        and what runs now (standing). Before the handover of a rolling replace, the nodes this run replaced go back
        on their previous containers and inputs, as after a failure (restore), so the pair is left as it was found
        (issue 13 rv7 #6: a standby left on the new inputs made a mixed pair that promote-standby refuses). After the
        handover, the old active is started again on its own inputs as the standby and the run stops there (rv7 #7).
        Once something changed, the message names the deploy that finishes the change."""
        run = self.change
        action = stop_action(plan, i)
        if action is None:
            if run.stop_seen is None:
                run.stop_seen = i
            return
        name, step = self.service, plan.steps[i]
        finish = f"{run.rerun} finishes"
        done = f"{finish} the change" if i else "nothing was changed"
        if action == "stop":
            why = f"{name}: stopped before `{step.describe()}` as asked; {done}"
        elif action == "undo":
            why = f"{name}: stopped before `{step.describe()}` as asked, undoing this run's change"
            for node in dict.fromkeys(s.node for s in plan.steps[:i] if s.action == "replace"):
                why = run.restore(node, why)
        else:  # "restart": just after the handover
            handover = plan.steps[i - 1]
            why = (f"{name}: stopped after `{handover.describe()}` as asked, once the handover was done, before "
                   f"`{step.describe()}`{standby_again_on_own(run, handover.node)}; {handover.to} runs this change, "
                   f"{handover.node} does not: {finish} it")  # fmt: skip
        forward = "".join(f"; {note}" for note in run.forward)
        raise Interrupted(f"{why}{forward}; {run.standing()}")

    def steps(self, plan: ServicePlan) -> None:
        """Each step of ``plan`` in order, said before it runs; a failed step is undone (restore) and ends the run
        with what serves now (confirm)."""
        run = self.change
        nodes = {n.name: n for n in run.service.nodes}
        run.keep_restorable(step.node for step in plan.steps if step.action in ("replace", "handover"))
        in_place: dict[str, float] = {}  # a keys holder restarted in place -> when (its gap: in_place_gap)
        for i, step in enumerate(plan.steps):
            if run.stop.is_set():
                self.stop_before(plan, i)
            node = nodes[step.node]
            if run.model.silent_standby and replaces_a_standby(step) and any(health := run.health(node)):
                raise run.confirm(f"{self.service} {step.node}: holds the lease now (it answers "
                                  f"{run.job.role.health}{'' if health[0] else ' unhealthy'}), but the plan took it "
                                  "for the standby: the active changed since the plan (a failover, its old active cut "
                                  f"off?); {step.node} was not replaced; deploy again to plan from what runs now",
                                  unsafe=True)  # fmt: skip
            if step.hot:  # activation keys: never two holders, whatever changed since the plan
                try:
                    refuse_second_holder(run, step.node)
                except Unsafe as exc:
                    raise run.confirm(str(exc), unsafe=True) from None
            run.say(step.node, step.describe())
            if step.action == "handover":
                run.outages.append(run.handover(node, nodes[step.to]))
                continue
            try:
                if step.action == "replace":
                    in_place |= {step.node: time.monotonic()} if step.hot and step.detail == IN_PLACE else {}
                    run.replace(step.node, hot=step.hot)
                elif step.action == "await-serving":
                    took = run.waits.await_serving(node)
                    run.say(step.node, f"serving after {took:.1f}s")
                    run.shred(step.node, run.job.all_files)
                    if step.node in in_place:
                        in_place_gap(run, node, in_place.pop(step.node))
                else:
                    evidence = run.waits.await_waiting(node)
                    run.say(step.node, "waiting for the lease", evidence=evidence)
                    run.shred(step.node, run.job.files_read("start"))
            except OperationFailed as exc:
                if step.action == "await-waiting" and any(run.health(node)) and run.waits.others_silent(node):
                    # the node the pair handed over to stopped answering, and this one, on this change's inputs,
                    # took the lease it left: the change is done here; putting this node back would stop the one
                    # node serving (rv4: a second outage of 1.9 s, and a message of "two actives")
                    raise run.confirm(f"{self.service} {step.node}: took the lease while it was awaited as the "
                                      "standby, as no other node answers (one cut off, or its container gone?); "
                                      "it runs this change's inputs and was left serving") from None  # fmt: skip
                raise run.confirm(run.restore(step.node, str(exc))) from None

    def promote(self, plan: ServicePlan) -> float | None:
        """Carry out a lease promotion's plan (Model.plan_promotion: handover, start-again or
        keep-stopped, shred); the handover's outage (seconds; None: not measured). The old active restarts on its own
        inputs (``ran_on``). No safe point inside: a stop is the caller's to check before and after. A failure after
        the handover raises what serves now (confirm); ValueError for a step no lease promotion has."""
        run = self.change
        nodes = {n.name: n for n in run.service.nodes}
        outage, took = None, ""
        for step in plan.steps:
            node = nodes[step.node]
            if step.action == "handover":
                run.say("", f"promote {step.to}: stop {step.node} gracefully, {step.to} takes the lease")
                outage = run.handover(node, nodes[step.to], restore_standby=False, shred=False)
                took = f"; after {step.to} took over from {step.node}"
                continue
            try:
                if step.action == "start-again":
                    own = run.ran_on[step.node]
                    run.start_again(step.node, own)
                    run.waits.await_waiting(node)
                    run.shred(step.node, own.files_read("start"))
                    run.say(step.node, "restarted as the standby, waiting for the lease")
                elif step.action == "keep-stopped":
                    run.say(step.node, "left stopped (--keep-old-stopped): the pair has no standby")
                elif step.action == "shred":
                    run.shred(step.node, run.job.files_read(step.detail))
                else:  # a plan of another model (keys: fence first) runs elsewhere (nodeops.run.fence)
                    raise ValueError(f"{self.service}: `{step.describe()}` is no step of a lease promotion")
            except OperationFailed as exc:  # what serves now, seen (a node that took over is left serving)
                raise run.confirm(f"{exc}{took}") from None
        return outage
