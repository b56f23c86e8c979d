"""Issue 16: the Cardano role itself (roles/cardano/role.yaml, templates/cardano/, roles/cardano/role.py). A pool of
two relays, a producer and its standby renders each node its own topology, each kind its configuration and each
network its genesis, from the role's pure modules (config.py, topology.py, periods.py: never copied into Jinja);
the command line is hot.node_args'; only the holder gets the key files, the flags and the hot label, and no secret
is in any non-secret file, label, argument or recorded text (sentinel values), on the played container engine of
the keys tables (no host touched)."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from nodeops.errors import InvalidInput
from nodeops.inventory import Node, Service, load_inventory
from nodeops.job import Job
from nodeops.render import render_nodes
from nodeops.roles import BUILTIN_ROLES, check_service, load_role, profile_name, role_for, role_module
from nodeops.run.report import Redactor
from nodeops.secrets import Secret
from tests.unit.test_files_per_node import fresh_deploy

config = role_module("cardano", "config")
hot = role_module("cardano", "hot")
topology = role_module("cardano", "topology")
hooks = role_module("cardano", "role")

START = "2026-12-01T08:00:00Z"
CHAIN = "http://10.9.0.6:3100"
R1 = Node("relay-a", "10.9.127.251", 22, None, (), "pool", "relay")
R2 = Node("relay-b", "10.9.127.252", 22, None, (), "pool", "relay")
BP = Node("bp-a", "10.9.127.253", 22, "active", (), "pool", "producer")
SB = Node("bp-b", "10.9.127.254", 22, "standby", (), "pool", "producer")


def envelope(kind: str, sentinel: str) -> str:
    """A text envelope over several lines as cardano-cli writes it, its description a sentinel to look for."""
    return json.dumps({"type": kind, "description": sentinel, "cborHex": "5820" + "ab" * 32}, indent=4) + "\n"


KES = envelope("KesSigningKey_ed25519_kes_2^6", "s3ntinel-kes-7f3a")
VRF = envelope("VrfSigningKey_PraosVRF", "s3ntinel-vrf-91c2")
CERT = envelope("NodeOperationalCertificate", "s3ntinel-cert-44d0")
SECRETS = {"kes_key": Secret(KES, "kes_key", "v1"), "vrf_key": Secret(VRF, "vrf_key", "v1"),
           "op_cert": Secret(CERT, "op_cert", "v1")}  # fmt: skip
SENTINELS = ("s3ntinel-kes-7f3a", "s3ntinel-vrf-91c2", "s3ntinel-cert-44d0")
PUBLIC = [{"address": "relays.example.org", "port": 3001}]


@pytest.fixture(scope="module")
def role():
    return load_role("cardano", [BUILTIN_ROLES])


def pool(profile: str, **variables) -> Service:
    own = {"PROFILE": profile, **({"SYSTEM_START": START, "CARDANO_SIM_CHAIN": CHAIN} if profile == "lab" else {})}
    return Service("pool", "cardano", "reg/intersectmbo/cardano-node:10.5.1", "docker",
                   MappingProxyType({**own, **variables}), MappingProxyType({}), (R1, R2, BP, SB))  # fmt: skip


def the_pool(network: str) -> topology.Pool:
    peer = topology.Peer
    return topology.Pool(network, (("relay-a", peer(R1.host, 3001)), ("relay-b", peer(R2.host, 3001))),
                         (("bp-a", peer(BP.host, 3001)), ("bp-b", peer(SB.host, 3001))),
                         tuple(peer(p["address"], p["port"]) for p in PUBLIC))  # fmt: skip


@pytest.mark.parametrize("network", ["mainnet", "preprod", "preview", "lab"])
def test_each_node_gets_its_topology_its_kinds_config_and_its_networks_genesis(role, network):
    nodes = render_nodes(role, network, pool(network, PUBLIC_PEERS=PUBLIC), SECRETS)
    assert list(nodes) == ["relay-a", "relay-b", "bp-a", "bp-b"]
    genesis = ({"shelley-genesis.json": config.lab_genesis_file(datetime(2026, 12, 1, 8, tzinfo=UTC))}
               if network == "lab" else config.genesis_files(network))  # fmt: skip
    shelley = config.genesis_hash("Shelley", genesis["shelley-genesis.json"])
    for name, rendered in nodes.items():
        files = rendered.files
        kind = "relay" if name.startswith("relay") else "producer"
        assert files["topology.json"].data == topology.render(topology.topology(the_pool(network), name))
        want = config.node_config(network, kind, shelley_hash=shelley if network == "lab" else "")
        assert files["config.json"].data == config.render(want)
        assert {n: f.data for n, f in files.items() if n in genesis} == genesis  # the very bytes, each network's
        assert all(files[n].data_file is (network != "lab") for n in genesis)  # published: data files, not recorded
        assert [n for n, f in files.items() if f.hot] == ["kes.skey", "vrf.skey", "node.cert"]
        assert json.loads(files["config.json"].data)["ShelleyGenesisHash"] == shelley
    producer = json.loads(nodes["bp-a"].files["topology.json"].data)
    assert producer["localRoots"][0]["accessPoints"] == [{"address": R1.host, "port": 3001},
                                                         {"address": R2.host, "port": 3001}]  # fmt: skip
    assert producer["publicRoots"] == [] and producer["bootstrapPeers"] is None  # the relays alone
    hashes = {n: r.config_hash for n, r in nodes.items()}
    assert hashes["bp-a"] == hashes["bp-b"]  # the producer and its standby: one configuration (a promotion compares)
    assert len({hashes["relay-a"], hashes["relay-b"], hashes["bp-a"]}) == 3


def test_the_lab_genesis_is_the_one_the_chain_was_started_with_and_the_sim_finds_its_chain(role):
    nodes = render_nodes(role, "lab", pool("lab"), SECRETS)
    bp = nodes["bp-a"]
    assert json.loads(bp.files["shelley-genesis.json"].data)["systemStart"] == START
    assert bp.env_file == "sim.env" and not bp.files["sim.env"].secret
    assert bp.files["sim.env"].data == f"CARDANO_SIM_CHAIN={CHAIN}\n".encode()


@pytest.mark.parametrize(("variables", "problem"), [
    ({"SYSTEM_START": ""}, "the lab network starts at variables.SYSTEM_START"),
    ({"CARDANO_SIM_CHAIN": ""}, "sync from variables.CARDANO_SIM_CHAIN"),
    ({"PUBLIC_PEERS": ["relays.example.org:3001"]}, "each public peer is a mapping {address, port}"),
    ({"PUBLIC_PEERS": [{"address": "r.example", "port": 99999}]}, "topology: ValueError: r.example: port 99999 is not"),
    ({"SYSTEM_START": "yesterday"}, "ValueError: Invalid isoformat string: 'yesterday'"),
])  # fmt: skip
def test_a_pool_with_a_bad_variable_is_refused_at_render_saying_why(role, variables, problem):
    with pytest.raises(InvalidInput, match=problem):
        render_nodes(role, "lab", pool("lab", **variables), SECRETS)


@pytest.mark.parametrize("holder", [False, True])
def test_the_command_line_is_hot_node_args(role, holder):
    rendered = render_nodes(role, "mainnet", pool("mainnet"), SECRETS)["bp-a"]
    paths = hot.Paths(f"{role.mount}/config.json", f"{role.mount}/topology.json", role.volumes["db"],
                      f"{role.volumes['ipc']}/node.socket", role.mount)  # fmt: skip
    argv = rendered.command + (rendered.hot_command if holder else ())
    assert list(argv) == hot.node_args(paths, "0.0.0.0", role.ports["node-to-node"], holder)
    assert role.ports["node-to-node"] == hooks.NODE_TO_NODE  # the port every topology names


def test_the_role_is_the_pools_shape(role):
    assert [(k.name, k.activation, k.min_nodes) for k in role.kinds.values()] == [("relay", "all", 2),
                                                                                  ("producer", "keys", 1)]  # fmt: skip
    assert (role.user, role.port, role.health) == (0, config.METRICS_PORT, "/metrics")  # the node has no HTTP API
    assert set(role.secrets) == {"kes_key", "op_cert", "vrf_key"}  # never the cold key or the counter
    check_service(role, pool("lab"), "inventory/lab.yaml")


def job_of(role, network: str = "lab") -> Job:
    service = pool(network)
    nodes = render_nodes(role, network, service, SECRETS)
    return Job(service, role, network, nodes["relay-a"], Redactor(list(SECRETS.values())), SECRETS, nodes)


def test_a_fresh_deploy_gives_the_keys_flags_and_label_to_the_holder_alone_and_no_secret_anywhere_else(role):
    job = job_of(role)
    engine, _ = fresh_deploy(job)
    runs = {node: shlex.split(c) for node, c, _ in engine.sent if c.startswith("docker run")}
    assert list(runs) == ["relay-a", "relay-b", "bp-b", "bp-a"]  # relays, the standby, then the keys
    for node, argv in runs.items():
        holder = node == "bp-a"
        assert ("--shelley-kes-key" in argv) is holder and ("io.nodeops.hot=true" in argv) is holder
        assert argv[argv.index(job.service.image) + 1 :][:3] == ["run", "--config", "/config/config.json"]
        labels = dict(argv[i + 1].split("=", 1) for i, w in enumerate(argv) if w == "--label")
        recorded = json.loads(labels["io.nodeops.files"])
        assert set(recorded) == {"config.json", "topology.json", "shelley-genesis.json", "sim.env"}
    written = {(node, c.rsplit("/", 1)[-1]) for node, c, stdin in engine.sent if stdin and "cat >" in c}
    assert {f for n, f in written if n == "bp-a"} >= {"kes.skey", "vrf.skey", "node.cert"}
    assert not {f for n, f in written if n != "bp-a"} & {"kes.skey", "vrf.skey", "node.cert"}
    for node, command, stdin in engine.sent:
        assert not any(s in command for s in SENTINELS), command  # no label, argument or recorded text holds one
        if stdin and any(s.encode() in stdin for s in SENTINELS):
            assert node == "bp-a", node


@pytest.mark.parametrize(("body", "forging"), [
    (b"cardano_node_metrics_forging_enabled_int 1\ncardano_node_metrics_slotNum_int 40\n", True),
    (b"# TYPE x gauge\ncardano_node_metrics_forging_enabled_int 0\n", False),
    (b"cardano_node_metrics_slotNum_int 40\n", None),  # says nothing: the label decides
    (b"<html>not metrics</html>", None), (b"\xff\xfe", None),
])  # fmt: skip
def test_keys_in_use_reads_the_forging_metric(body, forging):
    assert hooks.keys_in_use(body) is forging


@pytest.mark.parametrize(("seconds", "profile", "said"), [
    (2.726, "lab", "14 slots"),  # 0.2 s slots: 13.63 slots, rounded up
    (2.8, "lab", "14 slots"), (2.801, "lab", "15 slots"),  # the figure to the millisecond: 2.8 is 14 slots exactly
    (0.2, "lab", "1 slot"), (0.0, "lab", "0 slots"),
    (94.2, "mainnet", "95 slots"), (3, "preprod", "3 slots"), (0.5, "preview", "1 slot"),  # 1 s slots
    (3.0, "private-net", None),  # a profile that is no known network: the seconds alone
    (-1.0, "lab", None), (float("nan"), "lab", None), (float("inf"), "mainnet", None),
])  # fmt: skip
def test_outage_says_a_promotions_outage_in_the_networks_slots(seconds, profile, said):
    assert hooks.outage(seconds, profile) == said


@pytest.mark.parametrize(("line", "level"), [
    ("[bp-a:cardano.node.Forge.Loop:Info:12] [2026-12-01 08:00:01.20 UTC] Forged block in slot 5", "info"),
    ("[bp-a:cardano.node.Forge.Loop:Error:12] [2026-12-01 08:00:01.20 UTC] Forged invalid block", "error"),
    ("[r:cardano.node.Shutdown:Emergency:3] [2026-12-01 08:00:01.20 UTC] stopping", "critical"),
    ("cardano-node: a plain startup error", None),
])  # fmt: skip
def test_log_level_reads_the_human_format(line, level):
    assert hooks.log_level(line) == level


def test_the_example_inventorys_pool_passes_the_roles_checks_and_renders(role):
    """inventory/prod.example.yaml's pool, deployable as written up to the secrets' values."""
    inventory = load_inventory(Path(__file__).parents[2] / "inventory" / "prod.example.yaml")
    service = inventory.services["pool"]
    example = role_for(inventory, service)
    check_service(example, service, "prod.example.yaml")
    assert set(example.secrets) == set(service.secrets)
    nodes = render_nodes(example, profile_name(example, service), service, SECRETS)
    relay = json.loads(nodes["relay-a"].files["topology.json"].data)
    assert relay["publicRoots"] == [{"accessPoints": [{"address": "relays.friendly-pool.example", "port": 3001}],
                                     "advertise": False}]  # fmt: skip
