"""The operational certificate (roles/cardano/ocert.py): issued byte for byte as cardano-cli issued published ones,
parsed, verified against the cold key; the issue counter's rules as the ledger checks them."""

from __future__ import annotations

import cbor2
import pytest
from nacl.signing import VerifyKey

from nodeops.roles import role_module
from tests.unit import cardano_vectors as v

ocert = role_module("cardano", "ocert")
kes = role_module("cardano", "kes")
envelope = role_module("cardano", "envelope")


def payload(cbor_hex: str) -> bytes:
    return cbor2.loads(bytes.fromhex(cbor_hex))


PLAYGROUND_COLD = envelope.read_cold_signing_key(v.PLAYGROUND_COLD_SKEY_FILE, "playground/cold.skey")


def test_the_playground_certificate_is_issued_byte_for_byte():
    certificate = ocert.issue(PLAYGROUND_COLD, payload(v.PLAYGROUND_KES_VKEY_CBOR), 13, 1430)
    assert certificate.to_cbor().hex() == v.PLAYGROUND_OPCERT_CBOR
    assert certificate.cold_vk == payload(v.PLAYGROUND_COLD_VKEY_CBOR)
    assert envelope.certificate_file(certificate) == v.PLAYGROUND_OPCERT_FILE  # the file, as cardano-cli wrote it


def test_the_signed_bytes_are_the_key_then_two_big_endian_words():
    assert ocert.signable(b"\x01" * 32, 13, 1430) == b"\x01" * 32 + bytes(7) + b"\x0d" + bytes(6) + b"\x05\x96"


@pytest.mark.parametrize(
    ("cbor_hex", "counter", "period"),
    [(v.PLAYGROUND_OPCERT_CBOR, 13, 1430), (v.DEVNET_OPCERT_CBOR, 0, 0)],
)
def test_published_certificates_parse_and_verify_with_their_cold_key(cbor_hex, counter, period):
    certificate = ocert.Certificate.from_cbor(bytes.fromhex(cbor_hex))
    assert (certificate.counter, certificate.kes_period) == (counter, period)
    assert certificate.verify() and certificate.verify(certificate.cold_vk)
    assert certificate.to_cbor().hex() == cbor_hex  # parsed and written back unchanged
    assert not certificate.verify(payload(v.CLI_COLD_VKEY_CBOR))  # another pool's key


def test_cardano_clis_2020_golden_certificate_signs_what_the_ledger_no_longer_takes():
    """cardano-cli's golden certificate (June 2020) was signed over the CBOR of (vk, n, c0), before the ledger's
    OCertSignable became the raw bytes: it parses, and its signature is refused as today's ledger refuses it."""
    certificate = ocert.Certificate.from_cbor(bytes.fromhex(v.CLI_OPCERT_CBOR))
    assert (certificate.counter, certificate.kes_period) == (0, 1000)
    assert certificate.to_cbor().hex() == v.CLI_OPCERT_CBOR
    assert not certificate.verify()
    old = cbor2.dumps([certificate.kes_vk, certificate.counter, certificate.kes_period])
    VerifyKey(certificate.cold_vk).verify(old, certificate.signature)  # genuine, in the format of its time


@pytest.mark.parametrize(
    "change",
    [{"counter": 14}, {"kes_period": 1431}, {"kes_vk": bytes(32)}, {"signature": bytes(64)}, {"cold_vk": bytes(32)}],
)
def test_any_changed_field_fails_verification(change):
    certificate = ocert.Certificate.from_cbor(bytes.fromhex(v.PLAYGROUND_OPCERT_CBOR))
    assert not ocert.Certificate(**{**certificate.__dict__, **change}).verify()


def test_issue_refuses_fields_out_of_range():
    with pytest.raises(ValueError, match="32 bytes, not 31"):
        ocert.issue(PLAYGROUND_COLD, bytes(31), 0, 0)
    with pytest.raises(ValueError, match="64-bit unsigned"):
        ocert.issue(PLAYGROUND_COLD, bytes(32), -1, 0)
    with pytest.raises(ValueError, match="64-bit unsigned"):
        ocert.issue(PLAYGROUND_COLD, bytes(32), 0, 1 << 64)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ([[b"\0" * 32, 0, 0, b"\0" * 64]], "not \\[\\[kes_vk"),
        ([[b"\0" * 31, 0, 0, b"\0" * 64], b"\0" * 32], "KES verification key is not 32 bytes"),
        ([[b"\0" * 32, 0, 0, b"\0" * 63], b"\0" * 32], "signature is not 64 bytes"),
        ([[b"\0" * 32, 0, 0, b"\0" * 64], "cold"], "cold verification key is not 32 bytes"),
        ([[b"\0" * 32, -1, 0, b"\0" * 64], b"\0" * 32], "counter is not a 64-bit unsigned integer"),
        ([[b"\0" * 32, 0, True, b"\0" * 64], b"\0" * 32], "KES period is not a 64-bit unsigned integer"),
        (7, "not \\[\\[kes_vk"),
    ],
)
def test_a_malformed_certificate_says_what_is_wrong(value, problem):
    with pytest.raises(ValueError, match=problem):
        ocert.Certificate.from_cbor(cbor2.dumps(value))


def test_the_issue_counter_of_cardano_cli():
    counter = ocert.IssueCounter.from_cbor(bytes.fromhex(v.CLI_COUNTER_CBOR))
    assert counter == ocert.IssueCounter(0, payload(v.CLI_COLD_VKEY_CBOR))
    assert counter.description == "Next certificate issue number: 0"
    assert counter.to_cbor().hex() == v.CLI_COUNTER_CBOR
    assert ocert.ColdKey(payload(v.CLI_COLD_SKEY_CBOR)).verification_key == counter.cold_vk  # the key it counts for


@pytest.mark.parametrize(
    ("value", "problem"),
    [([-1, b"\0" * 32], "number is not"), ([0, b"\0" * 31], "not 32 bytes"), ([0], "not \\[next_number")],
)
def test_a_malformed_counter_says_what_is_wrong(value, problem):
    with pytest.raises(ValueError, match=problem):
        ocert.IssueCounter.from_cbor(cbor2.dumps(value))


def test_the_cold_key_never_shows_its_seed():
    shown = repr(PLAYGROUND_COLD) + str(PLAYGROUND_COLD) + f"{PLAYGROUND_COLD}"
    assert "bb2836ff" not in shown and payload(v.PLAYGROUND_COLD_VKEY_CBOR).hex() in shown
    with pytest.raises(ValueError, match="32 bytes, not 64"):
        ocert.ColdKey(bytes(64))


@pytest.mark.parametrize(
    ("on_chain", "expected"),
    [(None, 1), (0, 1), (13, 14)],  # a pool with no block yet: the chain's counter is 0 (currentIssueNo)
)
def test_the_next_counter_is_the_chains_plus_one(on_chain, expected):
    assert ocert.next_counter(on_chain) == expected
    ocert.check_counter(expected, on_chain)


@pytest.mark.parametrize(
    ("counter", "on_chain", "problem"),
    [
        (13, 13, "counter 13 is the chain's own: reused, it would not supersede .* the next is 14"),
        (12, 13, "counter 12 is below the chain's 13: the chain refuses it \\(CounterTooSmallOCERT\\)"),
        (15, 13, "counter 15 skips past the chain's 13 \\+ 1: the chain refuses it \\(CounterOverIncrementedOCERT\\)"),
        (2, None, "counter 2 skips past the chain's 0 \\+ 1"),
        (0, 0, "counter 0 is the chain's own"),  # a block carried counter 0: it is in force
    ],
)
def test_a_reused_or_skipping_counter_is_refused(counter, on_chain, problem):
    with pytest.raises(ocert.CounterRefused, match=problem):
        ocert.check_counter(counter, on_chain)


def test_a_pool_with_no_block_may_start_at_zero_as_cardano_cli_does():
    ocert.check_counter(0, None)  # cardano-cli's first certificate (its counter file starts at 0)
