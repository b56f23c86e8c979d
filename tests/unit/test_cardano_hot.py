"""The active producer's hot credentials (roles/cardano/hot.py): three text envelopes as cardano-cli writes them,
made in memory, that the chain's header checks take; the node's command line for the holder and for the others."""

from __future__ import annotations

import json

import pytest

from nodeops.roles import role_module
from tests.unit import cardano_vectors as v

hot = role_module("cardano", "hot")
kes = role_module("cardano", "kes")
envelope = role_module("cardano", "envelope")
forging = role_module("cardano", "forging")
periods = role_module("cardano", "periods")
ocert = role_module("cardano", "ocert")

COLD = ocert.ColdKey(bytes(range(32)))
VRF = envelope.read_vrf_signing_key(envelope.write(envelope.VRF_SIGNING, bytes.fromhex(v.CLI_VRF_SKEY_CBOR)), "vrf")
KES = kes.SignKey.generate(bytes(range(1, 33)))
LAB = periods.Genesis("lab", periods.NETWORKS["preview"].system_start, 1, 10, 30)


def test_the_bundle_is_three_envelopes_cardano_cli_would_write():
    made = hot.bundle(COLD, VRF, KES, 5, 1234)
    assert sorted(made.files) == ["kes.skey", "node.cert", "vrf.skey"]
    assert [json.loads(made.files[n])["type"] for n in ("kes.skey", "vrf.skey", "node.cert")] == [
        "KesSigningKey_ed25519_kes_2^6",
        "VrfSigningKey_PraosVRF",
        "NodeOperationalCertificate",
    ]
    assert json.loads(made.files["vrf.skey"])["cborHex"] == v.CLI_VRF_SKEY_CBOR  # the published key's bytes
    assert envelope.read_kes_signing_key(made.files["kes.skey"], "kes.skey") == KES
    cert = envelope.read_certificate(made.files["node.cert"], "node.cert")
    assert cert == made.certificate == ocert.issue(COLD, KES.verification_key, 5, 1234)
    assert all(f.startswith(b'{\n    "type": ') and f.endswith(b"\n}\n") for f in made.files.values())


@pytest.mark.parametrize(
    ("slot", "on_chain", "reasons"),
    [
        (12340, 4, []),  # period 1234, counter 5 over the chain's 4
        (12339, 4, ["KESBeforeStartOCERT"]),
        (12340 + 300, 4, ["KESAfterEndOCERT"]),
        (12340, 5, []),
        (12340, 6, ["CounterTooSmallOCERT"]),
        (12340, 3, ["CounterOverIncrementedOCERT"]),
    ],
)
def test_the_chain_takes_the_bundle_inside_its_window_and_counter(slot, on_chain, reasons):
    made = hot.bundle(COLD, VRF, KES, 5, 1234)
    key = envelope.read_kes_signing_key(made.files["kes.skey"], "kes.skey")
    found = forging.refusals(made.certificate, key, COLD.verification_key, LAB.window(slot, 1234), on_chain)
    assert [r.reason for r in found] == reasons


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: hot.bundle(COLD, VRF, KES.evolve(), 1, 0), "evolution 0, not 1"),
        (lambda: hot.bundle(COLD, VRF[:32], KES, 1, 0), "64 bytes, not 32"),
        (lambda: hot.bundle(COLD, VRF, KES, -1, 0), "64-bit unsigned"),
    ],
)
def test_a_bundle_of_bad_parts_is_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_repr_shows_no_key():
    made = hot.bundle(COLD, VRF, KES, 5, 1234)
    assert "files" not in repr(made) and KES.raw.hex()[:16] not in repr(made)


KEYS = ["--shelley-kes-key", "/run/cardano-keys/kes.skey", "--shelley-vrf-key", "/run/cardano-keys/vrf.skey",
        "--shelley-operational-certificate", "/run/cardano-keys/node.cert"]  # fmt: skip


@pytest.mark.parametrize(("holder", "extra"), [(False, []), (True, KEYS)])
def test_every_node_runs_with_its_files_and_only_the_holder_gets_key_paths(holder, extra):
    args = hot.node_args(hot.Paths(), "0.0.0.0", 3001, holder)
    assert args == ["run", "--config", "/config/config.json", "--topology", "/config/topology.json",
                    "--database-path", "/data/db", "--socket-path", "/ipc/node.socket", "--host-addr", "0.0.0.0",
                    "--port", "3001"] + extra  # fmt: skip


def test_the_key_folder_is_a_parameter():
    assert hot.Paths(keys="/run/k/").key("node.cert") == "/run/k/node.cert"
