"""What the audit log's end entry says runs (nodeops.facts.now.now_record, standing_line, per_service's ``now``): built
from what was observed last, each node's labels, never from a message written before a later step."""

from __future__ import annotations

import json

import pytest

from nodeops.deploy import per_service
from nodeops.errors import Interrupted, OperationFailed
from nodeops.facts.container import Container
from nodeops.facts.now import now_record, standing_line
from nodeops.run.report import Reporter

DIGEST = "sha256:" + "d" * 64


def box(running: bool = True, config: str = "c" * 64, secrets: dict | None = None, digest: str = DIGEST,
        hot: bool = False) -> Container:  # fmt: skip
    labels = {"io.nodeops.version": "2.11.0", "io.nodeops.config": config, "io.nodeops.digest": digest,
              "io.nodeops.image": f"reg/cl:2.11.0@{DIGEST}",
              "io.nodeops.secrets": json.dumps(secrets if secrets is not None else {"db": "v2"}),
              **({"io.nodeops.hot": "true"} if hot else {})}  # fmt: skip
    return Container("nodeops-svc", running, "running" if running else "exited", "sha256:i", labels)


def held(state: str, config: str = "c" * 64, secrets: dict | None = None, **more) -> dict:
    return {"state": state, "version": "2.11.0", "image": f"reg/cl:2.11.0@{DIGEST}", "digest": DIGEST,
            "config": config, "secret_versions": secrets if secrets is not None else {"db": "v2"}, **more}  # fmt: skip


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        # the standby took over during an undo: b serves, a waits; the record says b, whatever a message said before
        ({"a": (box(), False, ()), "b": (box(), True, ())},
         {"active": "b", "nodes": {"a": held("waits"), "b": held("serves")}}),
        # each node's own labels: the config hash and secret versions each really started from
        ({"a": (box(config="e" * 64, secrets={"db": "v1"}), True, ()), "b": (box(), False, ())},
         {"active": "a", "nodes": {"a": held("serves", "e" * 64, {"db": "v1"}), "b": held("waits")}}),
        # an active answering 503 holds the lease: active, unhealthy, its failing checks named
        ({"a": (box(), False, ("EVM.RPC",)), "b": (box(), False, ())},
         {"active": "a", "nodes": {"a": held("unhealthy", failing=["EVM.RPC"]), "b": held("waits")}}),
        # nothing answers: no active; a stopped container, a node with none, a node cut off
        ({"a": (box(running=False), False, ()), "b": (None, False, ()), "c": None},
         {"active": None, "nodes": {"a": held("stopped"), "b": {"state": "empty"}, "c": {"state": "unreachable"}}}),
        # two answering: no single active is claimed
        ({"a": (box(), True, ()), "b": (box(), True, ())},
         {"active": None, "nodes": {"a": held("serves"), "b": held("serves")}}),
        # a container started without a digest label value ("none") or secrets label
        ({"a": (box(digest="none", secrets={}), True, ())},
         {"active": "a", "nodes": {"a": {**held("serves", secrets={}), "digest": None}}}),
    ],
)  # fmt: skip
def test_now_record_is_what_was_observed(seen, expected):
    assert now_record(seen) == expected


@pytest.mark.parametrize(
    ("seen", "active"),
    [
        # after a promotion moved the keys from a to b: both serve, b's container runs with the hot label
        ({"a": (box(), True, ()), "b": (box(hot=True), True, ())}, "b"),
        # the holder answers unhealthy: it holds the keys all the same
        ({"a": (box(), True, ()), "b": (box(hot=True), False, ("DB",))}, "b"),
        # a stopped container with the label holds nothing (its keys were in memory): no active
        ({"a": (box(), True, ()), "b": (box(hot=True, running=False), False, ())}, None),
        # two holders: no single active is claimed; a node cut off is not one
        ({"a": (box(hot=True), True, ()), "b": (box(hot=True), True, ())}, None),
        ({"a": None, "b": (box(), True, ())}, None),
    ],
    ids=["moved", "holder-unhealthy", "holder-stopped", "two-holders", "cut-off"],
)  # fmt: skip
def test_under_keys_the_active_is_the_one_holder_of_the_hot_keys(seen, active):
    """Activation keys: every node answers its health path, so the active is the node whose running container
    carries the hot label (NodeView.active_in), not the one that answers."""
    assert now_record(seen, "keys")["active"] == active


def test_the_standing_line_names_the_active_when_its_state_alone_does_not():
    seen = {"a": (box(), True, ()), "b": (box(hot=True), True, ())}
    assert standing_line(now_record(seen, "keys")) == ("now: a serves (2.11.0, config cccccccccccc), b serves as the "
                                                       "active (2.11.0, config cccccccccccc)")  # fmt: skip


@pytest.mark.parametrize(
    ("seen", "line"),
    [
        ({"a": (box(), False, ()), "b": (box(config="0123456789abcdef"), True, ())},
         "now: a waits (2.11.0, config cccccccccccc), b serves (2.11.0, config 0123456789ab)"),
        ({"a": None, "b": (None, False, ())}, "now: a unreachable, b empty"),
        ({"a": (box(), False, ("DB",)), "b": (box(running=False), False, ())},
         "now: a unhealthy (2.11.0, config cccccccccccc), b stopped (2.11.0, config cccccccccccc)"),
    ],
)  # fmt: skip
def test_standing_line_words_the_record(seen, line):
    assert standing_line(now_record(seen)) == line


RECORD = {"active": "b", "nodes": {"a": {"state": "waits"}, "b": {"state": "serves"}}}


def failing(error: Exception):
    def work() -> dict:
        raise error

    return work


@pytest.mark.parametrize(
    ("work", "expected"),
    [
        (lambda: {"service": "svc", "rotated": ["db"]}, {"service": "svc", "rotated": ["db"], "now": RECORD}),
        (failing(OperationFailed("svc: roll failed; a serves")), {"service": "svc", "now": RECORD}),
        (failing(Interrupted("svc: stopped")), {"service": "svc", "now": RECORD}),
    ],
)
def test_per_service_observes_what_runs_after_the_work_succeeded_or_not(work, expected):
    order = []

    def now() -> dict:
        order.append("observed")
        return RECORD

    result = per_service(Reporter.silent(), "svc", lambda: (order.append("worked"), work())[1], now)
    assert order == ["worked", "observed"]  # observed after the last step, never before it
    assert {k: v for k, v in result.items() if k != "error"} == expected


def test_per_service_without_now_adds_nothing():
    assert per_service(Reporter.silent(), "svc", lambda: {"service": "svc"}) == {"service": "svc"}


def hot() -> Container:
    c = box()
    return Container(c.name, True, c.status, c.image_id, {**c.labels, "io.nodeops.hot": "true"})


@pytest.mark.parametrize(
    ("activation", "seen", "active", "serving"),
    [
        ("keys", {"a": (hot(), True, ()), "b": (box(), True, ())}, "a", None),  # both answer: the holder is active
        ("keys", {"a": (box(), True, ()), "b": (box(), True, ())}, None, None),  # nobody holds the keys
        ("keys", {"a": (hot(), True, ()), "b": (hot(), True, ())}, None, None),  # two holders: not one active
        ("all", {"a": (box(), True, ()), "b": (box(), False, ()), "c": (box(), True, ())}, None, ["a", "c"]),
        ("lease", {"a": (box(), True, ()), "b": (box(), False, ())}, "a", None),
    ],
    ids=["keys-holder", "keys-none", "keys-two", "all-serving", "lease"],
)  # fmt: skip
def test_now_names_the_active_by_the_roles_model(activation, seen, active, serving):
    """Issue 15: the audit's ``now`` names the holder as active under keys (both nodes answer: it said none), and
    under all no active but every serving node (``serving``); lease as before (no ``serving``)."""
    record = now_record(seen, activation)
    assert record["active"] == active
    assert record.get("serving") == serving
    assert "serving" not in record or activation == "all"
