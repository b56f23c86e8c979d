"""A pair's state from what each node shows: a table."""

from __future__ import annotations

import datetime

import pytest

from nodeops.inventory import Node
from nodeops.plan import Container
from nodeops.promote import Seen
from nodeops.status import node_role, pair_state, uptime

A = Node("a", "10.0.0.1", 22, "active", (), "svc")
B = Node("b", "10.0.0.2", 22, "standby", (), "svc")
RUNNING = Container("nodeops-svc", True, "running", "sha256:x")
EXITED = Container("nodeops-svc", False, "exited", "sha256:x", exit_code=1)


@pytest.mark.parametrize(
    ("a", "b", "roles", "state"),
    [
        (Seen(A, True, RUNNING, True), Seen(B, True, RUNNING, False), ["active", "standby"], "healthy"),
        (Seen(A, True, RUNNING, True), Seen(B, True, EXITED, False), ["active", "down"], "degraded"),
        (Seen(A, True, RUNNING, True), Seen(B, True, None, False), ["active", "down"], "degraded"),
        (Seen(A, False, None, False), Seen(B, True, RUNNING, True), ["unknown", "active"], "degraded"),
        (Seen(A, False, None, False), Seen(B, True, RUNNING, False), ["unknown", "standby"], "down"),
        (Seen(A, True, RUNNING, True), Seen(B, True, RUNNING, True), ["active", "active"], "unsafe"),
    ],
    ids=["healthy", "standby-exited", "standby-missing", "active-host-gone", "nobody-serves", "two-actives"],
)
def test_pair_state(a, b, roles, state):
    assert [node_role(a), node_role(b)] == roles
    assert pair_state([a, b]) == state


NOW = datetime.datetime(2026, 11, 21, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("started", "seconds"),
    [
        ("2026-11-21T11:59:00.123456789Z", 59.9),  # podman and docker: nanoseconds, Z
        ("2026-11-21T11:00:00Z", 3600.0),
        ("2026-11-21T12:59:00+01:00", 60.0),
        ("2026-11-21T12:00:05Z", 0.0),  # the engine's clock ahead of ours: never negative
        ("0001-01-01T00:00:00Z", None),  # never started
        ("", None),
        ("yesterday", None),
    ],
)
def test_uptime(started, seconds):
    assert uptime(started, NOW) == seconds
