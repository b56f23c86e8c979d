"""What a person reads on a terminal, rendered at 80 columns: no line longer, no word cut, digests short,
failures red and printed once, dry runs said; and the JSON event lines valid against docs/events.schema.json."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from nodeops.console import (
    BREAK_AFTER,
    BREAK_BEFORE,
    HOSTKEY_COLUMNS,
    Progress,
    Screen,
    audit_line,
    audit_view,
    fit_words,
    header,
    hostkeys_view,
    outcome,
    short_digests,
    status_view,
    step_row,
    wrap_spans,
)
from nodeops.deploy import per_service
from nodeops.diff import BODY_INDENT
from nodeops.errors import Declined, Interrupted, OperationFailed
from nodeops.hostkeys import Row as HostKeyRow
from nodeops.run.report import Reporter
from tests.conftest import screen_pieces

DOCS = Path(__file__).resolve().parents[2] / "docs"
EVENTS = json.loads((DOCS / "events.schema.json").read_text())
STATUS = json.loads((DOCS / "status.schema.json").read_text())
DIGEST = "sha256:" + "3f2a1c9e0b7d" + "a" * 52
CONFIG = "9" * 64
RPC = "EVM.1.HeadTracker.HeadListener"
LONG = ("could not pull registry.example.net:5000/chainlink:2.11.0 (Get https://registry.example.net/v2/: dial tcp "
        "10.0.0.9:5000: connect: connection refused); using the image this node holds, sha256:" + "b" * 64)  # fmt: skip


def printed(renderable, width: int = 80) -> str:
    """What a terminal of ``width`` columns shows, without colour."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False, legacy_windows=False).print(renderable)
    return out.getvalue()


def words(text: str) -> set[str]:
    return {w.strip(",;:()[]") for w in text.split()} - {""}


def allowed(*texts: str) -> set[str]:
    """Every word of ``texts``, and each with its digests shortened: the only words an output may hold."""
    found = set()
    for text in texts:
        found |= words(text) | words(short_digests(text))
    return found


def assert_fits(text: str, vocabulary: set[str], width: int = 80) -> None:
    lines = text.splitlines()
    assert lines and max(len(line) for line in lines) <= width, text
    cut = words(text) - vocabulary
    assert not cut, f"words not meant to be printed (cut?): {sorted(cut)}\n{text}"


def status_result(**over) -> dict:
    node = {"node": "cl1-a", "host": "10.0.0.1", "role": "active", "health": "passing", "failing": [],
            "unreachable": None, "container": "running", "uptime_seconds": 3725.0,
            "image": "registry.example.net:5000/chainlink:2.11.0",
            "version": "2.11.0", "digest": DIGEST, "config": CONFIG[:12]}  # fmt: skip
    standby = {**node, "node": "cl1-b", "host": "10.0.0.2", "role": "standby", "health": "no answer"}
    result = {"event": "status", "service": "cl1", "state": "healthy", "nodes": [node, standby],
              "lease": {"holder": "5f0c3b1e-1111-2222-3333-444455556666", "held": True, "expires_in_seconds": 9.2,
                        "describe": "held by 5f0c3b1e, expires in 9.2s (database time)"},
              "lock": {"state": "stale", "bastion_pid": 4242,
                       "holder": {"run": "0123456789abcdef", "who": "alice (ci-bot)", "from": "laptop-of-alice",
                                  "ci_run": "4242", "command": "fab deploy --env prod --service cl1,cl2,cl3",
                                  "started": "2026-11-30T10:00:00Z"}}, "mixed": None, "rotation": None}  # fmt: skip
    result.update(over)
    return result


UNREACHABLE = {**status_result()["nodes"][1], "role": "unknown", "health": "unknown", "container": None,
               "uptime_seconds": None, "image": None, "version": None, "digest": None, "config": None,
               "unreachable": "cl1-b (10.0.0.2:22): cannot connect after 1 attempt(s): Timeout opening channel",
               }  # fmt: skip


def vocabulary_of(results: list[dict]) -> set[str]:
    values = json.dumps(results).replace('"', " ")
    labels = (
        "node role health container version up config lease lock failing: unreachable: 1h02m - … by from unreadable: "
        "mixed fab deploy brings both to the inventory's) rotation interrupted: completes it"
    )
    return allowed(values, labels)


@pytest.mark.parametrize(
    "result",
    [
        status_result(),
        status_result(
            state="degraded",
            nodes=[
                {
                    **status_result()["nodes"][0],
                    "health": "failing",
                    "failing": [RPC, "EVM.137.BalanceMonitor", "HTTP 503"],
                },
                status_result()["nodes"][1],
            ],
        ),  # fmt: skip
        status_result(
            state="down",
            lease={
                "error": "lease: cannot reach 10.0.0.5:5432 through the bastion: connection refused (is PostgreSQL up?)"
            },
            lock=None,
        ),  # fmt: skip
        status_result(
            nodes=[
                {**status_result()["nodes"][0], "node": "chainlink-mainnet-primary-eu-west-1a-node"},
                {
                    **status_result()["nodes"][1],
                    "node": "chainlink-mainnet-standby-eu-west-1b-node",
                    "container": None,
                    "version": None,
                    "config": None,
                    "uptime_seconds": None,
                },
            ]
        ),
        status_result(
            state="mixed", mixed=f"cl1-a runs 2.11.0 config {CONFIG[:12]}, cl1-b runs 2.11.0 config {CONFIG[-12:]}"
        ),  # fmt: skip
        status_result(state="degraded", nodes=[status_result()["nodes"][0], UNREACHABLE]),
        status_result(
            state="degraded",
            lease={"error": "cl1: the database refused the login", "login_refused": True},
            rotation={"interrupted": ["db"], "finish": "fab rotate-secrets --env prod --service cl1 --secret db"},
        ),  # fmt: skip
    ],
    ids=[
        "healthy",
        "failing-checks",
        "lease-unreadable",
        "long-node-names",
        "mixed",
        "unreachable",
        "rotation-interrupted",
    ],
)
def test_status_fits_80_columns_without_cutting_a_word(result):
    jsonschema.validate(result, STATUS)  # the table shows what the JSON says
    text = printed(status_view([result]))
    assert_fits(text, vocabulary_of([result]))
    assert result["state"] in text and all(n["node"] in text for n in result["nodes"])
    lease = next(line for line in text.splitlines() if "lease" in line)
    assert text.splitlines().index(lease) < 3  # the lease is one short line, not spread over 8
    if result["rotation"]:  # a rotation a killed run left under way, and the command that completes it
        assert "rotation db interrupted: fab rotate-secrets --env prod --service cl1 --secret db completes it" in (
            " ".join(text.split()))  # fmt: skip


def test_status_says_why_a_node_is_unknown():
    """rv6 finding 3: an unreachable node's row read ``unknown unknown - - - -`` and nothing said why."""
    text = " ".join(printed(status_view([status_result(nodes=[status_result()["nodes"][0], UNREACHABLE])])).split())
    assert f"cl1-b unreachable: {UNREACHABLE['unreachable']}" in text


def test_status_lists_every_failing_check_whole():
    result = status_result(state="degraded")
    result["nodes"][0].update(health="failing", failing=[RPC, "EVM.137.BalanceMonitor"])
    text = printed(status_view([result]))
    assert RPC in text and "EVM.137.BalanceMonitor" in text


@pytest.mark.parametrize(
    ("text", "short"),
    [
        (f"pulled r:5000/cl:2.11.0 ({DIGEST})", "pulled r:5000/cl:2.11.0 (sha256:3f2a1c9e0b7d)"),
        (f"config {CONFIG}", "config 999999999999"),
        ("config 9f2c1b7e0a11 stays", "config 9f2c1b7e0a11 stays"),  # already short: unchanged
        ("x" + "a" * 64, "x" + "a" * 64),  # inside a word: not a digest
    ],
)
def test_digests_are_shortened_to_12_hex(text, short):
    assert short_digests(text) == short


@pytest.mark.parametrize(
    ("text", "width", "fitted"),
    [
        ("waiting for the lease", 40, "waiting for the lease"),
        ("took over from cl1-a: outage 1.10s (11 samples)", 30, "took over from cl1-a: outage…"),
        ("supercalifragilistic", 5, "…"),
        ("a b", 2, "a…"),
    ],
)
def test_fit_words_never_cuts_inside_a_word(text, width, fitted):
    assert fit_words(text, width) == fitted and len(fitted) <= width


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"message": "FAILED: cl1 cl1-a: `docker run` failed", "outcome": "failed"}, "failed"),
        ({"message": "cl1: not started", "outcome": "stopped"}, "stopped"),
        ({"message": "SERVICE DOWN: nothing serves", "service_down": True}, "failed"),
        ({"message": "SIGINT: stopping at the next safe point", "stopping": True}, "stopped"),
        ({"message": "warning: the database cannot be read"}, "warning"),
        ({"message": "serving after 3.2s"}, "done"),
        ({"message": "pulled r:5000/cl:2.11.0"}, "info"),
    ],
)
def test_outcome_colours(event, expected):
    assert outcome(event) == expected


def test_step_lines_wrap_under_their_message_and_shorten_digests():
    event = {"event": "step", "t": 12.34, "service": "cl1", "node": "cl1-a", "message": LONG}
    text = printed(step_row(event))
    assert_fits(text, allowed(LONG, "12.3s cl1 cl1-a"))
    assert "b" * 13 not in text and "sha256:bbbbbbbbbbbb" in text
    column = text.splitlines()[0].index("could")
    assert all(line[:column].strip() == "" for line in text.splitlines()[1:])  # a hanging indent


def test_header_names_operation_env_services_and_a_dry_run():
    assert printed(header("deploy", "prod", ["cl1", "cl2"])).strip() == "deploy in prod: cl1, cl2"
    dry = printed(header("deploy", "prod", ["cl1"], dry_run=True))
    assert "DRY RUN" in dry and "nothing will be changed" in dry


def test_progress_rows_fit_and_show_each_services_latest_step():
    view = Progress(["cl1", "cl2"])
    view.update({"service": "cl1", "node": "cl1-b", "message": f"pulled r:5000/cl:2.11.0 ({DIGEST}) " + "x " * 50})
    view.update({"service": "cl2", "node": "", "message": "plan: fresh pair; start cl2-a; start cl2-b"})
    view.update({"service": "nobody", "node": "", "message": "ignored"})
    text = printed(view.render(80))
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "sha256:3f2a1c9e0b7d" in text and "…" in text and "plan: fresh pair" in text
    view.update({"service": "cl2", "node": "", "message": "FAILED: cl2 cl2-a: boom", "outcome": "failed"})
    view.update({"service": "cl2", "node": "cl2-a", "message": "later"})  # an ended row stays ended
    view.finish("done")
    text = printed(view.render(80))
    assert "✓ cl1" in text and "✗ cl2" in text and "boom" not in text and "later" not in text


def screen_run(events: list[dict], fail: Exception | None = None) -> str:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system="standard", highlight=False)
    with contextlib.suppress(type(fail) if fail else ()):
        with Screen("deploy", "prod", ["cl1", "cl2"], console=console) as screen:
            report = Reporter(False, show=screen.show)
            for event in events:
                report(**event)
            if fail:
                raise fail
    return out.getvalue()


def test_a_failure_is_not_printed_as_a_step_line_its_row_turns_red():
    """Issue 14: a failure printed twice (the step line, then `nodeops: ...`). On a terminal the step is the
    row's red mark; the reason is printed once, by the task's error handler."""
    reasons = []

    def fails():
        raise OperationFailed("cl2 cl2-a: `docker run` failed: no space left on device; cl2-b serves")

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system="standard", highlight=False)
    with Screen("deploy", "prod", ["cl1", "cl2"], console=console) as screen:
        report = Reporter(False, show=screen.show)
        report("cl1", "cl1-a", "serving after 2.1s")
        reasons.append(per_service(report, "cl2", fails))
    text = out.getvalue()
    assert "no space left" not in text and "FAILED" not in text
    assert "\x1b[1;31m✗" in text  # the row's mark, bold red
    assert "serving after 2.1s" in text and "\x1b[32mserving after 2.1s" in text  # green: done
    assert str(reasons[0]["error"]).startswith("cl2 cl2-a")


def test_a_service_that_finished_stays_done_when_another_fails():
    view = Progress(["cl1", "cl2"])
    view.update({"service": "cl1", "node": "", "message": "FAILED: cl1 cl1-a: boom", "outcome": "failed"})
    view.update({"service": "cl2", "node": "cl2-a", "message": "active; nothing changed"})
    view.finish("failed")
    assert {r.service: r.ended for r in view.rows.values()} == {"cl1": "failed", "cl2": "done"}
    assert view.rows["cl2"].message == "active; nothing changed"


def test_progress_rows_fit_whatever_the_other_rows_node_names():
    view = Progress(["cl1", "a-service-with-a-long-name"])
    view.update({"service": "cl1", "node": "cl1-a-node-with-a-long-name", "message": "word " * 30})
    view.update({"service": "a-service-with-a-long-name", "node": "x", "message": "other " * 30})
    text = printed(view.render(80))
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert words(text) <= {"cl1", "cl1-a-node-with-a-long-name", "a-service-with-a-long-name", "x", "word", "other",
                           "word…", "other…"} | set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏…"), text  # fmt: skip


def test_an_unfinished_row_ends_as_the_run_did():
    text = screen_run([{"service": "cl1", "node": "cl1-a", "message": "started nodeops-cl1"}],
                      Interrupted("cl1: stopped at a safe point"))  # fmt: skip
    assert "■" in text and "stopped" in text


RED = "\x1b[1;31m"  # rich's bold red, as STYLES["failed"] prints it (color_system="standard")


def test_a_question_answered_no_ends_the_rows_as_declined_not_failed():
    """rv6 finding 4: answering n to promote-standby's question showed ``✗ chainlink  failed (the reason is printed
    below)`` in red. Nothing was done: the rows say declined, with no red and no word of failure."""
    text = screen_run([{"service": "cl1", "node": "cl1-a", "message": "observed: cl1-a serves"}],
                      Declined("promote-standby in prod: not confirmed; nothing was done"))  # fmt: skip
    shown = "\n".join(screen_pieces(text))
    assert all(f"– {service}" in shown for service in ("cl1", "cl2")), shown
    assert "declined: nothing was done" in shown, shown
    assert "✗" not in text and "failed" not in text and RED not in text, text


def test_the_audit_shows_a_declined_run_as_declined_not_red():
    declined = {**AUDIT[-1], "op": "promote-standby", "result": "declined", "exit_code": 2,
                "error": "promote-standby in prod: not confirmed; nothing was done"}  # fmt: skip
    jsonschema.validate(declined, EVENTS)  # a result of its own (docs/events.schema.json), not "failed"
    out = io.StringIO()
    Console(file=out, width=80, force_terminal=True, color_system="standard", highlight=False).print(
        audit_line(declined)
    )
    assert "promote-standby declined, exit 2" in out.getvalue().replace("\x1b[0m", "").replace("\x1b[1m", "")
    assert RED not in out.getvalue() and "\x1b[31m" not in out.getvalue(), out.getvalue()
    red = io.StringIO()  # the same line, failed, is red: the check can fail
    Console(file=red, width=80, force_terminal=True, color_system="standard", highlight=False).print(
        audit_line(AUDIT[-1])
    )
    assert RED in red.getvalue()


def test_stop_notes_reach_the_screen_while_the_view_is_live():
    """The note of the first Ctrl-C (nodeops.stopping, reported with ``stopping``) is printed above the rows."""
    note = "SIGINT: stopping at the next safe point: no new step starts"
    text = screen_run([{"service": "", "node": "", "message": note, "stopping": True}])
    assert "SIGINT: stopping at the next safe point" in "\n".join(screen_pieces(text))


AUDIT = [
    {"time": "2026-11-30T10:00:00Z", "run": "0123456789abcdef", "who": "alice", "env": "prod", "op": "deploy",
     "event": "start", "services": ["cl1"], "from": "laptop", "ci_run": None, "command": "fab deploy",
     "started": "2026-11-30T10:00:00Z"},
    {"time": "2026-11-30T10:00:03Z", "run": "0123456789abcdef", "who": "alice", "env": "prod", "op": "deploy",
     "event": "step", "service": "cl1", "node": "cl1-a", "message": LONG, "digest": DIGEST},
    {"time": "2026-11-30T10:00:04Z", "run": "0123456789abcdef", "who": "alice", "env": "prod", "op": "deploy",
     "event": "end", "result": "ok", "exit_code": 0, "error": None, "seconds": 4.1, "services": ["cl1"],
     "results": []},
    {"time": "2026-12-01T09:00:00Z", "run": "fedcba9876543210", "who": "bob", "env": "prod", "op": "rollback",
     "event": "end", "result": "failed", "exit_code": 4, "seconds": 1.5, "services": ["cl1"], "results": [],
     "error": "cl1: refused: the database last ran 2.11.0, newer than 2.10.0 (node_versions); nothing changed"},
]  # fmt: skip


def test_audit_is_human_on_a_terminal_and_fitted():
    text = printed(audit_view(AUDIT))
    vocabulary = allowed(json.dumps(AUDIT).replace('"', " "), "2026-11-30 2026-12-01 10:00:00 10:00:03 10:00:04 "
                         "09:00:00 by from run exit after 4.1s 1.5s ok, failed,")  # fmt: skip
    assert_fits(text, vocabulary)
    assert "{" not in text  # not JSON
    assert text.count("deploy") == 2  # its start and its end
    assert "sha256:bbbbbbbbbbbb" in text and "b" * 13 not in text


def test_reporter_lines_and_operation_entries_validate_against_the_events_schema():
    lines: list[str] = []
    report = Reporter(True, write=lines.append)
    report("cl1", "cl1-a", f"pulled r:5000/cl:2.11.0 ({DIGEST})", digest=DIGEST)
    report("", "", "dry run: 1 service(s), 0 would change; nothing was changed", dry_run=True)
    per_service(report, "cl2", lambda: (_ for _ in ()).throw(OperationFailed("cl2: boom")))
    for line in lines:
        jsonschema.validate(json.loads(line), EVENTS)
    for entry in AUDIT:
        jsonschema.validate(entry, EVENTS)
    with pytest.raises(jsonschema.ValidationError):  # the schema can fail: a renamed field
        jsonschema.validate({**json.loads(lines[0]), "msg": "x"} | {"message": None}, EVENTS)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("terminal", "json_", "red"), [(True, False, True), (True, True, False), (False, False, False)]
)
def test_the_error_is_one_red_line_for_a_person_and_plain_for_ci(monkeypatch, terminal, json_, red):
    from invoke import Exit

    from tasks._cli import cli

    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.delenv("CI", raising=False)

    @cli
    def task(c, json_=False):
        raise OperationFailed(f"cl1 cl1-a: pull failed ({DIGEST})")

    with pytest.raises(Exit) as got:
        task(None, json_=json_)
    assert got.value.code == 1
    if red:  # printed here, once, red and short; invoke prints nothing more
        assert got.value.message is None
        assert stderr.getvalue().count("nodeops: cl1 cl1-a") == 1 and "\x1b[1;31m" in stderr.getvalue()
        assert "sha256:3f2a1c9e0b7d)" in stderr.getvalue()
    else:  # the documented line, as it was, for invoke to print
        assert got.value.message == f"nodeops: cl1 cl1-a: pull failed ({DIGEST})" and stderr.getvalue() == ""


# -- nodeops hostkeys ---------------------------------------------------------------------------------------------
FP = "SHA256:" + "Xb3qZ9" * 7 + "a"  # 50 characters, as OpenSSH prints an ed25519 key's
WIDE_HOSTKEY_ROWS = [
    HostKeyRow("cl1-a", "10.0.1.5:22", "ssh-ed25519", FP, "MISMATCH", f"keys.txt line(s) 3 expect {FP[:-1]}b"),
    HostKeyRow("cl1-b", "10.0.1.6:2222", "ecdsa-sha2-nistp256", FP, "unlisted", "not in keys.txt"),
    HostKeyRow("cl2-a", "10.0.2.5:22", "ssh-ed25519", FP, "new", "not pinned"),
    HostKeyRow("cl2-b", "10.0.2.6:22", "ssh-ed25519", FP, "CHANGED", f"pinned: {FP[:-1]}c"),
    HostKeyRow("cl3-a", "10.0.3.5:22", "ssh-ed25519", FP, "match", ""),
]


@pytest.mark.parametrize("width", [80, 60, 200])
def test_hostkeys_fit_the_width_and_always_show_every_status(width):
    text = printed(hostkeys_view(WIDE_HOSTKEY_ROWS, width), width)
    lines = text.splitlines()
    assert lines and max(len(line) for line in lines) <= width, text
    for r in WIDE_HOSTKEY_ROWS:
        assert r.status in words(text) and r.address in text, text
    fingerprints = {FP, f"{FP[:-1]}b", f"{FP[:-1]}c"}
    assert all(fp in "".join(text.split()) for fp in fingerprints)  # whole, though it may fold
    vocabulary = {w.strip(",;:()[]") for r in WIDE_HOSTKEY_ROWS for w in (*dataclasses.astuple(r), *r.detail.split())}
    cut = {w for w in words(text) - vocabulary - set(HOSTKEY_COLUMNS) if not any(w in fp for fp in fingerprints)}
    assert not cut, f"words cut: {sorted(cut)}\n{text}"


def test_hostkeys_is_a_table_when_it_fits():
    rows = [HostKeyRow("a", "10.0.0.1:22", "ssh-ed25519", "SHA256:abc", "new", "not pinned")]
    assert printed(hostkeys_view(rows), 80).split() == [*HOSTKEY_COLUMNS, "a", "10.0.0.1:22", "ssh-ed25519",
                                                        "SHA256:abc", "new", "not", "pinned"]  # fmt: skip


# -- wrapping at words: a long word cut only where wrap_spans says, a diff line's continuation under its content --
@pytest.mark.parametrize(
    ("text", "width", "indent", "lines"),
    [
        ("waiting for the lease", 80, 0, ["waiting for the lease"]),
        ("waiting for the lease", 12, 0, ["waiting for", "the lease"]),
        ("waiting for the lease", 12, 4, ["waiting for", "    the", "    lease"]),
        ("pulled r.example:5000/smartcontract/chainlink:2.10.0@sha256:6bc87626beba", 40, 0,
         ["pulled r.example:5000/smartcontract/", "chainlink:2.10.0@sha256:6bc87626beba"]),
        ("pulled r:5000/chainlink:2.10.0@sha256:6bc87626beba (sha256:6bc87626beba)", 32, 0,
         ["pulled r:5000/chainlink:2.10.0", "@sha256:6bc87626beba", "(sha256:6bc87626beba)"]),
        ("      +WSURL = 'wss://eth.example.net/v3/key' # the provider's", 30, 7,
         ["      +WSURL = 'wss://", "       eth.example.net/v3/key'", "       # the provider's"]),
        ("      -a  b", 8, 7, ["      -a", "       b"]),  # the first line's indentation kept, inner spaces too
        ("x" * 25, 10, 0, ["x" * 10, "x" * 10, "x" * 5]),  # no place to cut: at the line's end, the only such cut
        ("id " + "y" * 12 + "/z", 10, 0, ["id", "y" * 10, "yy/z"]),
        ("", 10, 0, [""]),
        # review14b #8: a hard cut never leaves punctuation first on a line (it was ", config" and ")")
        ("started x (r:5000/c:2.11.0@sha256:963888f0f5ff, config 963888f0f5ff)", 20, 0,
         ["started x (r:5000/", "c:2.11.0", "@sha256:963888f0f5f", "f, config", "963888f0f5ff)"]),
        ("(" + "x" * 11 + ")", 12, 0, ["(" + "x" * 10, "x)"]),
    ],
    ids=["fits", "words", "hanging", "image-ref", "digest", "diff-line", "spaces", "no-place", "mixed", "empty",
         "comma-not-first", "paren-not-first"],
)  # fmt: skip
def test_wrap_spans_breaks_between_words_and_cuts_a_long_one_only_at_its_places(text, width, indent, lines):
    spans = wrap_spans(text, width, indent)
    got = [(" " * indent if i else "") + text[a:b] for i, (a, b) in enumerate(spans)]
    assert got == lines
    assert all(len(line) <= width for line in got)


def message_column(text: str, first_word: str) -> list[str]:
    """The message column of a printed step row: each line from the column where its message began."""
    rows = text.splitlines()
    column = rows[0].index(first_word)
    assert all(row[:column].strip() == "" for row in rows[1:]), text  # nothing under the other columns
    return [row[column:].rstrip() for row in rows]


def reassembles(pieces: list[str], original: str, indents: list[int]) -> None:
    """``pieces`` (lines, each after its continuation indent) read back as ``original``: joined by one space
    where a break fell between words, by nothing where it fell inside one, and then only at BREAK_AFTER or
    BREAK_BEFORE (or, for a word with no such place, where the line was full)."""
    rebuilt = pieces[0]
    for piece, indent in zip(pieces[1:], indents[1:], strict=True):
        assert piece[:indent].strip() == "", pieces
        piece = piece[indent:]
        if original.startswith(rebuilt + " " + piece):
            rebuilt += " " + piece
        else:
            assert original.startswith(rebuilt + piece), (rebuilt, piece)
            assert rebuilt[-1] in BREAK_AFTER or piece[0] in BREAK_BEFORE, f"cut inside a word: {rebuilt!r} / {piece!r}"
            rebuilt += piece
    assert rebuilt == original


PULLED = f"pulled 10.244.0.3:5000/smartcontract/chainlink:2.10.0@{DIGEST} ({DIGEST})"


@pytest.mark.parametrize("width", [40, 80, 200])
def test_the_pull_line_wraps_at_words_and_cuts_the_image_reference_only_before_its_digest_or_after_a_slash(width):
    """Review 14 #14: at 80 columns the line broke inside the digest (`...@sha256:6bc87626b` / `eba`)."""
    event = {"event": "step", "t": 3.2, "service": "cl1", "node": "cl1-a", "message": PULLED}
    text = printed(step_row(event), width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    pieces = message_column(text, "pulled")
    reassembles(pieces, short_digests(PULLED), [0] * len(pieces))
    assert (len(pieces) == 1) == (width == 200)


DIFF_LINE = ("+WSURL = 'wss://rpc.example.net/ws/a-long-path-of-the-provider' # and a comment that goes on "
             "long enough to wrap twice at eighty columns")  # fmt: skip


@pytest.mark.parametrize("width", [40, 80, 200])
def test_a_long_diff_line_wraps_under_its_own_content_not_under_the_message(width):
    """Review 14 #14: a long unified-diff line continued at the message's column, as if it were a new line."""
    message = "\n".join(["file config.toml: changed (+1 -0)", " " * BODY_INDENT + "@@ -1 +1,2 @@",
                         " " * BODY_INDENT + DIFF_LINE])  # fmt: skip
    text = printed(step_row({"event": "step", "t": 1.0, "service": "cl1", "node": "", "message": message}), width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    rows = message_column(text, "file")
    start = next(i for i, row in enumerate(rows) if row.lstrip().startswith("+WSURL"))
    body = rows[start:]
    assert body[0].index("+") == BODY_INDENT
    assert all(len(row) - len(row.lstrip()) == BODY_INDENT + 1 for row in body[1:]), text  # under its content
    reassembles(body, " " * BODY_INDENT + DIFF_LINE, [0] + [BODY_INDENT + 1] * (len(body) - 1))
    assert (len(body) == 1) == (width == 200)


@pytest.mark.parametrize("width", [40, 80, 200])
def test_audit_steps_wrap_at_words_too(width):
    entry = {"time": "2026-11-30T10:00:03Z", "run": "0123456789abcdef", "who": "alice", "env": "prod", "op": "deploy",
             "event": "step", "service": "cl1", "node": "cl1-a", "message": PULLED}  # fmt: skip
    text = printed(audit_view([entry]), width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    rows = text.splitlines()[1:]  # under the date
    column = rows[0].index("cl1 cl1-a:")
    pieces = [row[column:].rstrip() for row in rows]
    reassembles(pieces, "cl1 cl1-a: " + short_digests(PULLED), [0] * len(pieces))
