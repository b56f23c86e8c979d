"""The kernel limits the labs need: computed from every lab's host count, raised on lab.up, put back on lab.down.

The edge runs on a directory standing in for /proc/sys (real files, the same reads and writes); the real one is
written by the lab test (tests/e2e/test_lab_lifecycle.py).
"""

import fcntl
import json
import subprocess
from pathlib import Path

import pytest

from lab import kernel
from lab.topology import kernel_limits, plan_lab
from nodeops.errors import InvalidInput

T2, T3, PID = "net.ipv4.neigh.default.gc_thresh2", "net.ipv4.neigh.default.gc_thresh3", "kernel.pid_max"


@pytest.mark.parametrize(
    ("nodes", "hard", "tasks"),
    [
        ([2], 10 * 7 + 256, 32 * 7 + 8192),  # the default lab: carried by the kernel's defaults (1024, 32768)
        ([64], 10 * 69 + 256, 32 * 69 + 8192),  # the session's lab alone: still under 1024
        ([128], 10 * 133 + 256, 32 * 133 + 8192),  # past the neighbour table's defaults
        ([512], 10 * 517 + 256, 32 * 517 + 8192),  # still under pid_max's
        ([1024], 10 * 1029 + 256, 32 * 1029 + 8192),  # past pid_max's
        ([64, 8, 4, 4], 10 * (69 + 13 + 9 + 9) + 256, 32 * 100 + 8192),  # labs add up: the limits are the machine's
        ([], 256, 8192),
    ],
)
def test_kernel_limits_hold_every_labs_worst_case_plus_the_machines_own(nodes, hard, tasks):
    labs = [(len(plan_lab("x", "10.213.0.0/16", n).hosts), 10) for n in nodes]
    assert kernel_limits(labs) == {T2: hard // 2, T3: hard, PID: tasks}


def test_kernel_limits_scale_with_each_labs_entries_per_host():
    assert kernel_limits([(10, 100), (3, 10)]) == {T2: (1030 + 256) // 2, T3: 1286, PID: 32 * 13 + 8192}


@pytest.fixture
def machine(tmp_path: Path):
    """(state root, sysctl root) with the kernel's defaults."""
    state, sysctl = tmp_path / "state", tmp_path / "sys"
    state.mkdir()
    for key, value in ((T2, 512), (T3, 1024), (PID, 32768)):
        path = sysctl / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return state, sysctl


def value(sysctl: Path, key: str) -> int:
    return int((sysctl / key.replace(".", "/")).read_text())


def recorder(state: Path, name: str, hosts: int):
    """What lab.up gives raise_for to record the lab's need: its state.json, as Lab._record writes it."""

    def record() -> None:
        (state / name).mkdir(exist_ok=True)
        state_json = {"hosts": hosts, "neighbours_per_host": kernel.per_host(), "netns": []}
        (state / name / "state.json").write_text(json.dumps(state_json))

    return record


def raise_for(state: Path, name: str, hosts: int, sysctl: Path) -> list[str]:
    return kernel.raise_for(state, name, hosts, recorder(state, name, hosts), sysctl)


def test_a_small_lab_changes_nothing(machine):
    state, sysctl = machine
    assert raise_for(state, "lab", 7, sysctl) == []
    assert (value(sysctl, T2), value(sysctl, T3)) == (512, 1024)
    assert kernel.restore(state, "lab", sysctl) == []


def test_a_lab_keeps_the_need_it_was_brought_up_with_when_another_goes_down(machine, monkeypatch):
    """A lab brought up with a larger figure per host (PER_HOST_ENV) records it; another lab's lab.down, run without
    the variable, computes that lab's need with its recorded figure and does not lower the table under it (seen in
    CI: the other process's lab.down undid test_lab_lifecycle's raise)."""
    state, sysctl = machine
    monkeypatch.setenv(kernel.PER_HOST_ENV, "1000")
    assert raise_for(state, "wide", 2, sysctl) == [f"{T2}: 512 -> 1128", f"{T3}: 1024 -> 2256"]
    monkeypatch.delenv(kernel.PER_HOST_ENV)
    assert raise_for(state, "small", 7, sysctl) == [f"{T2}: 1128 -> 1163", f"{T3}: 2256 -> 2326"]
    assert kernel.restore(state, "small", sysctl) == [f"{T2}: 1163 -> 1128", f"{T3}: 2326 -> 2256"]
    assert (value(sysctl, T2), value(sysctl, T3)) == (1128, 2256)


def test_raised_for_a_big_lab_and_put_back_when_the_last_lab_needing_it_goes(machine):
    state, sysctl = machine
    assert raise_for(state, "big", 517, sysctl) == [f"{T2}: 512 -> 2713", f"{T3}: 1024 -> 5426"]
    assert raise_for(state, "other", 133, sysctl) == [f"{T2}: 2713 -> 3378", f"{T3}: 5426 -> 6756"]
    (state / "big" / "state.json").unlink()  # big goes down: other still needs more than the defaults
    assert kernel.restore(state, "big", sysctl) == [f"{T2}: 3378 -> 793", f"{T3}: 6756 -> 1586"]
    (state / "other" / "state.json").unlink()
    assert kernel.restore(state, "other", sysctl) == [f"{T2}: 793 -> 512", f"{T3}: 1586 -> 1024"]
    assert (value(sysctl, T2), value(sysctl, T3)) == (512, 1024)
    assert json.loads((state / "kernel.json").read_text()) == {}


def test_a_lab_of_the_old_code_counts_by_its_namespaces(machine):
    state, sysctl = machine
    (state / "old").mkdir()
    (state / "old" / "state.json").write_text(json.dumps({"netns": ["x"] * 200}))
    assert raise_for(state, "new", 7, sysctl) == [f"{T2}: 512 -> 1163", f"{T3}: 1024 -> 2326"]


def test_a_value_someone_else_changed_since_is_left_alone(machine):
    state, sysctl = machine
    raise_for(state, "big", 517, sysctl)
    (sysctl / T3.replace(".", "/")).write_text("9000\n")
    assert kernel.restore(state, "big", sysctl) == [f"{T2}: 2713 -> 512"]
    assert value(sysctl, T3) == 9000
    assert json.loads((state / "kernel.json").read_text()) == {}


def test_a_limit_already_high_enough_is_neither_raised_nor_restored(machine):
    state, sysctl = machine
    (sysctl / T3.replace(".", "/")).write_text("100000\n")
    assert raise_for(state, "big", 517, sysctl) == [f"{T2}: 512 -> 2713"]
    assert kernel.restore(state, "big", sysctl) == [f"{T2}: 2713 -> 512"]
    assert value(sysctl, T3) == 100000


def test_refused_with_the_reason_and_nothing_half_applied_when_a_limit_cannot_be_written(machine):
    state, sysctl = machine
    path = sysctl / T3.replace(".", "/")
    subprocess.run(["chattr", "+i", str(path)], check=True)  # even root cannot write it: a read-only /proc/sys
    try:
        with pytest.raises(InvalidInput) as err:
            raise_for(state, "big", 517, sysctl)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert err.value.exit_code == 2
    # every short key in the one line and its one fix, not only the key that failed (review of issue 18)
    assert f"need {T2} >= 2713 (now 512), {T3} >= 5426 (now 1024), and {T3} cannot be written" in str(err.value)
    assert f"run `sysctl -w {T2}=2713 {T3}=5426` as root" in str(err.value)
    assert (value(sysctl, T2), value(sysctl, T3)) == (512, 1024)  # nothing half applied
    assert not (state / "kernel.json").exists()
    assert not (state / "big").exists()  # nor recorded: the labs up need no more than before


def test_the_need_is_recorded_under_the_machine_lock_before_another_lab_down_can_lower_it(machine):
    """CI: test_lab_lifecycle's lab.up raised the table, released the lock, and only later saved its hosts; another
    lab's lab.down in between computed the labs' need without it and put the table back under it."""
    state, sysctl = machine
    seen = []

    def record() -> None:
        with open(state / "kernel.lock") as lock, pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another lab's lab.down waits here
        seen.append(value(sysctl, T3))
        recorder(state, "big", 517)()

    assert kernel.raise_for(state, "big", 517, record, sysctl) == [f"{T2}: 512 -> 2713", f"{T3}: 1024 -> 5426"]
    assert seen == [5426]
    assert kernel.restore(state, "small", sysctl) == []  # a lab going down: big is recorded, nothing is lowered
    assert value(sysctl, T3) == 5426


def test_a_lab_past_pid_max_raises_it_and_its_lab_down_puts_it_back(machine):
    state, sysctl = machine
    assert raise_for(state, "huge", 1029, sysctl) == [
        f"{T2}: 512 -> 5273",
        f"{T3}: 1024 -> 10546",
        f"{PID}: 32768 -> 41120",
    ]
    (state / "huge" / "state.json").unlink()
    assert kernel.restore(state, "huge", sysctl) == [
        f"{PID}: 41120 -> 32768",
        f"{T2}: 5273 -> 512",
        f"{T3}: 10546 -> 1024",
    ]
    assert value(sysctl, PID) == 32768
