"""A planned handover (nodeops.run.handover.PlannedHandover) as tables: (what each action and wait does) -> the
actions asked, in order, and how it ends: taken over and measured, or undone and said.

The change is a fake of what the handover asks of it (node actions, waits, undoings); it records each call as one
line and fails where the table says. Those actions' commands are NodeActions' tables; the lab proves the whole."""

from __future__ import annotations

import types

import pytest

from nodeops.errors import OperationFailed
from nodeops.facts.container import Container
from nodeops.inventory import Node
from nodeops.run.handover import PlannedHandover
from nodeops.run.runner import ChangeFailed

A, B = Node("a", "10.0.0.1", 22, "active", (), "cl"), Node("b", "10.0.0.2", 22, "standby", (), "cl")
OWN = types.SimpleNamespace(all_files=(".api", "x.toml"), name="own inputs")


class Actions:
    def __init__(self, change: FakeChange, node: str) -> None:
        self.change, self.node = change, node

    def stop(self, timeout: int) -> None:
        self.change.do(f"stop {self.node} {timeout}")

    def start(self) -> None:
        self.change.do(f"start {self.node}")


class FakeChange:
    """Records each call as one line; ``fails``: {call line: the error it raises}; ``exit_code``: a's when stopped."""

    def __init__(self, fails=None, exit_code=0, again=OWN) -> None:
        self.fails, self.exit_code, self.again = fails or {}, exit_code, again
        self.calls: list[str] = []
        self.said: list[str] = []
        self.job = types.SimpleNamespace(role=types.SimpleNamespace(stop_timeout=10.0), files_read=lambda _w: (".api",))
        self.ran_on = {"a": OWN, "b": OWN}
        self.waits = self

    def do(self, call: str):
        self.calls.append(call)
        if call in self.fails:
            raise self.fails[call]

    def on(self, node):
        return Actions(self, node)

    def keep_restorable(self, nodes):
        self.calls.append(f"keep {' '.join(nodes)}")

    def health(self, node):
        return (node.name == "a", ())

    def serving(self, node):
        return node.name == "b"

    def service_answers(self):
        return True

    def await_serving(self, node, timeout=None, accept=()):  # noqa: ARG002 (the handover names it)
        self.do(f"await-serving {node.name}" + ("" if timeout is None else f" {timeout:g}s"))
        return 1.0

    def await_service(self):
        self.do("await-service")

    def inspect(self, node, _name=None):
        return Container("nodeops-cl", False, "exited", "sha256:x", exit_code=self.exit_code) if node == "a" else None

    def say(self, _node, message, **_data):
        self.said.append(message)

    def shred(self, node, names):
        self.calls.append(f"shred {node} {','.join(names)}")

    def confirm(self, what, unsafe=False):  # noqa: ARG002 (the runner names it)
        self.calls.append("confirm")
        return ChangeFailed(f"{what}; a serves")

    def previous_on(self, node, _container):
        self.calls.append(f"previous_on {node}")
        return self.again

    def start_again(self, node, _again):
        self.do(f"start_again {node}")
        return "on its own inputs"

    def settle(self, name, _job):
        self.do(f"settle {name}")  # its shred fails on a node cut off (Restore.settle)
        return "waits for the lease"

    def restore(self, node, why):
        self.calls.append(f"restore {node}")
        return f"{why}; {node} put back"

    def upload(self, node, job):
        self.do(f"upload {node} {job.name}")


TOOK = ["keep a b", "stop a 10", "await-serving b 120s", "await-service", "shred b .api"]
CUT_OFF = OperationFailed("cl a: connection lost: EOF")
NEVER = OperationFailed("cl b: not serving /health after 120s: container exited (exit 1); last log line: x")
UNDO = ["keep a b", "stop a 10", "await-serving b 120s", "stop b 10", "previous_on a"]


@pytest.mark.parametrize(
    ("fails", "again", "restore_standby", "calls", "message"),
    [
        # the active's host cut off: it cannot be stopped, so nothing else is done
        ({"stop a 10": OperationFailed("a: connection lost: EOF")}, OWN, True, ["keep a b", "stop a 10", "confirm"],
         "a: connection lost: EOF; stopping the active a failed, the handover did not go on; a serves"),
        # the standby never serves (deploy): the old active back on its own inputs, the standby put back
        ({"await-serving b 120s": NEVER}, OWN, True,
         UNDO + ["start_again a", "await-serving a", "shred a .api,x.toml", "restore b", "confirm"],
         "; the old active a was started again on its own inputs; b put back; a serves"),
        # the same in a promotion: the standby waits again on its own inputs
        ({"await-serving b 120s": NEVER}, OWN, False,
         UNDO + ["start_again a", "await-serving a", "shred a .api,x.toml", "upload b own inputs", "start b",
                 "settle b", "confirm"],
         "; b was started again as the standby, and it waits for the lease; a serves"),
        # the undo's own failure: the old active does not come back; said, and the standby still put back
        ({"await-serving b 120s": NEVER, "start_again a": OperationFailed("cl a: `docker start` failed: boom")}, OWN,
         True, UNDO + ["start_again a", "settle a", "restore b", "confirm"],
         "; starting the old active a again failed too: cl a: `docker start` failed: boom; b put back"),
        # the old active cut off during the undo: its start fails and so does the shred after it (settle); said, and
        # the standby still put back, the run ending with what serves
        ({"await-serving b 120s": NEVER, "start_again a": CUT_OFF, "settle a": CUT_OFF}, OWN, True,
         UNDO + ["start_again a", "settle a", "restore b", "confirm"],
         "; starting the old active a again failed too: cl a: connection lost: EOF; shredding a's files failed too: "
         "cl a: connection lost: EOF; b put back; a serves"),
        # the same undo in a promotion, b cut off: its start as the standby fails, said; a serves
        ({"await-serving b 120s": NEVER, "start b": OperationFailed("cl b: connection lost: EOF")}, OWN, False,
         UNDO + ["start_again a", "await-serving a", "shred a .api,x.toml", "upload b own inputs", "start b",
                 "confirm"],
         "; the old active a was started again on its own inputs; starting b again as the standby failed: cl b: "
         "connection lost: EOF; a serves"),
        # the standby migrated the database past the old image: the old active is left stopped, said
        ({"await-serving b 120s": NEVER}, None, True, UNDO + ["restore b", "confirm"],
         "; the old active a was not started again (it could not run on the database); b put back"),
        # the standby cannot even be stopped (cut off): said, and the old active still comes back
        ({"await-serving b 120s": NEVER, "stop b 10": OperationFailed("b: connection lost")}, OWN, True,
         UNDO + ["start_again a", "await-serving a", "shred a .api,x.toml", "restore b", "confirm"],
         "; stopping b failed: b: connection lost; the old active a was started again"),
        # the new active serves but the load balancer never passes it: what serves now, no undo
        ({"await-service": OperationFailed("cl: http://lb does not answer 200 within 15s")}, OWN, True,
         ["keep a b", "stop a 10", "await-serving b 120s", "await-service", "confirm"],
         "cl: http://lb does not answer 200 within 15s; a serves"),
    ],
    ids=["active-cut-off", "never-serves-deploy", "never-serves-promote", "undo-fails", "undo-cut-off",
         "promote-undo-fails", "database-moved", "standby-cut-off", "load-balancer-silent"],
)  # fmt: skip
def test_a_handover_that_fails_is_undone_and_said(fails, again, restore_standby, calls, message):
    change = FakeChange(fails, again=again)
    with pytest.raises(ChangeFailed) as err:
        PlannedHandover(change).run(A, B, restore_standby=restore_standby)
    assert message in str(err.value)
    assert change.calls == calls


@pytest.mark.parametrize(
    ("exit_code", "shred", "calls", "said"),
    [
        (0, True, TOOK, "took over from a: outage 0.00s ("),
        (137, True, TOOK, "a exited 137, not a clean stop: it may have left its lease to expire"),
        (0, False, TOOK[:-1], "took over from a"),  # promote shreds once the old active waits again
    ],
    ids=["clean", "killed", "caller-shreds"],
)
def test_a_handover_measures_the_gap_and_says_how_the_active_stopped(exit_code, shred, calls, said):
    change = FakeChange(exit_code=exit_code)
    outage = PlannedHandover(change).run(A, B, shred=shred)
    assert outage == 0.0  # the fake service always answers
    assert change.calls == calls
    assert said in change.said[-1]
