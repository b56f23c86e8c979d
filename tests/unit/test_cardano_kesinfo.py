"""A producer's KES facts from its metrics (roles/cardano/kesinfo.py): the real names parsed, with or without the
``_int`` suffix; when the certificate runs out per network; the threshold check's verdicts."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from nodeops.roles import role_module

kesinfo = role_module("cardano", "kesinfo")
periods = role_module("cardano", "periods")
MAINNET, PREVIEW = periods.NETWORKS["mainnet"], periods.NETWORKS["preview"]
LAB = periods.Genesis.from_shelley_genesis("lab", periods.lab_shelley_genesis(datetime(2026, 12, 1, 8, tzinfo=UTC)))

# as cardano-node's PrometheusSimple backend serves them (the lab's simulator writes the same lines)
HOLDER = """# TYPE cardano_node_metrics_Forge_forged_counter counter
cardano_node_metrics_Forge_forged_counter 41
# TYPE cardano_node_metrics_blockNum_int gauge
cardano_node_metrics_blockNum_int 11234567
# TYPE cardano_node_metrics_blocksForged_int gauge
cardano_node_metrics_blocksForged_int 40
cardano_node_metrics_currentKESPeriod_int 1157
cardano_node_metrics_epoch_int 590
cardano_node_metrics_forging_enabled_int 1
cardano_node_metrics_operationalCertificateExpiryKESPeriod_int 1212
cardano_node_metrics_operationalCertificateStartKESPeriod_int 1150
cardano_node_metrics_remainingKESPeriods_int 55
cardano_node_metrics_slotNum_int 150000000
"""
RELAY = """cardano_node_metrics_forging_enabled_int 0
cardano_node_metrics_slotNum_int 150000000
cardano_node_metrics_blockNum_int 11234567
"""
NOSUFFIX = """cardano_node_metrics_remainingKESPeriods 3
cardano_node_metrics_forging_enabled 1
cardano_node_metrics_Forge_forged{pool="x y"} 2
cardano_node_metrics_slotNum 150000000 1764576000000
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HOLDER, (1157, 1150, 1212, 55, True, 40, 150000000, 11234567)),
        (RELAY, (None, None, None, None, False, 0, 150000000, 11234567)),
        (NOSUFFIX, (None, None, None, 3, True, 2, 150000000, None)),
        ("", (None, None, None, None, False, 0, None, None)),
    ],
)
def test_the_kes_facts_of_a_nodes_metrics(text, expected):
    facts = kesinfo.parse(text)
    fields = ("current", "start", "expiry", "remaining", "forging", "blocks_forged", "slot", "block")
    assert tuple(getattr(facts, f) for f in fields) == expected


def test_another_prefix_is_read_when_given():
    assert kesinfo.parse("node_remainingKESPeriods_int 9\n", prefix="node_").remaining == 9


@pytest.mark.parametrize("line", ["cardano_node_metrics_slotNum_int", "cardano_node_metrics_slotNum_int many"])
def test_a_line_that_is_not_a_sample_is_named(line):
    with pytest.raises(ValueError, match="metrics line 2 is not 'name value'"):
        kesinfo.parse("# HELP x\n" + line + "\n")


@pytest.mark.parametrize(
    ("genesis", "slot", "remaining", "when"),
    [
        # mainnet: slot 150000000 is in period 1157; 1157 + 55 = 1212 -> slot 157075200, 152582400 s (1766 days)
        # after the Shelley start (slot 4492800, 2020-07-29T21:44:51Z); + 7 -> slot 150854400, 1694 days
        (MAINNET, 150_000_000, 55, datetime(2025, 5, 30, 21, 44, 51, tzinfo=UTC)),
        (MAINNET, 150_000_000, 7, datetime(2025, 3, 19, 21, 44, 51, tzinfo=UTC)),
        (PREVIEW, 129600 * 10 + 5, 1, datetime(2022, 11, 10, 12, tzinfo=UTC)),  # period 11 at slot 1425600 s
        (LAB, 105, 3, datetime(2026, 12, 1, 8, 0, 26, tzinfo=UTC)),  # period 10 + 3 -> slot 130, 0.2 s slots
    ],
)
def test_when_the_remaining_periods_run_out(genesis, slot, remaining, when):
    assert kesinfo.runs_out(genesis, slot, remaining) == when
    assert genesis.slot_at(when) % genesis.slots_per_kes_period == 0  # a period's first slot


def facts(remaining, start=1150, expiry=1212, slot=150_000_000):
    return kesinfo.KesFacts(1157, start, expiry, remaining, True, 40, slot, 11234567)


@pytest.mark.parametrize(
    ("remaining", "threshold", "ok", "message"),
    [
        (55, 7, True, "55 KES periods left, until 2025-05-30 21:44:51 UTC"),
        (8, 7, True, "8 KES periods left"),
        (7, 7, False, "7 KES periods left, until 2025-03-19 21:44:51 UTC \\(the threshold is 7\\): run fab rotate"),
        (1, 7, False, "1 KES period left"),
        (20, 30, False, "the threshold is 30"),
        (
            0,
            7,
            False,
            "KES periods 1150..1212\\) has expired: the node cannot forge; run fab rotate-secrets --env E "
            "--service S --secret kes",
        ),
        (None, 7, False, "reports no KES periods"),
    ],
)
def test_the_check_fails_at_the_threshold_and_says_when(remaining, threshold, ok, message):
    verdict = kesinfo.check(facts(remaining), MAINNET, threshold, "fab rotate-secrets --env E --service S --secret kes")
    assert verdict.ok is ok
    assert re.search(message, verdict.message), verdict.message


def test_the_default_threshold_is_about_ten_days_on_mainnet():
    span = kesinfo.DEFAULT_THRESHOLD * MAINNET.slots_per_kes_period * MAINNET.slot_length / 86400
    assert (kesinfo.DEFAULT_THRESHOLD, float(span)) == (7, 10.5)
