"""`fab rotate-secrets --secret kes` on the lab's pool (issue 16's KES rotation), deployed first: the chain takes the
new certificate's counter (exactly one more), the producer forges from its KES period, no slot has two blocks, the
stored counter matches; no key is left anywhere but the lab's Secrets Manager. A wrong cold key, another pool's cold
key with its own counter file, and a reused counter are refused before any host changes (exit 2, no AWSPENDING
left). A run killed after AWSPENDING is written, inside the holder's replace (its old container set aside and
stopped; the new one started, its files not yet shredded), after the holder restarted, and after the counter is
stored, each then run again, converges. On the pool lab (tests/e2e/pool_lab.py), its pool deployed by the module's
fixture; each rotation counts from the chain's counter it finds."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest

from lab.aws import put_secret, read_secret, secrets_client
from lab.host import Lab
from lab.pool import HOT_SECRET, KEY_SECRETS
from nodeops.roles import role_module
from tests.conftest import fab
from tests.e2e.pool_keys import pool_keys, sentinels, state
from tests.e2e.pool_lab import NAME, PLAN, chain_get, deployed
from tests.e2e.probe import killed_at, terminated_at, wait_for

pytestmark = pytest.mark.lab

HOLDER, STANDBY = "pool-bp-a", "pool-bp-b"
ROTATE = ("rotate-secrets", "--env", NAME, "--service", "pool", "--secret", "kes", "--json")
envelope = role_module("cardano", "envelope")
ocert = role_module("cardano", "ocert")
rotation = role_module("cardano", "rotation")
GENESIS = role_module("cardano", "periods").LAB_GENESIS
SLOTS_PER_KES_PERIOD, WINDOW = GENESIS["slotsPerKESPeriod"], GENESIS["maxKESEvolutions"]
LATE = 3  # KES periods (2 s each in the lab) between a kill after AWSPENDING is written and the rerun


DEPLOYED: list[float | None] = []  # this module's deploy of the pool, seconds; None: deployed by a module before


@pytest.fixture(scope="module")
def pool_lab(pools):
    """The pool lab, its pool deployed (at once after lab.up when this module runs alone; a rotation works on an
    expired certificate too)."""
    DEPLOYED.append(deployed(pools))
    return pools.lab


def client(lab: Lab):
    return secrets_client(state(lab)["secrets_port"])


def on_chain(lab: Lab) -> int | None:
    return chain_get("/pools")[state(lab)["pool"]["pool_id"]]["counter"]


def stored(lab: Lab) -> tuple[int, object]:
    """(the issue counter's next number, the certificate AWSCURRENT holds)."""
    keys = pool_keys(lab)
    return (envelope.read_issue_counter(keys["counter"], "counter").next,
            envelope.read_certificate(keys["op_cert"], "op_cert"))  # fmt: skip


def clock_period() -> int:
    """The KES period of the chain service's clock (its ``currentSlot``, whatever the tip)."""
    return chain_get("/tip")["currentSlot"] // SLOTS_PER_KES_PERIOD


def pending_left(lab: Lab) -> list[str]:
    stages = client(lab).describe_secret(SecretId=HOT_SECRET)["VersionIdsToStages"]
    return [v for v, s in stages.items() if "AWSPENDING" in s]


def container_ids(every: bool = False) -> dict[str, str]:
    """Each producer's (``every``: each pool node's) container id and whether it holds the hot keys (its label)."""
    names = ",".join(h.name for h in PLAN.pool if every or h.node_kind == "producer")
    res = fab("exec", "--env", NAME, "--json", "--nodes", names, "--command",
              "docker inspect -f '{{.Id}} {{index .Config.Labels \"io.nodeops.hot\"}}' nodeops-pool")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return {e["node"]: e["stdout"].strip() for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "host"}


def forging_with(counter: int, since_slot: int) -> list[dict]:
    """The blocks adopted after ``since_slot`` with ``counter`` (the holder alone has the keys: the chain records a
    sender by its container's host name)."""
    return [b for b in chain_get("/blocks")["forged"]
            if b["adopted"] and b["counter"] == counter and b["slot"] > since_slot]  # fmt: skip


def converged(lab: Lab, counter: int, since: int | None = None) -> None:
    """One certificate in force: AWSCURRENT's, with ``counter``, the chain's; the stored counter its next; nothing
    pending; the holder forging with it, blocks adopted (after the chain's tip now, or after slot ``since``); no slot
    with two blocks of the pool."""
    following, cert = stored(lab)
    assert (cert.counter, following, on_chain(lab), pending_left(lab)) == (counter, counter + 1, counter, [])
    tip = chain_get("/tip")["slot"] if since is None else since
    wait_for(lambda: forging_with(counter, tip), f"a block with counter {counter} after slot {tip}", 20)
    assert all(b["kesPeriod"] >= cert.kes_period for b in forging_with(counter, tip))
    assert chain_get("/duplicates") == []


def rotate() -> subprocess.CompletedProcess:
    return fab(*ROTATE, timeout=300)


def test_a_rotation_moves_the_counter_by_one_and_the_producer_forges_with_the_new_certificate(pool_lab, figures):
    old = pool_keys(pool_lab)
    wait_for(lambda: on_chain(pool_lab) is not None, "the first certificate's block", 30)
    before, ids = on_chain(pool_lab), container_ids()
    started = time.monotonic()
    res = rotate()
    took = time.monotonic() - started
    assert res.returncode == 0, res.stdout + res.stderr
    deploy = "by a module before" if DEPLOYED[0] is None else f"{DEPLOYED[0]:.1f} s"
    figures(f"deploy of the pool {deploy}; fab rotate-secrets --secret kes {took:.1f} s; chain counter {before} -> "
            f"{on_chain(pool_lab)}")  # fmt: skip
    converged(pool_lab, before + 1)
    shown = fab("status", "--env", NAME, "--service", "pool", "--json")  # the store's counter against the chain's
    assert shown.returncode == 0, shown.stdout + shown.stderr
    entry = json.loads(shown.stdout.splitlines()[-1])
    assert entry["rotation"] is None and entry["issued"]["kes"]["holder"] == HOLDER, entry
    assert (entry["issued"]["kes"]["facts"], entry["issued"]["kes"]["ok"]) == (
        {"counter_store": before + 1, "counter_chain": before + 1}, True)  # fmt: skip
    # only the holder's inputs moved: each node compared with what it runs (it read mixed, degraded: finding F5)
    assert (entry["state"], entry["mixed"]) == ("healthy", None), entry
    after = container_ids()
    assert after[STANDBY] == ids[STANDBY]  # the standby untouched
    assert after[HOLDER] != ids[HOLDER] and after[HOLDER].endswith(" true")  # the holder restarted, with the keys
    every = container_ids(every=True)
    started = time.monotonic()
    again = fab("deploy", "--env", NAME, "--service", "pool", "--json", timeout=300)
    took = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    (end,) = [e for e in map(json.loads, again.stdout.splitlines()) if e.get("event") == "end"]
    assert [r["changed"] for r in end["results"]] == [False], again.stdout  # it restarted the relays and the standby
    assert container_ids(every=True) == every
    figures(f"after the rotation: fab status state {entry['state']}, mixed {entry['mixed']}; fab deploy {took:.1f} s, "
            "changed nothing")  # fmt: skip
    steps = [e.get("step") for e in map(json.loads, res.stdout.splitlines()) if e.get("event") == "step"]
    assert [s for s in ("createSecret", "setSecret", "testSecret", "finishSecret") if s in steps] == [
        "createSecret", "setSecret", "testSecret", "finishSecret"]  # fmt: skip
    new = pool_keys(pool_lab)
    found = sentinels({**{k: v for k, v in old.items() if k != "counter"},
                       "new kes_key": new["kes_key"], "new op_cert": new["op_cert"]})  # fmt: skip
    places = [p for p in pool_lab.dir.rglob("*") if p.is_file() and not p.is_symlink()] + [pool_lab.inventory_file]
    names = ",".join(h.name for h in PLAN.pool)
    inspected = fab("exec", "--env", NAME, "--json", "--nodes", names, "--command", "docker inspect nodeops-pool")
    assert inspected.returncode == 0 and inspected.stdout.count("Env") >= len(PLAN.pool), inspected.stderr  # env too
    texts = [(str(p), p.read_bytes()) for p in places] + [("the run's output", (res.stdout + res.stderr).encode()),
                                                          ("docker inspect", inspected.stdout.encode())]  # fmt: skip
    assert [(where, what) for where, data in texts for what, value in found.items() if value in data] == []
    left = fab("exec", "--env", NAME, "--json", "--nodes", HOLDER, "--command", "ls -A /run/nodeops/pool")
    assert [e["stdout"].strip() for e in map(json.loads, left.stdout.splitlines()) if e["event"] == "host"] == [""]


@pytest.mark.parametrize("change", ["wrong cold key", "reused counter"])
def test_a_refused_rotation_touches_no_host_and_stages_nothing(pool_lab, change):
    aws = client(pool_lab)
    which = "cold_key" if change == "wrong cold key" else "counter"
    name, key = KEY_SECRETS[which]
    kept = read_secret(aws, name)
    if which == "cold_key":
        bad = envelope.cold_signing_key_file(ocert.ColdKey(bytes(range(32))))
        expected = "this cold key is not the pool's"
    else:
        counter = envelope.read_issue_counter(kept[key], "counter")
        bad = envelope.issue_counter_file(ocert.IssueCounter(on_chain(pool_lab), counter.cold_vk))
        expected = "reused"
    ids, chain_before = container_ids(), on_chain(pool_lab)
    put_secret(aws, name, {key: bad})
    try:
        res = rotate()
    finally:
        put_secret(aws, name, kept)
    assert res.returncode == 2 and expected in res.stderr and "Traceback" not in res.stderr, res.stdout + res.stderr
    assert (container_ids(), pending_left(pool_lab), on_chain(pool_lab)) == (ids, [], chain_before)


def test_another_pools_cold_key_with_its_own_counter_is_refused_then_the_pools_own_rotate(pool_lab, figures):
    """Review rev16c F1: another pool's cold key swapped in together with its own counter file (next 0, as
    ``cardano-cli node key-gen`` leaves it) passed, and the producer was restarted onto a certificate of a pool the
    chain does not know. Refused before any host changes (exit 2, no AWSPENDING, counter and chain unchanged); with
    the pool's own secrets back, a rotation succeeds."""
    aws, other = client(pool_lab), ocert.ColdKey(bytes(range(100, 132)))
    (cold, cold_key), (counted, counter_key) = KEY_SECRETS["cold_key"], KEY_SECRETS["counter"]
    kept = {name: read_secret(aws, name) for name in (cold, counted)}
    wait_for(lambda: on_chain(pool_lab) is not None, "a block of the certificate in force", 30)
    ids, before, following = container_ids(), on_chain(pool_lab), stored(pool_lab)[0]
    put_secret(aws, cold, {cold_key: envelope.cold_signing_key_file(other)})
    put_secret(aws, counted, {counter_key: envelope.issue_counter_file(ocert.IssueCounter(0, other.verification_key))})
    try:
        started = time.monotonic()
        res = rotate()
        took = time.monotonic() - started
    finally:
        for name, doc in kept.items():
            put_secret(aws, name, doc)
    theirs, ours = rotation.pool_id(other.verification_key).hex(), state(pool_lab)["pool"]["pool_id"]
    said = (f"secret cold_key: this cold key is not the pool's: it is pool {theirs[:8]}'s, the pool deployed is "
            f"{ours[:8]} (the certificate in force, op_cert, is not signed by it); point cold_key and")  # fmt: skip
    assert res.returncode == 2 and said in res.stderr and "Traceback" not in res.stderr, res.stdout + res.stderr
    assert (container_ids(), pending_left(pool_lab), on_chain(pool_lab), stored(pool_lab)[0]) == (
        ids, [], before, following)  # fmt: skip
    again = rotate()
    assert again.returncode == 0, again.stdout + again.stderr
    converged(pool_lab, before + 1)
    figures(f"another pool's cold key and counter: refused rc 2 in {took:.1f} s, no container restarted; the pool's "
            f"own back: rotated, chain counter {before} -> {on_chain(pool_lab)}")  # fmt: skip


def on_nodes(command: str, *nodes: str) -> dict[str, str]:
    """``command``'s standard output on each of ``nodes`` (every pool node by default), through the bastion."""
    names = ",".join(nodes or (h.name for h in PLAN.pool))
    res = fab("exec", "--env", NAME, "--json", "--nodes", names, "--command", command)
    assert res.returncode == 0, res.stdout + res.stderr
    return {e["node"]: e["stdout"].strip() for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "host"}


def set_aside_and_stopped() -> str:
    """What a run killed in the holder's replace leaves once it renamed and stopped the old container (review finding
    F1's state), made by hand after a kill before the replace: the killer cannot choose where in the replace's
    commands a SIGKILL lands (killed at the replace's step line, the run died before its rename). Stopped within 5 s:
    the pending certificate, issued before the kill, lasts 60 s in the lab. Returns the holder's containers then."""
    return on_nodes("docker rename nodeops-pool nodeops-pool-previous && docker stop --time 5 nodeops-pool-previous "
                    ">/dev/null && docker ps -a --filter name=nodeops-pool --format '{{.Names}}:{{.State}}' | xargs",
                    HOLDER)[HOLDER]  # fmt: skip


def started_hot(e: dict) -> bool:
    return e.get("node") == HOLDER and e.get("message", "").startswith("started nodeops-pool") and \
        "with the hot keys" in e.get("message", "")  # fmt: skip


KILLS = {  # the step line after which the run is killed -> what the rerun's issue then does (rotation.resume), and
    # what is done by hand before the rerun. A pending version no node runs is kept only in the KES period it starts
    # in; one the holder runs, while its window holds (the lab certificate's 60 s: a rerun inside the replace comes
    # later after the issue, a step by hand, a restart more, and on a busy machine it may have passed)
    "AWSPENDING written": (lambda e: e.get("step") == "createSecret" and "AWSPENDING" in e.get("message", ""),
                           "reissue", None),  # the rerun LATE periods later: no node runs it, it would have lost them
    "the holder set aside and stopped": (lambda e: e.get("step") == "createSecret" and "AWSPENDING" in
                                         e.get("message", ""), "reissue", set_aside_and_stopped),  # put back on the
    # version it ran: no node runs the pending one
    "the new holder started, its files not shredded": (started_hot, "push", None),
    "holder restarted": (lambda e: e.get("step") == "setSecret" and "restarted onto" in e.get("message", ""), "push",
                         None),
    "counter stored": (lambda e: e.get("step") == "finishSecret" and "counter" in e.get("message", ""), "current",
                       None),
}  # fmt: skip


@pytest.mark.parametrize("point", list(KILLS))
def test_a_rotation_killed_then_run_again_converges(pool_lab, point, figures):
    """The rerun keeps the pending version a node runs (no new key): pushed again (a holder that runs it is not
    restarted), or only made current once the counter is stored; its result line says the periods left. A pending
    version no node runs, the rerun coming LATE KES periods after the kill (or after a step by hand), is issued again
    with the same counter from the clock's period (resume reissue): the producer forges with a certificate starting
    at the clock's period, not one that lost those periods. A kill that lands after AWSCURRENT moved leaves nothing
    pending: the rerun is a rotation of its own (the figure says which). A kill inside the holder's replace (its old
    container set aside, running or stopped, the new one started or not) leaves the holder recognised by its
    containers' labels: put back and started again if need be, then restarted onto the pending version; in every
    case one producer ends forging with it, no previous container and no file left on any node's tmpfs."""
    when, expected, then = KILLS[point]
    before = on_chain(pool_lab)
    killed_at(list(ROTATE), when)
    killed, tip = time.monotonic(), chain_get("/tip")["slot"]  # the pending certificate, issued just before, lasts
    # 60 s in the lab: few steps now
    found = then() if then is not None else None
    left = pending_left(pool_lab)
    stale = None  # the pending certificate's start period
    if left:
        doc = json.loads(client(pool_lab).get_secret_value(SecretId=HOT_SECRET, VersionId=left[0])["SecretString"])
        stale = envelope.read_certificate(doc["node.cert"], "op_cert (pending)").kes_period
    if point == "AWSPENDING written" and left:  # a rerun LATE periods after the pending certificate starts
        wait_for(lambda: clock_period() >= stale + LATE, f"KES period {stale + LATE}", 30)
    released = fab("lock.release", "--env", NAME, "--service", "pool", "--force")  # the killed run's, stale
    assert released.returncode == 0, released.stdout + released.stderr

    def under_way() -> dict | None:  # status's rotation left under way
        shown = fab("status", "--env", NAME, "--service", "pool", "--json")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        return json.loads(shown.stdout.splitlines()[-1])["rotation"]

    finish = f"fab rotate-secrets --env {NAME} --service pool --secret kes"
    assert under_way() == ({"interrupted": ["kes"], "finish": finish} if left else None)
    started, clock = time.monotonic(), clock_period()
    again = rotate()
    took = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    events = list(map(json.loads, again.stdout.splitlines()))
    said = {e["step"]: e["message"] for e in events if e.get("step")}
    if "createSecret" in said:
        resumed = re.search(r"resume (\w+)", said["createSecret"])[1]
    else:  # killed once AWSCURRENT had moved, its AWSPENDING label left: the rerun only finishes (Stages "finishing")
        assert point == "counter stored" and "finishSecret" in said, said
        resumed = "finish"
    put_back = [e["message"] for e in events if e.get("resumed")]
    shreds = [e["message"] for e in events if e.get("node") == HOLDER and e["message"].startswith("shredded")]
    result = next(e["message"] for e in events if e.get("message", "").startswith("rotated kes"))
    start = stored(pool_lab)[1].kes_period
    figures(f"killed after {point}: {f'the holder containers {found}; ' if found else ''}AWSPENDING left "
            f"{len(left)}; the rerun {started - killed:.1f} s after the kill, {took:.1f} s (clock KES period {clock}, "
            f"the pending certificate's {stale if stale is not None else '-'}): resume {resumed}, certificate from "
            f"period {start}, {'; '.join(put_back) + '; ' if put_back else ''}{said.get('setSecret', '-')}; on the "
            f"holder: {'; '.join(shreds) or 'nothing shredded'}; result: {result}")  # fmt: skip
    if resumed != "finish":  # the value in force's periods left (a rerun that only finishes issues nothing)
        assert re.search(r"KES periods \d+\.\.\d+: \d+ KES periods? left", result), result
    finished = point == "counter stored" and not left  # the kill came after AWSCURRENT moved: a finished rotation
    # first. A rerun inside the replace comes later and takes longer (a restart more): a certificate it keeps may run
    # out on a loaded machine before the rerun's end, so its blocks are looked for from the kill on (the rerun's
    # testSecret saw the chain take one); a reissued one's, from now
    inside = point in ("the holder set aside and stopped", "the new holder started, its files not shredded")
    converged(pool_lab, before + (2 if finished else 1), tip if inside and resumed == "push" else None)
    assert under_way() is None
    assert on_nodes("ls -A /run/nodeops/pool 2>/dev/null; true") == {h.name: "" for h in PLAN.pool}  # no file left
    assert "nodeops-pool-previous" not in on_nodes("docker ps -a --format '{{.Names}}'", HOLDER)[HOLDER]
    ids = container_ids()
    assert ids[HOLDER].endswith(" true") and not ids[STANDBY].endswith(" true"), ids  # one holder: the producer
    if finished:
        assert resumed == "none"
        return
    allowed = {expected, *(["finish"] if point == "counter stored" else [])}
    if expected == "reissue" and clock <= stale:  # the rerun began in the period the pending certificate starts in
        allowed.add("push")
    if expected == "push" and clock_period() >= stale + WINDOW:  # a busy machine: its 60 s window ran out meanwhile
        allowed = {"reissue"} if clock >= stale + WINDOW else {"push", "reissue"}
    assert len(left) == 1 and resumed in allowed, (resumed, allowed, clock, stale)
    if resumed != "finish":
        assert ("kept" in said["createSecret"]) == (resumed != "reissue"), said["createSecret"]  # push, current: kept
    if resumed == "reissue":  # a new certificate, same counter, from the clock's period at the rerun
        assert start >= clock and start > stale, (start, clock, stale)
    if point in ("holder restarted", "the new holder started, its files not shredded") and resumed == "push":
        assert "runs the pending version already" in said["setSecret"]
    if point == "the holder set aside and stopped":
        assert put_back and "put back and started again on its own inputs" in put_back[0], put_back


def test_a_ctrl_c_on_seeing_the_pending_version_staged_restarts_nothing_and_removes_it(pool_lab, figures):
    """rev16c F4: a SIGINT sent on createSecret's line (AWSPENDING written) landed while setSecret read what it
    restarts the holder with: the run restarted the producer anyway, completed, and said the stop came "once every
    system used the new value". Now setSecret looks at the stop once its reads are done, before the restart: exit
    130, the pending version removed, no container of the pool restarted, the chain's counter unchanged."""
    before, ids = on_chain(pool_lab), container_ids(every=True)
    code, seen, out = terminated_at(list(ROTATE), KILLS["AWSPENDING written"][0], signal.SIGINT)
    end = next((e for e in seen if e.get("event") == "end"), {})
    staged = next(e["t"] for e in seen if KILLS["AWSPENDING written"][0](e))
    noted = next((e["t"] for e in seen if e.get("stopping")), None)
    figures(f"SIGINT on createSecret's line (t={staged:.2f} s): noted at t={noted} s, the run ended at "
            f"t={seen[-1].get('t', '-')} s, exit {code}: {end.get('error')}")  # fmt: skip
    assert code == 130, out
    # where the signal lands is the machine's: before setSecret began (the run's safe point), or while it read
    # (setSecret's own, just before the restart: review F4's case, tests/unit/test_issued_stop.py plays it)
    assert end.get("error") in (f"pool: stopped as asked before setSecret kes; changed: nothing; undone: {undone}; "
                                "AWSCURRENT unchanged" for undone in ("kes: AWSPENDING removed (never set: no system "
                                "held it)", "no node was restarted, kes: AWSPENDING removed")), out  # fmt: skip
    assert not [e for e in seen if e.get("step") == "setSecret"], out
    assert (pending_left(pool_lab), container_ids(every=True), on_chain(pool_lab)) == ([], ids, before)
