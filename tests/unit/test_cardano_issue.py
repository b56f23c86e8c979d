"""KES rotation as the role issues it (roles/cardano/issue.py, ISSUERS["kes"]): the query run in the holder's
container, its output read, the new KES key and certificate (or the pending version kept, or issued again) from the
cold key and the issue counter, the refusals before anything is written (exit 2), and how the holder's metrics and
the chain say the new certificate is in use."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from nodeops.errors import EXIT_INVALID, EXIT_UNSAFE, InvalidInput, Unsafe
from nodeops.roles import load_role, role_module

issue = role_module("cardano", "issue")
envelope = role_module("cardano", "envelope")
ocert = role_module("cardano", "ocert")
kes = role_module("cardano", "kes")
rotation = role_module("cardano", "rotation")

COLD = ocert.ColdKey(bytes(range(32)))
POOL = rotation.pool_id(COLD.verification_key).hex()
LAB = {"PROFILE": "lab", "SYSTEM_START": "2026-12-01T08:00:00Z"}
SLOT = 1005  # KES period 100 on the lab's clock (10 slots a period)
NOW = datetime(2026, 12, 1, 8, 3, 21, tzinfo=UTC)  # slot 1005 (0.2 s slots): the clock and the tip agree


def chain(slot=SLOT, counter=None) -> str:
    counters = {} if counter is None else {POOL: counter}
    return json.dumps({"slot": slot, "block": 9}, indent=4) + "\n" + json.dumps({"oCertCounters": counters}) + "\n"


def secrets(next_number=1, cold=COLD) -> dict[str, str]:
    current = ocert.issue(COLD, kes.SignKey.generate().verification_key, next_number - 1, 90)
    return {"cold_key": envelope.cold_signing_key_file(cold), "op_cert": envelope.certificate_file(current),
            "counter": envelope.issue_counter_file(ocert.IssueCounter(next_number, COLD.verification_key)),
            "kes_key": "unused"}  # fmt: skip


def certificate(issued):
    return envelope.read_certificate(issued.values["op_cert"], "t")


@pytest.mark.parametrize(
    ("profile", "flags"),
    [("lab", ["--testnet-magic", "42"]), ("mainnet", ["--mainnet"]), ("preprod", ["--testnet-magic", "1"]),
     ("preview", ["--testnet-magic", "2"])],
)  # fmt: skip
def test_the_query_is_the_tip_then_the_protocol_state_on_the_nodes_socket(profile, flags):
    argv = issue.KesRotation().query({"PROFILE": profile})
    tail = " ".join([*flags, "--socket-path", "/ipc/node.socket"])
    assert argv == ["sh", "-c", f"cardano-cli query tip {tail} && cardano-cli query protocol-state {tail}"]


@pytest.mark.parametrize(
    ("output", "facts"),
    [(chain(), (SLOT, {})), (chain(counter=3), (SLOT, {POOL: 3})), ("", None), ("{}", None), ("[1] [2]", None),
     ('{"slot": "x"} {"oCertCounters": {}}', None), ("{} {} {}", None)],
)  # fmt: skip
def test_the_chains_facts_are_read_from_the_two_documents(output, facts):
    if facts is None:
        with pytest.raises(InvalidInput, match="cardano-cli query tip / protocol-state"):
            issue.chain_facts(output)
    else:
        assert issue.chain_facts(output) == facts


@pytest.mark.parametrize("on_chain", [None, 0])
def test_a_rotation_issues_the_next_counter_at_the_current_period_and_moves_the_counter_on(on_chain):
    made = issue.issue_kes(LAB, secrets(1), chain(counter=on_chain), None, NOW)
    cert = certificate(made)
    key = envelope.read_kes_signing_key(made.values["kes_key"], "t")
    assert (cert.counter, cert.kes_period, cert.kes_vk) == (1, 100, key.verification_key)
    assert cert.verify(COLD.verification_key) and not made.reused
    counter = envelope.read_issue_counter(made.updates["counter"], "t")
    assert (counter.next, counter.cold_vk) == (2, COLD.verification_key)
    assert dict(made.facts) == {"counter": 1, "kes_period": 100, "kes_left": 30, "pool": POOL, "resume": "none",
                                "slot": SLOT, "tip_behind": 0, "synced": True}  # fmt: skip


@pytest.mark.parametrize(
    ("given", "on_chain", "message"),
    [
        (secrets(1, cold=ocert.ColdKey(bytes(32))), 0, "secret cold_key: this cold key is not the pool's"),
        (secrets(1), 1, "^secret counter: reused: counter 1 is the chain's own"),
        (secrets(3), 1, "^secret counter: a skip of more than one"),
    ],
    ids=["wrong-cold-key", "reused-counter", "skip"],
)  # fmt: skip
def test_a_rotation_is_refused_before_anything_is_written(given, on_chain, message):
    with pytest.raises(InvalidInput, match=message) as err:
        issue.issue_kes(LAB, given, chain(counter=on_chain), None, NOW)
    assert err.value.exit_code == EXIT_INVALID


def pending_of(counter, period):
    key = kes.SignKey.generate()
    cert = ocert.issue(COLD, key.verification_key, counter, period)
    return {"kes_key": envelope.kes_signing_key_file(key), "op_cert": envelope.certificate_file(cert)}


@pytest.mark.parametrize(
    ("next_number", "pending", "on_chain", "held", "action", "period", "left"),
    [
        (1, (1, 100), 0, False, "push", 100, 30),  # it starts at the clock's period: nothing lost, kept
        (1, (1, 95), 0, False, "reissue", 100, 30),  # no node runs it; 5 periods lost since the kill: a new key
        (1, (1, 95), 0, True, "push", 95, 25),  # the holder runs it: completed, its periods left said
        (1, (1, 95), 1, False, "push", 95, 25),  # the chain took its counter (a node forged with it): kept
        (2, (1, 95), 1, True, "current", 95, 25),  # the counter stored: only AWSCURRENT is left
        (1, (1, 60), 0, True, "reissue", 100, 30),  # its KES window (30 periods) passed: same counter, new key
        (1, (1, 60), 0, False, "reissue", 100, 30),
    ],
    ids=["starts-now", "stale-not-run", "stale-run", "stale-taken", "stored", "expired-run", "expired-not-run"],
)  # fmt: skip
def test_a_rerun_keeps_the_pending_version_only_while_it_lost_nothing_or_a_node_runs_it(next_number, pending,
                                                                                         on_chain, held, action,
                                                                                         period, left):  # fmt: skip
    """The clock is in KES period 100. A pending certificate no node runs and the chain has not taken is issued
    again (same counter: not on chain yet) once it starts before the clock's period: pushed, it would have lost the
    periods since the kill."""
    kept = pending_of(*pending)
    made = issue.issue_kes(LAB, secrets(next_number), chain(counter=on_chain), kept, NOW, held)
    reused = action != "reissue"
    assert (made.facts["resume"], made.reused, made.facts["counter"], certificate(made).kes_period) == (
        action, reused, 1, period)  # fmt: skip
    assert (made.facts["kes_left"], made.values == kept) == (left, reused)
    assert envelope.read_issue_counter(made.updates["counter"], "t").next == 2


@pytest.mark.parametrize(
    ("start", "threshold", "left", "low"),
    [(95, None, 25, False), (77, None, 7, True), (76, None, 6, True), (95, 25, 25, True), (95, "x", 25, False)],
    ids=["plenty", "at-the-default-threshold", "under-it", "under-a-service-threshold", "threshold-not-a-number"],
)  # fmt: skip
def test_the_result_says_the_periods_left_and_to_rotate_again_at_the_threshold(start, threshold, left, low):
    """A pending version the holder runs is completed; the run's result line (Issued.said) gives its window and
    periods left, and names the rotation's command when they are at KES_PERIODS_MIN or under (check's rule)."""
    given = {**LAB, "PROGRAM": "fab", "SERVICE_OPTIONS": "--env lab --service pool"}
    if threshold is not None:
        given["KES_PERIODS_MIN"] = threshold
    made = issue.issue_kes(given, secrets(1), chain(counter=0), pending_of(1, start), NOW, True)
    assert made.facts["resume"] == "push" and made.said.startswith(
        f"certificate counter 1, KES periods {start}..{start + 30}: {left} KES periods left, until 2026-12-01 "
    )
    assert ("run fab rotate-secrets --env lab --service pool --secret kes" in made.said) is low, made.said


def test_a_pending_version_the_protocol_cannot_leave_is_unsafe():
    with pytest.raises(Unsafe, match="pending rotation's counter 3 is not the stored 0 \\+ 1") as err:
        issue.issue_kes(LAB, secrets(1), chain(counter=0), pending_of(3, 95), NOW)
    assert err.value.exit_code == EXIT_UNSAFE


METRICS = (
    "cardano_node_metrics_forging_enabled_int {f}\ncardano_node_metrics_operationalCertificateStartKESPeriod_int {s}\n"
)


@pytest.mark.parametrize(
    ("body", "used"),
    [(METRICS.format(f=1, s=100).encode(), True), (METRICS.format(f=0, s=100).encode(), False),
     (METRICS.format(f=1, s=90).encode(), False), (b"", False), (b"\xff", False)],
)  # fmt: skip
def test_the_holder_uses_the_new_certificate_when_it_forges_from_its_start_period(body, used):
    made = issue.issue_kes(LAB, secrets(1), chain(counter=0), None, NOW)
    hook = load_role("cardano").hooks.issuers["kes"]
    assert hook.in_use(body, made) is used
    assert hook.taken(chain(counter=1), made) and not hook.taken(chain(counter=0), made)
    assert not hook.taken("garbage", made)


STALE = 705  # the tip of a chain whose one forger stopped 60 s ago: KES period 70, the clock's is 100


@pytest.mark.parametrize(
    ("tip", "pending", "action", "period", "behind", "synced"),
    [
        (STALE, None, "none", 100, 300, False),  # the clock's period, not the stale tip's 70 (expired at issue)
        (SLOT - 10, None, "none", 100, 10, True),  # a KES period behind: still synced
        (SLOT + 7, None, "none", 100, -7, True),  # a tip a little ahead of this machine's clock
        (STALE, (1, 100), "push", 100, 300, False),  # the pending certificate starts at the clock's period: kept
        (STALE, (1, 60), "reissue", 100, 300, False),  # it held the tip's slot, not the clock's: a new key
    ],
    ids=["stale-tip", "one-period-behind", "tip-ahead", "stale-tip-pending-valid", "stale-tip-pending-passed"],
)  # fmt: skip
def test_a_rotation_starts_at_the_clocks_period_whatever_the_tip(tip, pending, action, period, behind, synced):
    made = issue.issue_kes(LAB, secrets(1), chain(tip, counter=0), pending and pending_of(*pending), NOW)
    assert (made.facts["resume"], certificate(made).kes_period, made.facts["kes_period"]) == (action, period, period)
    assert (made.facts["slot"], made.facts["tip_behind"], made.facts["synced"]) == (SLOT, behind, synced)


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=10)])
def test_a_tip_more_than_a_kes_period_ahead_of_the_clock_is_refused_naming_both_slots(late):
    now = NOW + late  # slot 1005, then 1055
    tip = SLOT + 11 + late // timedelta(milliseconds=200)
    with pytest.raises(InvalidInput) as err:
        issue.issue_kes(LAB, secrets(1), chain(tip, counter=0), None, now)
    said = str(err.value)
    assert err.value.exit_code == EXIT_INVALID and "\n" not in said
    assert f"slot {tip}" in said and f"slot {tip - 11}" in said and "clock right (NTP)" in said
