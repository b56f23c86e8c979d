"""hostkeys and exec as a person and as a script see them, on a real lab (two nodes behind a real bastion, not
deployed: only their sshd is needed): at 80 columns every key's status shows and no line is longer; off a terminal
both print JSON lines; the hint is a command that works when copied; a closed pipe ends quietly (exit 141)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nodeops.hostkeys import fingerprint
from nodeops.inventory import HostKey
from tests.conftest import FAB, ROOT, fab, run_on_a_terminal
from tests.e2e.conftest import inventory_variant, own_lab

pytestmark = pytest.mark.lab

NAME, CIDR = "fcl", "10.248.0.0/16"
STYLE = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")


@pytest.fixture(scope="module")
def fcl(root):
    with own_lab(NAME, CIDR, nodes=2) as fcl:
        yield fcl


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder of a short path: tmp_path under pytest-xdist (``.../popen-gw1/<test name>0``) is longer than a line
    at 80 columns, and a path longer than a line can only be cut inside itself, not at a word."""
    with tempfile.TemporaryDirectory(prefix="fcl-", dir="/tmp") as folder:
        yield Path(folder)


def on_a_terminal(*args: str) -> tuple[int, str]:
    """`fab ARGS` on a pseudo-terminal of 80 columns; what it wrote, colours gone, carriage returns as newlines."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "CI")}
    env["TERM"] = "xterm-256color"
    code, raw = run_on_a_terminal([str(FAB), *args], env, columns=80, timeout=120)
    return code, STYLE.sub("", raw).replace("\r\n", "\n").replace("\r", "\n")


def test_hostkeys_at_80_columns_shows_every_status_and_says_unlisted_apart(fcl, short_tmp):
    nodes = yaml.safe_load(fcl.inventory_file.read_text())["services"]["cl1"]["nodes"]
    a, b = nodes[0], nodes[1]
    wrong = fingerprint(HostKey(*b["host_key"].split()[:2]))  # b's key, listed for a: a MISMATCH; b unlisted
    expected = short_tmp / "console-keys.txt"  # a path longer than a line can only be cut inside itself
    expected.write_text(f"{a['name']} {wrong}\n")
    code, text = on_a_terminal("hostkeys", "--inventory", str(fcl.inventory_file), "--expected", str(expected))
    assert code == 4, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert max(len(line) for line in lines) <= 80, text
    assert "MISMATCH" in text and "unlisted" in text and a["name"] in text and b["name"] in text, text
    said = " ".join(text.split())  # the message wraps at the terminal's width
    assert f"host keys of {a['name']} do not match {expected}" in said, text
    assert f"host keys of {b['name']} are not listed in {expected}" in said, text
    assert f"host keys of {b['name']} do not match" not in said, text


def test_off_a_terminal_hostkeys_and_exec_print_json_lines_and_the_hint_works(fcl, tmp_path):
    known = tmp_path / "known_hosts"

    def unpinned(doc: dict) -> None:
        doc["ssh"]["known_hosts"] = str(known)
        for node in doc["services"]["cl1"]["nodes"]:
            del node["host_key"]

    bare = inventory_variant(fcl.inventory_file, tmp_path / "bare.yaml", unpinned)
    res = fab("hostkeys", "--inventory", str(bare))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]  # every line is JSON: no table
    keys = [e for e in lines if e["event"] == "hostkey"]
    assert keys and all(set(e) == {"event", "node", "address", "type", "fingerprint", "status", "detail"}
                        and e["status"] == "new" for e in keys), res.stdout  # fmt: skip
    (summary,) = [e for e in lines if e["event"] == "summary"]
    hint = next(line.strip() for line in summary["next"] if "hostkeys" in line)
    assert hint == f"fab hostkeys --inventory {bare} --write", summary
    copied = subprocess.run([str(FAB), *hint.split()[1:], "--yes"], cwd=ROOT, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    assert copied.returncode == 0 and known.exists(), copied.stdout + copied.stderr

    res = fab("exec", "--inventory", str(bare), "--command", "hostname")  # no --json: not a terminal is enough
    assert res.returncode == 0, res.stdout + res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert [e["event"] for e in events] == ["host", "host", "summary"] and all(e.get("ok", True) for e in events)

    read, write = os.pipe()
    os.close(read)  # `| head` that has read what it wanted
    try:
        cut = subprocess.run([str(FAB), "exec", "--inventory", str(bare), "--command", "true"], cwd=ROOT,
                             stdout=write, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                             timeout=120)  # fmt: skip
    finally:
        os.close(write)
    assert (cut.returncode, cut.stderr) == (141, ""), cut.stderr
