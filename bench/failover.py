#!/usr/bin/env python3
"""Failover benchmark: the outage users see through the load balancer, over N runs each.

- planned: `fab promote-standby` (graceful stop, the standby takes the released lease);
- unplanned: the active's container is killed (SIGKILL: no release); the standby takes
  over by itself once the lease expires by database time, and `fab deploy` then
  replaces the dead node.

Run as root from the repo root:  .venv/bin/python bench/failover.py [--runs 10]
A lab of its own ("bfail", 10.222.0.0/16, one pair, the role's defaults: lease 10 s,
refresh 1 s), probed every 100 ms; taken down at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
import urllib.request

import yaml
from benchlib import ROOT, fab, lab

from nodeops.run.probe import OutageProbe

NAME, CIDR = "bfail", "10.222.0.0/16"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False


def outage_after(action, url: str, limit: float = 60) -> float:
    """Probe every 100 ms around ``action`` (a thread of its own, so the time ``action`` takes to get
    going is not counted): the gap from the last good answer before the failures to the first after."""
    with OutageProbe(lambda: answers(url), limit=2 * limit) as probe:
        wait(lambda: any(ok for _, ok in probe.samples), limit, "the service did not answer before the kill")
        action()
        wait(lambda: recovered(list(probe.samples)), limit, f"the service did not answer again within {limit:g}s")
    return probe.outage


def recovered(samples: list[tuple[float, bool]]) -> bool:
    """A failed sample, then a good one."""
    failed = next((i for i, (_, ok) in enumerate(samples) if not ok), None)
    return failed is not None and any(ok for _, ok in samples[failed:])


def wait(condition, limit: float, error: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(error)
        time.sleep(0.05)


def measure(runs: int) -> tuple[list[float], list[float]]:
    """Planned and unplanned outages (seconds), ``runs`` of each after one uncounted of each, on a lab of its own
    (also used by bench/run)."""
    with lab(NAME, 2, CIDR):
        fab("deploy", "--env", NAME, "--json")
        url = yaml.safe_load((ROOT / "inventory" / f"{NAME}.yaml").read_text())["services"]["cl1"]["load_balancer"]
        planned, unplanned, active = [], [], None
        for _ in range(runs + 1):  # the first of each kind warms up, not counted
            events = [json.loads(line) for line in fab("promote-standby", "--env", NAME, "--json").stdout.splitlines()]
            took = next(e for e in events if "outage_seconds" in e)  # the takeover's step (the last line is `end`)
            planned.append(took["outage_seconds"])
            active = took["node"]
        for _ in range(runs + 1):
            kill = ("exec", "--env", NAME, "--nodes", active, "--command", "docker kill nodeops-cl1")
            unplanned.append(outage_after(lambda argv=kill: fab(*argv), url))
            fab("deploy", "--env", NAME, "--json")  # replaces the killed node, as the standby
            active = "cl1-b" if active == "cl1-a" else "cl1-a"  # the standby took over
    return planned[1:], unplanned[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    planned, unplanned = measure(args.runs)
    print(f"failover outage through the load balancer, {args.runs} runs each (seconds)")
    print(f"{'kind':>10} {'median':>8} {'max':>8} {'min':>8}")
    for kind, values in (("planned", planned), ("unplanned", unplanned)):
        print(f"{kind:>10} {statistics.median(values):>8.2f} {max(values):>8.2f} {min(values):>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
