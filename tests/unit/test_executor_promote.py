"""A planned promotion run through the service runner (nodeops.run.runner.ServiceRunner.promote) as tables: (the plan
Model.plan_promotion makes for a lease pair, what each step of the change does) -> the steps asked of
the change, in order, what was said, and how the run ends: the old active waiting again (or left stopped) and the
new one's lease files shredded, or the failure saying what serves now.

First the change is a fake of the runner's collaborator (the Change protocol; nodeops.deploy.ServiceDeploy in a
run), as in test_executor_runner.py: it records what it is asked and fails where the table says. Then the change is
a real ServiceDeploy whose node actions send their commands to a fake of the one edge call (tests/unit/fake_edge.py):
the lines sent after the handover, in order, for each failure. The handover's own undoing is
test_executor_handover.py's; the lab's promote tests (tests/e2e/test_deploy.py, test_outage.py) prove the whole."""

from __future__ import annotations

import types

import pytest

from nodeops.activation import MODELS
from nodeops.deploy import ServiceDeploy
from nodeops.errors import OperationFailed
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service
from nodeops.render.files import RenderedFile
from nodeops.run.report import Redactor
from nodeops.run.runner import ChangeFailed, ServiceRunner
from nodeops.secrets import Secret
from tests.unit.fake_edge import FakeEdge

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
    plan = MODELS["lease"].plan_promotion(SERVICE, SEEN, "b", keep_old_stopped=keep_old_stopped)
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
    plan = MODELS["lease"].plan_promotion(SERVICE, SEEN, "b")
    with pytest.raises(ChangeFailed) as err:
        ServiceRunner(change).promote(plan)
    assert str(err.value) == message
    assert change.calls == calls
    assert err.value.__cause__ is None


# -- the same steps on a real change (ServiceDeploy), its node actions' commands through a fake of the one edge call --
SENTINEL = "s3ntinel-Pa55word-0123456789"
CL_A, CL_B = Node("cl1-a", "10.0.0.1", 22, "active", (), "cl1"), Node("cl1-b", "10.0.0.2", 22, "standby", (), "cl1")
PREPARE = (
    "mkdir -p -m 0755 /run/nodeops && if [ -d /run/nodeops/cl1 ]; then find /run/nodeops/cl1 -type f -exec "
    "shred -u -- {} +; fi && rm -rf -- /run/nodeops/cl1 && install -d -m 0500 -o 14933 -g 14933 /run/nodeops/cl1"
)
WRITE = (
    "install -m 0400 -o 14933 -g 14933 /dev/null /run/nodeops/cl1/secrets.toml && cat > /run/nodeops/cl1/secrets.toml"
)


def shredded(*names: str) -> str:
    paths = " ".join(f"/run/nodeops/cl1/{n}" for n in names)
    return f'for f in {paths}; do if [ -e "$f" ]; then shred -u -- "$f"; fi; done'


class Promoting(ServiceDeploy):
    """A ServiceDeploy whose commands go to a fake edge (``rules``); the handover (PlannedHandover's tables), the
    waits (Awaits) and what serves after a failure (WhatServes) are recorded stand-ins: the steps after the
    handover are the real ones (start_again, upload, start, shred)."""

    def __init__(self, rules, waits_fail: Exception | None = None):  # noqa: D107 (no super(): no host is touched)
        self.edge = FakeEdge(rules)
        self.said, self.calls, self.waits_fail = [], [], waits_fail
        self.service = types.SimpleNamespace(name="cl1", nodes=(CL_A, CL_B), secret_files="shred")
        self.runtime, self.name = "docker", "nodeops-cl1"
        self.conns = {"cl1-a": "link to cl1-a", "cl1-b": "link to cl1-b"}
        self.fleet = types.SimpleNamespace(settings=types.SimpleNamespace(command_timeout=30))
        read = {"start": ("secrets.toml",), "lease": (".api",)}.get
        self.job = types.SimpleNamespace(redact=Redactor([Secret(SENTINEL)]), files_read=read)
        own = types.SimpleNamespace(
            role=types.SimpleNamespace(user=14933),
            files_read=read,
            rendered=types.SimpleNamespace(
                files={
                    "secrets.toml": RenderedFile(
                        "secrets.toml", f"[Password]\nKeystore = '{SENTINEL}'\n".encode(), True
                    )
                }
            ),
        )
        own.at = lambda _node: own  # one rendering for every node (Job.at)
        self.ran_on = {"cl1-a": own}

    def say(self, node, message, **_data):
        self.said.append((node, message))

    def handover(self, old, new, restore_standby=True, shred=True):
        self.calls.append(f"handover {old.name} {new.name} restore_standby={restore_standby} shred={shred}")
        return 0.8

    @property
    def waits(self):
        return self

    def await_waiting(self, node, _job=None):
        self.calls.append(f"await-waiting {node.name}")
        if self.waits_fail is not None:
            raise self.waits_fail
        return "cl1-b's lease"

    def confirm(self, what, unsafe=False):  # noqa: ARG002 (the runner names it)
        return ChangeFailed(f"{what}; now: cl1-b serves")


CL_SEEN = {"cl1-a": NodeView(CL_A, RUNNING, True), "cl1-b": NodeView(CL_B, RUNNING, False)}
PLAN = MODELS["lease"].plan_promotion(Service("cl1", "r", "img:2", "docker", {}, {}, (CL_A, CL_B)), CL_SEEN, "cl1-b")
SENT = [PREPARE, WRITE, "docker start nodeops-cl1", shredded("secrets.toml"), shredded(".api")]
AFTER_CL = "; after cl1-b took over from cl1-a; now: cl1-b serves"


@pytest.mark.parametrize(
    ("rules", "waits_fail", "sent", "error"),
    [
        ([], None, SENT, None),
        # the old active's container does not start: said, with what serves; nothing shredded
        ([(r"^docker start", (1, "", "Error: container exited: boom"))], None, SENT[:3],
         "cl1 cl1-a: `docker start` failed: Error: container exited: boom" + AFTER_CL),
        # its host cut off while its files go up: said; the rest never sent
        ([(r"^install -m 0400", OperationFailed("cl1-a: connection lost: EOF"))], None, SENT[:2],
         "cl1-a: connection lost: EOF" + AFTER_CL),
        # started, but never waits for the lease: its start files are not shredded (it may not have read them)
        ([], OperationFailed("cl1 cl1-a: not a waiting standby (container exited)"), SENT[:3],
         "cl1 cl1-a: not a waiting standby (container exited)" + AFTER_CL),
        # the new active's shred does not finish (cut off): said
        ([(r"\.api; do", OperationFailed("cl1-b: connection lost"))], None, SENT, "cl1-b: connection lost" + AFTER_CL),
    ],
    ids=["promoted", "start-fails", "upload-cut-off", "never-waits", "new-active-cut-off"],
)  # fmt: skip
def test_the_promotion_steps_send_these_commands(rules, waits_fail, sent, error):
    change = Promoting(rules, waits_fail)
    if error is None:
        assert ServiceRunner(change).promote(PLAN) == 0.8
        assert change.said == [
            ("", "promote cl1-b: stop cl1-a gracefully, cl1-b takes the lease"),
            ("cl1-a", "shredded secrets.toml"),
            ("cl1-a", "restarted as the standby, waiting for the lease"),
            ("cl1-b", "shredded .api"),
        ]
    else:
        with pytest.raises(ChangeFailed) as err:
            ServiceRunner(change).promote(PLAN)
        assert str(err.value) == error
    assert change.edge.commands == sent
    assert change.calls[0] == "handover cl1-a cl1-b restore_standby=False shred=False"
    assert all(SENTINEL not in line for line in change.edge.commands)  # a secret only ever on stdin
    assert [s.stdin for s in change.edge.sent if s.stdin] == ([f"[Password]\nKeystore = '{SENTINEL}'\n".encode()]
                                                             if len(sent) > 1 else [])  # fmt: skip


def test_a_plan_of_another_model_is_no_lease_promotion_and_touches_nothing():
    hot = Container("nodeops-cl", True, "running", "sha256:x", {"io.nodeops.hot": "true"})
    keys = MODELS["keys"].plan_promotion(SERVICE, {"a": NodeView(A, hot, True), "b": NodeView(B, RUNNING, True)})
    change = FakeChange()
    with pytest.raises(ValueError, match=r"cl: `replace a \(fence: restarted without the hot keys\)` is no step"):
        ServiceRunner(change).promote(keys)
    assert change.calls == []
