"""Issue 16, "unplanned": the producer cut off from the bastion (it keeps forging to the chain), then `fab
promote-standby --force` promotes the standby with a new KES key and operational certificate, issue counter one
past the lost producer's; the chain refuses the lost producer's blocks from then on (``CounterTooSmallOCERT``).

The cut: in the producer's own network namespace, an nftables table dropping every packet from and to the bastion's
private address (its SSH, the only way nodeops reaches a node): the producer keeps its link to the lab's switch, so
it still syncs from and sends its blocks to the chain service, and the relays still reach it. Restored in a finally.
The producer is first given a fresh certificate (`fab rotate-secrets --secret kes`: a lab certificate lasts 60 s),
so it still forges when the promotion ends. On the pool lab (tests/e2e/pool_lab.py), last (POOL_LAB_MODULES says
why): its pool deployed by a module before (or this one's fixture, run alone); the producer cut off is the one that
holds the hot keys when it starts (its container's hot label: a module before may have promoted the other)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from lab.aws import secrets_client
from lab.host import Lab
from lab.pool import HOT_SECRET
from nodeops.roles import role_module
from tests.conftest import fab
from tests.e2e.pool_keys import pool_keys, state
from tests.e2e.pool_lab import NAME, PLAN, chain_get, deployed
from tests.e2e.probe import wait_for

pytestmark = pytest.mark.lab

PRODUCERS = {h.name: h for h in PLAN.pool if h.node_kind == "producer"}
CUT_TABLE = "nodeops_test_cut"  # the nftables table of the cut, in the lost producer's namespace
envelope = role_module("cardano", "envelope")


@pytest.fixture(scope="module")
def pool_lab(pools):
    """The pool lab, its pool deployed (at once after lab.up when this module runs alone)."""
    deployed(pools)
    return pools.lab


def counter_on_chain(lab: Lab) -> int | None:
    return chain_get("/pools")[state(lab)["pool"]["pool_id"]]["counter"]


def hostnames(*nodes: str) -> dict[str, tuple[str, bool]]:
    """Each of ``nodes``' container (each producer's by default): its host name, the sender the chain records for
    its blocks (a restarted container has a new one), and whether it holds the hot keys (its hot label)."""
    res = fab("exec", "--env", NAME, "--json", "--nodes", ",".join(nodes or PRODUCERS), "--command",
              "docker inspect -f '{{.Config.Hostname}} {{index .Config.Labels \"io.nodeops.hot\"}}' "
              "nodeops-pool")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    shown = {e["node"]: e["stdout"].split() for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "host"}
    return {node: (words[0], words[1:] == ["true"]) for node, words in shown.items()}


def nft(netns: str, script: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=script, text=True, check=True)


def cut_from_bastion(netns: str) -> None:
    """Drop every packet between ``netns``'s host and the bastion's private address, in that host's namespace."""
    bastion = PLAN.bastion.private_ip
    nft(netns, f"table inet {CUT_TABLE} {{\n"
               f"  chain in {{ type filter hook input priority 0; ip saddr {bastion} drop; }}\n"
               f"  chain out {{ type filter hook output priority 0; ip daddr {bastion} drop; }}\n"
               "}\n")  # fmt: skip


def restore_cut(netns: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", CUT_TABLE], check=False)


def adopted_from(sender: str, after: int) -> list[dict]:
    return [b for b in chain_get("/blocks")["forged"] if b["node"] == sender and b["adopted"] and b["slot"] > after]


def test_force_promotes_the_standby_and_the_chain_refuses_the_lost_producers_blocks(pool_lab, figures):
    fresh = fab("rotate-secrets", "--env", NAME, "--service", "pool", "--secret", "kes", "--json", timeout=300)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr  # a fresh 60 s certificate for the producer
    running = hostnames()  # the containers running now (the rotation restarted the producer's)
    ((holder, (lost, _)),) = [(node, seen) for node, seen in running.items() if seen[1]]  # the one with the keys
    (standby,) = set(PRODUCERS) - {holder}
    before = counter_on_chain(pool_lab)
    netns = PRODUCERS[holder].netns
    try:
        cut_from_bastion(netns)
        cut_at = chain_get("/tip")["currentSlot"]
        wait_for(lambda: adopted_from(lost, cut_at), "a block of the cut-off producer adopted", 30)  # it forges on
        started, from_slot = time.monotonic(), chain_get("/tip")["currentSlot"]
        res = fab("promote-standby", "--env", NAME, "--service", "pool", "--force", "--yes", "--json", timeout=300)
        took = time.monotonic() - started
        assert res.returncode == 0, res.stdout + res.stderr
        events = [json.loads(line) for line in res.stdout.splitlines()]
        (end,) = [e for e in events if e.get("event") == "end"]
        (result,) = end["results"]
        assert result["active"] == standby
        said = [e["message"] for e in events if e.get("event") == "step"]
        told = [m for m in said if "must never come back with its hot keys" in m]
        assert len(told) == 1 and told[0].startswith(f"pool: {holder} was not touched"), said
        new, _ = hostnames(standby)[standby]  # restarted with the keys: a new container
        assert counter_on_chain(pool_lab) == before + 1  # the chain's counter: one past the lost producer's
        first_new = min(b["slot"] for b in wait_for(lambda: adopted_from(new, cut_at), "the new producer's block", 30))
        assert all(b["counter"] == before + 1 for b in adopted_from(new, cut_at))

        def refused() -> list[dict]:
            return [b for b in chain_get("/blocks")["rejected"] if b["node"] == lost and b["slot"] >= first_new
                    and any("CounterTooSmallOCERT" in r for r in b["reasons"])]  # fmt: skip

        first_refused = min(b["slot"] for b in wait_for(refused, "a block of the lost producer refused", 30))
        blocks = chain_get("/blocks")
        assert not [b for b in blocks["forged"] if b["node"] == lost and b["slot"] >= first_new]  # never valid again
        slots = [b["slot"] for b in blocks["forged"] if b["adopted"]]
        assert len(slots) == len(set(slots))  # no slot with two adopted blocks
        # Two valid blocks of the pool in one slot (the lost producer's, adopted, and the new one's, not) until the
        # new certificate's first block is on chain: the chain's fence refuses the lost producer only from then on.
        same_slot = [d["slot"] for d in chain_get("/duplicates")]
        assert all(slot < first_new for slot in same_slot), (same_slot, first_new)
        keys = pool_keys(pool_lab)
        following = envelope.read_issue_counter(keys["counter"], "counter").next
        cert = envelope.read_certificate(keys["op_cert"], "op_cert")
        stages = secrets_client(state(pool_lab)["secrets_port"]).describe_secret(SecretId=HOT_SECRET)
        assert (cert.counter, following) == (before + 1, before + 2)  # the store moved on: the next rotation's base
        assert not [v for v, s in stages["VersionIdsToStages"].items() if "AWSPENDING" in s]
        figures(f"promote-standby --force {took:.1f} s; chain counter {before} -> {before + 1}; the new producer's "
                f"first block {first_new - from_slot} slots after the command started, the lost producer's first "
                f"refused block {first_refused - from_slot} slots after it ({len(refused())} refused, "
                f"CounterTooSmallOCERT, none valid); slots with two valid blocks of the pool, all before the new "
                f"producer's first: {same_slot}")  # fmt: skip
    finally:
        restore_cut(netns)
