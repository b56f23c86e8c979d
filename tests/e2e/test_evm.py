"""Several EVM chains on one Chainlink pair (issue 14, Inventory): two chains with two RPC nodes each, some URLs
plain variables, some secret references holding a sentinel "API key". The pair starts, and the configuration
the node itself reports (the simulator's /health meta ``evm_nodes``: chain ID -> node names and URL kinds, no
URL) holds both chains and all four nodes; the key reaches neither deploy's output nor ``docker inspect``.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from lab.aws import secrets_client
from nodeops.inventory import load_inventory
from tests.conftest import fab
from tests.e2e.conftest import inventory_variant, own_lab, rpc_stand_ins

pytestmark = pytest.mark.lab

NAME, CIDR, NODES = "evm", "10.239.0.0/16", 2
SERVICE = "cl1"
KEY = "Ev7" + "evmSentinel" + "9f8e7d"  # joined at run time: this file does not hold it
SECRET = "cl1/EvmRpc"
PORTS = (8551, 8552)  # one RPC stand-in per chain, on the db host


@pytest.fixture(scope="module")
def evm(root):
    with own_lab(NAME, CIDR, nodes=NODES) as lab, rpc_stand_ins(NAME, CIDR, NODES, PORTS) as (ip, _):
        yield lab, ip


def test_two_chains_with_two_rpc_nodes_each_start_and_the_node_reports_both(evm, tmp_path):
    lab, ip = evm
    one, two = (f"ws://{ip}:{port}" for port in PORTS)
    backend = next(iter(load_inventory(lab.inventory_file).secret_backends))
    secrets_client(lab.load_state()["secrets_port"]).create_secret(
        Name=SECRET, SecretString=json.dumps({"a": f"{one}/v3/{KEY}", "d": f"http://{ip}:{PORTS[1]}/{KEY}"})
    )
    chains = [
        {"chain_id": 1337, "nodes": [{"name": "eth-a", "ws_url_secret": "rpc_a"},
                                     {"name": "eth-b", "ws_url": f"{one}/b", "http_url": f"http://{ip}:{PORTS[0]}"}]},
        {"chain_id": 1338, "nodes": [{"name": "side-c", "ws_url": f"{two}/c"},
                                     {"name": "side-d", "ws_url": f"{two}/d", "http_url_secret": "rpc_d"}]},
    ]  # fmt: skip

    def edit(doc: dict) -> None:
        service = doc["services"][SERVICE]
        service["variables"]["EVM_CHAINS"] = chains
        for name, key in (("rpc_a", "a"), ("rpc_d", "d")):
            service["secrets"][name] = {"backend": backend, "name": SECRET, "key": key}

    path = inventory_variant(lab.inventory_file, tmp_path / f"{NAME}.yaml", edit)
    run = fab("deploy", "--inventory", str(path), "--service", SERVICE, "--json", timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    with urllib.request.urlopen(load_inventory(path).services[SERVICE].load_balancer, timeout=5) as resp:
        body = json.load(resp)
    assert body["meta"]["evm_nodes"] == {
        "1337": ["eth-b ws http", "eth-a ws"],  # config.toml's nodes first, rpc.toml's merged in by ChainID and Name
        "1338": ["side-c ws", "side-d ws http"],
    }, body["meta"]
    passing = {c["id"] for c in body["data"] if c["attributes"]["status"] == "passing"}  # 200: every check passes
    assert {"EVM.1337.HeadTracker.HeadListener", "EVM.1338.HeadTracker.HeadListener"} <= passing, body["data"]
    node = load_inventory(path).services[SERVICE].active_preferred.name
    inspect = fab("exec", "--inventory", str(path), "--nodes", node, "--command", f"docker inspect nodeops-{SERVICE}")
    assert inspect.returncode == 0 and f"nodeops-{SERVICE}" in inspect.stdout
    assert KEY not in run.stdout + run.stderr + inspect.stdout
