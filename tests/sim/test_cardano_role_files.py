"""The Cardano role's pure outputs run by the lab's node simulator (lab/images/cardano-sim) as processes on
127.0.0.1: the configuration (config.py), each node's topology (topology.py), the holder's hot credentials and
command line (hot.py) planned by rotation.py: the producer forges with them, the chain takes its blocks, its metrics
read back as the KES facts check uses (kesinfo.py), and a planned rotation's next certificate is taken too; and the
role itself (roles/cardano/role.yaml's lab profile, rendered as a deploy renders it) makes its holder forge."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

from nodeops.inventory import Node, Service
from nodeops.render import render_nodes
from nodeops.roles import load_role, role_module
from nodeops.secrets import Secret

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
    first = rotation.plan(net.genesis, slot, None, rotation.Stored(0), cold_vk, pool_id, "cold", "counter")
    write(keys, hot.bundle(lab.cold, vrf, kes.SignKey.generate(), first.counter, first.kes_period))
    _, relay_url = start(net, "relay", pool, keys, holder=False)
    pid, url = start(net, "bp", pool, keys, holder=True)

    def adopted(counter):
        return [b for b in net.blocks("bp") if b["adopted"] and b["counter"] == counter]

    wait_for(lambda: adopted(first.counter), LEDGER_WAIT, what="a block of the producer with counter 1")
    facts = kesinfo.parse(get(url))
    assert (facts.start, facts.expiry, facts.forging) == (first.kes_period, first.kes_period + 30, True)
    assert facts.blocks_forged >= 1 and kesinfo.check(facts, net.genesis, kesinfo.DEFAULT_THRESHOLD, "-").ok
    assert kesinfo.parse(get(relay_url)).forging is False and net.blocks("relay") == []

    on_chain = net.pools()[lab.id]["counter"]
    slot = net.genesis.slot_at(datetime.now(UTC))
    stored = rotation.Stored(first.counter)
    nxt = rotation.plan(net.genesis, slot, on_chain, stored, cold_vk, pool_id, "cold", "counter")
    assert nxt.counter == first.counter + 1
    write(keys, hot.bundle(lab.cold, vrf, kes.SignKey.generate(), nxt.counter, nxt.kes_period))
    os.kill(pid, signal.SIGHUP)  # the node reads its key files again, as upstream
    wait_for(lambda: adopted(nxt.counter), LEDGER_WAIT, what="a block with the rotated certificate's counter")
    assert kesinfo.parse(get(url)).start == nxt.kes_period and net.duplicates() == []
    assert net.blocks(key="rejected") == []


def at_home(argv: tuple[str, ...], role, folder: Path, port: int) -> list[str]:
    """The container's command line moved to this machine: the mount to ``folder``, the volumes under it, the
    node-to-node port to a free one on 127.0.0.1 (what a container's own address and folders give it)."""
    moved = {
        "0.0.0.0": "127.0.0.1",
        str(role.ports["node-to-node"]): str(port),
        role.volumes["db"]: str(folder / "db"),
        f"{role.volumes['ipc']}/node.socket": str(folder / "node.socket"),
    }
    return [moved.get(arg, arg.replace(f"{role.mount}/", f"{folder}/")) for arg in argv]


def test_the_roles_rendered_files_make_the_holder_forge_and_the_standby_not(net, tmp_path):
    """roles/cardano/role.yaml's lab profile rendered for a pool (its templates through role.py, the hot files from
    secrets holding cardano-cli's envelopes) and its command line: the holder, started with hot_command, forges
    blocks the chain adopts; the standby, the same files without the flags, does not."""
    lab = Pool(tmp_path)
    net.start_chain(lab)
    role = load_role("cardano")
    nodes = tuple(Node(name, "127.0.0.1", 22, preferred, (), "pool", kind) for name, kind, preferred in (
        ("relay-a", "relay", None), ("relay-b", "relay", None), ("bp-a", "producer", "active"),
        ("bp-b", "producer", "standby")))  # fmt: skip
    variables = {"PROFILE": "lab", "SYSTEM_START": net.genesis_doc["systemStart"], "CARDANO_SIM_CHAIN": net.chain}
    service = Service("pool", "cardano", "img:1", "docker", variables, {}, nodes)
    vrf = envelope.read_vrf_signing_key(lab.vrf.read_text(), str(lab.vrf))
    made = hot.bundle(lab.cold, vrf, kes.SignKey.generate(), 0, net.current_period())
    secrets = {"kes_key": Secret(made.files["kes.skey"].decode(), "kes_key"),
               "op_cert": Secret(made.files["node.cert"].decode(), "op_cert"),
               "vrf_key": Secret(lab.vrf.read_text(), "vrf_key")}  # fmt: skip
    rendered = render_nodes(role, "lab", service, secrets)
    urls = {}
    for name, holder in (("bp-a", True), ("bp-b", False)):
        folder = tmp_path / name
        folder.mkdir()
        files = rendered[name].files
        for file in files.values():
            if holder or not file.hot:  # the engine gives the hot files to the holder alone
                (folder / file.name).write_bytes(file.data)
        metrics = free_port()
        doc = json.loads(files["config.json"].data)
        doc["TraceOptions"][""]["backends"][0] = f"PrometheusSimple suffix 127.0.0.1 {metrics}"
        (folder / "config.json").write_text(json.dumps(doc))
        argv = at_home(rendered[name].command + (rendered[name].hot_command if holder else ()), role, folder,
                       free_port())  # fmt: skip
        env = dict(line.split("=", 1) for line in files["sim.env"].data.decode().splitlines())
        proc = net._start(name, [str(SIM / "cardano-node"), *argv], {**env, "CARDANO_SIM_NODE": name})
        urls[name] = f"http://127.0.0.1:{metrics}/metrics"
        wait_for(lambda p=proc, u=urls[name]: p.poll() is not None or net._up(u), 10, what=f"{name}'s metrics")
        assert proc.poll() is None, net.log(name)
    wait_for(lambda: [b for b in net.blocks("bp-a") if b["adopted"] and b["counter"] == 0], LEDGER_WAIT,
             what="a block of the holder adopted")  # fmt: skip
    assert kesinfo.parse(get(urls["bp-a"])).forging is True
    assert kesinfo.parse(get(urls["bp-b"])).forging is False and net.blocks("bp-b") == []
