"""promote-standby --force under activation ``keys``: the holder cannot be reached, so the engine cannot fence it;
the fence is the chain's own rule, the role's ``CHAIN_FENCE`` (nodeops.role_protocols.ChainFence).

The promotion is the role's one issued rotation (role.yaml ``rotation.<name>`` of a kind in role.py ``ISSUERS``:
its secret, its ``reads``, its issuer's ``query``, ``in_use`` and ``taken``, nodeops.rotate.issued) carried out for
the reachable standby instead of the holder, with the fence's ``fence`` making the new value (one that supersedes
every value the lost holder may hold: a pool's certificate with the issue counter one past them all):

  createSecret  the role's query run in the standby's container, ``fence`` given the reads, its output and an
                interrupted run's pending version (and whether the standby runs it): the new hot keys staged
                AWSPENDING; a refusal (exit 2, 4) before anything is written;
  setSecret     the standby restarted in place with the hot files (the keys runner's hot start, which skips the
                lost holder it cannot see: the chain fences it, ``chain_fenced``);
  testSecret    the standby uses the new value and the chain took it;
  finishSecret  the ``updates`` (the next issue counter) and AWSCURRENT moved: a later deploy or rotation starts
                from the new value.

A rerun after a kill finds AWSPENDING and hands it to ``fence`` with whether the standby runs it, so it converges on
the same version. Refused (Unsafe, exit 4) before anything is staged without a reachable running standby. The result
and a step line say what the operator must still do about the lost host (it must never come back with its keys)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nodeops import program
from nodeops.activation import model_of
from nodeops.errors import InvalidInput, Unsafe
from nodeops.facts.holders import FencePending
from nodeops.facts.view import NodeView
from nodeops.inventory import Node
from nodeops.records import Promoted
from nodeops.role_protocols import ChainFence, Issued
from nodeops.roles import RotationSpec
from nodeops.rotate.issued import IssuedValue
from nodeops.rotate.rules import check_service
from nodeops.rotate.service import ServiceRotation

if TYPE_CHECKING:
    from nodeops.deploy import ServiceDeploy


def fence_rotation(role) -> RotationSpec:
    """The rotation a role's chain fence is carried out as: its one rotation whose kind its module issues
    (role.yaml ``rotation.<name>`` of a kind in ``ISSUERS``). InvalidInput (exit 2) for none or several."""
    issued = [s for s in role.rotation.values() if s.kind in role.hooks.issuers]
    if len(issued) != 1:
        raise InvalidInput(f"role {role.name}: its chain-level fence (CHAIN_FENCE) is carried out as the role's one "
                           f"rotation of a kind its module issues (role.yaml rotation.<name>, role.py ISSUERS); it "
                           f"has {len(issued)}: give it exactly one")  # fmt: skip
    return issued[0]


def lost_host_line(service: str, lost: tuple[str, ...], change: str, back: bool = False) -> str:
    """What the operator must still do about the lost holder(s), in one line; ``back``: they can be reached again,
    holding the keys this promotion supersedes (a rerun's: the lost holder came back before it)."""
    nodes = ", ".join(lost)
    if back:
        return (f"{service}: {nodes} was not touched and holds hot keys this promotion supersedes: never keep it with "
                f"them: stop its container and wipe its tmpfs (or power its host off), then {program()} deploy "
                f"restarts it without them as the standby; the chain refuses its old keys now ({change})")  # fmt: skip
    return (f"{service}: {nodes} was not touched and must never come back with its hot keys: stop its container "
            f"and wipe its tmpfs (or power its host off) before it is reachable again, then {program()} deploy "
            f"restarts it without them as the standby; the chain refuses its old keys now ({change})")  # fmt: skip


@dataclass(frozen=True)
class ForcedHandover:
    """promote-standby --force under keys, decided before anything is touched: ``lost`` cannot be reached (the
    holder, as far as can be known), ``new`` (reachable, running, without the hot keys) gets new ones under the
    role's chain fence (``change``: how it names it)."""

    service: str
    seen: dict[str, NodeView]
    lost: tuple[str, ...]
    new: str
    change: str

    def question(self, keep_old_stopped: bool) -> str:  # noqa: ARG002 (a handover's shape: the lost node is not touched)
        """The confirmation's line: who is lost (cut off, or back with superseded keys: a rerun's), who gets the
        keys, under which fence."""
        cut = [n for n in self.lost if not self.seen[n].reachable]
        lost = ", ".join(cut) + " cannot be reached" if cut else f"{', '.join(self.lost) or 'no node'} holds old keys"
        return (f"{self.service}: {lost}: start {self.new} with new hot keys under the chain's own fence "
                f"({self.change}), so the chain refuses the lost holder's")  # fmt: skip

    def promote(self, run: ServiceDeploy) -> dict:
        """Carry it out on ``run``'s service (see the module): the result, a Promoted record (no outage measured:
        the lost holder answered nothing before). OperationFailed/Unsafe/InvalidInput as the rotation's."""
        job, inventory = run.job, run.fleet.inventory
        spec = fence_rotation(job.role)
        check_service(inventory, job.service, [spec])  # a backend rotation does not write: exit 2, nothing staged
        rotation = ServiceRotation(inventory, job, run.fleet, run.report, {})
        rotation.stop, rotation.deploy = run.stop, run  # the promotion's change: its connections, its observation
        run.chain_fenced = frozenset(self.lost)  # the hot start does not wait to see them (run.keys)
        kind = type("Fenced", (FencedValue,), {"new": self.new, "fence": job.role.hooks.chain_fence})
        result = rotation.run([spec], {spec.name: kind})
        for line in result.get("said", ()):  # the role's line on the hot keys now in force (Issued.said)
            run.say("", f"{self.service}: {line}")
        for back in (False, True):  # the lost holders still cut off, then those back with their keys (a rerun's)
            if nodes := tuple(n for n in self.lost if self.seen[n].reachable == back):
                run.say("", lost_host_line(self.service, nodes, self.change, back))
        return Promoted(service=self.service, active=self.new, outage_seconds=None, outage_measured=False).record()


class FencedValue(IssuedValue):
    """The issued rotation for ``new`` (not the holder: it cannot be reached), its value made by ``fence``."""

    new: str = ""
    fence: ChainFence | None = None
    fences = True

    def holder_of(self) -> Node:  # the standby assess chose, observed by the promotion
        return next(n for n in self.rotation.job.service.nodes if n.name == self.new)

    def make(self, secrets: dict[str, str], pending: dict[str, str] | None, held: bool) -> Issued:
        return self.fence.fence(self.variables, secrets, self.query(), pending, held)


def records(view: NodeView, fence: FencePending) -> bool:
    """Whether ``view``'s running container holds the hot keys at ``fence``'s pending version (its secrets label)."""
    if not (view.reachable and view.hot and view.container is not None and view.container.running):
        return False
    try:
        recorded = json.loads(view.container.label("secrets") or "{}")
    except ValueError:
        return False
    return isinstance(recorded, dict) and recorded.get(fence.secret) == fence.version


def assess_forced(run: ServiceDeploy, seen: dict[str, NodeView], lost: list[str],
                  fence: FencePending | None = None) -> ForcedHandover:  # fmt: skip
    """The forced promotion of ``run``'s service whose ``lost`` nodes cannot be reached, or its refusal before
    anything is touched: InvalidInput (exit 2) when the role's chain fence has no rotation to be carried out as;
    Unsafe (exit 4) when no node of the keys kind is reachable, running and without the hot keys (no standby to
    take them). Pure over ``seen``.

    ``fence``: a forced promotion's pending version, not finished (nodeops.rotate.service.fence_pending): this run
    completes it in whatever state that run left (review rev16c F3). The node running it (records) takes it again;
    without one, a standby as above. Every other node of the keys kind that cannot be reached or holds hot keys (the
    lost holder, cut off or back with its keys) is the chain's to fence: ``lost``, whatever ``lost`` was given."""
    role, service = run.job.role, run.service
    hook = role.hooks.chain_fence
    fence_rotation(role)
    model = model_of(role)
    keyed = [s for s in seen.values() if model.for_kind(s.node.kind).has_standby]
    ready = [s for s in keyed if fence is not None and records(s, fence)] or [
        s for s in keyed if s.reachable and not s.hot and s.container is not None and s.container.running]  # fmt: skip
    if ready and fence is not None:
        lost = [s.node.name for s in keyed if s is not ready[0] and (not s.reachable or s.hot)]
    if not ready:
        what = "; ".join(s.describe() for s in seen.values())
        raise Unsafe(f"{service.name}: no reachable standby to take the hot keys ({what}); nothing was staged: make a "
                     f"standby reachable and running ({program()} deploy), then run again")  # fmt: skip
    return ForcedHandover(service.name, seen, tuple(lost), ready[0].node.name, hook.change)
