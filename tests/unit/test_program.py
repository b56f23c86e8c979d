"""Fabric's core flags mean the same for nodeops or are refused (exit 2), -H selects nodes, a bad flag is
exit 2, for `fab` in the repository and the installed `nodeops` alike; and the question before a change
to several services, with and without a terminal (a real pseudo-terminal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tasks import ns
from tasks._cli import confirmation, prompt_lines
from tasks.program import (
    EXIT_CLOSED_PIPE,
    REFUSED,
    hosts_after_tasks,
    missing_flags_line,
    parse_error_line,
    refusal,
    required_flags,
    whole_number_flags,
)
from tests.conftest import FAB, ROOT, run_on_a_terminal, screen_pieces

NODEOPS = Path(sys.executable).with_name("nodeops")  # the editable install's console script
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAexdbHB36tcwydKJhbUhZib3vTlDloQOUKT1P7lVkKp"
SECRETS = {f"NODEOPS_{svc.upper()}_{name}": value for svc in ("CL1", "CL2") for name, value in (
    ("DB_USERNAME", "cl"), ("DB_PASSWORD", "Aa1-aaaaaaaaaaaaaaaa"), ("WALLET_PASSWORD", "Bb2-bbbbbbbbbbbbbbbb"),
    ("API_USERNAME", "ops@example.com"), ("API_PASSWORD", "Cc3-cccccccccccccccc"))}  # fmt: skip


def service(name: str) -> str:
    return textwrap.indent(textwrap.dedent(f"""\
        {name}:
          role: chainlink
          image: smartcontract/chainlink:2.10.0
          variables: {{DATABASE_HOST: 10.0.0.9, DATABASE_NAME: {name}}}
          secrets:
            db: {{backend: ci, name: {name}/db, key: password}}
            db_user: {{backend: ci, name: {name}/db, key: username}}
            keystore: {{backend: ci, name: {name}/wallet, key: password}}
            api_email: {{backend: ci, name: {name}/api, key: username}}
            api_password: {{backend: ci, name: {name}/api, key: password}}
          nodes:
            - {{name: {name}-a, host: 10.0.{name[-1]}.1, preferred: active, host_key: "{KEY}"}}
            - {{name: {name}-b, host: 10.0.{name[-1]}.2, preferred: standby, host_key: "{KEY}"}}
        """), "  ")  # fmt: skip


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """Two services; the bastion is 127.0.0.1 port 9, where nothing listens: a command that gets past its
    checks fails there with exit 1, `bastion (127.0.0.1:9): cannot connect`."""
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(f"""\
        environment: t
        bastion: {{host: 127.0.0.1, port: 9, user: root, host_key: "{KEY}"}}
        ssh: {{user: root, connect_timeout: 2, connect_retries: 0}}
        secret_backends: {{ci: {{kind: env, prefix: NODEOPS_}}}}
        services:
        """) + service("cl1") + service("cl2"))  # fmt: skip
    return path


def run(program: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(program), *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, **SECRETS})  # fmt: skip


REACHED = "bastion (127.0.0.1:9): cannot connect"  # got past every check: the command went on


# ------------------------------------------------------------------ flags: the pure decision


@pytest.mark.parametrize(
    ("flags", "tasks", "remainder", "expected"),
    [
        ({}, {"deploy": {}}, "", None),
        ({"hosts": "a,b"}, {"exec": {"nodes": None}}, "", None),
        ({"hosts": "a"}, {"exec": {"nodes": "a"}}, "", None),
        ({"hosts": "a"}, {"exec": {"nodes": "b"}}, "", "-H/--hosts a and --nodes b disagree"),
        ({"hosts": "a"}, {"deploy": {"service": None}}, "", "deploy works on whole services: choose them with"),
        ({"hosts": "a"}, {"exec": {"nodes": None}, "status": {}}, "", "status works on whole services"),
        ({"identity": ["k"]}, {"deploy": {}}, "", "-i/--identity is not a nodeops option: the inventory names the "
                                                  "identity: set bastion.identity_file and ssh.identity_file there"),
        ({"identity": []}, {"deploy": {}}, "", None),  # not given: Fabric's default for the list flag
        ({"dry": True}, {"deploy": {}}, "", "use the command's own --dry-run"),
        ({}, {"exec": {"nodes": None}}, "hostname", "`-- COMMAND` is not a nodeops option"),
        *[({name: True}, {"status": {}}, "", f"{flag} is not a nodeops option") for name, (flag, _) in REFUSED.items()],
    ],
)  # fmt: skip
def test_refusal_table(flags, tasks, remainder, expected):
    got = refusal(flags, tasks, remainder)
    assert (got is None) if expected is None else (expected in got)


DEPLOY_FLAGS = ["--dry-run", "-d", "--env", "-e", "--inventory", "--service", "--json"]


@pytest.mark.parametrize(
    ("message", "task", "expected"),
    [
        ("No idea what '--dryrun' is!", "deploy",
         "--dryrun is not a flag of deploy (did you mean --dry-run?); see `nodeops --help deploy`"),
        ("No idea what '--dryrun=1' is!", "deploy",
         "--dryrun=1 is not a flag of deploy (did you mean --dry-run?); see `nodeops --help deploy`"),
        ("No idea what '--zzz' is!", "deploy", "--zzz is not a flag of deploy; see `nodeops --help deploy`"),
        ("No idea what 'deplyo' is!", None, "no command 'deplyo' (did you mean deploy?): `nodeops --list` shows them"),
        ("Flag <Argument: env (e)> needed value and was not given one!", "deploy",
         "--env needs a value (an environment name: inventory/NAME.yaml); see `nodeops --help deploy`"),
        ("Flag <Argument: since> needed value and was not given one!", "logs",
         "--since needs a value; see `nodeops --help logs`"),
        ("Flag <WholeNumber: max_parallel (m) [int]> needed value and was not given one!", "exec",
         "--max-parallel needs a value; see `nodeops --help exec`"),
        ("something else", "deploy", "something else"),
    ],
    ids=["misspelled", "misspelled-with-value", "unknown", "command", "no-value-env", "no-value", "no-value-number",
         "other"],
)  # fmt: skip
def test_parse_error_line_names_the_flag_and_the_fix(message, task, expected):
    """review14b #9: Invoke's own wording ("No idea what ...", "Flag <Argument: env (e)> needed value ...",
    "... did not receive required positional arguments") became nodeops' one line with the fix."""
    assert parse_error_line(message, task, DEPLOY_FLAGS, ["deploy", "status", "shell"]) == expected


@pytest.mark.parametrize(
    ("task", "names", "expected"),
    [
        ("shell", ["node"], "shell needs --node NAME; see `nodeops --help shell`"),
        ("x", ["a", "b_c"], "x needs --a NAME and --b-c NAME; see `nodeops --help x`"),
        ("shards", ["count"], "shards needs --count N; see `nodeops --help shards`"),
        ("x", ["a", "n"], "x needs --a NAME and --n N; see `nodeops --help x`"),
    ],
)
def test_a_missing_required_flag_is_named_with_the_fix(task, names, expected):
    assert missing_flags_line(task, names, ["count", "n"]) == expected


@pytest.mark.parametrize(("task", "required"), [("exec", ["command"]), ("logs", ["service"]), ("shell", ["node"]),
                                                ("deploy", []), ("shards", ["count"]),
                                                ("restore", ["from_", "into"])])  # fmt: skip
def test_required_flags_are_the_arguments_without_a_default(task, required):
    assert required_flags(ns[task]) == required


@pytest.mark.parametrize(("task", "numbers"), [("shards", ["count"]), ("exec", ["max_parallel"]), ("audit", ["lines"]),
                                               ("lab.up", ["nodes"]), ("deploy", []), ("logs", [])])  # fmt: skip
def test_whole_number_flags_are_the_int_defaults_and_the_required_ints(task, numbers):
    assert whole_number_flags(ns[task]) == numbers


# ------------------------------------------------------------------ flags: both programs, end to end


@pytest.mark.parametrize("program", [FAB, NODEOPS], ids=["fab", "nodeops"])
@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("exec", "--command", "true", "--nosuch"), 2,
         "nodeops: --nosuch is not a flag of exec; see `nodeops --help exec`"),
        (("deploy", "--inventory", "{inv}", "--dry-rn"), 2,
         "--dry-rn is not a flag of deploy (did you mean --dry-run?)"),
        (("nosuch-task",), 2, "nodeops: no command 'nosuch-task': `nodeops --list` shows them"),
        (("deploy", "--env"), 2, "nodeops: --env needs a value (an environment name: inventory/NAME.yaml)"),
        (("shell", "--inventory", "{inv}"), 2, "nodeops: shell needs --node NAME; see `nodeops --help shell`"),
        (("-i", "/tmp/k", "status", "--inventory", "{inv}"), 2, "-i/--identity is not a nodeops option"),
        (("-S", "/tmp/c", "status", "--inventory", "{inv}"), 2, "-S/--ssh-config is not a nodeops option"),
        (("-t", "3", "status", "--inventory", "{inv}"), 2, "set ssh.connect_timeout in the inventory"),
        (("-H", "cl1-a", "deploy", "--inventory", "{inv}"), 2, "deploy works on whole services"),
        (("-H", "zz", "exec", "--inventory", "{inv}", "--command", "true"), 2, "unknown node 'zz'"),
        (("-H", "cl1-a,cl2-b", "exec", "--inventory", "{inv}", "--command", "true"), 1, REACHED),
        (("exec", "--inventory", "{inv}", "--command", "true", "--", "hostname"), 2, "`-- COMMAND`"),
    ],
    ids=["unknown-flag", "misspelled-flag", "unknown-task", "flag-without-value", "missing-node", "-i", "-S", "-t",
         "-H-deploy", "-H-selects", "-H-ok", "remainder"],
)  # fmt: skip
def test_core_flags_mean_the_same_or_exit_2(inventory, program, args, code, fragment):
    res = run(program, *(a.replace("{inv}", str(inventory)) for a in args))
    assert (res.returncode, res.stdout) == (code, ""), res.stderr
    assert fragment in res.stderr and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


@pytest.mark.parametrize("program", [FAB, NODEOPS], ids=["fab", "nodeops"])
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("shards", "--inventory", "{inv}", "--count", "x"), "--count x: expected a whole number (such as --count 4)"),
        (("shards", "--inventory", "{inv}", "--count", ""), "--count '': expected a whole number"),
        (("shards", "--inventory", "{inv}", "--count=2.5"), "--count 2.5: expected a whole number"),
        (("shards", "--inventory", "{inv}", "-c", "4x"), "--count 4x: expected a whole number"),
        (("exec", "--inventory", "{inv}", "--command", "true", "--max-parallel", "x"),
         "--max-parallel x: expected a whole number (such as --max-parallel 4)"),
        (("audit", "--inventory", "{inv}", "--lines", "all"), "--lines all: expected a whole number"),
        (("lab.up", "--nodes", "x"), "--nodes x: expected a whole number (such as --nodes 4)"),
        (("exec", "--inventory", "{inv}", "--command", "true", "--max-parallel"),
         "--max-parallel needs a value; see `nodeops --help exec`"),
        (("shards", "--inventory", "{inv}", "--count", "2", "-D", "x"),
         "--list-depth x: expected a whole number (such as --list-depth 4)"),
        (("shards", "--inventory", "{inv}"), "shards needs --count N; see `nodeops --help shards`"),
        (("restore", "--inventory", "{inv}", "--service", "cl1", "--from", "latest"),
         "restore needs --into NAME; see `nodeops --help restore`"),
    ],
    ids=["count-x", "count-empty", "count-decimal", "count-short", "max-parallel", "lines", "lab-nodes",
         "max-parallel-no-value", "core-after-task", "count-missing", "into-missing"],
)  # fmt: skip
def test_a_bad_or_missing_number_or_value_is_one_line_naming_the_flag(inventory, program, args, line):
    """Review of issue 18: a non-number for any int flag was Invoke's ValueError traceback and exit 1; a missing
    --count was reported as `--count 0`, a missing --into as `--into 'None'`."""
    res = run(program, *(a.replace("{inv}", str(inventory)) for a in args))
    assert (res.returncode, res.stdout) == (2, ""), res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("nodeops: ") and line in res.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("-D", "x", "--list"), "--list-depth x: expected a whole number (such as --list-depth 4)"),
        (("-t", "x", "status", "--inventory", "{inv}"), "--connect-timeout x: expected a whole number"),
        (("-T", "2.5", "status", "--inventory", "{inv}"), "--command-timeout 2.5: expected a whole number"),
        (("-D", "--list"), "--list-depth needs a value; see `nodeops --help`"),
    ],
    ids=["list-depth", "connect-timeout", "command-timeout", "list-depth-no-value"],
)  # fmt: skip
def test_a_bad_core_number_before_the_command_is_one_line_for_nodeops(inventory, args, line):
    """The core flags' own int flags read alike before a command's name; `fab` (Fabric's program) parses those before
    its fabfile makes it nodeops, so only the installed `nodeops` is asked here."""
    res = run(NODEOPS, *(a.replace("{inv}", str(inventory)) for a in args))
    assert (res.returncode, res.stdout) == (2, ""), res.stderr
    assert res.stderr.startswith(f"nodeops: {line}") and res.stderr.count("\n") == 1, res.stderr


# ------------------------------------------------------------------ confirmation


@pytest.mark.parametrize(
    ("services", "yes", "terminal", "expected"),
    [
        (1, False, False, "go"),
        (2, False, False, "refuse"),
        (2, True, False, "go"),
        (1, False, True, "ask"),
        (2, False, True, "ask"),
        (2, True, True, "go"),
    ],
)
def test_confirmation_table(services, yes, terminal, expected):
    assert confirmation(services, yes, terminal) == expected


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("promote-standby",), 2, "promote-standby in t covers 2 services (cl1, cl2): pass --yes"),
        (("promote-standby", "--yes"), 1, REACHED),
        (("promote-standby", "--service", "cl1"), 1, REACHED),  # one service: a CI job needs no --yes
        (("promote-standby", "--service", "cl1,cl2"), 2, "pass --yes"),
        (("rollback", "--service", "cl2"), 1, REACHED),
    ],
)
def test_without_a_terminal_several_services_need_yes(inventory, args, code, fragment):
    res = run(FAB, *args, "--inventory", str(inventory), "--json")
    assert res.returncode == code and fragment in res.stderr, res.stderr


def on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run nodeops under a pseudo-terminal (stdin, stdout and stderr), answer no to a question if one is asked,
    and return the exit code and everything it printed."""
    env = {k: v for k, v in {**os.environ, **SECRETS}.items() if k != "CI"}
    answered = []

    def react(seen: bytes, master: int, _proc) -> None:
        if not answered and b"[y/N]" in seen:
            os.write(master, b"n\n")
            answered.append(True)

    return run_on_a_terminal([str(NODEOPS), *args], env, react)


@pytest.mark.parametrize(
    "args",
    [
        # rollback asks once the target is read from the audit log (tests/unit/test_rollback.py), promote-standby once
        # the pairs were observed (its line names the active now: tests/unit/test_promote.py): the bastion first
        ["rollback", "--service", "cl1", "--to", "2.10.0"],
        ["promote-standby"],
        ["promote-standby", "--service", "cl1"],
        ["promote-standby", "--yes"],  # --yes: no question at all
    ],
)
def test_on_a_terminal_promote_and_rollback_reach_the_pairs_before_asking(inventory, args):
    got, out = on_a_terminal([*args, "--inventory", str(inventory)])
    assert got == 1 and REACHED in out and "[y/N]" not in out, out


PROMOTE_LINES = [
    "cl1: hand over from cl1-a (active, 2.10.0) to cl1-b (standby); the old active becomes the standby",
    "cl2: hand over from cl2-b (active, 2.11.0) to cl2-a (standby); the old active becomes the standby",
]
ASK = textwrap.dedent("""\
    import sys
    from nodeops.errors import InvalidInput
    from tasks._cli import ask
    try:
        ask("promote-standby in t", sys.argv[1:])
    except InvalidInput as err:
        print(f"nodeops: {err}")
        sys.exit(2)
    print("went ahead")
    """)


@pytest.mark.parametrize(
    ("answer", "code", "fragment"),
    [
        (b"n\n", 2, "nodeops: promote-standby in t: not confirmed; nothing was done"),
        (b"\n", 2, "not confirmed"),  # the default is no
        (b"y\n", 0, "went ahead"),
        (b"yes\n", 0, "went ahead"),
    ],
)
def test_the_question_shows_each_line_fitted_to_80_columns_and_takes_only_yes(answer, code, fragment):
    """What promote-standby asks once its pairs were observed (tasks._cli.ask), at a real pseudo-terminal."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    answered = []

    def react(seen: bytes, master: int, _proc) -> None:
        if not answered and b"[y/N]" in seen:
            os.write(master, answer)
            answered.append(True)

    got, out = run_on_a_terminal([sys.executable, "-c", ASK, *PROMOTE_LINES], env, react, columns=80)
    assert got == code and fragment in out and out.count("[y/N]") == 1, out
    shown = out.split("[y/N]")[0].replace("\r", "").splitlines()
    assert shown[0] == "promote-standby in t will:" and all(len(line) <= 80 for line in shown), shown
    assert " ".join(" ".join(shown[1:]).split()).removesuffix(" Proceed?") == " ".join(PROMOTE_LINES)  # no word cut


DECLINE = textwrap.dedent("""\
    import sys
    from invoke import Exit
    from nodeops.console import Screen
    from tasks._cli import ask, cli

    @cli
    def promote_standby(json_=False):  # as tasks/promote.py: the question asked under the run's live rows
        with Screen("promote-standby", "t", ["chainlink"]):
            ask("promote-standby in t", sys.argv[1:])

    try:
        promote_standby()
    except Exit as end:
        sys.exit(end.code)
    """)


def test_a_question_answered_no_is_shown_as_declined_not_as_a_failure():
    """rv6 finding 4, at a real pseudo-terminal: answering n printed ``✗ chainlink  failed (the reason is printed
    below)`` and the reason in bold red. Still exit 2 (README: a question answered no), but declined, not red."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    answered = []

    def react(seen: bytes, master: int, _proc) -> None:
        if not answered and b"[y/N]" in seen:
            os.write(master, b"n\n")
            answered.append(True)

    got, out = run_on_a_terminal([sys.executable, "-c", DECLINE, PROMOTE_LINES[0]], env, react, columns=80)
    shown = "\n".join(screen_pieces(out))
    assert got == 2 and "nodeops: promote-standby in t: not confirmed; nothing was done" in shown, out
    assert "– chainlink" in shown and "declined: nothing was done" in shown, out
    assert "✗" not in out and "failed" not in out and "\x1b[1;31m" not in out, out


# ------------------------------------------------------------------ -H after the task's name


@pytest.mark.parametrize(
    ("tokens", "found", "rest"),
    [
        (["exec", "--command", "x"], [], ["exec", "--command", "x"]),
        (["exec", "-H", "a,b", "--command", "x"], ["a,b"], ["exec", "--command", "x"]),
        (["exec", "--command", "x", "--hosts", "a"], ["a"], ["exec", "--command", "x"]),
        (["exec", "--hosts=a", "-Hb"], ["a", "b"], ["exec"]),
        (["exec", "--command", "x", "-H"], [], ["exec", "--command", "x", "-H"]),  # no value: the parser says so
        (["exec", "--", "-H", "a"], [], ["exec", "--", "-H", "a"]),  # after --: the remainder, refused later
        (["exec", "--help"], [], ["exec", "--help"]),
    ],
)  # fmt: skip
def test_hosts_after_tasks_table(tokens, found, rest):
    assert hosts_after_tasks(tokens) == (found, rest)


@pytest.mark.parametrize("program", [FAB, NODEOPS], ids=["fab", "nodeops"])
@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("exec", "-H", "zz", "--inventory", "{inv}", "--command", "true"), 2, "unknown node 'zz'"),
        (("exec", "--inventory", "{inv}", "--command", "true", "--hosts", "cl1-a,cl2-b"), 1, REACHED),
        (("deploy", "--inventory", "{inv}", "-H", "cl1-a"), 2, "deploy works on whole services"),
        (("-H", "cl1-a", "exec", "-H", "cl2-a", "--inventory", "{inv}", "--command", "true"), 2,
         "-H/--hosts given twice (cl1-a, cl2-a): give it once"),
        (("exec", "--inventory", "{inv}", "--env", "prod", "--command", "true"), 2,
         "--env prod and --inventory {inv}: give one of them"),
        (("exec", "--command", "true", "--env", "prod", "-i", "{inv}"), 2, "give one of them"),
    ],
    ids=["-H-after-selects", "--hosts-after-ok", "-H-after-deploy", "-H-twice", "env-and-inventory", "-i-after-env"],
)  # fmt: skip
def test_hosts_after_the_task_and_env_with_inventory(inventory, program, args, code, fragment):
    res = run(program, *(a.replace("{inv}", str(inventory)) for a in args))
    assert (res.returncode, res.stdout) == (code, ""), res.stderr
    assert fragment.replace("{inv}", str(inventory)) in res.stderr and res.stderr.count("\n") == 1, res.stderr


# ------------------------------------------------------------------ a pipe whose reader is gone


@pytest.mark.parametrize("program", [FAB, NODEOPS], ids=["fab", "nodeops"])
@pytest.mark.parametrize(
    "args", [("--help", "deploy"), ("--list",), ("init",), ("--version",)], ids=["help", "list", "task", "version"]
)
def test_a_closed_pipe_ends_quietly_with_141(tmp_path, program, args):
    """stdout is a pipe whose read end is already closed (what `| head` leaves once it has its lines)."""
    if program == FAB and args == ("--version",):
        pytest.skip("fab --version is printed by Fabric itself, before the fabfile makes it nodeops")
    read, write = os.pipe()
    os.close(read)
    cwd = tmp_path if args == ("init",) else ROOT  # init writes into the working folder
    if program == FAB and args == ("init",):
        args = ("--search-root", str(ROOT), *args)  # fab's fabfile is the repository's
    try:
        proc = subprocess.run([str(program), *args], cwd=cwd, stdout=write, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (EXIT_CLOSED_PIPE, "")


# -- a confirmation prompt fits the terminal, wrapped at words ------------------------------------------------------
ROLLBACK_PLAN = ("cl1: back to the image and configuration that ran before the current ones (standby first, one "
                 "planned handover)")  # fmt: skip


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        (80, ["rollback in prod will:",
              "  cl1: back to the image and configuration that ran before the current ones",
              "    (standby first, one planned handover)"]),
        (40, ["rollback in prod will:",
              "  cl1: back to the image and",
              "    configuration that ran before the",
              "    current ones (standby first, one",
              "    planned handover)"]),
        (200, ["rollback in prod will:", f"  {ROLLBACK_PLAN}"]),
    ],
)  # fmt: skip
def test_a_confirmation_is_wrapped_at_words_to_the_terminal(width, expected):
    lines = prompt_lines("rollback in prod", [ROLLBACK_PLAN], width)
    assert lines == expected
    assert all(len(line) <= width for line in lines)
    assert " ".join(" ".join(lines).split()) == f"rollback in prod will: {ROLLBACK_PLAN}"  # no word cut or lost


def test_a_word_longer_than_the_terminal_is_kept_whole():
    ref = "registry.example:5000/chainlink:2.10.0@sha256:6bc87626beba6bc87626beba"
    assert prompt_lines("rollback in prod", [f"cl1: back to {ref}"], 40) == [
        "rollback in prod will:", "  cl1: back to", f"    {ref}"]  # fmt: skip


# -- logs into a pipe whose reader goes away: the node streams stop, quietly --------------------------------------
LOGS_INTO_A_CLOSED_PIPE = """
import sys, threading
from tasks.logs import merge_node_lines

class Node:
    def __init__(self, name):
        self.name = name

def run_node(node, sink):  # a node's log, as stream() gives it: chunks, the last line without its newline
    for i in range(20000):  # bounded; far more than a pipe buffer holds
        sink(f"line {i} of {node.name}\\n".encode())
    sink(b"last line, no newline")
    return 0

codes, closed = merge_node_lines([Node("cl1-a"), Node("cl1-b")], run_node, str)
print(f"closed={closed} failed={sorted(n for n, c in codes.items() if c)}", file=sys.stderr)
"""


def test_logs_into_a_closed_pipe_stops_the_streams_without_a_traceback_or_a_failure():
    """`nodeops logs ... | head -2`: the node threads find the pipe closed; no thread traceback, no node reported
    as failed (the task then ends with 141 through quiet_on_closed_pipe, as test_a_closed_pipe... shows)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-c", LOGS_INTO_A_CLOSED_PIPE], cwd=ROOT, stdout=write,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (0, "closed=True failed=[]\n")


# -- logs --follow ended by a signal: SIGTERM too ends it through the `with` blocks, as Ctrl-C does -----------------
ENDING_ON_SIGNALS = """
import signal, sys, threading
from nodeops.stopping import Stopped, ending_on_signals

worker = threading.Thread(target=threading.Event().wait, daemon=True)  # a node's stream: never ends by itself
worker.start()
try:
    with ending_on_signals():
        try:
            print("ready", flush=True)
            for _ in range(600):  # bounded: 2 min
                worker.join(0.2)  # as merge_node_lines waits
        finally:
            print("closed", flush=True)  # what the Fleet's `with` does on the way out
except Stopped as stop:
    print(f"stopped by {stop}", flush=True)
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_block_through_its_with_blocks_and_restores_the_handlers(sig):
    proc = subprocess.Popen([sys.executable, "-c", ENDING_ON_SIGNALS], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(getattr(signal, sig))
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == f"closed\nstopped by {sig}\nTrue True\n"
    finally:
        proc.kill()
