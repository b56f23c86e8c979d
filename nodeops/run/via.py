"""``fab deploy --via-standby``'s plan (KeysModel.plan_via_standby), handed here by ServiceRunner.apply, part by
part: the change's own steps (the standby
upgraded, later the old holder upgraded as the standby) through ServiceRunner, each promotion (``part``
``handover``, ``hand back``) as a planned promotion runs (nodeops.run.fence.KeysPromotion: fence first, the fence
confirmed, the new holder's ``confirm_forging``; never two holders), its gap recorded and said
(nodeops.run.keys.keys_gap).

Each part is a change of its own (``new_change``): what each of its nodes runs is learnt before it touches them
(keep_restorable), so a failed part is undone to what ran when it began, as promote-standby and deploy undo theirs,
and each node of a promotion starts on its own inputs (the standby's upgraded ones, once its upgrade is done).
``change`` is the change under way (nodeops.deploy.ServiceDeploy, or a kind group's view of it).
"""

from __future__ import annotations

from typing import Any

from nodeops import program
from nodeops.errors import Interrupted
from nodeops.plan import ServicePlan, Step
from nodeops.run.fence import KeysPromotion
from nodeops.run.keys import keys_gap
from nodeops.run.runner import ServiceRunner


def parts(plan: ServicePlan) -> list[tuple[str, tuple[Step, ...]]]:
    """``plan``'s steps cut where their ``part`` changes: (part, its steps), in order. Pure."""
    cut: list[tuple[str, list[Step]]] = []
    for step in plan.steps:
        if not cut or cut[-1][0] != step.part:
            cut.append((step.part, []))
        cut[-1][1].append(step)
    return [(part, tuple(steps)) for part, steps in cut]


class ViaStandbyRunner:
    """Carries a keys plan out on ``change`` (see the module's docstring)."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def apply(self, plan: ServicePlan, then: bool = False) -> None:
        """A plan without promotions: ServiceRunner's apply. Else each part in order (a promotion's failure, undone
        by it, ends the run as promote-standby's does; a stop (Ctrl-C, SIGTERM) is honoured at each part's safe
        points and between two parts: Interrupted, saying what was done and what finishes it)."""
        run = self.change
        cut = parts(plan)
        if all(not part for part, _ in cut):
            return ServiceRunner(run).apply(plan, then)
        for i, (part, steps) in enumerate(cut):
            if i and run.stop.is_set():
                raise Interrupted(self.stopped(cut[:i], cut[i:]))
            if i:
                run.new_change()
            one = ServicePlan(plan.service, steps, plan.reason)
            if not part:
                ServiceRunner(run).apply(one, then=True)
                continue
            run.keep_restorable(dict.fromkeys(s.node for s in steps))
            digest = run.digest  # a promotion labels each start with its node's image digest: the change's is kept
            gap = KeysPromotion(run).run(one)
            run.digest = digest
            keys_gap(run, steps[0].to, part, gap)
        return None

    def stopped(self, done: list[tuple[str, tuple[Step, ...]]], rest: list[tuple[str, tuple[Step, ...]]]) -> str:
        """Why a run stopped between two parts (``done``, then ``rest``) stops there, the commands that finish it
        and what runs now. Once the keys were handed over, a rerun of the deploy leaves them where they are (its
        plan starts from the holder then): promote-standby gives them back, after that deploy when a node still
        needs the change, alone when only the hand back is left (the deploy would find nothing to change)."""
        run = self.change
        where = f"--env {run.fleet.inventory.environment} --service {run.service.name}"
        finish = f"{run.rerun} --via-standby finishes the change"
        old = next((steps[0].node for part, steps in done if part == "handover"), None)  # its fence's node
        if old is not None:
            back = f"{program()} promote-standby {where} gives them back to {old}"
            finish = (f"every node runs the change and the keys were handed over: {back} (a deploy has nothing left "
                      "to change)" if all(part for part, _ in rest) else
                      f"{finish}; the keys were handed over: then {back}")  # fmt: skip
        return f"{run.service.name}: stopped as asked before `{rest[0][1][0].describe()}`; {finish}; {run.standing()}"
