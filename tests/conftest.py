"""Shared helpers: run `fab` as a user would, from the repo root."""

from __future__ import annotations

import fcntl
import importlib.machinery
import importlib.util
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from nodeops.operation import CI_ACTOR_VARIABLES, CI_RUN_VARIABLES

# The suite plays a CI runner only where a test says so (it sets these itself). Run inside one, as
# `.ci/run` is, CI=true would otherwise turn every `fab` the tests start into JSON mode even on a
# terminal, and the runner's ids would end up in lock and audit records the tests read.
for variable in ("CI", *CI_RUN_VARIABLES, *CI_ACTOR_VARIABLES):
    os.environ.pop(variable, None)

ROOT = Path(__file__).resolve().parent.parent

# What a session-scoped fixture brings up once per process: tests/lab/conftest.py's 64-node lab, tests/sim/conftest.py's
# PostgreSQL cluster. A second process bringing up the same lab would collide with the first (one name, one range).
SESSION_RESOURCES = ("lab", "pg")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (pyproject's addopts: two processes), one process runs each group whole: the tests of a
    session resource together, else a module's tests (its module-scoped lab or venv is brought up once)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        shared = next((name for name in SESSION_RESOURCES if name in item.fixturenames), None)
        item.add_marker(pytest.mark.xdist_group(shared or item.nodeid.split("::")[0]))


FAB = Path(sys.executable).with_name("fab")


def fab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`fab ARGS...` in the repo root; never raises on a non-zero exit."""
    return subprocess.run(
        [str(FAB), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-HJKSTfsu]")  # cursor moves and erasures: a new piece of screen
STYLE = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")


def screen_pieces(raw: str) -> list[str]:
    """The pieces of screen the output drew: split at newlines, carriage returns and cursor moves, colours gone."""
    text = STYLE.sub("", CONTROL.sub("\n", raw))
    return [piece for line in text.split("\n") for piece in line.split("\r")]


def run_on_a_terminal(argv: Sequence[str], env: dict[str, str], react: Callable[[bytes, int, subprocess.Popen], None]
                      | None = None, columns: int | None = None, timeout: float = 60) -> tuple[int, str]:  # fmt: skip
    """``argv`` (from the repo root) with stdin, stdout and stderr a pseudo-terminal, as a person runs it: its exit
    code and every byte it wrote (ANSI included). ``react(seen, master, proc)`` after each read (answer a question
    on ``master``, signal ``proc``); ``columns``: the terminal's width (TIOCSWINSZ, 24 rows)."""
    master, slave = os.openpty()
    if columns:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(list(argv), cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    seen, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if react:
                    react(seen, master, proc)
            if proc.poll() is not None and not ready:
                break
        return proc.wait(timeout=10), seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def simulator():
    """The Chainlink node simulator (lab/images/chainlink-sim/chainlink) as a module: its own loaders and rules."""
    path = ROOT / "lab" / "images" / "chainlink-sim" / "chainlink"
    loader = importlib.machinery.SourceFileLoader("chainlink_sim", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("chainlink_sim", loader))
    loader.exec_module(module)
    return module


def override_config(project: Path, old: str, new: str) -> None:
    """The operator's override of the Chainlink role's v2 config.toml template in ``project/roles`` (the project of
    an inventory written in ``project``, with no nodeops.yaml above it): the built-in one with ``old`` replaced by
    ``new``."""
    from nodeops.roles import BUILTIN_ROLES

    builtin = (BUILTIN_ROLES / "chainlink" / "templates" / "v2" / "config.toml.j2").read_text()
    assert old in builtin, f"{old!r} is not in the built-in template: the override would change nothing"
    mine = project / "roles" / "chainlink" / "templates" / "v2" / "config.toml.j2"
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text(builtin.replace(old, new))
