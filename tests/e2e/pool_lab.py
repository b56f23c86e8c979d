"""The one pool lab the pool modules share (POOL_LAB_MODULES in tests/conftest.py, which runs them in one process, in
its order): `fab lab.up --pool` once for the run (the session fixture ``pools``, registered by tests/e2e/conftest.py),
down at its end. The first, test_pool_deploy, deploys the pool at once after lab.up and records it in
``pools.deploys``; each module's own fixture brings the pool to the state its tests start from: ``deployed`` (nothing
to do after the first), and ``fresh_certificate`` where a module needs most of a certificate's window (a lab
certificate lasts 60 s: 30 KES periods of 2 s), rather than a new lab. A module run alone (`pytest
tests/e2e/test_pool_facts.py`) brings the lab up itself, through the same fixture."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field

import pytest

from lab.host import Lab
from lab.topology import plan_lab
from nodeops.roles import role_module
from tests.conftest import ROOT, fab
from tests.e2e.pool_keys import get_inside

# reserved for the pool modules' shared lab; NODEOPS_TEST_POOL_LAB="name,cidr" moves it, for a second checkout's run
# of the pool modules beside this one's (each lab name and CIDR is the whole machine's)
NAME, CIDR = os.environ.get("NODEOPS_TEST_POOL_LAB", "pools,10.217.0.0/16").split(",")
NODES = 2
PLAN = plan_lab(NAME, CIDR, NODES, pool=True)
HOLDER = next(h for h in PLAN.pool if h.preferred == "active")  # the producer that holds the hot keys at the start
kesinfo = role_module("cardano", "kesinfo")


@dataclass(frozen=True)
class PoolLab:
    """The shared pool lab: ``lab`` (its first hot credentials issued last by lab.up, lab.pool.first_hot: the first
    module deploys at once); ``up``, lab.up's stdout and stderr (test_pool_deploy looks for keys in them);
    ``deploys``, the wall seconds of each deploy of the pool a module's fixture ran (test_pool_deploy's included)."""

    lab: Lab
    up: str
    deploys: list[float] = field(default_factory=list)


@pytest.fixture(scope="session")
def pools(root):
    """The pool lab (NAME, CIDR), brought up once for the process that runs the pool modules; down at the end, even
    when bringing it up failed half way."""
    try:
        up = fab("lab.up", "--pool", "--name", NAME, "--nodes", str(NODES), "--cidr", CIDR, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        yield PoolLab(Lab(ROOT, NAME), up.stdout + up.stderr)
    finally:
        assert fab("lab.down", "--name", NAME).returncode == 0


def deployed(pools: PoolLab, *where: str) -> float | None:
    """The pool deployed: `fab deploy --service pool --json` from ``where`` (``--env pools`` unless given) unless a
    module's fixture deployed it already in this run (a deploy that changes nothing still costs 7 to 10 s). Its wall
    seconds (recorded in ``pools.deploys``), None when it was deployed already."""
    if pools.deploys:
        return None
    started = time.monotonic()
    res = fab("deploy", *(where or ("--env", NAME)), "--service", "pool", "--json", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    pools.deploys.append(time.monotonic() - started)
    return pools.deploys[-1]


def chain_get(path: str):
    """The chain service's ``path`` (GET; JSON), asked from inside pool-relay-a's network (no route from here)."""
    return get_inside(PLAN.pool[0].netns, PLAN.chain_address + path)


def holder_facts(node: str = HOLDER.name):
    """``node``'s KES facts (kesinfo.KesFacts) from its metrics, read inside the lab's network."""
    host = next(h for h in PLAN.pool if h.name == node)
    return kesinfo.parse(get_inside(PLAN.pool[0].netns, f"http://{host.private_ip}:12798/metrics"))


def rotate(*where: str) -> tuple[subprocess.CompletedProcess, float]:
    """`fab rotate-secrets --service pool --secret kes --json` from ``where`` (``--env pools`` unless given): its
    run, not judged, and wall seconds."""
    started = time.monotonic()
    res = fab("rotate-secrets", *(where or ("--env", NAME)), "--service", "pool", "--secret", "kes", "--json",
              timeout=300)  # fmt: skip
    return res, time.monotonic() - started


def fresh_certificate(at_least: int, *where: str) -> float | None:
    """The holder's certificate with at least ``at_least`` KES periods left (of the lab's 30): a rotation when its
    metrics say fewer (expired or none read too). Returns the rotation's wall seconds, None when none was needed."""
    left = holder_facts().remaining
    if left is not None and left >= at_least:
        return None
    res, seconds = rotate(*where)
    assert res.returncode == 0, res.stdout + res.stderr
    return seconds
