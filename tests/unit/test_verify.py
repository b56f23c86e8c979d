"""fab verify's pure parts: what passes and what fails, from what a node showed; and its CLI contract."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess

import pytest

from nodeops.commands import node as cmd
from nodeops.edges.ssh import parse_pinned
from nodeops.errors import EXIT_FAILED, EXIT_UNSAFE, HostKeyRejected, OperationFailed
from nodeops.facts.container import parse_inspect
from nodeops.inventory import HostKey
from nodeops.roles import load_role
from nodeops.verify import (
    CHECKS,
    Check,
    Facts,
    Verification,
    allowed_files,
    check_files,
    check_host_keys,
    check_port,
    check_serving,
    check_strays,
    check_tmpfs,
    check_user,
    evaluate,
    fingerprint,
    process_uids,
    secret_names,
    unchecked,
)
from tests.conftest import fab
from tests.unit.test_deploy_preflight import ENV, KEY, inventory

UID = 14933
STATUS = "Name:\tchainlink\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t{0}\t{0}\t{0}\t{0}\nGid:\t{0}\t{0}\t{0}\t{0}\n"
OTHER_KEY = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEc="


def container(running=True, user=f"{UID}:{UID}", pid=4242):
    doc = [{"Name": "/nodeops-cl", "Image": "sha256:abc",
            "State": {"Running": running, "Status": "running" if running else "exited", "Pid": pid if running else 0},
            "Config": {"User": user, "Labels": {}}}]  # fmt: skip
    return parse_inspect(json.dumps(doc))


def test_process_uids_reads_the_uid_line():
    assert process_uids(STATUS.format(UID)) == (UID,) * 4
    assert process_uids("Name:\tx\n") == ()


@pytest.mark.parametrize(
    ("c", "status", "ok", "fragment"),
    [
        (container(), STATUS.format(UID), True, "configured 14933:14933, main process 4242 runs as uid 14933"),
        (container(user=str(UID)), STATUS.format(UID), True, "main process 4242"),  # uid alone: the group is default
        (None, None, False, "no container"),
        (container(running=False), None, False, "container exited, not running"),
        (container(user=""), STATUS.format(0), False, "configured user none (the image default), expected 14933"),
        (container(user="0:0"), STATUS.format(0), False, "configured user 0:0"),
        (container(user="chainlink"), STATUS.format(UID), False, "configured user chainlink"),  # a name is not proof
        (container(), None, False, "main process 4242 not found on the node host"),
        (container(), STATUS.format(0), False, "runs as uid 0/0/0/0 (real/effective/saved/fs), expected 14933"),
        (container(), STATUS.format(UID).replace(f"Uid:\t{UID}", "Uid:\t0"), False, "uid 0/14933/14933/14933"),
    ],
)
def test_container_user(c, status, ok, fragment):
    got_ok, reason = check_user(c, status, UID)
    assert got_ok is ok and fragment in reason


OK, NOTHING, UNHEALTHY = (200, b"{}"), None, (503, b"")
RPC = "EVM.1.HeadTracker.HeadListener"
SICK = (503, json.dumps({"data": [
    {"type": "checks", "id": RPC, "attributes": {"name": RPC, "status": "failing", "output": "not connected"}},
    {"type": "checks", "id": "Database", "attributes": {"name": "Database", "status": "passing", "output": ""}},
]}).encode())  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "node", "ok", "fragment"),
    [
        ({"a": OK, "b": NOTHING}, "a", True, "the active: answers 200 on :6688/health"),
        ({"a": OK, "b": NOTHING}, "b", True, "a standby: nothing answers on :6688 (a is the active)"),
        ({"a": OK}, "a", True, "the active"),  # a one-node service
        ({"a": OK, "b": OK}, "a", False, "2 nodes answer /health (a, b): expected exactly one"),
        ({"a": OK, "b": OK}, "b", False, "2 nodes answer"),
        ({"a": NOTHING, "b": NOTHING}, "a", False, "no node of the service answers /health on :6688"),
        ({"a": OK, "b": UNHEALTHY}, "b", False, "2 nodes answer /health (a, b): expected exactly one"),  # 2 leases?
        (
            {"a": UNHEALTHY, "b": NOTHING},
            "a",
            False,
            "the active, unhealthy: answers HTTP 503 on :6688/health (failing: HTTP 503)",
        ),
        ({"a": SICK, "b": NOTHING}, "a", False, f"answers HTTP 503 on :6688/health (failing: {RPC})"),
        ({"a": SICK, "b": NOTHING}, "b", True, "a standby: nothing answers on :6688 (a is the active)"),
    ],
)
def test_port_answers_on_the_active_only(answers, node, ok, fragment):
    got_ok, reason = check_port(answers, node, 6688, "/health", load_role("chainlink").hooks.failing_checks)
    assert got_ok is ok and fragment in reason


@pytest.mark.parametrize(
    ("reply", "ok", "fragment"),
    [
        (OK, True, "serving: answers 200 on :6688/health"),
        (NOTHING, False, "not serving: nothing answers /health on :6688 (activation all: every node serves)"),
        (SICK, False, f"not serving: answers HTTP 503 on :6688/health (failing: {RPC})"),
    ],
)
def test_under_activation_all_each_node_serves_none_is_a_standby(reply, ok, fragment):
    got_ok, reason = check_serving(reply, 6688, "/health", load_role("chainlink").hooks.failing_checks)
    assert got_ok is ok and fragment in reason
    assert "active" not in reason and "standby" not in reason


RENDERED, LEASE = ("config.toml", "secrets.toml", ".api"), (".api",)


@pytest.mark.parametrize(
    ("secret_files", "serving", "allowed"),
    [
        ("shred", True, set()),  # the active has read everything
        ("shred", False, {".api"}),  # a standby reads .api once it takes the lease
        ("keep", True, set(RENDERED)),
        ("keep", False, set(RENDERED)),
    ],
)
def test_allowed_files(secret_files, serving, allowed):
    assert allowed_files(secret_files, RENDERED, LEASE, serving) == allowed


@pytest.mark.parametrize(
    ("listing", "allowed", "ok", "fragment"),
    [
        ("", frozenset(), True, "holds nothing"),
        (f".api 400 {UID}\n", frozenset(LEASE), True, "holds .api (0400, uid 14933)"),
        (f".password 400 {UID}\n", frozenset(), False, "holds .password: not needed here (allowed: nothing)"),
        (f".api 400 {UID}\nsecrets.toml 400 {UID}\n", frozenset(LEASE), False, "holds secrets.toml: not needed here"),
        (f".api 644 {UID}\n", frozenset(LEASE), False, ".api (644, uid 14933): expected 0400 owned by uid 14933"),
        (".api 400 0\n", frozenset(LEASE), False, ".api (400, uid 0)"),
        (f"a name 400 {UID}\n", frozenset(), False, "holds a name"),  # a space in the name
    ],
)
def test_files_dir_holds_only_what_the_node_still_needs(listing, allowed, ok, fragment):
    got_ok, reason = check_files(listing, allowed, UID)
    assert got_ok is ok and fragment in reason


def test_secret_names_are_the_secret_files_of_every_profile():
    names = (".api", ".env", ".password", "rpc.toml", "secrets.toml")  # not config.toml
    assert secret_names(load_role("chainlink")) == names


@pytest.mark.parametrize(
    ("code", "output", "ok", "fragment"),
    [
        (0, "", True, "no .api, .password under ~, /root, /tmp, /var/tmp"),
        (1, "", True, "no .api"),  # a place missing or unreadable: the search still ran
        (0, "/root/.api\n/root/.api\n/tmp/x/.password\n", False, "found /root/.api, /tmp/x/.password"),  # ~ is /root
        (127, "", False, "the search did not run (exit 127)"),
    ],
)
def test_files_on_disk(code, output, ok, fragment):
    got_ok, reason = check_strays(code, output, (".api", ".password"))
    assert got_ok is ok and fragment in reason


def test_find_named_finds_files_by_name_a_few_levels_down(tmp_path):
    for path in ("a/.api", "a/b/.password", "a/b/c/.api", "a/other"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    res = subprocess.run(["sh", "-c", cmd.find_named([".api", ".password"])], capture_output=True, text=True,
                         env={**os.environ, "HOME": str(tmp_path)})  # fmt: skip
    found = {line for line in res.stdout.splitlines() if line.startswith(str(tmp_path))}
    assert res.returncode in (0, 1)
    assert found == {f"{tmp_path}/a/.api", f"{tmp_path}/a/b/.password"}  # a/b/c/.api is 4 levels down
    nothing = subprocess.run(["sh", "-c", cmd.find_named([])], capture_output=True, text=True)  # a role without any
    assert (nothing.returncode, nothing.stdout) == (0, "")


MOUNTS = [("/", "ext4"), ("/run", "tmpfs"), ("/run/user/0", "tmpfs"), ("/var", "xfs")]


@pytest.mark.parametrize(
    ("mounts", "ok", "fragment"),
    [
        (MOUNTS, True, "/run/nodeops/cl is on tmpfs (mounted at /run)"),
        (MOUNTS + [("/run/nodeops", "ext4")], False, "/run/nodeops/cl is on ext4 (mounted at /run/nodeops), not RAM"),
        (MOUNTS + [("/run", "ext4")], False, "on ext4 (mounted at /run)"),  # mounted over: the latest wins
        ([("/", "ext4"), ("/running", "tmpfs")], False, "on ext4 (mounted at /)"),  # a prefix, not a parent
        ([("/", "ext4"), ("/run/", "tmpfs")], True, "mounted at /run/"),
        ([("/run", "tmpfs")], True, "on tmpfs"),
        ([("/srv", "tmpfs")], False, "no mount holds /run/nodeops/cl"),
    ],
)
def test_files_dir_is_on_tmpfs(mounts, ok, fragment):
    got_ok, reason = check_tmpfs("/run/nodeops/cl", mounts)
    assert got_ok is ok and fragment in reason


def test_fingerprint_is_openssh_s():
    kind, blob = KEY.split()
    assert fingerprint(blob) == parse_pinned([HostKey(kind, blob)])[0].fingerprint  # paramiko's, as ssh-keygen -l
    assert fingerprint("not base64!") == "(not a key)"


PIN = tuple(KEY.split())
NODE_FILE = f"{KEY} root@cl-a\n"


@pytest.mark.parametrize(
    ("files", "pinned", "ok", "fragment"),
    [
        ([NODE_FILE], [PIN], True, f"ssh-ed25519 {fingerprint(PIN[1])} in /etc/ssh, as pinned"),
        ([NODE_FILE, f"{OTHER_KEY} x\n"], [PIN], True, "as pinned"),  # a key type that is not pinned: fine
        ([f"{OTHER_KEY} x\n"], [PIN], False, f"pinned ssh-ed25519 {fingerprint(PIN[1])} is not the node's (ecdsa"),
        ([NODE_FILE], [PIN, tuple(OTHER_KEY.split())], False, "pinned ecdsa-sha2-nistp256"),  # a stale second pin
        ([], [PIN], False, "no /etc/ssh/ssh_host_*_key.pub on the node"),
        (["\n"], [PIN], False, "no /etc/ssh/ssh_host_*_key.pub"),
        ([NODE_FILE], [], False, "no key is pinned for the node"),
    ],
)
def test_host_key_files_agree_with_the_pins(files, pinned, ok, fragment):
    got_ok, reason = check_host_keys(files, pinned)
    assert got_ok is ok and fragment in reason


def test_a_node_that_could_not_be_checked_fails_every_check():
    gone = unchecked(OperationFailed("b (10.0.0.2:22): cannot connect after 4 attempt(s): timed out"), False)
    assert set(gone) == set(CHECKS) and all(not ok and why.startswith("unreachable: b (") for ok, why in gone.values())
    midway = unchecked(OperationFailed("b: command timed out after 600s"), True)
    assert all(why == "not checked: b: command timed out after 600s" for _, why in midway.values())
    rejected = HostKeyRejected("b", "10.0.0.2:22", "ssh-ed25519 SHA256:x", "does not match the pinned ...")
    refused = unchecked(rejected, False)
    assert refused["host-keys"] == (False, str(rejected))
    others = {why for name, (_, why) in refused.items() if name != "host-keys"}
    assert others == {"not checked: its host key was refused"}


def test_the_run_fails_naming_each_failed_check_by_node():
    passed = [Check("cl", n, c, True, "") for n in ("a", "b") for c in CHECKS]
    assert Verification(passed, []).error() is None
    failed = [*passed[:-2], Check("cl", "b", "tmpfs", False, "x"), Check("cl", "b", "host-keys", False, "y")]
    error = Verification(failed, []).error()
    assert error.exit_code == EXIT_FAILED and str(error) == "2 of 12 checks failed: cl b: tmpfs, host-keys"
    unsafe = Verification(failed, ["b"]).error()
    assert unsafe.exit_code == EXIT_UNSAFE and str(unsafe).startswith("host key not the pinned one on b; 2 of 12")


def facts(listing: str = "") -> Facts:
    return Facts(container(), STATUS.format(UID), listing, (0, ""), (("/", "ext4"), ("/run", "tmpfs")), (NODE_FILE,))


@pytest.mark.parametrize(
    ("node", "listing", "failed"),
    [
        ("a", "", set()),
        ("b", f".api 400 {UID}\n", set()),  # the standby keeps .api until it takes the lease
        ("a", f".api 400 {UID}\n", {"files-dir"}),  # the active has read it: it should be gone
        ("b", f".password 400 {UID}\n", {"files-dir"}),
    ],
)
def test_evaluate_a_pair(job, node, listing, failed):
    nodes = {n.name: n for n in job.service.nodes}
    verdicts = evaluate(job, nodes[node], facts(listing), {"a": OK, "b": NOTHING}, [PIN])
    assert list(verdicts) == list(CHECKS)
    assert {name for name, (ok, _) in verdicts.items() if not ok} == failed


@pytest.mark.parametrize("node", ["a", "b"])
def test_under_activation_keys_every_node_answers_and_neither_is_a_second_active(job, node):
    """Issue 15, keys: the holder (a, io.nodeops.hot=true) and the standby both answer 200 (they failed: "2 nodes
    answer /health: expected exactly one"); each has read all its files, so its files directory is empty."""
    keys = dataclasses.replace(job, role=dataclasses.replace(job.role, activation="keys", lease=None))
    nodes = {n.name: n for n in job.service.nodes}
    verdicts = evaluate(keys, nodes[node], facts(), {"a": OK, "b": OK}, [PIN])
    assert {name for name, (ok, _) in verdicts.items() if not ok} == set()
    assert verdicts["port"][1].startswith("serving: answers 200 on :6688/health")
    silent = evaluate(keys, nodes[node], facts(), {"a": OK, "b": NOTHING}, [PIN])["port"]
    assert silent[0] is (node == "a")


def test_cli_refuses_an_unknown_service_before_any_host(tmp_path, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "t.yaml"
    path.write_text(inventory())  # its bastion is 127.0.0.1:9, where nothing listens
    res = fab("verify", "--inventory", str(path), "--service", "nope")
    assert res.returncode == 2 and res.stderr.startswith("nodeops: --service nope: no such service")
    res = fab("verify", "--inventory", str(path))
    assert res.returncode == 1 and "bastion (127.0.0.1:9): cannot connect" in res.stderr  # the control
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1


def test_the_observer_takes_the_fan_outs_connection_and_inspects_over_it(job, monkeypatch):
    """verify.fetch hands the observer the connection its fan-out opened (Observer.adopt), never writing into it: the
    container is inspected over that very link, in place of one kept before."""
    import types

    from nodeops.facts import observe
    from tests.unit.fake_edge import FakeEdge

    edge = FakeEdge([(r"inspect", (0, "[]", ""))])
    monkeypatch.setattr(observe, "execute", edge)
    fleet = types.SimpleNamespace(settings=types.SimpleNamespace(command_timeout=30))
    observer = observe.Observer(fleet, job.service, job.role)
    observer.adopt("a", "an older link to a")
    assert observer.adopt("a", "the fan-out's link to a") == "the fan-out's link to a"
    observer.container("a")
    assert [s.link for s in edge.sent] == ["the fan-out's link to a"]
    assert observer.conns == {"a": "the fan-out's link to a"}
