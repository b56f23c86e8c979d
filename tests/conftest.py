"""Shared helpers: run `fab` as a user would, from the repo root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAB = Path(sys.executable).with_name("fab")


def fab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`fab ARGS...` in the repo root; never raises on a non-zero exit."""
    return subprocess.run(
        [str(FAB), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
