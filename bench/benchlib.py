"""What the benchmarks share: running `fab` as a user would, and a lab of their own for the run."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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


def measured(argv: list[str], timeout: float) -> tuple[float, int, str, int, float]:
    """Run ``argv`` as its own process: (seconds, exit code, stdout, peak RSS in KiB of it or any child, CPU
    seconds: user + sys of it and every child it waited for, wait4's rusage)."""
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
        usage = done[2]
        return (
            seconds,
            proc.returncode,
            out.read().decode(errors="replace"),
            usage.ru_maxrss,
            usage.ru_utime + usage.ru_stime,
        )


def children_cpu() -> float:
    """User + sys seconds of every child this process has waited for so far: the difference around a tool's run
    is that run's CPU (subprocess.run waits for its child; the child's own waited-for children are in it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Row:
    """One tool at one size: per run its wall seconds, CPU seconds and failed hosts, and its time over nodeops'
    in the same run; ``hosts`` and ``startup`` (the tool's CPU seconds on one host: start-up and the bastion's
    login) turn CPU into operator CPU per host."""

    bench: str
    size: str
    tool: str
    hosts: int = 0
    startup: float = 0.0
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    def cpu_per_host_ms(self) -> float | None:
        """Median over runs of (CPU - start-up) / (hosts - 1), in ms: what one more host costs the operator's
        machine; None without CPU figures."""
        if not self.cpu or self.hosts < 2:
            return None
        return 1000 * statistics.median((c - self.startup) / (self.hosts - 1) for c in self.cpu)


def table(rows: list[Row], notes: list[str]) -> str:
    """The Markdown table docs/scaling.md quotes, then the notes as a list."""
    lines = [
        "| benchmark | size | tool | wall median | min | max | operator CPU per host | failed hosts (per run) "
        "| vs nodeops (per run) | vs nodeops (median) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_host = r.cpu_per_host_ms()
        cpu = "-" if per_host is None else f"{per_host:.1f} ms"
        ratios = "/".join(f"{x:.2f}" for x in r.ratios) or "-"
        median = f"{statistics.median(r.ratios):.2f}x" if r.ratios else "-"
        lines.append(f"| {r.bench} | {r.size} | {r.tool} | {statistics.median(r.seconds):.2f} s | "
                     f"{min(r.seconds):.2f} s | {max(r.seconds):.2f} s | {cpu} | {'/'.join(map(str, r.failed))} | "
                     f"{ratios} | {median} |")  # fmt: skip
    return "\n".join(lines + [""] + [f"- {note}" for note in notes])
