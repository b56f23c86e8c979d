"""An RPC URL as a secret reference, on a lab of its own (issue 13, item 5): the node gets it, nothing shows it.

The URL carries a sentinel "API key". It comes from Secrets Manager (moto) in one deploy and from the env
backend in a dry run; neither the output, the audit log on the bastion, `docker inspect`, a process's argv
nor the operator's disk may hold it, while the node reports an RPC node with a websocket URL (the simulator
shows node names, never URLs, in /health).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from lab.aws import secrets_client
from lab.topology import plan_lab
from nodeops.inventory import load_inventory
from nodeops.secrets.env import env_variable_name
from tests.conftest import FAB, ROOT, fab
from tests.e2e.conftest import inventory_variant, own_lab, rpc_stand_ins
from tests.e2e.probe import Watch, events, files_on, on_the_operators_disk

pytestmark = pytest.mark.lab

NAME, CIDR = "rpc", "10.234.0.0/16"
# What a provider's API key looks like (URL-safe). Joined at run time, so this file does not hold it
# and the grep of the operator's disk below finds only real leaks.
KEY = "Rk7" + "rpcSentinel" + "0a1b2c3d4e5f"
PORT = 18545  # an RPC stand-in on the lab's db host: the node's head listener must reach it, or it answers 503
URL = f"ws://{plan_lab(NAME, CIDR, 4).db.private_ip}:{PORT}/v3/{KEY}"
SECRET = "cl2/RpcSecret"


@pytest.fixture(scope="module")
def rpc(root):
    with own_lab(NAME, CIDR) as lab, rpc_stand_ins(NAME, CIDR, 4, (PORT,)):
        yield lab


def with_rpc_secret(doc: dict, backend: str = "aws") -> None:
    """cl2 takes its websocket RPC URL from a secret reference; cl1 is left out of the run."""
    doc["services"]["cl2"]["secrets"]["eth_url"] = {"backend": backend, "name": SECRET, "key": "ws"}
    del doc["services"]["cl1"]


def leaks(text: str) -> bool:
    return KEY in text or KEY[:12] in text


def test_a_secret_rpc_url_reaches_the_node_and_nothing_else(rpc):
    since = time.time()
    backend = next(iter(load_inventory(rpc.inventory_file).secret_backends))
    client = secrets_client(rpc.load_state()["secrets_port"])
    client.create_secret(Name=SECRET, SecretString=json.dumps({"ws": URL}))
    path = inventory_variant(rpc.inventory_file, rpc.inventory_file.with_name(f"{NAME}-secret.yaml"),
                             lambda d: with_rpc_secret(d, backend))  # fmt: skip
    inv = load_inventory(path)
    nodes = [n.name for n in inv.services["cl2"].nodes]
    try:
        with Watch(rpc, nodes) as watch:
            run = fab("deploy", "--inventory", str(path), "--json", timeout=600)
        again = fab("deploy", "--inventory", str(path), "--json")  # unchanged: the URL is no reason to roll
        inspect = fab("exec", "--inventory", str(path), "--nodes", ",".join(nodes), "--command",
                      "docker inspect nodeops-cl2")  # fmt: skip
    finally:
        path.unlink()
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert again.returncode == 0 and events(again)[-1]["message"].endswith("0 changed, 1 unchanged"), again.stdout

    # the node has its RPC node, with a websocket URL, read from rpc.toml (a secret file, shredded once read)
    with urllib.request.urlopen(inv.services["cl2"].load_balancer, timeout=5) as resp:
        meta = json.load(resp)["meta"]
    assert meta["evm_nodes"] == {"1337": ["primary ws"]}, meta
    assert all("rpc.toml" not in files_on(rpc, node, "cl2") for node in nodes)
    # the control: the sampler saw the run's processes (docker run, the uploads), so "no argv held it" means something
    assert any("docker run" in argv and "nodeops-cl2" in argv for argv in watch.argvs), "the sampler saw no docker run"
    assert not any(leaks(argv) for argv in watch.argvs), "the RPC key was in a process argument list"

    # nowhere to be seen: deploy's JSON, its audit record (variables), the audit file on the bastion, docker inspect
    assert not leaks(out) and not leaks(again.stdout + again.stderr)
    end = [e for e in events(run) if e["event"] == "end"]
    recorded = [r["variables"] for e in end for r in e["results"]]  # the secret is named by its version id only
    assert end and recorded and all("eth_url" not in v and "ETH_URL" not in v for v in recorded), end
    assert not leaks(json.dumps(end))
    audit = fab("audit", "--env", NAME, "--json", "--steps", "--lines", "1000")
    assert audit.returncode == 0 and "cl2" in audit.stdout and not leaks(audit.stdout)
    stored = list(Path(f"/proc/{rpc.sshd_pid_of('bastion')}/root").glob(f"root/.nodeops/{NAME}/audit.jsonl"))
    assert stored and all(not leaks(p.read_text()) for p in stored), stored
    assert inspect.returncode == 0 and "nodeops-cl2" in inspect.stdout and not leaks(inspect.stdout)
    written = on_the_operators_disk([KEY], since, rpc.dir)
    assert written == [], f"the RPC key reached the operator's disk: {written}"


def test_dry_run_with_the_url_from_the_env_backend_prints_no_url(rpc):
    environ = {**os.environ, env_variable_name("NODEOPS_", SECRET, "ws"): URL}

    def from_env(doc: dict) -> None:
        doc["secret_backends"]["ci"] = {"kind": "env", "prefix": "NODEOPS_"}
        with_rpc_secret(doc, "ci")

    path = inventory_variant(rpc.inventory_file, rpc.inventory_file.with_name(f"{NAME}-env.yaml"), from_env)
    try:
        # the running nodes recorded the URL's Secrets Manager version, which the env backend cannot read again:
        # restoring them exactly is impossible, and that is accepted here
        dry = subprocess.run([str(FAB), "deploy", "--inventory", str(path), "--allow-inexact-restore",
                              "--dry-run", "--json"], cwd=ROOT, capture_output=True, text=True, env=environ,
                             timeout=300)  # fmt: skip
    finally:
        path.unlink()
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run: 1 service(s)" in events(dry)[-1]["message"]
    assert not leaks(dry.stdout + dry.stderr)
