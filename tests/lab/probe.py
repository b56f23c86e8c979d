"""Watching a node pair while something happens to it, and waiting on conditions, not sleeps."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from pathlib import Path

from nodeops.inventory import load_inventory
from nodeops.remote import Fleet


def wait_for(predicate, what: str, timeout: float = 60):
    """Poll ``predicate`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


class PairProbe:
    """Every 100 ms, until the block ends: both nodes' /health through the bastion (they have no
    route from here) and the service through its load balancer, as users reach it.

    A sample is (time, whether each node serves, who answered through the load balancer: the
    answering process's appID, "answered" when its reply has none, None when nothing answered).
    """

    def __init__(self, inventory: Path, service: str, nodes: bool = True) -> None:
        self.with_nodes = nodes  # False when a node is cut off: its probe would stall on the timeout
        self.inventory = load_inventory(inventory)
        self.service = self.inventory.services[service]
        self.samples: list[tuple[float, tuple[bool, ...], str | None]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        with Fleet(self.inventory) as fleet:
            deadline = time.monotonic() + 300  # bounded, whatever happens to the test
            while not self.stop.is_set() and time.monotonic() < deadline:
                t = time.monotonic()
                nodes = tuple((r := fleet.http_get(n.host, 6688, "/health")) is not None and r[0] == 200
                              for n in self.service.nodes if self.with_nodes)  # fmt: skip
                self.samples.append((t, nodes, self.through_load_balancer()))
                time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))

    def through_load_balancer(self) -> str | None:
        try:
            with urllib.request.urlopen(self.service.load_balancer, timeout=0.5) as resp:
                body = resp.read()
        except (OSError, http.client.HTTPException):  # a 503 is an HTTPError, an OSError
            return None
        try:
            return str(json.loads(body)["meta"]["appID"])
        except (ValueError, KeyError, TypeError):
            return "answered"

    def __enter__(self) -> PairProbe:
        self.started = time.monotonic()
        self.thread.start()
        wait_for(lambda: self.samples, "the probe's first sample", timeout=10)  # a baseline before the block
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        assert self.thread.is_alive(), "the probe died: the pair was not watched"
        watched = time.monotonic() - self.started
        self.stop.set()
        self.thread.join(timeout=10)
        assert len(self.samples) >= watched / 0.1 * 0.5, (len(self.samples), watched)  # about every 100 ms

    @property
    def both(self) -> list[float]:
        """Sampled instants at which every node served."""
        return [t for t, nodes, _ in self.samples if nodes and all(nodes)]

    @property
    def gaps(self) -> list[float]:
        """Load balancer outages: last answered sample to first answered sample."""
        gaps, last_good, failed = [], None, False
        for t, _, lb in self.samples:
            if lb is not None and failed and last_good is not None:
                gaps.append(t - last_good)
            if lb is not None:
                last_good, failed = t, False
            else:
                failed = True
        return gaps

    def serving(self, node: int, since: float) -> float | None:
        """The first sampled time >= ``since`` at which node ``node`` (its index) served."""
        return next((t for t, nodes, _ in self.samples if t >= since and nodes[node]), None)

    def last_serving(self, node: int, before: float) -> float:
        return max(t for t, nodes, _ in self.samples if t <= before and nodes[node])


def serving_nodes(lab, service: str) -> list[str]:
    """The nodes of ``service`` that serve /health, asked through the lab's bastion."""
    inv = load_inventory(lab.inventory_file)
    with Fleet(inv) as fleet:
        return [n.name for n in inv.services[service].nodes if (r := fleet.http_get(n.host, 6688, "/health"))
                and r[0] == 200]  # fmt: skip


def lb_answers(lab, service: str) -> bool:
    """Does ``service`` answer 200 through its load balancer, as users reach it?"""
    with urllib.request.urlopen(load_inventory(lab.inventory_file).services[service].load_balancer, timeout=5) as r:
        return r.status == 200
