"""--shard I/N on a lab of its own (4 pairs behind one bastion): the matrix `nodeops shards` prints, run as separate
`fab deploy --shard` processes in parallel, covers every service exactly once, each exiting 0; two shards given the
same service are serialised by its deploy lock on the bastion."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import FAB, ROOT, fab
from tests.e2e.conftest import own_lab
from tests.e2e.probe import events, serialised_shards

pytestmark = pytest.mark.lab

NAME, CIDR = "shard", "10.245.0.0/16"
PAIRS = 4


@pytest.fixture(scope="module")
def sharded(root):
    with own_lab(NAME, CIDR, nodes=2 * PAIRS) as lab:
        yield lab


def ended(res_events: list[dict]) -> dict:
    """The run's end event (its result, exit code and services)."""
    return next(e for e in res_events if e.get("event") == "end")


def test_four_shards_in_parallel_deploy_every_service_exactly_once(sharded, figures):
    inventory = str(sharded.inventory_file)
    printed = fab("shards", "--inventory", inventory, "--count", str(PAIRS), "--json")
    assert printed.returncode == 0, printed.stderr
    rows = json.loads(printed.stdout)["include"]
    assert [row["shard"] for row in rows] == [f"{i}/{PAIRS}" for i in range(1, PAIRS + 1)]
    started = time.monotonic()
    runs = [
        subprocess.Popen([str(FAB), "deploy", "--inventory", inventory, "--shard", row["shard"], "--json"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        for row in rows
    ]  # fmt: skip
    done = [(run, *run.communicate(timeout=600)) for run in runs]
    seconds = time.monotonic() - started
    covered = []
    for (run, out, err), row in zip(done, rows, strict=True):
        assert run.returncode == 0, f"shard {row['shard']}: {out[-2000:]} {err}"
        end = ended([json.loads(line) for line in out.splitlines() if line.startswith("{")])
        assert end["result"] == "ok" and end["services"] == sorted(row["services"].split(",")), end
        covered += end["services"]
    assert sorted(covered) == sorted(f"cl{i}" for i in range(1, PAIRS + 1))  # every service, exactly once
    figures(f"{PAIRS} shards, separate processes in parallel, deployed {len(covered)} fresh pairs in {seconds:.1f}s")
    status = fab("status", "--inventory", inventory, "--json")
    assert status.returncode == 0, status.stderr
    assert {e["service"]: e["state"] for e in events(status)} == {s: "healthy" for s in covered}
    ran = fab("exec", "--inventory", inventory, "--shard", f"2/{PAIRS}", "--command", "true", "--json")
    assert ran.returncode == 0, ran.stderr
    assert {e["node"] for e in events(ran) if e["event"] == "host"} == {"cl2-a", "cl2-b"}  # the shard's nodes only


def test_two_shards_given_one_service_are_serialised_by_its_lock(sharded):
    """Shard 1/2 (cl1, cl2) holds its services' locks, frozen mid-run; shard 1/4 (cl1) exits 3 naming it. Once the
    first has finished, the second runs."""
    serialised_shards(str(sharded.inventory_file), "1/2", "1/4", ["cl1", "cl2"], "cl1")
