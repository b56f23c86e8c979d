"""Issue 16, "unplanned": the producer cut off from the bastion (it keeps forging to the chain), then `fab
promote-standby --force` promotes the standby with a new KES key and operational certificate, issue counter one
past the lost producer's; the chain refuses the lost producer's blocks from then on (``CounterTooSmallOCERT``).

The cut: in the producer's own network namespace, an nftables table dropping every packet from and to the bastion's
private address (its SSH, the only way nodeops reaches a node): the producer keeps its link to the lab's switch, so
it still syncs from and sends its blocks to the chain service, and the relays still reach it. Restored in a finally.
The producer is first given a fresh certificate (`fab rotate-secrets --secret kes`: a lab certificate lasts 60 s),
so it still forges when the promotion ends. On the pool lab (tests/e2e/pool_lab.py), last (POOL_LAB_MODULES says
why): its pool deployed by a module before (or this one's fixture, run alone); the producer cut off is the one that
holds the hot keys when it starts (its container's hot label: a module before may have promoted the other).

The second test (review rev16c F3): a forced promotion whose testSecret fails (the new holder's link to the chain
service cut the same way while it runs) is completed by the one command its message, status and check name."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import pytest

from lab.aws import secrets_client
from lab.host import Lab
from lab.pool import HOT_SECRET
from nodeops.roles import role_module
from tests.conftest import FAB, ROOT, end_process, fab
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


def cut_from_bastion(netns: str, address: str = "", table: str = CUT_TABLE) -> None:
    """Drop every packet between ``netns``'s host and the bastion's private address (or ``address``: its containers'
    too, forwarded from their bridge), in that host's namespace, as nftables table ``table``."""
    peer = address or PLAN.bastion.private_ip
    forwarded = (f"  chain through {{ type filter hook forward priority 0; ip saddr {peer} drop; ip daddr {peer} "
                 "drop; }\n") if address else ""  # fmt: skip
    nft(netns, f"table inet {table} {{\n"
               f"  chain in {{ type filter hook input priority 0; ip saddr {peer} drop; }}\n"
               f"  chain out {{ type filter hook output priority 0; ip daddr {peer} drop; }}\n"
               f"{forwarded}}}\n")  # fmt: skip


def restore_cut(netns: str, table: str = CUT_TABLE) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", table], check=False)


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


CHAIN_CUT = "nodeops_test_chain_cut"  # the new holder's link to the chain service, cut while its testSecret runs
FORCED = f"fab promote-standby --env {NAME} --service pool --force"  # the one command a forced run's version takes


def status_of() -> dict:
    res = fab("status", "--env", NAME, "--service", "pool", "--json", timeout=300)
    (entry,) = [e for e in map(json.loads, res.stdout.splitlines()) if e.get("event") == "status"]
    return entry


def check_of() -> list[dict]:
    res = fab("check", "--env", NAME, "--service", "pool", "--json", timeout=300)
    return [e for e in map(json.loads, res.stdout.splitlines()) if e.get("event") == "check"]


def one_holder() -> None:
    """The pool with one holder, as an operator leaves it after a lost producer came back with its keys (status's
    ``holders`` line): the other producers' containers stopped, then a deploy restarts them without keys."""
    keep = status_of().get("holders", "")
    if not keep.startswith("keep "):
        return
    kept = keep.split()[1].rstrip(",")
    for node in set(PRODUCERS) - {kept}:
        fab("exec", "--env", NAME, "--nodes", node, "--command", "docker stop nodeops-pool", timeout=120)
    res = fab("deploy", "--env", NAME, "--service", "pool", "--json", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr


def forced_run_cut_at_create(netns: str) -> tuple[int, list[dict]]:
    """`fab promote-standby --force --yes --json` whose new holder (``netns``'s host) is cut from the chain service
    once its createSecret line is out (the chain queried already): its restart with the keys works, its testSecret
    cannot see the chain take the certificate (the lab's cardano-cli query times out, 5 s). (exit code, events)."""
    argv = [str(FAB), "promote-standby", "--env", NAME, "--service", "pool", "--force", "--yes", "--json"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    watchdog = threading.Timer(300, end_process, (proc,))
    watchdog.start()
    events = []
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1].get("step") == "createSecret" and not any(e.get("cut") for e in events):
                cut_from_bastion(netns, PLAN.chain.private_ip, CHAIN_CUT)
                events[-1]["cut"] = True
        return proc.wait(), events
    finally:
        watchdog.cancel()


def test_a_forced_promotion_whose_test_fails_is_completed_by_the_one_command_every_message_names(pool_lab, figures):
    """Review rev16c F3: a forced promotion whose testSecret failed said to run rotate-secrets (refused: the pending
    version is the forced promotion's), and promote-standby --force, which status and check named, was refused (the
    new holder carrying the hot label, the cut-off producer read as the standby to promote); once the lost producer
    was back, status said to keep it. The failure here: the new holder's link to the chain cut during the run (its
    testSecret sees no chain take the certificate), not a certificate running out. Then its link back, the one
    command every message names completes it (the lost producer still cut off): one certificate in force, counter +1
    on chain, the new holder forging; the lost producer back is to be stopped and deployed as the standby, never
    kept; after that, healthy."""
    one_holder()  # the test before leaves the producer it cut off back with its refused keys
    fresh = fab("rotate-secrets", "--env", NAME, "--service", "pool", "--secret", "kes", "--json", timeout=300)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    ((holder, (lost, _)),) = [(node, seen) for node, seen in hostnames().items() if seen[1]]
    (standby,) = set(PRODUCERS) - {holder}
    before = counter_on_chain(pool_lab)
    cut, chain_cut = PRODUCERS[holder].netns, PRODUCERS[standby].netns
    try:
        cut_from_bastion(cut)
        started = time.monotonic()
        code, events = forced_run_cut_at_create(chain_cut)
        failed = time.monotonic() - started
        (end,) = [e for e in events if e.get("event") == "end"]
        assert code == 1 and any(e.get("cut") for e in events), events
        assert FORCED in end["error"] and "rotate-secrets" not in end["error"], end["error"]
        restore_cut(chain_cut, CHAIN_CUT)  # its link back (the lost producer stays cut off)
        seen = status_of()
        assert seen["rotation"]["finish"] == FORCED and "holders" not in seen, seen
        named = [f["reason"] for f in check_of() if not f["ok"] and " fab " in f" {f['reason']}"]
        assert named and all("rotate-secrets" not in d for d in named), named
        assert any(FORCED in d for d in named), named
        dry = fab("deploy", "--env", NAME, "--service", "pool", "--dry-run", timeout=300)  # it would undo the fence
        told = dry.stdout + dry.stderr
        assert dry.returncode == 4 and f"{FORCED} completes it first" in told, told
        started = time.monotonic()
        res = fab("promote-standby", "--env", NAME, "--service", "pool", "--force", "--yes", "--json", timeout=300)
        took = time.monotonic() - started
        assert res.returncode == 0, res.stdout + res.stderr
        said = [json.loads(line).get("message", "") for line in res.stdout.splitlines()]
        (resume,) = {w for m in said if m.startswith("createSecret") for w in re.findall(r"resume (\w+)", m)}
        assert [m for m in said if m.startswith(f"pool: {holder} was not touched and must never come back")], said
        new, hot = hostnames(standby)[standby]
        assert hot and counter_on_chain(pool_lab) == before + 1
        adopted = wait_for(lambda: adopted_from(new, 0), "a block of the new holder adopted", 30)
        assert all(b["counter"] == before + 1 for b in adopted)
        stages = secrets_client(state(pool_lab)["secrets_port"]).describe_secret(SecretId=HOT_SECRET)
        assert not [v for v, s in stages["VersionIdsToStages"].items() if "AWSPENDING" in s]
        assert envelope.read_certificate(pool_keys(pool_lab)["op_cert"], "op_cert").counter == before + 1
        restore_cut(cut)  # the lost producer back, with its keys
        back = wait_for(lambda: status_of().get("holders"), "status naming the holder to keep", 60)
        assert back.startswith(f"keep {standby}, which runs the current hot keys") and f"keep {holder}" not in back
        assert f"{holder} runs superseded ones" in back and "restarts it without them as the standby" in back, back
        one_holder()  # as the line says: the lost producer stopped, then deployed as the standby
        after = status_of()
        roles = {n["node"]: n["role"] for n in after["nodes"]}
        assert after["state"] == "healthy" and after["rotation"] is None, after
        assert (roles[standby], roles[holder]) == ("active", "standby"), roles
        figures(f"forced promotion whose test failed (the new holder's chain link cut): exit 1 after {failed:.1f} s, "
                f"naming {FORCED}; that command then {took:.1f} s (resume {resume}), exit 0: chain counter {before} -> "
                f"{before + 1}, "
                f"{len(adopted)} blocks of the new holder adopted with it; the lost producer back read as superseded, "
                "stopped and deployed as the standby: healthy")  # fmt: skip
    finally:
        restore_cut(chain_cut, CHAIN_CUT)
        restore_cut(cut)
