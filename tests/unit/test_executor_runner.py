"""The service runner (nodeops.run.runner.ServiceRunner) as tables: (plan, what each step of the change does, when a
stop comes) -> the steps and undoings asked of the change, in order, and how the run ends.

The change is a fake of the runner's collaborator (the Change protocol, nodeops.deploy.ServiceDeploy in a run): it
records what it is asked and fails where the table says. What each of those does on a node is NodeActions' (their
own tables) and, end to end on real hosts, the lab's."""

from __future__ import annotations

import types

import pytest

from nodeops import program
from nodeops.activation import MODELS
from nodeops.errors import EXIT_FAILED, EXIT_UNSAFE, Interrupted, OperationFailed
from nodeops.facts.container import Container
from nodeops.inventory import Node
from nodeops.plan import SINGLE, ServicePlan, Step
from nodeops.run import confirm as confirm_module
from nodeops.run.confirm import WhatServes
from nodeops.run.restore import Restore
from nodeops.run.runner import ChangeFailed, ChangeRefused, ServiceRunner

A, B = Node("a", "10.0.0.1", 22, "active", (), "cl"), Node("b", "10.0.0.2", 22, "standby", (), "cl")
ROLLING = ServicePlan("cl", (Step("replace", "b"), Step("await-waiting", "b"), Step("handover", "a", to="b"),
                             Step("replace", "a"), Step("await-waiting", "a")), "rolling")  # fmt: skip
FRESH = ServicePlan("cl", (Step("replace", "a"), Step("await-serving", "a"), Step("replace", "b"),
                           Step("await-waiting", "b")), "fresh")  # fmt: skip
SINGLE_NODE = ServicePlan("cl", (Step("replace", "a", SINGLE), Step("await-serving", "a")), "single")


class Stop:
    """The run's stop requests: set once ``after`` steps were said (None: never)."""

    def __init__(self, change: FakeChange, after: int | None) -> None:
        self.change, self.after = change, after

    def is_set(self) -> bool:
        return self.after is not None and self.change.said_steps >= self.after


class FakeUndo(Restore):
    """The real Restore.restore (an undo whose own failure is said in the message, never raised) around the fake's
    stand-in for the rollback it wraps (``put_back``: recorded as "restore NODE", failing where the table says)."""

    def rollback(self, node: str, why: str) -> str:
        return self.change.put_back(node, why)


class FakeChange:
    """Records each call as one line; ``fails``: {call line: the error it raises}; ``health``: {node: (answers, the
    call line after which it answers so: None for from the start)}; other nodes answer nothing."""

    def __init__(self, fails=None, health=None, stop_after=None) -> None:
        self.fails, self.answers = fails or {}, health or {}
        self.calls: list[str] = []
        self.said_steps = 0
        self.service = types.SimpleNamespace(name="cl", nodes=(A, B))
        self.name = "nodeops-cl"
        read = {"start": ("x.toml",), "lease": (".api",)}
        self.job = types.SimpleNamespace(role=types.SimpleNamespace(health="/health"), all_files=(".api", "x.toml"),
                                         files_read=read.get)  # fmt: skip
        self.fleet = types.SimpleNamespace(inventory=types.SimpleNamespace(environment="prod"))
        self.stop = Stop(self, stop_after)
        self.stop_seen, self.outages, self.forward = None, [], []
        self.waits = self  # the waits are asked of the same fake
        self.model = MODELS["lease"]  # a lease pair (test_executor_keys.py and test_executor_all.py: the others)
        self.rerun = f"{program()} deploy --env prod --service cl"  # ServiceChange.rerun: a deploy's

    def _do(self, call: str):
        self.calls.append(call)
        if call in self.fails:
            raise self.fails[call]

    def keep_restorable(self, nodes):
        self.calls.append(f"keep {' '.join(dict.fromkeys(nodes))}")  # each node once, as the change keeps it

    def health(self, node):
        answers, after = self.answers.get(node.name, ((False, ()), None))
        return answers if after is None or after in self.calls else (False, ())

    def others_silent(self, node):
        return not any(any(self.health(n)) for n in self.service.nodes if n.name != node.name)

    def say(self, _node, message, **_data):
        if message.split()[0] in ("replace", "await-serving", "await-waiting", "hand"):
            self.said_steps += 1

    def replace(self, node, hot=False):  # noqa: ARG002 (activation keys: test_executor_keys.py)
        self._do(f"replace {node}")

    def await_serving(self, node, _timeout=None, _accept=()):
        self._do(f"await-serving {node.name}")
        return 1.0

    def await_waiting(self, node, _job=None):
        self._do(f"await-waiting {node.name}")
        return "a's lease"

    def handover(self, old, new):
        self._do(f"handover {old.name} {new.name}")
        return 0.5

    def shred(self, node, names):
        self.calls.append(f"shred {node} {','.join(names)}")

    def restore(self, node, why):
        return FakeUndo(self).restore(node, why)

    def put_back(self, node, why):  # Restore.rollback, recorded: "restore b" in ``fails`` is an undo that fails
        self._do(f"restore {node}")
        return f"{why}; {node} put back"

    def confirm(self, what, unsafe=False):
        self.calls.append("confirm")
        return (ChangeRefused if unsafe else ChangeFailed)(f"{what}; a serves")

    def inspect(self, _node, _name=None):
        return None

    def previous_on(self, node, _container):
        self.calls.append(f"previous_on {node}")
        return "its own inputs"

    def start_again(self, node, _again):
        self._do(f"start_again {node}")
        return "on its own inputs"

    def settle(self, name, _job):
        self.calls.append(f"settle {name}")
        return "waits for the lease"

    def standing(self):
        return "now: a serves, b waits"


ROLLED = ["keep b a", "replace b", "await-waiting b", "shred b x.toml", "handover a b", "replace a", "await-waiting a",
          "shred a x.toml"]  # fmt: skip
CUT_OFF = OperationFailed("a: connection lost: EOF")
B_CUT_OFF = OperationFailed("cl b: connection lost: EOF")


@pytest.mark.parametrize(
    ("plan", "fails", "health", "calls", "error"),
    [
        (ROLLING, {}, {}, ROLLED, None),
        (FRESH, {}, {}, ["keep a b", "replace a", "await-serving a", "shred a .api,x.toml", "replace b",
                         "await-waiting b", "shred b x.toml"], None),
        # the new standby does not start: it goes back, and the run says what serves
        (ROLLING, {"replace b": OperationFailed("cl b: `docker run` failed: boom")}, {},
         ["keep b a", "replace b", "restore b", "confirm"], "cl b: `docker run` failed: boom; b put back; a serves"),
        # the new standby never waits: put back, the old active untouched
        (ROLLING, {"await-waiting b": OperationFailed("cl b: not a waiting standby (container exited)")}, {},
         ["keep b a", "replace b", "await-waiting b", "restore b", "confirm"], "container exited"),
        # a fresh start whose first node never serves: put back
        (FRESH, {"await-serving a": OperationFailed("cl a: not serving /health after 120s")}, {},
         ["keep a b", "replace a", "await-serving a", "restore a", "confirm"], "not serving"),
        # the handover failed and undid itself (its own confirm): nothing after it, nothing undone again
        (ROLLING, {"handover a b": ChangeFailed("cl b: not serving; the old active a was started again")}, {},
         ["keep b a", "replace b", "await-waiting b", "shred b x.toml", "handover a b"], "a was started again"),
        # a failure no step undid (a host cut off in the handover): what serves now, said; no restore
        (ROLLING, {"handover a b": CUT_OFF}, {},
         ["keep b a", "replace b", "await-waiting b", "shred b x.toml", "handover a b", "confirm"], "connection lost"),
        # the old active, awaited as the standby, took the lease because b stopped answering: left serving
        (ROLLING, {"await-waiting a": OperationFailed("cl a: not a waiting standby")},
         {"a": ((True, ()), "await-waiting a")},
         ["keep b a", "replace b", "await-waiting b", "shred b x.toml", "handover a b", "replace a",
          "await-waiting a", "confirm"], "took the lease while it was awaited as the standby"),
        # the undo fails too (b cut off as it was put back): said, never raised, and nothing runs after it
        (ROLLING, {"replace b": OperationFailed("cl b: `docker run` failed: boom"), "restore b": B_CUT_OFF}, {},
         ["keep b a", "replace b", "restore b", "confirm"],
         "boom; putting b's previous container back failed too: cl b: connection lost: EOF; a serves"),
        # a fresh start's first node never serves and cannot be put back: no next node is replaced
        (FRESH, {"await-serving a": OperationFailed("cl a: not serving /health after 120s"), "restore a": CUT_OFF},
         {}, ["keep a b", "replace a", "await-serving a", "restore a", "confirm"],
         "after 120s; putting a's previous container back failed too: a: connection lost: EOF; a serves"),
    ],
    ids=["rolling", "fresh", "standby-start-fails", "standby-never-waits", "fresh-never-serves",
         "handover-undone", "handover-cut-off", "old-active-took-the-lease", "undo-fails", "fresh-undo-fails"],
)  # fmt: skip
def test_each_step_in_order_and_each_failure_undone(plan, fails, health, calls, error):
    change = FakeChange(fails, health)
    if error is None:
        ServiceRunner(change).apply(plan)
        assert change.outages == ([0.5] if plan is ROLLING else [])
    else:
        with pytest.raises(ChangeFailed, match=error) as err:
            ServiceRunner(change).apply(plan)
        assert err.value.exit_code != EXIT_UNSAFE
    assert change.calls == calls


class Undone(FakeChange):
    """The runner's fake, its failed change ended by the real WhatServes (what serves now, and what to do):
    ``found``: {node: the container inspect finds}; ``cut``: nodes that cannot be inspected (their host cut off)."""

    def __init__(self, fails, health, found, cut=()) -> None:  # noqa: D107
        super().__init__(fails, health)
        self.found, self.cut = found, set(cut)
        self.service.load_balancer = None
        self.job.all_files, self.job.rendered = (".api", "x.toml"), types.SimpleNamespace(config_hash="new")
        self.stuck, self.was_running, self.moved, self.ran_on = False, {"a": True, "b": True}, {"b"}, {}

    def inspect(self, node, _name=None):
        if node in self.cut:
            raise OperationFailed(f"cl {node}: cannot connect: Timeout opening channel")
        return self.found.get(node)

    def service_answers(self):
        return any(self.health(n)[0] for n in self.service.nodes)

    def confirm(self, what, unsafe=False):
        self.calls.append("confirm")
        return WhatServes(self).failure(what, unsafe)


OLD = Container("nodeops-cl", True, "running", "sha256:old", labels={"io.nodeops.config": "old"})
NOT_SERVING = OperationFailed("cl a: not serving /health after 120s: container exited (exit 1)")


@pytest.mark.parametrize(
    ("plan", "fails", "health", "found", "cut", "calls", "message"),
    [
        # b cut off in its replace, and so in its undo: a serves on, and the message names the missing standby and
        # the deploy that brings it back once b is
        (ROLLING, {"replace b": B_CUT_OFF, "restore b": B_CUT_OFF}, {"a": ((True, ()), None)}, {"a": OLD}, ("b",),
         ["keep b a", "replace b", "restore b", "confirm", "shred a .api,x.toml"],
         "cl b: connection lost: EOF; putting b's previous container back failed too: cl b: connection lost: EOF; "
         "a serves; b is unreachable, so the pair has no standby: once it is back, {p} deploy --env prod --service "
         "cl"),
        # a fresh start whose first node never serves and cannot be put back: SERVICE DOWN, with the next commands;
        # b is never replaced
        (FRESH, {"await-serving a": NOT_SERVING, "restore a": OperationFailed("cl a: connection lost: EOF")}, {}, {},
         ("a",), ["keep a b", "replace a", "await-serving a", "restore a", "confirm"],
         "cl a: not serving /health after 120s: container exited (exit 1); putting a's previous container back "
         "failed too: cl a: connection lost: EOF; SERVICE DOWN: no node serves; see {p} status --env prod, then {p} "
         "deploy --env prod --service cl (or promote-standby --force)"),
    ],
    ids=["standby-cut-off", "fresh-service-down"],
)  # fmt: skip
def test_a_failed_undo_ends_saying_what_serves_and_what_to_do(plan, fails, health, found, cut, calls, message,
                                                              monkeypatch):  # fmt: skip
    for name, value in (("LB_TIMEOUT", 0.05), ("SERVE_TIMEOUT", 0.05), ("POLL", 0.01)):
        monkeypatch.setattr(confirm_module, name, value)
    change = Undone(fails, health, found, cut)
    with pytest.raises(ChangeFailed) as err:
        ServiceRunner(change).apply(plan)
    assert str(err.value) == message.format(p=program())
    assert err.value.exit_code == EXIT_FAILED
    assert change.calls == calls


@pytest.mark.parametrize(
    ("plan", "health", "calls"),
    [
        (ROLLING, {"b": ((True, ()), None)}, ["keep b a", "confirm"]),  # the standby serves: a failover since the plan
        (
            ROLLING,
            {"b": ((False, ("Database",)), None)},
            ["keep b a", "confirm"],
        ),  # answers unhealthy: holds the lease too
    ],
    ids=["serves", "unhealthy"],
)
def test_a_standby_found_holding_the_lease_is_not_replaced(plan, health, calls):
    change = FakeChange(health=health)
    with pytest.raises(ChangeRefused, match="cl b: holds the lease now .* b was not replaced") as err:
        ServiceRunner(change).apply(plan)
    assert err.value.exit_code == EXIT_UNSAFE
    assert change.calls == calls


def test_a_single_node_is_replaced_while_it_serves():
    change = FakeChange(health={"a": ((True, ()), None)})
    ServiceRunner(change).apply(SINGLE_NODE)
    assert change.calls == ["keep a", "replace a", "await-serving a", "shred a .api,x.toml"]


@pytest.mark.parametrize(
    ("plan", "after", "calls", "message"),
    [
        (ROLLING, 0, ["keep b a"], ["cl: stopped before `replace b` as asked; nothing was changed; now: a serves"]),
        # before the handover: the replaced standby goes back, the pair as found
        (ROLLING, 2, ROLLED[:4] + ["restore b"],
         ["stopped before `hand over from a to b (planned failover)` as asked, undoing this run's change; b put back"]),
        # just after the handover: the old active waits again on its own inputs; the message names the way on
        (ROLLING, 3, ROLLED[:5] + ["previous_on a", "start_again a", "settle a"],
         ["a's container was started again on its own inputs as the standby, and it waits for the lease; b runs "
          "this change, a does not: ", " deploy --env prod --service cl finishes it; now: a serves, b waits"]),
        # during the old active's replace: no safe point, the change goes to its end, and says so
        (ROLLING, 4, ROLLED, ["cl: the stop came during `replace a`, past the last safe point, so the change went on "
                              "to its end: it is complete; now: a serves"]),
        # a fresh start stops before its next node once the first serves
        (FRESH, 2, ["keep a b", "replace a", "await-serving a", "shred a .api,x.toml"],
         ["cl: stopped before `replace b` as asked; fab deploy --env prod --service cl finishes the change; now"]),
    ],
    ids=["before-anything", "before-handover", "after-handover", "past-the-last-safe-point", "fresh-between-nodes"],
)  # fmt: skip
def test_a_stop_ends_at_a_safe_point(plan, after, calls, message):
    change = FakeChange(stop_after=after)
    with pytest.raises(Interrupted) as err:
        ServiceRunner(change).apply(plan)
    assert all(part in str(err.value) for part in message), str(err.value)
    assert change.calls == calls


def test_a_failed_restart_after_the_handover_is_said_not_raised():
    change = FakeChange({"start_again a": OperationFailed("cl a: `docker start` failed: boom")}, stop_after=3)
    with pytest.raises(Interrupted, match="starting a's container again as the standby failed: .*boom"):
        ServiceRunner(change).apply(ROLLING)
    assert change.calls == [*ROLLED[:5], "previous_on a", "start_again a"]
