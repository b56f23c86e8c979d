"""The bastion's lock and audit scripts, run by a real sh with util-linux flock in a scratch directory,
and the pure parts around them (holder records, parsing, messages)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodeops import program
from nodeops.commands import bastion
from nodeops.errors import Declined, Interrupted, InvalidInput, NodeopsError, OperationFailed, Unsafe, raise_failures
from nodeops.ledger import describe_locks, lock_conflict
from nodeops.operation import end_result, holder_record
from tasks.lock import status_lines

ENV = "prod"


def sh(script: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(script, shell=True, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=30)


class Holder:
    """A run holding locks: the hold script with its stdin open, as an SSH session keeps it. Its heartbeat
    watchdog looks every second (``timeout`` 2), so that none outlives its test by more; in a session of its own,
    so that the test's teardown can end them all."""

    def __init__(self, cwd: Path, run: str, services: list[str], who: str, timeout: int = 2) -> None:
        self.proc = subprocess.Popen(bastion.hold(".nodeops", ENV, run, services, timeout), shell=True, cwd=cwd,
                                     text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     start_new_session=True)  # fmt: skip
        self.send(json.dumps({"run": run, "who": who, "command": "fab deploy", "started": "t0"}))
        self.first = self.proc.stdout.readline().strip()

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def release(self) -> str:
        self.send("release")
        answer = self.proc.stdout.readline().strip()
        self.proc.wait(timeout=10)
        return answer

    def die(self) -> int:
        """The client is gone: its session closes, the script reads EOF."""
        self.proc.stdin.close()
        return self.proc.wait(timeout=10)


@pytest.fixture
def hold(tmp_path):
    """Start a Holder in ``tmp_path``; none outlives its test."""
    started: list[Holder] = []

    def start(run: str, services: list[str], who: str) -> Holder:
        started.append(Holder(tmp_path, run, services, who))
        return started[-1]

    yield start
    for holder in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.proc.pid, signal.SIGKILL)  # the script, and its watchdog if still on
        holder.proc.wait()


def states(cwd: Path) -> dict[str, str]:
    return {lock.service: lock.state for lock in bastion.parse_locks(sh(bastion.status(".nodeops", ENV), cwd).stdout)}


def test_a_second_run_is_refused_while_the_first_holds_any_of_its_services(tmp_path, hold):
    first = hold("r1", ["cl1", "cl2"], "alice")
    assert first.first == "acquired"
    second = sh(bastion.hold(".nodeops", ENV, "r2", ["cl2", "cl3"], 2), tmp_path, '{"who": "bob"}\n')
    assert second.returncode == bastion.CONFLICT
    [lock] = bastion.parse_locks(second.stdout)
    assert (lock.service, lock.state, lock.holder["who"]) == ("cl2", "held", "alice")
    assert lock.pid > 0
    assert states(tmp_path) == {"cl1": "held", "cl2": "held"}  # cl3 was not taken by the refused run
    assert first.release() == "released"
    assert states(tmp_path) == {}
    assert sorted(p.name for p in (tmp_path / ".nodeops" / ENV / "runs").iterdir()) == []  # nothing left behind


def test_audit_lines_go_through_the_holder_and_a_dead_run_leaves_a_stale_lock(tmp_path, hold):
    run = hold("r1", ["cl1"], "alice")
    run.send('{"event": "step", "message": "one"}')
    assert run.die() == 0
    assert states(tmp_path) == {"cl1": "stale"}
    refused = sh(bastion.hold(".nodeops", ENV, "r2", ["cl1"], 2), tmp_path, '{"who": "bob"}\n')
    assert refused.returncode == bastion.CONFLICT and refused.stdout.startswith("stale cl1 ")  # never taken over
    log = bastion.parse_audit(sh(bastion.read_audit(".nodeops", ENV, 10), tmp_path).stdout)
    assert log == [{"event": "step", "message": "one"}]


def test_release_removes_only_stale_locks(tmp_path, hold):
    hold("gone", ["cl1"], "alice").die()
    live = hold("live", ["cl2"], "bob")
    out = sh(bastion.release_stale(".nodeops", ENV, ["cl1", "cl2", "cl3"]), tmp_path).stdout.splitlines()
    assert [line for line in out if not line.startswith(("held ", "stale "))] == [
        "removed cl1",
        "alive cl2",
        "free cl3",
    ]
    assert states(tmp_path) == {"cl2": "held"}
    assert sorted(p.name for p in (tmp_path / ".nodeops" / ENV / "runs").iterdir() if p.stem == "gone") == []
    assert live.release() == "released"
    again = hold("next", ["cl1", "cl2"], "carol")
    assert again.first == "acquired"
    again.release()


def test_a_run_that_is_no_longer_heard_from_leaves_a_stale_lock_one_that_beats_keeps_its_own(tmp_path, hold):
    """A frozen or cut-off client sends no EOF: without its beats, the watchdog (a look every timeout/2 = 1 s)
    ends the holder within the timeout of 2 s; the one that beats every 0.5 s (timeout/4, as Operation does)
    holds on for as long."""
    quiet, beating = hold("quiet", ["cl1"], "alice"), hold("beating", ["cl2"], "bob")
    started = time.monotonic()
    while quiet.proc.poll() is None or time.monotonic() - started < 4:
        assert time.monotonic() - started < 10, "the watchdog never ended the holder that was not heard from"
        beating.send("beat")
        time.sleep(0.5)
    assert quiet.proc.returncode == 128 + signal.SIGTERM  # as the shell that ran it reports it
    assert states(tmp_path) == {"cl1": "stale", "cl2": "held"}
    runs = tmp_path / ".nodeops" / ENV / "runs"
    assert not (runs / "quiet.beat").exists() and (runs / "beating.beat").exists()
    assert beating.release() == "released"
    assert sorted(p.name for p in runs.iterdir() if p.stem == "beating") == []
    log = bastion.parse_audit(sh(bastion.read_audit(".nodeops", ENV, 10), tmp_path).stdout)
    assert log == []  # beats are not audit lines


def records(cwd: Path) -> list[str]:
    """Every file under the environment's locks/ and runs/ (what a run leaves behind)."""
    d = cwd / ".nodeops" / ENV
    return sorted(str(p.relative_to(d)) for sub in ("locks", "runs") if (d / sub).exists() for p in (d / sub).iterdir())


def in_the_way(cwd: Path, name: str) -> None:
    """A directory where the script must write a file: the write fails, even for root."""
    (cwd / ".nodeops" / ENV / name).mkdir(parents=True)


@pytest.mark.parametrize(
    ("services", "obstacle"),
    [
        (["cl1", "x" * 300], None),  # a name too long for the file system: "acquired" regardless, before
        (["cl1", "cl2"], "locks/cl2.json"),  # the second service's record cannot be written
        (["cl1"], "audit.jsonl"),  # the log this run must append to cannot be written
    ],
    ids=["name-too-long", "record-unwritable", "audit-unwritable"],
)
def test_a_write_that_fails_is_no_lock_taken_and_leaves_nothing(tmp_path, hold, services, obstacle):
    if obstacle:
        in_the_way(tmp_path, obstacle)
    res = sh(bastion.hold(".nodeops", ENV, "r1", services, 2), tmp_path, '{"who": "alice"}\n')
    assert res.returncode == bastion.NO_WRITE, (res.returncode, res.stdout, res.stderr)
    assert "acquired" not in res.stdout
    left = [r for r in records(tmp_path) if r != obstacle]
    assert left == [], left  # cl1's records, written before the failure, were taken back: no stale lock
    assert states(tmp_path) == {}
    if obstacle:
        (tmp_path / ".nodeops" / ENV / obstacle).rmdir()
    again = hold("r2", ["cl1"], "bob")  # and cl1 is free for the next run
    assert again.first == "acquired"
    assert again.release() == "released"


def test_an_audit_line_that_cannot_be_written_is_said_at_the_release(tmp_path, hold):
    run = hold("r1", ["cl1"], "alice")
    assert run.first == "acquired"
    log = tmp_path / ".nodeops" / ENV / "audit.jsonl"
    log.unlink()
    log.mkdir()
    run.send('{"event": "end"}')
    assert run.release() == "released audit-incomplete"
    assert states(tmp_path) == {}


def test_release_of_a_stale_lock_that_cannot_be_removed_says_so_and_fails(tmp_path, hold):
    hold("gone", ["cl1", "cl2"], "alice").die()
    record = tmp_path / ".nodeops" / ENV / "locks" / "cl1.json"
    record.unlink()
    (record / "x").mkdir(parents=True)  # rm -f refuses a directory
    res = sh(bastion.release_stale(".nodeops", ENV, ["cl1", "cl2"]), tmp_path)
    assert res.returncode == bastion.NO_WRITE
    assert [line for line in res.stdout.splitlines() if not line.startswith(("held ", "stale "))] == [
        "not removed cl1",
        "removed cl2",
    ]


def test_append_audit_fails_when_the_log_cannot_be_written(tmp_path):
    in_the_way(tmp_path, "audit.jsonl")
    assert sh(bastion.append_audit(".nodeops", ENV), tmp_path, '{"event": "end"}\n').returncode != 0
    (tmp_path / ".nodeops" / ENV / "audit.jsonl").rmdir()
    written = sh(bastion.append_audit(".nodeops", ENV), tmp_path, '{"event": "end"}\n')
    assert written.returncode == 0
    assert bastion.parse_audit(sh(bastion.read_audit(".nodeops", ENV, 5), tmp_path).stdout) == [{"event": "end"}]


def test_a_missing_state_dir_has_no_locks_and_an_empty_log(tmp_path):
    status = sh(bastion.status(".nodeops", ENV), tmp_path)
    assert (status.returncode, status.stdout) == (0, ""), status.stderr
    log = sh(bastion.read_audit(".nodeops", ENV, 5), tmp_path)
    assert (log.returncode, log.stdout) == (0, ""), log.stderr
    assert not (tmp_path / ".nodeops").exists()  # reading created nothing


def test_without_steps_the_audit_tail_counts_operations(tmp_path):
    """Filtered on the bastion: the last N start/end entries however many steps came after them."""
    log = tmp_path / ".nodeops" / ENV / "audit.jsonl"
    log.parent.mkdir(parents=True)
    entries = [{"event": "start", "run": "r1"}, {"event": "end", "run": "r1"}]
    entries += [{"event": "step", "run": "r2", "message": f'step {i} "event": "step"'} for i in range(50)]
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    ops = sh(bastion.read_audit(".nodeops", ENV, 2, steps=False), tmp_path)
    assert ops.returncode == 0 and bastion.parse_audit(ops.stdout) == entries[:2]
    every = sh(bastion.read_audit(".nodeops", ENV, 2), tmp_path)
    assert bastion.parse_audit(every.stdout) == entries[-2:]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ('held cl1 42 {"who": "a"}', [("cl1", "held", 42, {"who": "a"})]),
        ("stale cl2 7 not json", [("cl2", "stale", 7, {})]),
        ("removed cl1\nalive cl2\nfree cl3", []),
        ("held cl1 x {}", [("cl1", "held", 0, {})]),
    ],
)
def test_parse_locks(text, parsed):
    assert [(lock.service, lock.state, lock.pid, lock.holder) for lock in bastion.parse_locks(text)] == parsed


def test_parse_audit_skips_a_line_cut_by_a_crash():
    assert bastion.parse_audit('{"a": 1}\n{"b": \n[1]\n{"c": 3}\n') == [{"a": 1}, {"c": 3}]


@pytest.mark.parametrize(
    ("environ", "who", "ci_run"),
    [
        ({}, "me", None),
        ({"GITHUB_RUN_ID": "123", "GITHUB_ACTOR": "octo"}, "me (octo)", "123"),
        ({"CI_PIPELINE_ID": "9", "GITLAB_USER_LOGIN": "gl"}, "me (gl)", "9"),
        ({"NODEOPS_RUN_LABEL": "nightly", "GITHUB_RUN_ID": "123"}, "me", "nightly"),
    ],
)
def test_holder_record_names_the_person_and_the_ci_run(monkeypatch, environ, who, ci_run):
    monkeypatch.setattr("getpass.getuser", lambda: "me")
    record = holder_record("r1", ["deploy", "--env", "prod"], environ)
    assert (record["who"], record["ci_run"], record["command"]) == (who, ci_run, "fab deploy --env prod")


def test_lock_messages_group_services_by_run_and_say_how_to_clear_a_stale_one():
    text = 'stale cl1 5 {"run": "r1", "who": "a", "from": "h", "command": "fab deploy", "started": "t"}\n' \
           'stale cl2 5 {"run": "r1", "who": "a", "from": "h", "command": "fab deploy", "started": "t"}\n' \
           'held cl3 9 {"run": "r2", "who": "b", "from": "ci", "ci_run": "77", "started": "u"}\n'  # fmt: skip
    assert describe_locks(bastion.parse_locks(text)) == [
        "cl1, cl2: locked by a@h, `fab deploy`, since t (its run is gone: stale)",
        "cl3: locked by b@ci, CI run 77, an unknown command, since u (alive, bastion pid 9)",
    ]
    error = lock_conflict(text, "prod")
    assert error.exit_code == 3
    assert str(error).endswith("fab lock.release --env prod --service cl1,cl2 --force")


HELD = 'held cl3 9 {"run": "r2", "who": "b", "from": "ci", "started": "u"}\nstale cl1 5 {"run": "r1"}\n'


@pytest.mark.parametrize(
    ("text", "as_json", "lines"),
    [
        ("", True, ['{"event": "summary", "env": "prod", "locks": 0, "stale": 0}']),
        (HELD, True, ['{"event": "lock", "service": "cl3", "state": "held", "bastion_pid": 9, "holder": {"run": "r2", '
                      '"who": "b", "from": "ci", "started": "u"}}',
                      '{"event": "lock", "service": "cl1", "state": "stale", "bastion_pid": 5, '
                      '"holder": {"run": "r1"}}',
                      '{"event": "summary", "env": "prod", "locks": 2, "stale": 1}']),
        ("", False, ["no lock held in prod"]),
        (HELD, False, ["cl3: locked by b@ci, an unknown command, since u (alive, bastion pid 9)",
                       "cl1: locked by ?@?, an unknown command, since ? (its run is gone: stale)"]),
    ],
    ids=["none-json", "held-json", "none-text", "held-text"],
)  # fmt: skip
def test_lock_status_answers_off_a_terminal_when_no_lock_is_held(text, as_json, lines):
    """Review of issue 18: off a terminal, lock.status printed nothing at all when no lock was held (one JSON line
    per lock, and none); the summary line now says so, after the locks when there are some."""
    assert status_lines(bastion.parse_locks(text), ENV, as_json) == lines


@pytest.mark.parametrize(
    ("argv0", "command", "hint"),
    [
        ("/home/op/.local/bin/nodeops", "nodeops deploy --env prod", "nodeops lock.release --env prod"),
        ("/src/.venv/bin/fab", "fab deploy --env prod", "fab lock.release --env prod"),
        ("nodeops.exe", "nodeops deploy --env prod", "nodeops lock.release --env prod"),
        ("/usr/bin/pytest", "fab deploy --env prod", "fab lock.release --env prod"),
    ],
)
def test_records_and_hints_name_the_program_that_ran(monkeypatch, argv0, command, hint):
    """The audit log, the lock and the webhook record the command as typed; the hints say what to type."""
    monkeypatch.setattr(sys, "argv", [argv0, "deploy", "--env", "prod"])
    assert program() == command.split()[0] == program(argv0)
    assert holder_record("r1", sys.argv[1:], {})["command"] == command
    stale = 'stale cl1 5 {"run": "r1", "who": "a", "from": "h", "command": "x", "started": "t"}\n'
    assert hint in str(lock_conflict(stale, "prod"))


def failures(*errors: NodeopsError) -> OperationFailed:
    """The error raise_failures ends a run with, over services that ended with ``errors``."""
    with pytest.raises(OperationFailed) as raised:
        raise_failures([{"service": str(i), "error": e} for i, e in enumerate(errors)])
    return raised.value


@pytest.mark.parametrize(
    ("exc", "result"),
    [
        (None, "ok"),
        (Declined("promote-standby in prod: not confirmed; nothing was done"), "declined"),  # rv6 finding 4
        (InvalidInput("--service x: no such service"), "failed"),  # a refusal is not a person's no
        (Unsafe("cl1: two nodes serve at once"), "failed"),
        (OperationFailed("cl1: boom"), "failed"),
        (Interrupted("cl1: stopped at a safe point"), "stopped"),  # review rv15 F7: a stop is not a failure
        (KeyboardInterrupt(), "stopped"),
        (failures(Interrupted("cl1: stopped before the handover"), OperationFailed("cl2: boom")), "stopped"),  # 130
        (failures(Unsafe("cl1: two nodes serve"), OperationFailed("cl2: boom")), "failed"),
    ],
)
def test_an_operations_end_says_declined_when_its_question_was_answered_no(exc, result):
    """And stopped when it was stopped (exit 130), as raise_failures ends a run over several services too (a
    promotion stopped by SIGTERM was recorded "failed")."""
    assert end_result(exc) == result
