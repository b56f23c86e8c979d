"""promote-standby's decision from what the nodes show, before anything is touched: a table.

The observer (the only part that reads the nodes) gives the table's facts; planned() and unplanned()
(the parts that act) by recorders, so each row shows which path was taken or what was refused."""

from __future__ import annotations

import threading
import types

import pytest

from nodeops import promote
from nodeops.errors import Interrupted, InvalidInput, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.inventory import Node, Service
from nodeops.role_hooks import DEFAULT_HOOKS

A = Node("a", "10.0.0.1", 22, "active", (), "svc")
B = Node("b", "10.0.0.2", 22, "standby", (), "svc")
RUNNING = Container("nodeops-svc", True, "running", "sha256:x")
RPC = "EVM.1.HeadTracker.HeadListener"
HEALTHY, SICK = NodeView(A, RUNNING, True), NodeView(A, RUNNING, False, (RPC,))
WAITING = NodeView(B, RUNNING, False)


LEASE_ROLE = types.SimpleNamespace(lease=object(), activation="lease")


@pytest.mark.parametrize(
    ("a", "b", "force", "expected"),
    [
        (HEALTHY, WAITING, False, "planned from a"),
        (SICK, WAITING, False, "planned from a"),  # an unhealthy active is the active: hand over from it
        (WAITING, NodeView(A, RUNNING, False, ("HTTP 503",)), False, "planned from a"),
        (SICK, WAITING, True, InvalidInput(f"svc: a answers its health check unhealthy (failing: {RPC}), so it "
                                           "holds the lease: it is not gone. --force is for an active that is gone; "
                                           "without --force, promote-standby hands over from it")),
        (HEALTHY, WAITING, True, InvalidInput("svc: a serves: --force is for an active that is gone")),
        (NodeView(A, RUNNING, False), WAITING, True, "unplanned to a"),  # nothing answers: the active may be gone
        # the active is cut off and the standby already took its lease: --force confirms that takeover
        (NodeView(A, None, False, unreachable="unreachable"), NodeView(B, RUNNING, True), True, "unplanned to b"),
        (NodeView(A, None, False, unreachable="unreachable"), NodeView(B, RUNNING, True), False, "planned from b"),
        (NodeView(A, RUNNING, False), WAITING, False, Unsafe("svc: no node serves")),
        (HEALTHY, NodeView(B, RUNNING, False, (RPC,)), False, Unsafe("svc: two nodes serve at once")),
        (SICK, NodeView(B, RUNNING, True), True, Unsafe("svc: two nodes serve at once")),
        (NodeView(A, None, False, unreachable="unreachable"), NodeView(B, None, False), True,
         Unsafe("svc: no running standby to take over (a: unreachable; b: no container); nothing was started")),
    ],
    ids=["healthy", "unhealthy", "unhealthy-b", "force-unhealthy", "force-healthy", "force-nothing-answers",
         "force-standby-took-over", "standby-took-over", "nothing-answers", "healthy-and-unhealthy", "force-two",
         "force-no-standby"],
)  # fmt: skip
def test_promote_decides_from_who_answers(monkeypatch, a, b, force, expected):
    seen = {s.node.name: s for s in (a, b)}
    monkeypatch.setattr(promote, "standby_ready", lambda _run, seen, active: (next(
        s for s in seen.values() if s.node is not active), "evidence"))  # fmt: skip
    monkeypatch.setattr(promote, "planned", lambda *args: f"planned from {args[2].name}")  # (run, seen, active, ...)
    monkeypatch.setattr(promote, "unplanned", lambda *args: f"unplanned to {args[1].name}")  # (run, standby, what)
    run = types.SimpleNamespace(service=types.SimpleNamespace(name="svc", nodes=(A, B)),
                                observer=types.SimpleNamespace(views=lambda: seen),
                                job=types.SimpleNamespace(role=LEASE_ROLE))  # fmt: skip
    if isinstance(expected, str):
        assert promote.promote_service(run, keep_old_stopped=False, force=force) == expected
        return
    with pytest.raises(type(expected)) as err:
        promote.promote_service(run, keep_old_stopped=False, force=force)
    assert str(err.value).startswith(str(expected)), str(err.value)
    assert "cut off" not in str(err.value)


HOT = Container("nodeops-svc", True, "running", "sha256:x", {"io.nodeops.hot": "true"})


@pytest.mark.parametrize(
    ("activation", "a", "b", "fragment"),
    [
        ("keys", NodeView(A, HOT, True), NodeView(B, HOT, True), "svc: 2 nodes hold the hot keys (a, b)"),
        ("all", NodeView(A, RUNNING, True), NodeView(B, RUNNING, True), "activation all has no standby to promote"),
    ],
    ids=["keys-two-holders", "all"],
)  # fmt: skip
def test_promote_plans_keys_and_all_and_refuses_what_is_unsafe(monkeypatch, activation, a, b, fragment):
    """Issue 15: a role's activation model decides the promotion (Model.plan_promotion); what its plan
    refuses is refused (exit 4) before anything is touched. A keys promotion is carried out (test_executor_keys.py);
    the handover below is the lease's, so an all one is refused with its model's reason."""
    acted = []
    monkeypatch.setattr(promote, "planned", lambda *args: acted.append(args))
    monkeypatch.setattr(promote, "unplanned", lambda *args: acted.append(args))
    seen = {"a": a, "b": b}
    service = Service("svc", "r", "img:2", "docker", {}, {}, (A, B))
    role = types.SimpleNamespace(name="r", lease=None, activation=activation, hooks=DEFAULT_HOOKS)  # no chain fence
    run = types.SimpleNamespace(service=service, observer=types.SimpleNamespace(views=lambda: seen),
                                job=types.SimpleNamespace(role=role))  # fmt: skip
    with pytest.raises(Unsafe) as err:
        promote.promote_service(run, keep_old_stopped=False, force=False)
    assert fragment in str(err.value) and err.value.exit_code == 4 and acted == []


def test_an_all_service_of_three_nodes_is_refused_for_its_model_not_as_a_single_node():
    """Under activation all a service takes up to 32 nodes: its refusal is the model's (exit 4), before any look."""
    nodes = (A, B, Node("c", "10.0.0.3", 22, "standby", (), "svc"))
    role = types.SimpleNamespace(name="r", lease=None, activation="all")
    run = types.SimpleNamespace(service=Service("svc", "r", "img:2", "docker", {}, {}, nodes),
                                observer=None, job=types.SimpleNamespace(role=role))  # fmt: skip
    with pytest.raises(Unsafe) as err:
        promote.promote_service(run, keep_old_stopped=False, force=False)
    assert "activation all has no standby to promote" in str(err.value) and err.value.exit_code == 4


def test_an_unhealthy_active_is_described_with_its_failing_checks():
    assert SICK.describe() == f"a: active, unhealthy (failing: {RPC})"
    assert (SICK.active, HEALTHY.active, WAITING.active) == (True, True, False)


# -- the observer probes the port each node's container serves (every verb observes through it) ----------------
def inspected(port: str | None) -> str:
    labels = {"io.nodeops.config": "h1"} | ({"io.nodeops.port": port} if port else {})
    return f'[{{"Name": "/nodeops-svc", "State": {{"Running": true}}, "Config": {{"Labels": {labels!r}}}}}]'.replace(
        "'", '"'
    )


@pytest.mark.parametrize(
    ("a_label", "b_label", "probes"),
    [
        ("6688", "6688", [("10.0.0.1", 6688), ("10.0.0.2", 6688)]),  # inventory says 6700; the containers serve 6688
        ("6700", "6688", [("10.0.0.1", 6700), ("10.0.0.2", 6688)]),  # halfway through a rolling port change
        (None, None, [("10.0.0.1", 6700), ("10.0.0.2", 6700)]),  # started before the label: the inventory's
        ("6688", "", [("10.0.0.1", 6688), ("10.0.0.2", 6700)]),  # b has no container: what a new one would serve
    ],
)  # fmt: skip
def test_the_observer_probes_the_port_the_container_serves(monkeypatch, a_label, b_label, probes):
    from nodeops.edges.ssh import CommandResult
    from nodeops.facts import observe

    inspect = {"10.0.0.1": inspected(a_label), "10.0.0.2": inspected(b_label) if b_label != "" else None}
    gets = []

    class Fleet:
        settings = types.SimpleNamespace(command_timeout=5)

        def connect(self, node):
            return node.host, 1

        def http_get(self, host, port, path, **_where):
            gets.append((host, port, path))
            return (200, b"{}") if (host, port) == ("10.0.0.1", int(a_label or 6700)) else None

    def execute(conn, command, stdin=None, timeout=None):
        found = inspect[conn]
        return CommandResult(0, found, "") if found else CommandResult(1, "", "no such container")

    monkeypatch.setattr(observe, "execute", execute)
    service = types.SimpleNamespace(name="svc", runtime="docker", nodes=[A, B])
    role = types.SimpleNamespace(port=6700, health="/health", hooks=DEFAULT_HOOKS)
    seen = observe.Observer(Fleet(), service, role).views()
    assert gets == [(*p, "/health") for p in probes]
    assert seen["a"].serving  # the active stays the active when only the inventory's port changed


# -- the question names who is active now (and what it runs) and who takes over; asked once the pairs were observed
def running(version: str | None = None, image: str = "", recorded: str | None = None) -> Container:
    labels = {"io.nodeops.version": version, "io.nodeops.image": recorded}
    return Container("nodeops-svc", True, "running", "sha256:x", {k: v for k, v in labels.items() if v}, image=image)


@pytest.mark.parametrize(
    ("handover", "keep", "expected"),
    [
        (promote.Handover("cl1", {"a": NodeView(A, running("2.10.0"), True)}, WAITING, A), False,
         "cl1: hand over from a (active, 2.10.0) to b (standby); the old active becomes the standby"),
        (promote.Handover("cl1", {"a": NodeView(A, running("2.10.0"), True)}, WAITING, A), True,
         "cl1: hand over from a (active, 2.10.0) to b (standby); the old active stays stopped"),
        (promote.Handover("cl1", {"a": NodeView(A, running(image="r:5000/cl:2.9.1@sha256:ab"), True)}, WAITING, A),
         False, "cl1: hand over from a (active, 2.9.1) to b"),  # no version label: the image's tag
        # podman reports the pinned reference without its tag: the one nodeops recorded (its image label) says it
        (promote.Handover("cl1", {"a": NodeView(A, running(image="r:5000/cl@sha256:ab",
                                                             recorded="r:5000/cl:2.9.1@sha256:ab"), True)}, WAITING, A),
         False, "cl1: hand over from a (active, 2.9.1) to b"),
        (promote.Handover("cl1", {}, NodeView(B, running("2.10.0"), False), what="a: unreachable; b: running, "
                          "not serving"), False,
         "cl1: the active is gone (a: unreachable; b: running, not serving): wait for its lease to expire by database "
         "time, then b (standby, 2.10.0) serves"),
    ],
    ids=["planned", "keep-stopped", "tag", "podman-pinned", "force"],
)  # fmt: skip
def test_the_question_names_the_active_its_version_and_the_standby(handover, keep, expected):
    assert handover.question(keep).startswith(expected), handover.question(keep)


def quiet(*_where, **_fields) -> None:
    """A Reporter that keeps nothing."""


C, D = Node("c", "10.0.1.1", 22, "active", (), "two"), Node("d", "10.0.1.2", 22, "standby", (), "two")


def fake_pairs(monkeypatch, seen: dict[str, dict], ready: dict[str, Exception | None],
               observed: list | None = None) -> list:  # fmt: skip
    """promote() over services "svc" (a, b) and "two" (c, d): the observer reads ``seen`` (service -> its nodes,
    changeable between calls; each observation's service appended to ``observed``), standby_ready() refuses with
    ``ready[service]``, planned() records what it was given. Returns the jobs and the record of handovers."""
    done: list = []

    def views(name: str) -> dict:
        if observed is not None:
            observed.append(name)
        return seen[name]

    monkeypatch.setattr(promote, "ServiceDeploy", lambda job, _fleet, _report: types.SimpleNamespace(
        service=job.service, job=job, inexact_ok=False, stop=threading.Event(), now=dict,
        observer=types.SimpleNamespace(views=lambda: views(job.service.name))))  # fmt: skip

    def standby_ready(run, seen, active):
        if ready.get(run.service.name):
            raise ready[run.service.name]
        return next(s for s in seen.values() if s.node is not active), "the lease is held by the active"

    monkeypatch.setattr(promote, "standby_ready", standby_ready)

    def planned(run, _seen, active, _keep, _evidence=""):
        done.append((run.service.name, active.name))
        return {"service": run.service.name, "active": "x", "outage_seconds": 1.0}

    monkeypatch.setattr(promote, "planned", planned)
    lease = types.SimpleNamespace(activation="lease")
    jobs = [types.SimpleNamespace(service=types.SimpleNamespace(name=name, nodes=nodes), role=lease)
            for name, nodes in (("svc", (A, B)), ("two", (C, D)))]  # fmt: skip
    return [jobs, done]


def pairs(version: str = "2.10.0") -> dict[str, dict]:
    return {
        "svc": {"a": NodeView(A, running(version), True), "b": WAITING},
        "two": {"c": NodeView(C, running("2.11.0"), True), "d": NodeView(D, running("2.11.0"), False)},
    }


def test_promote_asks_once_naming_each_pair_then_hands_over(monkeypatch):
    jobs, done = fake_pairs(monkeypatch, pairs(), {})
    questions = []
    results = promote.promote(None, jobs, quiet, False, ask=questions.append)
    assert questions == [
        [
            "svc: hand over from a (active, 2.10.0) to b (standby); the old active becomes the standby",
            "two: hand over from c (active, 2.11.0) to d (standby); the old active becomes the standby",
        ]
    ]
    assert done == [("svc", "a"), ("two", "c")] and not any("error" in r for r in results)


def test_no_standby_to_promote_is_refused_before_asking_and_not_asked_about(monkeypatch):
    """Review 14 #9: the question came before the pair was looked at; a refusal followed a yes."""
    jobs, done = fake_pairs(
        monkeypatch,
        pairs(),
        {"svc": Unsafe("svc: refusing before touching the active a: standby b is not waiting for the database lease")},
    )
    questions = []
    results = promote.promote(None, jobs, quiet, False, ask=questions.append)
    assert [len(q) for q in questions] == [1] and questions[0][0].startswith("two: hand over from c")
    assert done == [("two", "c")]  # svc refused, never asked about nor touched; two went ahead
    assert isinstance(results[0]["error"], Unsafe) and results[0]["error"].exit_code == 4
    jobs, done = fake_pairs(monkeypatch, pairs(), {"svc": Unsafe("svc: no"), "two": Unsafe("two: no")})
    questions = []
    results = promote.promote(None, jobs, quiet, False, ask=questions.append)
    assert questions == [] and done == [] and all(r["error"].exit_code == 4 for r in results)  # nothing to ask


def test_a_no_touches_nothing_and_a_pair_that_changed_since_the_question_is_refused(monkeypatch):
    jobs, done = fake_pairs(monkeypatch, pairs(), {})

    def no(_lines):
        raise InvalidInput("promote-standby in t: not confirmed; nothing was done")

    with pytest.raises(InvalidInput, match="not confirmed"):
        promote.promote(None, jobs, quiet, False, ask=no)
    assert done == []
    seen = pairs()

    def yes_but_meanwhile(_lines):  # svc's active was redeployed onto another version while the person read
        seen["svc"] = pairs("2.11.0")["svc"]

    jobs, done = fake_pairs(monkeypatch, seen, {})
    results = promote.promote(None, jobs, quiet, False, ask=yes_but_meanwhile)
    assert "the pair changed since the question: now svc: hand over from a (active, 2.11.0)" in str(results[0]["error"])
    assert done == [("two", "c")]


def test_without_a_question_nothing_is_observed_twice(monkeypatch):
    calls: list[str] = []
    jobs, done = fake_pairs(monkeypatch, pairs(), {}, calls)
    promote.promote(None, jobs, quiet, False)
    assert calls == ["svc", "two"] and done == [("svc", "a"), ("two", "c")]


# -- a stop (Ctrl-C, SIGTERM) during a promotion: the handover finishes, then exit 130 saying what runs -----------
class Promoting:
    """ServiceDeploy's stand-in for promote(): what runs now, in standing()'s words."""

    def __init__(self, job, _fleet, _report):
        self.service, self.stop = job.service, None

    def standing(self):
        return "now: a waits (2.11.0, config c), b serves (2.11.0, config c)"

    def now(self):
        return {"active": "b", "nodes": {"a": {"state": "waits"}, "b": {"state": "serves"}}}


@pytest.mark.parametrize("stop_during", [False, True])
def test_a_stop_during_the_handover_ends_130_saying_what_runs(monkeypatch, stop_during):
    """Issue 13 review: SIGTERM during promote-standby's handover ended with exit 0; deploy ends 130."""
    from nodeops.errors import EXIT_INTERRUPTED, Interrupted, raise_failures
    from nodeops.stopping import StopRequests

    stop = StopRequests(lambda _line: None)

    def handover(run, _keep, _force, _asked=None):
        if stop_during:
            stop.requested.set()  # the signal's effect (nodeops.stopping), while the handover runs
        return {"service": "svc", "active": "b", "outage_seconds": 0.8, "outage_measured": True}

    monkeypatch.setattr(promote, "ServiceDeploy", Promoting)
    monkeypatch.setattr(promote, "promote_service", handover)
    said = []
    job = types.SimpleNamespace(service=types.SimpleNamespace(name="svc", nodes=(A, B)))
    results = promote.promote([], [job], lambda *a, **_k: said.append(a), False, stop=stop)
    if not stop_during:
        assert results == [{"service": "svc", "active": "b", "outage_seconds": 0.8, "outage_measured": True,
                            "now": Promoting.now(None)}]  # fmt: skip
        return
    (result,) = results
    assert isinstance(result["error"], Interrupted), result
    assert result["now"] == Promoting.now(None)  # what runs, observed after the handover: the audit entry's
    with pytest.raises(Exception) as ended:
        raise_failures(results)
    assert ended.value.exit_code == EXIT_INTERRUPTED
    assert str(ended.value) == ("svc: the promotion was complete when the stop came; now: a waits (2.11.0, config c), "
                                "b serves (2.11.0, config c)")  # fmt: skip
    assert said[-1][2].startswith("STOPPED: svc: the promotion was complete")


# -- a planned promotion plans through activation.plan_promotion and runs through the runner ------------------------
@pytest.mark.parametrize("keep_old_stopped", [False, True], ids=["old-active-waits-again", "keep-old-stopped"])
def test_a_planned_promotion_runs_the_plan_of_its_activation_model(monkeypatch, keep_old_stopped):
    """Issue 15: promote decided and acted in one place; it now plans (Model.plan_promotion: the steps
    today's code did) and runs the plan through the service runner (ServiceRunner.promote)."""
    ran, said = [], []

    class Runner:
        def __init__(self, change):
            self.change = change

        def promote(self, plan):
            ran.append([(s.action, s.node, s.to) for s in plan.steps])
            return 0.8123

    monkeypatch.setattr(promote, "ServiceRunner", Runner)
    service = Service("svc", "r", "img:2", "docker", {}, {}, (A, B))
    run = types.SimpleNamespace(service=service, stop=threading.Event(), say=lambda *a, **k: said.append((a, k)))
    result = promote.planned(run, {"a": HEALTHY, "b": WAITING}, A, keep_old_stopped, "the lease is a's")
    after = ("keep-stopped", "a", None) if keep_old_stopped else ("start-again", "a", None)
    assert ran == [[("handover", "a", "b"), after, ("shred", "b", None)]]
    assert said == [(("b", "waits for the lease"), {"evidence": "the lease is a's"})]
    assert result == {"service": "svc", "active": "b", "outage_seconds": 0.812, "outage_measured": True}


def test_a_stop_before_the_promotion_touches_nothing(monkeypatch):
    monkeypatch.setattr(promote, "ServiceRunner", lambda _change: pytest.fail("the runner ran"))
    stop = threading.Event()
    stop.set()
    run = types.SimpleNamespace(service=Service("svc", "r", "img:2", "docker", {}, {}, (A, B)), stop=stop,
                                standing=lambda: "now: a serves, b waits")  # fmt: skip
    with pytest.raises(Interrupted) as err:
        promote.planned(run, {"a": HEALTHY, "b": WAITING}, A, False)
    assert str(err.value) == "svc: stopped before the handover as asked, nothing changed; now: a serves, b waits"
