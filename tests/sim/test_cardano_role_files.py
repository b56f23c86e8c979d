"""The Cardano role's pure outputs run by the lab's node simulator (lab/images/cardano-sim) as processes on
127.0.0.1: the configuration (config.py), each node's topology (topology.py), the holder's hot credentials and
command line (hot.py) planned by rotation.py: the producer forges with them, the chain takes its blocks, its metrics
read back as the KES facts check uses (kesinfo.py), and a planned rotation's next certificate is taken too."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

from nodeops.roles import role_module

from .cardano import SIM, Pool, get
from .support import free_port, wait_for

config = role_module("cardano", "config")
envelope = role_module("cardano", "envelope")
hot = role_module("cardano", "hot")
kes = role_module("cardano", "kes")
kesinfo = role_module("cardano", "kesinfo")
rotation = role_module("cardano", "rotation")
topology = role_module("cardano", "topology")
LEDGER_WAIT = 15  # seconds: the pool leads half the 0.2 s slots


def start(net, name: str, pool: topology.Pool, folder: Path, holder: bool) -> tuple[int, str]:
    """Node ``name`` run with the role's files and arguments; its metrics URL."""
    shelley = (net.folder / "shelley-genesis.json").read_bytes()
    metrics = free_port()
    doc = config.node_config("lab", pool.kind(name), "127.0.0.1", config.genesis_hash("Shelley", shelley), metrics)
    (net.folder / f"{name}.config.json").write_bytes(config.render(doc))
    (net.folder / f"{name}.topology.json").write_bytes(topology.render(topology.topology(pool, name)))
    paths = hot.Paths(str(net.folder / f"{name}.config.json"), str(net.folder / f"{name}.topology.json"),
                      str(net.folder / f"{name}.db"), str(net.folder / f"{name}.socket"), str(folder))  # fmt: skip
    port = dict(pool.relays + pool.producers)[name].port
    argv = [str(SIM / "cardano-node"), *hot.node_args(paths, "127.0.0.1", port, holder)]
    proc = net._start(name, argv, {"CARDANO_SIM_CHAIN": net.chain, "CARDANO_SIM_NODE": name})
    url = f"http://127.0.0.1:{metrics}/metrics"
    wait_for(lambda: proc.poll() is not None or net._up(url), 10, what=f"{name}'s metrics")
    assert proc.poll() is None, net.log(name)
    return proc.pid, url


def write(folder: Path, made) -> None:
    for name, data in made.files.items():
        path = folder / name
        if path.exists():
            path.chmod(0o600)
        path.write_bytes(data)
        path.chmod(0o400)


def test_the_roles_files_make_a_producer_that_forges_and_rotates(net, tmp_path):
    lab = Pool(tmp_path)
    net.start_chain(lab)
    pool = topology.Pool("lab", (("relay", topology.Peer("127.0.0.1", free_port())),),
                         (("bp", topology.Peer("127.0.0.1", free_port())),))  # fmt: skip
    keys = tmp_path / "keys"
    keys.mkdir()
    vrf = envelope.read_vrf_signing_key(lab.vrf.read_text(), str(lab.vrf))
    cold_vk, pool_id = lab.cold.verification_key, rotation.pool_id(lab.cold.verification_key)
    slot = net.genesis.slot_at(datetime.now(UTC))
    first = rotation.plan(net.genesis, slot, None, rotation.Stored(0), cold_vk, pool_id, "cold")
    write(keys, hot.bundle(lab.cold, vrf, kes.SignKey.generate(), first.counter, first.kes_period))
    _, relay_url = start(net, "relay", pool, keys, holder=False)
    pid, url = start(net, "bp", pool, keys, holder=True)

    def adopted(counter):
        return [b for b in net.blocks("bp") if b["adopted"] and b["counter"] == counter]

    wait_for(lambda: adopted(first.counter), LEDGER_WAIT, what="a block of the producer with counter 1")
    facts = kesinfo.parse(get(url))
    assert (facts.start, facts.expiry, facts.forging) == (first.kes_period, first.kes_period + 30, True)
    assert facts.blocks_forged >= 1 and kesinfo.check(facts, net.genesis).ok
    assert kesinfo.parse(get(relay_url)).forging is False and net.blocks("relay") == []

    on_chain = net.pools()[lab.id]["counter"]
    slot = net.genesis.slot_at(datetime.now(UTC))
    nxt = rotation.plan(net.genesis, slot, on_chain, rotation.Stored(first.counter), cold_vk, pool_id, "cold")
    assert nxt.counter == first.counter + 1
    write(keys, hot.bundle(lab.cold, vrf, kes.SignKey.generate(), nxt.counter, nxt.kes_period))
    os.kill(pid, signal.SIGHUP)  # the node reads its key files again, as upstream
    wait_for(lambda: adopted(nxt.counter), LEDGER_WAIT, what="a block with the rotated certificate's counter")
    assert kesinfo.parse(get(url)).start == nxt.kes_period and net.duplicates() == []
    assert net.blocks(key="rejected") == []
