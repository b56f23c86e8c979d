"""lab.daemons' wait for a lab's last processes before its folder goes, on real processes (no root needed)."""

import shutil
import subprocess
import sys
import time

from lab.daemons import naming, outlast, process_alive


def holding(path, seconds: float) -> subprocess.Popen:
    """A process whose command line names a file under ``path`` (as conmon's exit command names its host's storage),
    ending by itself after ``seconds``."""
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})", str(path / "storage")])


def test_naming_finds_a_process_by_a_file_under_the_folder_and_not_by_a_sibling_folder(tmp_path):
    inside, beside = holding(tmp_path / "lab", 30), holding(tmp_path / "lab2", 30)
    try:
        assert naming(tmp_path / "lab") == [inside.pid]
    finally:
        for proc in (inside, beside):
            proc.kill()
            proc.wait()


def test_outlast_waits_for_a_process_that_ends_by_itself(tmp_path):
    proc = holding(tmp_path, 0.3)
    started = time.monotonic()
    assert outlast(tmp_path, grace=10) == []
    assert time.monotonic() - started >= 0.2 and proc.wait(timeout=5) == 0


def test_outlast_kills_what_outlives_the_grace(tmp_path):
    proc = holding(tmp_path, 30)
    assert outlast(tmp_path, grace=0.2) == [proc.pid]
    assert proc.wait(timeout=5) == -9 and not process_alive(proc.pid)


def test_outlast_kills_a_containers_conmon_at_once_instead_of_waiting_out_its_exit_delay(tmp_path):
    conmon = tmp_path / "conmon"  # a process whose name is conmon's, naming the folder (here by its own path)
    shutil.copy(shutil.which("sleep"), conmon)
    proc = subprocess.Popen([str(conmon), "300"])
    assert outlast(tmp_path, grace=1) == []  # killed before the wait: none left to kill after it
    assert proc.wait(timeout=5) == -9
