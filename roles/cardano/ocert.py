"""The operational certificate: the pool's cold key signs a KES verification key, an issue counter and the KES
period it starts at; and the issue counter's rules.

Upstream:

- IntersectMBO/cardano-ledger (at bbf77221), libs/cardano-protocol/src/Cardano/Protocol/TPraos/OCert.hs: ``OCert``
  (hot key, counter ``n``, start period ``c0``, signature ``sigma``), CBOR as a group of four (``[vk_hot, n, c0,
  sigma]``); the signed bytes, ``OCertSignable``, are not CBOR: the raw KES verification key (32 bytes), then the
  counter and the period as 64-bit big-endian words.
- IntersectMBO/cardano-api, Cardano.Api.Internal.OperationalCertificate: the certificate with the cold verification key,
  CBOR ``[[vk_hot, n, c0, sigma], vk_cold]`` (text envelope ``NodeOperationalCertificate``); the issue counter
  ``[next, vk_cold]`` (``NodeOperationalCertificateIssueCounter``, description ``Next certificate issue number:
  N``). ``cardano-cli node issue-op-cert`` issues the counter file's number and writes it back plus one.
- The counter checks: with ``m`` the highest counter the chain has seen in the pool's blocks (0 for a pool in the
  stake distribution that has made none: ``currentIssueNo``), a header's counter ``n`` must satisfy ``m <= n``
  (``CounterTooSmallOCERT``: cardano-ledger's libs/cardano-protocol-tpraos/src/Cardano/Protocol/TPraos/Rules/OCert.hs,
  ``ocertTransition``, the rule up to Alonzo) and, from Babbage on, ``n <= m + 1`` (``CounterOverIncrementedOCERT``:
  IntersectMBO/ouroboros-consensus, Ouroboros.Consensus.Protocol.Praos, ``doValidateKESSignature``); its slot's KES
  period ``kp`` must satisfy ``c0 <= kp < c0 + maxKESEvolutions`` (``KESBeforeStartOCERT``, ``KESAfterEndOCERT``;
  the periods module).

Ed25519 is deterministic (RFC 8032): the same cold key and fields give the same certificate, byte for byte, as
cardano-cli's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .kes import VERIFICATION_KEY_SIZE

COLD_KEY_SIZE = 32  # an Ed25519 seed, as cardano-cli writes a stake pool signing key
SIGNATURE_SIZE = 64
MAX_WORD64 = (1 << 64) - 1


class CounterRefused(ValueError):
    """A certificate counter the chain would refuse, or one that would not supersede the certificate in force."""


@dataclass(frozen=True)
class ColdKey:
    """The pool's cold signing key (an Ed25519 seed of 32 bytes); its repr shows its verification key only."""

    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != COLD_KEY_SIZE:
            raise ValueError(f"a cold signing key has {COLD_KEY_SIZE} bytes, not {len(self.seed)}")

    @property
    def verification_key(self) -> bytes:
        """The 32-byte cold verification key (the pool's id is its Blake2b-224 hash)."""
        return bytes(SigningKey(self.seed).verify_key)

    def __repr__(self) -> str:
        return f"ColdKey(verification_key={self.verification_key.hex()})"


def _word64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WORD64


def signable(kes_vk: bytes, counter: int, kes_period: int) -> bytes:
    """The bytes the cold key signs: ``kes_vk | counter (8 bytes, big-endian) | kes_period (8 bytes, big-endian)``
    (``OCertSignable``)."""
    return kes_vk + struct.pack(">QQ", counter, kes_period)


@dataclass(frozen=True)
class Certificate:
    """An operational certificate as cardano-cli writes it: the KES verification key, the issue counter, the KES
    period it starts at, the cold key's signature of the three, and the cold verification key."""

    kes_vk: bytes
    counter: int
    kes_period: int
    signature: bytes
    cold_vk: bytes

    def to_cbor(self) -> bytes:
        """``[[kes_vk, counter, kes_period, signature], cold_vk]`` (the text envelope's cborHex)."""
        return cbor2.dumps([[self.kes_vk, self.counter, self.kes_period, self.signature], self.cold_vk])

    @classmethod
    def from_cbor(cls, data: bytes) -> Certificate:
        """The certificate ``data`` encodes; ValueError saying what is wrong with it."""
        try:
            (kes_vk, counter, period, signature), cold_vk = cbor2.loads(data)
        except (cbor2.CBORDecodeError, ValueError, TypeError):
            raise ValueError("not [[kes_vk, counter, kes_period, signature], cold_vk]") from None
        fields = {"KES verification key": (kes_vk, VERIFICATION_KEY_SIZE), "signature": (signature, SIGNATURE_SIZE),
                  "cold verification key": (cold_vk, COLD_KEY_SIZE)}  # fmt: skip
        for name, (value, size) in fields.items():
            if not isinstance(value, bytes) or len(value) != size:
                raise ValueError(f"its {name} is not {size} bytes")
        for name, value in (("counter", counter), ("KES period", period)):
            if not _word64(value):
                raise ValueError(f"its {name} is not a 64-bit unsigned integer")
        return cls(kes_vk, counter, period, signature, cold_vk)

    def verify(self, cold_vk: bytes | None = None) -> bool:
        """Whether the signature is the cold key's over the three fields: by ``cold_vk`` when given (the pool's,
        as the chain knows it), else by the certificate's own cold verification key."""
        key = self.cold_vk if cold_vk is None else cold_vk
        try:
            VerifyKey(key).verify(signable(self.kes_vk, self.counter, self.kes_period), self.signature)
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True


def issue(cold: ColdKey, kes_vk: bytes, counter: int, kes_period: int) -> Certificate:
    """The certificate ``cardano-cli node issue-op-cert`` writes for these: ``kes_vk`` (32 bytes), ``counter`` and
    ``kes_period`` (64-bit unsigned), signed by ``cold``. ValueError for a field out of range."""
    if len(kes_vk) != VERIFICATION_KEY_SIZE:
        raise ValueError(f"a KES verification key has {VERIFICATION_KEY_SIZE} bytes, not {len(kes_vk)}")
    if not (_word64(counter) and _word64(kes_period)):
        raise ValueError("the counter and the KES period are 64-bit unsigned integers")
    signature = SigningKey(cold.seed).sign(signable(kes_vk, counter, kes_period)).signature
    return Certificate(kes_vk, counter, kes_period, signature, cold.verification_key)


@dataclass(frozen=True)
class IssueCounter:
    """cardano-cli's issue counter: the number the next certificate gets, and the cold verification key."""

    next: int
    cold_vk: bytes

    @property
    def description(self) -> str:
        """The description cardano-cli gives the counter's file: ``Next certificate issue number: N``."""
        return f"Next certificate issue number: {self.next}"

    def to_cbor(self) -> bytes:
        """``[next, cold_vk]`` (the text envelope's cborHex)."""
        return cbor2.dumps([self.next, self.cold_vk])

    @classmethod
    def from_cbor(cls, data: bytes) -> IssueCounter:
        """The counter ``data`` encodes; ValueError saying what is wrong with it."""
        try:
            number, cold_vk = cbor2.loads(data)
        except (cbor2.CBORDecodeError, ValueError, TypeError):
            raise ValueError("not [next_number, cold_vk]") from None
        if not _word64(number):
            raise ValueError("its number is not a 64-bit unsigned integer")
        if not isinstance(cold_vk, bytes) or len(cold_vk) != COLD_KEY_SIZE:
            raise ValueError(f"its cold verification key is not {COLD_KEY_SIZE} bytes")
        return cls(number, cold_vk)


def chain_counter(on_chain: int | None) -> int:
    """The counter the chain holds for the pool: the highest it has seen in a block, or 0 for a registered pool
    that has made none (``currentIssueNo``)."""
    return 0 if on_chain is None else on_chain


def next_counter(on_chain: int | None) -> int:
    """The counter of the next certificate: the chain's plus one (it supersedes the certificate in force, which
    the chain then refuses; never more than one ahead)."""
    return chain_counter(on_chain) + 1


def check_counter(counter: int, on_chain: int | None) -> None:
    """CounterRefused unless a new certificate with ``counter`` would supersede the one in force: exactly the
    chain's counter plus one, or 0 or 1 for a pool that has made no block (the ledger takes ``m <= n <= m + 1``
    with ``m`` 0 then; no certificate of it is on chain to supersede). Pure."""
    held = chain_counter(on_chain)
    if counter < held:
        raise CounterRefused(f"counter {counter} is below the chain's {held}: the chain refuses it "
                             "(CounterTooSmallOCERT)")  # fmt: skip
    if counter == held and on_chain is not None:
        raise CounterRefused(f"counter {counter} is the chain's own: reused, it would not supersede the "
                             f"certificate in force; the next is {held + 1}")  # fmt: skip
    if counter > held + 1:
        raise CounterRefused(f"counter {counter} skips past the chain's {held} + 1: the chain refuses it "
                             "(CounterOverIncrementedOCERT)")  # fmt: skip
