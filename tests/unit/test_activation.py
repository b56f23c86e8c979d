"""Activation models (issue 15): (model, node facts) -> steps, refusals included. Tables, pure."""

from __future__ import annotations

import pytest

from nodeops.activation import MODELS
from nodeops.errors import InvalidInput, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service
from nodeops.plan import Desired, plan_service

A = Node("a", "10.0.0.1", 22, "active", (), "svc")
B = Node("b", "10.0.0.2", 22, "standby", (), "svc")
C = Node("c", "10.0.0.3", 22, "standby", (), "svc")  # the planner takes any number of relays
NODES = {"a": A, "b": B, "c": C}
PAIR = Service("svc", "r", "img:2", "docker", {}, {}, (A, B))
RELAYS = Service("svc", "r", "img:2", "docker", {}, {}, (A, B, C))
ONE = Service("svc", "r", "img:2", "docker", {}, {}, (A,))
WANT = Desired("img:2", "sha256:new", "h2")


def c(current: bool = True, running: bool = True, hot: bool = False) -> Container:
    image, config = ("sha256:new", "h2") if current else ("sha256:old", "h1")
    labels = {"io.nodeops.config": config, **({"io.nodeops.hot": "true"} if hot else {})}
    return Container("nodeops-svc", running, "running" if running else "exited", image, labels)


def seen(service: Service = PAIR, serving: str = "", sick: str = "", lost: str = "", **containers) -> dict:
    """Each node's view: ``containers`` by node name (absent: none), ``serving`` answers 200, ``sick`` answers 503,
    ``lost`` unreachable."""
    return {n.name: NodeView(n, None, False, unreachable="timeout") if n.name in lost else
            NodeView(n, containers.get(n.name), n.name in serving, ("db",) if n.name in sick else ())
            for n in service.nodes}  # fmt: skip


def steps(plan) -> list[str]:
    out = []
    for s in plan.steps:
        text = f"handover {s.node}->{s.to}" if s.action == "handover" else f"{s.action} {s.node}"
        out.append(text + (" +keys" if s.hot else ""))
    return out


# ---------------------------------------------------------------- the view's notion of active


@pytest.mark.parametrize(
    ("view", "lease", "keys"),
    [
        (NodeView(A, c(), True), True, False),  # answers: the lease holder; no hot label: no keys
        (NodeView(A, c(), False, ("db",)), True, False),  # answers 503: still the lease holder
        (NodeView(A, c(hot=True), False), False, True),  # silent, but started with the hot files
        (NodeView(A, c(hot=True, running=False), False), False, False),  # stopped: its keys were only in memory
        (NodeView(A, None, False, unreachable="timeout"), False, False),
    ],
)
def test_who_is_active_depends_on_the_model(view, lease, keys):
    assert tuple(MODELS[m].is_active(view) for m in ("lease", "all", "keys")) == (lease, lease, keys)


# ---------------------------------------------------------------- a change


@pytest.mark.parametrize(
    ("model", "service", "facts", "expected"),
    [
        # lease: today's planner, untouched (the same steps as nodeops.plan.plan_service)
        ("lease", PAIR, seen(a=c(False), b=c(False), serving="a"),
         ["replace b", "await-waiting b", "handover a->b", "replace a", "await-waiting a"]),
        ("lease", PAIR, seen(), ["replace a", "await-serving a", "replace b", "await-waiting b"]),
        # all: one node at a time, every other serving; no handover, no await-waiting
        ("all", RELAYS, seen(RELAYS, serving="abc", a=c(False), b=c(False), c=c(False)),
         ["replace a", "await-serving a", "replace b", "await-serving b", "replace c", "await-serving c"]),
        ("all", RELAYS, seen(RELAYS), ["replace a", "await-serving a", "replace b", "await-serving b",
                                       "replace c", "await-serving c"]),
        ("all", RELAYS, seen(RELAYS, serving="abc", a=c(), b=c(False), c=c()), ["replace b", "await-serving b"]),
        ("all", RELAYS, seen(RELAYS, serving="abc", a=c(), b=c(), c=c()), []),
        ("all", RELAYS, seen(RELAYS, serving="bc", a=c(False), b=c(False), c=c()),  # the silent one first
         ["replace a", "await-serving a", "replace b", "await-serving b"]),
        ("all", RELAYS, seen(RELAYS, serving="a", a=c(), b=c(), c=c()),  # up to date but silent: restarted
         ["replace b", "await-serving b", "replace c", "await-serving c"]),
        ("all", RELAYS, seen(RELAYS, serving="ab", sick="c", a=c(), b=c(), c=c()), []),  # 503: answers, syncing
        ("all", PAIR, seen(serving="b", a=c(False, running=False), b=c(False)),  # a down: a first, then b
         ["replace a", "await-serving a", "replace b", "await-serving b"]),
        ("all", ONE, seen(ONE), ["replace a", "await-serving a"]),  # nothing serves yet: nothing to take down
        # keys: the standby without keys first, the holder in place with them; the keys never move in a change
        ("keys", PAIR, seen(), ["replace a +keys", "await-serving a", "replace b", "await-serving b"]),
        ("keys", PAIR, seen(serving="ab", a=c(False, hot=True), b=c(False)),
         ["replace b", "await-serving b", "replace a +keys", "await-serving a"]),
        ("keys", PAIR, seen(serving="ab", a=c(False), b=c(False, hot=True)),  # b holds them: b stays the active
         ["replace a", "await-serving a", "replace b +keys", "await-serving b"]),
        ("keys", PAIR, seen(serving="ab", a=c(hot=True), b=c()), []),
        ("keys", PAIR, seen(serving="ab", a=c(hot=True), b=c(False)), ["replace b", "await-serving b"]),
        ("keys", PAIR, seen(serving="a", a=c(hot=True)), ["replace b", "await-serving b"]),  # no standby yet
        ("keys", ONE, seen(ONE, serving="a", a=c(False, hot=True)), ["replace a +keys", "await-serving a"]),
        ("keys", ONE, seen(ONE, serving="a", a=c()), ["replace a +keys", "await-serving a"]),  # up, keyless
        ("keys", ONE, seen(ONE, serving="a", a=c(hot=True)), []),
    ],
    ids=["lease-upgrade", "lease-fresh", "all-upgrade", "all-fresh", "all-one-stale", "all-current",
         "all-silent-first", "all-restart-silent", "all-syncing-is-up", "all-pair-down-first", "all-single-fresh",
         "keys-fresh", "keys-upgrade", "keys-upgrade-b-holds", "keys-current", "keys-standby-stale",
         "keys-standby-missing", "keys-single", "keys-single-keyless", "keys-single-current"],
)  # fmt: skip
def test_a_change_plans_per_model(model, service, facts, expected):
    plan = MODELS[model].plan_change(service, facts, WANT)
    assert steps(plan) == expected
    assert plan.changes == bool(expected)
    if model == "lease":
        assert plan == plan_service(service, facts, WANT)  # Chainlink's behaviour, unchanged


def test_a_forced_change_replaces_every_node_still_one_at_a_time():
    facts = seen(RELAYS, serving="abc", a=c(), b=c(), c=c())
    assert steps(MODELS["all"].plan_change(RELAYS, facts, WANT, force=True)) == [
        "replace a", "await-serving a", "replace b", "await-serving b", "replace c", "await-serving c"]  # fmt: skip
    facts = seen(serving="ab", a=c(hot=True), b=c())
    assert steps(MODELS["keys"].plan_change(PAIR, facts, WANT, force=True)) == [
        "replace b", "await-serving b", "replace a +keys", "await-serving a"]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "service", "facts", "details"),
    [
        ("all", RELAYS, seen(RELAYS, serving="abc", a=c(False), b=c(False), c=c(False)),
         ["rolling, b, c serve", "rolling, a, c serve", "rolling, a, b serve"]),
        ("all", PAIR, seen(serving="ab", a=c(False), b=c(False)), ["rolling, b serves", "rolling, a serves"]),
        ("keys", PAIR, seen(serving="ab", a=c(False, hot=True), b=c(False)),
         ["standby first, without the hot keys", "the active in place with its hot keys, no handover"]),
    ],
    ids=["all-three", "all-pair", "keys"],
)  # fmt: skip
def test_a_replace_says_why_it_is_safe_in_plain_words(model, service, facts, details):
    """Review rv15 F7: "rolling, a serve" and "(the active in place, with the hot keys (no handover))"."""
    plan = MODELS[model].plan_change(service, facts, WANT)
    assert [s.detail for s in plan.steps if s.action == "replace"] == details


def all_down_at_some_step(plan, facts) -> bool:
    """Walks ``plan``: True when a replace stops a node while no other node serves (the rule all never breaks)."""
    up = {n for n, v in facts.items() if v.serving}
    for s in plan.steps:
        if s.action == "replace":
            if facts[s.node].active and not up - {s.node}:
                return True
            up.discard(s.node)
        elif s.action == "await-serving":
            up.add(s.node)
    return False


@pytest.mark.parametrize("serving", ["", "a", "b", "c", "ab", "bc", "abc"])
@pytest.mark.parametrize("stale", ["a", "b", "abc"])
def test_all_never_plans_every_node_down(serving, stale):
    facts = seen(RELAYS, serving=serving, **{n: c(n not in stale) for n in "abc"})
    plan = MODELS["all"].plan_change(RELAYS, facts, WANT)
    assert plan.changes and not all_down_at_some_step(plan, facts)
    assert not any(s.action in ("handover", "await-waiting") for s in plan.steps)


@pytest.mark.parametrize(
    ("model", "service", "facts", "fragment"),
    [
        ("keys", PAIR, seen(serving="ab", a=c(hot=True), b=c(hot=True)), "2 nodes hold the hot keys (a, b)"),
        ("keys", PAIR, seen(serving="b", lost="a", b=c()), "a cannot be reached: it might hold the hot keys"),
        ("keys", PAIR, seen(serving="ab", a=c(), b=c()), "containers run on a, b but none holds the hot keys"),
        ("all", ONE, seen(ONE, serving="a", a=c(False)), "replacing a would leave no node serving"),
        ("all", PAIR, seen(serving="a", sick="b", a=c(False), b=c(False)),  # b answers 503: it is no relief
         "replacing a would leave no node serving"),
        ("all", RELAYS, seen(RELAYS, serving="abc", lost="c", a=c(), b=c(False)), "c cannot be reached"),
        ("lease", PAIR, seen(serving="ab", a=c(), b=c()), "two nodes serve at once (a, b)"),
    ],
    ids=["keys-two-holders", "keys-unreachable", "keys-no-holder", "all-single-serving", "all-only-sick-others",
         "all-unreachable", "lease-two-serving"],
)  # fmt: skip
def test_unsafe_pictures_are_refused_per_model(model, service, facts, fragment):
    with pytest.raises(Unsafe) as err:
        MODELS[model].plan_change(service, facts, WANT)
    assert fragment in str(err.value) and err.value.exit_code == 4


# ---------------------------------------------------------------- a planned promotion


@pytest.mark.parametrize(
    ("model", "facts", "options", "expected"),
    [
        # lease: the handover, the old active back as the standby on its own inputs, the new one's lease files shredded
        ("lease", seen(serving="a", a=c(), b=c()), {}, ["handover a->b", "start-again a", "shred b"]),
        ("lease", seen(serving="b", a=c(), b=c()), {}, ["handover b->a", "start-again b", "shred a"]),
        ("lease", seen(serving="a", a=c(), b=c()), {"keep_old_stopped": True},
         ["handover a->b", "keep-stopped a", "shred b"]),
        # keys: fence first (the holder without keys, seen fenced), then the keys to the new one
        ("keys", seen(serving="ab", a=c(hot=True), b=c()), {},
         ["replace a", "await-fenced a", "replace b +keys", "await-serving b", "await-serving a"]),
        ("keys", seen(serving="ab", a=c(hot=True), b=c()), {"fence": "stop"},
         ["stop a", "await-fenced a", "replace b +keys", "await-serving b"]),
        ("keys", seen(serving="ab", a=c(), b=c(hot=True)), {"to": "a"},
         ["replace b", "await-fenced b", "replace a +keys", "await-serving a", "await-serving b"]),
        ("keys", seen(serving="ab", a=c(), b=c()), {"to": "b"}, ["replace b +keys", "await-serving b"]),  # no holder
        # no holder, and the first node's container stopped (it held them; stopped, it holds nothing): the one that
        # runs gets them, not the stopped one (which would be refused: it does not run)
        ("keys", seen(serving="b", a=c(running=False, hot=True), b=c()), {}, ["replace b +keys", "await-serving b"]),
    ],
    ids=["lease-a", "lease-b", "lease-keep-old-stopped", "keys-restart-fence", "keys-stop-fence", "keys-back",
         "keys-no-holder", "keys-no-holder-the-running-one"],
)  # fmt: skip
def test_a_planned_promotion_per_model(model, facts, options, expected):
    plan = MODELS[model].plan_promotion(PAIR, facts, **options)
    assert steps(plan) == expected
    if model == "keys":  # never two holders: the keys go out only after the old holder was seen fenced
        hot = [i for i, s in enumerate(plan.steps) if s.hot]
        fenced = [i for i, s in enumerate(plan.steps) if s.action == "await-fenced"]
        assert len(hot) == 1 and all(i < hot[0] for i in fenced)


@pytest.mark.parametrize(
    ("model", "service", "facts", "options", "error", "fragment"),
    [
        ("all", RELAYS, seen(RELAYS, serving="abc"), {}, Unsafe, "activation all has no standby to promote"),
        ("keys", ONE, seen(ONE, a=c(hot=True)), {}, Unsafe, "a single node has no standby"),
        ("keys", PAIR, seen(serving="ab", a=c(hot=True), b=c(hot=True)), {}, Unsafe, "2 nodes hold the hot keys"),
        ("keys", PAIR, seen(serving="b", lost="a", b=c()), {}, Unsafe, "a cannot be reached"),
        ("keys", PAIR, seen(serving="a", a=c(hot=True)), {}, Unsafe, "b does not run: deploy it as the standby"),
        ("keys", PAIR, seen(serving="ab", a=c(hot=True), b=c()), {"to": "a"}, Unsafe, "a is the active already"),
        ("keys", PAIR, seen(serving="ab", a=c(hot=True), b=c()), {"to": "z"}, InvalidInput, "no node 'z'"),
        ("keys", PAIR, seen(serving="ab", a=c(hot=True), b=c()), {"fence": "kill"}, InvalidInput,
         "unknown fence 'kill'"),
        ("lease", PAIR, seen(a=c(), b=c()), {}, Unsafe, "0 nodes hold the lease"),
    ],
    ids=["all", "single", "two-holders", "unreachable", "standby-down", "already-active", "unknown-node",
         "unknown-fence", "lease-nobody"],
)  # fmt: skip
def test_a_promotion_is_refused_when_unsafe(model, service, facts, options, error, fragment):
    with pytest.raises(error) as err:
        MODELS[model].plan_promotion(service, facts, **options)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        (seen(serving="b", lost="a", b=c(hot=True)),
         "svc: a cannot be reached: it is the standby to be promoted (b holds the hot keys), and the keys never go to "
         "a node that cannot be seen; make it reachable again, then promote (--force is for a holder that cannot be "
         "reached, not a standby)"),
        (seen(serving="b", lost="a", b=c()),
         "svc: a cannot be reached: it might hold the hot keys, and a planned promotion must see the holder fenced "
         "(--force cannot fence it either); resolve that first (see fab status)"),
    ],
    ids=["standby-unreachable", "maybe-holder-unreachable"],
)  # fmt: skip
def test_a_keys_promotion_with_a_node_unreachable_names_its_part_and_the_remedy(facts, message):
    """The unreachable node is named for what it is: the standby to be promoted when the node seen holds the keys
    (make it reachable: --force is for a lost holder only), else a node that might hold them."""
    with pytest.raises(Unsafe) as err:
        MODELS["keys"].plan_promotion(PAIR, facts)
    assert str(err.value) == message
