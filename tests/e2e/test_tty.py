"""What a person sees at a terminal of 80 columns, on a lab of its own: deploy (a header, live rows, step lines),
status and audit, captured under a real pseudo-terminal (pty + TIOCSWINSZ) with ANSI stripped: no line longer
than 80, no word cut (every word is one the command meant to print: from the same run's JSON, as the audit log
stored it), digests shortened, a failure printed once and red, Ctrl-C's note on screen. And without a terminal,
JSON lines that validate against docs/events.schema.json and docs/status.schema.json."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import jsonschema
import pytest

from lab.host import Lab
from nodeops.console import BELOW, BREAK_AFTER, BREAK_BEFORE, DECLINED, MARKS, PREPARING, short_digests
from tests.conftest import FAB, ROOT, fab, run_on_a_terminal, screen_pieces
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import events, status_entries

pytestmark = pytest.mark.lab

NAME, CIDR = "tty", "10.244.0.0/16"
EVENTS = json.loads((ROOT / "docs" / "events.schema.json").read_text())
COLUMNS = 80
# Words the views add around the commands' own words (headers, labels, marks, the spinner's frames).
LABELS = set("""deploy in DRY RUN nothing will be changed failed stopped node role health container version up config
lease lock failing by from run exit after dry ok ✓ ✗ ■ … nodeops -""".split()) | set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")  # fmt: skip
# Figures that differ between the run a person saw and the JSON read after it (times, durations, uptimes).
FIGURES = re.compile(r"-?\d+(\.\d+)?s|\d+[dhm]\d+[hms]|\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d|\d+(\.\d+)?")


@pytest.fixture(scope="module")
def tty(root):
    with own_lab(NAME, CIDR) as tty:
        yield tty


def on_a_terminal(*args: str, interrupt_when: str | None = None, answer: bytes | None = None,
                  timeout: float = 600) -> tuple[int, str]:  # fmt: skip
    """`fab ARGS` on a pseudo-terminal of 80 columns, as a person runs it; the raw bytes it wrote (ANSI
    included). ``interrupt_when``: SIGINT once that text was written (a person's Ctrl-C); ``answer``: typed
    once the question (``[y/N]``) is asked."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "CI")}
    env["TERM"] = "xterm-256color"
    sent = []

    def react(seen: bytes, master: int, proc: subprocess.Popen) -> None:
        if interrupt_when and not sent and interrupt_when.encode() in seen:
            os.kill(proc.pid, signal.SIGINT)
            sent.append(True)
        if answer is not None and not sent and b"[y/N]" in seen:
            os.write(master, answer)
            sent.append(True)

    return run_on_a_terminal([str(FAB), *args], env, react, columns=COLUMNS, timeout=timeout)


def words(text: str) -> set[str]:
    return {w.strip(",;:()[]…") for w in text.split()} - {""}


LABELS |= words(f"{PREPARING} {BELOW} {DECLINED}") | set(MARKS.values())


def strings(value) -> list[str]:
    """Every key and value of a JSON document, as text (a diff line's quotes kept, as the screen shows them)."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (str(k), *strings(v))]
    if isinstance(value, list):
        return [t for v in value for t in strings(v)]
    return [str(value)]


def vocabulary(entries: list[dict]) -> set[str]:
    """Every word of the JSON entries (keys and values as printed: a step's message and its diff lines),
    digests shortened too."""
    text = " ".join(strings(entries))
    return words(text) | words(short_digests(text))


def a_documented_piece(w: str, meant: set[str]) -> bool:
    """``w`` is a piece of a meant word longer than its line, cut only where nodeops.console.wrap_spans may cut
    one: after a BREAK_AFTER character or before a BREAK_BEFORE one (an image reference before its digest)."""

    def cut_at(m: str, i: int) -> bool:  # a cut between m[i-1] and m[i]
        return i in (0, len(m)) or m[i - 1] in BREAK_AFTER or m[i] in BREAK_BEFORE

    return any(cut_at(m, i) and cut_at(m, i + len(w)) for m in meant if w in m for i in
               [j for j in range(len(m) - len(w) + 1) if m.startswith(w, j)])  # fmt: skip


def assert_fits(raw: str, meant: set[str]) -> None:
    pieces = screen_pieces(raw)
    long = [p for p in pieces if len(p) > COLUMNS]
    assert not long, long
    cut = {w for w in words("\n".join(pieces)) - meant - LABELS
           if not FIGURES.fullmatch(w) and not a_documented_piece(w, meant)}  # fmt: skip
    assert not cut, f"words the command did not mean to print (cut?): {sorted(cut)}\n{raw}"
    assert not re.search(r"sha256:[0-9a-f]{13}", raw), "a digest longer than 12 hex"


def audit_of(run: str | None = None) -> list[dict]:
    res = fab("audit", "--env", NAME, "--json", "--steps", "--lines", "1000")
    assert res.returncode == 0, res.stderr
    entries = [json.loads(line) for line in res.stdout.splitlines()]
    for entry in entries:
        jsonschema.validate(entry, EVENTS)
    return [e for e in entries if run is None or e["run"] == run]


def last_run(op: str) -> str:
    return [e for e in audit_of() if e["event"] == "start" and e["op"] == op][-1]["run"]


def variant(lab: Lab, suffix: str, edit) -> Path:
    return inventory_variant(lab.inventory_file, lab.inventory_file.with_name(f"{NAME}-{suffix}.yaml"), edit)


def test_deploy_status_and_audit_fit_80_columns_and_cut_no_word(tty):
    code, raw = on_a_terminal("deploy", "--env", NAME)
    assert code == 0, raw
    run = last_run("deploy")
    entries = audit_of(run)
    steps = [e for e in entries if e["event"] == "step"]
    assert len(steps) > 10 and any(e["message"].startswith("pulled") for e in steps)
    assert_fits(raw, vocabulary(entries) | words("deployed 2 service(s): 2 changed, 0 unchanged"))
    text = "\n".join(screen_pieces(raw))
    assert text.lstrip().startswith(f"deploy in {NAME}: cl1, cl2"), text[:200]  # the header
    assert "✓ cl1" in text and "✓ cl2" in text and "deployed 2 service(s)" in text
    assert "\x1b[32m" in raw  # green: steps done, services deployed
    assert "⠋" in raw or "⠙" in raw  # the spinner turned while the run waited

    code, raw = on_a_terminal("status", "--env", NAME)
    assert code == 0, raw
    seen = status_entries(fab("status", "--env", NAME, "--json"))
    assert_fits(raw, vocabulary(list(seen.values())))
    text = "\n".join(screen_pieces(raw))
    assert "healthy" in text and all(n["node"] in text for s in seen.values() for n in s["nodes"])
    lease_lines = [p for p in screen_pieces(raw) if "lease" in p or "database time" in p]
    assert 1 <= len(lease_lines) <= 4, lease_lines

    code, raw = on_a_terminal("audit", "--env", NAME, "--steps", "--lines", "200")
    assert code == 0, raw
    assert not any(p.lstrip().startswith("{") for p in screen_pieces(raw)), raw  # not JSON on a terminal
    assert_fits(raw, vocabulary(audit_of()))


def test_a_dry_run_is_marked_on_screen_and_leaves_the_audit_log_as_it_was(tty):
    """A dry run changes nothing, the bastion's audit log included (nodeops.operation): a person reads that it
    was one on screen, and the audit log never says "deploy ... ok" for it."""
    before = audit_of()
    code, raw = on_a_terminal("deploy", "--env", NAME, "--dry-run")
    assert code == 0, raw
    assert "DRY RUN: nothing will be changed" in "\n".join(screen_pieces(raw))
    assert audit_of() == before


def test_non_terminal_output_is_json_lines_valid_against_the_schemas(tty):
    for extra in ((), ("--dry-run",), ("--json",)):
        res = fab("deploy", "--env", NAME, *extra)
        assert res.returncode == 0, res.stdout + res.stderr
        lines = res.stdout.splitlines()
        assert lines and len(events(res)) == len(lines)  # every line is JSON
        for line in lines:
            jsonschema.validate(json.loads(line), EVENTS)
        assert [e["event"] for e in map(json.loads, lines)][-2:] == ["end", "step"]  # the end, then the summary
    status_entries(fab("status", "--env", NAME))  # not a terminal: JSON lines, each valid (status.schema.json)
    audit_of()  # every entry of the log, start, step and end


def test_a_failure_is_printed_once_in_red(tty):
    """Issue 14: a failure printed twice (its step line, then `nodeops: ...`)."""
    path = variant(tty, "noimage", lambda d: d["services"]["cl1"].update(
        image=d["services"]["cl1"]["image"].rsplit(":", 1)[0] + ":9.9.9"))  # fmt: skip
    try:
        code, raw = on_a_terminal("deploy", "--inventory", str(path), "--service", "cl1")
    finally:
        path.unlink()
    assert code == 2, raw  # the registry says the tag does not exist: the inventory's mistake (services.cl1.image)
    text = "\n".join(screen_pieces(raw))
    assert text.count("9.9.9") >= 1 and "✗ cl1" in text
    error = [e for e in audit_of(last_run("deploy")) if e["event"] == "end"][0]["error"]
    first = error.split()[:4]  # the words the reason starts with, wherever it wraps
    assert len(re.findall(r"\s+".join(map(re.escape, first)), text)) == 1, text
    assert "\x1b[1;31mnodeops:" in raw  # red
    assert_fits(raw, vocabulary(audit_of()) | {"nodeops"})


def test_ctrl_c_note_reaches_the_screen_and_the_view_stops_cleanly(tty):
    path = variant(tty, "debug", lambda d: d["services"]["cl1"]["variables"].update(LOG_LEVEL="debug"))
    try:
        code, raw = on_a_terminal("deploy", "--inventory", str(path), "--service", "cl1", interrupt_when="plan:")
    finally:
        path.unlink()
    text = "\n".join(screen_pieces(raw))
    assert code in (0, 130), raw  # the plan may have been done when the signal came: then nothing stops
    assert "SIGINT: stopping at the next safe point" in text
    assert raw.rstrip().endswith(("\x1b[?25h", "\x1b[0m")) or raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")
    if code == 130:
        assert "■ cl1" in text and "\x1b[1;31mnodeops:" in raw
    assert fab("deploy", "--env", NAME).returncode == 0  # back to the inventory's state


def test_promote_asks_naming_the_active_its_version_and_the_standby_and_a_no_touches_nothing(tty):
    """Review 14 #9: promote-standby asked before it looked at the pair, without saying which node is active."""
    assert fab("deploy", "--env", NAME).returncode == 0  # the pair as the inventory says, whatever ran before
    before = status_entries(fab("status", "--env", NAME, "--json"))["cl1"]
    nodes = {n["role"]: n for n in before["nodes"]}
    active, standby = nodes["active"], nodes["standby"]
    code, raw = on_a_terminal("promote-standby", "--env", NAME, "--service", "cl1", answer=b"n\n", timeout=120)
    assert code == 2, raw
    text = " ".join(" ".join(screen_pieces(raw)).split())
    line = (f"cl1: hand over from {active['node']} (active, {active['version']}) to {standby['node']} (standby); "
            "the old active becomes the standby")  # fmt: skip
    assert f"promote-standby in {NAME} will: {line} Proceed? [y/N]" in text, text
    assert "not confirmed; nothing was done" in text and text.count("[y/N]") == 1
    assert "– cl1" in text and DECLINED in text and "failed" not in text, text  # rv6 finding 4: a no is no failure
    [end] = [e for e in audit_of() if e["event"] == "end"][-1:]
    assert (end["op"], end["result"], end["exit_code"]) == ("promote-standby", "declined", 2), end
    answered = "n"  # the answer, echoed by the terminal
    assert_fits(raw, words(f"{line} promote-standby in {NAME} will: Proceed? [y/N] {answered} nodeops: not "
                           "confirmed; nothing was done cl1"))  # fmt: skip
    after = status_entries(fab("status", "--env", NAME, "--json"))["cl1"]
    assert [(n["node"], n["role"]) for n in after["nodes"]] == [(n["node"], n["role"]) for n in before["nodes"]]
    restarted = [n["node"] for n, m in zip(after["nodes"], before["nodes"], strict=True)
                 if (n["uptime_seconds"] or 0) < (m["uptime_seconds"] or 0)]  # fmt: skip
    assert not restarted, after
