"""Issue 16: ``fab deploy --via-standby``, planned. Under activation ``keys`` an upgrade of the holder's inputs
restarts it in place with its keys; with --via-standby the standby is upgraded first, the keys handed over to it as a
planned promotion hands them (fence first), the old holder upgraded as the standby, and the keys handed back to it,
so the group ends as it started. Tables: (the nodes' containers) -> the ordered steps, with and without the flag, and
the refusals (exit 2) of a service that has no keys to hand over or no standby to hand them to."""

from __future__ import annotations

import pytest

from nodeops.activation import MODELS, model_of
from nodeops.errors import EXIT_INVALID, InvalidInput
from nodeops.roles import load_role
from tests.unit.test_node_kinds import POOL, POOL_ROLE, ROLL_RELAYS, WANT, P, S, c, pool, seen, steps
from tests.unit.test_roles import make_role


@pytest.fixture
def pool_role(tmp_path):
    return load_role("thing", [make_role(tmp_path, POOL_ROLE)])


PAIR = pool(P, S)
UPGRADE = ["replace s", "await-serving s"]  # the standby upgraded first, without the keys
TO_S = ["replace p", "await-fenced p", "replace s +keys", "await-serving s", "await-serving p"]  # fence p, keys to s
BACK_P = ["replace s", "await-fenced s", "replace p +keys", "await-serving p", "await-serving s"]  # and back to p
P_AS_STANDBY = ["replace p", "await-serving p"]  # the old holder upgraded as the standby


@pytest.mark.parametrize(
    ("facts", "plain", "via"),
    [
        # both stale: in place without the flag; with it, the standby first, over and back
        (seen(PAIR, p=c(False, hot=True), s=c(False)), [*UPGRADE, "replace p +keys", "await-serving p"],
         [*UPGRADE, *TO_S, *P_AS_STANDBY, *BACK_P]),
        # only the holder stale (the standby runs the change already): no standby step first
        (seen(PAIR, p=c(False, hot=True), s=c()), ["replace p +keys", "await-serving p"],
         [*TO_S, *P_AS_STANDBY, *BACK_P]),
        # the holder current: nothing to hand over, the flag changes nothing
        (seen(PAIR, p=c(hot=True), s=c(False)), UPGRADE, UPGRADE),
        (seen(PAIR, p=c(hot=True), s=c()), [], []),
        # from nothing: no holder, nothing to hand over
        (seen(PAIR), [*UPGRADE, "replace p +keys", "await-serving p"],
         [*UPGRADE, "replace p +keys", "await-serving p"]),
        # the standby holds the keys (a promotion left it so): they go to p and back to s, where they were
        (seen(PAIR, p=c(False), s=c(False, hot=True)), ["replace p", "await-serving p", "replace s +keys",
                                                          "await-serving s"],
         ["replace p", "await-serving p", "replace s", "await-fenced s", "replace p +keys", "await-serving p",
          "await-serving s", "replace s", "await-serving s", "replace p", "await-fenced p", "replace s +keys",
          "await-serving s", "await-serving p"]),
    ],
    ids=["both-stale", "holder-stale", "holder-current", "up-to-date", "fresh", "standby-holds"],
)  # fmt: skip
def test_a_keys_kind_hands_over_and_back_only_with_the_flag(pool_role, facts, plain, via):
    model = model_of(pool_role).kinds["producer"]
    assert steps(model.plan_change(PAIR, facts, WANT)) == plain
    assert steps(model.plan_via_standby(PAIR, facts, WANT)) == via


def test_a_pool_rolls_its_relays_then_hands_its_producers_keys_over_and_back(pool_role):
    facts = seen(r1=c(False), r2=c(False), p=c(False, hot=True), s=c(False))
    plan = model_of(pool_role).plan_via_standby(POOL, facts, WANT)
    assert steps(plan) == [*ROLL_RELAYS, *UPGRADE, *TO_S, *P_AS_STANDBY, *BACK_P]
    assert plan.reason.endswith(
        "; producer: standby first, then the hot keys handed over to s and back to p (--via-standby)"
    )


def test_each_handover_is_marked_as_its_promotion_and_said(pool_role):
    """The runner carries each handover out as a planned promotion (its part), and --dry-run says which is which."""
    facts = seen(PAIR, p=c(False, hot=True), s=c(False))
    plan = model_of(pool_role).kinds["producer"].plan_via_standby(PAIR, facts, WANT)
    parts = [s.part for s in plan.steps]
    assert parts == ["", ""] + ["handover"] * 5 + ["", ""] + ["hand back"] * 5
    said = [s.describe() for s in plan.steps]
    assert said[2] == "replace p (handover to s: fence: restarted without the hot keys)"
    assert said[4] == "replace s (handover to s: promoted, with the hot keys)"
    assert said[9] == "replace s (hand back to p: fence: restarted without the hot keys)"
    assert said[7] == "replace p (standby first, without the hot keys)"
    assert said[3] == "await-fenced p (handover to s)" and said[13] == "await-serving s (hand back to p)"


def test_a_keys_role_without_kinds_hands_over_too():
    a, b = P, S
    pair = pool(a, b)
    facts = seen(pair, p=c(False, hot=True), s=c(False))
    assert steps(MODELS["keys"].plan_via_standby(pair, facts, WANT)) == [*UPGRADE, *TO_S, *P_AS_STANDBY, *BACK_P]


@pytest.mark.parametrize(
    ("model", "service", "problem"),
    [
        ("lease", PAIR, "pool: --via-standby hands the hot keys over to the standby and back: activation lease has "
                        "no hot keys (it is for activation keys); deploy without it"),
        ("all", PAIR, "activation all has no hot keys"),
        ("keys", pool(P), "pool: --via-standby: p has no standby to hand the hot keys to (one node); deploy "
                          "without it (the holder is restarted in place)"),
    ],
    ids=["lease", "all", "one-node"],
)  # fmt: skip
def test_a_service_with_no_keys_to_hand_over_or_no_standby_is_refused_exit_2(model, service, problem):
    with pytest.raises(InvalidInput) as err:
        MODELS[model].refuse_via_standby(service)
    assert err.value.exit_code == EXIT_INVALID and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_a_pool_with_one_producer_is_refused_and_one_with_two_is_not(pool_role):
    with pytest.raises(InvalidInput, match="p has no standby to hand the hot keys to"):
        model_of(pool_role).refuse_via_standby(pool(*POOL.nodes[:3]))
    model_of(pool_role).refuse_via_standby(POOL)
