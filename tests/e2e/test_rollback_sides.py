"""A rollback from either node of the pair, and the standby check behind it, on a one-pair lab of its own.

The bug: `fab rollback` failed at its handover ("cl1-a: not serving /health after 1s: container stopped (exit 1);
last log line: ... failed to read config file: /chainlink/config.toml: ... no such file or directory"), on a busy
machine, from one side of the pair and not the other. The node replaced first had been taken for a waiting standby
(running, silent, its pair's lease held by the active) before its process, still starting, had read its files; the
start files were shredded, and the process then failed to read them. A process connects to the lease database only
once it has read them, so that connection is now part of the evidence (plan.standby_evidence)."""

from __future__ import annotations

import shlex

import pytest

from nodeops.deploy import ServiceDeploy
from nodeops.edges.ssh import Fleet
from nodeops.errors import OperationFailed
from nodeops.inventory import load_inventory
from nodeops.job import prepare
from nodeops.run import awaits
from nodeops.run.report import Reporter
from tests.conftest import fab
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import events, status

pytestmark = pytest.mark.lab

NAME, CIDR = "rbk", "10.201.0.0/16"


@pytest.fixture(scope="module")
def rbk(root):
    with own_lab(NAME, CIDR, nodes=2, deployed=True) as lab:
        yield lab


def roles() -> dict[str, str]:
    return {n["node"]: n["role"] for n in status(NAME, "--service", "cl1")["cl1"]["nodes"]}


def test_a_container_whose_process_has_not_read_its_files_is_no_waiting_standby(rbk, monkeypatch):
    """The cause, made certain: on the standby's node, a container under the service's name whose process never
    gets to its files (the node's image, its entrypoint `sleep`: a node process still starting, as under load). It
    runs, answers nothing, and the active holds the lease: the old check took it for a waiting standby within
    STANDBY_STABLE, after which a run shreds the files it never read. It must not be taken for one: its process holds
    no connection to the lease database. Then a deploy puts a real standby back, recognised by the same check (its
    process does hold that connection, read from the real /proc socket tables on the node)."""
    (standby,) = [node for node, role in roles().items() if role == "standby"]
    image = next(n["image"] for n in status(NAME)["cl1"]["nodes"] if n["node"] == standby)
    sleeper = (f"docker stop nodeops-cl1 >/dev/null && docker rename nodeops-cl1 rbk-kept && "
               f"docker run -d --name nodeops-cl1 --entrypoint sleep {shlex.quote(image)} 600")  # fmt: skip
    res = fab("exec", "--env", NAME, "--nodes", standby, "--json", "--command", sleeper)
    assert res.returncode == 0, res.stdout + res.stderr
    monkeypatch.setattr(awaits, "WAIT_TIMEOUT", 8.0)
    inventory = load_inventory(rbk.inventory_file)
    [job] = prepare(inventory, ["cl1"])
    with Fleet(inventory) as fleet:
        run = ServiceDeploy(job, fleet, Reporter.silent())
        for node in job.service.nodes:
            run.connect(node)
        node = next(n for n in job.service.nodes if n.name == standby)
        with pytest.raises(OperationFailed, match="holds no connection to the lease database yet"):
            run.waits.await_waiting(node)
    monkeypatch.undo()
    kept = "docker rm -f nodeops-cl1 >/dev/null && docker rename rbk-kept nodeops-cl1"  # the standby, stopped
    assert fab("exec", "--env", NAME, "--nodes", standby, "--command", kept).returncode == 0
    again = fab("deploy", "--env", NAME, "--service", "cl1", "--json")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert any(e.get("message") == "waiting for the lease" and e["node"] == standby for e in events(again))
    assert roles()[standby] == "standby"


@pytest.mark.parametrize("first", ["cl1-a", "cl1-b"])
def test_rollback_succeeds_whichever_node_is_active_when_it_starts(rbk, first):
    """Deploy a change (LOG_LEVEL debug) from ``first`` active, so that the change ends with the other node active
    and the rollback replaces ``first`` first; the rollback then hands over to ``first``. Both sides, in one lab:
    the rollback succeeds, ``first`` serves, and both nodes run the configuration of before the change."""
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0
    if roles()[first] != "active":
        assert fab("promote-standby", "--env", NAME, "--service", "cl1").returncode == 0
    assert roles()[first] == "active"
    path = inventory_variant(rbk.inventory_file, rbk.inventory_file.with_name(f"{NAME}-debug.yaml"),
                             lambda doc: doc["services"]["cl1"]["variables"].update(LOG_LEVEL="debug"))  # fmt: skip
    try:
        assert fab("deploy", "--inventory", str(path), "--service", "cl1").returncode == 0
    finally:
        path.unlink()
    assert roles()[first] == "standby"
    back = fab("rollback", "--env", NAME, "--service", "cl1", "--json")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr
    replaced = [e["node"] for e in events(back) if e.get("message", "").startswith("replace ")]
    assert replaced == [first, next(n for n in roles() if n != first)], replaced
    after = status(NAME, "--service", "cl1")["cl1"]
    assert after["state"] == "healthy" and roles()[first] == "active", after
    assert len({n["config"] for n in after["nodes"]}) == 1 and all("@sha256:" in n["image"] for n in after["nodes"])
    end = next(e for e in events(back) if e.get("event") == "end")
    assert end["result"] == "ok" and end["results"][0]["variables"].get("LOG_LEVEL") is None, end
