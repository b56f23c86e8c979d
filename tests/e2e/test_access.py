"""nodeops hostkeys, logs and shell on a real lab (two nodes behind a real bastion, the simulator deployed once
at LOG_LEVEL debug, so that every HTTP request to a node writes a log line naming its path)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from nodeops.edges.ssh import Fleet
from nodeops.hostkeys import fingerprint
from nodeops.inventory import HostKey, load_inventory
from nodeops.job import prepare
from tests.conftest import FAB, ROOT, fab
from tests.e2e.conftest import inventory_variant, own_lab
from tests.e2e.probe import wait_for

pytestmark = pytest.mark.lab

LAB, CIDR = "acc", "10.240.0.0/16"


@pytest.fixture(scope="module")
def acc(root, tmp_path_factory):
    """The lab's inventory at LOG_LEVEL debug, deployed; and the service's resolved secrets (for sentinels)."""
    tmp = tmp_path_factory.mktemp("acc")
    with own_lab(LAB, CIDR, nodes=2) as lab:

        def debug(doc: dict) -> None:
            doc["services"]["cl1"]["variables"]["LOG_LEVEL"] = "debug"

        inventory = inventory_variant(lab.inventory_file, tmp / "acc.yaml", debug)
        deploy = fab("deploy", "--inventory", str(inventory), timeout=600)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        (job,) = prepare(load_inventory(inventory), ["cl1"])
        yield inventory, {name: s.reveal() for name, s in job.secrets.items()}


def pinned_fingerprints(inventory: Path) -> dict[str, str]:
    nodes = yaml.safe_load(inventory.read_text())["services"]["cl1"]["nodes"]
    return {n["name"]: fingerprint(HostKey(*n["host_key"].split()[:2])) for n in nodes}


def test_hostkeys_prints_each_nodes_fingerprint(acc):
    inventory, _ = acc
    result = fab("hostkeys", "--inventory", str(inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {k["node"]: k for k in map(json.loads, result.stdout.splitlines()) if k["event"] == "hostkey"}  # no tty
    assert {name: row["fingerprint"] for name, row in rows.items()} == pinned_fingerprints(inventory)
    assert all(row["status"] == "match" for row in rows.values()), result.stdout


def test_hostkeys_expected_with_one_wrong_key_exits_4_naming_that_node(acc, tmp_path):
    inventory, _ = acc
    good = pinned_fingerprints(inventory)
    expected = tmp_path / "expected.txt"
    expected.write_text(f"# from the console\ncl1-a {good['cl1-a']}\ncl1-b {good['cl1-a']}\n")  # cl1-b: a's key
    result = fab("hostkeys", "--inventory", str(inventory), "--expected", str(expected))
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr == f"nodeops: host keys of cl1-b do not match {expected}; nothing written\n"
    statuses = {k["node"]: k["status"] for k in map(json.loads, result.stdout.splitlines()) if k["event"] == "hostkey"}
    assert statuses == {"cl1-a": "match", "cl1-b": "MISMATCH"}

    expected.write_text(f"cl1-a {good['cl1-a']}\n10.240.0.11 {good['cl1-b']}\n")  # by host: all match
    assert fab("hostkeys", "--inventory", str(inventory), "--expected", str(expected)).returncode == 0


def test_hostkeys_write_asks_then_pins_into_known_hosts(acc, tmp_path):
    inventory, _ = acc
    known = tmp_path / "known_hosts"

    def unpinned(doc: dict) -> None:
        doc["ssh"]["known_hosts"] = str(known)
        for node in doc["services"]["cl1"]["nodes"]:
            del node["host_key"]

    bare = inventory_variant(inventory, tmp_path / "bare.yaml", unpinned)
    refused = fab("hostkeys", "--inventory", str(bare), "--write")  # no terminal, no --yes
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "pass --yes" in refused.stderr and not known.exists()
    assert fab("exec", "--inventory", str(bare), "--command", "true").returncode != 0  # nothing pinned yet

    written = fab("hostkeys", "--inventory", str(bare), "--write", "--yes")
    assert written.returncode == 0, written.stdout + written.stderr
    assert fab("exec", "--inventory", str(bare), "--command", "true").returncode == 0  # now verified by the file

    a_line, b_line = known.read_text().splitlines()
    known.write_text(f"{a_line}\n{b_line.split()[0]} {' '.join(a_line.split()[1:])}\n")  # cl1-b pinned to a's key
    before = known.read_text()
    changed = fab("hostkeys", "--inventory", str(bare), "--write", "--yes")
    assert changed.returncode == 4, changed.stdout + changed.stderr
    assert changed.stderr == "nodeops: host keys differ from the pinned keys of cl1-b: see the table; nothing written\n"
    assert known.read_text() == before


def test_logs_since_shows_lines_with_secrets_masked(acc):
    inventory, secrets = acc
    recent = fab("logs", "--inventory", str(inventory), "--service", "cl1", "--since", "1m")
    assert recent.returncode == 0, recent.stderr
    assert any(line.startswith("cl1-a | ") for line in recent.stdout.splitlines()), recent.stdout[-2000:]

    everything = fab("logs", "--inventory", str(inventory), "--service", "cl1", "--node", "cl1-a")
    assert everything.returncode == 0, everything.stderr
    assert "API exposed for user ***** " in everything.stdout  # the node logs the API email, a secret
    assert secrets["api_email"] not in everything.stdout + everything.stderr


def test_logs_follow_sees_a_new_line_masked_and_ends_on_ctrl_c(acc):
    inventory, secrets = acc
    marker = f"follow-{uuid.uuid4().hex}"
    proc = subprocess.Popen([str(FAB), "logs", "--inventory", str(inventory), "--service", "cl1", "--node", "cl1-a",
                             "--follow", "--tail", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        inv = load_inventory(inventory)
        with Fleet(inv) as fleet:
            wait_for(lambda: lines, "the stream's first line (the load balancer's health checks)", timeout=30)
            fleet.http_get("10.240.0.10", 6688, f"/{marker}")
            fleet.http_get("10.240.0.10", 6688, "/" + quote(secrets["api_password"], safe=""))
        wait_for(lambda: any(marker in line for line in lines), "the line written after the stream started", 30)
        wait_for(lambda: any("GET /*****" in line for line in lines), "the masked request line", 30)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 130  # README: stopped by Ctrl-C or SIGTERM
    finally:
        proc.kill()
        proc.wait()
    reader.join(timeout=5)
    seen = "".join(lines) + proc.stderr.read()
    assert all(line.startswith("cl1-a | ") for line in lines)
    assert secrets["api_password"] not in seen and quote(secrets["api_password"], safe="") not in seen


def processes_naming(word: str) -> dict[int, str]:
    """Every process on this machine whose argv holds ``word``: pid -> argv joined by spaces. The lab's hosts have
    their own network and mount namespaces, not their own PID namespace: a node's processes are listed here too."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:  # ended meanwhile
            continue
        if any(word.encode() in arg for arg in argv):
            found[int(entry.name)] = b" ".join(argv).decode(errors="replace").strip()
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_logs_follow_stopped_by_a_signal_exits_130_and_leaves_nothing_running_on_the_node(acc, sig):
    """A CI runner cancels a job with SIGTERM; an operator presses Ctrl-C: either way exit 130 with one line
    saying so, and the node's `docker logs --follow` ends with the session (an SSH session with no PTY that
    closes signals nothing to its command). A --since no other run uses marks this run's processes; in the future,
    it keeps the stream quiet, as a quiet node's is: a `docker logs` left behind ends only when it next writes."""
    inventory, _ = acc
    since = f"{int(time.time()) + 3600}.{uuid.uuid4().int % 10**9:09d}"  # a Unix time with a unique fraction

    def on_the_node() -> dict[int, str]:
        return {pid: argv for pid, argv in processes_naming(since).items() if argv.startswith("docker logs ")}

    proc = subprocess.Popen([str(FAB), "logs", "--inventory", str(inventory), "--service", "cl1", "--node", "cl1-a",
                             "--follow", "--tail", "1", "--since", since], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        remote = wait_for(on_the_node, "docker logs on the node", 30)
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 130, remote
        assert proc.stderr.read() == f"nodeops: logs stopped by {sig.name}; the log streams on the nodes were ended\n"
        wait_for(lambda: not processes_naming(since), f"the end of every process of the stream: {remote}", 10)
    finally:
        proc.kill()
        proc.wait()
        for pid in processes_naming(since):  # a failed run's leftovers, not left for the next run
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def in_a_terminal(args: list[str], typed: list[bytes], until: bytes, timeout: float = 30) -> tuple[bytes, int]:
    """Run fab ARGS in a real pseudo-terminal; type each of ``typed`` once the previous output settled on a
    prompt, the window resized to 33x101 before the last; return everything it printed (once ``until`` was
    seen and it exited) and its exit code. The terminal must be back in cooked mode (echo, lines) at the end."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execv(str(FAB), [str(FAB), *args])
    out = b""
    deadline = time.monotonic() + timeout

    def read_until(what: bytes, start: int) -> None:
        nonlocal out
        while what not in out[start:] and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    return

    prompt = b"$ " if "--container" in args else b"# "
    typed_at = 0
    try:
        for i, keys in enumerate(typed):
            read_until(prompt, typed_at)  # a prompt after what was typed last
            if i == len(typed) - 1:
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))  # SIGWINCH to fab
            typed_at = len(out)
            os.write(fd, keys)
        read_until(until, typed_at)
        read_until(b"\x00", len(out))  # to EOF (or the deadline)
        _, status = os.waitpid(pid, 0)
        lflag = termios.tcgetattr(fd)[3]
        assert lflag & termios.ICANON and lflag & termios.ECHO, "raw mode left on"
    finally:
        os.close(fd)
    return out, os.waitstatus_to_exitcode(status)


def test_shell_runs_hostname_through_a_pty(acc):
    inventory, _ = acc
    typed = [b"echo H=$(hostname) I=$(hostname -I)\r", b"stty size; exit 7\r"]
    out, code = in_a_terminal(["shell", "--inventory", str(inventory), "--node", "cl1-b"], typed, b"logout")
    assert re.search(rb"H=cl1-b I=10\.240\.0\.11[ \r]", out), out
    assert b"\r33 101\r\n" in out, out  # the resize reached the remote terminal
    assert code == 7


def test_shell_in_the_container(acc):
    inventory, _ = acc
    out, code = in_a_terminal(["shell", "--inventory", str(inventory), "--node", "cl1-a", "--container"],
                              [b"echo U=$(id -u)\r", b"exit 3\r"], b"exit")  # fmt: skip
    assert b"U=14933" in out, out
    assert code == 3
