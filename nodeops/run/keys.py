"""Activation ``keys`` on a live pair: who holds the role's hot files, observed afresh before any start with them
(refuse_second_holder), a node awaited fenced, holding nothing (await_fenced), and a restarted one asked whether it
still uses its keys (confirm_fenced).

A node holds the keys while a container of the service runs on it that was started with the hot files: its
``io.nodeops.hot=true`` label (NodeView.hot; the files are shredded once read, so the label is the fact). Where the
role says how (its ``keys_in_use`` hook, nodeops.role_hooks), a node restarted without them by a fence is also asked,
once it answers again, whether it still uses them: the label records how its container was started, the reply what
its process does. ``change`` is the change under way (nodeops.deploy.ServiceDeploy): its service, inspect, health,
waits, the bodies of its nodes' latest health replies (``answers``) and its job's role.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from nodeops import program
from nodeops.commands import node as cmd
from nodeops.errors import EXIT_UNSAFE, OperationFailed, Unsafe
from nodeops.facts.role_facts import node_facts, problem_of
from nodeops.role_hooks import RoleHookFailed
from nodeops.run.awaits import SERVE_TIMEOUT

FENCE_TIMEOUT = 60.0  # seconds for a fenced node to be seen holding nothing (a graceful stop is within it)
ANSWER_TIMEOUT = SERVE_TIMEOUT  # seconds for a node restarted by a fence to answer again (confirm_fenced)
FORGE_TIMEOUT = 30.0  # seconds for a new holder to say it uses its keys (confirm_forging)
SAY_TIMEOUT = 10.0  # seconds for a node restarted by a fence, once it answers, to say whether it uses them
POLL = 0.2


class FenceFailed(OperationFailed):
    """A fenced node says it still uses its keys (confirm_fenced): the fence did not take. Unsafe (exit 4), and
    undone like a failed step (the old holder back as it was)."""

    exit_code = EXIT_UNSAFE


def refuse_second_holder(change: Any, node: str) -> None:
    """Before ``node`` is started with the hot files: every other node of the service observed now, its container
    inspected afresh (never the plan's picture). Unsafe (exit 4), nothing started, when one runs with the hot
    label (two holders would sign for the same slots) or cannot be seen (it might hold them), unless the chain
    fences it (``change.chain_fenced``, ServiceChange's: a role's chain fence made the keys it may hold count for
    nothing)."""
    name = change.service.name
    for other in change.service.nodes:
        if other.name == node or other.name in change.chain_fenced:
            continue
        try:
            c = change.inspect(other.name)
        except OperationFailed as exc:
            raise Unsafe(
                f"{name} {node}: not started with the hot keys: {other.name} cannot be seen ({exc}) and "
                "might hold them; nothing was started with them (resolve that, then deploy)"
            ) from None
        if c is not None and c.hot:
            raise Unsafe(f"{name} {node}: not started with the hot keys: {other.name} holds them now (its container "
                         f"runs with io.nodeops.hot=true), never two holders; nothing was started with them (see "
                         f"{program()} status)")  # fmt: skip


def holding(change: Any, node: Any) -> str | None:
    """Why ``node`` (a nodeops.inventory.Node) may still hold the keys, as observed now, or None when it holds
    nothing: a container of the service (its own name or the previous one) running with the hot label.
    OperationFailed when the node cannot be seen."""
    for name in (None, cmd.previous_name(change.service.name)):
        c = change.inspect(node.name, name)
        if c is not None and c.hot:
            return f"container {c.name} runs with the hot keys"
    return None


def confirm_fenced(change: Any, node: Any) -> str:
    """After ``node`` was restarted without its hot files and seen holding none by its label (await_fenced): when
    the role defines ``keys_in_use`` (RoleHooks.says_keys_in_use), the node awaited answering again (Awaits.
    await_serving: OperationFailed, saying why it was awaited, when it does not within ANSWER_TIMEOUT or its
    container stops), then the hook asked about its replies, every POLL, until it says True or False or SAY_TIMEOUT
    seconds passed (a node may answer before it says: the lab's Cardano node answered its metrics without
    ``forging_enabled`` 0.2 s after its start, and was stopped for it). Returns what was observed, as
    "; ..." ("" when the hook was not asked): the node answers again, and what the hook said: False, it no longer
    uses them; None all that time (it cannot say), the fence is not confirmed, so the node is stopped, as
    ``--keep-old-stopped`` does (STOPPED ends the phrase: the node is no standby now). FenceFailed (exit 4) when it
    says the node still uses its keys (True)."""
    hooks, role = change.job.role.hooks, change.job.role.name
    if not hooks.says_keys_in_use:
        return ""
    try:
        change.waits.await_serving(node, timeout=ANSWER_TIMEOUT)
    except OperationFailed as exc:
        raise OperationFailed(f"{exc} (restarted without its hot keys, it was awaited answering again, to ask it "
                              f"whether it still uses them: role {role}'s keys_in_use)") from None  # fmt: skip
    deadline = time.monotonic() + SAY_TIMEOUT
    while (said := _says(change, node)) is None and time.monotonic() < deadline:
        time.sleep(POLL)
        change.health(node)  # its next reply, in change.answers
    if said is True:
        raise FenceFailed(f"{change.service.name} {node.name}: the fence failed: restarted without its hot keys, it "
                          f"answers that it still uses them (role {role}'s keys_in_use)")  # fmt: skip
    if said is False:
        return "; it answers again and says it no longer uses them"
    change.on(node.name).stop(int(change.ran_on[node.name].role.stop_timeout))
    return f"; it answers again, but role {role}'s keys_in_use does not say whether it uses them{STOPPED}"


def _says(change: Any, node: Any) -> bool | None:
    """What the role's keys_in_use says of ``node``'s last reply (None: no reply, or the hook cannot say)."""
    body = change.answers.get(node.name)
    return None if body is None else change.job.role.hooks.keys_in_use(body)


STOPPED = ", so the fence is not confirmed: it was stopped, as --keep-old-stopped does"


def confirm_forging(change: Any, node: Any, timeout: float | None = None) -> str:
    """After ``node`` was started with the hot files and serves: when the role defines ``keys_in_use``, its health
    replies asked until the hook says it uses them (True), within ``timeout`` seconds (default FORGE_TIMEOUT), every
    POLL. Returns what was observed, as "; ..." ("" when the hook was not asked, or its first answer was None: the
    role cannot say, the start decides as before), with what the role's facts say stops it doing its work
    (_cannot_work: it holds the keys, so the change stands, said). OperationFailed (the new holder failed: the
    caller stops it and gives the keys back) when it does not say so within the bound, saying what it said last."""
    hooks, role = change.job.role.hooks, change.job.role.name
    if not hooks.says_keys_in_use:
        return ""
    started, said = time.monotonic(), None
    while True:
        body = change.answers.get(node.name) if change.health(node)[0] else None
        said = None if body is None else hooks.keys_in_use(body)
        if said is True:
            return " and says it uses them" + _cannot_work(change, node.name, body)
        if said is None and body is not None:
            return ""
        if time.monotonic() - started > (FORGE_TIMEOUT if timeout is None else timeout):
            break
        time.sleep(POLL)
    last = "answers nothing" if body is None else "says it does not use them"
    raise OperationFailed(
        f"{change.service.name} {node.name}: started with the hot keys, it {last} after "
        f"{time.monotonic() - started:.0f}s (role {role}'s keys_in_use): it does not forge"
    )


def _cannot_work(change: Any, node: str, body: bytes) -> str:
    """``, but <the role's problem>`` when the role's node_facts say ``node``'s reply ``body`` shows it cannot do
    its work with the keys it says it uses (nodeops.facts.role_facts.problem_of: a pool's producer whose operational
    certificate has expired keeps its forging gauge at 1, poolfacts); "" when they say none (or cannot say)."""
    found, _error = node_facts(change.job, {node: body})
    problem = problem_of(found.get(node, {}))
    return f", but {problem}" if problem else ""


def await_fenced(change: Any, node: Any, timeout: float | None = None) -> float:
    """Seconds until ``node`` is seen holding nothing (holding() None); OperationFailed when ``timeout`` (default
    FENCE_TIMEOUT) passes first (saying what it still shows) or it cannot be seen (the run must then take it as
    holding them)."""
    timeout = FENCE_TIMEOUT if timeout is None else timeout
    started = time.monotonic()
    while (why := holding(change, node)) is not None:
        if time.monotonic() - started > timeout:
            raise OperationFailed(f"{change.service.name} {node.name}: not seen fenced after {timeout:g}s: {why}")
        time.sleep(POLL)
    return time.monotonic() - started


def in_chain_units(run: Any, seconds: float | None) -> dict[str, str]:
    """``{"outage_chain_units": phrase}``: ``seconds`` of a promotion's gap (no node holding the keys) of ``run``'s
    service as its role's ``outage`` hook says it in the chain's unit (``"14 slots"``, nodeops.role_hooks); ``{}``
    when no gap was measured or the hook says nothing (a role without one: Chainlink). A hook that raises is said on
    a step line (the promotion is done: its result stands without the phrase)."""
    if seconds is None:
        return {}
    try:
        said = run.job.role.hooks.outage(seconds, run.job.profile)
    except RoleHookFailed as exc:
        run.say("", f"the outage in the chain's unit is not said: {exc}")
        return {}
    return {"outage_chain_units": said} if isinstance(said, str) and said else {}


def keys_gap(change: Any, node: str, how: str, seconds: float | None) -> str:
    """A gap of ``change``'s keys (``seconds`` no node held or used them; None: not measured) recorded on it
    (``keys_gaps``, the deploy's result: records.KeysGap, deploy.finished) and said on ``node``'s step line with
    the role's words for it in the chain's unit (in_chain_units); ``how``: ``restart in place`` (the holder
    restarted with its keys, in_place_gap), ``handover`` or ``hand back`` (deploy --via-standby). Returns the gap
    in words (gap_figure)."""
    figure = None if seconds is None else round(seconds, 3)
    units = in_chain_units(change, figure).get("outage_chain_units")
    gap = {"node": node, "how": how, "seconds": figure, **({"chain_units": units} if units else {})}
    change.keys_gaps = (*change.keys_gaps, gap)
    words = gap_figure(gap)
    said = {k: v for k, v in (("keys_gap_seconds", figure), ("outage_chain_units", units)) if v is not None}
    change.say(node, f"{how}: no node used the hot keys for {words}", **said)
    return words


def gap_figure(gap: Mapping) -> str:
    """A recorded keys gap (records.KeysGap) as words: ``2.10s (11 slots)``, ``not measured``."""
    seconds, units = gap.get("seconds"), gap.get("chain_units")
    return ("not measured" if seconds is None else f"{seconds:.2f}s") + (f" ({units})" if units else "")


def in_place_gap(change: Any, node: Any, began: float) -> None:
    """The holder ``node`` (a nodeops.inventory.Node), restarted in place with its keys from ``began`` (monotonic
    seconds, before its old container stopped) and now serving: asked until it says it uses them (confirm_forging:
    OperationFailed, the step failed, when it does not), and the gap, ``began`` to now, recorded and said
    (keys_gap)."""
    confirm_forging(change, node)
    keys_gap(change, node.name, "restart in place", time.monotonic() - began)
