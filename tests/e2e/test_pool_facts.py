"""`fab status` and `fab check` of a deployed pool (the Cardano role's node_facts and check_facts hooks): each node's
tip within a few slots of the others, its peers, forging on the producer alone, the producer's KES periods left and
their date; then a fresh certificate (60 s from its issue: 30 KES periods of 2 s) runs out on the lab's clock:
`fab check` fails at the threshold while the producer still forges, naming the date and the command that rotates,
and once it has expired the producer forges no more (its metrics, the chain's blocks) and check says so; then
`fab rotate-secrets --secret kes` restores forging (the chain adopts the producer's blocks with the new counter) and
check's `kes` passes. On the pool lab (tests/e2e/pool_lab.py), after test_pool_deploy, which deploys the pool (this
module's fixture does when run alone, at once after lab.up); a rotation renews the certificate when fewer than 20
periods are left."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from tests.conftest import fab
from tests.e2e.conftest import inventory_variant
from tests.e2e.pool_lab import NAME, PLAN, chain_get, deployed, fresh_certificate, rotate
from tests.e2e.probe import wait_for

pytestmark = pytest.mark.lab

PRODUCER = next(h.name for h in PLAN.pool if h.preferred == "active")
LAB_MAX_KES = 30  # periods.LAB_GENESIS maxKESEvolutions: a certificate's window
LAB_KES_SLOTS = 10  # periods.LAB_GENESIS slotsPerKESPeriod: the slots of a KES period


KES_MIN = 10  # the pool's KES_PERIODS_MIN in this module: 20 s before a certificate runs out


@pytest.fixture(scope="module")
def pool_lab(pools, tmp_path_factory):
    """The pool lab with its pool deployed (from this inventory when no module before did) and at least 20 of its
    certificate's 30 KES periods ahead (a rotation when fewer: not when this module runs alone, at once after
    lab.up), and the inventory the module's commands use (``--inventory``): the lab's,
    its pool's KES_PERIODS_MIN set to KES_MIN (a check variable: no node restarts for it)."""

    def threshold(doc: dict) -> None:
        doc["services"]["pool"]["variables"]["KES_PERIODS_MIN"] = KES_MIN

    inventory = inventory_variant(pools.lab.inventory_file, tmp_path_factory.mktemp("pkf") / "pkf.yaml", threshold)
    where = ("--inventory", str(inventory))
    deployed(pools, *where)
    fresh_certificate(20, *where)  # at once: a certificate runs out 60 s after its issue
    return pools.lab, where


def status(where: tuple[str, ...]) -> dict:
    res = fab("status", *where, "--service", "pool", "--json")
    assert res.returncode in (0, 1) and "Traceback" not in res.stderr, res.stdout + res.stderr
    (event,) = [json.loads(line) for line in res.stdout.splitlines()]
    return event


def facts(event: dict) -> dict[str, dict]:
    return {n["node"]: n["facts"] for n in event["nodes"]}


def check(where: tuple[str, ...]) -> tuple[int, dict[tuple[str, str], dict]]:
    res = fab("check", *where, "--service", "pool", "--json")
    assert "Traceback" not in res.stderr, res.stderr
    found = [json.loads(line) for line in res.stdout.splitlines()]
    return res.returncode, {(f["node"], f["check"]): f for f in found if f.get("event") == "check"}


def test_status_shows_each_nodes_tip_peers_forging_and_the_producers_kes_periods(pool_lab, figures):
    lab, where = pool_lab
    event = status(where)
    seen = facts(event)
    figures(f"status facts: {json.dumps(seen, sort_keys=True)}")
    assert set(seen) == {h.name for h in PLAN.pool} and "facts_error" not in event
    tips = [f["slot"] for f in seen.values()]
    # a tip is the slot of the node's last block, and blocks come every 2 slots on average (active slot coefficient
    # 0.5), gaps of 7 or more slots included: one block behind can be 8 slots (CI saw it); a node that stopped syncing
    # is hundreds behind by now. 20 slots: 4 s
    assert all(f["lag"] == max(tips) - f["slot"] <= 20 for f in seen.values()), seen
    relays = [h.name for h in PLAN.pool if h.node_kind == "relay"]
    assert all(seen[r]["peers"] == 3 for r in relays) and all(
        seen[p]["peers"] == 2 for p in seen if p not in relays)  # fmt: skip
    assert [node for node, f in seen.items() if f["forging"]] == [PRODUCER]
    producer = seen[PRODUCER]
    first, expiry = map(int, producer["kes_window"].split(".."))  # the certificate's: issued in the KES period first
    assert producer["forged"] > 0 and expiry - first == LAB_MAX_KES
    assert 0 < producer["kes_left"] <= LAB_MAX_KES
    until = datetime.fromisoformat(producer["kes_until"].replace("Z", "+00:00"))
    start = json.loads(lab.state_file.read_text())["pool"]["system_start"]
    assert (until - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds() == 2 * expiry  # 2 s each
    assert all("kes_left" not in f for node, f in seen.items() if node != PRODUCER)


def left_in(reason: str) -> int:
    """The periods a ``kes`` finding says are left (``N KES period(s) left, until ...``)."""
    match = re.match(r"(\d+) KES periods? left, until ", reason)
    assert match, reason
    return int(match[1])


def test_check_fails_at_the_threshold_while_the_producer_still_forges(pool_lab, figures):
    """Each check's ``kes`` passes while more than KES_MIN periods are left and fails from KES_MIN on (exit 1),
    naming the date and the command that rotates, while the producer still forges: the chain takes a block of its
    forged after that check began."""
    _lab, where = pool_lab
    until = facts(status(where))[PRODUCER]["kes_until"].replace("T", " ").replace("Z", " UTC")
    seen = []

    def failed() -> tuple[int, dict, int] | None:
        slot = chain_get("/tip")["currentSlot"]
        code, found = check(where)
        kes = found[(PRODUCER, "kes")]
        seen.append((left_in(kes["reason"]), kes["result"]))
        assert kes["result"] == ("fail" if seen[-1][0] <= KES_MIN else "pass"), kes
        return (code, kes, slot) if kes["result"] == "fail" else None

    code, kes, began = wait_for(failed, "check to fail at the threshold", 60)
    figures(f"kes findings (periods left, result), a check after another: {seen}; exit {code}: {kes['reason']}")
    assert code == 1 and 0 < seen[-1][0] <= KES_MIN
    assert kes["reason"] == (f"{seen[-1][0]} KES period{'s' if seen[-1][0] != 1 else ''} left, until {until} (the "
                             f"threshold is {KES_MIN}): run fab rotate-secrets --env {NAME} --service pool "
                             "--secret kes")  # fmt: skip

    def forged_since() -> list[dict]:
        return [b for b in chain_get("/blocks")["forged"] if b["adopted"] and b["slot"] >= began]  # the one producer's

    mine = wait_for(forged_since, "a block the producer forged after the check began", 10)
    figures(f"the producer's blocks adopted from the check's slot {began} on: {len(mine)}")


def test_once_expired_the_producer_forges_no_more_and_check_says_so(pool_lab, figures):
    _lab, where = pool_lab
    producer = wait_for(lambda: (f := facts(status(where))[PRODUCER])["kes_left"] == 0 and f, "its end", 90)
    expiry = int(producer["kes_window"].split("..")[1])
    ran_out = datetime.now(UTC).strftime("%H:%M:%S")
    forged, blocks, slot = producer["forged"], chain_get("/blocks")["forged"], chain_get("/tip")["currentSlot"]
    # 15 slots, of which the pool leads about half: a producer still forging would have forged some (1 in 2^15 not)
    wait_for(lambda: chain_get("/tip")["currentSlot"] >= slot + 15, "15 slots", 10)
    event = status(where)
    after = facts(event)[PRODUCER]
    mine = chain_get("/blocks")["forged"]  # the pool's one producer forged them all
    figures(
        f"expired at {ran_out} UTC: forged {forged} -> {after['forged']}, the producer's blocks on chain "
        f"{len(mine)}, their KES periods {min(b['kesPeriod'] for b in mine)}..{max(b['kesPeriod'] for b in mine)}; "
        f"status {event['state']}, forging {after['forging']}, problem {after.get('problem')!r}"
    )
    assert after["forged"] == forged and after["kes_left"] == 0 and "kes_until" not in after
    # review rev16b finding 6: not healthy nor forging yes (the gauge stays 1), the reason on the producer's line
    assert event["state"] == "degraded" and after["forging"] is False and "has expired" in after["problem"], event
    assert mine and max(b["kesPeriod"] for b in mine) < expiry  # none at or past the certificate's end
    assert len(mine) == len(blocks)  # nothing more taken
    code, found = check(where)
    kes = found[(PRODUCER, "kes")]
    figures(f"check after expiry: exit {code}: {kes['reason']}")
    assert code == 1 and kes["result"] == "fail"
    assert kes["reason"] == (f"the operational certificate (KES periods {producer['kes_window']}) has expired: the "
                             f"node cannot forge; run fab rotate-secrets --env {NAME} --service pool --secret "
                             "kes")  # fmt: skip


def test_a_rotation_after_expiry_restores_forging_and_check_passes(pool_lab, figures):
    """Issue 16's "a rotation restores forging": `fab rotate-secrets --secret kes` on the producer the test before
    left expired; the chain adopts its blocks with the new counter (exactly one more) from the new certificate's KES
    period on, check's ``kes`` passes and the producer's metrics say it forges. The new certificate is issued for the
    KES period of the current slot by the clock, not of the chain's tip (in the lab, where the pool is the chain's
    only forger, the tip is its last block before the expiry): its window starts at or after the period of the
    chain's current slot before the rotation (a tip's would be before it), and ``kes`` is judged at the role's
    default threshold (7 periods: the lab's inventory), not this module's 10."""
    lab, where = pool_lab
    pool_id = json.loads(lab.state_file.read_text())["pool"]["pool_id"]
    before, slot = chain_get("/pools")[pool_id]["counter"], chain_get("/tip")["currentSlot"]
    res, seconds = rotate(*where)
    assert res.returncode == 0, res.stdout + res.stderr
    after = chain_get("/pools")[pool_id]["counter"]

    def adopted() -> list[dict]:
        return [
            b for b in chain_get("/blocks")["forged"] if b["adopted"] and b["counter"] == after and b["slot"] > slot
        ]

    mine = wait_for(adopted, f"a block with counter {after} adopted", 20)
    code, found = check(("--env", NAME))
    kes = found[(PRODUCER, "kes")]
    producer = facts(status(where))[PRODUCER]
    failed = sorted(f"{node} {name}" for (node, name), f in found.items() if f["result"] == "fail")
    figures(f"rotation after expiry (slot {slot}): {seconds:.1f} s, chain counter {before} -> {after}, the window "
            f"{producer['kes_window']}, {len(mine)} block(s) with it adopted from slot {mine[0]['slot']} (KES period "
            f"{mine[0]['kesPeriod']}); check: exit {code}, kes: {kes['reason']}; failed: {failed}")  # fmt: skip
    assert after == before + 1
    first = int(producer["kes_window"].split("..")[0])
    assert first >= slot // LAB_KES_SLOTS  # the clock's period, not the stale tip's
    assert min(b["kesPeriod"] for b in mine) >= first and producer["forging"] and producer["kes_left"] > 0
    assert kes["result"] == "pass" and left_in(kes["reason"]) > 7
