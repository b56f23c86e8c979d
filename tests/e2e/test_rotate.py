"""fab rotate-secrets on a lab of its own: real PostgreSQL, moto_server's Secrets Manager, two simulator pairs.

Every check reads the systems themselves: the secret's stages from Secrets Manager, logins against
PostgreSQL through the bastion, logins against the node's API, the load balancer every 100 ms.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from lab.aws import secrets_client
from lab.host import Lab
from lab.topology import plan_lab
from nodeops.edges.ssh import Fleet
from nodeops.inventory import load_inventory
from tests.conftest import fab
from tests.e2e.conftest import own_lab
from tests.e2e.probe import (
    PairProbe,
    Watch,
    events,
    events_of,
    files_on,
    killed_at,
    lb_answers,
    on_the_operators_disk,
    pg_accepts,
    serving_nodes,
    status,
    superuser_sql,
    terminated_at,
    wait_for,
)

pytestmark = pytest.mark.lab

NAME, CIDR = "rot", "10.224.0.0/16"
PLAN = plan_lab(NAME, CIDR, 4)


@pytest.fixture(scope="module")
def rot(root):
    with own_lab(NAME, CIDR, deployed=True) as lab:
        yield lab


# ---------------------------------------------------------------- reading the systems


def stages(lab: Lab, name: str, unlabelled: bool = False) -> dict[str, list[str]]:
    """Version id -> its stages; versions with no stage left (deprecated) only when asked for."""
    found = secrets_client(lab.load_state()["secrets_port"]).describe_secret(SecretId=name)["VersionIdsToStages"]
    return {v: s for v, s in found.items() if s or unlabelled}


def by_stage(lab: Lab, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for version, labels in stages(lab, name).items():
        for label in labels:
            out.setdefault(label, []).append(version)
    return out


def document(lab: Lab, name: str, stage: str = "AWSCURRENT") -> dict[str, str]:
    client = secrets_client(lab.load_state()["secrets_port"])
    return json.loads(client.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])


def api_login(lab: Lab, service: str, email: str, password: str) -> int:
    """POST /sessions on the active node (the standby has no listener): the status it answers."""
    inv = load_inventory(lab.inventory_file)
    body = json.dumps({"email": email, "password": password}).encode()
    with Fleet(inv) as fleet:
        for node in inv.services[service].nodes:
            reply = fleet.request(node.host, 6688, "POST", "/sessions", body, {"Content-Type": "application/json"})
            if reply is not None:
                return reply.status
    raise AssertionError("no node answers")


def container(service: str, node: str, field: str = "{{.State.StartedAt}} {{.State.Running}}") -> str:
    res = fab("exec", "--env", NAME, "--nodes", node, "--json", "--command",
              f"docker inspect --format '{field}' nodeops-{service}")  # fmt: skip
    return next(e["stdout"].strip() for e in events(res) if e["event"] == "host")


def rotate(service: str, secret: str) -> subprocess.CompletedProcess:
    return fab("rotate-secrets", "--env", NAME, "--service", service, "--secret", secret, "--json")


def consistent(lab: Lab, service: str, old: str) -> str:
    """Exactly one AWSCURRENT, no AWSPENDING, the database takes the current password and not the old one,
    one node serves, the other waits, and the load balancer answers. Returns the current password."""
    staged = by_stage(lab, f"{service}/DBSecret")
    assert len(staged["AWSCURRENT"]) == 1 and "AWSPENDING" not in staged, staged
    current = document(lab, f"{service}/DBSecret")
    assert current["username"] == service and current["password"] != old
    assert pg_accepts(lab, service, service, current["password"])
    assert not pg_accepts(lab, service, service, old)
    assert len(serving_nodes(lab, service)) == 1 and lb_answers(lab, service)
    seen = status(NAME, "--service", service)[service]
    assert seen["state"] == "healthy", seen
    for node in (f"{service}-a", f"{service}-b"):  # no rollback container is left behind
        assert "nodeops-" + service + "-previous" not in fab("exec", "--env", NAME, "--nodes", node, "--command",
                                                             "docker ps -a --format '{{.Names}}'").stdout  # fmt: skip
    return current["password"]


def rotate_breaking(service: str, target: Callable[[dict], str | None], command: str,
                    freeze: bool = False) -> tuple[int, str, str | None]:  # fmt: skip
    """``rotate-secrets --secret db`` on ``service``; at its first event for which ``target`` names a node, ``command``
    runs there (once); with ``freeze``, the run is held (SIGSTOP) meanwhile, so that the fault lands right at that
    step, not a fab start later. Returns the run's exit code, its whole output and the node broken (None: never)."""
    proc = events_of(["rotate-secrets", "--env", NAME, "--service", service, "--secret", "db", "--json"])
    lines, broken = [], None
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("{") and (broken := target(json.loads(line))):
                if freeze:
                    os.kill(proc.pid, signal.SIGSTOP)
                try:
                    sabotage = fab("exec", "--env", NAME, "--nodes", broken, "--command", command)
                finally:
                    if freeze:
                        os.kill(proc.pid, signal.SIGCONT)
                assert sabotage.returncode == 0, sabotage.stdout + sabotage.stderr
                break
        rest, errors = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # a failed assertion above: the run must not go on holding the service's lock
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(lines) + rest + errors, broken


def release_lock(service: str) -> None:
    """The killed run's lock is stale: released as an operator would, after checking what it left."""
    res = fab("lock.release", "--env", NAME, "--service", service, "--force", "--json")
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------- the tests


def test_db_rotation_rolls_the_pair_onto_the_new_password_with_one_short_gap(rot, figures):
    since = time.time()
    old = document(rot, "cl1/DBSecret")
    old_version = by_stage(rot, "cl1/DBSecret")["AWSCURRENT"][0]
    inv = load_inventory(rot.inventory_file)
    with Watch(rot, [n.name for n in inv.nodes]) as watch, PairProbe(rot.inventory_file, "cl1") as probe:
        res = rotate("cl1", "db")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    steps = [e["step"] for e in events(res)
             if "step" in e and (e.get("secret") == "db" or e["step"].startswith("roll"))]  # fmt: skip
    assert steps == ["createSecret", "setSecret", "testSecret", "roll", "rolled", "finishSecret"], steps

    new = document(rot, "cl1/DBSecret")
    assert new["username"] == "cl1" and new["password"] != old["password"]
    assert by_stage(rot, "cl1/DBSecret")["AWSPREVIOUS"] == [old_version]
    assert document(rot, "cl1/DBSecret", "AWSPREVIOUS") == old
    consistent(rot, "cl1", old["password"])

    assert not probe.both, "two nodes served at once"
    assert len(probe.gaps) <= 1 and max(probe.gaps, default=0) < 2.0, probe.explain()
    took = next(e for e in events(res) if "outage_seconds" in e and "took over" in e["message"])
    figures(f"rotate db: planned handover outage {took['outage_seconds']:.2f}s; load balancer gap "
          f"{max(probe.gaps, default=0):.2f}s over {len(probe.samples)} samples")  # fmt: skip

    # The new value went nowhere it should not: output, any process's argv, the containers, the operator's disk.
    password = new["password"]
    assert password not in out
    assert not any(password in argv for argv in watch.argvs), "the new password was in a process argument list"
    # ... and the sampler did see the processes that would carry it: the roll's docker run and the files' upload
    assert watch.saw("docker", "run --detach --name nodeops-cl1 "), "the sampler never saw the roll's docker run"
    assert watch.saw("cat > /run/nodeops/cl1/"), "the sampler never saw an upload of the node's files"
    inspect = fab("exec", "--env", NAME, "--nodes", "cl1-a,cl1-b", "--command", "docker inspect nodeops-cl1")
    assert inspect.returncode == 0 and password not in inspect.stdout
    written = on_the_operators_disk([password], since, rot.dir)
    assert written == [], f"the new password reached the operator's disk: {written}"
    (active,) = serving_nodes(rot, "cl1")
    standby = ({"cl1-a", "cl1-b"} - {active}).pop()
    assert files_on(rot, active, "cl1") == [] and files_on(rot, standby, "cl1") == [".api"]
    # rv7 finding 4: the end entry says what runs, as deploy's does: the active, each node's config hash and secret
    # versions (both on the new version of the database secret now)
    end = next(e for e in reversed(events(res)) if e.get("event") == "end")
    (result,) = end["results"]
    assert result["now"]["active"] == active, result
    current = by_stage(rot, "cl1/DBSecret")["AWSCURRENT"][0]
    configs = {node["config"] for node in result["now"]["nodes"].values()}
    assert len(configs) == 1 and None not in configs, result
    assert all(current in node["secret_versions"].values() for node in result["now"]["nodes"].values()), result


def test_both_nodes_really_run_on_the_new_password(rot):
    """With restart policy `no` and the files shredded, a container cannot simply be restarted. Two honest
    stand-ins: every database session of the role is cut, so that each node must log in again with the
    password it holds (a standby that cannot exits; an active that cannot fails its health check); and
    each node is restarted by fab promote-standby, there and back, from files rendered from AWSCURRENT."""
    (active,) = serving_nodes(rot, "cl1")
    standby = ({"cl1-a", "cl1-b"} - {active}).pop()
    started = {n: container("cl1", n) for n in ("cl1-a", "cl1-b")}
    killed = superuser_sql(rot, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'cl1'")
    assert int(killed) >= 3  # the active's pool and lease connection, the standby's lease connection
    cut = time.time()

    def logged_in_again() -> bool:
        rows = superuser_sql(rot, "SELECT DISTINCT host(client_addr) FROM pg_stat_activity WHERE usename = 'cl1' "
                                  f"AND backend_start > to_timestamp({cut})").split()  # fmt: skip
        hosts = {n.host for n in load_inventory(rot.inventory_file).services["cl1"].nodes}
        return hosts <= set(rows)

    wait_for(logged_in_again, "both nodes to open new database sessions", timeout=20)
    time.sleep(3)  # a node refused at login would be gone by now (the standby retries every second)
    assert serving_nodes(rot, "cl1") == [active] and lb_answers(rot, "cl1")
    assert {n: container("cl1", n) for n in ("cl1-a", "cl1-b")} == started  # same containers, still running

    for expected in (standby, active):
        res = fab("promote-standby", "--env", NAME, "--service", "cl1", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        assert serving_nodes(rot, "cl1") == [expected]
    assert all(container("cl1", n) != started[n] for n in started)  # each was restarted and came back


def test_api_rotation_changes_the_login(rot):
    old = document(rot, "cl1/ApiSecret")
    assert api_login(rot, "cl1", old["username"], old["password"]) == 200
    inv = load_inventory(rot.inventory_file)
    with Watch(rot, [n.name for n in inv.nodes]) as watch:
        res = rotate("cl1", "api")
    assert res.returncode == 0, res.stdout + res.stderr
    new = document(rot, "cl1/ApiSecret")
    assert new["username"] == old["username"] and new["password"] != old["password"]
    assert api_login(rot, "cl1", old["username"], old["password"]) == 401
    assert api_login(rot, "cl1", new["username"], new["password"]) == 200
    staged = by_stage(rot, "cl1/ApiSecret")
    assert len(staged["AWSCURRENT"]) == 1 and "AWSPENDING" not in staged
    assert document(rot, "cl1/ApiSecret", "AWSPREVIOUS") == old
    assert new["password"] not in res.stdout + res.stderr
    assert not any(new["password"] in argv for argv in watch.argvs)
    assert watch.saw("fab", "rotate-secrets", "--secret api"), "the sampler did not watch the rotation"
    again = rotate("cl1", "api")  # and again: each run is a fresh rotation from the new current value
    assert again.returncode == 0 and api_login(rot, "cl1", new["username"], new["password"]) == 401


# Where a db rotation is cut (killed, or sent SIGTERM): the event it has just printed.
CUT_AT = pytest.mark.parametrize(
    ("point", "when"),
    [
        ("after setSecret", lambda e: e.get("step") == "setSecret" and e.get("secret") == "db"),
        ("after the first node restart", lambda e: e["message"].startswith("started nodeops-")),
    ],
    ids=["after-set-secret", "after-first-node-restart"],
)


@CUT_AT
def test_a_killed_rotation_is_completed_by_the_next_run(rot, point, when, figures):
    old = document(rot, "cl2/DBSecret")
    versions_before = len(stages(rot, "cl2/DBSecret", unlabelled=True))
    with PairProbe(rot.inventory_file, "cl2") as probe:
        seen = killed_at(["rotate-secrets", "--env", NAME, "--service", "cl2", "--secret", "db", "--json"], when)
        pending = by_stage(rot, "cl2/DBSecret")["AWSPENDING"]  # the run died between createSecret and finish
        assert by_stage(rot, "cl2/DBSecret")["AWSCURRENT"] != pending
        pending_password = document(rot, "cl2/DBSecret", "AWSPENDING")["password"]
        assert pg_accepts(rot, "cl2", "cl2", pending_password), "killed before setSecret had happened"
        assert lb_answers(rot, "cl2")  # the active was not touched yet
        # issue 17: status said "healthy", its lease read refused, and nothing of the rotation left under way
        left = status(NAME, "--service", "cl2")["cl2"]
        assert left["rotation"]["interrupted"] == ["db"], left
        assert left["rotation"]["finish"].endswith(f"rotate-secrets --env {NAME} --service cl2 --secret db")
        assert left["lease"].get("login_refused") is True and left["state"] == "degraded", left
        release_lock("cl2")
        rerun = rotate("cl2", "db")
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, out
    after = status(NAME, "--service", "cl2")["cl2"]
    assert after["rotation"] is None and after["state"] == "healthy" and "error" not in after["lease"], after
    assert "an interrupted run left reused" in out
    assert by_stage(rot, "cl2/DBSecret")["AWSCURRENT"] == pending  # the same version, no new one
    assert len(stages(rot, "cl2/DBSecret", unlabelled=True)) == versions_before + 1
    assert consistent(rot, "cl2", old["password"]) == pending_password
    assert not probe.both and len(probe.gaps) <= 1 and max(probe.gaps, default=0) < 2.0, probe.explain()
    figures(f"killed {point} (last event: {seen[-1]['message'][:60]}); the rerun completed it, gap "
          f"{max(probe.gaps, default=0):.2f}s")  # fmt: skip


@CUT_AT
def test_sigterm_undoes_a_rotation_before_the_roll_and_completes_it_during_the_roll(rot, point, when, figures):
    """Issue 17's review: SIGTERM said "no new step starts", then the rotation ran on and the run exited 0. Now: a
    stop before the roll undoes it (the database back on the current password, AWSPENDING removed, no container
    touched), one during the roll completes it; exit 130 either way, the message saying which, and it is true."""
    old, versions = document(rot, "cl1/DBSecret"), by_stage(rot, "cl1/DBSecret")
    started = {n: container("cl1", n) for n in ("cl1-a", "cl1-b")}
    code, seen, out = terminated_at(["rotate-secrets", "--env", NAME, "--service", "cl1", "--secret", "db", "--json"],
                                    when)  # fmt: skip
    assert code == 130, out
    note = next(e["message"] for e in seen if e.get("stopping"))
    assert note.startswith("SIGTERM: stopping at the next safe point: no new rotation starts"), note
    if point == "after setSecret":
        assert "cl1: stopped as asked before the roll; changed: the password of the database role" in out, out
        assert "undone: the database role <db_user> is back on its current password, db: AWSPENDING removed" in out
        assert by_stage(rot, "cl1/DBSecret") == versions and document(rot, "cl1/DBSecret") == old
        assert pg_accepts(rot, "cl1", "cl1", old["password"])
        assert {n: container("cl1", n) for n in ("cl1-a", "cl1-b")} == started and lb_answers(rot, "cl1")
    else:
        assert (
            "cl1: the stop came during the roll, past the last safe point, so the rotation was completed: db "
            "rotated, the new value current; now: " in out
        ), out
        consistent(rot, "cl1", old["password"])
        assert by_stage(rot, "cl1/DBSecret")["AWSPREVIOUS"] == versions["AWSCURRENT"]
    end = next(e for e in reversed(seen) if e.get("event") == "end")
    assert end["exit_code"] == 130, end
    figures(f"SIGTERM {point}: exit {code}; {'undone' if point == 'after setSecret' else 'completed'}")


def test_a_failing_test_leaves_every_secret_and_the_service_as_they_were(rot):
    """--secret all: the API password is changed, then PostgreSQL refuses the new database login (pg_hba
    rejects the role from the bastion; the nodes connect from elsewhere and are not affected). Both
    rotations are undone, AWSCURRENT moves nowhere, no container is touched."""
    api_before, db_before = document(rot, "cl2/ApiSecret"), document(rot, "cl2/DBSecret")
    stages_before = {s: stages(rot, s) for s in ("cl2/ApiSecret", "cl2/DBSecret")}
    started = {n: container("cl2", n) for n in ("cl2-a", "cl2-b")}
    hba = rot.host_dir("db") / "pgdata" / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host cl2 cl2 {PLAN.bastion.private_ip}/32 reject\n" + original)
    try:
        superuser_sql(rot, "SELECT pg_reload_conf()")
        time.sleep(0.5)
        res = rotate("cl2", "all")
    finally:
        hba.write_text(original)
        superuser_sql(rot, "SELECT pg_reload_conf()")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    error = out.strip().splitlines()[-1]
    assert error.startswith("nodeops: cl2: testSecret db failed") and "pg_hba.conf rejects" in error, error
    for fragment in ("the database role <db_user> is back on its current password",
                     "the API password is back on its current value", "api: AWSPENDING removed",
                     "db: AWSPENDING removed", "AWSCURRENT unchanged"):  # fmt: skip
        assert fragment in error, error
    assert "Traceback" not in out
    assert {s: stages(rot, s) for s in stages_before} == stages_before  # nothing moved, nothing left pending
    time.sleep(0.5)
    assert pg_accepts(rot, "cl2", "cl2", db_before["password"])
    assert api_login(rot, "cl2", api_before["username"], api_before["password"]) == 200
    assert {n: container("cl2", n) for n in ("cl2-a", "cl2-b")} == started and lb_answers(rot, "cl2")


def test_a_node_lost_during_the_roll_is_undone_and_the_pair_rolled_back(rot):
    """The replaced standby's container is removed right after it starts: the roll fails there. The
    database role goes back to the current password, the pair is rolled back onto it, AWSCURRENT stays."""
    old = document(rot, "cl1/DBSecret")
    stages_before = stages(rot, "cl1/DBSecret")
    (active,) = serving_nodes(rot, "cl1")
    standby = ({"cl1-a", "cl1-b"} - {active}).pop()
    code, out, _ = rotate_breaking(
        "cl1", lambda e: standby if e.get("message", "").startswith("started nodeops-") else None,
        "docker rm -f nodeops-cl1")  # fmt: skip
    assert code == 1, out
    error = out.strip().splitlines()[-1]
    assert "cl1: roll failed" in error and "the pair rolled back onto the current password" in error, error
    assert "db: AWSPENDING removed" in error and "NOT undone" not in error, error
    assert stages(rot, "cl1/DBSecret") == stages_before and document(rot, "cl1/DBSecret") == old
    assert pg_accepts(rot, "cl1", "cl1", old["password"])
    assert len(serving_nodes(rot, "cl1")) == 1 and lb_answers(rot, "cl1")
    promoted = fab("promote-standby", "--env", NAME, "--service", "cl1", "--json")  # the standby runs the current
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr  # password too: it can take over


def test_after_an_undone_rotation_the_audit_end_entry_says_what_runs_after_the_undo(rot):
    """rv7 finding 3: the node taking over is killed as the roll's handover begins; the undo rolls the pair back,
    which may hand over again. The audit log's end entry named the active the failure message saw before the undo.
    Now its result's ``now`` (and the message's last words) are what runs after the undo: the node that serves,
    each node's config hash and secret versions as its labels say."""

    def taking_over(event: dict) -> str | None:  # "hand over from A to B (...)": B, killed as the handover begins
        message = event.get("message", "")
        return message.split()[5] if event.get("event") == "step" and message.startswith("hand over from ") else None

    code, out, killed = rotate_breaking("cl1", taking_over, "docker kill nodeops-cl1", freeze=True)
    assert killed in ("cl1-a", "cl1-b") and code == 1, out
    assert "undone:" in out and "the pair rolled back onto the current password" in out, out
    (serving,) = serving_nodes(rot, "cl1")
    end = [e for e in events(fab("audit", "--env", NAME, "--json")) if e.get("event") == "end"][-1]
    assert end["op"] == "rotate-secrets" and end["result"] == "failed", end
    (result,) = end["results"]
    now = result["now"]
    assert now["active"] == serving, (now, serving)
    assert {n: node["state"] for n, node in now["nodes"].items()} == {
        serving: "serves", ({"cl1-a", "cl1-b"} - {serving}).pop(): "waits"}, now  # fmt: skip
    for node, seen in now["nodes"].items():  # each node's labels, read from the node itself
        config, secrets = container("cl1", node, "{{index .Config.Labels \"io.nodeops.config\"}} "
                                    "{{index .Config.Labels \"io.nodeops.secrets\"}}").split(" ", 1)  # fmt: skip
        assert (seen["config"], seen["secret_versions"]) == (config, json.loads(secrets)), (node, seen)
    # the message's last words are also what runs after the undo, not what served when the roll failed
    after = end["error"].rsplit("; after the undo, now: ", 1)[1]
    other = ({"cl1-a", "cl1-b"} - {serving}).pop()
    assert after.startswith(f"{serving} serves (") or f", {serving} serves (" in after, end["error"]
    assert f"{other} waits (" in after, end["error"]
    assert len(serving_nodes(rot, "cl1")) == 1 and lb_answers(rot, "cl1")


def test_a_database_password_the_database_refuses_stops_deploy_before_anything_is_replaced(rot):
    """Issue 13: "test a secret before a handover". A wrong database password saved in Secrets Manager (a console
    edit): deploy sees the version move, logs in with the new value before any container is replaced, and exits 4
    naming the secret reference; the pair is untouched (same containers, same start times, still serving)."""
    service, name, wrong = "cl2", "cl2/DBSecret", "Wrong-Db-Password-Sentinel-4242"
    client = secrets_client(rot.load_state()["secrets_port"])
    (before,) = by_stage(rot, name)["AWSCURRENT"]
    nodes = (f"{service}-a", f"{service}-b")
    started = {node: container(service, node, "{{.Id}} {{.State.StartedAt}} {{.State.Running}}") for node in nodes}
    active = serving_nodes(rot, service)
    # staged by hand: moto's put_secret_value moves AWSCURRENT off the version it created the secret with, not off
    # the one a rotation moved the label to since (update_secret_version_stage), leaving two versions AWSCURRENT
    text = json.dumps({**document(rot, name), "password": wrong})
    moved = client.put_secret_value(SecretId=name, SecretString=text, VersionStages=["CONSOLE"])
    client.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=moved["VersionId"],
                                       RemoveFromVersionId=before)  # fmt: skip
    assert by_stage(rot, name)["AWSCURRENT"] == [moved["VersionId"]]
    try:
        res = fab("deploy", "--env", NAME, "--service", service, "--json", timeout=600)
        assert res.returncode == 4, res.stdout[-3000:] + res.stderr
        assert "password authentication failed" in res.stderr, res.stderr
        assert (f"the database refuses the credentials this run would give the nodes (services.{service}.secrets."
                f"db_user (backend aws: '{name}' key 'username', version {moved['VersionId'][:8]}) and services."
                f"{service}.secrets.db (backend aws: '{name}' key 'password', version {moved['VersionId'][:8]})): a "
                "node started on them could not boot; nothing was changed") in res.stderr, res.stderr  # fmt: skip
        steps = [e["message"] for e in events(res) if e.get("event") == "step"]
        assert any(m.startswith(f"secret db: version {before[:8]} -> ") for m in steps), steps
        assert not any(m.startswith(("replace ", "started ", "hand over")) for m in steps), steps
        assert wrong not in res.stdout + res.stderr
        assert {node: container(service, node, "{{.Id}} {{.State.StartedAt}} {{.State.Running}}")
                for node in nodes} == started  # fmt: skip
        assert serving_nodes(rot, service) == active and lb_answers(rot, service)
    finally:
        client.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=before,
                                           RemoveFromVersionId=moved["VersionId"])  # fmt: skip
    assert status(NAME, "--service", service)[service]["state"] == "healthy"


def test_keystore_is_refused_with_the_explanation(rot):
    before = stages(rot, "cl1/WalletSecret")
    res = rotate("cl1", "keystore")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("nodeops: --secret keystore: the Chainlink node has no command to change its "
                                 "keystore password") and "docs/commands/rotate-secrets.md" in res.stderr  # fmt: skip
    assert res.stdout == "" and stages(rot, "cl1/WalletSecret") == before


def test_after_all_that_no_rendered_file_is_left_but_the_standbys_api(rot):
    """Every file the rotations rendered was shredded, but each standby's .api (read only at takeover)."""
    for service in ("cl1", "cl2"):
        (active,) = serving_nodes(rot, service)
        standby = ({f"{service}-a", f"{service}-b"} - {active}).pop()
        assert files_on(rot, active, service) == [] and files_on(rot, standby, service) == [".api"]
