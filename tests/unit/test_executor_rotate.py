"""A database password rotation's roll (nodeops.rotate.roll.PairRoll.roll) run through the service runner, as tables:
(what the pair shows, what each step of the change does, when a stop comes) -> the steps and undoings asked of the
change, in order, what was said, and how the roll ends.

The change is test_executor_runner.py's fake of the runner's collaborator (the Change protocol), with what a roll
asks of its deploy besides (the containers' states, the change's start, verify, the drop of the previous
containers); the runner itself is the real one (ServiceDeploy.execute -> ServiceRunner.apply). The commands are
NodeActions' tables (test_executor_node.py, over tests/unit/fake_edge.py); tests/e2e/test_rotate.py proves the
whole on real nodes. The undo's restore is the real Restore.restore around the fake's put_back (failing where the table
says), and the last table runs the rotation itself (ServiceRotation) over the same change."""

from __future__ import annotations

import dataclasses
import types

import pytest

from nodeops.errors import Interrupted, OperationFailed
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.plan import Desired
from nodeops.rotate.roll import PairRoll
from nodeops.run.runner import ChangeFailed, ServiceRunner
from tests.unit.test_executor_runner import ROLLED, A, B
from tests.unit.test_executor_runner import FakeChange as RunnerChange

WANT = Desired("img:2", "sha256:x", "h-new")  # the new secret version's configuration hash
ON = Container("nodeops-cl", True, "running", "sha256:x", labels={"io.nodeops.config": "h-old"})


class Rolling(RunnerChange):
    """The runner's fake change, plus a roll's own asks of its deploy, each recorded as one line."""

    def __init__(self, fails=None, stop_after=None, active="a", cut=()) -> None:
        super().__init__(fails, stop_after=stop_after)
        self.active, self.cut = active, cut  # cut: nodes whose inspect fails (their connection cut off)
        self.lines: list[str] = []  # what was said, in order

    def states(self):
        self.calls.append("states")
        if self.cut:  # ServiceChange.states inspects each node over its connection
            raise OperationFailed(f"cl {self.cut[0]}: connection lost: EOF")
        return {n.name: NodeView(n, ON, n.name == self.active) for n in (A, B)}

    def new_change(self):
        self.calls.append("new_change")

    def execute(self, plan):
        ServiceRunner(self).apply(plan)  # as ServiceDeploy.execute

    def verify(self, tolerated=()):
        self._do(f"verify tolerating {','.join(tolerated) or 'nothing'}")

    def drop_previous(self):
        self.calls.append("drop_previous")

    def say(self, node, message, **data):
        super().say(node, message, **data)
        self.lines.append(message)


def pair(change: Rolling, tolerated=()) -> PairRoll:
    """A PairRoll over ``change`` as its preflight leaves it (observe: WANT's image, ``tolerated`` failing checks)."""
    roll = PairRoll.__new__(PairRoll)  # no ServiceDeploy: the fake stands for it
    roll.deploy, roll.desired, roll.tolerated, roll.touched = change, WANT, tuple(tolerated), False
    return roll


JOB = types.SimpleNamespace(  # the job on the new secret version: what the roll hands the change
    service=types.SimpleNamespace(name="cl", nodes=(A, B)),
    rendered=types.SimpleNamespace(config_hash="h-new"),
    role=types.SimpleNamespace(health="/health"),
    all_files=(".api", "x.toml"),
    files_read={"start": ("x.toml",), "lease": (".api",)}.get,
)
ROLL = "roll: forced rolling replace onto the new secret version; "
SAID = (ROLL + "replace b (standby first); await-waiting b; hand over from a to b (planned failover); "
        "replace a (old active, now the standby); await-waiting a")  # fmt: skip
SAID_FROM_B = (ROLL + "replace a (standby first); await-waiting a; hand over from b to a (planned failover); "
               "replace b (old active, now the standby); await-waiting b")  # fmt: skip


@pytest.mark.parametrize(
    ("active", "tolerated", "calls", "first"),
    [
        ("a", (), ["states", "new_change", *ROLLED, "verify tolerating nothing", "drop_previous"], SAID),
        # the other way round: b is the active, a is rolled first
        ("b", ("RPC",), ["states", "new_change", "keep a b", "replace a", "await-waiting a", "shred a x.toml",
                         "handover b a", "replace b", "await-waiting b", "shred b x.toml", "verify tolerating RPC",
                         "drop_previous"], SAID_FROM_B),
    ],
    ids=["from-a", "from-b-unhealthy"],
)  # fmt: skip
def test_a_roll_replaces_both_nodes_standby_first_through_the_runner(active, tolerated, calls, first):
    change = Rolling(active=active)
    roll = pair(change, tolerated)
    roll.roll(JOB)
    assert change.calls == calls
    assert change.lines[0] == first
    assert change.lines[-1] == "roll: both nodes run on the new secret"
    assert roll.touched and change.job is JOB and change.outages == [0.5]


NEW_STANDBY = OperationFailed("cl b: `docker run` failed: boom")
CUT_A, CUT_B = OperationFailed("cl a: connection lost: EOF"), OperationFailed("cl b: connection lost: EOF")


@pytest.mark.parametrize(
    ("fails", "calls", "error"),
    [
        # the new standby does not start: put back, nothing else touched, the roll ends saying what serves
        ({"replace b": NEW_STANDBY}, ["states", "new_change", "keep b a", "replace b", "restore b", "confirm"],
         "cl b: `docker run` failed: boom; b put back; a serves"),
        # the new standby never waits: put back
        ({"await-waiting b": OperationFailed("cl b: not a waiting standby (container exited)")},
         ["states", "new_change", "keep b a", "replace b", "await-waiting b", "restore b", "confirm"],
         "container exited"),
        # the handover undid itself: nothing after it
        ({"handover a b": ChangeFailed("cl b: not serving; the old active a was started again")},
         ["states", "new_change", *ROLLED[:5]], "a was started again"),
        # the old active's replace fails after the handover: put back, what serves said
        ({"replace a": OperationFailed("cl a: `docker run` failed")},
         ["states", "new_change", *ROLLED[:6], "restore a", "confirm"], "`docker run` failed; a put back"),
        # both run the new secret but verify fails: the roll fails without dropping the previous containers
        ({"verify tolerating nothing": OperationFailed("cl: verify failed: b not healthy")},
         ["states", "new_change", *ROLLED, "verify tolerating nothing"], "verify failed"),
        # the undo fails too (b cut off as its previous container went back): said, nothing runs after it
        ({"await-waiting b": OperationFailed("cl b: not a waiting standby (container exited)"), "restore b": CUT_B},
         ["states", "new_change", "keep b a", "replace b", "await-waiting b", "restore b", "confirm"],
         "container exited\\); putting b's previous container back failed too: cl b: connection lost: EOF; a serves"),
        # the old active unreachable after the handover: its replace fails, and so does putting it back
        ({"replace a": CUT_A, "restore a": CUT_A}, ["states", "new_change", *ROLLED[:6], "restore a", "confirm"],
         "cl a: connection lost: EOF; putting a's previous container back failed too: cl a: connection lost: EOF"),
    ],
    ids=["standby-start-fails", "standby-never-waits", "handover-undone", "old-active-fails", "verify-fails",
         "restore-fails", "old-active-unreachable"],
)  # fmt: skip
def test_a_failed_roll_is_undone_by_the_runner_and_marks_the_pair_touched(fails, calls, error):
    change = Rolling(fails)
    roll = pair(change)
    with pytest.raises(OperationFailed, match=error):
        roll.roll(JOB)
    assert change.calls == calls
    assert roll.touched  # the rotation's undo rolls the pair back (ServiceRotation.undo)
    assert change.lines[-1] != "roll: both nodes run on the new secret"


def test_a_node_unreachable_before_the_roll_fails_it_with_nothing_touched():
    """The containers' states are read again at the roll's start (the preflight's observation is reused): a node cut
    off since fails the roll there, before any node is replaced, so the rotation's undo has no pair to roll back."""
    change = Rolling(cut=("b",))
    roll = pair(change)
    with pytest.raises(OperationFailed, match="cl b: connection lost: EOF"):
        roll.roll(JOB)
    assert change.calls == ["states"] and not roll.touched and change.lines == []


def test_a_stop_during_a_roll_ends_at_the_runners_safe_point():
    change = Rolling(stop_after=2)  # said: replace b, await-waiting b; the stop comes before the handover
    with pytest.raises(Interrupted, match="undoing this run's change; b put back"):
        pair(change).roll(JOB)
    assert change.calls == ["states", "new_change", *ROLLED[:4], "restore b"]


def test_a_rotation_whose_roll_and_its_undo_fail_says_what_was_left_and_what_to_do(tmp_path, monkeypatch):
    """End to end through the real ServiceRotation, PairRoll.roll and runner: b cut off, so the roll fails at its
    replace and putting b back fails too; the rotation's undo sets the role's password back, and its roll back meets
    the same: the message says what failed, what was undone, what was not, what runs, and the command that
    completes the rotation; OperationFailed (exit 1), AWSPENDING kept."""
    from nodeops import program
    from tests.unit.test_rotate import CHAINLINK, FakeSecretsManager, fake_rotation, select

    client = FakeSecretsManager()
    mod, rotation, _ = fake_rotation(tmp_path, monkeypatch, client)
    change = Rolling({"replace b": CUT_B, "restore b": CUT_B})
    change.standing = lambda: "now: a serves, b unreachable"  # as WhatServes would see it (its own tables)
    rotation.pair, rotation.deploy = pair(change), change
    old = types.SimpleNamespace(config_hash="h-old")  # only the config hash is read before the failure
    rotation.job = dataclasses.replace(rotation.job, service=dataclasses.replace(rotation.job.service, nodes=(A, B)),
                                       rendered=old)  # fmt: skip
    monkeypatch.setattr(mod.PostgresPassword, "alter", lambda _self, _password: None)
    monkeypatch.setattr(mod.PostgresPassword, "test", lambda _self: None)
    new = types.SimpleNamespace(config_hash="h-new")
    monkeypatch.setattr(mod.service, "job_with", lambda job, _values: dataclasses.replace(job, rendered=new))
    with pytest.raises(OperationFailed) as err:
        rotation.run(select(CHAINLINK.rotation, "db", "role"))
    assert type(err.value) is OperationFailed and err.value.exit_code == 1
    failed = "cl b: connection lost: EOF; putting b's previous container back failed too: cl b: connection lost: EOF"
    assert str(err.value) == (
        f"cl: roll failed: {failed}; a serves; changed: the password of the database role <db_user>, the pair's "
        "containers (the roll began); undone: the database role <db_user> is back on its current password; "
        f"AWSCURRENT unchanged; NOT undone: rolling the pair back: {failed}; a serves; AWSPENDING kept where the "
        f"system may hold it: run {program()} rotate-secrets again to complete that rotation; after the undo, now: "
        "a serves, b unreachable"
    )
    undo_roll = ["states", "new_change", "keep b a", "replace b", "restore b", "confirm"]
    assert change.calls == undo_roll + undo_roll  # the roll, then the undo's roll back: nothing after either undo
    assert "AWSPENDING" in [s for st in client.staged("cl/DBSecret").values() for s in st]
