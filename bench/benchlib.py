"""What the benchmarks share: running `fab` as a user would, and a lab of their own for the run."""

from __future__ import annotations

import contextlib
import subprocess
import sys
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
