"""A planned promotion run through the service runner (nodeops.run.runner.ServiceRunner.promote) as tables: (the plan
nodeops.activation.plan_promotion makes for a lease pair, what each step of the change does) -> the steps asked of
the change, in order, what was said, and how the run ends: the old active waiting again (or left stopped) and the
new one's lease files shredded, or the failure saying what serves now.

The change is a fake of the runner's collaborator (the Change protocol; nodeops.deploy.ServiceDeploy in a run), as in
test_executor_runner.py: it records what it is asked and fails where the table says. The commands each of those
sends are NodeActions' tables (test_executor_node.py, over tests/unit/fake_edge.py); the handover's own undoing is
test_executor_handover.py's; the lab's promote tests (tests/e2e/test_deploy.py, test_outage.py) prove the whole."""

from __future__ import annotations

import types

import pytest

from nodeops.activation import plan_promotion
from nodeops.errors import OperationFailed
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service
from nodeops.run.runner import ChangeFailed, ServiceRunner

A, B = Node("a", "10.0.0.1", 22, "active", (), "cl"), Node("b", "10.0.0.2", 22, "standby", (), "cl")
SERVICE = Service("cl", "r", "img:2", "docker", {}, {}, (A, B))
RUNNING = Container("nodeops-cl", True, "running", "sha256:x")
SEEN = {"a": NodeView(A, RUNNING, True), "b": NodeView(B, RUNNING, False)}
OWN = types.SimpleNamespace(name="a's own inputs", files_read={"start": ("x.toml",), "lease": (".api",)}.get)


class FakeChange:
    """Records each call as one line; ``fails``: {call line: the error it raises}."""

    def __init__(self, fails=None) -> None:
        self.fails = fails or {}
        self.calls: list[str] = []
        self.said: list[tuple[str, str]] = []
        self.service = SERVICE
        self.job = types.SimpleNamespace(files_read={"start": ("x.toml",), "lease": (".api", ".password")}.get)
        self.ran_on = {"a": OWN}
        self.waits = self  # the waits are asked of the same fake

    def _do(self, call: str):
        self.calls.append(call)
        if call in self.fails:
            raise self.fails[call]

    def say(self, node, message, **_data):
        self.said.append((node, message))

    def handover(self, old, new, restore_standby=True, shred=True):
        self._do(f"handover {old.name} {new.name} restore_standby={restore_standby} shred={shred}")
        return 0.8

    def start_again(self, node, again):
        self._do(f"start_again {node} on {again.name}")
        return "on its own inputs"

    def await_waiting(self, node, _job=None):
        self._do(f"await-waiting {node.name}")
        return "b's lease"

    def shred(self, node, names):
        self._do(f"shred {node} {','.join(names)}")

    def confirm(self, what, unsafe=False):  # noqa: ARG002 (the runner names it)
        self.calls.append("confirm")
        return ChangeFailed(f"{what}; b serves")


HANDOVER = "handover a b restore_standby=False shred=False"
PROMOTED = [HANDOVER, "start_again a on a's own inputs", "await-waiting a", "shred a x.toml", "shred b .api,.password"]
SAID = [
    ("", "promote b: stop a gracefully, b takes the lease"),
    ("a", "restarted as the standby, waiting for the lease"),
]


@pytest.mark.parametrize(
    ("keep_old_stopped", "calls", "said"),
    [
        (False, PROMOTED, SAID),
        (True, [HANDOVER, "shred b .api,.password"],
         [SAID[0], ("a", "left stopped (--keep-old-stopped): the pair has no standby")]),
    ],
    ids=["old-active-waits-again", "keep-old-stopped"],
)  # fmt: skip
def test_a_promotion_runs_its_plan_in_order(keep_old_stopped, calls, said):
    change = FakeChange()
    plan = plan_promotion("lease", SERVICE, SEEN, "b", keep_old_stopped=keep_old_stopped)
    assert ServiceRunner(change).promote(plan) == 0.8  # the handover's outage, as measured
    assert change.calls == calls
    assert change.said == said


CUT_OFF = OperationFailed("cl a: connection lost: EOF")
AFTER = "; after b took over from a; b serves"


@pytest.mark.parametrize(
    ("fails", "calls", "message"),
    [
        # the handover failed and undid itself (its own confirm, PlannedHandover.undo): nothing after it
        ({HANDOVER: ChangeFailed("cl b: not serving after 120s; a was started again; b serves")}, [HANDOVER],
         "cl b: not serving after 120s; a was started again; b serves"),
        # the old active cannot be started again: what serves now, said; the new active is left serving
        ({"start_again a on a's own inputs": OperationFailed("cl a: `docker start` failed: boom")}, PROMOTED[:2] +
         ["confirm"], "cl a: `docker start` failed: boom" + AFTER),
        # the old active never waits (its container exited): said; its files were not shredded, nor b's
        ({"await-waiting a": OperationFailed("cl a: not a waiting standby (container exited)")}, PROMOTED[:3] +
         ["confirm"], "cl a: not a waiting standby (container exited)" + AFTER),
        # the old active cut off right after it waits: said
        ({"shred a x.toml": CUT_OFF}, PROMOTED[:4] + ["confirm"], "cl a: connection lost: EOF" + AFTER),
        # the new active cut off before its lease files are shredded: said
        ({"shred b .api,.password": OperationFailed("cl b: connection lost")}, [*PROMOTED, "confirm"],
         "cl b: connection lost" + AFTER),
    ],
    ids=["handover-undone", "restart-fails", "never-waits", "old-active-cut-off", "new-active-cut-off"],
)  # fmt: skip
def test_a_failure_after_the_handover_says_what_serves_now(fails, calls, message):
    change = FakeChange(fails)
    plan = plan_promotion("lease", SERVICE, SEEN, "b")
    with pytest.raises(ChangeFailed) as err:
        ServiceRunner(change).promote(plan)
    assert str(err.value) == message
    assert change.calls == calls
    assert err.value.__cause__ is None
