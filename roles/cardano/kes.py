"""The pool's hot key: Sum6KES over Ed25519 with Blake2b-256, as cardano-base builds it, in pure Python (Ed25519
through PyNaCl, libsodium's, as cardano-base's own; Blake2b-256 from hashlib).

Upstream (IntersectMBO/cardano-base, cardano-crypto-class/src/Cardano/Crypto/):

- ``KES/Sum.hs``: the binary sum composition of the "MMM" paper (Malkin, Micciancio, Miner, section 3.1), nested
  six times over ``KES/Single.hs`` (one Ed25519 key, one period): 2^6 = 64 periods. A level's signing key is
  ``sk_0 | r_1 | vk_0 | vk_1`` (the left child's signing key, the seed of the right child, both children's
  verification keys); its verification key is ``Blake2b-256(vk_0 | vk_1)`` (``hashPairOfVKeys``, ``KES/Class.hs``);
  its signature is ``sigma | vk_0 | vk_1``. Key generation expands a level's 32-byte seed into the two children's
  seeds, ``Blake2b-256(0x01 | seed)`` and ``Blake2b-256(0x02 | seed)`` (``expandHashWith``,
  ``Libsodium/Hash.hs``), and keeps only the right seed. Evolving past the last period of the left half builds the
  right child from ``r_1`` and overwrites ``r_1`` with zeros (``updateKESWith``): no earlier key can be derived
  from a later one (forward security).
- ``DSIGN/Ed25519.hs``: a signing key is serialised as its 32-byte seed (libsodium's
  ``crypto_sign_ed25519_seed_keypair``), a verification key as 32 bytes, a signature as 64.
- ``Hash/Blake2b.hs``: Blake2b_256 is libsodium's ``crypto_generichash`` with a 32-byte digest and no key.

Sizes for depth ``d`` (Sum6: d = 6): signing key ``32 + 96 d`` bytes (608), verification key 32, signature
``64 + 64 d`` (448). The raw serialisation is cardano-base's ``rawSerialiseSignKeyKES`` / ``rawSerialiseVerKeyKES``
/ ``rawSerialiseSigKES``; cardano-cli's text envelopes carry them as CBOR byte strings (nodeops' envelope module).

The key holds no period: a period is the caller's (cardano-base's ``SignKeyWithPeriodKES``), here ``SignKey.period``,
0 for a key as generated (as cardano-cli writes it). Python cannot erase memory: an evolved key drops every reference
to what it forgot, but the bytes of the old key live on in the process until garbage collection reuses them
(cardano-base keeps keys in mlocked memory and zeroes them). A process that holds a key should be short-lived.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

DEPTH = 6  # Sum6KES: cardano-ledger's StandardCrypto (type KES StandardCrypto = Sum6KES Ed25519DSIGN Blake2b_256)
SEED_SIZE = 32
VERIFICATION_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64


def periods(depth: int = DEPTH) -> int:
    """How many periods a key of ``depth`` levels signs for: 2^depth (Sum6: 64)."""
    return 1 << depth


def signing_key_size(depth: int = DEPTH) -> int:
    """Bytes of a raw signing key of ``depth`` levels: the Ed25519 seed, then per level a seed and two
    verification keys (Sum6: 608)."""
    return SEED_SIZE + depth * (SEED_SIZE + 2 * VERIFICATION_KEY_SIZE)


def signature_size(depth: int = DEPTH) -> int:
    """Bytes of a raw signature of ``depth`` levels: the Ed25519 signature, then per level two verification keys
    (Sum6: 448)."""
    return ED25519_SIGNATURE_SIZE + depth * 2 * VERIFICATION_KEY_SIZE


def blake2b_256(data: bytes) -> bytes:
    """Blake2b with a 32-byte digest and no key (cardano-base's Blake2b_256)."""
    return hashlib.blake2b(data, digest_size=32).digest()


def expand_seed(seed: bytes) -> tuple[bytes, bytes]:
    """The seeds of a level's two children: ``Blake2b-256(0x01 | seed)``, ``Blake2b-256(0x02 | seed)``."""
    return blake2b_256(b"\x01" + seed), blake2b_256(b"\x02" + seed)


def _generate(seed: bytes, depth: int) -> bytes:
    if depth == 0:
        return seed
    r_0, r_1 = expand_seed(seed)
    sk_0 = _generate(r_0, depth - 1)
    vk_1 = _verification_key(_generate(r_1, depth - 1), depth - 1)
    return sk_0 + r_1 + _verification_key(sk_0, depth - 1) + vk_1


def _verification_key(raw: bytes, depth: int) -> bytes:
    if depth == 0:
        return bytes(SigningKey(raw).verify_key)
    return blake2b_256(raw[-2 * VERIFICATION_KEY_SIZE :])


def _sign(raw: bytes, depth: int, period: int, message: bytes) -> bytes:
    if depth == 0:
        return SigningKey(raw).sign(message).signature
    half = periods(depth - 1)
    child = raw[: signing_key_size(depth - 1)]
    sigma = _sign(child, depth - 1, period if period < half else period - half, message)
    return sigma + raw[-2 * VERIFICATION_KEY_SIZE :]


def _update(raw: bytes, depth: int, period: int) -> bytes | None:
    """The key for ``period + 1`` from the key for ``period``; None past the last period (cardano-base's
    ``updateKESWith``)."""
    if depth == 0:
        return None
    half = periods(depth - 1)
    size = signing_key_size(depth - 1)
    child, r_1, vks = raw[:size], raw[size : size + SEED_SIZE], raw[size + SEED_SIZE :]
    if period + 1 < half:
        evolved = _update(child, depth - 1, period)
    elif period + 1 == half:  # into the right half: build it from r_1, then forget r_1
        evolved, r_1 = _generate(r_1, depth - 1), bytes(SEED_SIZE)
    else:
        evolved = _update(child, depth - 1, period - half)
    return None if evolved is None else evolved + r_1 + vks


def _verify(vk: bytes, depth: int, period: int, message: bytes, signature: bytes) -> bool:
    if depth == 0:
        try:
            VerifyKey(vk).verify(message, signature)
        except BadSignatureError:
            return False
        return period == 0
    vk_0, vk_1 = signature[-64:-32], signature[-32:]
    if blake2b_256(vk_0 + vk_1) != vk:
        return False
    half = periods(depth - 1)
    sigma = signature[:-64]
    return _verify(vk_0, depth - 1, period, message, sigma) if period < half else (
        _verify(vk_1, depth - 1, period - half, message, sigma))  # fmt: skip


@dataclass(frozen=True)
class SignKey:
    """A KES signing key of ``depth`` levels at ``period`` (0 to 2^depth - 1, relative to the operational
    certificate's start period). ``raw``: cardano-base's raw serialisation (608 bytes for Sum6). Its repr shows
    the period only."""

    raw: bytes = field(repr=False)
    period: int = 0
    depth: int = DEPTH

    def __post_init__(self) -> None:
        if len(self.raw) != signing_key_size(self.depth):
            raise ValueError(f"a KES signing key of {self.depth} levels has {signing_key_size(self.depth)} bytes, "
                             f"not {len(self.raw)}")  # fmt: skip
        if not 0 <= self.period < periods(self.depth):
            raise ValueError(f"KES period {self.period} is outside 0..{periods(self.depth) - 1}")

    @classmethod
    def generate(cls, seed: bytes | None = None, depth: int = DEPTH) -> SignKey:
        """The key for period 0 from a 32-byte ``seed`` (cardano-base's ``genKeyKES``); a fresh random seed from
        the operating system when none is given (as ``cardano-cli node key-gen-KES``)."""
        seed = os.urandom(SEED_SIZE) if seed is None else seed
        if len(seed) != SEED_SIZE:
            raise ValueError(f"a KES seed has {SEED_SIZE} bytes, not {len(seed)}")
        return cls(_generate(seed, depth), 0, depth)

    @property
    def verification_key(self) -> bytes:
        """The 32-byte verification key (the same at every period)."""
        return _verification_key(self.raw, self.depth)

    def sign(self, message: bytes) -> bytes:
        """The signature of ``message`` at this key's period (``signature_size(depth)`` bytes)."""
        return _sign(self.raw, self.depth, self.period, message)

    def evolve(self) -> SignKey | None:
        """The key for the next period, having forgotten what forward security requires; None after the last."""
        raw = _update(self.raw, self.depth, self.period)
        return None if raw is None else SignKey(raw, self.period + 1, self.depth)

    def evolve_to(self, period: int) -> SignKey:
        """The key for ``period`` (this key's period or a later one); ValueError for an earlier or a past-the-end
        one."""
        if not self.period <= period < periods(self.depth):
            raise ValueError(f"a KES key at period {self.period} cannot evolve to period {period} "
                             f"(0..{periods(self.depth) - 1}, never back)")  # fmt: skip
        key = self
        while key.period < period:
            key = key.evolve()  # type: ignore[assignment] (never None below the last period)
        return key


def verify(verification_key: bytes, period: int, message: bytes, signature: bytes, depth: int = DEPTH) -> bool:
    """Whether ``signature`` is the signature of ``message`` at ``period`` by the key whose verification key is
    ``verification_key`` (cardano-base's ``verifyKES``); False for anything of the wrong size or period."""
    if len(verification_key) != VERIFICATION_KEY_SIZE or len(signature) != signature_size(depth):
        return False
    if not 0 <= period < periods(depth):
        return False
    return _verify(verification_key, depth, period, message, signature)
