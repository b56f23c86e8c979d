"""What the benchmarks share: running `fab` as a user would, and a lab of their own for the run."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAB = str(Path(sys.executable).with_name("fab"))


def fab(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`fab ARGS` from the repo root; with ``check``, a failure ends the benchmark with fab's output."""
    res = subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True)
    if check and res.returncode:
        sys.exit(f"fab {' '.join(args)} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return res


@contextlib.contextmanager
def lab(name: str, nodes: int, cidr: str) -> Iterator[None]:
    """A lab of the benchmark's own, taken down whatever happens."""
    fab("lab.up", "--name", name, "--nodes", str(nodes), "--cidr", cidr)
    try:
        yield
    finally:
        fab("lab.down", "--name", name, check=False)


def wipe_command(env: str, nodes: str) -> tuple[str, ...]:
    """`fab exec` arguments that remove every nodeops container on ``nodes``, stopped gracefully first (a
    container killed outright keeps the lease until it expires, which the next deploy would then wait out)."""
    return ("exec", "--env", env, "--nodes", nodes, "--command",
            "docker stop --time 10 $(docker ps -q --filter label=io.nodeops.service) >/dev/null 2>&1; "
            "docker rm -f $(docker ps -aq --filter label=io.nodeops.service) >/dev/null 2>&1; true")  # fmt: skip


def measured(argv: list[str], timeout: float) -> tuple[float, int, str, int]:
    """Run ``argv`` as its own process: (seconds, exit code, stdout, peak RSS in KiB of it or any child)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = started + timeout
        while (done := os.wait4(proc.pid, os.WNOHANG))[0] == 0:
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(done[1])
        out.seek(0)
        return seconds, proc.returncode, out.read().decode(errors="replace"), done[2].ru_maxrss
