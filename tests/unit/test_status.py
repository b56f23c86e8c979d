"""A pair's state from what each node shows: a table."""

from __future__ import annotations

import datetime
import json
import types
from pathlib import Path

import jsonschema
import pytest

from nodeops import program
from nodeops.errors import OperationFailed
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Node
from nodeops.role_hooks import DEFAULT_HOOKS
from nodeops.rotate.rules import Stages
from nodeops.status import mixed_inputs, node_role, node_status, pair_state, rotation_status, service_state, uptime

CUT = "unreachable"  # a NodeView's why, for a node that could not be reached

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "status.schema.json").read_text())
RPC = "EVM.1.HeadTracker.HeadListener"

A = Node("a", "10.0.0.1", 22, "active", (), "svc")
B = Node("b", "10.0.0.2", 22, "standby", (), "svc")
RUNNING = Container("nodeops-svc", True, "running", "sha256:x")
EXITED = Container("nodeops-svc", False, "exited", "sha256:x", exit_code=1)


@pytest.mark.parametrize(
    ("a", "b", "roles", "state"),
    [
        (NodeView(A, RUNNING, True), NodeView(B, RUNNING, False), ["active", "standby"], "healthy"),
        (NodeView(A, RUNNING, True), NodeView(B, EXITED, False), ["active", "down"], "degraded"),
        (NodeView(A, RUNNING, True), NodeView(B, None, False), ["active", "down"], "degraded"),
        (NodeView(A, None, False, unreachable=CUT), NodeView(B, RUNNING, True), ["unknown", "active"], "degraded"),
        (NodeView(A, None, False, unreachable=CUT), NodeView(B, RUNNING, False), ["unknown", "standby"], "unknown"),
        (NodeView(A, None, False), NodeView(B, RUNNING, False), ["down", "standby"], "down"),
        (NodeView(A, RUNNING, True), NodeView(B, RUNNING, True), ["active", "active"], "unsafe"),
        (NodeView(A, RUNNING, False, (RPC,)), NodeView(B, RUNNING, False), ["active", "standby"], "degraded"),
        (NodeView(A, RUNNING, False, (RPC,)), NodeView(B, EXITED, False), ["active", "down"], "degraded"),
        (NodeView(A, RUNNING, False), NodeView(B, RUNNING, False, ("HTTP 503",)), ["standby", "active"],
         "degraded"),
        (NodeView(A, RUNNING, True), NodeView(B, RUNNING, False, (RPC,)), ["active", "active"], "unsafe"),
    ],
    ids=["healthy", "standby-exited", "standby-missing", "active-host-gone", "active-unseen", "nobody-serves",
         "two-actives",
         "unhealthy-active", "unhealthy-active-no-standby", "unhealthy-active-b", "healthy-and-unhealthy-active"],
)  # fmt: skip
def test_pair_state(a, b, roles, state):
    assert [node_role(a), node_role(b)] == roles
    assert pair_state([a, b]) == state


C = Node("c", "10.0.0.3", 22, "standby", (), "svc")
OTHER = Container("nodeops-svc", True, "running", "sha256:y", labels={"io.nodeops.config": "9f8e7d6c5b4a"})


@pytest.mark.parametrize(
    ("seen", "roles", "state"),
    [
        ((NodeView(A, RUNNING, True), NodeView(B, RUNNING, True), NodeView(C, RUNNING, True)),
         ["serving", "serving", "serving"], "healthy"),
        ((NodeView(A, RUNNING, True), NodeView(B, OTHER, True), NodeView(C, RUNNING, True)),
         ["serving", "serving", "serving"], "mixed"),
        ((NodeView(A, RUNNING, True), NodeView(B, RUNNING, False), NodeView(C, EXITED, False)),
         ["serving", "not serving", "down"], "degraded"),
        ((NodeView(A, RUNNING, False, (RPC,)), NodeView(B, RUNNING, True), NodeView(C, None, False, unreachable=CUT)),
         ["not serving", "serving", "unknown"], "degraded"),
        ((NodeView(A, RUNNING, False), NodeView(B, None, False), NodeView(C, RUNNING, False, (RPC,))),
         ["not serving", "down", "not serving"], "down"),
        ((NodeView(A, RUNNING, False), NodeView(B, None, False), NodeView(C, None, False, unreachable=CUT)),
         ["not serving", "down", "unknown"], "unknown"),
    ],
    ids=["every-node-serves", "mixed-inputs", "one-silent-one-exited", "unhealthy-and-unreachable", "none-serves",
         "none-seen-serving-one-unseen"],
)  # fmt: skip
def test_under_activation_all_every_node_is_serving_or_not_never_active_or_standby(seen, roles, state):
    assert [node_role(s, "all") for s in seen] == roles
    assert pair_state(list(seen), "all") == state
    validator = jsonschema.Draft202012Validator(SCHEMA["properties"]["nodes"]["items"])
    for s in seen:
        assert not list(validator.iter_errors(node_status(s, NOW, "all")))
    assert pair_state(list(seen), "all") in SCHEMA["properties"]["state"]["enum"]


@pytest.mark.parametrize(
    ("seen", "health", "failing"),
    [
        (NodeView(A, RUNNING, True), "passing", []),
        (NodeView(A, RUNNING, False, (RPC,)), "failing", [RPC]),
        (NodeView(A, RUNNING, False), "no answer", []),
        (NodeView(A, None, False, unreachable=CUT), "unknown", []),
    ],
)
def test_node_status_names_an_unhealthy_actives_failing_checks(seen, health, failing):
    got = node_status(seen, NOW)
    assert (got["health"], got["failing"]) == (health, failing)
    validator = jsonschema.Draft202012Validator(SCHEMA["properties"]["nodes"]["items"])
    assert not list(validator.iter_errors(got))


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


def ran(version: str, config: str, digest: str = "sha256:aaaa", running: bool = True) -> Container:
    labels = {"io.nodeops.version": version, "io.nodeops.config": config, "io.nodeops.digest": digest}
    return Container("nodeops-svc", running, "running" if running else "exited", "sha256:x", labels)


CFG1, CFG2 = "0a1b2c3d4e5f" + "0" * 52, "9f8e7d6c5b4a" + "0" * 52


@pytest.mark.parametrize(
    ("a", "b", "state", "mixed"),
    [
        (ran("2.11.0", CFG1), ran("2.11.0", CFG1), "healthy", None),
        # a partial deploy, or a secret version moved on one node (the config hash covers secret version ids)
        (ran("2.11.0", CFG1), ran("2.11.0", CFG2), "mixed",
         "a runs 2.11.0 config 0a1b2c3d4e5f, b runs 2.11.0 config 9f8e7d6c5b4a"),
        (ran("2.11.0", CFG1), ran("2.10.0", CFG1), "mixed",
         "a runs 2.11.0 config 0a1b2c3d4e5f, b runs 2.10.0 config 0a1b2c3d4e5f"),
        # the tag moved in the registry between the nodes' pulls: the digest is named
        (ran("2.11.0", CFG1), ran("2.11.0", CFG1, "sha256:bbbb"), "mixed",
         "a runs 2.11.0 (sha256:aaaa) config 0a1b2c3d4e5f, b runs 2.11.0 (sha256:bbbb) config 0a1b2c3d4e5f"),
        # a stopped container runs nothing: the pair is degraded, not mixed
        (ran("2.11.0", CFG1), ran("2.10.0", CFG2, running=False), "degraded", None),
        # a container started by hand records nothing: it differs from one that does
        (ran("2.11.0", CFG1), Container("nodeops-svc", True, "running", "sha256:x"), "mixed",
         "a runs 2.11.0 (sha256:aaaa) config 0a1b2c3d4e5f, b runs ? (?) config ?"),
    ],
    ids=["same", "config", "version", "digest", "standby-stopped", "unlabelled"],
)  # fmt: skip
def test_a_pair_whose_nodes_run_different_inputs_is_mixed_not_healthy(a, b, state, mixed):
    seen = [NodeView(A, a, True), NodeView(B, b, False)]
    assert (pair_state(seen), mixed_inputs(seen)) == (state, mixed)


def test_an_unhealthy_mixed_pair_is_degraded_and_still_says_mixed():
    seen = [NodeView(A, ran("2.11.0", CFG1), False, (RPC,)), NodeView(B, ran("2.11.0", CFG2), False)]
    assert pair_state(seen) == "degraded"
    assert mixed_inputs(seen) == "a runs 2.11.0 config 0a1b2c3d4e5f, b runs 2.11.0 config 9f8e7d6c5b4a"


@pytest.mark.parametrize("b", [ran("2.11.0", CFG1), ran("2.11.0", CFG2)], ids=["same", "mixed"])
def test_a_whole_status_entry_matches_the_schema(b):
    seen = [NodeView(A, ran("2.11.0", CFG1), True), NodeView(B, b, False)]
    entry = {"event": "status", "service": "svc", "state": pair_state(seen), "mixed": mixed_inputs(seen),
             "lease": None, "rotation": None, "lock": None, "nodes": [node_status(s, NOW) for s in seen]}  # fmt: skip
    assert not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(entry))
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors({**entry, "mixed": 1}))  # a string or null


def test_a_node_shows_the_image_nodeops_started_not_the_engines_word():
    """Podman (behind the docker CLI too) reports a reference pinned by digest without its tag."""
    pinned = "reg:5000/cl:2.10.0@sha256:" + "d" * 64
    labels = {"io.nodeops.image": pinned, "io.nodeops.version": "2.10.0", "io.nodeops.config": CFG1}
    c = Container("nodeops-svc", True, "running", "sha256:x", labels, image=pinned.replace(":2.10.0", ""))
    shown = node_status(NodeView(A, c, True), NOW)
    assert (shown["image"], shown["version"]) == (pinned, "2.10.0")


CUT = "b (10.0.0.2:22): cannot connect after 1 attempt(s): Timeout opening channel"


def test_status_says_why_a_node_is_unreachable(monkeypatch):
    """rv6 finding 3: a node whose link was cut showed ``unknown unknown`` and nothing else; the connection's
    error (the words deploy prints) is now in its entry, and null for a node that was reached."""
    from nodeops.edges.ssh import CommandResult
    from nodeops.errors import OperationFailed
    from nodeops.facts import observe

    class Fleet:  # the edge's answers: a reached, its container running and serving; b's connection refused
        settings = types.SimpleNamespace(command_timeout=5)

        def connect(self, node):
            if node is B:
                raise OperationFailed(CUT)
            return node.host, 1

        def http_get(self, *_where, **_how):
            return 200, b"{}"

    inspected = '[{"Name": "/nodeops-svc", "State": {"Running": true, "Status": "running"}, "Config": {"Labels": {}}}]'
    monkeypatch.setattr(observe, "execute", lambda *_a, **_k: CommandResult(0, inspected, ""))
    service = types.SimpleNamespace(name="svc", runtime="docker", nodes=[A, B])
    role = types.SimpleNamespace(port=6688, health="/health", hooks=DEFAULT_HOOKS)
    seen = observe.Observer(Fleet(), service, role).views()
    shown = [node_status(s, NOW) for s in seen.values()]
    assert [(n["role"], n["health"], n["unreachable"]) for n in shown] == [
        ("active", "passing", None),
        ("unknown", "unknown", CUT),
    ]
    validator = jsonschema.Draft202012Validator(SCHEMA["properties"]["nodes"]["items"])
    assert not [e for n in shown for e in validator.iter_errors(n)]
    assert list(validator.iter_errors({**shown[1], "unreachable": 1}))  # a string or null


HOT = Container("nodeops-svc", True, "running", "sha256:x", labels={"io.nodeops.hot": "true"})  # the holder's


@pytest.mark.parametrize(
    ("seen", "roles", "state"),
    [
        ((NodeView(A, HOT, True), NodeView(B, RUNNING, True)), ["active", "standby"], "healthy"),
        ((NodeView(A, RUNNING, True), NodeView(B, HOT, True)), ["standby", "active"], "healthy"),
        ((NodeView(A, HOT, True), NodeView(B, HOT, True)), ["active", "active"], "unsafe"),
        ((NodeView(A, RUNNING, True), NodeView(B, RUNNING, True)), ["standby", "standby"], "down"),
        ((NodeView(A, HOT, True), NodeView(B, EXITED, False)), ["active", "down"], "degraded"),
        ((NodeView(A, HOT, False, (RPC,)), NodeView(B, RUNNING, True)), ["active", "standby"], "degraded"),
        ((NodeView(A, HOT, True), NodeView(B, None, False, unreachable=CUT)), ["active", "unknown"], "degraded"),
        ((NodeView(A, RUNNING, True), NodeView(B, None, False, unreachable=CUT)), ["standby", "unknown"], "unknown"),
    ],
    ids=["holder-a", "holder-b", "two-holders", "no-holder", "standby-exited", "holder-unhealthy", "standby-unseen",
         "holder-unseen"],
)  # fmt: skip
def test_under_activation_keys_the_holder_is_the_active_though_every_node_answers(seen, roles, state):
    """Issue 15, keys: both nodes answer their health path; only the holder carries io.nodeops.hot=true. A healthy
    pair is the holder active and the other standby (it was read the lease way: two actives, unsafe)."""
    assert [node_role(s, "keys") for s in seen] == roles
    assert pair_state(list(seen), "keys") == state
    validator = jsonschema.Draft202012Validator(SCHEMA["properties"]["nodes"]["items"])
    assert not [e for s in seen for e in validator.iter_errors(node_status(s, NOW, "keys"))]


REFUSED = {"error": "cl: the database refused the login (password authentication failed)", "login_refused": True}


@pytest.mark.parametrize(
    ("b", "lease", "state"),
    [
        (ran("2.11.0", CFG1), None, "healthy"),
        (ran("2.11.0", CFG1), REFUSED, "degraded"),  # serves on a connection of before: no node would start now
        (ran("2.11.0", CFG2), REFUSED, "degraded"),  # mixed, and refused
        (ran("2.11.0", CFG1), {"error": "cl: cannot connect to the database"}, "healthy"),  # unreadable: not refused
    ],
    ids=["healthy", "refused", "mixed-refused", "unreachable-database"],
)
def test_a_lease_read_the_database_refuses_is_not_healthy(b, lease, state):
    """Issue 17: after a rotation killed once the database took the new password, status said "healthy" while its
    own lease read failed with "password authentication failed"."""
    seen = [NodeView(A, ran("2.11.0", CFG1), True), NodeView(B, b, False)]
    assert service_state(seen, "lease", lease, mixed_inputs(seen)) == state


PENDING, FENCED = Stages("v1", "v2"), Stages("v1", "v2", fenced=True)  # a rotation's, a forced promotion's


@pytest.mark.parametrize(
    ("found", "rotation"),
    [
        ({}, None),
        ({"db": PENDING}, {"interrupted": ["db"],
                           "finish": f"{program()} rotate-secrets --env prod --service svc --secret db"}),
        ({"db": PENDING, "api": PENDING},
         {"interrupted": ["db", "api"], "finish": f"{program()} rotate-secrets --env prod --service svc --secret all"}),
        ({"db": PENDING, "kes": FENCED}, {"interrupted": ["db", "kes"],
                                          "finish": f"{program()} promote-standby --env prod --service svc --force"}),
        (OperationFailed("prod.yaml: describe_secret of secret 'svc/db' failed: timeout"),
         {"error": "prod.yaml: describe_secret of secret 'svc/db' failed: timeout"}),
    ],
    ids=["none", "db", "two", "fenced", "unreadable"],
)  # fmt: skip
def test_an_interrupted_rotation_is_shown_with_the_command_that_finishes_it(monkeypatch, found, rotation):
    """Issue 17: status said nothing of a rotation a killed run left under way (its backend's pending marker)."""
    from nodeops import status as status_module

    def interrupted(_inventory, _job):
        if isinstance(found, Exception):
            raise found
        return found

    monkeypatch.setattr(status_module, "interrupted_rotations", interrupted)
    inventory = types.SimpleNamespace(environment="prod")
    job = types.SimpleNamespace(service=types.SimpleNamespace(name="svc"), role=types.SimpleNamespace(
        hooks=types.SimpleNamespace(chain_fence=None)))  # no chain fence: no fence beside the rotation  # fmt: skip
    assert rotation_status(inventory, job) == (rotation, None)
    seen = [NodeView(A, ran("2.11.0", CFG1), True), NodeView(B, ran("2.11.0", CFG1), False)]
    entry = {"event": "status", "service": "svc", "state": "degraded", "mixed": None, "lease": REFUSED,
             "rotation": rotation, "lock": None, "nodes": [node_status(s, NOW) for s in seen]}  # fmt: skip
    assert not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(entry))
