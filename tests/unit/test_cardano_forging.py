"""Whether hot credentials make blocks the chain takes (roles/cardano/forging.py), check by check as the ledger's
header validation; and a new certificate refused before any host (exit 2) for a wrong cold key or counter."""

from __future__ import annotations

import pytest

from nodeops.errors import EXIT_INVALID
from nodeops.roles import role_module

forging = role_module("cardano", "forging")
kes = role_module("cardano", "kes")
ocert = role_module("cardano", "ocert")
periods = role_module("cardano", "periods")

MAINNET = periods.NETWORKS["mainnet"]
COLD, OTHER_COLD = ocert.ColdKey(bytes([1]) * 32), ocert.ColdKey(bytes([2]) * 32)
KEY, OTHER_KEY = kes.SignKey.generate(bytes([3]) * 32), kes.SignKey.generate(bytes([4]) * 32)
START = 1000


def at(period: int):
    return MAINNET.window(period * MAINNET.slots_per_kes_period, START)


@pytest.mark.parametrize(
    ("period", "key", "signer", "counter", "on_chain", "reasons"),
    [
        (START, KEY, COLD, 14, 13, []),
        (START + 61, KEY, COLD, 13, 13, []),  # the certificate in force, on its last period
        (START, KEY, COLD, 0, None, []),  # a pool with no block yet: counter 0 or 1
        (START, KEY, COLD, 1, None, []),
        (START - 1, KEY, COLD, 14, 13, ["KESBeforeStartOCERT"]),
        (START + 62, KEY, COLD, 14, 13, ["KESAfterEndOCERT"]),
        (START, KEY, OTHER_COLD, 14, 13, ["InvalidSignatureOCERT"]),
        (START, OTHER_KEY, COLD, 14, 13, ["InvalidKesSignatureOCERT"]),
        (START + 2, KEY.evolve_to(3), COLD, 14, 13, ["InvalidKesSignatureOCERT"]),  # evolved past: forgotten
        (START, KEY, COLD, 12, 13, ["CounterTooSmallOCERT"]),
        (START, KEY, COLD, 15, 13, ["CounterOverIncrementedOCERT"]),
        (START + 70, OTHER_KEY, OTHER_COLD, 2, None, ["KESAfterEndOCERT", "InvalidSignatureOCERT",
                                                      "InvalidKesSignatureOCERT", "CounterOverIncrementedOCERT"]),
    ],
)  # fmt: skip
def test_the_chains_checks_of_a_block(period, key, signer, counter, on_chain, reasons):
    certificate = ocert.issue(signer, KEY.verification_key, counter, START)
    found = forging.refusals(certificate, key, COLD.verification_key, at(period), on_chain)
    assert [r.reason for r in found] == reasons


HEADER = b"header body"


@pytest.mark.parametrize(
    ("period", "signed_at", "message", "signer", "counter", "on_chain", "reasons"),
    [
        (START, 0, HEADER, COLD, 14, 13, []),
        (START + 5, 5, HEADER, COLD, 13, 13, []),  # signed at evolution period - start
        (START + 5, 4, HEADER, COLD, 13, 13, ["InvalidKesSignatureOCERT"]),  # at another evolution
        (START, 0, b"another body", COLD, 14, 13, ["InvalidKesSignatureOCERT"]),  # not what was signed
        (START - 1, 0, HEADER, COLD, 14, 13, ["KESBeforeStartOCERT"]),  # no evolution to check the signature at
        (START + 62, 0, HEADER, COLD, 14, 13, ["KESAfterEndOCERT"]),
        (START, 0, HEADER, OTHER_COLD, 14, 13, ["InvalidSignatureOCERT"]),
        (START, 0, HEADER, COLD, 12, 13, ["CounterTooSmallOCERT"]),
        (START, 0, HEADER, COLD, 15, 13, ["CounterOverIncrementedOCERT"]),
    ],
)  # fmt: skip
def test_the_chains_checks_of_a_received_header(period, signed_at, message, signer, counter, on_chain, reasons):
    """header_refusals: the same checks, the KES one made on the header's signature, as the chain service makes
    them on a block it receives."""
    certificate = ocert.issue(signer, KEY.verification_key, counter, START)
    signature = KEY.evolve_to(signed_at).sign(HEADER)
    found = forging.header_refusals(certificate, message, signature, COLD.verification_key, at(period), on_chain)
    assert [r.reason for r in found] == reasons


def test_a_refusal_says_why():
    certificate = ocert.issue(COLD, KEY.verification_key, 14, START)
    [expired] = forging.refusals(certificate, KEY, COLD.verification_key, at(START + 62), 13)
    assert str(expired) == ("KESAfterEndOCERT: KES period 1062 is past the certificate's last, 1061 (its start 1000 "
                            "+ maxKESEvolutions - 1)")  # fmt: skip


@pytest.mark.parametrize(
    ("cold", "counter", "on_chain", "problem"),
    [
        (COLD, 14, 13, None),
        (COLD, 1, None, None),
        (OTHER_COLD, 14, 13, "this cold key is not the pool's (its verification key is "),
        (COLD, 13, 13, "counter 13 is the chain's own: reused"),
        (COLD, 15, 13, "counter 15 skips past the chain's 13 + 1"),
    ],
)
def test_a_new_certificate_is_refused_for_a_wrong_cold_key_or_counter(cold, counter, on_chain, problem):
    if problem is None:
        forging.check_issue(cold, COLD.verification_key, counter, on_chain, "secrets cardano/cold")
        return
    with pytest.raises(forging.IssueRefused) as caught:
        forging.check_issue(cold, COLD.verification_key, counter, on_chain, "secrets cardano/cold")
    assert caught.value.exit_code == EXIT_INVALID
    assert str(caught.value).startswith(f"secrets cardano/cold: {problem}")
    assert cold.seed.hex() not in str(caught.value)
