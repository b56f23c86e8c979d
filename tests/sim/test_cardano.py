"""The Cardano node simulator and the lab's chain service (lab/images/cardano-sim), run from the repository as
processes on 127.0.0.1 with keys made by roles/cardano: forging and its refusals as the real node logs them, the
chain's records (counters, rejections, two blocks in a slot) and the real metric names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from nodeops.roles import role_module

from .cardano import SIM, Pool
from .support import wait_for

PREFIX = "cardano_node_metrics_"
LEDGER_WAIT = 15  # seconds: a pool leads half the 0.2 s slots, so a block is due within a second or two


def adopted(net, name):
    return [b for b in net.blocks(name) if b["adopted"]]


def test_a_producer_forges_and_the_chain_records_it_a_relay_does_not(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    net.node("relay")
    net.node("producer", peers=("relay",), hot=pool.hot("producer", counter=0, start=net.current_period()))
    blocks = wait_for(lambda: len(adopted(net, "producer")) >= 3 and adopted(net, "producer"), LEDGER_WAIT,
                      what="3 blocks of the producer on the chain")  # fmt: skip
    assert {b["counter"] for b in blocks} == {0} and {b["pool"] for b in blocks} == {pool.id}
    assert net.blocks("relay") == [] and net.blocks(key="rejected") == []
    assert net.pools()[pool.id]["counter"] == 0
    said = f"Adopted block forged in slot {blocks[0]['slot']}: {blocks[0]['hash']}"  # once the chain answered
    wait_for(lambda: said in net.log("producer") and "Not leading slot " in net.log("producer"), 5, what=said)
    log = net.log("producer")
    assert "Performing block forging reconfiguration: Enabling block forging." in log
    assert f"Forged block in slot {blocks[0]['slot']}" in log and f"Leading slot {blocks[0]['slot']}" in log
    relay_log = net.log("relay")
    assert "Disabling block forging" in relay_log and "Forged block" not in relay_log
    tip = net.tip()
    wait_for(lambda: net.metrics("relay")[f"{PREFIX}blockNum_int"] >= tip["block"], 5, what="the relay synced")


def test_metrics_carry_the_real_names_and_values(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    net.node("relay")
    start = net.current_period() - 3
    net.node("producer", peers=("relay",), hot=pool.hot("producer", counter=0, start=start))
    wait_for(lambda: adopted(net, "producer"), LEDGER_WAIT, what="a block of the producer")
    first = adopted(net, "producer")[0]["slot"]
    wait_for(lambda: f"{PREFIX}Forge_node_not_leader_counter" in net.metrics("producer"), 5, what="a slot not led")
    wait_for(lambda: net.metrics("producer").get(f"{PREFIX}slotNum_int", -1) >= first, 5, what="the tip synced")
    seen = net.metrics("producer")
    current = net.current_period()
    assert seen[f"{PREFIX}forging_enabled_int"] == 1 and seen[f"{PREFIX}connectedPeers_int"] == 1
    assert seen[f"{PREFIX}operationalCertificateStartKESPeriod_int"] == start
    assert seen[f"{PREFIX}operationalCertificateExpiryKESPeriod_int"] == start + 30  # the lab's maxKESEvolutions
    assert current - 1 <= seen[f"{PREFIX}currentKESPeriod_int"] <= current
    assert seen[f"{PREFIX}remainingKESPeriods_int"] == start + 30 - seen[f"{PREFIX}currentKESPeriod_int"]
    assert seen[f"{PREFIX}Forge_forged_counter"] >= 1 and seen[f"{PREFIX}blocksForged_int"] >= 1
    assert seen[f"{PREFIX}Forge_about_to_lead_counter"] >= seen[f"{PREFIX}Forge_node_is_leader_counter"] >= 1
    assert seen[f"{PREFIX}epoch_int"] == seen[f"{PREFIX}slotNum_int"] // 100  # the lab's epochLength
    relay = net.metrics("relay")
    assert relay[f"{PREFIX}forging_enabled_int"] == 0 and relay[f"{PREFIX}connectedPeers_int"] == 0
    assert not any(name.startswith(f"{PREFIX}Forge_") or "KESPeriod" in name for name in relay)


def test_an_expired_kes_period_stops_forging_with_the_real_log_message(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    start = net.current_period() - 27  # 30 periods of 2 s: this certificate has 4 to 6 s left
    net.node("producer", hot=pool.hot("producer", counter=0, start=start))
    wait_for(lambda: adopted(net, "producer"), LEDGER_WAIT, what="a block before the key expires")
    wait_for(lambda: "KESCouldNotEvolve" in net.log("producer"), LEDGER_WAIT, what="the KES key's expiry in the log")
    line = next(x for x in net.log("producer").splitlines() if "KESCouldNotEvolve" in x)
    assert "Updating the forge state in slot " in line
    assert (
        "failed because: KESCouldNotEvolve (KESInfo {kesStartPeriod = KESPeriod {unKESPeriod = "
        f"{start}}}, kesEndPeriod = KESPeriod {{unKESPeriod = {start + 30}}}"
    ) in line
    last = max(b["slot"] for b in net.blocks("producer"))
    expired_at = (start + 30) * net.genesis.slots_per_kes_period
    assert last < expired_at
    seen = net.metrics("producer")
    assert seen[f"{PREFIX}remainingKESPeriods_int"] == 0 and seen[f"{PREFIX}forging_enabled_int"] == 1
    wait_for(lambda: net.tip()["currentSlot"] > expired_at + 10, 5, what="ten slots past the expiry")
    assert max(b["slot"] for b in net.blocks("producer")) == last  # nothing forged since


def test_a_certificate_not_yet_valid_cannot_forge(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    start = net.current_period() + 5
    net.node("producer", hot=pool.hot("producer", counter=0, start=start))
    wait_for(lambda: "but we cannot forge because" in net.log("producer"), LEDGER_WAIT, what="a refusal in the log")
    assert "PraosCannotForgeKeyNotUsableYet (KESPeriod {unKESPeriod = " in net.log("producer")
    assert net.blocks("producer") == [] and net.blocks("producer", "rejected") == []


def test_an_older_counter_is_rejected_by_the_chain(net, tmp_path):
    """The fence of an unplanned promotion: once a block with counter 1 is on chain, the old certificate's
    (counter 0) blocks are rejected; the old producer logs why."""
    pool = Pool(tmp_path)
    net.start_chain(pool)
    old = pool.hot("old", counter=0, start=net.current_period())
    new = pool.hot("new", counter=1, start=net.current_period())
    net.node("old", hot=old)
    wait_for(lambda: adopted(net, "old"), LEDGER_WAIT, what="a block of the old certificate")
    net.node("new", hot=new)
    wait_for(lambda: adopted(net, "new"), LEDGER_WAIT, what="a block of the new certificate")
    assert net.pools()[pool.id]["counter"] == 1
    rejected = wait_for(lambda: net.blocks("old", "rejected"), LEDGER_WAIT, what="the old certificate rejected")
    assert rejected[0]["counter"] == 0 and rejected[0]["reasons"][0].startswith("CounterTooSmallOCERT: counter 0 is")
    said = f"Forged invalid block in slot {rejected[0]['slot']}, reason: CounterTooSmallOCERT"
    wait_for(lambda: said in net.log("old"), 5, what=said)  # once the chain answered
    first_new = min(b["slot"] for b in adopted(net, "new"))
    assert all(b["slot"] < first_new for b in adopted(net, "old"))  # nothing of the old one taken since


def test_a_certificate_of_another_cold_key_is_rejected(net, tmp_path):
    """Signed by a cold key that is not the pool's: for another pool (not registered), or naming the pool's cold
    verification key (its signature is not the pool's: InvalidSignatureOCERT)."""
    pool, stranger = Pool(tmp_path), Pool(tmp_path, seed=2)
    net.start_chain(pool)
    net.node("other", hot=pool.hot("other", counter=0, start=net.current_period(), cold=stranger.cold))
    net.node("forged", hot=pool.hot("forged", 0, net.current_period(), cold=stranger.cold, naming_the_pool=True))
    rejected = wait_for(lambda: net.blocks("other", "rejected"), LEDGER_WAIT, what="a rejected block")
    assert rejected[0]["reasons"][0].startswith(f"VRFKeyUnknown: pool {stranger.id} is not registered")
    rejected = wait_for(lambda: net.blocks("forged", "rejected"), LEDGER_WAIT, what="a rejected block")
    assert rejected[0]["pool"] == pool.id
    assert rejected[0]["reasons"] == ["InvalidSignatureOCERT: the certificate is not signed by the pool's cold key"]
    said = f"Forged invalid block in slot {rejected[0]['slot']}, reason: InvalidSignatureOCERT"
    wait_for(lambda: said in net.log("forged"), 5, what=said)
    assert net.blocks("other") == [] and net.blocks("forged") == []


def test_two_producers_with_the_same_pool_key_make_two_blocks_in_a_slot(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    hot = pool.hot("producer", counter=0, start=net.current_period())
    net.node("a", hot=hot)
    net.node("b", hot=hot)
    [twice, *_] = wait_for(lambda: net.duplicates(), LEDGER_WAIT, what="a slot with two blocks of the pool")
    assert twice["pool"] == pool.id and len(twice["blocks"]) == 2
    senders = {b["node"] for b in net.blocks() if b["hash"] in twice["blocks"]}
    assert senders == {"a", "b"}


def test_one_producer_makes_no_slot_with_two_blocks(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    net.node("producer", hot=pool.hot("producer", counter=0, start=net.current_period()))
    wait_for(lambda: len(adopted(net, "producer")) >= 5, LEDGER_WAIT, what="5 blocks")
    assert net.duplicates() == []


def test_the_node_refuses_to_start_on_a_kes_key_its_certificate_does_not_name(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    hot = pool.hot("producer", counter=0, start=net.current_period())
    hot["--shelley-kes-key"] = pool.hot("other", counter=0, start=0)["--shelley-kes-key"]
    proc = net.node("producer", hot=hot, wait=False)
    assert proc.wait(10) == 1
    assert (
        f'The KES key provided at: "{hot["--shelley-kes-key"]}" does not match the KES key specified in the '
        f'operational certificate at: "{hot["--shelley-operational-certificate"]}"'
    ) in net.log("producer")


def test_the_node_wants_all_three_credentials(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    hot = pool.hot("producer", counter=0, start=net.current_period())
    del hot["--shelley-vrf-key"]
    proc = net.node("producer", hot=hot, wait=False)
    assert proc.wait(10) == 1
    assert "To create blocks, the --shelley-vrf-key must also be specified" in net.log("producer")


def test_a_key_file_that_is_not_a_kes_key_is_refused(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    hot = {**pool.hot("producer", counter=0, start=net.current_period()), "--shelley-kes-key": pool.cold_vkey}
    proc = net.node("producer", hot=hot, wait=False)
    assert proc.wait(10) == 1
    log = net.log("producer")
    assert "There was an error parsing a credentials envelope" in log and 'its "type" is another' in log


def test_sighup_reads_the_credentials_again_off_when_gone_on_with_new_ones(net, tmp_path):
    """cardano-node's SIGHUP (updateBlockForging): the hot files removed (as nodeops shreds them once read), forging
    stops; a new KES key and certificate in their place, forging resumes with them, without a restart."""
    pool = Pool(tmp_path)
    net.start_chain(pool)
    hot = pool.hot("producer", counter=0, start=net.current_period())
    proc = net.node("producer", hot=hot)
    wait_for(lambda: adopted(net, "producer"), LEDGER_WAIT, what="a block")
    hot["--shelley-kes-key"].unlink()
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: net.metrics("producer")[f"{PREFIX}forging_enabled_int"] == 0, 5, what="forging disabled")
    assert "Performing block forging reconfiguration: Disabling block forging" in net.log("producer")
    off = net.tip()["currentSlot"]
    wait_for(lambda: net.tip()["currentSlot"] > off + 10, 5, what="ten slots")
    assert all(b["slot"] <= off + 1 for b in net.blocks("producer"))  # at most the slot under way when it read
    assert pool.hot("producer", counter=1, start=net.current_period()).keys() == hot.keys()  # new files, same paths
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any(b["counter"] == 1 for b in adopted(net, "producer")), LEDGER_WAIT, what="a block, counter 1")
    assert net.metrics("producer")[f"{PREFIX}forging_enabled_int"] == 1 and net.pools()[pool.id]["counter"] == 1
    assert proc.poll() is None


def test_a_producer_started_as_non_producing_does_not_forge(net, tmp_path):
    pool = Pool(tmp_path)
    net.start_chain(pool)
    argv_hot = pool.hot("standby", counter=0, start=net.current_period())
    net.node("standby", hot={**argv_hot, "--start-as-non-producing-node": None})
    began = net.tip()["currentSlot"]
    wait_for(lambda: net.tip()["currentSlot"] > began + 10, 5, what="ten slots")  # half of them the pool's
    seen = net.metrics("standby")
    assert seen[f"{PREFIX}forging_enabled_int"] == 0 and f"{PREFIX}Forge_about_to_lead_counter" not in seen
    assert "Disabling block forging" in net.log("standby") and net.blocks("standby") == []


def test_the_lab_cardano_cli_answers_the_roles_query_from_the_nodes_chain(net, tmp_path):
    """The query KES rotation runs in the holder's container (roles/cardano/issue.py), answered by the image's
    cardano-cli against the node's socket: the tip's slot, and the pool's counter once the chain took a block; the
    role reads it back. Without a node on the socket it fails as cardano-cli does (exit 1, the socket named)."""
    pool = Pool(tmp_path)
    net.start_chain(pool)
    net.node("producer", hot=pool.hot("producer", counter=0, start=net.current_period()))
    wait_for(lambda: any(b["adopted"] for b in net.blocks("producer")), 15, what="a block")
    issue = role_module("cardano", "issue")
    argv = issue.query_command("lab")
    command = argv[2].replace("cardano-cli", f"{sys.executable} {SIM / 'cardano-cli'}").replace(
        "/ipc/node.socket", str(tmp_path / "producer.socket"))  # fmt: skip
    env = {**os.environ, "CARDANO_SIM_CHAIN": net.chain}
    done = subprocess.run([*argv[:2], command], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    slot, counters = issue.chain_facts(done.stdout)
    assert counters == {pool.id: 0} and 0 < slot <= net.tip()["currentSlot"]
    gone = subprocess.run([sys.executable, str(SIM / "cardano-cli"), "query", "tip", "--testnet-magic", "42",
                           "--socket-path", str(tmp_path / "none.socket")], capture_output=True, text=True, env=env,
                          timeout=30)  # fmt: skip
    assert gone.returncode == 1 and f"{tmp_path / 'none.socket'}" in gone.stderr


def test_a_sigterm_during_startup_ends_the_start_as_upstreams_handler_does(tmp_path):
    """Review rev16c F2: cardano-node installs its SIGTERM handler first thing in runNode (SigTermDuringStartup,
    Handlers/TopLevel.hs), so a stop during its start ends it (the top handler: ``cardano-node: SigTermException``,
    exit 1). The simulator installed its own only once started: as a container's PID 1, which ignores a signal it
    has no handler for, a stop right after a start waited out the role's 60 s stop_timeout. Here the start is held
    reading its configuration from a FIFO; before, the default action killed the process (-15), as PID 1 nothing."""
    config = tmp_path / "config.json"
    os.mkfifo(config)
    argv = [str(SIM / "cardano-node"), "run", "--config", str(config), "--topology", str(tmp_path / "t.json"),
            "--database-path", str(tmp_path / "db"), "--socket-path", str(tmp_path / "node.socket")]  # fmt: skip
    proc = subprocess.Popen([sys.executable, *argv], stderr=subprocess.PIPE, start_new_session=True)
    writer = None
    try:
        writer = wait_for(lambda: _writer(config), 10, what="the simulator opening its configuration")
        proc.send_signal(signal.SIGTERM)  # while it waits for the file's bytes, which never come
        assert proc.wait(10) == 1
        assert "cardano-node: SigTermException" in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # the one process this test started
            proc.wait(10)
        proc.stderr.close()
        if writer is not None:
            os.close(writer)


def _writer(fifo) -> int | None:
    """A writer's end of ``fifo`` once a process has it open for reading (a non-blocking open fails with ENXIO until
    then), else None; kept open, so that the reader waits for data rather than reading the end of the file."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None
