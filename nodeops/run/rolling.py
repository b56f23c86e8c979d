"""Carrying out an activation ``all`` plan (nodeops.activation.all_nodes.AllModel.plan_change: every node serves; no
lease, no standby, no handover): each node replaced in turn and awaited serving before the next (AllRunner), what
serves after a failure (AllServes), and the end state (every node serving: nodeops.run.end.EndState.verify_all).

The order of a run, for each node of the plan:

1. before its replace, look again (fresh health replies, not the plan's picture) that another node of the service
   serves (200); when none does, the run stops there and nothing more is replaced (ChangeRefused, exit 4), unless
   the plan itself found no node serving for this replace (``not serving``: a fresh service, or a service that is
   down: replacing a node that serves nobody cannot take anything down), and the node is not serving now either;
2. replace it (ServiceChange.replace: the previous container set aside, a new one on this run's inputs);
3. await it serving (Awaits.await_serving), then shred every file it read.

A failed step (the container does not start, never serves within the wait, its host cut off) is undone on that node
only (nodeops.run.restore: its previous container back on its own inputs, awaited serving) and the run stops: the
nodes not yet replaced are not touched, those replaced before stay on the new inputs, serving. The error says what
serves now. A stop (Ctrl-C, SIGTERM) is honoured before a replace, never between a replace and its await
(ServiceRunner.stop_before, runner.stop_action).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from nodeops import program
from nodeops.errors import OperationFailed
from nodeops.plan import NOT_SERVING, ServicePlan, Step
from nodeops.run.awaits import LB_TIMEOUT, POLL
from nodeops.run.runner import ChangeFailed, ChangeRefused, ServiceRunner


class AllRunner(ServiceRunner):
    """Applies an activation ``all`` plan to ``change`` (see the module's docstring); ServiceRunner's ``apply`` (the
    failure and stop paths) with these steps."""

    def steps(self, plan: ServicePlan) -> None:
        """Each step of ``plan`` in order, said before it runs: a replace only once another node is seen serving
        (others_serving), an await-serving followed by the shredding of every file the node read. A failed step is
        undone on its node (restore) and ends the run, saying what serves now (confirm). ValueError for a step that
        no activation all plan has (a handover, await-waiting)."""
        run = self.change
        nodes = {n.name: n for n in run.service.nodes}
        run.keep_restorable(step.node for step in plan.steps if step.action == "replace")
        for i, step in enumerate(plan.steps):
            if run.stop.is_set():
                self.stop_before(plan, i)
            if step.action not in ("replace", "await-serving"):
                raise ValueError(f"{self.service}: `{step.describe()}` is no step of an activation all plan")
            node = nodes[step.node]
            if step.action == "replace":
                self.others_serving(step)
            run.say(step.node, step.describe())
            try:
                if step.action == "replace":
                    run.replace(step.node)
                else:
                    took = run.waits.await_serving(node)
                    run.say(step.node, f"serving after {took:.1f}s")
                    run.shred(step.node, run.job.all_files)
            except OperationFailed as exc:
                raise run.confirm(run.restore(step.node, str(exc))) from None

    def others_serving(self, step: Step) -> list[str]:
        """The other nodes that answer their health path with 200 now, asked afresh just before ``step`` (a replace);
        ChangeRefused (exit 4, nothing of this step done) when none does, unless the plan found none for it either
        (``not serving``) and the node itself serves nobody now. A node that cannot be asked counts as not serving."""
        run = self.change
        serving, itself = [], False
        for n in run.service.nodes:
            with contextlib.suppress(OperationFailed):
                if run.health(n)[0]:
                    if n.name == step.node:
                        itself = True
                    else:
                        serving.append(n.name)
        if serving or (step.detail == NOT_SERVING and not itself):
            return serving
        why = "it serves alone now" if itself else "the plan counted on another node serving"
        raise run.confirm(f"{self.service} {step.node}: no other node serves just before its replace ({why}); "
                          f"{step.node} was not replaced, and no node after it; see {program()} status --env "
                          f"{run.fleet.inventory.environment}, then deploy again", unsafe=True)  # fmt: skip


class AllServes:
    """What serves after a failed change of an activation ``all`` service (``change``: nodeops.deploy.ServiceDeploy,
    its service, health replies, waits and fleet)."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def failure(self, what: str, unsafe: bool = False) -> ChangeFailed:
        """The error that ends the failed change: ``what`` happened, then each node serving or not, as asked now
        (waited for up to LB_TIMEOUT while no node serves or the load balancer answers no 200), or SERVICE DOWN; then
        the next commands whenever a node does not serve (the deploy brings it to this change). ChangeRefused (exit 4)
        with ``unsafe``."""
        run = self.change
        deadline = time.monotonic() + LB_TIMEOUT
        while True:
            serving = []
            for n in run.service.nodes:
                with contextlib.suppress(OperationFailed):
                    if run.health(n)[0]:
                        serving.append(n.name)
            through = not run.service.load_balancer or run.waits.service_answers()
            if (serving and through) or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        failure = ChangeRefused if unsafe else ChangeFailed
        silent = [n.name for n in run.service.nodes if n.name not in serving]
        then = f"see {program()} status --env {run.fleet.inventory.environment}, then {run.rerun}"
        if serving:
            via = "" if through else "; the load balancer answers no 200"
            state = f"serving: {', '.join(serving)}" + (f"; not serving: {', '.join(silent)}" if silent else "") + via
            run.say("", state, serving=serving)
            return failure(f"{what}; {state}" + (f"; {then}" if silent else ""))
        run.say("", "SERVICE DOWN: no node serves", service_down=True)
        return failure(f"{what}; SERVICE DOWN: no node serves; {then}")
