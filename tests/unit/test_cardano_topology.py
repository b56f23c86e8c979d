"""Each node's topology.json (roles/cardano/topology.py): producers see only the pool's relays; relays see the
producers, each other and the public peers; the network's bootstrap peers and ledger slot; bad descriptions."""

from __future__ import annotations

import json

import pytest

from nodeops.roles import role_module

topo = role_module("cardano", "topology")
Peer, Pool = topo.Peer, topo.Pool
R1, R2, BP, SP = Peer("10.0.1.10", 3001), Peer("10.0.2.10", 3001), Peer("10.0.3.10", 6000), Peer("10.0.3.11", 6000)
PUBLIC = Peer("relays.example.org", 3001)


def pool(network="mainnet", relays=(("r1", R1), ("r2", R2)), public=(PUBLIC,)):
    return Pool(network, tuple(relays), (("bp", BP), ("spare", SP)), tuple(public))


def points(group):
    return [(p["address"], p["port"]) for p in group["accessPoints"]]


@pytest.mark.parametrize("name", ["bp", "spare"])
def test_a_producer_and_its_standby_talk_only_to_the_pools_relays(name):
    doc = topo.topology(pool(), name)
    assert [points(g) for g in doc["localRoots"]] == [[("10.0.1.10", 3001), ("10.0.2.10", 3001)]]
    flags = {k: v for k, v in doc["localRoots"][0].items() if k != "accessPoints"}
    assert flags == {"advertise": False, "trustable": True, "hotValency": 2, "warmValency": 2}
    assert (doc["publicRoots"], doc["bootstrapPeers"], doc["useLedgerAfterSlot"]) == ([], None, -1)


@pytest.mark.parametrize(
    ("name", "groups"),
    [
        ("r1", [[("10.0.3.10", 6000), ("10.0.3.11", 6000)], [("10.0.2.10", 3001)]]),
        ("r2", [[("10.0.3.10", 6000), ("10.0.3.11", 6000)], [("10.0.1.10", 3001)]]),
    ],
)
def test_a_relay_talks_to_the_producers_the_other_relays_and_public_peers(name, groups):
    doc = topo.topology(pool(), name)
    assert [points(g) for g in doc["localRoots"]] == groups
    assert [(g["advertise"], g["trustable"]) for g in doc["localRoots"]] == [(False, False), (False, True)]
    assert [points(g) for g in doc["publicRoots"]] == [[("relays.example.org", 3001)]]


@pytest.mark.parametrize(
    ("network", "bootstrap", "after"),
    [
        (
            "mainnet",
            ["backbone.cardano.iog.io", "backbone.mainnet.cardanofoundation.org", "backbone.mainnet.emurgornd.com"],
            177724800,
        ),  # fmt: skip
        ("preprod", ["preprod-node.play.dev.cardano.org"], 112406400),
        ("preview", ["preview-node.play.dev.cardano.org"], 102729600),
        ("lab", None, -1),
    ],
)
def test_a_relay_has_its_networks_bootstrap_peers_and_ledger_slot(network, bootstrap, after):
    doc = topo.topology(pool(network), "r1")
    assert (doc["bootstrapPeers"] and [p["address"] for p in doc["bootstrapPeers"]], doc["useLedgerAfterSlot"]) == (
        bootstrap,
        after,
    )


def test_a_single_relay_has_one_group_and_no_public_peers_no_public_roots():
    doc = topo.topology(pool(relays=(("r1", R1),), public=()), "r1")
    assert ([points(g) for g in doc["localRoots"]], doc["publicRoots"]) == (
        [[("10.0.3.10", 6000), ("10.0.3.11", 6000)]],
        [],
    )


def test_render_is_json_the_simulator_reads():
    text = topo.render(topo.topology(pool(), "bp"))
    assert text.endswith(b"}\n") and json.loads(text)["localRoots"][0]["hotValency"] == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Peer("", 3001), "non-empty"),
        (lambda: Peer("h", 0), "not in 1..65535"),
        (lambda: Peer("h", True), "not in 1..65535"),
        (lambda: Pool("testnet", (("r", R1),), (("bp", BP),)), "unknown network"),
        (lambda: Pool("mainnet", (), (("bp", BP),)), "at least one relay"),
        (lambda: Pool("mainnet", (("bp", R1),), (("bp", BP),)), "used twice: bp"),
        (lambda: topo.topology(pool(), "r9"), "'r9' is not a node"),
    ],
)
def test_bad_descriptions_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
