"""The outage nodeops reports for a planned promotion, against an independent 50 ms sampler of the same path (the
load balancer, as users reach it), on a one-pair lab of its own."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from nodeops.inventory import load_inventory
from tests.conftest import fab
from tests.e2e.conftest import own_lab
from tests.e2e.probe import events, serving_nodes, wait_for

pytestmark = pytest.mark.lab

NAME, CIDR = "out", "10.231.0.0/16"
PROMOTIONS = 10


@pytest.fixture(scope="module")
def out(root):
    with own_lab(NAME, CIDR, nodes=2, deployed=True) as lab:
        yield lab


class Sampler:
    """Every 50 ms until the block ends, whether ``url`` answers 200: no nodeops code involved. Bounded (60 s)
    and loud: a block that outlives it fails."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, bool]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=0.2) as resp:
                return resp.status == 200
        except OSError:  # a 503 (HTTPError), refused, timed out
            return False

    def loop(self) -> None:
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            self.samples.append((t, self.answers()))
            time.sleep(max(0.0, 0.05 - (time.monotonic() - t)))

    def __enter__(self) -> Sampler:
        self.thread.start()
        wait_for(lambda: self.samples and self.samples[-1][1], "the service to answer before the promotion", 10)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        time.sleep(0.2)  # good samples after the gap
        alive = self.thread.is_alive()
        self.stop.set()
        self.thread.join(timeout=5)
        assert exc_type is not None or alive, "the sampler stopped before the promotion ended"

    @property
    def gap(self) -> float:
        """The longest run of failed samples, from the last good one before it to the first good one after."""
        worst, last_good, failing = 0.0, None, False
        for t, ok in self.samples:
            if ok and failing and last_good is not None:
                worst = max(worst, t - last_good)
            if ok:
                last_good, failing = t, False
            else:
                failing = True
        return worst


def res_seconds(res) -> float:
    """The seconds a `fab ... --json` run took, from its end event (0.0 when it has none)."""
    return next((e["seconds"] for e in events(res) if e.get("event") == "end"), 0.0)


def test_the_reported_outage_agrees_with_an_independent_sampler(out, figures):
    """Issue 13: two of 30 promotions printed "outage 0.00s" while a direct 50 ms sampler saw 0.2 s and 0.8 s with
    neither node answering. Over 10 promotions, each figure nodeops reports is within 0.2 s of what a 50 ms sampler
    of the load balancer saw (the two sample at 100 ms and 50 ms: 0.15 s of that is their resolutions)."""
    url = load_inventory(out.inventory_file).services["cl1"].load_balancer
    pairs, stops = [], []
    for _ in range(PROMOTIONS):
        before = serving_nodes(out, "cl1")
        with Sampler(url) as sampler:
            res = fab("promote-standby", "--env", NAME, "--service", "cl1", "--json")
        assert res.returncode == 0, res.stdout + res.stderr
        assert serving_nodes(out, "cl1") != before
        took = next(e for e in events(res) if "outage_seconds" in e)
        pairs.append((took["outage_seconds"], round(sampler.gap, 3)))
        stops.append((took.get("old_exit_code"), round(res_seconds(res), 1)))
    figures(f"outage (nodeops, 50 ms sampler) over {PROMOTIONS} promotions, seconds: {pairs}")
    # a lease-long gap (about 10 s) is told apart by these: the old active's exit code (0: it stopped on SIGTERM and
    # released its lease; 137: docker stop killed it after stop_timeout; 255: its shutdown grace ran out) and the run
    figures(f"old active's exit code, promotion's seconds: {stops}")
    assert all(seen > 0 for _, seen in pairs), (pairs, stops)  # each promotion had a gap users could see
    assert all(abs(reported - seen) <= 0.2 for reported, seen in pairs), (pairs, stops)
