"""The end of a failed change (nodeops.run.confirm.WhatServes) as tables: (what each node answers and holds) -> the
message that says what serves now, its exit code, and what was done to make the pair whole.

The change is a fake of what WhatServes asks of it; it records each action as one line. The lab proves the same
ends on real hosts (tests/e2e/test_restore.py, test_deploy.py)."""

from __future__ import annotations

import types

import pytest

from nodeops import program
from nodeops.errors import EXIT_UNSAFE, OperationFailed
from nodeops.facts.container import Container
from nodeops.inventory import Node
from nodeops.run import confirm
from nodeops.run.confirm import WhatServes

A, B = Node("a", "10.0.0.1", 22, "active", (), "cl"), Node("b", "10.0.0.2", 22, "standby", (), "cl")
OURS = {"io.nodeops.config": "c0ffee"}  # the label of this run's config hash


def container(running: bool, labels=None) -> Container:
    return Container("nodeops-cl", running, "running" if running else "exited", "sha256:x", labels or {})


class Actions:
    def __init__(self, change, node):
        self.change, self.node = change, node

    def start(self):
        self.change.calls.append(f"start {self.node}")
        self.change.found[self.node] = container(True, OURS)  # as inspected after it


class FakeChange:
    """``health``: {node: (200, failing)}; ``found``: {node: Container | None | an error to raise}."""

    def __init__(self, health, found, stuck=False, forward=(), was_running=None, moved=()):
        self.answers, self.found = health, found
        self.stuck, self.forward = stuck, list(forward)
        self.was_running, self.moved = was_running or {}, set(moved)
        self.calls: list[str] = []
        self.service = types.SimpleNamespace(name="cl", nodes=(A, B), load_balancer="http://lb")
        self.job = types.SimpleNamespace(all_files=(".api",), rendered=types.SimpleNamespace(config_hash="c0ffee"))
        self.job.at = lambda _node: self.job  # one rendering for every node (Job.at)
        self.fleet = types.SimpleNamespace(inventory=types.SimpleNamespace(environment="prod"))
        self.name = "nodeops-cl"
        self.rerun = f"{program()} deploy --env prod --service cl"  # ServiceChange.rerun: a deploy's
        self.ran_on = {"a": "a's own inputs", "b": "b's own inputs"}
        self.waits = types.SimpleNamespace(service_answers=lambda: any(ok for ok, _ in self.answers.values()))

    def inspect(self, node, _name=None):
        found = self.found.get(node)
        if isinstance(found, Exception):
            raise found
        return found

    def health(self, node):
        return self.answers.get(node.name, (False, ()))

    def on(self, node):
        return Actions(self, node)

    def upload(self, node, job):
        self.calls.append(f"upload {node} {'ours' if job is self.job else job}")

    def settle(self, node, _job):
        self.calls.append(f"settle {node}")
        return "waits for the lease"

    def shred(self, node, names):
        self.calls.append(f"shred {node} {','.join(names)}")

    def say(self, _node, _message, **_data):
        pass


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(confirm, "LB_TIMEOUT", 0.05)
    monkeypatch.setattr(confirm, "SERVE_TIMEOUT", 0.05)
    monkeypatch.setattr(confirm, "POLL", 0.01)


DEPLOY = f"{program()} deploy --env prod --service cl"


@pytest.mark.parametrize(
    ("change", "unsafe", "message", "calls", "exit_code"),
    [
        (FakeChange({"a": (True, ())}, {"a": container(True), "b": container(True)}), False,
         "boom; a serves", ["shred a .api"], 1),
        (FakeChange({"a": (False, ("RPC",))}, {"a": container(True), "b": container(True)}), False,
         "boom; a is the active, unhealthy (failing: RPC)", ["shred a .api"], 1),
        # the standby plan was wrong (a failover since): refused, exit 4
        (FakeChange({"a": (True, ())}, {"a": container(True), "b": container(True)}), True,
         "boom; a serves", ["shred a .api"], EXIT_UNSAFE),
        # this run's own standby stopped: started again and checked
        (FakeChange({"a": (True, ())}, {"a": container(True), "b": container(False, OURS)}), False,
         "boom; a serves; b's container had stopped: started again as the standby, and it waits for the lease",
         ["shred a .api", "upload b ours", "start b", "settle b"], 1),
        # no standby left: said, with the command that brings one back
        (FakeChange({"a": (True, ())}, {"a": container(True), "b": None}), False,
         f"boom; a serves; b's container is gone, so the pair has no standby: {DEPLOY}", ["shred a .api"], 1),
        (FakeChange({"a": (True, ())}, {"a": container(True), "b": OperationFailed("b: connection lost")}), False,
         f"boom; a serves; b is unreachable, so the pair has no standby: once it is back, {DEPLOY}", ["shred a .api"],
         1),
        # nothing serves: SERVICE DOWN and the next commands
        (FakeChange({}, {"a": container(False), "b": container(False)}), False,
         f"boom; SERVICE DOWN: no node serves, the load balancer answers no 200; see {program()} status --env prod, "
         f"then {DEPLOY} (or promote-standby --force)", [], 1),
        # nothing serves, and the old active this run stopped (never replaced) is started again to take the lease
        (FakeChange({}, {"a": container(False), "b": container(False)}, was_running={"a": True}), False,
         "boom; no node served: a's container, stopped by this run, was started again on its own inputs, and it "
         "waits for the lease; SERVICE DOWN", ["upload a a's own inputs", "start a", "settle a"], 1),
        # ... but not a node this run replaced (its previous container is the undo's business)
        (FakeChange({}, {"a": container(False), "b": container(False)}, was_running={"a": True}, moved={"a"}), False,
         "boom; SERVICE DOWN", [], 1),
        # a change that cannot be undone: the fix forward ends the message; a node left stopped is exit 4
        (FakeChange({}, {"a": container(False), "b": container(False)}, stuck=True, forward=["fix forward: X"]),
         False, "boom; SERVICE DOWN: no node serves, the load balancer answers no 200; fix forward: X", [],
         EXIT_UNSAFE),
    ],
    ids=["serves", "unhealthy", "unsafe", "standby-restarted", "standby-gone", "standby-unreachable", "down",
         "down-old-active-restarted", "down-replaced-not-restarted", "stuck-forward"],
)  # fmt: skip
def test_a_failed_change_ends_saying_what_serves_now(change, unsafe, message, calls, exit_code):
    failure = WhatServes(change).failure("boom", unsafe)
    assert str(failure).startswith(message) if message.endswith("DOWN") else message in str(failure), str(failure)
    assert failure.exit_code == exit_code
    assert change.calls == calls
