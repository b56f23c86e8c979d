"""`fab lab.up --pool`: the chain service, the pool's four hosts behind the bastion, the pool's keys and the
producer's first hot credentials in the lab's Secrets Manager only, the Cardano image in the registry, the pool in
the lab's inventory as a service of the Cardano role that `fab status` reads; a second up changes nothing;
lab.down removes it all. One lab for the module (its up and down are in the module's setup and teardown figures)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.daemons import Daemons
from lab.host import Lab
from lab.topology import plan_lab
from tests.conftest import ROOT, fab
from tests.e2e.conftest import inventory_variant
from tests.e2e.pool_keys import envelope, leaks, pool_keys, sentinels, state
from tests.e2e.pool_keys import get_inside as get_in
from tests.e2e.probe import wait_for

pytestmark = pytest.mark.lab

NAME, CIDR, NODES = "pool", "10.247.0.0/16", 2  # reserved for this module
PLAN = plan_lab(NAME, CIDR, NODES, pool=True)


def up() -> subprocess.CompletedProcess:
    return fab("lab.up", "--pool", "--name", NAME, "--nodes", str(NODES), "--cidr", CIDR, timeout=600)


@pytest.fixture(scope="module")
def pool_lab(root):
    try:
        first = up()
        assert first.returncode == 0, first.stdout + first.stderr
        yield Lab(ROOT, NAME)
    finally:
        assert fab("lab.down", "--name", NAME).returncode == 0


def get_inside(url: str):
    """GET ``url``'s JSON from inside pool-relay-a's network (the operator has no route to a private address)."""
    return get_in(PLAN.pool[0].netns, url)


def chain_get(path: str):
    return get_inside(PLAN.chain_address + path)


def test_the_chain_service_runs_its_clock_with_the_pool_registered(pool_lab, figures):
    pool = state(pool_lab)["pool"]
    assert pool["chain"] == PLAN.chain_address == f"http://{PLAN.chain.private_ip}:3100"
    first = chain_get("/tip")["currentSlot"]
    later = wait_for(lambda: (slot := chain_get("/tip")["currentSlot"]) > first and slot, "the chain's slot", 10)
    figures(f"chain slot {first} -> {later}")
    cold_vk = envelope.read_cold_signing_key(pool_keys(pool_lab)["cold_key"], "t").verification_key
    assert pool["pool_id"] == hashlib.blake2b(cold_vk, digest_size=28).hexdigest()
    assert chain_get("/pools") == {pool["pool_id"]: {"counter": None, "coldVerificationKey": cold_vk.hex()}}
    genesis = json.loads(Path(pool["genesis"]).read_text())
    assert genesis["systemStart"] == pool["system_start"] and genesis["slotLength"] == 0.2


def test_the_keys_are_cardano_cli_envelopes_of_one_pool(pool_lab):
    keys = pool_keys(pool_lab)
    cold = envelope.read_cold_signing_key(keys["cold_key"], "cold")
    counter = envelope.read_issue_counter(keys["counter"], "counter")
    assert (counter.next, counter.cold_vk) == (1, cold.verification_key)  # the first certificate took 0
    assert len(envelope.read_vrf_signing_key(keys["vrf_key"], "vrf")) == 64
    cert = envelope.read_certificate(keys["op_cert"], "op_cert")
    kes_vk = envelope.read_kes_signing_key(keys["kes_key"], "kes").verification_key
    assert (cert.counter, cert.kes_vk) == (0, kes_vk) and cert.verify(cold.verification_key)
    assert cert.kes_period <= chain_get("/tip")["currentSlot"] // 10  # the chain's KES period when it was issued


def test_the_cardano_image_is_in_the_lab_registry(pool_lab):
    images = state(pool_lab)["pool"]["images"]
    assert images == [f"{PLAN.registry_address}/intersectmbo/cardano-node:{v}" for v in ("10.4.1", "10.5.1")]
    tags = get_inside(f"http://{PLAN.registry_address}/v2/intersectmbo/cardano-node/tags/list")
    assert sorted(tags["tags"]) == ["10.4.1", "10.5.1"]


def test_the_inventory_holds_the_pool_whose_hosts_answer_with_their_host_keys_pinned(pool_lab, tmp_path, figures):
    """The pool in the lab's inventory, a service of the Cardano role (roles/cardano/role.yaml): `fab exec` reaches
    each of its hosts through the bastion with the host key the lab's state records, a wrong one is refused, and
    `fab status --service pool` reads the pool, not deployed yet (its nodes run no container)."""
    pool = state(pool_lab)["pool"]
    doc = yaml.safe_load(pool_lab.inventory_file.read_text())
    assert set(doc["services"]) == {"cl1", "pool"}
    service = doc["services"]["pool"]
    assert (service["role"], service["variables"]["PROFILE"], set(service["secrets"])) == (
        "cardano", "lab", {"kes_key", "op_cert", "vrf_key", "cold_key", "counter"})  # fmt: skip
    assert [(n["name"], n["kind"], n.get("preferred")) for n in service["nodes"]] == [
        (h.name, h.node_kind, h.preferred) for h in PLAN.pool
    ]
    names = ",".join(h.name for h in PLAN.pool)
    res = fab("exec", "--env", NAME, "--json", "--nodes", names, "--command", "hostname")
    assert res.returncode == 0, res.stdout + res.stderr
    hosts = [e for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "host"]
    assert sorted((h["node"], h["stdout"].strip()) for h in hosts) == sorted((h.name, h.name) for h in PLAN.pool)

    def wrong_key(doc: dict) -> None:
        doc["services"]["pool"]["nodes"][0]["host_key"] = pool["nodes"][1]["host_key"]

    bad = fab("exec", "--inventory", str(inventory_variant(pool_lab.inventory_file, tmp_path / "bad.yaml", wrong_key)),
              "--json", "--nodes", "pool-relay-a", "--command", "true")  # fmt: skip
    assert bad.returncode != 0  # the host key is verified

    status = fab("status", "--env", NAME, "--service", "pool", "--json")
    figures(f"fab status --service pool: exit {status.returncode}")
    assert status.returncode in (0, 1) and "Traceback" not in status.stderr, status.stdout + status.stderr
    (event,) = [json.loads(line) for line in status.stdout.splitlines()]
    assert (event["service"], event["state"]) == ("pool", "down"), status.stdout  # not deployed: no container
    assert [(n["node"], n["kind"], n["role"], n["container"]) for n in event["nodes"]] == [
        (h.name, h.node_kind, "down", None) for h in PLAN.pool
    ]


def test_the_keys_are_in_no_file_no_inventory_and_no_command_line(pool_lab):
    found = sentinels(pool_keys(pool_lab))
    assert all(len(v) >= 32 for v in found.values())
    places = [p for p in pool_lab.dir.rglob("*") if p.is_file() and not p.is_symlink()] + [pool_lab.inventory_file]
    chain = state(pool_lab)["daemons"]["chain/chain"]["pid"]
    places += [Path(f"/proc/{chain}/cmdline"), Path(f"/proc/{chain}/environ")]
    assert len(places) > 20 and pool_lab.dir / "hosts" / "chain" / "cold.vkey" in places
    assert leaks(places, found) == []


def test_a_second_up_changes_nothing_and_keeps_the_keys(pool_lab):
    before = (state(pool_lab), pool_keys(pool_lab), pool_lab.inventory_file.read_bytes())
    again = up()
    assert again.returncode == 0, again.stdout + again.stderr
    after = (state(pool_lab), pool_keys(pool_lab), pool_lab.inventory_file.read_bytes())
    assert after == before  # the chain (its pid, its genesis), the pool's description, the keys, the inventory


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_an_up_without_pool_removes_it_and_down_removes_the_rest(pool_lab):
    """lab.up without --pool takes the pool's hosts and chain away and leaves the lab of before (its inventory
    without the pool's service); lab.down removes every namespace and daemon."""
    daemons = state(pool_lab)["daemons"]
    pool_daemons = {"chain/chain", *(f"{h.name}/{d}" for h in PLAN.pool for d in ("sshd", "engine"))}
    assert pool_daemons <= set(daemons)
    inventory = pool_lab.inventory_file.read_bytes()
    running = Daemons(daemons, lambda: None).running

    plain = fab("lab.up", "--name", NAME, "--nodes", str(NODES), "--cidr", CIDR)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    before = yaml.safe_load(inventory)
    before["services"].pop("pool")
    assert yaml.safe_load(pool_lab.inventory_file.read_text()) == before  # the pool's service alone is gone
    assert "pool" not in state(pool_lab) and not pool_daemons & set(state(pool_lab)["daemons"])
    assert [key for key in pool_daemons if running(key)] == []
    assert not {h.netns for h in (PLAN.chain, *PLAN.pool)} & set(netns_list().split())
    kept = {k: v for k, v in state(pool_lab)["daemons"].items() if k != "mon/prometheus"}
    assert kept == {k: v for k, v in daemons.items() if k not in {*pool_daemons, "mon/prometheus"}}  # same pids
    assert Daemons(state(pool_lab)["daemons"], lambda: None).running("mon/prometheus")
    # Prometheus alone restarts: its scrape configuration (lab/monitoring.py) lost the pool's service

    assert fab("lab.down", "--name", NAME).returncode == 0
    assert f"nodeops-{NAME}-" not in netns_list()
    assert [key for key in daemons if running(key)] == []
    assert not pool_lab.dir.exists() and not pool_lab.inventory_file.exists()
