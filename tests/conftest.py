"""Shared helpers: run `fab` as a user would, from the repo root."""

from __future__ import annotations

import fcntl
import functools
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
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

from nodeops.operation import CI_ACTOR_VARIABLES, CI_RUN_VARIABLES

# The suite plays a CI runner only where a test says so (it sets these itself). Run inside one, as
# `.ci/run` is, CI=true would otherwise turn every `fab` the tests start into JSON mode even on a
# terminal, and the runner's ids would end up in lock and audit records the tests read.
for variable in ("CI", *CI_RUN_VARIABLES, *CI_ACTOR_VARIABLES):
    os.environ.pop(variable, None)

ROOT = Path(__file__).resolve().parent.parent
FAB = Path(sys.executable).with_name("fab")

# The modules whose tests use tests/e2e/conftest.py's `lab`: one 64-node lab for the whole run, which a second process
# bringing up the same lab would collide with (one name, one range). pytest_collection_modifyitems keeps this true.
SESSION_LAB_MODULES = frozenset(
    f"tests/e2e/{name}.py"
    for name in (
        "test_engine",
        "test_lab_services",
        "test_lease_failover",
        "test_transport",
    )
)


# The modules that share tests/e2e/pool_lab.py's one pool lab (`pools`), in the order they run, each from the state
# the one before leaves (one line here adds a module to the group). pytest_collection_modifyitems keeps this true.
# test_pool_deploy first: it deploys the pool from nothing. test_pool_force last: it leaves the lost producer running
# with a certificate the chain refuses, which a module after it would need stopped, its tmpfs wiped and redeployed
# as the standby first (what the operator must do: docs/cardano.md); last, the lab's lab.down does it for nothing.
POOL_LAB_MODULES = tuple(
    f"tests/e2e/{name}.py"
    for name in (
        "test_pool_deploy",
        "test_pool_facts",
        "test_pool_kes",
        "test_pool_promote",
        "test_pool_force",
    )
)
SHARED_LABS = {
    "lab": ("the session lab", SESSION_LAB_MODULES, "SESSION_LAB_MODULES"),
    "pools": ("the pool lab", POOL_LAB_MODULES, "POOL_LAB_MODULES"),
}  # fixture: (scope, modules, name)


def scope_of(nodeid: str) -> str:
    """The part of the run one process runs whole: a test's module, or all the modules of a shared lab together."""
    module = nodeid.split("::", 1)[0]
    return next((scope for scope, modules, _ in SHARED_LABS.values() if module in modules), module)


class ModulesTogether(LoadScopeScheduling):
    """pytest-xdist's --dist=loadscope by ``scope_of`` (pyproject's addopts: two processes; the suite is mostly labs
    waiting on leases and timeouts, not CPU): a module's lab is brought up once, by one process, and each shared
    lab's (the session lab, the pool lab) by one. (xdist_group marks would say the same, but xdist 3.8 cannot read
    them under pytest 9.2, which renamed the node id attribute they are written into.) Scopes start in collection
    order (--no-loadscope-reorder): pytest_collection_modifyitems puts the longest first."""

    def _split_scope(self, nodeid: str) -> str:
        return scope_of(nodeid)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cover-children",
        action="store_true",
        help="measure the coverage of the fab/nodeops processes the tests start too (about 70% more CPU in the lab "
        "tests: CONTRIBUTING.md)",
    )


@pytest.fixture(scope="session", autouse=True)
def cover_children(request: pytest.FixtureRequest) -> None:
    """With --cover-children, every Python child of this process measures what the run measures, as coverage's
    ``patch = ["subprocess"]`` does (coverage/patch.py: the configuration passed in COVERAGE_PROCESS_CONFIG, which its
    .pth reads at the child's start); each child writes a data file beside the run's, and pytest-cov combines them."""
    if not request.config.getoption("cover_children"):
        return
    import coverage

    running = coverage.Coverage.current()
    if running is None:
        raise pytest.UsageError("--cover-children measures nothing under --no-cov")
    os.environ["COVERAGE_PROCESS_CONFIG"] = running.config.serialize()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> ModulesTogether:
    return ModulesTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuses a module that uses a shared lab unlisted in its modules (SHARED_LABS); orders the lab scopes by their
    number of tests, most first (a fair guess of their time: a lab test takes 10 to 80 s, a unit test well under
    one), so that the longest do not start last and leave one process working alone; the rest as collected; the pool
    lab's modules in POOL_LAB_MODULES's order (each starts from the state the one before leaves)."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        for fixture, (scope, modules, listed) in SHARED_LABS.items():
            if fixture in item.fixturenames and module not in modules:
                raise pytest.UsageError(f"{module} uses {scope} (`{fixture}`): add it to {listed} in "
                                        "tests/conftest.py, so that one process runs all its users")  # fmt: skip
    weight = Counter(scope_of(item.nodeid) for item in items if item.get_closest_marker("lab"))
    items.sort(key=lambda item: -weight[scope_of(item.nodeid)])  # stable: a module's tests stay in their order
    pool = [i for i, item in enumerate(items) if item.nodeid.split("::", 1)[0] in POOL_LAB_MODULES]
    ordered = sorted((items[i] for i in pool), key=lambda item: POOL_LAB_MODULES.index(item.nodeid.split("::")[0]))
    for i, item in zip(pool, ordered, strict=True):  # the pool lab's modules in POOL_LAB_MODULES's order, in place
        items[i] = item


@pytest.fixture
def figures(record_property) -> Callable[[str], None]:
    """Say a figure the test measured (an outage, a matrix, a time): printed in the run's summary, under "figures",
    whichever process ran the test (a passing test's own prints are captured, and a worker's never reach the
    terminal)."""
    return functools.partial(record_property, "figures")


def pytest_terminal_summary(terminalreporter) -> None:
    said = [(report.nodeid, value) for reports in terminalreporter.stats.values() for report in reports
            if getattr(report, "when", None) == "call"
            for name, value in getattr(report, "user_properties", ()) if name == "figures"]  # fmt: skip
    if said:
        terminalreporter.section("figures")
        for nodeid, value in said:
            terminalreporter.write_line(f"{nodeid}: {value}")
    scopes: Counter[str] = Counter()  # seconds per scope (setup, call and teardown: a module's lab up and down too)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if isinstance(getattr(report, "duration", None), float) and getattr(report, "nodeid", ""):
                scopes[scope_of(report.nodeid)] += report.duration
    if scopes:  # what the suite's time is made of: the longest scope bounds a two-process run from below
        terminalreporter.section("seconds per scope (longest 15; each runs whole in one process)")
        for scope, seconds in scopes.most_common(15):
            terminalreporter.write_line(f"{seconds:8.1f}  {scope}")
        terminalreporter.write_line(f"{sum(scopes.values()):8.1f}  in all, over every process")


def fab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`fab ARGS...` in the repo root; never raises on a non-zero exit."""
    return subprocess.run(
        [str(FAB), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def end_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """End a child process the test started, by its pid: SIGTERM, up to ``grace`` seconds for it to exit, then
    SIGKILL (and up to 10 s more to be reaped). Never signals anything but ``proc``."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


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
    """The operator's override of the Chainlink role's v2 config.toml template in ``project/templates`` (the project
    of an inventory written in ``project``, with no nodeops.yaml above it): the built-in one with ``old`` replaced by
    ``new``."""
    from nodeops.roles import BUILTIN_TEMPLATES

    builtin = (BUILTIN_TEMPLATES / "chainlink" / "v2" / "config.toml.j2").read_text()
    assert old in builtin, f"{old!r} is not in the built-in template: the override would change nothing"
    mine = project / "templates" / "chainlink" / "v2" / "config.toml.j2"
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text(builtin.replace(old, new))
