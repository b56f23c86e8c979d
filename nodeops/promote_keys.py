"""promote-standby under activation ``keys``: the hot keys move from the node that holds them to the other, fence
first (nodeops.activation's KeysModel.plan_promotion plans it, nodeops.run.fence.KeysPromotion carries it out).

``--keep-old-stopped`` maps to the plan's ``stop`` fence (the old holder is stopped and stays stopped: the pair has
no standby); without it, the ``restart`` fence (the old holder is restarted without its hot files, on its own inputs,
and serves as the standby). ``--force`` (the holder cannot be reached) is refused unless the role defines a
chain-level fence (nodeops.role_hooks ``CHAIN_FENCE``): the engine cannot fence a node it cannot reach, and starting
the keys elsewhere could make two holders; with one, nodeops.promote_forced carries the promotion out.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodeops import program
from nodeops.activation import model_of
from nodeops.activation.keys import refuse_lost
from nodeops.errors import Interrupted, InvalidInput, Unsafe
from nodeops.facts.view import NodeView
from nodeops.plan import ServicePlan
from nodeops.promote_forced import ForcedHandover, assess_forced
from nodeops.records import Promoted
from nodeops.rotate.service import fence_pending
from nodeops.run.fence import KeysPromotion
from nodeops.run.keys import in_chain_units


@dataclass(frozen=True)
class KeysHandover:
    """What promote-standby will do to one ``keys`` pair, decided from what its nodes show (``seen``) before anything
    is touched: the hot keys move from ``holder`` (None: no node holds them) to ``new``."""

    service: str
    seen: dict[str, NodeView]
    holder: str | None
    new: str

    def question(self, keep_old_stopped: bool) -> str:
        """The confirmation's line: who holds the keys now (and what it runs) and which node gets them."""
        from nodeops.promote import version_of as version  # noqa: PLC0415 (promote imports this module)

        new = f"{self.new} ({version(self.seen[self.new])})"
        if self.holder is None:
            return f"{self.service}: no node holds the hot keys: start {new} with them"
        after = "it stays stopped" if keep_old_stopped else "it is restarted without them, as the standby"
        return (f"{self.service}: move the hot keys from {self.holder} (holder, {version(self.seen[self.holder])}) "
                f"to {new}, {self.holder} fenced first ({after})")  # fmt: skip

    def plan(self, run, keep_old_stopped: bool) -> ServicePlan:
        """The promotion's steps, under the role's model (model_of: a role with kinds plans it in the kind whose
        holder moves, a pool's producers; its other nodes are no step), with the fence ``--keep-old-stopped`` asks
        for. Pure: what was seen is ``seen``."""
        fence = "stop" if keep_old_stopped else "restart"
        return model_of(run.job.role).plan_promotion(run.service, self.seen, self.new, fence=fence)

    def promote(self, run, keep_old_stopped: bool) -> dict:
        """Carry the promotion out on ``run`` (nodeops.deploy.ServiceDeploy): planned with the fence
        ``--keep-old-stopped`` asks for, each node restarted on its own inputs; the result with the gap. A stop
        (Ctrl-C, SIGTERM) ends it with Interrupted (exit 130) at a safe point (KeysPromotion.stop_before) or once it
        is seen complete (nodeops.run.fence.seen_complete)."""
        plan = self.plan(run, keep_old_stopped)
        if run.stop.is_set():  # the last safe point: nothing was touched
            raise Interrupted(f"{self.service}: stopped before the fence as asked, nothing changed; {run.standing()}")
        run.say("", f"plan: {plan.reason}" + "".join(f"; {s.describe()}" for s in plan.steps))
        run.keep_restorable(dict.fromkeys(step.node for step in plan.steps))
        try:
            gap = KeysPromotion(run).run(plan)
        except Interrupted:  # stopped at a safe point, or complete: the pair is whole, on what each label says
            run.drop_previous()
            raise
        run.drop_previous()
        figure = None if gap is None else round(gap, 3)
        return Promoted(service=self.service, active=self.new, outage_seconds=None, outage_measured=False,
                        keys_gap_seconds=figure, keys_held_before=self.holder is not None,
                        **in_chain_units(run, figure)).record()  # fmt: skip


def assess_keys(run, force: bool) -> KeysHandover | ForcedHandover:
    """Observe the pair and decide, touching nothing: a KeysHandover, or the refusal (plan_promotion's: Unsafe,
    exit 4). ``force``: InvalidInput (exit 2) when every node can be seen (fence it: no --force); the standby cut
    off while the holder is seen: Unsafe (refuse_lost: make it reachable); else, with the role's chain fence, the
    ForcedHandover (nodeops.promote_forced.assess_forced, its refusals), without one Unsafe (exit 4,
    force_refusal), one line saying why and what the operator must do. A forced promotion's pending version, not
    finished (fence_pending), comes first: ``--force`` completes it whoever is seen (review rev16c F3: with the new
    holder hot, its rerun was refused as a promotion of the cut-off node; with every node seen, as no --force);
    without ``--force`` it is refused (Unsafe, FencePending.refusal naming that command)."""
    service = run.service
    seen = run.observer.views()
    lost = [s.node.name for s in seen.values() if not s.reachable]
    if run.job.role.hooks.chain_fence is not None and (fence := fence_pending(run.fleet.inventory, run.job)):
        if not force:  # the planned handover would push the store's current keys, the ones the fence supersedes
            raise Unsafe(fence.refusal(service.name, "a planned promotion would hand over the keys it supersedes"))
        return assess_forced(run, seen, lost, fence)  # a forced promotion left under way: its rerun, in any state
    if force and not lost:
        raise InvalidInput(f"{service.name}: every node can be seen: --force is for a holder that cannot be reached; "
                           "without --force, promote-standby fences the holder first")  # fmt: skip
    if force:
        if any(s.hot for s in seen.values()):  # the holder is seen: the node cut off is the standby (refuse_lost)
            refuse_lost(service.name, seen)
        if run.job.role.hooks.chain_fence is not None:
            return assess_forced(run, seen, lost)
        raise Unsafe(force_refusal(service.name, lost, run.job.role))
    # its refusals: two holders, a node unseen, no running standby; a role with kinds: within its producers' kind
    plan = model_of(run.job.role).plan_promotion(service, seen)
    holder = next((s.node.name for s in seen.values() if s.hot), None)
    return KeysHandover(service.name, seen, holder, next(s.node for s in plan.steps if s.hot))


def force_refusal(service: str, lost: list[str], role) -> str:
    """Why ``promote-standby --force`` is refused under ``keys`` with ``lost`` unreachable, and what to do, in one
    line: the engine cannot fence a node it cannot reach, and ``role`` has no chain-level fence (``CHAIN_FENCE``)."""
    nodes = ", ".join(lost)
    chain = f"role {role.name} has no chain-level fence (CHAIN_FENCE)"
    return (f"{service}: {nodes} cannot be reached, so it cannot be fenced: it may still hold the hot keys and use "
            f"them, and starting them elsewhere would make two holders; {chain}; nothing was started. Make sure its "
            f"node has stopped (stop its container, or power its host off), make it reachable again, then run "
            f"{program()} promote-standby without --force")  # fmt: skip
