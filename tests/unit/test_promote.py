"""promote-standby's decision from what the nodes show, before anything is touched: a table.

observe() (the only part that reads the nodes) is replaced by the table's facts; planned() and unplanned()
(the parts that act) by recorders, so each row shows which path was taken or what was refused."""

from __future__ import annotations

import types

import pytest

from nodeops import promote
from nodeops.errors import InvalidInput, Unsafe
from nodeops.inventory import Node
from nodeops.plan import Container
from nodeops.promote import Seen

A = Node("a", "10.0.0.1", 22, "active", (), "svc")
B = Node("b", "10.0.0.2", 22, "standby", (), "svc")
RUNNING = Container("nodeops-svc", True, "running", "sha256:x")
RPC = "EVM.1.HeadTracker.HeadListener"
HEALTHY, SICK = Seen(A, True, RUNNING, True), Seen(A, True, RUNNING, False, (RPC,))
WAITING = Seen(B, True, RUNNING, False)


@pytest.mark.parametrize(
    ("a", "b", "force", "expected"),
    [
        (HEALTHY, WAITING, False, "planned from a"),
        (SICK, WAITING, False, "planned from a"),  # an unhealthy active is the active: hand over from it
        (WAITING, Seen(A, True, RUNNING, False, ("HTTP 503",)), False, "planned from a"),
        (SICK, WAITING, True, InvalidInput(f"svc: a answers its health check unhealthy (failing: {RPC}), so it "
                                           "holds the lease: it is not gone. --force is for an active that is gone; "
                                           "without --force, promote-standby hands over from it")),
        (HEALTHY, WAITING, True, InvalidInput("svc: a serves: --force is for an active that is gone")),
        (Seen(A, True, RUNNING, False), WAITING, True, "unplanned"),  # nothing answers: the active may be gone
        (Seen(A, True, RUNNING, False), WAITING, False, Unsafe("svc: no node serves")),
        (HEALTHY, Seen(B, True, RUNNING, False, (RPC,)), False, Unsafe("svc: two nodes serve at once")),
        (SICK, Seen(B, True, RUNNING, True), True, Unsafe("svc: two nodes serve at once")),
    ],
    ids=["healthy", "unhealthy", "unhealthy-b", "force-unhealthy", "force-healthy", "force-nothing-answers",
         "nothing-answers", "healthy-and-unhealthy", "force-two"],
)  # fmt: skip
def test_promote_decides_from_who_answers(monkeypatch, a, b, force, expected):
    seen = {s.node.name: s for s in (a, b)}
    monkeypatch.setattr(promote, "observe", lambda _run: seen)
    monkeypatch.setattr(promote, "planned", lambda *args: f"planned from {args[2].name}")  # (run, seen, active, keep)
    monkeypatch.setattr(promote, "unplanned", lambda *_: "unplanned")
    run = types.SimpleNamespace(service=types.SimpleNamespace(name="svc", nodes=(A, B)))
    if isinstance(expected, str):
        assert promote.promote_service(run, keep_old_stopped=False, force=force) == expected
        return
    with pytest.raises(type(expected)) as err:
        promote.promote_service(run, keep_old_stopped=False, force=force)
    assert str(err.value).startswith(str(expected)), str(err.value)
    assert "cut off" not in str(err.value)


def test_an_unhealthy_active_is_described_with_its_failing_checks():
    assert SICK.describe() == f"a: active, unhealthy (failing: {RPC})"
    assert (SICK.active, HEALTHY.active, WAITING.active) == (True, True, False)


# -- observe() probes the port each node's container serves (status, check, promote and deploy share it) --------
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
def test_observe_probes_the_port_the_container_serves(monkeypatch, a_label, b_label, probes):
    from nodeops import deploy
    from nodeops.remote import CommandResult

    inspect = {"10.0.0.1": inspected(a_label), "10.0.0.2": inspected(b_label) if b_label != "" else None}
    gets = []

    class Fleet:
        settings = types.SimpleNamespace(command_timeout=5)

        def connect(self, node):
            return node.host, 1

        def http_get(self, host, port, path):
            gets.append((host, port, path))
            return (200, b"{}") if (host, port) == ("10.0.0.1", int(a_label or 6700)) else None

    def execute(conn, command, stdin=None, timeout=None):
        found = inspect[conn]
        return CommandResult(0, found, "") if found else CommandResult(1, "", "no such container")

    monkeypatch.setattr(deploy, "execute", execute)
    service = types.SimpleNamespace(name="svc", runtime="docker", nodes=[A, B])
    role = types.SimpleNamespace(port=6700, health="/health")
    job = types.SimpleNamespace(service=service, role=role)
    seen = promote.observe(deploy.ServiceDeploy(job, Fleet(), lambda *_a, **_k: None))
    assert gets == [(*p, "/health") for p in probes]
    assert seen["a"].serving  # the active stays the active when only the inventory's port changed


# -- a stop (Ctrl-C, SIGTERM) during a promotion: the handover finishes, then exit 130 saying what runs -----------
class Promoting:
    """ServiceDeploy's stand-in for promote(): what runs now, in standing()'s words."""

    def __init__(self, job, _fleet, _report):
        self.service, self.stop = job.service, None

    def standing(self):
        return "now: a waits (2.11.0, config c), b serves (2.11.0, config c)"


@pytest.mark.parametrize("stop_during", [False, True])
def test_a_stop_during_the_handover_ends_130_saying_what_runs(monkeypatch, stop_during):
    """Issue 13 review: SIGTERM during promote-standby's handover ended with exit 0; deploy ends 130."""
    from nodeops.errors import EXIT_INTERRUPTED, Interrupted, raise_failures
    from nodeops.stopping import StopRequests

    stop = StopRequests(lambda _line: None)

    def handover(run, _keep, _force):
        if stop_during:
            stop.requested.set()  # the signal's effect (nodeops.stopping), while the handover runs
        return {"service": "svc", "active": "b", "outage_seconds": 0.8, "outage_measured": True}

    monkeypatch.setattr(promote, "ServiceDeploy", Promoting)
    monkeypatch.setattr(promote, "promote_service", handover)
    said = []
    job = types.SimpleNamespace(service=types.SimpleNamespace(name="svc", nodes=(A, B)))
    results = promote.promote([], [job], lambda *a, **_k: said.append(a), False, stop=stop)
    if not stop_during:
        assert results == [{"service": "svc", "active": "b", "outage_seconds": 0.8, "outage_measured": True}]
        return
    (result,) = results
    assert isinstance(result["error"], Interrupted), result
    with pytest.raises(Exception) as ended:
        raise_failures(results)
    assert ended.value.exit_code == EXIT_INTERRUPTED
    assert str(ended.value) == ("svc: the promotion was complete when the stop came; now: a waits (2.11.0, config c), "
                                "b serves (2.11.0, config c)")  # fmt: skip
    assert said[-1][2].startswith("STOPPED: svc: the promotion was complete")
