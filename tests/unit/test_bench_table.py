"""bench/run's table: operator CPU per host with the start-up left out, and the ratio to nodeops per run."""

from __future__ import annotations

import pytest

from bench.benchlib import Row, table


@pytest.mark.parametrize(
    ("hosts", "startup", "cpu", "per_host_ms"),
    [
        (512, 0.5, [4.077, 3.566, 4.588], 7.0),  # the median run's: (4.077 - 0.5) / 511 s
        (2, 0.3, [0.31], 10.0),
        (16, 0.0, [0.15, 0.3, 0.45], 20.0),
        (1, 0.3, [0.31], None),  # one host is the start-up itself: nothing per host
        (64, 0.3, [], None),  # no CPU figure (failover rows)
    ],
)
def test_cpu_per_host_leaves_the_start_up_out(hosts, startup, cpu, per_host_ms):
    got = Row("fan-out", str(hosts), "nodeops", hosts=hosts, startup=startup, cpu=cpu).cpu_per_host_ms()
    assert got == (None if per_host_ms is None else pytest.approx(per_host_ms, abs=0.01))


def test_each_row_shows_wall_cpu_failed_hosts_and_every_runs_ratio():
    rows = [
        Row("fan-out", "512", "nodeops", 512, 0.5, [10.0, 12.0, 11.0], [4.09, 4.6, 3.58], [0, 0, 0], [1.0, 1.0, 1.0]),
        Row(
            "fan-out",
            "512",
            "ansible -m raw",
            512,
            2.0,
            [60.0, 66.0, 77.0],
            [20.0, 22.0, 21.0],
            [3, 0, 1],
            [6.0, 5.5, 7.0],
        ),  # fmt: skip
        Row("failover outage", "1 pair", "planned", seconds=[0.8, 0.6, 0.7], failed=[0, 0, 0]),
    ]
    lines = table(rows, ["2 cores"]).splitlines()
    header = ["wall median", "min", "max", "operator CPU per host", "failed hosts (per run)", "vs nodeops (per run)"]
    assert lines[0].split(" | ")[3:9] == header
    assert (
        lines[2]
        == "| fan-out | 512 | nodeops | 11.00 s | 10.00 s | 12.00 s | 7.0 ms | 0/0/0 | 1.00/1.00/1.00 | 1.00x |"
    )
    assert lines[3] == (
        "| fan-out | 512 | ansible -m raw | 66.00 s | 60.00 s | 77.00 s | 37.2 ms | 3/0/1 | 6.00/5.50/7.00 | 6.00x |"
    )
    assert lines[4] == "| failover outage | 1 pair | planned | 0.70 s | 0.60 s | 0.80 s | - | 0/0/0 | - | - |"
    assert lines[-1] == "- 2 cores"
