"""Running safely in CI and by hand, on a lab of its own: the deploy lock, the audit log, status against its
schema, rollback, CI mode with secrets from the environment, and every exit code."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from lab.aws import read_secret, secrets_client
from lab.host import Lab
from lab.topology import plan_lab
from nodeops.inventory import load_inventory
from nodeops.operation import Operation
from nodeops.records import Deployed, Promoted, entry
from nodeops.run.report import Reporter
from nodeops.secrets.env import env_variable_name
from tests.conftest import FAB, ROOT, fab
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import PairProbe, events, frozen_at, killed_at, status, wait_for
from tests.e2e.test_deploy import set_sentinel_secrets
from tests.unit.test_deploy_preflight import ENV as PREFLIGHT_ENV
from tests.unit.test_deploy_preflight import inventory as preflight_inventory

pytestmark = pytest.mark.lab

NAME, CIDR = "ops", "10.226.0.0/16"
AUDIT_SCHEMA = json.loads((ROOT / "docs" / "audit.schema.json").read_text())


@pytest.fixture(scope="module")
def ops(root):
    with own_lab(NAME, CIDR) as lab:
        yield lab


def variant(lab: Lab, suffix: str, edit) -> Path:
    return inventory_variant(lab.inventory_file, lab.inventory_file.with_name(f"{NAME}-{suffix}.yaml"), edit)


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([str(FAB), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=env)  # fmt: skip


def finish(run: subprocess.Popen) -> tuple[int, str, str]:
    out, err = run.communicate(timeout=300)
    return run.returncode, out, err


def roles(entry: dict) -> dict[str, str]:
    return {n["node"]: n["role"] for n in entry["nodes"]}


def really_serving(lab: Lab, service: str) -> dict[str, bool]:
    """Each node's /health, asked from inside the bastion's network namespace: not through nodeops."""
    doc = yaml.safe_load(lab.inventory_file.read_text())
    bastion = next(h.netns for h in plan_lab(NAME, CIDR, 4).hosts if h.name == "bastion")
    ask = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=2).status)"
    answers = {}
    for node in doc["services"][service]["nodes"]:
        url = f"http://{node['host']}:6688/health"
        res = subprocess.run(["ip", "netns", "exec", bastion, sys.executable, "-c", ask, url],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        answers[node["name"]] = res.stdout.strip() == "200"
    return answers


def audit(*args: str) -> list[dict]:
    res = fab("audit", "--env", NAME, "--json", *args)
    assert res.returncode == 0, res.stderr
    return events(res)


def under_a_terminal(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """`fab ARGS` under a pseudo-terminal (util-linux script), as a person or a CI runner with a tty runs it:
    fab's stdout and stderr are both the terminal, so both arrive in the result's stdout (lines end in CRLF)."""
    tty = ["script", "--quiet", "--return", "--command", shlex.join([str(FAB), *args]), "/dev/null"]
    return subprocess.run(tty, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_ci_mode_is_json_lines_only_with_secrets_from_the_environment(ops):
    """CI=true, every secret from the env backend, sentinel values: even on a terminal (stdout a tty, so only
    CI=true can make it JSON), the output is JSON lines only, and no value is in it or in the audit log on
    the bastion. The control: the same run on the terminal without CI=true prints the human lines."""
    values = set_sentinel_secrets(ops, "cl2")
    client = secrets_client(ops.load_state()["secrets_port"])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NODEOPS_")}
    environ.update(CI="true", GITHUB_RUN_ID="4242", GITHUB_ACTOR="ci-bot")

    def from_env(doc: dict) -> None:
        doc["secret_backends"]["ci"] = {"kind": "env", "prefix": "NODEOPS_"}
        for ref in doc["services"]["cl2"]["secrets"].values():
            value = read_secret(client, ref["name"])[ref["key"]]
            environ[env_variable_name("NODEOPS_", ref["name"], ref["key"])] = value
            ref["backend"] = "ci"
        del doc["services"]["cl1"]

    path = variant(ops, "ci", from_env)
    try:
        run = under_a_terminal(["deploy", "--inventory", str(path)], environ)
        person = {k: v for k, v in environ.items() if k not in ("CI", "GITHUB_RUN_ID", "GITHUB_ACTOR")}
        control = under_a_terminal(["deploy", "--inventory", str(path)], person)
    finally:
        path.unlink()
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines, run.stderr
    parsed = [json.loads(line) for line in lines]  # every line (stdout and stderr) is JSON: this raises otherwise
    assert parsed[-1]["event"] == "step" and "deployed 1 service" in parsed[-1]["message"]
    assert any(e["event"] == "end" and e["result"] == "ok" for e in parsed)
    assert "\x1b[" not in run.stdout + run.stderr  # no colour codes
    # the control: a terminal and no CI variable is a person, who gets the progress lines, not JSON
    assert control.returncode == 0, control.stdout + control.stderr
    assert "deployed 1 service" in control.stdout and "cl2" in control.stdout
    assert not any(line.lstrip().startswith("{") for line in control.stdout.splitlines()), control.stdout
    log = fab("audit", "--env", NAME, "--json", "--steps", "--lines", "500").stdout
    start = next(e for e in map(json.loads, log.splitlines()) if e["event"] == "start" and e.get("ci_run") == "4242")
    assert start["who"].endswith("(ci-bot)")
    for text in (run.stdout, run.stderr, control.stdout, control.stderr, log):
        for value in values.values():
            assert value not in text and json.dumps(value)[1:-1] not in text


def test_two_deploys_at_once_one_acts_the_other_exits_3_naming_the_holder(ops):
    first, second = start("deploy", "--env", NAME, "--json"), start("deploy", "--env", NAME, "--json")
    results = [finish(p) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    refused = next(err for code, _, err in results if code == 3)
    assert "locked by" in refused and f"fab deploy --env {NAME} --json" in refused and "alive" in refused
    assert len(refused.strip().splitlines()) == 1 and "Traceback" not in refused
    found = status(NAME)
    assert {s: e["state"] for s, e in found.items()} == {"cl1": "healthy", "cl2": "healthy"}
    assert all(e["lock"] is None for e in found.values())


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d["services"].update({"c" * 300: d["services"].pop("cl")}), "a name of at most 63 characters"),
        (lambda d: d.update(environment="e" * 300), "environment: a name of at most 63 characters, got 300"),
        (lambda d: d["bastion"].update(state_dir="--help"), "bastion.state_dir: expected a directory path"),
        (lambda _doc: None, None),  # the control: the same inventory, valid, reaches the bastion
    ],
    ids=["service-300", "environment-300", "state-dir-option", "control"],
)
def test_two_deploys_with_names_the_bastion_cannot_hold_both_exit_2_before_any_connection(tmp_path, edit, problem):
    """Issue 13: with a 300-character service name the lock script could not write its records yet said
    "acquired", and two deploys started together both reached the nodes. Started together now, both stop at
    validation: exit 2, one line, and the bastion (a socket on 127.0.0.1 that counts connections, never
    answering) hears from neither, so neither got near the lock. The control, valid, gets as far as the bastion
    (exit 1, it never answers): what is counted is where a run goes. No lab needed: nothing may be reached."""
    bastion = socket.create_server(("127.0.0.1", 0))
    bastion.settimeout(0.1)
    doc = yaml.safe_load(preflight_inventory())  # every secret from the environment: preflight passes
    doc["bastion"]["port"] = bastion.getsockname()[1]
    doc["ssh"].update(connect_timeout=1, connect_retries=0)
    edit(doc)
    path = tmp_path / "names.yaml"
    path.write_text(yaml.safe_dump(doc))
    runs = [start("deploy", "--inventory", str(path), env={**os.environ, **PREFLIGHT_ENV}) for _ in range(2)]
    results = [finish(run) for run in runs]
    connections = 0
    with contextlib.suppress(TimeoutError):
        while True:
            bastion.accept()[0].close()
            connections += 1
    bastion.close()
    if problem is None:
        assert [code for code, _, _ in results] == [1, 1] and connections == 2, (results, connections)
        return
    for code, out, err in results:
        assert (code, out) == (2, ""), (code, out, err)
        assert err.startswith(f"nodeops: {path}: ") and problem in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert connections == 0


def test_status_roles_match_what_really_serves_before_and_after_a_promotion(ops):
    before = status(NAME)["cl1"]
    served = really_serving(ops, "cl1")
    assert roles(before) == {n: "active" if up else "standby" for n, up in served.items()}
    assert before["lease"]["held"] and all(n["uptime_seconds"] > 0 for n in before["nodes"])
    assert fab("promote-standby", "--env", NAME, "--service", "cl1").returncode == 0
    after = status(NAME, "--service", "cl1")["cl1"]
    served = really_serving(ops, "cl1")
    assert roles(after) == {n: "active" if up else "standby" for n, up in served.items()}
    assert roles(after) != roles(before)
    assert after["lease"]["holder"] != before["lease"]["holder"]


def test_every_line_of_the_bastions_real_audit_log_matches_the_audit_schema_and_its_types(ops):
    """After a deploy and a promotion (and what the tests before did), the audit file as the bastion stores it, read
    from the bastion's own filesystem, not through nodeops: every line valid against docs/audit.schema.json and read
    by the types (nodeops.records) back to the same object; the deploy's and the promotion's results are there.
    It promotes twice: the pair is left with the active it found, as the tests after it expect."""
    assert fab("deploy", "--env", NAME).returncode == 0
    for _ in range(2):
        assert fab("promote-standby", "--env", NAME, "--service", "cl1").returncode == 0
    (stored,) = Path(f"/proc/{ops.sshd_pid_of('bastion')}/root").glob(f"root/.nodeops/{NAME}/audit.jsonl")
    lines = [json.loads(line) for line in stored.read_text().splitlines()]
    validator = jsonschema.Draft202012Validator(AUDIT_SCHEMA)
    for line in lines:
        assert not list(validator.iter_errors(line)), line
        assert entry(line).record() == line
    ends = {e["op"]: e for e in lines if e["event"] == "end" and e["result"] == "ok"}
    assert {"deploy", "promote-standby"} <= set(ends), sorted(ends)
    assert isinstance(entry(ends["deploy"]).results[0], Deployed)
    assert {type(r) for r in entry(ends["promote-standby"]).results} == {Promoted}


def test_a_killed_run_leaves_a_stale_lock_that_only_release_force_clears_audited(ops):
    # the lock is taken before the first step: killed once the image is pulled, the run holds it
    seen = killed_at(["deploy", "--env", NAME, "--json", "--service", "cl1"],
                     lambda e: e["event"] == "step" and e.get("message", "").startswith("pulled "))  # fmt: skip
    assert seen[-1]["service"] == "cl1"  # killed_at asserted the SIGKILL ended it, right after that step
    locks = [e for e in map(json.loads, fab("lock.status", "--env", NAME, "--json").stdout.splitlines())
             if e["event"] == "lock"]  # fmt: skip
    assert [(lock["service"], lock["state"]) for lock in locks] == [("cl1", "stale")]
    killed_run = locks[0]["holder"]["run"]
    refused = fab("deploy", "--env", NAME, "--service", "cl1")
    assert refused.returncode == 3 and "stale" in refused.stderr and "lock.release" in refused.stderr
    assert fab("lock.release", "--env", NAME, "--service", "cl1").returncode == 2  # --force is required
    released = fab("lock.release", "--env", NAME, "--service", "cl1", "--force")
    assert released.returncode == 0, released.stderr
    assert json.loads(fab("lock.status", "--env", NAME, "--json").stdout)["locks"] == 0  # the summary alone
    end = [e for e in audit() if e["op"] == "lock.release" and e["event"] == "end"][-1]
    assert end["result"] == "ok" and end["results"][0]["released"]["run"] == killed_run
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0


def test_a_frozen_run_is_no_longer_heard_from_and_its_lock_turns_stale_within_the_timeout(ops, figures):
    """A machine that freezes or is cut off mid-run sends no EOF: stopped (SIGSTOP), its TCP connection to the
    bastion stays open (the kernel still answers), so only the missing heartbeat can tell. With lock_timeout 12
    (beats every 3 s, a look every 6 s), the lock turns stale 3 to 12 s after the freeze, seen here a
    lock.status round later (the figure is printed); until then it is alive, and lock.release refuses it."""
    frozen = variant(ops, "timeout", lambda d: d["bastion"].update(lock_timeout=12))
    args = ["deploy", "--inventory", str(frozen), "--json", "--service", "cl1"]
    try:
        with frozen_at(args, lambda e: e["event"] == "step" and e.get("message", "").startswith("pulled ")):
            stopped = time.monotonic()
            assert fab("lock.release", "--env", NAME, "--service", "cl1", "--force").returncode == 3  # still alive
            # without the heartbeat it would stay alive for hours (until TCP keepalive gave up)
            wait_for(lambda: lock_states() == [("cl1", "stale")], "the frozen run's lock to turn stale", timeout=30)
            figures(f"frozen run's lock stale {time.monotonic() - stopped:.1f} s after the freeze (lock_timeout 12 s)")
            refused = fab("deploy", "--env", NAME, "--service", "cl1")
            assert refused.returncode == 3 and "stale" in refused.stderr
    finally:
        frozen.unlink()
    assert fab("lock.release", "--env", NAME, "--service", "cl1", "--force").returncode == 0
    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0


def test_a_live_run_that_outlasts_the_lock_timeout_keeps_its_lock_by_beating(ops):
    """The other side of the heartbeat, on the real code path: a run (an Operation, as every locked task opens)
    that lasts more than two lock_timeouts of 4 s keeps its lock the whole time, because it beats; then it
    releases it, and its end entry is in the audit log (the session was never lost)."""
    path = variant(ops, "beating", lambda d: d["bastion"].update(lock_timeout=4))
    inventory = load_inventory(path)
    path.unlink()
    with Operation(inventory, "test.hold", ["cl2"], Reporter.silent()) as op:
        until = time.monotonic() + 9
        while time.monotonic() < until:
            assert lock_states() == [("cl2", "held")]
    assert op.lost is None and lock_states() == []
    assert [e["event"] for e in audit() if e["run"] == op.run] == ["start", "end"]


def lock_states() -> list[tuple[str, str]]:
    events = [json.loads(line) for line in fab("lock.status", "--env", NAME, "--json").stdout.splitlines()]
    return [(e["service"], e["state"]) for e in events if e["event"] == "lock"]


def test_rollback_brings_the_previous_configuration_back_with_one_short_gap(ops):
    assert fab("deploy", "--env", NAME).returncode == 0
    before = {n["node"]: n["config"] for n in status(NAME)["cl1"]["nodes"]}
    path = variant(ops, "debug", lambda doc: doc["services"]["cl1"]["variables"].update(LOG_LEVEL="debug"))
    try:
        assert fab("deploy", "--inventory", str(path), "--service", "cl1").returncode == 0
    finally:
        path.unlink()
    changed = {n["node"]: n["config"] for n in status(NAME)["cl1"]["nodes"]}
    assert set(changed.values()).isdisjoint(before.values())
    with PairProbe(ops.inventory_file, "cl1") as probe:
        back = fab("rollback", "--env", NAME, "--service", "cl1", "--json")
    assert back.returncode == 0, back.stderr
    # the templates did not change: no note says they render the files differently from what ran
    assert "rolling back to" in back.stdout and "today's templates" not in back.stdout
    after = status(NAME)["cl1"]
    assert after["state"] == "healthy"
    # the same variables as before the change: the hash differs only by the image pinned to its digest
    assert {n["version"] for n in after["nodes"]} == {"2.10.0"}
    assert {n["node"] for n in after["nodes"]} == set(changed)
    assert all(n["config"] and n["config"] != changed[n["node"]] for n in after["nodes"]), (after, changed)
    assert all("@sha256:" in n["image"] for n in after["nodes"])
    assert len(probe.gaps) <= 1 and max(probe.gaps, default=0) < 2.0, probe.explain()
    assert not probe.both, "two nodes served at once"
    end = [e for e in audit() if e["op"] == "rollback" and e["event"] == "end"][-1]
    assert end["results"][0]["variables"].get("LOG_LEVEL") is None
    assert fab("rollback", "--env", NAME, "--service", "cl1", "--to", "9.9.9").returncode == 2


def test_rollback_to_the_version_that_runs_changes_nothing(ops):
    """Issue 13 review: `--to` the version that already ran did a needless handover and ended on a
    digest-pinned config hash. Now it says the pair is already there, changes nothing, exit 0."""

    def started() -> dict[str, str]:
        res = fab("exec", "--env", NAME, "--nodes", "cl1-a,cl1-b", "--json", "--command",
                  "docker inspect --format '{{.State.StartedAt}}' nodeops-cl1")  # fmt: skip
        return {e["node"]: e["stdout"].strip() for e in events(res) if e["event"] == "host"}

    assert fab("deploy", "--env", NAME, "--service", "cl1").returncode == 0  # by tag, as an operator's deploy leaves it
    before, since = status(NAME)["cl1"], started()
    assert before["state"] == "healthy" and len({n["version"] for n in before["nodes"]}) == 1, before
    (version,) = {n["version"] for n in before["nodes"]}
    res = fab("rollback", "--env", NAME, "--service", "cl1", "--to", version, "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert any(e.get("message", "").startswith(f"already at version {version}: ") and "nothing changed" in
               e["message"] for e in events(res)), res.stdout[-3000:]  # fmt: skip
    assert "rolling back to" not in res.stdout and "hand over" not in res.stdout
    after = status(NAME)["cl1"]
    same = ("node", "role", "config", "image")
    assert [{k: n[k] for k in same} for n in after["nodes"]] == [{k: n[k] for k in same} for n in before["nodes"]]
    assert started() == since and len(since) == 2, since  # neither container was restarted
    end = [e for e in audit() if e["op"] == "rollback" and e["event"] == "end"][-1]
    assert end["exit_code"] == 0 and end["results"][0]["changed"] is False, end


@pytest.mark.parametrize(
    ("expected", "args", "edit"),
    [
        (0, ("exec", "--command", "true"), None),
        (1, ("exec", "--command", "false", "--nodes", "cl1-a"), None),
        (2, ("promote-standby", "--force", "--service", "cl2"), None),  # it serves: --force is refused
        (4, ("exec", "--command", "true"), "bastion-key"),
    ],
)
def test_exit_codes(ops, expected, args, edit):
    """0, 1, 2 and 4 here; 3 by the lock tests above. Each with one line on stderr, no traceback."""
    if edit == "bastion-key":
        other = (ops.host_dir("cl1-a") / "ssh_host_ed25519_key.pub").read_text()

        def wrong_key(doc: dict) -> None:
            doc["bastion"]["host_key"] = other.split()[0] + " " + other.split()[1]

        path = variant(ops, "wrongkey", wrong_key)
        try:
            res = fab(*args, "--inventory", str(path))
        finally:
            path.unlink()
    else:
        res = fab(*args, "--env", NAME)
    assert res.returncode == expected, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    if expected in (2, 4):
        assert res.stderr.startswith("nodeops: ") and len(res.stderr.strip().splitlines()) == 1
