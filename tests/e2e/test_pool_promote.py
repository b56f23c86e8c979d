"""Issue 16, "planned promotion there and back": `fab promote-standby --service pool` on the lab's pool (`fab lab.up
--pool`, which issues its hot credentials last, and the pool deployed at once: a lab certificate lasts 60 s, so
both promotions run within it), the producer's hot keys moved to the standby producer and back, fence first.

A bounded background sampler inside the lab's network (every 0.2 s: both producers' ``forging_enabled`` metric and
the chain's ``/duplicates``) never sees two nodes forging, and the chain shows no slot with two blocks of the pool.
After each promotion the new holder's blocks are adopted by the chain (``/blocks``, its sender: the container's
host name), the old holder runs without the key flags or the hot label, no file is left on either node's tmpfs,
and the fence was confirmed by the old holder's metrics. The gap in seconds and in slots is printed (figures).
Then a KES rotation and one promotion: the new holder's blocks adopted with the rotated counter (it starts with
the holder's hot secrets). Last, a Ctrl-C during the fence: undone in seconds (review rev16c F2). On the pool lab
(tests/e2e/pool_lab.py), after test_pool_kes: its pool deployed by a module before (or this one's fixture, run
alone), its certificate renewed first when too few periods are left."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab.host import Lab
from nodeops.roles import role_module
from tests.conftest import ROOT, end_process, fab
from tests.e2e.pool_keys import state
from tests.e2e.pool_lab import NAME, PLAN, chain_get, deployed, holder_facts
from tests.e2e.probe import terminated_at, wait_for

pytestmark = pytest.mark.lab

PRODUCERS = {h.name: h for h in PLAN.pool if h.node_kind == "producer"}
HOLDER, STANDBY = (next(h.name for h in PRODUCERS.values() if h.preferred == p) for p in ("active", "standby"))
RELAY = next(h for h in PLAN.pool if h.node_kind == "relay")
METRIC = "cardano_node_metrics_forging_enabled_int"
LEFT = "cardano_node_metrics_remainingKESPeriods_int"
SAMPLE_EVERY, SAMPLER_BOUND = 0.2, 150.0  # seconds: the sampler's period, and its life at most
periods = role_module("cardano", "periods")

# Runs in the relay's network namespace (the operator has no route to a node's private address): one JSON line per
# sample, {"t", "forging": {node: 1 | 0 | null (no answer)}, "duplicates": n | null}, until its stdin closes or
# SAMPLER_BOUND passes.
SAMPLER = """
import json, sys, threading, time, urllib.request
targets, chain, every, bound, metric = json.loads(sys.argv[1])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=0.5).read().decode()
    except Exception:
        return None
def forging(url):
    text = get(url)
    values = [line.split()[-1] for line in (text or "").splitlines() if line.startswith(metric + " ")]
    return int(float(values[0])) if values else None
started = time.monotonic()
while not done.is_set() and time.monotonic() - started < bound:
    t = time.monotonic()
    dups = get(chain + "/duplicates")
    print(json.dumps({"t": round(t - started, 3), "forging": {n: forging(u) for n, u in targets.items()},
                      "duplicates": None if dups is None else len(json.loads(dups))}), flush=True)
    done.wait(max(0.0, every - (time.monotonic() - t)))
"""


def inside(code: str, *args: str, **kw) -> subprocess.Popen:
    """``python3 -c code args`` in the relay's network namespace."""
    return subprocess.Popen(["nsenter", f"--net=/run/netns/{RELAY.netns}", "--", sys.executable, "-c", code, *args],
                            stdout=subprocess.PIPE, text=True, **kw)  # fmt: skip


def on_nodes(command: str) -> dict[str, str]:
    """``command``'s stdout on each producer, through the bastion (`fab exec`)."""
    res = fab("exec", "--env", NAME, "--json", "--nodes", ",".join(PRODUCERS), "--command", command)
    assert res.returncode == 0, res.stdout + res.stderr
    hosts = [e for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "host"]
    return {h["node"]: h["stdout"] for h in hosts}


@pytest.fixture(scope="module")
def issued(pools):
    """The pool lab, its pool deployed (by a module before, or here: then at once after lab.up, which issues the
    producer's first hot credentials last, lab.pool.first_hot): when the holder's certificate was issued, as the
    start of the KES period it was issued for (by the lab genesis's clock: at most one period, 2 s, before the
    issue), the deploy's seconds (None: a module before deployed) and the KES periods the producer's metrics say are
    left."""
    seconds = deployed(pools)
    genesis = json.loads(Path(state(pools.lab)["pool"]["genesis"]).read_text())
    genesis = periods.Genesis.from_shelley_genesis("lab", genesis)
    start = holder_facts(HOLDER).start  # None: no certificate read (then too few periods left: the test rotates)
    issued = None if start is None else genesis.time_of(start * genesis.slots_per_kes_period).timestamp()
    return {"issued": issued, "deployed": seconds, "left": periods_left(HOLDER)}


def periods_left(node: str) -> int | None:
    """The KES periods ``node``'s metrics say its certificate has left (``remainingKESPeriods``); None without."""
    code = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())"
    proc = inside(code, f"http://{PRODUCERS[node].private_ip}:12798/metrics")
    out, _ = proc.communicate(timeout=30)
    values = [line.split()[-1] for line in out.splitlines() if line.startswith(f"{LEFT} ")]
    return int(float(values[0])) if values else None


class Sampler:
    """The background sampler (SAMPLER), its lines read as they come (``samples``)."""

    def __init__(self) -> None:
        targets = {n: f"http://{h.private_ip}:12798/metrics" for n, h in PRODUCERS.items()}
        spec = json.dumps([targets, PLAN.chain_address, SAMPLE_EVERY, SAMPLER_BOUND, METRIC])
        self.proc = inside(SAMPLER, spec, stdin=subprocess.PIPE)
        self.samples: list[dict] = []
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        for line in self.proc.stdout:
            self.samples.append(json.loads(line))

    def stop(self) -> list[dict]:
        """Its stdin closed: it ends after its current sample (else it is ended, by its pid)."""
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            end_process(self.proc)
        self.reader.join(timeout=10)
        return self.samples


def holder_sees(new: str, old: str) -> dict:
    """After a promotion to ``new``: each producer's container (host name, argv, hot label) and its tmpfs files."""
    shown = on_nodes("docker inspect -f '{{.Config.Hostname}} {{json .Args}} {{index .Config.Labels "
                     "\"io.nodeops.hot\"}}' nodeops-pool; echo FILES; find /run/nodeops -type f")  # fmt: skip
    seen = {}
    for node, out in shown.items():
        container, files = out.split("FILES")
        hostname, args, *label = container.split(" ", 2)
        seen[node] = {"hostname": hostname, "args": json.loads(args), "hot": " ".join(label).strip() == "true",
                      "files": files.split()}  # fmt: skip
    assert seen[new]["hot"] and "--shelley-kes-key" in seen[new]["args"], seen
    assert not seen[old]["hot"] and not {a for a in seen[old]["args"] if a.startswith("--shelley")}, seen
    assert seen[new]["files"] == [] and seen[old]["files"] == [], seen  # every file shredded once read
    return seen


def promote(figures, issued: float, leg: str, new: str, old: str) -> tuple[dict, list[dict]]:
    """One promotion to ``new``: its result, its fence confirmed by ``old``'s metrics; then ``new``'s blocks
    adopted by the chain (from after the promotion ended), returned with the result."""
    res = fab("promote-standby", "--env", NAME, "--service", "pool", "--yes", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    (end,) = [e for e in events if e.get("event") == "end"]
    (result,) = end["results"]
    assert (result["active"], result["keys_held_before"]) == (new, True)
    steps = [(e["node"], e["message"]) for e in events if e.get("event") == "step"]
    fenced = [i for i, (node, m) in enumerate(steps) if node == old and m.startswith("fenced: holds no keys")]
    hot_start = [i for i, (node, m) in enumerate(steps) if node == new and m.startswith("replace") and "hot" in m]
    assert len(fenced) == 1 and len(hot_start) == 1 and fenced[0] < hot_start[0], steps  # fence first
    assert steps[fenced[0]][1].endswith("it answers again and says it no longer uses them"), steps  # its metrics
    forges = [m for node, m in steps if node == new and m.startswith("serves with the hot keys")]
    assert forges and forges[0].startswith("serves with the hot keys and says it uses them;"), steps  # forging 1
    seen = holder_sees(new, old)
    after = chain_get("/tip")["currentSlot"]
    sender = seen[new]["hostname"]
    adopted = wait_for(lambda: [b for b in chain_get("/blocks")["forged"]
                                if b["node"] == sender and b["adopted"] and b["slot"] > after],
                       f"a block of {new} adopted", 15)  # fmt: skip
    chain = sorted((b for b in chain_get("/blocks")["forged"] if b["adopted"]), key=lambda b: b["slot"])
    first = min(b["slot"] for b in chain if b["node"] == sender)
    last = max(b["slot"] for b in chain if b["slot"] < first)  # the old holder's last block before the fence
    led = leader_slots(range(last + 1, first))
    figures(
        f"{leg}: {old} -> {new}: no node held the hot keys for {result['keys_gap_seconds']:.2f}s "
        f"({result['outage_chain_units']}), promote-standby {end['seconds']:.1f}s; on the chain {first - last - 1} "
        f"slots between the two holders' blocks (slots {last} and {first}), {led} of them the pool's: {led} "
        f"blocks missed; {new}'s first adopted block {time.time() - issued:.1f}s after the hot credentials "
        f"were issued"
    )
    assert adopted and first > last
    return result, adopted


def leader_slots(slots: range) -> int:
    """How many of ``slots`` the lab's pool leads (the chain service's election, simchain.leads, with the lab
    genesis's activeSlotsCoeff), computed by the simulator's own module in a process of its own."""
    pool_id = json.loads(Lab(ROOT, NAME).state_file.read_text())["pool"]["pool_id"]
    code = ("import sys; sys.path[:0] = [sys.argv[1]]; import simchain; a, b, pool = int(sys.argv[2]), "
            "int(sys.argv[3]), sys.argv[4]; coeff = simchain.periods.LAB_GENESIS['activeSlotsCoeff']; "
            "print(sum(simchain.leads(s, pool, coeff) for s in range(a, b)))")  # fmt: skip
    sim = str(ROOT / "lab" / "images" / "cardano-sim")
    res = subprocess.run([sys.executable, "-c", code, sim, str(slots.start), str(slots.stop), pool_id],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


FRESH_ENOUGH = 20  # KES periods of 2 s: a there-and-back under load takes about 25 s


def rotate() -> tuple[subprocess.CompletedProcess, float]:
    """`fab rotate-secrets --secret kes`: the holder restarted on a fresh certificate (60 s); the run and the time it
    ended (the new certificate's issue, within seconds)."""
    rotated = fab("rotate-secrets", "--env", NAME, "--service", "pool", "--secret", "kes", "--json", timeout=300)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    return rotated, time.time()


def seconds_of(run: subprocess.CompletedProcess) -> float:
    """The seconds a --json run's end event gives."""
    return next(e["seconds"] for e in map(json.loads, run.stdout.splitlines()) if e.get("event") == "end")


def test_a_planned_promotion_there_and_back_never_has_two_forgers(issued, figures):
    deploy = "by a module before" if issued["deployed"] is None else f"in {issued['deployed']:.1f}s"
    began = "unread" if issued["issued"] is None else f"{time.time() - issued['issued']:.1f}s ago"
    figures(f"deployed {deploy}; the holder's certificate issued in the KES period that began {began} (30 KES "
            f"periods of 2 s); the producer's metrics then: {issued['left']} periods left")  # fmt: skip
    assert issued["left"] is not None
    issued = issued["issued"]
    if (periods_left(HOLDER) or 0) < FRESH_ENOUGH:  # a slow up and deploy ate the first certificate's window
        rotated, issued = rotate()
        figures(f"too few KES periods left for a there-and-back: rotated first ({seconds_of(rotated):.1f}s)")
    sampler = Sampler()
    try:
        wait_for(lambda: len(sampler.samples) >= 3, "the sampler's first samples", 10)
        there, _ = promote(figures, issued, "there", STANDBY, HOLDER)
        back, _ = promote(figures, issued, "back", HOLDER, STANDBY)
    finally:
        samples = sampler.stop()
    both = [s for s in samples if all(v == 1 for v in s["forging"].values())]
    assert both == []  # never two nodes forging at any sample
    assert [s for s in samples if s["duplicates"]] == [] and chain_get("/duplicates") == []  # no slot, two blocks
    holders = [tuple(n for n, v in s["forging"].items() if v == 1) for s in samples]
    moves = [h for i, h in enumerate(holders) if i == 0 or h != holders[i - 1]]
    assert [h for h in moves if h] == [(HOLDER,), (STANDBY,), (HOLDER,)], moves  # there and back, one at a time
    gaps = sum(1 for h in holders if not h)
    figures(
        f"sampler: {len(samples)} samples every {SAMPLE_EVERY}s over {samples[-1]['t']:.1f}s, none with two "
        f"forging, {gaps} with none; chain: 0 slots with two blocks of the pool"
    )
    assert there["outage_chain_units"].endswith("slots") and back["outage_chain_units"].endswith("slots")


def test_a_promotion_after_a_kes_rotation_gives_the_new_holder_the_rotated_keys(issued, figures):
    """After the there-and-back: `rotate-secrets --secret kes` restarts the holder alone on the new certificate
    (the chain's counter moves by one), then a promotion: the new holder starts with the holder's hot secrets, not
    its own recorded ones (the bug: the deploy's certificate, every block refused with CounterTooSmallOCERT), and
    its blocks are adopted with the rotated counter."""
    rotated, _ = rotate()
    pool_id = json.loads(Lab(ROOT, NAME).state_file.read_text())["pool"]["pool_id"]
    counter = chain_get("/pools")[pool_id]["counter"]
    assert counter >= 1
    result, adopted = promote(figures, issued["issued"], "after a rotation", STANDBY, HOLDER)
    figures(
        f"after a KES rotation (counter {counter} on chain; rotate-secrets {seconds_of(rotated):.1f}s): "
        f"{STANDBY}'s blocks adopted with "
        f"counters {sorted({b['counter'] for b in adopted})}, no node held the keys for "
        f"{result['keys_gap_seconds']:.2f}s"
    )
    assert {b["counter"] for b in adopted} == {counter}


UNDONE = re.compile(r"pool: stopped before `[^`]+` as asked, after the fence and before the keys moved, so the fence "
                    r"was undone; (\S+) was given its keys back and serves with them \(no node held them for "
                    r"([0-9.]+)s\)")  # fmt: skip


def hot_labelled() -> list[str]:
    """The producers whose running container carries the hot label."""
    shown = on_nodes("docker inspect -f '{{.State.Running}} {{index .Config.Labels \"io.nodeops.hot\"}}' nodeops-pool")
    return sorted(node for node, out in shown.items() if out.split() == ["true", "true"])


def test_a_ctrl_c_during_the_fence_gives_the_keys_back_in_seconds(issued, figures):
    """Review rev16c F2: SIGINT 0.3 s after the `replace <holder> (fence` line. The run undoes the fence, stopping
    the container it started just before (the holder without its keys) and giving the holder its own back with its
    keys. As PID 1 the node had no SIGTERM handler yet, the kernel dropped the stop's signal and the stop waited out
    the role's 60 s stop_timeout: no node held the keys for 62 s. Under the role's ``init`` (`docker run --init`) the
    engine's init passes the signal on and the node dies of it at once: seconds. Exit 130, the holder the one node
    labelled with the keys after."""
    (old,) = hot_labelled()
    if (periods_left(old) or 0) < FRESH_ENOUGH:  # its certificate must outlast the undo and the modules after
        rotated, _ = rotate()
        figures(f"too few KES periods left before the Ctrl-C: rotated first ({seconds_of(rotated):.1f}s)")
    fence = f"replace {old} (fence"
    code, seen, out = terminated_at(
        ["promote-standby", "--env", NAME, "--service", "pool", "--yes", "--json"],
        lambda e: e.get("event") == "step" and e.get("node") == old and e.get("message", "").startswith(fence),
        signal.SIGINT, after=0.3,
    )  # fmt: skip
    end = next((e for e in seen if e.get("event") == "end"), {})
    undone = UNDONE.match(end.get("error") or "")
    signalled = next(e["t"] for e in seen if e.get("event") == "step" and e.get("message", "").startswith(fence))
    ended, gap = max(e.get("t", 0) for e in seen), undone.group(2) if undone else "?"
    figures(
        f"Ctrl-C 0.3 s after `{fence}` (t={signalled:.2f}s): exit {code} at t={ended:.2f}s, no node held the keys "
        f"for {gap}s (before the role's init: 62.2 s on this lab, 62.3 and 62.9 s in the review)"
    )
    assert code == 130 and undone and undone.group(1) == old, out
    assert float(undone.group(2)) < 20, out  # seconds, not the 60 s stop_timeout
    assert hot_labelled() == [old]
