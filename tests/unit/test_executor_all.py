"""Carrying out an activation all plan (nodeops.run.rolling.AllRunner) as tables: (plan, what each node answers and
when, what each step of the change does) -> the steps and undoings asked of the change, in order, and how the run
ends; and what serves after a failure (AllServes).

The change is a fake of the runner's collaborator (the Change protocol; nodeops.deploy.ServiceDeploy in a run): it
records what it is asked and fails where the table says; a node's health reply is looked up afresh on every ask, from
a table that can change once a given call was made (so a check that trusted the plan's picture would pass where the
fresh one refuses). What each step does on a node is NodeActions' (their own tables), and on real hosts the lab's
(tests/e2e/test_activation.py)."""

from __future__ import annotations

import types

import pytest

from nodeops import program
from nodeops.activation import MODELS
from nodeops.edges.ssh import CommandResult
from nodeops.errors import EXIT_UNSAFE, Interrupted, OperationFailed, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service
from nodeops.plan import Desired, ServicePlan, Step
from nodeops.roles import load_role
from nodeops.run.end import EndState
from nodeops.run.report import Redactor
from nodeops.run.restore import Restore
from nodeops.run.rolling import AllRunner, AllServes
from nodeops.run.runner import ChangeFailed, ChangeRefused
from nodeops.secrets import Secret
from tests.unit import test_executor_runner as runner_tables
from tests.unit.test_executor_runner import FakeUndo, Stop  # an undo that can fail; a stop after n steps

NODES = tuple(Node(n, f"10.0.0.{i}", 22, "standby" if i else "active", (), "relays") for i, n in enumerate("abc"))
SERVICE = Service(name="relays", role="relay", image="relay:2", runtime="docker", variables={}, secrets={}, nodes=NODES)
ALL = ("a", "b", "c")
FILES = "shred {} .api,x.toml"


def rolled(*nodes: str) -> list[str]:
    return [call for n in nodes for call in (f"replace {n}", f"await-serving {n}", FILES.format(n))]


def planned(serving: tuple[str, ...], running: tuple[str, ...] = ALL) -> ServicePlan:
    """The all model's plan for NODES, each running an old image (``running``), those in ``serving`` answering 200."""
    desired = Desired(image="relay:2", image_id="sha256:new", config_hash="new")
    old = {n: Container(name="nodeops-relays", running=True, status="running", image_id="sha256:old",
                        labels={"io.nodeops.config": "old"}) for n in running}  # fmt: skip
    views = {n.name: NodeView(n, old.get(n.name), n.name in serving) for n in NODES}
    return MODELS["all"].plan_change(SERVICE, views, desired)


class FakeChange(runner_tables.FakeChange):
    """The runner tables' fake (its replace, await_serving, keep_restorable), for three nodes: ``serving``: the nodes
    answering 200 from the start; ``changes``: {call line: (node, answers 200 after it)}; ``fails``: {call line: the
    error it raises}; ``cut``: nodes whose health ask raises (cut off)."""

    def __init__(self, serving=(), changes=None, fails=None, cut=(), stop_after=None) -> None:  # noqa: D107
        self.now = set(serving)
        self.changes, self.fails, self.cut = changes or {}, fails or {}, set(cut)
        self.calls: list[str] = []
        self.said: list[str] = []
        self.said_steps = 0
        self.service = types.SimpleNamespace(name="relays", nodes=NODES, load_balancer=None)
        self.name = "nodeops-relays"
        self.job = types.SimpleNamespace(role=types.SimpleNamespace(health="/health", activation="all"),
                                         all_files=(".api", "x.toml"))  # fmt: skip
        self.fleet = types.SimpleNamespace(inventory=types.SimpleNamespace(environment="prod"))
        self.stop = Stop(self, stop_after)
        self.stop_seen, self.outages, self.forward = None, [], []
        self.model = MODELS["all"]
        self.rerun = f"{program()} deploy --env prod --service relays"  # ServiceChange.rerun: a deploy's
        self.waits = self

    def _do(self, call: str) -> None:
        self.calls.append(call)
        if call in self.changes:
            node, up = self.changes[call]
            (self.now.add if up else self.now.discard)(node)
        if call in self.fails:
            raise self.fails[call]

    def health(self, node):
        if node.name in self.cut:
            raise OperationFailed(f"relays {node.name}: cannot connect: Timeout opening channel")
        return (node.name in self.now, ())

    def service_answers(self):
        return bool(self.now)

    def say(self, _node, message, **_data):
        self.said.append(message)
        if message.split()[0] in ("replace", "await-serving"):
            self.said_steps += 1

    def shred(self, node, names):
        self._do(f"shred {node} {','.join(names)}")

    def restore(self, node, why):
        return FakeUndo(self).restore(node, why)

    def put_back(self, node, why):  # Restore.rollback, recorded: "restore b" in ``fails`` is an undo that fails
        self._do(f"restore {node}")
        return f"{why}; {node}'s previous container was started again on its own inputs, and it serves"

    def confirm(self, what, unsafe=False):
        self.calls.append("confirm")
        return AllServes(self).failure(what, unsafe)

    def standing(self):
        return "now: " + ", ".join(sorted(self.now)) + " serve"


BOOM = OperationFailed("relays b: `docker run` failed: manifest unknown")
NEVER = OperationFailed("relays b: not serving /health after 120s: container exited (exit 1)")
CUT_OFF = OperationFailed("relays b: connection lost: EOF")


@pytest.mark.parametrize(
    ("plan", "change", "calls"),
    [
        # every node serves and is out of date: one at a time, in inventory order, each awaited before the next
        (planned(ALL), FakeChange(ALL), ["keep a b c", *rolled("a", "b", "c")]),
        # a fresh service (nothing answers): the first is replaced with no other serving (the plan allowed it), the
        # next only once it serves
        (planned((), running=()), FakeChange((), {"await-serving a": ("a", True), "await-serving b": ("b", True),
                                                  "await-serving c": ("c", True)}),  # fmt: skip
         ["keep a b c", *rolled("a", "b", "c")]),
        # the silent node first (it serves nobody), then the others
        (planned(("a", "c")), FakeChange(("a", "c"), {"await-serving b": ("b", True)}),
         ["keep b a c", *rolled("b", "a", "c")]),
    ],
    ids=["rolling", "fresh", "silent-first"],
)  # fmt: skip
def test_each_node_in_turn_awaited_before_the_next(plan, change, calls):
    AllRunner(change).apply(plan)
    assert change.calls == calls
    assert change.now == set(ALL)


@pytest.mark.parametrize(
    ("plan", "change", "calls", "error", "serving"),
    [
        # the plan saw b and c serve; asked afresh before a's replace, neither does: nothing is replaced
        (planned(ALL), FakeChange(("a",)), ["keep a b c", "confirm"],
         "relays a: no other node serves just before its replace .* a was not replaced, and no node after it", {"a"}),
        # the plan saw every node serve; b and c stop answering during a's replace, and a once it was awaited: asked
        # afresh before b's replace, no other node serves, so b (and c after it) are not replaced
        (planned(ALL), FakeChange(ALL, {"replace a": ("b", False), "await-serving a": ("c", False),
                                        "shred a .api,x.toml": ("a", False)}),  # fmt: skip
         ["keep a b c", *rolled("a"), "confirm"], "relays b: no other node serves just before its replace", set()),
        # the node to replace serves alone now, though the plan found it silent: refused (it would take all down)
        (planned(()), FakeChange(("a",)), ["keep a b c", "confirm"], "relays a: .*it serves alone now", {"a"}),
        # a node that cannot be asked counts as not serving
        (planned(ALL), FakeChange(ALL, cut=("b", "c")), ["keep a b c", "confirm"],
         "relays a: no other node serves", set(ALL)),
    ],
    ids=["none-serves-before-the-first", "none-serves-before-a-later", "itself-alone", "others-unreachable"],
)  # fmt: skip
def test_no_replace_unless_another_node_is_seen_serving(plan, change, calls, error, serving, monkeypatch):
    monkeypatch.setattr("nodeops.run.rolling.LB_TIMEOUT", 0.0)
    with pytest.raises(ChangeRefused, match=error) as err:
        AllRunner(change).apply(plan)
    assert err.value.exit_code == EXIT_UNSAFE
    assert change.calls == calls
    assert change.now == serving


ONLY_A = ServicePlan("relays", (Step("replace", "a", "not serving"), Step("await-serving", "a")), "down")


@pytest.mark.parametrize(
    ("plan", "change", "calls", "error"),
    [
        # b's new container does not start: b is restored, c never touched, a (replaced before) serves on
        (planned(ALL), FakeChange(ALL, {"replace b": ("b", False)}, {"replace b": BOOM}),
         ["keep a b c", *rolled("a"), "replace b", "restore b", "confirm"],
         "manifest unknown; b's previous container was started again .* serving: a, c; not serving: b"),
        # b never serves within the wait: restored, c untouched
        (planned(ALL), FakeChange(ALL, {"replace b": ("b", False)}, {"await-serving b": NEVER}),
         ["keep a b c", *rolled("a"), "replace b", "await-serving b", "restore b", "confirm"],
         "not serving /health after 120s: container exited .* serving: a, c; not serving: b"),
        # b's host cut off in its replace: its restore is tried (and says what it could do), c untouched
        (planned(ALL), FakeChange(ALL, {"replace b": ("b", False)}, {"replace b": CUT_OFF}),
         ["keep a b c", *rolled("a"), "replace b", "restore b", "confirm"], "connection lost: EOF"),
        # b cut off in its replace and in its undo: said, c untouched; what serves, and what to do about b
        (planned(ALL), FakeChange(ALL, {"replace b": ("b", False)}, {"replace b": CUT_OFF, "restore b": CUT_OFF}),
         ["keep a b c", *rolled("a"), "replace b", "restore b", "confirm"],
         "relays b: connection lost: EOF; putting b's previous container back failed too: relays b: connection "
         "lost: EOF; serving: a, c; not serving: b; see .* status --env prod, then .* deploy --env prod --service "
         "relays$"),
        # a service down already, whose one replace fails: SERVICE DOWN with the next command
        (ONLY_A, FakeChange((), fails={"replace a": BOOM}), ["keep a", "replace a", "restore a", "confirm"],
         "SERVICE DOWN: no node serves; see .* deploy --env prod --service relays"),
    ],
    ids=["replace-fails", "await-times-out", "node-unreachable", "undo-fails", "service-down"],
)  # fmt: skip
def test_a_failed_step_is_undone_on_its_node_and_the_run_stops(plan, change, calls, error, monkeypatch):
    monkeypatch.setattr("nodeops.run.rolling.LB_TIMEOUT", 0.0)
    with pytest.raises(ChangeFailed, match=error) as err:
        AllRunner(change).apply(plan)
    assert err.value.exit_code != EXIT_UNSAFE
    assert change.calls == calls
    assert "replace c" not in change.calls


def test_a_stop_comes_before_the_next_replace_never_between_a_replace_and_its_await():
    change = FakeChange(ALL, stop_after=1)  # set once `replace a` was said
    with pytest.raises(
        Interrupted,
        match=r"relays: stopped before `replace b \(rolling, a, c serve\)` as asked; "
        r"\S+ deploy --env \S+ --service relays finishes the change; now",
    ):  # rv15 F7
        AllRunner(change).apply(planned(ALL))
    assert change.calls == ["keep a b c", *rolled("a")]


def test_a_step_of_another_model_is_refused():
    change = FakeChange(ALL)
    plan = ServicePlan("relays", (Step("handover", "a", to="b"),), "lease")
    with pytest.raises(ValueError, match="`hand over from a to b .*` is no step of an activation all plan"):
        AllRunner(change).apply(plan)
    assert change.calls == ["keep "]


# -- the end state under all (EndState.verify_all) and a restored node settled (Restore.settle) ---------------------
class Ending:
    """EndState's collaborator (the Verified protocol): ``serving`` answer 200; ``left``: {node: a file listing};
    ``env``: what every container's environment shows."""

    def __init__(self, serving=ALL, left=None, env=()) -> None:
        self.serving, self.left, self.env = set(serving), left or {}, env
        self.shredded: list[tuple[str, tuple[str, ...]]] = []
        self.waited = False
        self.service = types.SimpleNamespace(
            name="relays", nodes=NODES, secret_files="shred", load_balancer="http://lb"
        )
        self.job = types.SimpleNamespace(profile="v2", role=load_role("chainlink"),
                                         redact=Redactor([Secret("Sentinel-pw-0123456789", "db")]))  # fmt: skip
        self.waits = types.SimpleNamespace(await_service=lambda: setattr(self, "waited", True))

    def health(self, node):
        return (node.name in self.serving, ())

    def inspect(self, _node, _name=None):
        return Container("nodeops-relays", True, "running", "sha256:x", env=self.env)

    def x(self, node, _command, _stdin=None, _check=True, _timeout=None):
        return CommandResult(0, self.left.get(node, ""), "")

    def shred(self, node, names):
        self.shredded.append((node, tuple(names)))


@pytest.mark.parametrize(
    ("change", "outcome", "shredded"),
    [
        (Ending(), {"serving": ["a", "b", "c"]}, []),
        # a file an interrupted run left behind is shredded (none is kept: every node has read everything)
        (Ending(left={"b": ".api 0400 14933\n"}), {"serving": ["a", "b", "c"]}, [("b", (".api",))]),
        (Ending(serving=("a", "c")), "relays: after deploy b not serving \\(activation all: every node serves\\)", []),
        (Ending(env=("DATABASE_URL=x:Sentinel-pw-0123456789@",)),
         "relays a: a secret value is in the container's environment or command", []),
    ],
    ids=["every-node-serves", "leftover-shredded", "one-silent", "secret-in-env"],
)  # fmt: skip
def test_the_end_state_is_every_node_serving_through_the_load_balancer(change, outcome, shredded):
    if isinstance(outcome, str):
        with pytest.raises((OperationFailed, Unsafe), match=outcome):
            EndState(change).verify_all()
    else:
        assert EndState(change).verify_all() == outcome
        assert change.waited
    assert change.shredded == shredded


@pytest.mark.parametrize(
    ("fails", "said"),
    [(None, "serves"), (NEVER, "is down (relays b: not serving /health after 120s: container exited (exit 1))")],
)
def test_a_restored_node_under_all_is_awaited_serving_never_as_a_standby(fails, said):
    change = FakeChange(ALL, fails={} if fails is None else {"await-serving b": fails})
    change.await_waiting = lambda *_: pytest.fail("no node waits for a lease under activation all")
    job = types.SimpleNamespace(all_files=(".api", "x.toml"))
    assert Restore(change).settle("b", job) == said
    assert change.calls == ["await-serving b", "shred b .api,x.toml"]
