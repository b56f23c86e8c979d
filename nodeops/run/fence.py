"""Activation ``keys``, carried out: what serves after a failed change (failure), and a planned promotion run step by
step, fence first, with its undoing (KeysPromotion).

A planned promotion's plan (Model.plan_promotion under ``keys``): the holder fenced (restarted without
its hot files, or stopped), awaited fenced (nodeops.run.keys.await_fenced), only then the new holder replaced with the
hot files and awaited serving, and a restarted old holder awaited serving as the standby. Each node is started on
its own inputs (``ran_on``: a promotion changes who holds the keys, nothing else) and labelled with the registry
digest of the image it starts, as its node holds it (held_digest: a promotion pulls nothing). The gap, the time no
node holds the keys, is measured from the start of the fence to the new holder serving (an upper bound: the old
holder may stop using its keys a little after the fence began).

``change`` is the change under way (nodeops.deploy.ServiceDeploy): its node actions (``on``, replace, upload, shred),
observations (inspect, health, waits) and what it learnt of each node (``ran_on``, ``moved``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from nodeops import program
from nodeops.commands import node as cmd
from nodeops.errors import Interrupted, NodeopsError, OperationFailed, Unsafe
from nodeops.facts import image as image_facts
from nodeops.job import with_held_hot_secrets
from nodeops.plan import ServicePlan, Step
from nodeops.run.keys import (
    STOPPED,
    FenceFailed,
    await_fenced,
    confirm_fenced,
    confirm_forging,
    refuse_second_holder,
)
from nodeops.run.restore import start_own
from nodeops.run.runner import ChangeFailed, ChangeRefused


def failure(change: Any, what: str, unsafe: bool = False) -> ChangeFailed:
    """The error that ends a failed ``keys`` change: ``what``, then each node as observed now (whether it holds the
    hot keys, serves, answers unhealthy, answers nothing, is down or cannot be seen) and, when no node holds them,
    ``NO NODE HOLDS THE KEYS`` with the command that sees why. A node this change gave files to that serves has
    read them: what is left of them is shredded. ChangeRefused (exit 4) with ``unsafe`` or when a node was left
    stopped (``stuck``)."""
    run = change
    seen, holders = [], []
    for node in run.service.nodes:
        try:
            c = run.inspect(node.name)
        except OperationFailed:
            seen.append(f"{node.name} cannot be seen")
            continue
        ok, failing = run.health(node)
        state = ("serves" if ok else f"answers unhealthy (failing: {', '.join(failing)})" if failing else
                 "answers nothing" if c is not None and c.running else "is down")  # fmt: skip
        if c is not None and c.hot:
            holders.append(node.name)
            state += " with the hot keys"
        if ok and node.name in run.held_back:  # given files by this change, and it serves: it has read them
            with contextlib.suppress(OperationFailed):
                run.shred(node.name, run.job.all_files)
        seen.append(f"{node.name} {state}")
    down = "" if holders else (f"; NO NODE HOLDS THE KEYS: see {program()} status --env "
                               f"{run.fleet.inventory.environment}")  # fmt: skip
    if not holders:
        run.say("", "no node holds the keys", service_down=True)
    kind = ChangeRefused if unsafe or run.stuck else ChangeFailed
    return kind(f"{what}; now: {', '.join(seen)}{down}")


def held_digest(change: Any, node: str, image: str) -> str | None:
    """The registry digest (``sha256:<64 hex>``) of ``image`` as ``node`` holds it, read with `docker image inspect`
    (the image a `docker run` of that reference starts there); None when the node holds no such image or the engine
    knows no registry digest of it (a local-only image)."""
    res = change.x(node, cmd.sh(image_facts.image_id(change.runtime, image)), check=False)
    return image_facts.parse_image_id(res.stdout, image)[1] if res.exit_code == 0 else None


def seen_complete(change: Any, during: Step, new: str, gap: float | None) -> NodeopsError:
    """The end of a promotion a stop came into once the keys were moving (during ``during``), carried on to its end:
    Interrupted (exit 130) saying it is complete when ``new`` is seen, now, the one node holding the keys and
    serving (``gap``: seconds no node held them, gap_words); else the failure saying what runs."""
    run, service = change, change.service.name
    came = (f"{service}: the stop came during `{during.describe()}`, once the keys were moving (past the last safe "
            "point), so the promotion went on to its end")  # fmt: skip
    try:
        holders = [n.name for n in run.service.nodes if (c := run.inspect(n.name)) is not None and c.hot]
        serves = run.health(next(n for n in run.service.nodes if n.name == new))[0]
    except OperationFailed as exc:
        return failure(run, f"{came}, but it could not be seen complete: {exc}")
    if holders != [new] or not serves:
        return failure(run, f"{came}, but {new} is not seen as the one node holding the keys and serving")
    return Interrupted(f"{came}: it is complete, {new} holds the hot keys and serves ({gap_words(gap)}); "
                       f"{run.standing()}")  # fmt: skip


def gap_words(gap: float | None) -> str:
    """The gap told: the seconds no node held the keys since the fence began, or, with no fence (``gap`` None: no
    node held them when the promotion began), that, with no figure that would suggest the gap began now."""
    return "no node held them when the promotion began" if gap is None else f"no node held them for {gap:.1f}s"


def hot_inputs(change: Any, node: str, old: str | None) -> Any:
    """The inputs the new holder ``node`` of ``change``'s promotion starts on with the keys: its own, with the hot
    secrets at the versions the old holder ``old``'s container records (job.with_held_hot_secrets: a rotation moved
    them on the holder alone); its own alone when no node held the keys. Said when they differ (names only)."""
    own = change.ran_on[node]
    if old is None or old not in change.ran_on:
        return own
    job = with_held_hot_secrets(own, change.ran_on[old], node)
    if job is not own:
        took = sorted(n for n, v in job.rendered.secret_versions.items() if own.rendered.secret_versions.get(n) != v)
        change.say(node, f"starts with {old}'s versions of {', '.join(took)} (its own recorded ones are older: a "
                   "rotation restarted the holder alone)")  # fmt: skip
    return job


class KeysPromotion:
    """A planned ``keys`` promotion of ``change``'s pair (see the module's docstring)."""

    def __init__(self, change: Any) -> None:
        self.change = change
        self.service = change.service.name
        self.nodes = {n.name: n for n in change.service.nodes}
        self.fence_began: float | None = None
        self.fenced_by: str | None = None  # the fence's action: "replace" (restarted without the keys) or "stop"
        self.old: str | None = None  # the node that held the keys when the promotion began (None: no node did)

    def run(self, plan: ServicePlan) -> float | None:
        """Carry out ``plan``; returns the gap (seconds no node held the keys, from the fence's start), None when no
        node held them when the promotion began (no fence: the gap began before this run, unmeasured). A failure
        before the new holder
        was started with the keys gives them back to the old holder; one after it sees the new holder stopped and
        fenced first, then gives them back (undo); either way ChangeFailed says what serves now. Unsafe (a second
        holder seen before a start with the keys): ChangeRefused, nothing started with them. A stop (Ctrl-C,
        SIGTERM: the change's ``stop``) ends it at a safe point with Interrupted (exit 130, stop_before) or, once
        the new holder was started with the keys, after its last step, the promotion seen complete (seen_complete)."""
        run = self.change
        new = next(s.node for s in plan.steps if s.hot)
        old = self.old = next((s.node for s in plan.steps if s.action == "await-fenced"), None)
        gap: float | None = None
        during = None
        for i, step in enumerate(plan.steps):
            if run.stop.is_set() and during is None:
                during = self.stop_before(plan, i, old)
            if self.fenced_by == "stop" and step.action == "await-serving" and step.node == old:
                continue  # stopped, as the fence could not be confirmed: no standby to await
            run.say(step.node, step.describe())
            moved = step.action == "await-serving" and step.node == new  # the new holder serves with the keys
            try:
                self.step(step)
                forges = confirm_forging(run, self.nodes[new]) if moved else ""
            except Unsafe as exc:  # a holder appeared since the plan: nothing was started with the keys
                raise failure(run, str(exc), unsafe=True) from None
            except OperationFailed as exc:  # FenceFailed: the old holder says it still uses its keys (exit 4)
                raise self.undo(step, old, new, str(exc), unsafe=isinstance(exc, FenceFailed)) from None
            if moved:
                gap = None if self.fence_began is None else time.monotonic() - self.fence_began
                measured = {} if gap is None else {"keys_gap_seconds": round(gap, 3)}
                run.say(new, f"serves with the hot keys{forges}; {gap_words(gap)}", **measured)
        if run.stop.is_set():
            raise seen_complete(run, during or plan.steps[-1], new, gap)
        return gap

    def stop_before(self, plan: ServicePlan, i: int, old: str | None) -> Step:
        """A stop seen before step ``i``: before the fence, Interrupted, nothing changed; after the fence and before
        the keys moved, the fence undone (the old holder's own container back with its keys, give_back), then
        Interrupted, or ChangeFailed saying what runs when that failed. Once the new holder was started with the
        keys there is no safe point: returns the step the stop came during, and the promotion goes on."""
        run, step = self.change, plan.steps[i]
        if any(s.hot for s in plan.steps[:i]):
            return plan.steps[i - 1]
        why = f"{self.service}: stopped before `{step.describe()}` as asked"
        if self.fenced_by is None or old is None:
            raise Interrupted(f"{why}, nothing changed; {run.standing()}")
        given, back = self.give_back(old)
        why += f", after the fence and before the keys moved, so the fence was undone{back}"
        if not given:
            raise failure(run, why)
        raise Interrupted(f"{why}; {run.standing()}")

    def step(self, step: Step) -> None:
        """One step of the plan, carried out on its node (the fence, await-fenced, the hot start, await-serving)."""
        run, node = self.change, step.node
        own = run.ran_on[node]
        if step.action == "replace":  # the change's digest is what its containers are labelled with (job.run_spec)
            run.digest = held_digest(run, node, own.service.image)
        if step.action in ("stop", "replace") and not step.hot:  # the fence
            self.fence_began, self.fenced_by = time.monotonic(), step.action
            if step.action == "stop":
                run.on(node).stop(int(own.role.stop_timeout))
            else:
                run.replace(node, job=own)
        elif step.action == "await-fenced":
            took = await_fenced(run, self.nodes[node])
            said = confirm_fenced(run, self.nodes[node]) if self.fenced_by == "replace" else ""  # a restart fence
            self.fenced_by = "stop" if said.endswith(STOPPED) else self.fenced_by
            run.say(node, f"fenced: holds no keys (seen after {took:.1f}s){said}")
        elif step.action == "replace":  # with the keys: never two holders, whatever changed since the fence was seen
            refuse_second_holder(run, node)
            run.replace(node, hot=True, job=hot_inputs(run, node, self.old))
        elif step.action == "await-serving":
            run.waits.await_serving(self.nodes[node])
            run.shred(node, own.all_files)
        else:
            raise ValueError(f"{self.service}: `{step.describe()}` is no step of a keys promotion")

    def undo(self, step: Step, old: str | None, new: str, why: str, unsafe: bool = False) -> ChangeFailed:
        """The failure of ``step``, undone: before the new holder got the keys, they go back to the old holder;
        after, the new holder is stopped and seen fenced first (if it cannot be, nothing is given back: two
        holders must never run), then the old holder gets them back and the new one its previous container.
        Returns the error saying what was done and what serves now; ChangeRefused (exit 4) with ``unsafe``."""
        run = self.change
        if step.node == old and step.action == "await-serving":  # the keys moved; the old holder is no standby
            return failure(run, f"{why}; {new} holds the keys and serves")
        hot_started = step.node == new
        if hot_started:
            try:
                run.on(new).stop(int(run.ran_on[new].role.stop_timeout))
                await_fenced(run, self.nodes[new])
            except OperationFailed as exc:
                return failure(run, f"{why}; {new} could not be seen fenced ({exc}), so {old or 'no node'} was not "
                               f"given the keys back (never two holders): stop {run.name} on {new}, then "
                               f"{program()} promote-standby again", unsafe=True)  # fmt: skip
            why += f"; {new} was stopped and seen fenced"
        else:
            why += "; nothing was started with the keys"
        if old is not None:  # a fence that failed left the keys in use on the old holder: no gap to tell
            why += self.give_back(old, gap=not unsafe)[1]
        if hot_started:
            why += self.standby_again(new)
        return failure(run, why, unsafe)

    def give_back(self, old: str, gap: bool = True) -> tuple[bool, str]:
        """The old holder started again with its hot files (restart_own); returns whether that was done and what
        was done, as "; ...", with the time no node held them since the fence began when ``gap``. Never raises."""
        try:
            self.restart_own(old, hot=True)
        except (OperationFailed, Unsafe) as exc:
            return False, f"; giving {old} its keys back failed: {exc}"
        told = gap and self.fence_began is not None
        note = f" (no node held them for {time.monotonic() - self.fence_began:.1f}s)" if told else ""
        self.change.say(old, f"given its keys back: serves with them{note}")
        return True, f"; {old} was given its keys back and serves with them{note}"

    def standby_again(self, new: str) -> str:
        """The failed new holder started again without the keys (restart_own); returns what was done, as "; ...".
        Never raises."""
        try:
            self.restart_own(new, hot=False)
        except OperationFailed as exc:
            return f"; putting {new}'s previous container back failed: {exc}"
        return f"; {new}'s previous container was started again without the keys and serves"

    def restart_own(self, node: str, hot: bool) -> None:
        """``node``'s container of before this promotion (put back when a replace set it aside: the one that
        replaced it goes) started again on its own inputs, with its hot files when ``hot`` (upload observes first
        that no other node holds them), awaited serving, its files shredded."""
        start_own(self.change, self.nodes[node], hot)
