"""`fab lab.up` / `fab lab.down` as a new user runs them, on a lab of its own."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from lab import kernel
from lab.daemons import process_alive
from lab.host import Lab
from tests.conftest import FAB, ROOT, fab

pytestmark = pytest.mark.lab

NAME, CIDR = "life", "10.215.0.0/16"
STATE = Lab(ROOT, NAME).dir
THRESH3 = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3")  # the neighbour table's hard bound, machine-wide


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_up_exec_restart_a_dead_host_down(root):
    try:
        up = fab("lab.up", "--name", NAME, "--nodes", "8", "--cidr", CIDR)
        assert up.returncode == 0, up.stderr
        # exec off a terminal prints JSON lines (tests/e2e/test_cli_output.py reads its table at a pty):
        # 8 nodes, each printing its own private address
        first = fab("exec", "--env", NAME, "--command", "hostname -I")
        assert first.returncode == 0, first.stderr
        lines = [json.loads(line) for line in first.stdout.splitlines()]
        hosts = [e for e in lines if e["event"] == "host"]
        assert len(hosts) == 8 and all(h["ok"] and h["stdout"].split() == [h["host"]] for h in hosts), hosts
        assert (lines[-1]["event"], lines[-1]["ok"], lines[-1]["hosts"]) == ("summary", 8, 8)

        # A dead host is reported by name, retried, and does not hide the others.
        state = json.loads((STATE / "state.json").read_text())
        os.kill(state["daemons"]["cl2-b/sshd"]["pid"], signal.SIGTERM)
        res = fab("exec", "--env", NAME, "--json", "--command", "echo hi")
        assert res.returncode == 1
        hosts = {e["node"]: e for e in map(json.loads, res.stdout.splitlines()) if e["event"] == "host"}
        assert [n for n, h in hosts.items() if not h["ok"]] == ["cl2-b"]
        assert "cl2-b" in hosts["cl2-b"]["error"] and "cannot connect after 4 attempt(s)" in hosts["cl2-b"]["error"]
        assert all(h["stdout"] == "hi\n" for n, h in hosts.items() if n != "cl2-b")

        # lab.up again is idempotent: it restarts only what died and keeps every host key.
        keys_before = sorted(p.read_text() for p in STATE.glob("hosts/*/*.pub"))
        again = fab("lab.up", "--name", NAME, "--nodes", "8", "--cidr", CIDR)
        assert again.returncode == 0, again.stderr
        keys_after = sorted(p.read_text() for p in STATE.glob("hosts/*/*.pub"))
        assert keys_before == keys_after
        assert fab("exec", "--env", NAME, "--command", "true").returncode == 0

        # Shrinking removes exactly the hosts no longer wanted.
        assert fab("lab.up", "--name", NAME, "--nodes", "4", "--cidr", CIDR).returncode == 0
        assert f"nodeops-{NAME}-cl4-a" not in netns_list() and f"nodeops-{NAME}-cl2-b" in netns_list()
        assert fab("lab.up", "--name", NAME, "--nodes", "4", "--cidr", "10.216.0.0/16").returncode == 2
    finally:
        state_file = STATE / "state.json"
        daemons = json.loads(state_file.read_text())["daemons"].values() if state_file.exists() else []
        pids = [d["pid"] for d in daemons]
        down = fab("lab.down", "--name", NAME)
    assert down.returncode == 0, down.stderr
    assert f"nodeops-{NAME}-" not in netns_list()
    assert "nol-" + NAME not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
    assert CIDR not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert not any(process_alive(pid) for pid in pids)
    assert not (ROOT / "inventory" / f"{NAME}.yaml").exists()
    again = fab("lab.down", "--name", NAME)  # down twice (a cleanup after a cleanup) is no error
    assert again.returncode == 0 and "removed 0 namespaces" in again.stdout, again.stderr


def test_a_second_run_on_the_same_lab_is_refused_with_exit_3(root):
    """Interleaved up/down runs on one lab would lose track of what exists: the second is refused."""
    lock_file = STATE.parent / "lockd.lock"
    STATE.parent.mkdir(mode=0o700, exist_ok=True)
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("pid 4242, lab.up")
        lock.flush()
        for args in (("lab.up", "--nodes", "2", "--cidr", CIDR), ("lab.down",)):
            res = fab(*args, "--name", "lockd")
            assert res.returncode == 3, res.stderr
            assert "lab 'lockd' is being changed by another run (pid 4242, lab.up)" in res.stderr
    assert "nodeops-lockd-" not in netns_list()
    lock_file.unlink()


def thresh3_change(out: str) -> tuple[int, int]:
    """The ``gc_thresh3: old -> new`` lab.up or lab.down printed."""
    found = re.search(r"gc_thresh3: (\d+) -> (\d+)", out)
    assert found, out
    return int(found[1]), int(found[2])


def test_up_raises_the_neighbour_table_past_what_it_holds_and_down_puts_it_back(root, monkeypatch):
    """512 nodes need more than the kernel's default table; here 2 do, by making each host's worst case as large
    as the whole table (the real figure is 10 entries a host: tests/unit/test_lab_kernel.py). Other test processes
    bring their labs up and down meanwhile and move the table too (CI saw it between this test's reads): so the
    figures compared are what lab.up and lab.down said they changed, and this lab's need, which dwarfs theirs; the
    exact restore when the last lab goes down is test_lab_kernel.py's."""
    before = int(THRESH3.read_text())
    raised = None
    try:
        with monkeypatch.context() as env:
            env.setenv(kernel.PER_HOST_ENV, str(before))
            up = fab("lab.up", "--name", NAME, "--nodes", "2", "--cidr", CIDR)
        assert up.returncode == 0, up.stderr
        old, new = thresh3_change(up.stdout)
        raised = int(THRESH3.read_text())
        assert new > old and raised > before, (up.stdout, before, raised)  # 2 hosts x `before` entries each at least
        assert fab("exec", "--env", NAME, "--command", "true").returncode == 0
    finally:
        down = fab("lab.down", "--name", NAME)  # without the variable: the other labs need what they did
    assert down.returncode == 0, down.stderr
    old, new = thresh3_change(down.stdout)
    assert new < old and int(THRESH3.read_text()) < raised, (down.stdout, raised)


def routes() -> list[str]:
    """The machine's routes in the lab's range (other test processes' labs come and go meanwhile)."""
    table = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    return [line for line in table.splitlines() if "10.215." in line]


def test_a_range_another_lab_holds_is_refused_before_anything_is_made_and_its_routes_stay(root):
    """Review of issue 18: a second lab on a range the first held failed half way (its unreachable route existed),
    having made namespaces and a second uplink route, and its lab.down then deleted the first lab's route."""
    other = "lifeo"
    try:
        assert fab("lab.up", "--name", NAME, "--nodes", "2", "--cidr", CIDR).returncode == 0
        held = routes()
        assert any(line.startswith(f"unreachable {CIDR}") for line in held), held
        for cidr in (CIDR, "10.215.4.0/22"):  # the same range, and one inside it
            res = fab("lab.up", "--name", other, "--nodes", "2", "--cidr", cidr)
            assert res.returncode == 2, res.stdout + res.stderr
            assert res.stderr.strip() == (f"nodeops: --cidr {cidr}: lab {NAME!r} is up on {CIDR}; give a --cidr "
                                          "that overlaps no lab or route here"), res.stderr  # fmt: skip
            assert f"nodeops-{other}-" not in netns_list() and not Lab(ROOT, other).dir.exists()
        down = fab("lab.down", "--name", other)
        assert down.returncode == 0 and "removed 0 namespaces" in down.stdout, down.stderr
        assert routes() == held  # the first lab's routes, its unreachable one included
        assert fab("exec", "--env", NAME, "--command", "true").returncode == 0
    finally:
        fab("lab.down", "--name", other)
        assert fab("lab.down", "--name", NAME).returncode == 0


def test_a_limit_that_cannot_be_written_refuses_lab_up_naming_every_short_one_and_leaves_nothing(root):
    """Review of issue 18: with /proc/sys read-only (a container's), the refusal named one of the two short keys, so
    its `sysctl -w` failed on the next run, and the lab's empty state directory stayed. Here /proc/sys is read-only
    in a mount namespace of the run's own, and each host's worst case is made larger than both thresholds."""
    need = int(THRESH3.read_text()) * 4
    argv = ["unshare", "--mount", "sh", "-c", 'mount -o bind,ro /proc/sys /proc/sys && exec "$0" "$@"', str(FAB),
            "lab.up", "--name", NAME, "--nodes", "2", "--cidr", CIDR]  # fmt: skip
    env = {**os.environ, kernel.PER_HOST_ENV: str(need)}
    res = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode == 2, res.stdout + res.stderr
    (line,) = res.stderr.splitlines()
    assert "gc_thresh2 >= " in line and "gc_thresh3 >= " in line and "(Read-only file system)" in line, line
    assert re.search(r"run `sysctl -w net\.ipv4\.neigh\.default\.gc_thresh2=\d+ net\.ipv4\.neigh\.default"
                     r"\.gc_thresh3=\d+` as root", line), line  # fmt: skip
    assert not STATE.exists() and f"nodeops-{NAME}-" not in netns_list()
