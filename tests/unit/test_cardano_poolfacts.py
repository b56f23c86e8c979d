"""A pool's facts and findings (roles/cardano/poolfacts.py, role.py's node_facts and check_facts): each node's tip,
lag, peers, forging, and the holder's KES periods left and when they run out (UTC), from the metrics the node serves
(the lab's simulator writes the same lines); check's ``kes`` at the threshold (the role's KES_PERIODS_MIN, default
7) and once expired, and ``sync``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from nodeops.roles import load_role, role_module
from nodeops.run.keys import confirm_forging

poolfacts = role_module("cardano", "poolfacts")
kesinfo = role_module("cardano", "kesinfo")
LAB = {"PROFILE": "lab", "SYSTEM_START": "2026-12-01T08:00:00Z"}  # 0.2 s slots, 10 slots per KES period
COMMAND = {"PROGRAM": "fab", "SERVICE_OPTIONS": "--env lab --service pool"}  # check_facts's (role_facts)
ROTATE = "run fab rotate-secrets --env lab --service pool --secret kes"  # what a failing kes finding asks for
# review rev16c F3: a forced promotion's pending certificate is issued anew by its own command (a rotation refuses it)
FORCED = "fab promote-standby --env lab --service pool --force"


def metrics(slot=1203, peers=2, forging=0, forged=None, current=None, start=None, expiry=None, remaining=None) -> bytes:
    """A node's /metrics as cardano-node's PrometheusSimple backend (suffix) serves it; None: not served."""
    named = {"slotNum": slot, "blockNum": 600, "connectedPeers": peers, "forging_enabled": forging,
             "blocksForged": forged, "currentKESPeriod": current, "operationalCertificateStartKESPeriod": start,
             "operationalCertificateExpiryKESPeriod": expiry, "remainingKESPeriods": remaining}  # fmt: skip
    lines = [f"# TYPE cardano_node_metrics_{n}_int gauge\ncardano_node_metrics_{n}_int {v}"
             for n, v in named.items() if v is not None]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


HOLDER = metrics(slot=1205, forging=1, forged=31, current=120, start=100, expiry=130, remaining=10)
EXPIRED = metrics(slot=1305, forging=1, forged=31, current=0, start=100, expiry=130, remaining=0)  # KESCouldNotEvolve
POOL = {"relay-a": metrics(slot=1203, peers=3), "relay-b": metrics(slot=1205, peers=3), "bp-a": HOLDER,
        "bp-b": metrics(slot=1204)}  # fmt: skip


def test_each_nodes_tip_lag_peers_and_forging_and_the_holders_kes_standing():
    """The lag against the highest tip of the nodes that answered; the date: the expiry period's first slot, 130 x
    10 slots x 0.2 s = 260 s after the lab's chain started."""
    assert poolfacts.node_facts(POOL, LAB) == {
        "relay-a": {"slot": 1203, "lag": 2, "peers": 3, "forging": False},
        "relay-b": {"slot": 1205, "lag": 0, "peers": 3, "forging": False},
        "bp-a": {"slot": 1205, "lag": 0, "peers": 2, "forging": True, "forged": 31, "kes_window": "100..130",
                 "kes_left": 10, "kes_until": "2026-12-01T08:04:20Z"},
        "bp-b": {"slot": 1204, "lag": 1, "peers": 2, "forging": False},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("variables", "until"),
    [
        ({"PROFILE": "mainnet"}, datetime(2020, 7, 29, 21, 44, 51, tzinfo=UTC) + timedelta(seconds=1212 * 129600
                                                                                             - 208 * 21600)),
        ({}, datetime(2020, 7, 29, 21, 44, 51, tzinfo=UTC) + timedelta(seconds=1212 * 129600 - 208 * 21600)),
        ({"PROFILE": "preview"}, datetime(2022, 10, 25, tzinfo=UTC) + timedelta(seconds=1212 * 129600)),
    ],
    ids=["mainnet", "default-mainnet", "preview"],
)  # fmt: skip
def test_the_date_the_certificate_runs_out_is_the_networks(variables, until):
    """Mainnet: the first Shelley slot 4492800 (208 Byron epochs of 21600 20-s slots) began 2020-07-29T21:44:51Z,
    then 1 s slots; the certificate's expiry period 1212 begins at slot 1212 x 129600."""
    text = metrics(slot=150000000, forging=1, current=1157, start=1150, expiry=1212, remaining=55)
    (facts,) = poolfacts.node_facts({"bp": text}, variables).values()
    assert facts["kes_until"] == until.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_expired_certificate_and_an_unreadable_reply():
    """Review rev16b finding 6: an expired holder said ``forging yes`` (the gauge stays 1) and its pool read healthy;
    it cannot forge: ``forging`` no, and a ``problem`` the engine shows (status: degraded)."""
    found = poolfacts.node_facts({"bp-a": EXPIRED, "x": b"\xff\xfe", "y": b"not metrics at all\n"}, LAB)
    assert found == {"bp-a": {"slot": 1305, "lag": 0, "peers": 2, "forging": False, "forged": 31,
                              "kes_window": "100..130", "kes_left": 0,  # no date: it has run out
                              "problem": "its operational certificate (KES periods 100..130) has expired: it cannot "
                                         "forge (fab check's kes names the rotation)"},
                     "x": {"metrics": "unreadable"}, "y": {"metrics": "unreadable"}}  # fmt: skip


@pytest.mark.parametrize(
    ("replies", "variables", "kes"),
    [
        ({"bp-a": metrics(slot=1205, forging=1, current=122, start=100, expiry=130, remaining=8)}, {},
         ("bp-a", "kes", True, "8 KES periods left, until 2026-12-01 08:04:20 UTC")),
        ({"bp-a": metrics(slot=1235, forging=1, current=123, start=100, expiry=130, remaining=7)}, {},
         ("bp-a", "kes", False, "7 KES periods left, until 2026-12-01 08:04:20 UTC (the threshold is 7): "
                                f"{ROTATE}")),
        ({"bp-a": HOLDER}, {"KES_PERIODS_MIN": 20},
         ("bp-a", "kes", False, "10 KES periods left, until 2026-12-01 08:04:20 UTC (the threshold is 20): "
                                f"{ROTATE}")),
        ({"bp-a": HOLDER}, {"KES_PERIODS_MIN": "9"}, ("bp-a", "kes", True, "10 KES periods left, until 2026-12-01 "
                                                                            "08:04:20 UTC")),
        ({"bp-a": EXPIRED}, {}, ("bp-a", "kes", False, "the operational certificate (KES periods 100..130) has "
                                                       f"expired: the node cannot forge; {ROTATE}")),
        ({"r": metrics(), "bp-b": metrics()}, {}, ("", "kes", False, "the key holder reports no KES periods: no "
                                                                     "operational certificate is loaded")),
        ({"bp-a": HOLDER}, {"KES_PERIODS_MIN": "seven"}, ("", "kes", False, "the variable KES_PERIODS_MIN is 'seven': "
                                                          "set it to a whole number (0 or more) in the service's "
                                                          "variables")),
        ({"bp-a": HOLDER}, {"KES_PERIODS_MIN": -1}, ("", "kes", False, "the variable KES_PERIODS_MIN is -1: set it to "
                                                     "a whole number (0 or more) in the service's variables")),
        ({"bp-a": EXPIRED}, {"FENCE_COMMAND": FORCED}, ("bp-a", "kes", False, "the operational certificate (KES "
                                                       f"periods 100..130) has expired: the node cannot forge; run "
                                                       f"{FORCED}")),
    ],
    ids=["above", "at-the-threshold", "threshold-set", "threshold-as-text", "expired", "none-loaded",
         "threshold-not-a-number", "threshold-negative", "forced-promotion-pending"],
)  # fmt: skip
def test_check_fails_at_the_threshold_and_once_expired_naming_the_date_and_the_command(replies, variables, kes):
    found = poolfacts.check_facts(poolfacts.node_facts(replies, {**LAB, **variables}), {**LAB, **COMMAND, **variables})
    assert [f for f in found if f[1] == "kes"] == [kes]


@pytest.mark.parametrize(
    ("replies", "variables", "sync"),
    [
        (POOL, {}, (True, "every node within 120 slots of the tip (tip slot 1205; the most behind: relay-a, 2 "
                          "slots)")),
        ({**POOL, "relay-a": metrics(slot=1000)}, {}, (False, "tip slot 1205; the most behind: relay-a, 205 slots, "
                                                              "over 120 (SLOT_LAG_MAX)")),
        ({**POOL, "relay-a": metrics(slot=1204)}, {"SLOT_LAG_MAX": 0}, (False, "tip slot 1205; the most behind: "
                                                                         "relay-a, 1 slot, over 0 (SLOT_LAG_MAX)")),
        ({**POOL, "relay-a": b"x"}, {}, (False, "no tip reported by relay-a")),
        (POOL, {"SLOT_LAG_MAX": 1.5}, (False, "the variable SLOT_LAG_MAX is 1.5: set it to a whole number (0 or more) "
                                              "in the service's variables")),
    ],
    ids=["in-sync", "behind", "limit-set", "no-tip", "limit-not-whole"],
)  # fmt: skip
def test_sync_judges_each_tip_against_the_highest(replies, variables, sync):
    found = poolfacts.check_facts(poolfacts.node_facts(replies, {**LAB, **variables}), {**LAB, **COMMAND, **variables})
    assert [f[2:] for f in found if f[:2] == ("", "sync")] == [sync]


def test_nothing_to_judge_when_no_node_answered():
    assert poolfacts.node_facts({}, LAB) == {} and poolfacts.check_facts({}, LAB) == []


@pytest.mark.parametrize("variables", [{"PROFILE": "lab", "SYSTEM_START": ""}, {"PROFILE": "testnet"}])
def test_an_unknown_network_is_a_value_error(variables):
    """The engine's guard makes it the ``facts`` finding's failure (nodeops.facts.role_facts)."""
    with pytest.raises(ValueError):
        poolfacts.node_facts({"bp": HOLDER}, variables)


def test_the_role_module_gives_the_hooks_and_the_thresholds_are_the_roles_defaults():
    role = load_role("cardano")
    assert role.hooks.node_facts.__wrapped__ is poolfacts.node_facts
    assert role.hooks.check_facts.__wrapped__ is poolfacts.check_facts
    assert role.defaults["KES_PERIODS_MIN"] == kesinfo.DEFAULT_THRESHOLD == 7
    assert role.defaults["SLOT_LAG_MAX"] == poolfacts.DEFAULT_SLOT_LAG


@pytest.mark.parametrize(
    ("body", "said"),
    [(HOLDER, " and says it uses them"),
     (EXPIRED, " and says it uses them, but its operational certificate (KES periods 100..130) has expired: it "
               "cannot forge (fab check's kes names the rotation)")],
    ids=["in-its-window", "expired"],
)  # fmt: skip
def test_a_new_holder_whose_certificate_has_expired_is_not_said_to_forge_unqualified(body, said):
    """Review rev16d finding 2: a promotion (and a deploy) said the new producer `serves with the hot keys and says
    it uses them` when its certificate had expired: forging_enabled stays 1, but the node cannot sign (status read
    it `forging False`). The line now carries the role's problem; the change stands (the node holds the keys)."""
    node = SimpleNamespace(name="bp-a")
    job = SimpleNamespace(role=load_role("cardano"), variables=LAB, profile="lab")
    change = SimpleNamespace(job=job, answers={"bp-a": body}, health=lambda _node: (True, None),
                             service=SimpleNamespace(name="pool"))  # fmt: skip
    assert confirm_forging(change, node, timeout=0) == said
