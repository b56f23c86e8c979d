"""cardano-cli's text envelopes: the JSON files its keys and certificates are written in, ``{"type", "description",
"cborHex"}``, read and written; and the pool's files in them.

Upstream: IntersectMBO/cardano-api, Cardano.Api's ``TextEnvelope`` (``textEnvelopeType`` of each key type: a KES key
is ``KesSigningKey_ed25519_kes_2^6``, from cardano-base's ``algorithmNameKES`` of Sum6KES); the exact strings and
descriptions as cardano-cli writes them are those of its golden files (IntersectMBO/cardano-cli,
cardano-cli/test/cardano-cli-golden/files/input/shelley/keys/ and .../certificates/, copied under
tests/unit/cardano_vectors.py). A reader ignores the description, as cardano-api does; a writer sets cardano-cli's.
cardano-cli writes the JSON with four spaces of indent and one newline at the end.

The VRF signing key is only carried: the role hands it to the node (``--shelley-vrf-key``) and computes no VRF. It
is checked for its size and type; its last 32 bytes are its verification key (libsodium's Ed25519 secret key
layout, which cardano-crypto-praos's ECVRF keys share: seed, then public key).

A file that is not an envelope, an envelope of another type, or a payload of the wrong shape is one
``EnvelopeError`` (exit 2) naming where it came from (a file, a secret reference), what it should have been and
which field is wrong, never what a field holds (a secret's ``type`` may hold key material by mistake): at most its
length.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import cbor2

from nodeops.errors import InvalidInput

from .kes import DEPTH, VERIFICATION_KEY_SIZE, SignKey, signing_key_size
from .ocert import COLD_KEY_SIZE, Certificate, ColdKey, IssueCounter

KES_SIGNING = "KesSigningKey_ed25519_kes_2^6"
KES_VERIFICATION = "KesVerificationKey_ed25519_kes_2^6"
VRF_SIGNING = "VrfSigningKey_PraosVRF"
VRF_VERIFICATION = "VrfVerificationKey_PraosVRF"
COLD_SIGNING = "StakePoolSigningKey_ed25519"
COLD_VERIFICATION = "StakePoolVerificationKey_ed25519"
CERTIFICATE = "NodeOperationalCertificate"
ISSUE_COUNTER = "NodeOperationalCertificateIssueCounter"

NAMES = {
    KES_SIGNING: "KES signing key",
    KES_VERIFICATION: "KES verification key",
    VRF_SIGNING: "VRF signing key",
    VRF_VERIFICATION: "VRF verification key",
    COLD_SIGNING: "pool's cold signing key",
    COLD_VERIFICATION: "pool's cold verification key",
    CERTIFICATE: "operational certificate",
    ISSUE_COUNTER: "operational certificate issue counter",
}
DESCRIPTIONS = {
    KES_SIGNING: "KES Signing Key",
    KES_VERIFICATION: "KES Verification Key",
    VRF_SIGNING: "VRF Signing Key",
    VRF_VERIFICATION: "VRF Verification Key",
    COLD_SIGNING: "Stake Pool Operator Signing Key",
    COLD_VERIFICATION: "Stake Pool Operator Verification Key",
    CERTIFICATE: "",
}
VRF_SIGNING_KEY_SIZE = 64
T = TypeVar("T")


class EnvelopeError(InvalidInput):
    """A text envelope that cannot be read as what was expected (exit 2): ``<where>: expected the <what> as
    cardano-cli writes it (a text envelope of type <type>): <problem>``."""

    def __init__(self, where: str, expected: str, problem: str) -> None:
        self.where = where
        what = NAMES.get(expected, expected)
        super().__init__(f"{where}: expected the {what} as cardano-cli writes it (a text envelope of type "
                         f"{expected}): {problem}")  # fmt: skip


@dataclass(frozen=True)
class Envelope:
    """One text envelope: its ``type``, ``description`` and payload (``cbor``, the bytes of ``cborHex``)."""

    type: str
    description: str
    cbor: bytes

    def __repr__(self) -> str:  # a payload may be a signing key
        return f"Envelope(type={self.type!r}, description={self.description!r})"


def read(text: str | bytes, where: str, expected: str) -> Envelope:
    """The envelope of type ``expected`` that ``text`` (a file's content, a secret's value) holds; EnvelopeError
    naming ``where`` (the file, the secret reference) otherwise. Pure."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise EnvelopeError(where, expected, "not JSON") from None  # no excerpt: it may be a secret
    if not isinstance(doc, dict) or not {"type", "cborHex"} <= doc.keys():
        raise EnvelopeError(where, expected, 'not an object with "type", "description" and "cborHex"')
    kind, description, hexed = doc["type"], doc.get("description", ""), doc["cborHex"]
    if not isinstance(kind, str) or not isinstance(hexed, str) or not isinstance(description, str):
        raise EnvelopeError(where, expected, '"type", "description" and "cborHex" must be strings')
    if kind != expected:
        raise EnvelopeError(where, expected, f'its "type" is another ({len(kind)} characters)')  # not shown: a secret's
    try:
        payload = bytes.fromhex(hexed)
    except ValueError:
        raise EnvelopeError(where, expected, '"cborHex" is not hexadecimal') from None
    return Envelope(kind, description, payload)


def write(kind: str, cbor: bytes, description: str | None = None) -> str:
    """The text cardano-cli writes for an envelope of type ``kind`` with payload ``cbor``; ``description`` defaults
    to cardano-cli's for the type. Pure."""
    text = description if description is not None else DESCRIPTIONS.get(kind, "")
    return json.dumps({"type": kind, "description": text, "cborHex": cbor.hex()}, indent=4) + "\n"


def _bytes(envelope: Envelope, where: str, size: int) -> bytes:
    try:
        value = cbor2.loads(envelope.cbor)
    except (cbor2.CBORDecodeError, ValueError):
        raise EnvelopeError(where, envelope.type, '"cborHex" is not CBOR') from None
    if not isinstance(value, bytes) or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise EnvelopeError(where, envelope.type, f"its payload should be a CBOR byte string of {size} bytes, "
                            f"not {got}")  # fmt: skip
    return value


def read_kes_signing_key(text: str | bytes, where: str) -> SignKey:
    """A KES signing key file (``kes.skey``) as a key at period 0 (the file holds no period)."""
    return SignKey(_bytes(read(text, where, KES_SIGNING), where, signing_key_size(DEPTH)))


def read_kes_verification_key(text: str | bytes, where: str) -> bytes:
    """A KES verification key file (``kes.vkey``): its 32 bytes."""
    return _bytes(read(text, where, KES_VERIFICATION), where, VERIFICATION_KEY_SIZE)


def read_vrf_signing_key(text: str | bytes, where: str) -> bytes:
    """A VRF signing key file (``vrf.skey``): its 64 bytes (carried only)."""
    return _bytes(read(text, where, VRF_SIGNING), where, VRF_SIGNING_KEY_SIZE)


def read_vrf_verification_key(text: str | bytes, where: str) -> bytes:
    """A VRF verification key file (``vrf.vkey``): its 32 bytes."""
    return _bytes(read(text, where, VRF_VERIFICATION), where, VERIFICATION_KEY_SIZE)


def vrf_verification_key(signing_key: bytes) -> bytes:
    """The verification key of a 64-byte VRF signing key: its last 32 bytes."""
    return signing_key[32:]


def read_cold_signing_key(text: str | bytes, where: str) -> ColdKey:
    """The pool's cold signing key (``cold.skey``)."""
    return ColdKey(_bytes(read(text, where, COLD_SIGNING), where, COLD_KEY_SIZE))


def read_cold_verification_key(text: str | bytes, where: str) -> bytes:
    """The pool's cold verification key (``cold.vkey``): its 32 bytes."""
    return _bytes(read(text, where, COLD_VERIFICATION), where, COLD_KEY_SIZE)


def _parsed(text: str | bytes, where: str, kind: str, parse: Callable[[bytes], T]) -> T:
    envelope = read(text, where, kind)
    try:
        return parse(envelope.cbor)
    except ValueError as err:
        raise EnvelopeError(where, kind, str(err)) from None


def read_certificate(text: str | bytes, where: str) -> Certificate:
    """An operational certificate (``node.cert``), its signature not checked (``Certificate.verify``)."""
    return _parsed(text, where, CERTIFICATE, Certificate.from_cbor)


def read_issue_counter(text: str | bytes, where: str) -> IssueCounter:
    """An operational certificate issue counter (``cold.counter``)."""
    return _parsed(text, where, ISSUE_COUNTER, IssueCounter.from_cbor)


def kes_signing_key_file(key: SignKey) -> str:
    """The ``kes.skey`` cardano-cli writes for ``key`` (raw bytes only: a file holds a key at the period the node
    counts from the certificate's start, 0)."""
    return write(KES_SIGNING, cbor2.dumps(key.raw))


def vrf_signing_key_file(signing_key: bytes) -> str:
    """The ``vrf.skey`` cardano-cli writes for the 64-byte VRF ``signing_key``; ValueError for another size."""
    if len(signing_key) != VRF_SIGNING_KEY_SIZE:
        raise ValueError(f"a VRF signing key has {VRF_SIGNING_KEY_SIZE} bytes, not {len(signing_key)}")
    return write(VRF_SIGNING, cbor2.dumps(signing_key))


def kes_verification_key_file(vk: bytes) -> str:
    """The ``kes.vkey`` cardano-cli writes for the 32-byte ``vk``."""
    return write(KES_VERIFICATION, cbor2.dumps(vk))


def cold_signing_key_file(cold: ColdKey) -> str:
    """The ``cold.skey`` cardano-cli writes for ``cold``."""
    return write(COLD_SIGNING, cbor2.dumps(cold.seed))


def cold_verification_key_file(vk: bytes) -> str:
    """The ``cold.vkey`` cardano-cli writes for the 32-byte ``vk``."""
    return write(COLD_VERIFICATION, cbor2.dumps(vk))


def certificate_file(certificate: Certificate) -> str:
    """The ``node.cert`` cardano-cli writes for ``certificate``."""
    return write(CERTIFICATE, certificate.to_cbor())


def issue_counter_file(counter: IssueCounter) -> str:
    """The ``cold.counter`` cardano-cli writes for ``counter``."""
    return write(ISSUE_COUNTER, counter.to_cbor(), counter.description)
