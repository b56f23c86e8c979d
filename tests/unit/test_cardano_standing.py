"""The issue counter of the certificate in force as the store holds it against the chain's (roles/cardano/issue.py
``counter_standing``, the kes issuer's ``standing``): what fab status shows per pool and fab check judges."""

from __future__ import annotations

import pytest

from nodeops.errors import InvalidInput
from nodeops.roles import load_role
from tests.unit.test_cardano_issue import COLD, POOL, chain, envelope, issue, kes, ocert

OTHER = ocert.ColdKey(bytes(range(1, 33)))


def op_cert(counter: int, cold=COLD) -> str:
    return envelope.certificate_file(ocert.issue(cold, kes.SignKey.generate().verification_key, counter, 90))


@pytest.mark.parametrize(
    ("store", "on_chain", "ok", "detail"),
    [
        (0, None, True, "issue counter 0 in the store, 0 on chain (no block with it yet)"),
        (1, None, True, "issue counter 1 in the store, 0 on chain (no block with it yet)"),
        (3, 3, True, "issue counter 3 in the store, 3 on chain"),
        (4, 3, True, "issue counter 4 in the store, 3 on chain (no block with it yet)"),
        (2, 3, False, "the chain's issue counter 3 is above the store's 2: a certificate the store does not hold as "
                      "current is in force (a rotation left under way: run it again; or one issued outside nodeops: "
                      "the next rotation would be refused as reused)"),
        (5, 3, False, "the store's issue counter 5 is more than one above the chain's 3: the chain refuses the "
                      "certificate's blocks (CounterOverIncrementedOCERT)"),
        (2, None, False, "the store's issue counter 2 is more than one above the chain's 0"),
    ],
    ids=["first-no-block", "one-no-block", "equal", "one-ahead", "chain-above", "store-two-ahead", "two-no-block"],
)  # fmt: skip
def test_the_stores_counter_against_the_chains(store, on_chain, ok, detail):
    facts, passed, said = issue.counter_standing({"op_cert": op_cert(store), "kes_key": "unused"},
                                                 chain(counter=on_chain))  # fmt: skip
    assert facts == {"counter_store": store, "counter_chain": on_chain}
    assert passed is ok and said.startswith(detail), said


def test_the_chains_counter_is_the_certificates_pools_not_anothers():
    other = issue.rotation.pool_id(OTHER.verification_key).hex()
    text = chain(counter=5).replace(POOL, other)
    assert issue.counter_standing({"op_cert": op_cert(0)}, text)[:2] == ({"counter_store": 0, "counter_chain": None},
                                                                        True)  # fmt: skip


def test_the_roles_issuer_offers_it_and_a_query_misread_is_refused():
    hook = load_role("cardano").hooks.issuers["kes"]
    assert hook.standing({}, {"op_cert": op_cert(1)}, chain(counter=1))[1] is True
    with pytest.raises(InvalidInput, match="cardano-cli query tip / protocol-state"):
        hook.standing({}, {"op_cert": op_cert(1)}, "not json")
