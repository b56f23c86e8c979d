"""A failed change never leaves a pair worse than it found it (issue 13), on a lab of its own.

Every node restarted as "the previous" runs on exactly the inputs it ran on (image, variables, secret
versions, recorded in its labels); a secret moved in its backend is a change; secrets are read under the
lock; Ctrl-C and SIGTERM stop at a safe point; and the fault matrix: each step of a rolling deploy crossed
with each fault, the invariant checked after every run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

from nodeops.edges.ssh import Fleet, execute
from nodeops.facts.container import parse_inspect
from nodeops.inventory import load_inventory
from nodeops.job import job_for, restore_job
from nodeops.render import RenderedFile
from tests.conftest import FAB, ROOT, fab, override_config, screen_pieces, simulator
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import (
    PairProbe,
    events,
    events_of,
    files_on,
    lb_answers,
    serving_nodes,
    status,
    superuser_sql,
    wait_for,
)

pytestmark = pytest.mark.lab

NAME, CIDR = "rst", "10.236.0.0/16"
SERVICE = "cl1"


@pytest.fixture(scope="module")
def rst(root):
    with own_lab(NAME, CIDR, deployed=True) as lab:
        yield lab


def variant(lab, tmp: Path, edit) -> Path:
    """The lab's inventory with ``edit`` applied, as a file in ``tmp`` (same environment, so the same lock)."""
    return inventory_variant(lab.inventory_file, tmp / "inventory.yaml", edit)


def set_variable(**values):
    return lambda d: d["services"][SERVICE]["variables"].update(values)


def containers(lab) -> dict:
    """Each node's container of SERVICE as `docker inspect` sees it (None when there is none)."""
    inv = load_inventory(lab.inventory_file)
    with Fleet(inv) as fleet:
        out = fleet.run(inv.services[SERVICE].nodes, f"docker container inspect nodeops-{SERVICE}")
        return {o.node.name: parse_inspect(o.value.stdout) if o.ok and o.value.exit_code == 0 else None for o in out}


def inputs(lab) -> dict[str, tuple]:
    """What each node's container says it was started from: (version, config, variables, secret versions)."""
    return {node: c and tuple(c.label(k) for k in ("version", "config", "variables", "secrets"))
            for node, c in containers(lab).items()}  # fmt: skip


def a_change():
    """An inventory edit that changes the pair's configuration hash and nothing the node does: the chain's LINK
    contract address (config.toml's LinkContractAddress, which the simulator does not read), new at each call, so
    both nodes always differ from it (a full roll, standby first). A variable the role does not declare would be
    refused (exit 2)."""
    return set_variable(LINK_CONTRACT_ADDRESS="0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8])


def secrets_manager(lab):
    endpoint = load_inventory(lab.inventory_file).secret_backends["aws"].endpoint_url
    return boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def put_key(lab, secret: str, key: str, change) -> str:
    """A new AWSCURRENT version of ``secret`` with ``key`` changed by ``change``; returns its version id."""
    sm = secrets_manager(lab)
    doc = json.loads(sm.get_secret_value(SecretId=secret, VersionStage="AWSCURRENT")["SecretString"])
    doc[key] = change(doc[key])
    return sm.put_secret_value(SecretId=secret, SecretString=json.dumps(doc))["VersionId"]


def loaded_config_digest(job) -> str:
    """The simulator's config_sha256 for a node started on ``job``'s files: its own merge of the -config files in
    the order of the command line, in memory (rpc.toml is a secret file: it never touches the disk here)."""
    sim = simulator()
    merged: dict = {}
    for arg in job.rendered.command:
        name = arg.rsplit("/", 1)[-1]
        if arg.startswith(job.role.mount + "/") and name in job.rendered.files and name != "secrets.toml":
            if job.rendered.command[job.rendered.command.index(arg) - 1] == "-config":
                sim.config_merge(merged, sim._toml_load(job.rendered.files[name].data.decode(), "config"))
    return hashlib.sha256(json.dumps(sim.without_urls(merged), sort_keys=True).encode()).hexdigest()


def assert_whole(lab, watch: float = 2.0) -> str:
    """The invariant after a run: exactly one node serves, directly and through the load balancer, at every 100 ms
    sample for ``watch`` seconds; each node's container runs on the inputs its labels name (they render again to
    its config label, and the active's own config digest is that of those inputs). Returns the active."""
    wait_for(lambda: len(serving_nodes(lab, SERVICE)) == 1 and lb_answers(lab, SERVICE), "one node serving", 30)
    with PairProbe(lab.inventory_file, SERVICE) as probe:
        time.sleep(watch)
    bad = [(round(t - probe.samples[0][0], 1), nodes, lb) for t, nodes, lb in probe.samples
           if sum(nodes) != 1 or lb is None]  # fmt: skip
    assert not bad, f"samples without exactly one node serving: {bad[:10]}\n{probe.explain(lab=lab)}"
    inv = load_inventory(lab.inventory_file)
    service = inv.services[SERVICE]
    current = job_for(inv, service)
    (active,) = serving_nodes(lab, SERVICE)
    for node, c in containers(lab).items():
        if c is None or not c.running:
            continue
        job = restore_job(inv, current, node, c)
        assert job.rendered.config_hash == c.label("config"), (node, "its labels render to another config")
        if node == active:
            with Fleet(inv) as fleet:
                host = next(n.host for n in service.nodes if n.name == node)
                meta = json.loads(fleet.http_get(host, 6688, "/health")[1])["meta"]
            assert meta["config_sha256"] == loaded_config_digest(job), (node, "serves another config than its labels")
    return active


# ---------------------------------------------------------------- issue 13, item 1


def test_a_change_that_moves_the_lease_is_refused_before_anything_changes(rst, tmp_path):
    """The change points the pair at another database owned by the same role. Rolled, the new standby finds that
    database's lease free and serves beside the active; today's main then restarted the old containers on the new
    render, and both nodes held a lease, each in its own database (status: unsafe). Refused now, dry run too."""
    assert_whole(rst)
    superuser_sql(rst, f"DROP DATABASE IF EXISTS {SERVICE}r; CREATE DATABASE {SERVICE}r OWNER {SERVICE};")
    before = inputs(rst)
    target = str(variant(rst, tmp_path, set_variable(DATABASE_NAME=f"{SERVICE}r")))
    with PairProbe(rst.inventory_file, SERVICE) as probe:
        dry = fab("deploy", "--inventory", target, "--service", SERVICE, "--dry-run")
        res = fab("deploy", "--inventory", target, "--service", SERVICE)
    for run in (dry, res):
        out = run.stdout + run.stderr
        assert run.returncode == 4, out
        assert f"the change moves the lease (DATABASE_NAME {SERVICE} -> {SERVICE}r)" in out, out
    assert not probe.both and not probe.gaps, probe.explain()
    assert inputs(rst) == before
    assert status(NAME, "--service", SERVICE)[SERVICE]["state"] == "healthy"
    assert_whole(rst)


def upgrade(doc: dict) -> None:
    """The lab's pair (2.10.0) moved to the lab's other simulated version, 2.11.0."""
    doc["services"][SERVICE]["image"] = doc["services"][SERVICE]["image"].replace(":2.10.0", ":2.11.0")


def database_version(lab) -> str:
    """The version SERVICE's database records (node_versions), read as its superuser."""
    return superuser_sql(lab, "SELECT version FROM node_versions", database=SERVICE).strip()


def test_an_upgrade_that_migrated_the_database_then_failed_is_put_back_on_the_new_image(rst, tmp_path, figures):
    """The pair on 2.10.0; the change: 2.11.0 with a ROOT_DIR the node cannot create (/root is not its user's). The
    new standby takes the lease, migrates the database to 2.11.0 (node_versions) and only then stops on the root
    directory; 2.10.0 refuses to start on that database. Today's main started both nodes again on 2.10.0 into that
    refusal (SERVICE DOWN), saying the standby's previous container "was started again". Now each node goes back on
    its previous inputs on 2.11.0, one serves and the other waits, and the message says why and names the fix
    forward (ROOT_DIR), which then deploys."""
    assert_whole(rst)
    before = inputs(rst)
    assert {v[0] for v in before.values()} == {"2.10.0"} and database_version(rst) == "2.10.0", before
    target = variant(rst, tmp_path, lambda d: (upgrade(d), set_variable(ROOT_DIR="/root/cl")(d)))
    try:
        with PairProbe(rst.inventory_file, SERVICE) as probe:
            res = fab("deploy", "--inventory", str(target), "--service", SERVICE, timeout=400)
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        assert "Permission denied: '/root/cl'" in out, out  # the new node's own failure, after it migrated
        assert database_version(rst) == "2.11.0"
        assert "the database was migrated to 2.11.0 by " in out and "2.10.0 refuses to run on it" in out, out
        assert "fix forward: correct variable ROOT_DIR in the inventory, then deploy" in out, out
        assert "previous container was started again" not in out and "SERVICE DOWN" not in out, out
        active = assert_whole(rst)
        assert both_run(rst), containers(rst)  # the other node waits: the pair has its standby
        after = inputs(rst)
        for node, (version, _config, variables, secrets) in after.items():  # its own inputs, on the new image
            assert (version, variables, secrets) == ("2.11.0", *before[node][2:]), (node, after[node], before[node])
        end = last_audit_end()
        assert end["exit_code"] == 1 and f"{active} serves" in end["error"], end
        figures(f"upgrade failed after the takeover: put back on 2.11.0, longest load balancer gap "
              f"{max(probe.gaps, default=0):.2f}s")  # fmt: skip
        fixed = fab("deploy", "--inventory", str(variant(rst, tmp_path, upgrade)), "--service", SERVICE, timeout=400)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert {v[0] for v in inputs(rst).values()} == {"2.11.0"}
        assert_whole(rst)
    finally:  # back to the lab's 2.10.0 for the next tests: the database first, which 2.10.0 checks at boot
        superuser_sql(rst, "UPDATE node_versions SET version = '2.10.0'", database=SERVICE)
        back = fab("deploy", "--env", NAME, "--service", SERVICE, timeout=400)
        assert back.returncode == 0, back.stdout + back.stderr


# ---------------------------------------------------------------- issue 13, item 2


def test_a_secret_moved_in_its_backend_is_a_change_and_never_restarts_a_node_on_it(rst):
    """A console saved the keystore password with a trailing newline: the node cannot decrypt its keys with it.
    deploy names the moved version and rolls for it; the new standby fails at the handover and both nodes go back
    to the version they ran; promote-standby (twice) restarts the old active on its own version, not the new one."""
    before = inputs(rst)
    moved = put_key(rst, f"{SERVICE}/WalletSecret", "password", lambda v: v + "\n")
    dry = fab("deploy", "--env", NAME, "--service", SERVICE, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    named = [e["message"] for e in events(dry) if e.get("secret_version_moved")]
    assert named and all(m.startswith("secret keystore: version ") and m.endswith(moved[:8]) for m in named), named
    assert "would change" in dry.stdout and inputs(rst) == before
    res = fab("deploy", "--env", NAME, "--service", SERVICE, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 1 and "could not decrypt key" in out, out
    assert inputs(rst) == before
    assert_whole(rst)
    checked = [e for e in events(fab("check", "--env", NAME, "--service", SERVICE, "--json")) if e["check"] == "drift"]
    assert [(c["result"], "secret keystore: version" in c["reason"]) for c in checked] == [("warn", True)], checked
    for _ in range(2):
        promoted = fab("promote-standby", "--env", NAME, "--service", SERVICE)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        assert inputs(rst) == before
        assert_whole(rst)
    put_key(rst, f"{SERVICE}/WalletSecret", "password", lambda v: v[:-1])  # the operator mends it: a new version
    mended = fab("deploy", "--env", NAME, "--service", SERVICE, timeout=300)
    assert mended.returncode == 0, mended.stdout + mended.stderr
    after = inputs(rst)
    assert {a[1] for a in after.values()} != {b[1] for b in before.values()}  # the config hash covers the version
    assert_whole(rst)


# ---------------------------------------------------------------- issue 13, item 3


@contextlib.contextmanager
def lock_table_held(lab):
    """Hold the bastion's lock table (acquire.flock) as another run taking its lock would, until the block ends:
    a run that wants the lock waits there (at most 30 s), after its preflight."""
    inv = load_inventory(lab.inventory_file)
    d = f"/root/.nodeops/{inv.environment}"
    go = f"{d}/go-{os.getpid()}"
    hold = (f"mkdir -p {d} && exec flock {d}/acquire.flock sh -c "
            f"'i=0; while [ ! -e {go} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; rm -f {go}'")  # fmt: skip
    with Fleet(inv) as fleet:
        holder = threading.Thread(target=execute, args=(fleet.bastion(), hold), daemon=True)
        holder.start()
        wait_for(lambda: execute(fleet.bastion(), f"flock -n {d}/acquire.flock true").exit_code != 0,
                 "the lock table to be held")  # fmt: skip
        try:
            yield lambda: execute(fleet.bastion(), f"ls {d}/runs/ 2>/dev/null").stdout.split()
        finally:
            execute(fleet.bastion(), f"touch {go}")
            holder.join(timeout=30)


def test_secrets_are_read_again_under_the_lock(rst):
    """A deploy that read its secrets, then waited for the lock while another run changed one, deploys the version
    that is current once it holds the lock (today's main deployed the one it read before)."""
    assert_whole(rst)
    with lock_table_held(rst) as runs:
        proc = events_of(["deploy", "--env", NAME, "--service", SERVICE, "--json"])
        try:
            wait_for(lambda: any(r.endswith(".flock") for r in runs()), "the deploy to wait for the lock", 60)
            version = put_key(rst, f"{SERVICE}/ApiSecret", "password", lambda v: v[::-1])
        except BaseException:
            proc.kill()
            raise
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    for node, (_, _, _, secrets) in inputs(rst).items():
        assert json.loads(secrets)["api_password"] == version, (node, secrets)
    assert_whole(rst)


# ---------------------------------------------------------------- issue 13, item 8


def on_terminal(args: list[str]) -> tuple[int, int]:
    """`fab ARGS` on a new pseudo-terminal (as a person runs it); returns (pid, the terminal's master fd)."""
    master, slave = pty.openpty()

    def controlling_terminal() -> None:  # its own session, the terminal its controlling one: Ctrl-C reaches it
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([str(FAB), *args], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=controlling_terminal, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    os.close(slave)
    return proc, master


def screen_text(seen: list[str]) -> str:
    """What the terminal shows so far, a piece of screen per line (tests.conftest.screen_pieces)."""
    return "\n".join(screen_pieces("".join(seen)))


def read_until(master: int, seen: list[str], marker: str, timeout: float = 120) -> None:
    """Read the terminal until a line of what it shows matches the regular expression ``marker``."""
    deadline = time.monotonic() + timeout
    while not re.search(marker, screen_text(seen), re.M):
        assert time.monotonic() < deadline, f"no {marker!r} in {''.join(seen)[-2000:]}"
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                seen.append(os.read(master, 65536).decode(errors="replace"))
            except OSError:  # the child closed the terminal
                return


def drain(master: int, seen: list[str], proc) -> None:
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen.append(chunk.decode(errors="replace"))
        elif proc.poll() is not None:
            break
    proc.wait(timeout=120)
    os.close(master)


def last_audit_end() -> dict:
    res = fab("audit", "--env", NAME, "--json")
    assert res.returncode == 0, res.stderr
    return [e for e in events(res) if e.get("event") == "end"][-1]


def test_ctrl_c_during_the_handover_finishes_it_then_stops_there_exits_130(rst, tmp_path):
    """Ctrl-C on the terminal during the handover: the handover finishes, the old active is started again on its own
    inputs as the standby and not replaced (rv7 #7: the run went on to replace it, then said "the change was
    complete when the stop came"); a second Ctrl-C is refused with a note; exit 130; one node serves; the message
    and the audit entry say what runs."""
    assert_whole(rst)
    before = inputs(rst)
    (active,) = serving_nodes(rst, SERVICE)
    standby = next(n for n in before if n != active)
    target = variant(rst, tmp_path, a_change())
    proc, master = on_terminal(["deploy", "--inventory", str(target), "--service", SERVICE])
    seen: list[str] = []
    read_until(master, seen, r"^\s*[\d.]+s\s+\S+\s+\S+\s+hand over from")  # the step, not the plan's line
    os.write(master, b"\x03")  # Ctrl-C, as the terminal sends it: SIGINT to the foreground group
    read_until(master, seen, "stopping at the next safe point")
    os.write(master, b"\x03")
    read_until(master, seen, "already stopping at a safe point")
    drain(master, seen, proc)
    out = screen_text(seen)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "is complete" not in out and "was complete" not in out, out[-3000:]
    assert assert_whole(rst) == standby  # the handover was finished
    after = inputs(rst)
    assert after[active] == before[active], (after, before)  # not replaced: back on its own inputs
    assert after[standby] != before[standby] and after[standby][1] != after[active][1], after  # this change
    assert containers(rst)[active].running, containers(rst)  # the standby again
    error = last_audit_end()["error"]
    assert last_audit_end()["exit_code"] == 130, error
    assert f"stopped after `hand over from {active} to {standby}" in error, error
    assert f"{active}'s container was started again on its own inputs as the standby, and it waits" in error, error
    assert f"{standby} runs this change, {active} does not" in error, error
    assert re.search(rf"now: .*{standby} serves \([^)]*config {after[standby][1][:12]}\)", error), error
    assert re.search(rf"now: .*{active} waits \([^)]*config {before[active][1][:12]}\)", error), error
    # the deploy the message names finishes the change: the pair whole again on it (the next test starts from there)
    finish = fab("deploy", "--inventory", str(target), "--service", SERVICE, timeout=300)
    assert finish.returncode == 0, finish.stdout + finish.stderr
    (config,) = {labels[1] for labels in inputs(rst).values()}
    assert config == after[standby][1]


@pytest.mark.parametrize("when", ["started nodeops-", "waiting for the lease"], ids=["replacing", "awaited"])
def test_sigterm_before_the_handover_puts_the_standby_back_as_it_was(rst, tmp_path, when):
    """A CI runner cancels with SIGTERM while the standby is replaced, or once the new standby waits: stopped before
    the handover, that standby back on its previous container and inputs, the active as it was; exit 130. rv7 #6:
    the standby was left on the new inputs, a mixed pair that promote-standby then refused (exit 4)."""
    assert_whole(rst)
    before = inputs(rst)
    (active,) = serving_nodes(rst, SERVICE)
    standby = next(n for n in before if n != active)
    target = variant(rst, tmp_path, a_change())
    proc = events_of(["deploy", "--inventory", str(target), "--service", SERVICE, "--json"])
    while line := proc.stdout.readline():  # readline, not iteration: communicate() must see what is left
        if line.startswith("{") and json.loads(line).get("message", "").startswith(when):
            proc.send_signal(signal.SIGTERM)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    error = last_audit_end()["error"]
    assert "stopped before `" in error and "as asked, undoing this run's change" in error, error
    assert f"{standby}'s previous container was started again on its own inputs, and it waits" in error, error
    assert re.search(rf"now: .*{active} serves \([^)]*config {before[active][1][:12]}\)", error), error
    assert re.search(rf"now: .*{standby} waits \([^)]*config {before[standby][1][:12]}\)", error), error
    assert inputs(rst) == before
    assert serving_nodes(rst, SERVICE) == [active]
    assert_whole(rst)
    promote = fab("promote-standby", "--env", NAME, "--service", SERVICE, "--yes")  # the pair as it was found
    assert promote.returncode == 0, promote.stdout + promote.stderr
    assert serving_nodes(rst, SERVICE) == [standby]


def health(lab, node: str) -> int | None:
    """The status ``node`` of SERVICE answers /health with (through the bastion): 200, or 503 while it holds the
    lease unhealthy; None when it answers nothing (a standby, or unreachable)."""
    inv = load_inventory(lab.inventory_file)
    host = next(n.host for n in inv.services[SERVICE].nodes if n.name == node)
    with Fleet(inv) as fleet:
        return None if (r := fleet.http_get(host, 6688, "/health")) is None else r[0]


def serves(lab, node: str) -> bool:
    """Does ``node`` of SERVICE answer 200 on /health (through the bastion)?"""
    return health(lab, node) == 200


def reaches(lab, node: str) -> bool:
    """Does a new SSH session through the bastion run a command on ``node``?"""
    inv = load_inventory(lab.inventory_file)
    with Fleet(inv) as fleet:
        (out,) = fleet.run([n for n in inv.nodes if n.name == node], "true")
        return out.ok and out.value.exit_code == 0


def test_a_standby_that_took_over_since_the_plan_is_not_replaced(rst, tmp_path):
    """The active is cut off right after the run observed the pair (the run held still there, as a slow link or
    a paused laptop would): the standby takes the lease and serves. On reconnect today's main went on with its stale
    plan and replaced the standby, the node that served. Now each node a replace stops is checked not to hold the
    lease just before: the run stops there (exit 4), saying what serves, the serving node untouched."""
    active = ready(rst)
    standby = next(n.name for n in load_inventory(rst.inventory_file).services[SERVICE].nodes if n.name != active)
    before = inputs(rst)
    change = a_change()  # a minute to open a session: a session opened as the run was paused waits out the pause
    target = variant(rst, tmp_path, lambda d: (change(d), d["ssh"].update(connect_timeout=60)))
    netns = f"nodeops-{NAME}-{active}"
    proc = events_of(["deploy", "--inventory", str(target), "--service", SERVICE, "--json"])
    try:
        while line := proc.stdout.readline():  # the diff's first line: the pair observed, nothing changed yet
            if line.startswith("{") and "diff" in json.loads(line):
                proc.send_signal(signal.SIGSTOP)
                break
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
        wait_for(lambda: serves(rst, standby), f"{standby} to take the lease", 60)
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
        with contextlib.suppress(AssertionError):  # reconnected: a new session reaches the node again
            wait_for(lambda: reaches(rst, active), f"{active} to be reachable again", 30)
        proc.send_signal(signal.SIGCONT)
    try:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 4, out + err
        assert f"{SERVICE} {standby}: holds the lease now" in err and f"{standby} was not replaced" in err, err
        assert f"{standby} serves" in err, err
        assert inputs(rst)[standby] == before[standby] and serves(rst, standby)  # untouched, serving throughout
        assert last_audit_end()["exit_code"] == 4
    finally:  # the old active lost its lease while cut off and exits on reconnect: the next deploy rolls from there
        repair = fab("deploy", "--env", NAME, "--service", SERVICE, timeout=300)
        assert repair.returncode == 0, repair.stdout + repair.stderr
    assert_whole(rst)


# ---------------------------------------------------------------- the fault matrix

STEPS = {  # a rolling deploy's steps, each by the event that says it happened, and the node the fault hits
    "standby-replaced": lambda e, seen: (
        e["message"].startswith("started nodeops-") and not any(s["message"].startswith("hand over from") for s in seen)
    ),  # fmt: skip
    "during-handover": lambda e, _seen: e["message"].startswith("hand over from"),
    "after-takeover": lambda e, _seen: e["message"].startswith("took over from"),
    "old-active-replaced": lambda e, seen: (
        e["message"].startswith("started nodeops-") and any(s["message"].startswith("took over from") for s in seen)
    ),  # fmt: skip
}
FAULTS = ("container-exits", "node-unreachable", "sigint", "sigkill")
MATRIX: list[tuple[str, str, int, float]] = []  # (step, fault, exit code, longest load balancer gap): the note's table


# ---------------------------------------------------------------- issue 14 review: an honest rollback


def cut_off_at(args: list[str], node: str, marker: str) -> tuple[subprocess.Popen, str, str]:
    """`fab ARGS` (with --json), ``node``'s link cut when a message starting with ``marker`` comes (after a
    takeover), and up again once the run ended; returns the ended process, its stdout and its stderr."""
    netns = f"nodeops-{NAME}-{node}"
    proc = events_of(args)
    seen: list[str] = []
    try:
        while line := proc.stdout.readline():
            if line.startswith("{") and (message := json.loads(line).get("message")):
                seen.append(message)
                if message.startswith(marker):
                    subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
                    break
        assert any(m.startswith("took over from") for m in seen), seen
        out, err = proc.communicate(timeout=300)
    finally:
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "up"], check=True)
    return proc, out, err


def repair_after_the_cut(lab, node: str) -> None:
    """The deploy a person runs once the cut ``node`` is back. It lost its lease while cut off and exits on
    reconnect; until its refresh fails it still answers as the active (its database connection may sit in TCP's
    retransmission back-off for tens of seconds after the link is up), so the deploy waits for that first."""
    with contextlib.suppress(AssertionError):
        wait_for(lambda: reaches(lab, node) and health(lab, node) is None,  # a 503 holds the lease too
                 f"{node}, back, to find its lease lost", 120)  # fmt: skip
    repair = fab("deploy", "--env", NAME, "--service", SERVICE, timeout=300)
    assert repair.returncode == 0, repair.stdout + repair.stderr


def test_the_old_active_that_takes_over_while_awaited_as_the_standby_is_left_serving(rst, tmp_path):
    """Review of issue 13 (rv4): the new active is cut off after the handover, while the old active, replaced on
    the change's inputs, is awaited as the standby; it takes the lease the cut node left and serves. The run took
    that for "two actives?" and put the node back on its previous container, stopping the one node that served (a
    second outage of 1.9 s). Now it is left serving, and the message says so, and that the pair has no standby
    until the cut node is back, with the command to run then."""
    active = ready(rst)
    standby = next(n.name for n in load_inventory(rst.inventory_file).services[SERVICE].nodes if n.name != active)
    change = a_change()
    target = variant(rst, tmp_path, lambda d: (quick(d), change(d)))
    args = ["deploy", "--inventory", str(target), "--service", SERVICE, "--json"]
    proc, out, err = cut_off_at(args, standby, f"await-waiting {active}")  # the old active replaced, and awaited
    try:
        assert proc.returncode == 1, out + err
        assert f"{SERVICE} {active}: took the lease while it was awaited as the standby" in err, err
        assert "two actives" not in err and "previous container" not in err, err
        assert f"{active} serves" in err and f"{standby} is unreachable, so the pair has no standby" in err, err
        assert f"deploy --env {NAME} --service {SERVICE}" in err, err
        wanted = yaml.safe_load(target.read_text())["services"][SERVICE]["variables"]["LINK_CONTRACT_ADDRESS"]
        ran = json.loads(containers(rst)[active].label("variables"))  # the change's inputs, not put back
        assert serves(rst, active) and ran["LINK_CONTRACT_ADDRESS"] == wanted, ran
    finally:
        repair_after_the_cut(rst, standby)
    assert_whole(rst)


def test_rollback_starts_the_text_that_ran_and_announces_the_config_it_starts(rst, tmp_path):
    """A deploy with an override of config.toml in the operator's roles/, then `fab rollback` with the override
    still there: the node is started on the text that ran before (not today's templates), a line says that today's
    templates differ, and the config hash announced is the one labelled, recorded and served."""
    path = variant(rst, tmp_path, lambda _doc: None)
    override_config(tmp_path, "SecureCookies = false", "SecureCookies = true")
    res = fab("deploy", "--inventory", str(path), "--json", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    texts = {n: json.loads(c.label("files"))["config.toml"] for n, c in containers(rst).items()}
    assert all("SecureCookies = true" in text for text in texts.values()), texts  # so the checks below can fail

    res = fab("rollback", "--inventory", str(path), "--service", SERVICE, "--yes", "--json", timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    messages = [e.get("message", "") for e in events(res)]
    assert ("note: today's templates render config.toml differently from what ran then: the text that ran is "
            "started") in messages, messages  # fmt: skip
    announced = next(m for m in messages if m.startswith("rolling back to "))
    after = containers(rst)
    (config,) = {c.label("config") for c in after.values()}
    assert f"(config {config[:12]}, digest " in announced, (announced, config)
    assert all("SecureCookies = false" in json.loads(c.label("files"))["config.toml"] for c in after.values())
    (result,) = last_audit_end()["results"]
    assert result["config"] == config and "SecureCookies = false" in result["files"]["config.toml"]
    # the active serves the very text its label names (the simulator's digest of the config it read)
    wait_for(lambda: len(serving_nodes(rst, SERVICE)) == 1, "one node serving", 30)
    (active,) = serving_nodes(rst, SERVICE)
    inv = load_inventory(rst.inventory_file)
    current = job_for(inv, inv.services[SERVICE])
    text = json.loads(after[active].label("files"))["config.toml"]
    files = {**current.rendered.files, "config.toml": RenderedFile("config.toml", text.encode(), False)}
    ran = dataclasses.replace(current, rendered=dataclasses.replace(current.rendered, files=files))
    with Fleet(inv) as fleet:
        host = next(n.host for n in inv.services[SERVICE].nodes if n.name == active)
        meta = json.loads(fleet.http_get(host, 6688, "/health")[1])["meta"]
    assert meta["config_sha256"] == loaded_config_digest(ran), "the active serves another config than its label"

    back = fab("deploy", "--inventory", str(rst.inventory_file), timeout=600)  # the lab's own state, for what follows
    assert back.returncode == 0, back.stdout + back.stderr


def test_a_promotion_whose_new_active_is_cut_off_after_it_took_over_ends_with_the_old_active_serving(rst, tmp_path):
    """Review of issue 13 (rv7): the node that took over is cut off right after the takeover. The run shredded its
    lease file first, waiting on it up to the whole command timeout, while the old active stayed stopped: nothing
    served for 42 s, and the run ended exit 0, "active now; outage 0.50s". With the cut a moment later, the old
    active, started again as the standby, took the lease the cut node lost, and the run ended exit 1 with every
    secret file left on the node that served. Now the old active is started again first; once it has taken over it
    is left serving, its files shredded, and the message says so and that the pair has no standby."""
    active = ready(rst)
    standby = next(n.name for n in load_inventory(rst.inventory_file).services[SERVICE].nodes if n.name != active)
    target = variant(rst, tmp_path, quick)
    args = ["promote-standby", "--inventory", str(target), "--service", SERVICE, "--yes", "--json"]
    proc, out, err = cut_off_at(args, standby, f"took over from {active}")
    try:
        assert proc.returncode == 1, out + err
        assert "Traceback" not in err and "SERVICE DOWN" not in err, err
        assert f"{active} serves" in err and f"{standby} is unreachable, so the pair has no standby" in err, err
        assert serves(rst, active), containers(rst)
        assert files_on(rst, active, SERVICE) == []  # it serves: it read every file, none stays
        end = last_audit_end()
        assert end["exit_code"] == 1 and f"{active} serves" in (end["error"] or ""), end
    finally:
        repair_after_the_cut(rst, standby)
    assert_whole(rst)


def fault_node(step: str, event: dict, standby: str, active: str) -> str:
    """The node a fault at ``step`` hits: the one the step acts on (the standby that is to take over, during it)."""
    return standby if step == "during-handover" else event["node"] or active


def strike(lab, fault: str, node: str, proc) -> None:
    netns = f"nodeops-{NAME}-{node}"
    if fault == "container-exits":
        inv = load_inventory(lab.inventory_file)
        with Fleet(inv) as fleet:
            fleet.run([n for n in inv.nodes if n.name == node], f"docker kill nodeops-{SERVICE}")
    elif fault == "node-unreachable":
        subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "down"], check=True)
    else:
        proc.send_signal(signal.SIGINT if fault == "sigint" else signal.SIGKILL)


def both_run(lab) -> bool:
    """Does each node of SERVICE have a running container?"""
    return all(c is not None and c.running for c in containers(lab).values())


def ready(lab) -> str:
    """Where a cell starts: one node serves, directly and through the load balancer, and the other node's container
    runs (the standby, waiting for the lease). The cell before left the pair so (it asserted the invariant over its
    sampling window, or repaired the pair with a deploy); its inputs differ from cell to cell, and each cell's change
    differs from all of them, so every cell rolls both nodes, standby first. A cell that failed may have left the
    pair otherwise: the deploy a person would run then puts it back first, so that one failure is not reported as
    every cell after it. Returns the active."""

    def whole() -> bool:
        return len(serving_nodes(lab, SERVICE)) == 1 and lb_answers(lab, SERVICE) and both_run(lab)

    with contextlib.suppress(AssertionError):
        wait_for(whole, "one node serving and the other's container running", 30)
    if not whole():
        repair = fab("deploy", "--env", NAME, "--service", SERVICE, timeout=300)
        assert repair.returncode == 0, repair.stdout + repair.stderr
        wait_for(lambda: len(serving_nodes(lab, SERVICE)) == 1 and lb_answers(lab, SERVICE), "one node serving", 30)
    assert both_run(lab), containers(lab)
    (active,) = serving_nodes(lab, SERVICE)
    return active


def quick(doc: dict) -> None:
    """An unreachable node costs seconds, not minutes: short connect and command timeouts, no retries."""
    doc["ssh"].update(connect_timeout=2, connect_retries=0, command_timeout=20)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("step", STEPS)
def test_fault_matrix(rst, tmp_path, step, fault):
    """One cell: a rolling deploy, the fault struck at the step. After the run (and, for SIGKILL, `lock.release
    --force` and a rerun), the invariant: exactly one node serves, directly and through the load balancer, at every
    sample; each node runs on the inputs it is labelled with; the other node's container runs (the standby), unless
    the fault cut that node off; no secret file is left but the standby's .api; the audit log's last entry says what
    runs."""
    active = ready(rst)
    standby = next(n.name for n in load_inventory(rst.inventory_file).services[SERVICE].nodes if n.name != active)
    change = a_change()
    target = variant(rst, tmp_path, lambda d: (quick(d), change(d)))
    args = ["deploy", "--inventory", str(target), "--service", SERVICE, "--json"]
    hit = None
    with PairProbe(rst.inventory_file, SERVICE, nodes=False) as probe:
        proc = events_of(args)
        seen: list[dict] = []
        try:
            while line := proc.stdout.readline():
                if not line.startswith("{"):
                    continue
                seen.append(json.loads(line))
                if seen[-1].get("event") == "step" and STEPS[step](seen[-1], seen[:-1]):
                    hit = fault_node(step, seen[-1], standby, active)
                    strike(rst, fault, hit, proc)
                    break
            out, err = proc.communicate(timeout=300)
        finally:
            if fault == "node-unreachable" and hit:
                subprocess.run(["ip", "-n", f"nodeops-{NAME}-{hit}", "link", "set", "eth0", "up"], check=True)
        assert hit, f"the run ended before step {step}: {[e.get('message') for e in seen]}"
        code = proc.returncode
        if fault == "sigkill":
            assert code == -signal.SIGKILL
            assert fab("lock.release", "--env", NAME, "--service", SERVICE, "--force").returncode == 0
            rerun = fab("deploy", "--inventory", str(target), "--service", SERVICE, timeout=300)
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
            code, err = 0, rerun.stderr
        else:
            expected = {"container-exits": {1}, "node-unreachable": {1, 4}, "sigint": {130}}[fault]
            assert code in expected and "Traceback" not in err, (code, out[-2000:], err)
            # the pair serves again while the node is still cut off: its new active cut off after it took over, the
            # old active (stopped by the handover) was started again and took the lease once it expired
            assert fault != "node-unreachable" or "SERVICE DOWN" not in err, err
        now = assert_whole(rst)
    gap = max(probe.gaps, default=0.0)
    MATRIX.append((step, fault, code, gap))
    cut = hit if fault == "node-unreachable" else None  # the run could not reach it to shred its files
    for node in {active, standby} - {cut}:
        left = files_on(rst, node, SERVICE)
        assert left in ([], [".api"]) and not (node == now and left), (node, left)
    end = last_audit_end()
    assert end["exit_code"] == code, end
    assert now in (end["error"] or "") or any(r.get("active") == now for r in end["results"]), end
    # after a fault the run could reach, the pair keeps its standby (the other node's container runs: it waits, as
    # only one node serves); the repair a person would run after a cut shreds what the cut-off node kept. A repair
    # also after a failed check, so that the next cell starts from a whole pair
    kept = both_run(rst)
    if cut or not kept:
        repair = fab("deploy", "--env", NAME, "--service", SERVICE, timeout=300)
        assert repair.returncode == 0, repair.stdout + repair.stderr
    if cut:
        assert files_on(rst, cut, SERVICE) in ([], [".api"]), files_on(rst, cut, SERVICE)
    assert cut or kept, ("the run left the pair without its standby", containers(rst))


def test_fault_matrix_table(figures):
    """Says the matrix (runs after its cells, in their process) as the run's figures: step, fault, exit code, longest
    load balancer gap."""
    if not MATRIX:
        pytest.skip("no cell of the matrix ran")
    lines = [f"fault matrix: {'step':<22}{'fault':<18}{'exit':>5}{'longest gap':>13}"]
    lines += [f"fault matrix: {step:<22}{fault:<18}{code:>5}{gap:>12.2f}s" for step, fault, code, gap in MATRIX]
    lines.append(f"fault matrix: {len(MATRIX)} cells passed; longest outage {max(g for *_, g in MATRIX):.2f}s")
    figures("\n".join(lines))
