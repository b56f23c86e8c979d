"""A cold key that is not the pool's, even with an issue counter file that matches it (review rev16c finding F1: an
operator with two pools points one pool's ``cold_key`` and ``counter`` at the other's secrets). The pool a rotation
or a forced promotion issues for is the one whose cold key signed the certificate in force (the current ``op_cert``),
not the one the counter file names: the pair is refused before anything is written (exit 2), the message naming the
secret, both pools (ids shortened) and the fix."""

from __future__ import annotations

import pytest

from nodeops.errors import EXIT_INVALID, NodeopsError
from tests.unit.test_cardano_issue import COLD, LAB, NOW, POOL, chain, envelope, issue, ocert, rotation, secrets
from tests.unit.test_cardano_issue import pending_of as rotation_pending

OTHER = ocert.ColdKey(bytes(range(100, 132)))  # another pool's cold key
OTHER_POOL = rotation.pool_id(OTHER.verification_key).hex()


def swapped(next_number: int = 1, cold: ocert.ColdKey = OTHER, counted: ocert.ColdKey = OTHER) -> dict[str, str]:
    """The pool's secrets with ``cold_key`` and ``counter`` replaced (by default by another pool's matching pair, as
    ``cardano-cli node key-gen`` leaves them); ``op_cert`` stays the certificate in force (counter 0), signed by
    COLD."""
    counter = ocert.IssueCounter(next_number, counted.verification_key)
    return {**secrets(1), "cold_key": envelope.cold_signing_key_file(cold),
            "counter": envelope.issue_counter_file(counter)}  # fmt: skip


FOREIGN = (f"^secret cold_key: this cold key is not the pool's: it is pool {OTHER_POOL[:8]}'s, the pool deployed is "
           f"{POOL[:8]} \\(the certificate in force, op_cert, is not signed by it\\); point cold_key and counter at "
           "the deployed pool's cold key and issue counter, then rerun$")  # fmt: skip
COUNTED = (f"^secret counter: this issue counter is pool {OTHER_POOL[:8]}'s, not the deployed pool {POOL[:8]}'s; "
           "point counter at the deployed pool's issue counter, then rerun$")  # fmt: skip


def rotate(given, on_chain, pending):
    return issue.issue_kes(LAB, given, chain(counter=on_chain), pending, NOW, pending is not None)


def fence(given, on_chain, pending):
    return issue.fence_kes(LAB, given, chain(counter=on_chain), pending, pending is not None, NOW)


@pytest.mark.parametrize("run", [rotate, fence], ids=["rotate-secrets", "promote-standby-force"])
@pytest.mark.parametrize(
    ("given", "on_chain", "pending", "said"),
    [
        (swapped(0), None, None, FOREIGN),  # the review's repro: the other pool's counter says next 0
        (swapped(1), 0, None, FOREIGN),
        (swapped(1), 0, (1, 100), FOREIGN),  # a rotation under way, kept: the rerun pushes no foreign pair either
        (swapped(1, OTHER, COLD), 0, None, FOREIGN),  # the other pool's cold key alone
        (swapped(1, COLD, OTHER), 0, None, COUNTED),  # the other pool's counter file alone
    ],
    ids=["pair-next-0", "pair", "pair-pending", "cold-key-alone", "counter-alone"],
)  # fmt: skip
def test_another_pools_cold_key_or_counter_is_refused_before_anything_is_written(run, given, on_chain, pending,
                                                                                  said):  # fmt: skip
    with pytest.raises(NodeopsError, match=said) as err:
        run(given, on_chain, None if pending is None else rotation_pending(*pending))
    assert err.value.exit_code == EXIT_INVALID


def test_the_pools_own_pair_still_issues_for_the_pool_the_certificate_in_force_names():
    made = rotate(swapped(1, COLD, COLD), 0, None)
    assert made.facts["pool"] == POOL and envelope.read_certificate(made.values["op_cert"], "t").verify(
        COLD.verification_key)  # fmt: skip
