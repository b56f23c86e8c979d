"""Shared helpers: run `fab` as a user would, from the repo root."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from nodeops.operation import CI_ACTOR_VARIABLES, CI_RUN_VARIABLES

# The suite plays a CI runner only where a test says so (it sets these itself). Run inside one, as
# `.ci/run` is, CI=true would otherwise turn every `fab` the tests start into JSON mode even on a
# terminal, and the runner's ids would end up in lock and audit records the tests read.
for variable in ("CI", *CI_RUN_VARIABLES, *CI_ACTOR_VARIABLES):
    os.environ.pop(variable, None)

ROOT = Path(__file__).resolve().parent.parent
FAB = Path(sys.executable).with_name("fab")


def fab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`fab ARGS...` in the repo root; never raises on a non-zero exit."""
    return subprocess.run(
        [str(FAB), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def simulator():
    """The Chainlink node simulator (lab/images/chainlink-sim/chainlink) as a module: its own loaders and rules."""
    path = ROOT / "lab" / "images" / "chainlink-sim" / "chainlink"
    loader = importlib.machinery.SourceFileLoader("chainlink_sim", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("chainlink_sim", loader))
    loader.exec_module(module)
    return module
