#!/usr/bin/env python3
"""Fan-out benchmark: wall time of `fab exec --command true` on 8 / 32 / 64 lab nodes.

Run as root from the repo root:  sudo .venv/bin/python bench/fanout.py [--runs 5]
It brings up a lab of its own (name "bench", 10.217.0.0/16), measures the whole
`fab` process as a user would run it (interpreter start included), prints a
table, and takes the lab down again. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from benchlib import FAB, lab, measured

NAME, CIDR = "bench", "10.217.0.0/16"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="8,32,64")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with lab(NAME, max(sizes), CIDR):
        nodes = [f"cl{i // 2 + 1}-{'ab'[i % 2]}" for i in range(max(sizes))]
        measured([FAB, "exec", "--env", NAME, "--json", "--command", "true"], 600)  # warm-up, not counted
        print(f"fab exec --command true, {args.runs} runs per size after one warm-up (seconds, whole process)")
        print(f"{'nodes':>6} {'median':>8} {'min':>8} {'max':>8} {'failed hosts':>13}")
        for size in sizes:
            times, failed = [], 0
            for _ in range(args.runs):
                argv = [FAB, "exec", "--env", NAME, "--json", "--nodes", ",".join(nodes[:size]), "--command", "true"]
                seconds, _, out, _, _ = measured(argv, 600)
                times.append(seconds)
                failed += len(json.loads(out.splitlines()[-1])["failed"])
            print(f"{size:>6} {statistics.median(times):>8.2f} {min(times):>8.2f} {max(times):>8.2f} {failed:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
