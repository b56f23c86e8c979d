"""The pool's chain fence (roles/cardano/issue.py ``fence_kes``, role.py ``CHAIN_FENCE``): the standby's certificate
in a forced promotion is one past every certificate the lost producer may hold (the stored one, a pending one the
chain took), refused (exit 2) when the chain cannot take such a certificate yet; an interrupted promotion's own
pending version (the standby runs it, or its certificate is marked a forced promotion's) is kept."""

from __future__ import annotations

import pytest

from nodeops.errors import EXIT_INVALID, EXIT_UNSAFE, NodeopsError
from nodeops.roles import load_role
from tests.unit.test_cardano_issue import COLD, LAB, NOW, POOL, SLOT, certificate, chain, envelope, issue, kes, ocert
from tests.unit.test_cardano_issue import secrets as stored_secrets


def pending_of(counter: int, period: int = 100, description: str | None = None) -> dict[str, str]:
    """A pending version's hot keys: a rotation's (cardano-cli's description), or a forced promotion's (FORCED)."""
    key = kes.SignKey.generate()
    cert = ocert.issue(COLD, key.verification_key, counter, period)
    return {"kes_key": envelope.kes_signing_key_file(key),
            "op_cert": envelope.write(envelope.CERTIFICATE, cert.to_cbor(), description)}  # fmt: skip


@pytest.mark.parametrize(
    ("stored_next", "pending", "on_chain", "held", "counter", "reused", "resume"),
    [
        (1, None, 0, False, 1, False, "none"),  # the lost producer forges with counter 0: the standby's is 1
        (1, None, None, False, 1, False, "none"),  # no block yet: 0 + 1 is still one past the chain's
        (4, None, 3, False, 4, False, "none"),
        (1, 1, 1, False, 2, False, "none"),  # a rotation's pending 1 the lost producer forged with: one past it
        (1, 1, 1, True, 1, True, "push"),  # this promotion's own pending, the standby runs it: kept
        (1, 1, 0, True, 1, True, "push"),  # kept before the chain took it (the standby forges it next)
        (2, 1, 1, True, 1, True, "push"),  # the counter stored already, AWSCURRENT not moved: kept
        (2, (2, 100), 1, False, 2, True, "push"),  # this promotion's own, killed before b restarted: no lost holder
        (2, (2, 50), 1, False, 2, False, "reissue"),  # the same, its KES window passed: the same counter, a new key
        (2, (2, 95), 1, False, 2, False, "reissue"),  # the same, started before the clock's period 100: a new key
    ],
    ids=["first", "no-block", "later", "past-a-pending", "rerun-kept", "rerun-before-taken", "rerun-stored",
         "rerun-own-unpushed", "rerun-own-expired", "rerun-own-stale"],
)  # fmt: skip
def test_the_standbys_certificate_is_one_past_every_one_the_lost_producer_may_hold(
        stored_next, pending, on_chain, held, counter, reused, resume):  # fmt: skip
    """``resume`` as the rotation words it (review rev16b finding 8: an own pending version past its window said
    ``none`` where the rotation says ``reissue``)."""
    own = isinstance(pending, tuple)  # (counter, KES period) of a forced promotion's own pending version
    given = None if pending is None else pending_of(*pending, issue.FORCED) if own else pending_of(pending)
    made = issue.fence_kes(LAB, stored_secrets(stored_next), chain(counter=on_chain), given, held, NOW)
    cert = certificate(made)
    assert (cert.counter, made.reused) == (counter, reused) and cert.verify(COLD.verification_key)
    assert (given is not None and made.values == {k: given[k] for k in issue.HOT}) is reused
    assert envelope.read_issue_counter(made.updates["counter"], "t").next == counter + 1
    assert made.facts["counter"] == counter and made.facts["pool"] == POOL and made.facts["resume"] == resume
    assert made.facts["kes_period"] == (cert.kes_period if reused else SLOT // 10)
    if not reused:  # marked as a forced promotion's, for a rerun
        assert envelope.read(made.values["op_cert"], "t", envelope.CERTIFICATE).description == issue.FORCED


@pytest.mark.parametrize(
    ("stored_next", "pending", "on_chain", "held", "cold", "code", "said"),
    [
        (1, 1, 0, False, COLD, EXIT_INVALID, "the lost producer may hold counter 1, which has made no block yet"),
        (1, None, 2, False, COLD, EXIT_INVALID, "reused"),  # a counter past the store's on chain: issued elsewhere
        (1, None, 0, False, ocert.ColdKey(bytes(32)), EXIT_INVALID, "this cold key is not the pool's"),
        (1, 1, 2, True, COLD, EXIT_UNSAFE, "the chain's counter 2 is past the standby's pending 1"),
    ],
    ids=["pending-without-block", "reused", "wrong-cold-key", "chain-past-kept"],
)  # fmt: skip
def test_a_fence_the_chain_would_not_take_is_refused_before_anything_is_written(
        stored_next, pending, on_chain, held, cold, code, said):  # fmt: skip
    with pytest.raises(NodeopsError) as err:
        issue.fence_kes(LAB, stored_secrets(stored_next, cold), chain(counter=on_chain),
                        None if pending is None else pending_of(pending), held, NOW)  # fmt: skip
    assert err.value.exit_code == code and said in str(err.value) and "\n" not in str(err.value)


def test_the_role_defines_the_fence_beside_its_one_issued_rotation():
    role = load_role("cardano")
    assert role.hooks.chain_fence.change.startswith("a new KES key and operational certificate")
    assert [s.name for s in role.rotation.values() if s.kind in role.hooks.issuers] == ["kes"]


@pytest.mark.parametrize(
    ("tip", "pending", "held", "period", "resume"),
    [
        (705, None, False, 100, "none"),  # the lost producer's last block is a minute old: the clock's period, not 70
        (705, (2, 100), False, 100, "push"),  # this promotion's own pending version starts at the clock's period: kept
        (705, (2, 95), False, 100, "reissue"),  # it started 5 periods ago and the standby does not run it: a new key
        (705, (2, 95), True, 95, "push"),  # the standby runs it: kept, its periods left said
        (705, (2, 60), False, 100, "reissue"),  # it held the stale tip's slot only: a new key from the clock's period
    ],
    ids=["stale-tip", "own-pending-now", "own-pending-stale", "own-pending-run", "own-pending-passed"],
)  # fmt: skip
def test_the_fence_starts_at_the_clocks_period_whatever_the_tip(tip, pending, held, period, resume):
    given = None if pending is None else pending_of(*pending, issue.FORCED)
    made = issue.fence_kes(LAB, stored_secrets(2), chain(tip, counter=1), given, held, NOW)
    assert certificate(made).kes_period == made.facts["kes_period"] == period
    assert (made.facts["resume"], made.facts["kes_left"]) == (resume, period + 30 - SLOT // 10)
    assert made.said.startswith(f"certificate counter 2, KES periods {period}..{period + 30}: ")
    assert (made.facts["slot"], made.facts["tip_behind"], made.facts["synced"]) == (SLOT, 300, False)


def test_a_fence_is_refused_when_the_tip_is_more_than_a_kes_period_ahead_of_the_clock():
    with pytest.raises(NodeopsError) as err:
        issue.fence_kes(LAB, stored_secrets(2), chain(SLOT + 11, counter=1), None, False, NOW)
    assert err.value.exit_code == EXIT_INVALID and f"slot {SLOT + 11}" in str(err.value)
