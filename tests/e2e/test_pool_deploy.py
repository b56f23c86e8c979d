"""Issue 16's "Deploy from nothing": `fab deploy --service pool` on a lab brought up with `--pool` and deployed at once
(the lab's first hot certificate lasts 60 s from the chain's start). The relays serve, the producer forges (the chain
adopts its blocks), the standby is synced and does not forge; no hot file is left on any node's tmpfs; the cold key
and the hot keys' bytes are in no file of the lab (every node's disk and the operator's), no container's argv or env
and no output; `fab status` reads the pool healthy, not mixed (each node against its own files), each node's kind
and role right; `fab check` passes; a second deploy changes nothing; `fab rollback` after an upgrade puts each node
back on its own files, and after an upgrade and a KES rotation keeps the rotated keys (review rev16b finding 4). The
first module of the pool lab (tests/e2e/pool_lab.py): it deploys the pool, at once after lab.up, and the modules after
it find it deployed; the tests run in order (the chain's clock does not wait)."""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from pathlib import Path

import pytest

from nodeops.roles import role_module
from nodeops.status import uptime
from tests.conftest import fab
from tests.e2e.conftest import inventory_variant
from tests.e2e.pool_keys import leaks, pool_keys, sentinels, state
from tests.e2e.pool_lab import NAME, PLAN, chain_get, fresh_certificate, holder_facts
from tests.e2e.probe import events, status_entries, wait_for

pytestmark = pytest.mark.lab

SERVICE, CONTAINER = "pool", "nodeops-pool"
RELAYS = [h.name for h in PLAN.pool if h.node_kind == "relay"]
PRODUCER = next(h.name for h in PLAN.pool if h.preferred == "active")
STANDBY = next(h.name for h in PLAN.pool if h.preferred == "standby")
KEY_FLAGS = ("--shelley-kes-key", "--shelley-vrf-key", "--shelley-operational-certificate")
kesinfo = role_module("cardano", "kesinfo")
OUTPUT: list[tuple[str, bytes]] = []  # every fab run's stdout and stderr: no key may be in any


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`fab ARGS`, its output kept for the search for keys."""
    res = fab(*args, timeout=timeout)
    OUTPUT.append((f"fab {' '.join(args)}", (res.stdout + res.stderr).encode()))
    return res


DIGEST = """
import sys, urllib.request
accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
ask = urllib.request.Request(sys.argv[1], method="HEAD", headers={"Accept": accept})
print(urllib.request.urlopen(ask, timeout=5).headers["Docker-Content-Digest"])
"""


def pinned(ref: str) -> str:
    """``ref`` pinned to the digest its tag has now in the lab's registry: the registry's storage is shared by
    every lab on the machine, and another checkout's lab.up may push another image under the same tag meanwhile."""
    registry, _, rest = ref.partition("/")
    repository, _, tag = rest.rpartition(":")
    url = f"http://{registry}/v2/{repository}/manifests/{tag}"
    proc = subprocess.run(["nsenter", f"--net=/run/netns/{PLAN.pool[0].netns}", "--", "python3", "-c", DIGEST, url],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("sha256:"), proc.stderr
    return f"{ref}@{proc.stdout.strip()}"


@pytest.fixture(scope="module")
def deployed(pools, tmp_path_factory):
    """The pool lab with its pool deployed at once, by this module (the first of the pool lab: none before it
    deployed), from an inventory that pins the image's digest (pinned): (the lab, that inventory, the deploy's run,
    its wall seconds), the deploy recorded in ``pools.deploys`` when it passed (the modules after it find the pool
    deployed). The lab's first hot certificate lasts 60 s from its issue, the last thing lab.up does, so the deploy
    follows it at once. At the module's end the pool is deployed again from the lab's own inventory, which names the
    image by its tag: the modules after this one deploy from it, and would otherwise see every node's image
    reference change (``10.4.1@sha256:...`` -> ``10.4.1``) and restart all four (CI saw it)."""
    assert pools.deploys == [], "test_pool_deploy deploys from nothing: first in POOL_LAB_MODULES"
    OUTPUT.append(("fab lab.up --pool", pools.up.encode()))
    lab = pools.lab
    image = pinned(state(lab)["pool"]["images"][0])

    def pin(doc: dict) -> None:
        doc["services"][SERVICE]["image"] = image

    path = inventory_variant(lab.inventory_file, tmp_path_factory.mktemp(NAME) / "pinned.yaml", pin)
    started = time.monotonic()
    deploy = run("deploy", "--inventory", str(path), "--service", SERVICE, "--json", timeout=300)
    seconds = time.monotonic() - started
    if deploy.returncode == 0:
        pools.deploys.append(seconds)
    yield lab, path, deploy, seconds
    if deploy.returncode == 0:
        again = run("deploy", "--env", NAME, "--service", SERVICE, "--json", timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr


def inspected() -> dict[str, dict]:
    """Each pool node's container, as `docker inspect` shows it, read through `fab exec`."""
    res = run("exec", "--env", NAME, "--json", "--nodes", ",".join(h.name for h in PLAN.pool), "--command",
              f"docker inspect --format '{{{{json .}}}}' {CONTAINER}")  # fmt: skip
    found = {e["node"]: json.loads(e["stdout"]) for e in events(res) if e["event"] == "host"}
    assert set(found) == {h.name for h in PLAN.pool}, res.stdout + res.stderr
    return found


def label(doc: dict, key: str) -> str | None:
    return (doc["Config"].get("Labels") or {}).get(f"io.nodeops.{key}")


def pool_status(path: Path) -> dict:
    return status_entries(run("status", "--inventory", str(path), "--service", SERVICE, "--json"))[SERVICE]


def upgraded(lab, pinned_inventory: Path, path: Path) -> Path:
    """``pinned_inventory`` with the lab's second image (its tag pinned as ``pinned`` does), written to ``path``."""
    newer = pinned(state(lab)["pool"]["images"][1])

    def upgrade(doc: dict) -> None:
        doc["services"][SERVICE]["image"] = newer

    return inventory_variant(pinned_inventory, path, upgrade)


def test_the_pool_deploys_from_nothing_and_status_reads_each_node_under_its_kind(deployed, figures):
    _lab, path, deploy, seconds = deployed
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    figures(f"deploy from nothing: {seconds:.1f} s wall")
    steps = [e["message"] for e in events(deploy) if e["event"] == "step" and e["message"].startswith("plan:")]
    assert steps, deploy.stdout
    entry = pool_status(path)
    assert (entry["state"], entry["mixed"]) == ("healthy", None), entry  # each node against its own files
    assert [(n["node"], n["kind"], n["role"]) for n in entry["nodes"]] == [
        (h.name, h.node_kind, "serving" if h.node_kind == "relay" else
         "active" if h.name == PRODUCER else "standby") for h in PLAN.pool]  # fmt: skip
    configs = {n["node"]: n["config"] for n in entry["nodes"]}
    assert configs[RELAYS[0]] != configs[RELAYS[1]] and configs[PRODUCER] != configs[STANDBY]  # its hot versions


def test_check_passes(deployed, tmp_path, figures):
    """Every check of the pool passes (this shared machine's load aside), but one the lab's clock forces: once its
    first certificate has run out (60 s after the chain's start; KES rotation renews it), the producer says it
    cannot evolve its KES key at Error in its log (ForgeStateUpdateError), which the log check counts, rightly."""

    def shared_machine(doc: dict) -> None:
        doc["check"] = {"load_max_per_cpu": 1000}  # this shared 2-core machine's load is not what is checked here

    path = inventory_variant(deployed[1], tmp_path / "check.yaml", shared_machine)
    res = run("check", "--inventory", str(path), "--service", SERVICE, "--json")
    found = [e for e in events(res) if e["event"] == "check"]
    failed = [(e["node"], e["check"]) for e in found if e["result"] == "fail"]
    expired = [e for e in found if (e["node"], e["check"]) == (PRODUCER, "logs")
               and "ForgeStateUpdateError" in e["reason"]]  # fmt: skip
    figures(f"fab check: exit {res.returncode}, {len(found)} checks, failed: {failed or 'none'}")
    assert failed == [] or (failed == [(PRODUCER, "logs")] and expired), res.stdout + res.stderr
    assert {e["check"] for e in found} >= {"serving:relay", "active:producer", "drift", "standby"}
    assert all(e["result"] == "pass" for e in found if e["check"] in ("serving:relay", "active:producer", "drift"))


def test_the_producer_forges_and_the_chain_adopts_its_blocks(deployed, figures):
    pool = state(deployed[0])["pool"]
    first = wait_for(lambda: next((b for b in chain_get("/blocks")["forged"] if b["adopted"]), None),
                     "a block of the pool adopted by the chain", 30)  # fmt: skip
    blocks, docs = chain_get("/blocks"), inspected()
    senders = {docs[node]["Config"]["Hostname"]: node for node in docs}  # a block's sender: its container's hostname
    assert {senders.get(b["node"], b["node"]) for b in blocks["forged"]} == {PRODUCER}  # nobody else forges
    assert blocks["rejected"] == [] and chain_get("/duplicates") == []
    started = docs[PRODUCER]["State"]["StartedAt"]
    system_start = datetime.datetime.fromisoformat(pool["system_start"].replace("Z", "+00:00"))
    slot_length = json.loads(Path(pool["genesis"]).read_text())["slotLength"]
    at = system_start + datetime.timedelta(seconds=first["slot"] * slot_length)
    figures(f"first adopted block {uptime(started, at):.1f} s after the producer started (slot {first['slot']}); "
            f"{sum(b['adopted'] for b in blocks['forged'])} of {len(blocks['forged'])} forged adopted")  # fmt: skip


def test_the_standby_is_synced_and_does_not_forge_and_no_hot_file_is_left(deployed):
    tip = chain_get("/tip")
    facts = {node: holder_facts(node) for node in (*RELAYS, PRODUCER, STANDBY)}
    assert {node: f.forging for node, f in facts.items()} == {**dict.fromkeys(facts, False), PRODUCER: True}
    assert facts[STANDBY].slot is not None and tip["slot"] - facts[STANDBY].slot <= 25  # 5 s of 0.2 s slots
    docs = inspected()
    for node, doc in docs.items():
        argv = [doc["Path"], *doc["Args"]]
        held = node == PRODUCER
        assert all((flag in argv) is held for flag in KEY_FLAGS), (node, argv)
        assert (label(doc, "hot") == "true") is held, node
    res = run("exec", "--env", NAME, "--json", "--nodes", ",".join(h.name for h in PLAN.pool), "--command",
              "find /run/nodeops -type f")  # fmt: skip
    left = {e["node"]: e["stdout"].split() for e in events(res) if e["event"] == "host"}
    assert left == {h.name: [] for h in PLAN.pool}  # every file shredded once read, the hot keys too


def test_a_second_deploy_changes_nothing(deployed):
    before = {node: doc["Id"] for node, doc in inspected().items()}
    again = run("deploy", "--inventory", str(deployed[1]), "--service", SERVICE, "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    (end,) = [e for e in events(again) if e["event"] == "end"]
    assert [r["changed"] for r in end["results"]] == [False], again.stdout
    assert {node: doc["Id"] for node, doc in inspected().items()} == before


def test_rollback_after_an_upgrade_puts_each_node_back_on_its_own_files(deployed, tmp_path):
    lab, pinned_inventory = deployed[0], deployed[1]
    # the pool reads healthy at the end only while its certificate lasts: the lab's first runs out 60 s after
    # lab.up, which this test's status came after on a busy machine (degraded: no KES period left)
    fresh_certificate(20, "--inventory", str(pinned_inventory))
    first = {node: json.loads(label(doc, "files")) for node, doc in inspected().items()}
    path = upgraded(lab, pinned_inventory, tmp_path / "upgrade.yaml")
    up = run("deploy", "--inventory", str(path), "--service", SERVICE, "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    assert {label(doc, "version") for doc in inspected().values()} == {"10.5.1"}
    back = run("rollback", "--inventory", str(pinned_inventory), "--service", SERVICE, "--json")
    assert back.returncode == 0, back.stdout + back.stderr
    docs = inspected()
    assert {label(doc, "version") for doc in docs.values()} == {"10.4.1"}
    assert {node: json.loads(label(doc, "files")) for node, doc in docs.items()} == first  # each its own
    assert first[RELAYS[0]]["topology.json"] != first[RELAYS[1]]["topology.json"]
    entry = pool_status(pinned_inventory)
    assert (entry["state"], entry["mixed"]) == ("healthy", None), entry


def test_rollback_after_an_upgrade_and_a_kes_rotation_keeps_the_rotated_keys_and_the_pool_forges(deployed, tmp_path,
                                                                                                 figures):  # fmt: skip
    """Review rev16b finding 4: deploy of the lab's second image, `fab rotate-secrets --secret kes`, then `fab
    rollback`: it was refused (exit 2, "its relay nodes run 10.5.1 config X, its producer nodes run 10.5.1 config Y:
    there is no one version to roll back from") while every node ran one image, for the holder's label had moved with
    its hot versions. Now: exit 0, every node back on the first image, the holder on the rotated hot keys (its
    secrets label as after the rotation, the chain's counter unchanged: never an older certificate), the chain adopts
    its blocks after it and rejects none; `--to` that version then changes nothing."""
    lab, pinned_inventory = deployed[0], deployed[1]
    path = upgraded(lab, pinned_inventory, tmp_path / "upgrade.yaml")
    up = run("deploy", "--inventory", str(path), "--service", SERVICE, "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    pool_id = state(lab)["pool"]["pool_id"]
    counter = chain_get("/pools")[pool_id]["counter"] + 1  # the rotated certificate's
    rotated = run("rotate-secrets", "--inventory", str(path), "--service", SERVICE, "--secret", "kes", "--json")
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    wait_for(lambda: chain_get("/pools")[pool_id]["counter"] == counter, "the rotated certificate's block", 30)
    keys = {node: json.loads(label(doc, "secrets")) for node, doc in inspected().items() if label(doc, "hot")}
    assert list(keys) == [PRODUCER]
    slot_before = chain_get("/tip")["slot"]
    started = time.monotonic()
    back = run("rollback", "--inventory", str(path), "--service", SERVICE, "--yes", "--json", timeout=600)
    seconds = time.monotonic() - started
    assert back.returncode == 0, back.stdout + back.stderr
    docs = inspected()
    assert {label(doc, "version") for doc in docs.values()} == {"10.4.1"}
    assert {node: json.loads(label(doc, "secrets")) for node, doc in docs.items() if label(doc, "hot")} == keys
    (result,) = [r for e in events(back) if e["event"] == "end" for r in e["results"]]
    gaps = "; ".join(f"{g['how']} {g['node']}: {g['seconds']} s ({g.get('chain_units')})"
                     for g in result.get("keys_gaps") or [])  # fmt: skip
    expired = not holder_facts(PRODUCER).remaining  # the lab certificate's 60 s ran out on a busy machine
    sender = docs[PRODUCER]["Config"]["Hostname"]

    def ours(adopted: bool) -> list[dict]:
        return [b for b in chain_get("/blocks")["forged"]
                if b["node"] == sender and b["slot"] > slot_before and b["adopted"] is adopted]  # fmt: skip

    forged = "the certificate ran out during it (no block looked for)"
    if not expired:
        first = wait_for(lambda: ours(True), "a block of the holder adopted after the rollback", 30)[0]
        assert first["counter"] == counter  # the rotated certificate, not an older one
        adopted = [b["slot"] for b in chain_get("/blocks")["forged"] if b["adopted"] and b["slot"] < first["slot"]]
        forged = (f"first adopted block of the holder at slot {first['slot']} ({first['slot'] - slot_before} slots "
                  f"after the rollback began), {first['slot'] - max(adopted, default=slot_before) - 1} slots without "
                  f"an adopted block before it, counter {counter}")  # fmt: skip
    assert chain_get("/pools")[pool_id]["counter"] == counter
    # the ledger refuses none of its blocks (an older certificate, a KES period out of its window) and no slot has two;
    # a block forged on a tip the restarted node had not synced yet is valid and only not adopted (NotOnTip: a fork
    # the chain settles, as a real node's can be): counted, not refused (CI: one such block in slot 386)
    refused = [b for b in chain_get("/blocks")["rejected"] if b["node"] == sender and b["slot"] > slot_before]
    assert refused == [] and [d for d in chain_get("/duplicates") if d["slot"] >= slot_before] == [], refused
    figures(
        f"rollback after an upgrade and a KES rotation: {seconds:.1f} s wall, exit 0; {gaps or 'no gap'}; "
        f"{forged}; {len(ours(False))} of its blocks on a tip it had not synced yet, not adopted"
    )
    again = run("rollback", "--inventory", str(path), "--service", SERVICE, "--to", "10.4.1", "--yes", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    (result,) = [r for e in events(again) if e["event"] == "end" for r in e["results"]]
    assert (result["changed"], result.get("already_at")) == (False, "10.4.1"), again.stdout


def test_no_key_is_in_any_file_argv_env_or_output(deployed):
    """The cold key (and the counter, never read by a deploy) and the hot keys' bytes: in no file of the lab (each
    node's disk: its /root, /tmp, container storage and volumes; the operator's), no container's argv or env, no
    output of any fab run of this module."""
    lab = deployed[0]
    found = sentinels(pool_keys(lab))
    places: list[Path | tuple[str, bytes]] = [p for p in lab.dir.rglob("*") if p.is_file() and not p.is_symlink()]
    places += [lab.inventory_file, deployed[1], *OUTPUT]
    for node, doc in inspected().items():
        places.append((f"{node} argv and env", json.dumps([doc["Path"], doc["Args"], doc["Config"]["Env"]]).encode()))
    assert len(places) > 20
    assert leaks(places, found) == []


def test_an_upgrade_via_the_standby_hands_the_keys_over_and_back_and_reports_both_gaps_in_slots(deployed, tmp_path,
                                                                                              figures):  # fmt: skip
    """Issue 16: `fab deploy --via-standby` of the producers' new image (the lab's second tag): its --dry-run plan
    shows the handover and the hand back; the standby upgraded first, the hot keys handed to it (fence first) and
    back, so the preferred producer holds them at the end and forges (the chain adopts its blocks); no slot has two
    blocks; the result reports both gaps in seconds and slots. Then a plain deploy back restarts the producer in
    place and reports its one gap in slots. A rotation just before (a lab certificate lasts 60 s), and one after
    when the upgrade took longer than that on a busy machine (the holder's metrics say no period is left)."""
    lab, pinned_inventory = deployed[0], deployed[1]
    path = upgraded(lab, pinned_inventory, tmp_path / "via.yaml")
    dry = run("deploy", "--inventory", str(path), "--service", SERVICE, "--via-standby", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    (planned,) = [r["planned"] for e in events(dry) if e["event"] == "end" for r in e["results"]]
    assert any(f"(handover to {STANDBY}: fence" in s for s in planned), planned
    assert any(f"(hand back to {PRODUCER}: promoted" in s for s in planned), planned
    kes = ("rotate-secrets", "--inventory", str(path), "--service", SERVICE, "--secret", "kes", "--json")
    rotated = run(*kes, timeout=300)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    slot_before = chain_get("/tip")["slot"]
    started = time.monotonic()
    via = run("deploy", "--inventory", str(path), "--service", SERVICE, "--via-standby", "--json", timeout=600)
    seconds = time.monotonic() - started
    assert via.returncode == 0, via.stdout + via.stderr
    (result,) = [r for e in events(via) if e["event"] == "end" for r in e["results"]]
    gaps = result["keys_gaps"]
    figures(
        f"deploy --via-standby {seconds:.1f} s wall; "
        + "; ".join(f"{g['how']} to {g['node']}: {g['seconds']} s ({g.get('chain_units')})" for g in gaps)
    )
    assert [(g["how"], g["node"]) for g in gaps] == [("handover", STANDBY), ("hand back", PRODUCER)], gaps
    assert all(g["seconds"] > 0 and g["chain_units"].endswith("slots") for g in gaps), gaps
    docs = inspected()
    assert {label(docs[n], "version") for n in (PRODUCER, STANDBY)} == {"10.5.1"}
    assert [n for n, doc in docs.items() if label(doc, "hot") == "true"] == [PRODUCER]
    assert holder_facts(PRODUCER).forging and not holder_facts(STANDBY).forging
    if not holder_facts(PRODUCER).remaining:  # the certificate ran out during the upgrade: renewed on the holder
        again = run(*kes, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        figures("the certificate ran out during the upgrade: rotated again on the holder")
    sender = inspected()[PRODUCER]["Config"]["Hostname"]

    def ours() -> list[dict]:
        return [b for b in chain_get("/blocks")["forged"] if b["node"] == sender and b["slot"] > slot_before]

    wait_for(lambda: any(b["adopted"] for b in ours()), "a block of the preferred producer adopted", 30)
    assert [d for d in chain_get("/duplicates") if d["slot"] >= slot_before] == []  # no slot with two blocks
    back = run("deploy", "--inventory", str(pinned_inventory), "--service", SERVICE, "--json", timeout=600)
    assert back.returncode == 0, back.stdout + back.stderr
    (result,) = [r for e in events(back) if e["event"] == "end" for r in e["results"]]
    (gap,) = result["keys_gaps"]
    figures(f"plain deploy back: the producer restarted in place, {gap['seconds']} s ({gap.get('chain_units')})")
    assert (gap["how"], gap["node"]) == ("restart in place", PRODUCER) and gap["chain_units"].endswith("slots")
