"""cardano-cli's text envelopes (roles/cardano/envelope.py): the pool's files read from and written as cardano-cli's
published files; a malformed or wrong-typed one is one error (exit 2) naming where it came from and what was
expected, without its content."""

from __future__ import annotations

import json

import cbor2
import pytest

from nodeops.errors import EXIT_INVALID
from nodeops.roles import role_module
from tests.unit import cardano_vectors as v

envelope = role_module("cardano", "envelope")
kes = role_module("cardano", "kes")
ocert = role_module("cardano", "ocert")


def file(kind: str, cbor_hex: str, description: str = "") -> str:
    return json.dumps({"type": kind, "description": description, "cborHex": cbor_hex}, indent=4)


def payload(cbor_hex: str) -> bytes:
    return cbor2.loads(bytes.fromhex(cbor_hex))


@pytest.mark.parametrize(
    ("constant", "expected"),
    [
        ("KES_SIGNING", "KesSigningKey_ed25519_kes_2^6"),
        ("KES_VERIFICATION", "KesVerificationKey_ed25519_kes_2^6"),
        ("VRF_SIGNING", "VrfSigningKey_PraosVRF"),
        ("VRF_VERIFICATION", "VrfVerificationKey_PraosVRF"),
        ("COLD_SIGNING", "StakePoolSigningKey_ed25519"),
        ("COLD_VERIFICATION", "StakePoolVerificationKey_ed25519"),
        ("CERTIFICATE", "NodeOperationalCertificate"),
        ("ISSUE_COUNTER", "NodeOperationalCertificateIssueCounter"),
    ],
)
def test_the_type_strings_are_cardano_clis(constant, expected):
    assert getattr(envelope, constant) == expected


def test_a_kes_key_pair_round_trips_as_cardano_cli_writes_it():
    key = kes.SignKey.generate(bytes(range(32)))
    text = envelope.kes_signing_key_file(key)
    doc = json.loads(text)
    assert doc["type"] == "KesSigningKey_ed25519_kes_2^6" and doc["description"] == "KES Signing Key"
    assert doc["cborHex"].startswith("590260")  # a CBOR byte string of 608 bytes (0x0260)
    assert text.startswith('{\n    "type": ') and text.endswith('"\n}\n')
    assert envelope.read_kes_signing_key(text, "kes.skey") == key
    vkey = envelope.kes_verification_key_file(key.verification_key)
    assert envelope.read_kes_verification_key(vkey, "kes.vkey") == key.verification_key


def test_the_devnet_kes_key_reads_as_the_key_its_certificate_names():
    key = envelope.read_kes_signing_key(file(envelope.KES_SIGNING, v.DEVNET_KES_SKEY_CBOR), "kes.skey")
    assert key.verification_key == ocert.Certificate.from_cbor(bytes.fromhex(v.DEVNET_OPCERT_CBOR)).kes_vk


def test_the_vrf_key_is_carried_and_its_verification_key_is_its_second_half():
    skey = envelope.read_vrf_signing_key(file(envelope.VRF_SIGNING, v.CLI_VRF_SKEY_CBOR), "vrf.skey")
    vkey = envelope.read_vrf_verification_key(file(envelope.VRF_VERIFICATION, v.CLI_VRF_VKEY_CBOR), "vrf.vkey")
    assert len(skey) == 64 and envelope.vrf_verification_key(skey) == vkey


def test_cold_keys_and_the_counter_round_trip():
    cold = envelope.read_cold_signing_key(file(envelope.COLD_SIGNING, v.CLI_COLD_SKEY_CBOR), "cold.skey")
    vk = envelope.read_cold_verification_key(file(envelope.COLD_VERIFICATION, v.CLI_COLD_VKEY_CBOR), "cold.vkey")
    assert cold.verification_key == vk
    assert envelope.read_cold_signing_key(envelope.cold_signing_key_file(cold), "x") == cold
    assert envelope.read_cold_verification_key(envelope.cold_verification_key_file(vk), "x") == vk
    text = file(envelope.ISSUE_COUNTER, v.CLI_COUNTER_CBOR, "Next certificate issue number: 0")
    counter = envelope.read_issue_counter(text, "cold.counter")
    assert counter == ocert.IssueCounter(0, vk)
    after = envelope.issue_counter_file(ocert.IssueCounter(counter.next + 1, vk))
    assert json.loads(after)["description"] == "Next certificate issue number: 1"  # as cardano-cli's golden test


def test_the_published_certificate_files_read_back():
    for text, counter in ((v.PLAYGROUND_OPCERT_FILE, 13), (v.CLI_OPCERT_FILE, 0)):
        certificate = envelope.read_certificate(text, "node.cert")
        assert certificate.counter == counter and envelope.certificate_file(certificate) == text


def test_a_reader_ignores_the_description():
    text = file(envelope.KES_VERIFICATION, v.CLI_KES_VKEY_CBOR, "anything")
    assert envelope.read_kes_verification_key(text, "kes.vkey") == payload(v.CLI_KES_VKEY_CBOR)
    no_description = json.dumps({"type": envelope.KES_VERIFICATION, "cborHex": v.CLI_KES_VKEY_CBOR})
    assert envelope.read_kes_verification_key(no_description, "kes.vkey") == payload(v.CLI_KES_VKEY_CBOR)


SECRET = "5820" + "5e" * 32  # a sentinel cold key: never in a message
EXPECTED_COLD = ("secret cold/key: expected the pool's cold signing key as cardano-cli writes it (a text envelope "
                 "of type StakePoolSigningKey_ed25519): ")  # fmt: skip
PAYLOAD = "its payload should be a CBOR byte string of 32 bytes,"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{" + SECRET, "not JSON"),
        (json.dumps([SECRET]), 'not an object with "type", "description" and "cborHex"'),
        (json.dumps({"type": "StakePoolSigningKey_ed25519"}), 'not an object with "type", "description" and "cborHex"'),
        (file("PaymentSigningKeyShelley_ed25519", SECRET), 'its "type" is another (32 characters)'),
        (
            json.dumps({"type": "StakePoolSigningKey_ed25519", "cborHex": 5}),
            '"type", "description" and "cborHex" must be strings',
        ),
        (file("StakePoolSigningKey_ed25519", SECRET + "z"), '"cborHex" is not hexadecimal'),
        (file("StakePoolSigningKey_ed25519", "5840" + "5e" * 64), f"{PAYLOAD} not 64 bytes"),
        (file("StakePoolSigningKey_ed25519", "82" + SECRET + "00"), f"{PAYLOAD} not list"),
        (file("StakePoolSigningKey_ed25519", "5820" + "5e" * 8), '"cborHex" is not CBOR'),
    ],
)
def test_a_bad_cold_key_is_one_error_naming_the_reference_without_the_key(text, problem):
    with pytest.raises(envelope.EnvelopeError) as caught:
        envelope.read_cold_signing_key(text, "secret cold/key")
    assert str(caught.value) == EXPECTED_COLD + problem
    assert caught.value.exit_code == EXIT_INVALID and "5e5e5e" not in str(caught.value)


@pytest.mark.parametrize(
    ("reader", "text", "message"),
    [
        ("read_kes_signing_key", file(envelope.KES_SIGNING, v.CLI_KES_SKEY_CBOR),
         "kes.skey: expected the KES signing key as cardano-cli writes it (a text envelope of type "
         "KesSigningKey_ed25519_kes_2^6): its payload should be a CBOR byte string of 608 bytes, not 704 bytes"),
        ("read_kes_signing_key", file(envelope.KES_VERIFICATION, v.CLI_KES_VKEY_CBOR),
         "kes.skey: expected the KES signing key as cardano-cli writes it (a text envelope of type "
         "KesSigningKey_ed25519_kes_2^6): its \"type\" is another (34 characters)"),
        ("read_certificate", file(envelope.CERTIFICATE, "8200"),
         "kes.skey: expected the operational certificate as cardano-cli writes it (a text envelope of type "
         "NodeOperationalCertificate): not [[kes_vk, counter, kes_period, signature], cold_vk]"),
        ("read_issue_counter", file(envelope.ISSUE_COUNTER, "820140"),
         "kes.skey: expected the operational certificate issue counter as cardano-cli writes it (a text envelope "
         "of type NodeOperationalCertificateIssueCounter): its cold verification key is not 32 bytes"),
        ("read_vrf_signing_key", file(envelope.VRF_SIGNING, v.CLI_VRF_VKEY_CBOR),
         "kes.skey: expected the VRF signing key as cardano-cli writes it (a text envelope of type "
         "VrfSigningKey_PraosVRF): its payload should be a CBOR byte string of 64 bytes, not 32 bytes"),
    ],
)  # fmt: skip
def test_each_reader_names_what_it_expected(reader, text, message):
    with pytest.raises(envelope.EnvelopeError) as caught:
        getattr(envelope, reader)(text, "kes.skey")
    assert str(caught.value).startswith(message)


def test_an_envelope_never_shows_its_payload():
    read = envelope.read(file(envelope.COLD_SIGNING, SECRET), "x", envelope.COLD_SIGNING)
    assert "5e5e" not in repr(read) and "5e5e" not in str(read)


SENTINEL = "5e" * 32  # hexadecimal, as key material is
READS = {"read_kes_signing_key": envelope.KES_SIGNING, "read_kes_verification_key": envelope.KES_VERIFICATION,
         "read_vrf_signing_key": envelope.VRF_SIGNING, "read_vrf_verification_key": envelope.VRF_VERIFICATION,
         "read_cold_signing_key": envelope.COLD_SIGNING, "read_cold_verification_key": envelope.COLD_VERIFICATION,
         "read_certificate": envelope.CERTIFICATE, "read_issue_counter": envelope.ISSUE_COUNTER}  # fmt: skip
FIELDS = {  # the document's text, given the type the reader expects
    "type": lambda _t: json.dumps({"type": SENTINEL, "description": "", "cborHex": "00"}),
    "type-not-string": lambda _t: json.dumps({"type": [SENTINEL], "description": "", "cborHex": "00"}),
    "description": lambda t: json.dumps({"type": t, "description": SENTINEL, "cborHex": "8200"}),
    "cborHex-not-hex": lambda t: json.dumps({"type": t, "description": "", "cborHex": SENTINEL + "zz"}),
    "cborHex-text": lambda t: json.dumps({"type": t, "description": "", "cborHex": "7840" + SENTINEL.encode().hex()}),
    "cborHex-list": lambda t: json.dumps({"type": t, "description": "", "cborHex": "82" + "5820" + SENTINEL + "00"}),
    "cborHex-short": lambda t: json.dumps({"type": t, "description": "", "cborHex": "5840" + SENTINEL}),
    "other-key": lambda t: json.dumps({"type": t, "description": "", "cborHex": "00", SENTINEL: SENTINEL}),
    "not-json": lambda _t: "{" + SENTINEL,
}


@pytest.mark.parametrize("reader", list(READS))
@pytest.mark.parametrize("field", list(FIELDS))
def test_no_envelope_error_quotes_a_field_of_the_document(reader, field):
    """A sentinel in each field of a secret document (its ``type`` too, which a mistaken store may fill with key
    material): the refusal names where and what was expected, never what was found."""
    with pytest.raises(envelope.EnvelopeError) as caught:
        getattr(envelope, reader)(FIELDS[field](READS[reader]), "secret pool/Cold")
    said = str(caught.value)
    assert said.startswith("secret pool/Cold: expected the ") and SENTINEL[:8] not in said, said
