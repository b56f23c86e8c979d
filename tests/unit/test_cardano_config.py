"""The node's configuration per network (roles/cardano/config.py): the published keys and genesis hashes, relay
and producer variants, metrics on 12798 with the real prefix, the lab's; the genesis files shipped with upstream's
bytes and checked by the hash the node checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from nodeops.errors import EXIT_INVALID, InvalidInput
from nodeops.roles import role_module

config = role_module("cardano", "config")
periods = role_module("cardano", "periods")


@pytest.mark.parametrize(
    ("network", "magic", "shelley_hash", "checkpoints"),
    [
        ("mainnet", "RequiresNoMagic", "1a3be38bcbb7911969283716ad7aa550250226b76a61fc51cc9a9a35d9276d81", True),
        ("preprod", "RequiresMagic", "162d29c4e1cf6b8a84f2d692e67a3ac6bc7851bc3e6e4afe64d15778bed8bd86", False),
        ("preview", "RequiresMagic", "363498d1024f84bb39d3fa9593ce391483cb40d479b87233f868d6e57c3a400d", True),
    ],
)
def test_a_networks_configuration_names_its_published_genesis_files(network, magic, shelley_hash, checkpoints):
    doc = config.node_config(network, "relay")
    assert (doc["Protocol"], doc["RequiresNetworkMagic"], doc["ShelleyGenesisHash"]) == ("Cardano", magic, shelley_hash)
    assert [doc[f"{era}GenesisFile"] for era in config.ERAS] == [
        "byron-genesis.json", "shelley-genesis.json", "alonzo-genesis.json", "conway-genesis.json"]  # fmt: skip
    assert ("CheckpointsFile" in doc) is checkpoints
    files = config.genesis_files(network)  # the shipped files hash to what the configuration names
    for era in config.ERAS:
        assert config.genesis_hash(era, files[config.file_name(era)]) == doc[f"{era}GenesisHash"]


@pytest.mark.parametrize("network", ["mainnet", "preprod", "preview"])
def test_the_shipped_shelley_genesis_gives_the_periods_modules_values(network):
    shipped = json.loads(config.genesis_files(network)["shelley-genesis.json"])
    read, known = periods.Genesis.from_shelley_genesis(network, shipped), periods.NETWORKS[network]
    assert (read.system_start, read.slot_length, read.slots_per_kes_period, read.max_kes_evolutions) == (
        known.system_start, known.slot_length, known.slots_per_kes_period, known.max_kes_evolutions)  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "sharing", "targets"),
    [("relay", True, None), ("producer", False, 100)],
)
def test_relays_share_peers_producers_do_not(kind, sharing, targets):
    doc = config.node_config("mainnet", kind)
    assert (doc["PeerSharing"], doc.get("TargetNumberOfRootPeers"), doc["EnableP2P"]) == (sharing, targets, True)


@pytest.mark.parametrize("network", ["mainnet", "preprod", "preview", "lab"])
def test_metrics_are_served_on_12798_with_the_real_prefix(network):
    doc = config.node_config(network, "producer")
    assert doc["UseTraceDispatcher"] is True and doc["TraceOptionMetricsPrefix"] == "cardano.node.metrics."
    assert doc["TraceOptions"][""]["backends"] == ["PrometheusSimple suffix 0.0.0.0 12798",
                                                   "Stdout HumanFormatUncoloured"]  # fmt: skip
    assert doc["TraceOptions"]["Forge.Loop"] == {"severity": "Info"}
    assert config.node_config(network, "relay", "127.0.0.1", metrics_port=9)["TraceOptions"][""]["backends"][0] == (
        "PrometheusSimple suffix 127.0.0.1 9"
    )


def test_the_lab_configuration_names_its_own_shelley_genesis_by_hash():
    data = config.lab_genesis_file(datetime(2026, 12, 1, 8, tzinfo=UTC))
    doc = config.node_config("lab", "producer", shelley_hash=config.genesis_hash("Shelley", data))
    assert doc["ShelleyGenesisFile"] == "shelley-genesis.json" and "ByronGenesisFile" not in doc
    assert doc["ShelleyGenesisHash"] == config.genesis_hash("Shelley", data) != config.genesis_hash("Shelley", data[1:])
    genesis = periods.Genesis.from_shelley_genesis("lab", json.loads(data))
    assert (genesis.slot_length, genesis.slots_per_kes_period) == (periods.Fraction(1, 5), 10)


def test_byrons_hash_is_of_the_canonical_json_the_others_of_the_bytes():
    byron = config.genesis_files("preprod")["byron-genesis.json"]
    reformatted = json.dumps(json.loads(byron), indent=1).encode()
    assert config.genesis_hash("Byron", reformatted) == config.genesis_hash("Byron", byron)
    shelley = config.genesis_files("preprod")["shelley-genesis.json"]
    assert config.genesis_hash("Shelley", shelley + b" ") != config.genesis_hash("Shelley", shelley)


@pytest.mark.parametrize(
    ("name", "change", "got"),
    [
        ("shelley-genesis.json", lambda b: b.replace(b"129600", b"129601"), "its hash is [0-9a-f]{64}"),
        ("byron-genesis.json", lambda b: b[:-5], "its hash is missing or not JSON"),
        ("conway-genesis.json", None, "its hash is missing or not JSON"),
    ],
)
def test_a_genesis_file_not_as_published_is_refused_naming_it(name, change, got):
    files = config.genesis_files("preprod")
    if change is None:
        del files[name]
    else:
        files[name] = change(files[name])
    with pytest.raises(InvalidInput, match=f"^roles/preprod/{name}: {got}, the published preprod .* genesis hash is "
                       "[0-9a-f]{64}: restore the file as upstream publishes it$") as err:  # fmt: skip
        config.check_genesis("preprod", files, "roles/preprod")
    assert err.value.exit_code == EXIT_INVALID


def test_a_missing_folder_is_one_line_naming_the_file(tmp_path):
    with pytest.raises(InvalidInput, match=f"^{tmp_path}/mainnet/byron-genesis.json: cannot read the mainnet genesis"):
        config.genesis_files("mainnet", tmp_path)


@pytest.mark.parametrize(
    ("network", "kind", "message"),
    [("testnet", "relay", "unknown network 'testnet'"), ("mainnet", "standby", "unknown node kind 'standby'")],
)
def test_an_unknown_network_or_kind_is_refused(network, kind, message):
    with pytest.raises(ValueError, match=message):
        config.node_config(network, kind)


def test_render_sorts_keys_and_ends_with_a_newline():
    text = config.render(config.node_config("preview", "relay"))
    assert text.endswith(b"}\n") and list(json.loads(text)) == sorted(json.loads(text))
