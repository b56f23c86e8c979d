#!/usr/bin/env python3
"""Deploy benchmark: wall time of a fresh `fab deploy` of 1 / 4 / 16 pairs, and of a no-op re-run.

Run as root from the repo root:  .venv/bin/python bench/deploy.py [--runs 3] [--sizes 1,4,16]
It brings up a lab of its own (name "bdep", 10.221.0.0/16) with as many pairs
as the largest size, times the whole `fab deploy` process, removes the
containers between runs (so every run is a fresh start: pull, upload, start
the active, wait for health, start the standby, wait, shred) after one
uncounted deploy of every pair (the image pulled on every node), and takes
the lab down at the end. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from benchlib import FAB, fab, lab, measured, wipe_command

NAME, CIDR = "bdep", "10.221.0.0/16"


def succeeded(argv: list[str]) -> float:
    """The seconds ``argv`` took; a failed run ends the benchmark, it is no timing."""
    seconds, code, out, _, _ = measured(argv, 1800)
    if code:
        sys.exit(f"{' '.join(map(str, argv[1:]))} failed (exit {code}):\n{out[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1,4,16")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with lab(NAME, 2 * max(sizes), CIDR):
        print(f"fab deploy, {args.runs} runs per size (seconds, whole process; fresh = no container before)")
        print(f"{'pairs':>6} {'fresh median':>13} {'min':>7} {'max':>7} {'no-op median':>13}")
        everything = ",".join(f"cl{i + 1}" for i in range(max(sizes)))
        succeeded([FAB, "deploy", "--env", NAME, "--service", everything, "--json"])  # warm-up: the image pulled
        for size in sizes:
            services = ",".join(f"cl{i + 1}" for i in range(size))
            nodes = ",".join(f"cl{i + 1}-{x}" for i in range(size) for x in "ab")
            fresh, noop = [], []
            for _ in range(args.runs):
                fab(*wipe_command(NAME, nodes))
                deploy = [FAB, "deploy", "--env", NAME, "--service", services, "--json"]
                fresh.append(succeeded(deploy))
                noop.append(succeeded(deploy))
            print(f"{size:>6} {statistics.median(fresh):>13.2f} {min(fresh):>7.2f} {max(fresh):>7.2f} "
                  f"{statistics.median(noop):>13.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
