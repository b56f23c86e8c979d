"""Sum6KES over Ed25519 with Blake2b-256 (roles/cardano/kes.py) against keys cardano-cli wrote
(tests/unit/cardano_vectors.py) and against its own rules: sizes, seed expansion, signing at a period, evolution
and what it forgets."""

from __future__ import annotations

import hashlib

import cbor2
import pytest
from nacl.signing import SigningKey

from nodeops.roles import role_module
from tests.unit import cardano_vectors as v

kes = role_module("cardano", "kes")
ocert = role_module("cardano", "ocert")


def payload(cbor_hex: str) -> bytes:
    return cbor2.loads(bytes.fromhex(cbor_hex))


@pytest.mark.parametrize(
    ("depth", "signing_key", "signature", "periods"),
    [(0, 32, 64, 1), (1, 128, 128, 2), (6, 608, 448, 64), (7, 704, 512, 128)],
)
def test_sizes(depth, signing_key, signature, periods):
    assert (kes.signing_key_size(depth), kes.signature_size(depth), kes.periods(depth)) == (
        signing_key, signature, periods)  # fmt: skip
    key = kes.SignKey.generate(bytes(range(32)), depth)
    assert (len(key.raw), len(key.verification_key), len(key.sign(b"m"))) == (signing_key, 32, signature)


def test_seed_expansion_is_blake2b_of_a_prefixed_seed():
    seed = bytes(range(32))
    left, right = kes.expand_seed(seed)
    assert left == hashlib.blake2b(b"\x01" + seed, digest_size=32).digest()
    assert right == hashlib.blake2b(b"\x02" + seed, digest_size=32).digest() != left


def test_one_level_is_the_sum_of_two_ed25519_keys():
    """Sum1 by hand (KES/Sum.hs, Figure 3 of the MMM paper): sk_0 | r_1 | vk_0 | vk_1, vk = H(vk_0 | vk_1)."""
    seed = bytes(range(32))
    r_0, r_1 = kes.expand_seed(seed)
    vk_0, vk_1 = bytes(SigningKey(r_0).verify_key), bytes(SigningKey(r_1).verify_key)
    key = kes.SignKey.generate(seed, depth=1)
    assert key.raw == r_0 + r_1 + vk_0 + vk_1
    assert key.verification_key == hashlib.blake2b(vk_0 + vk_1, digest_size=32).digest()
    assert key.sign(b"m") == SigningKey(r_0).sign(b"m").signature + vk_0 + vk_1
    right = key.evolve()
    assert right.raw == r_1 + bytes(32) + vk_0 + vk_1  # r_1 used, then forgotten
    assert right.sign(b"m") == SigningKey(r_1).sign(b"m").signature + vk_0 + vk_1
    assert right.evolve() is None


def test_the_devnet_key_cardano_cli_wrote_is_the_certificates_key():
    key = kes.SignKey(payload(v.DEVNET_KES_SKEY_CBOR))
    certificate = ocert.Certificate.from_cbor(bytes.fromhex(v.DEVNET_OPCERT_CBOR))
    assert key.verification_key == certificate.kes_vk


@pytest.mark.parametrize(
    ("raw", "depth", "vk"),
    [
        (v.DEVNET_KES_SKEY_CBOR, 6, ocert.Certificate.from_cbor(bytes.fromhex(v.DEVNET_OPCERT_CBOR)).kes_vk),
        (v.CLI_KES_SKEY_CBOR, 7, payload(v.CLI_KES_VKEY_CBOR)),  # cardano-cli's 2020 golden key: seven levels
    ],
)
def test_every_evolution_of_a_published_key_signs_for_its_published_verification_key(raw, depth, vk):
    """The right halves of a published key are built from the seeds it carries: their verification keys, which the
    key carries as cardano-base computed them, match only if seed expansion and key generation are cardano-base's."""
    key = kes.SignKey(payload(raw), depth=depth)
    assert key.verification_key == vk
    seen = []
    while key is not None:
        message = b"header body %d" % key.period
        signature = key.sign(message)
        assert kes.verify(vk, key.period, message, signature, depth)
        assert not kes.verify(vk, key.period, message + b"!", signature, depth)
        assert not kes.verify(vk, (key.period + 1) % kes.periods(depth), message, signature, depth)
        seen.append(key.period)
        key = key.evolve()
    assert seen == list(range(kes.periods(depth)))


def test_a_sum6_key_signs_for_64_periods_and_forgets_what_it_used():
    key = kes.SignKey.generate(bytes([7]) * 32)
    vk, seeds = key.verification_key, set()
    for period in range(64):
        assert key.period == period and key.verification_key == vk
        assert kes.verify(vk, period, b"m", key.sign(b"m"))
        seeds.add(key.raw[:32])
        before = key
        key = key.evolve()
        if key is not None:  # the key of the period left behind is gone from the evolved key
            assert before.raw[:32] not in key.raw
    assert key is None and len(seeds) == 64
    assert kes.SignKey.generate(bytes([7]) * 32).evolve_to(63).raw == before.raw  # evolving is deterministic


def test_after_the_first_half_the_right_seed_is_zero():
    key = kes.SignKey.generate(bytes([9]) * 32).evolve_to(31)
    r_1 = slice(kes.signing_key_size(5), kes.signing_key_size(5) + 32)
    assert key.raw[r_1] != bytes(32) and key.evolve().raw[r_1] == bytes(32)


@pytest.mark.parametrize(
    ("vk_len", "period", "signature_len", "expected"),
    [(32, 0, 448, True), (31, 0, 448, False), (32, 0, 447, False), (32, 64, 448, False), (32, -1, 448, False)],
)
def test_verify_refuses_wrong_sizes_and_periods(vk_len, period, signature_len, expected):
    key = kes.SignKey.generate(bytes(32))
    signature = key.sign(b"m")
    vk = key.verification_key[:vk_len]
    assert kes.verify(vk, period, b"m", (signature + b"\0")[:signature_len]) is expected


def test_a_signature_from_another_key_with_the_same_subkeys_is_refused():
    one, other = kes.SignKey.generate(bytes(32)), kes.SignKey.generate(bytes([1]) * 32)
    assert not kes.verify(other.verification_key, 0, b"m", one.sign(b"m"))


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: kes.SignKey(bytes(607)), "608 bytes, not 607"),
        (lambda: kes.SignKey(bytes(608), period=64), "KES period 64 is outside 0..63"),
        (lambda: kes.SignKey.generate(bytes(31)), "32 bytes, not 31"),
        (lambda: kes.SignKey.generate(bytes(32)).evolve_to(64), "cannot evolve to period 64"),
        (lambda: kes.SignKey.generate(bytes(32)).evolve_to(3).evolve_to(2), "at period 3 cannot evolve to period 2"),
    ],
)
def test_bad_keys_and_periods_are_refused(make, problem):
    with pytest.raises(ValueError, match=problem):
        make()


def test_a_key_never_shows_its_bytes():
    key = kes.SignKey.generate(bytes([0xAB]) * 32)
    assert "ab" * 4 not in repr(key).lower() and "ab" * 4 not in str(key).lower()
    assert repr(key) == "SignKey(period=0, depth=6)"


def test_generate_without_a_seed_draws_a_fresh_one():
    assert kes.SignKey.generate().verification_key != kes.SignKey.generate().verification_key


def header(cbor_hex: str) -> tuple[bytes, list, bytes]:
    """A header's body as signed (its bytes as they stand), the body decoded, and its KES signature."""
    raw = bytes.fromhex(cbor_hex)
    assert raw[0] == 0x82 and raw[-451:-448] == bytes.fromhex("5901c0")  # [body, 448-byte signature]
    return raw[1:-451], cbor2.loads(raw[1:-451]), raw[-448:]


def certificate_of(body: list) -> tuple[bytes, int, int, bytes, bytes]:
    """(hot key, counter, start period, signature, cold key): a TPraos body (15 fields) carries the certificate's
    fields inline, a Praos one (10) as one list."""
    fields = body[9:13] if len(body) == 15 else body[8]
    return (*fields, body[3])


@pytest.mark.parametrize(
    ("cbor_hex", "slot", "counter", "start", "evolution"),
    [
        (v.ALONZO_HEADER, 0, 0, 0, 0),
        (v.BABBAGE_HEADER, 1029948, 0, 0, 11),
        (v.CONWAY_HEADER, 8726400, 1, 55, 12),
    ],
)
def test_headers_signed_by_producers_verify_at_their_evolution_only(cbor_hex, slot, counter, start, evolution):
    signed, body, signature = header(cbor_hex)
    hot, n, c0, sigma, cold = certificate_of(body)
    assert (body[1], n, c0) == (slot, counter, start)
    assert ocert.Certificate(hot, n, c0, sigma, cold).verify()  # the issuer's cold key signed the certificate
    assert [t for t in range(64) if kes.verify(hot, t, signed, signature)] == [evolution]
    assert not kes.verify(hot, evolution, signed[:-1] + bytes([signed[-1] ^ 1]), signature)


def test_the_conway_headers_evolution_is_its_slots_period_less_the_certificates_start():
    periods = role_module("cardano", "periods")
    chain = periods.Genesis("testnet", periods.NETWORKS["preview"].system_start, 1, 129600, 62)
    assert chain.window(8726400, start=55).evolution == 12
