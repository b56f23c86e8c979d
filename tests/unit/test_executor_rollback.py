"""A rollback run through the service runner as tables: (a rollback's inputs, as rollback.the_start makes them from an
audit record: the image pinned to the digest that ran, the text of the files that ran; what the pair shows; what each
step does) -> the steps asked, in order, the lines sent to the nodes, and how the run ends.

test_rollback.py covers what a rollback chooses (the target, the question, the refusals, the inputs); this module
runs those inputs. The change is the runner tables' (test_executor_runner.Undone: each failure ended by the real
WhatServes) whose replace, start, upload and shred are the real ServiceChange node steps, sending their lines to a
fake of the one edge call (tests/unit/fake_edge.py); the waits and the handover are recorded stand-ins (their own
tables). The lab's rollback test (tests/e2e/test_deploy.py) proves the whole on real nodes."""

from __future__ import annotations

import re
import types
from types import MappingProxyType

import pytest

from nodeops import program
from nodeops.activation import MODELS
from nodeops.errors import EXIT_FAILED, OperationFailed
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView
from nodeops.job import recorded_texts
from nodeops.plan import Desired
from nodeops.rollback import finish_command, the_start
from nodeops.run import confirm as confirm_module
from nodeops.run.change import ServiceChange
from nodeops.run.runner import ChangeFailed, ServiceRunner
from tests.conftest import override_config
from tests.unit.fake_edge import FakeEdge
from tests.unit.test_executor_runner import Undone
from tests.unit.test_rollback import DIGEST, recorded_run, targets

NOW = Container("nodeops-cl", True, "running", "sha256:now", labels={"io.nodeops.config": "now"})  # 2.11.0, today


class RollingBack(Undone):
    """The runner tables' change (Undone) on a real rollback job, its node steps ServiceChange's own over ``edge``."""

    held_back, given_hot, shredded = MappingProxyType({}), frozenset(), MappingProxyType({})
    on, upload, start_new, shred = ServiceChange.on, ServiceChange.upload, ServiceChange.start_new, ServiceChange.shred

    def __init__(self, job, fails, cut=()) -> None:  # noqa: D107
        super().__init__(fails, {}, {"a": NOW, "b": NOW}, cut)
        self.job, self.service, self.runtime, self.digest = job, job.service, job.service.runtime, DIGEST
        self.edge, self.conns, self.ports = FakeEdge(), {"a": "link to a", "b": "link to b"}, {}
        self.fleet = types.SimpleNamespace(settings=types.SimpleNamespace(command_timeout=30),
                                           inventory=types.SimpleNamespace(environment="t"))  # fmt: skip

    def health(self, node):  # the active answers, until the handover: then the node it handed over to
        return ("handover a b" in self.calls) == (node.name == "b"), ()

    def replace(self, node, hot=False):
        self._do(f"replace {node}")
        ServiceChange.replace(self, node, hot)


@pytest.fixture
def rolled_back(job, tmp_path):
    """(what ran: the record a deploy of ``job`` left, its rollback's inputs): the config.toml template overridden
    since, so the text that ran differs from today's rendering of the same variables."""
    rec = recorded_run(job)
    override_config(tmp_path, "SecureCookies = false", "SecureCookies = true")
    started, _notes = the_start(*targets(job, tmp_path, rec), rec)
    return rec, started


def short(sent) -> str:
    """A line sent, as the tables name it: "NODE: run IMAGE", "NODE: write FILE", "NODE: shred FILES", ..."""
    node, command = sent.link.removeprefix("link to "), sent.command
    if m := re.match(r"docker run .* (\S+) node", command):
        command = f"run {m[1]}"
    elif m := re.search(r"/run/nodeops/cl/(\S+) && cat >", command):
        command = f"write {m[1]}"
    elif "install -d" in command:
        command = "prepare"
    elif command.startswith("for f in"):
        command = "shred " + ",".join(re.findall(r"/run/nodeops/cl/([^' ;]+)", command))
    elif "docker rename nodeops-cl nodeops-cl-previous" in command:
        command = "set aside"
    return f"{node}: {command}"


def started_on(node: str, job) -> list[str]:
    """The lines a replace sends to ``node`` for ``job``: its running container set aside and stopped, its files
    written, `docker run` of the pinned image."""
    pinned = f"smartcontract/chainlink:2.10.0@{DIGEST}"
    writes = [f"{node}: write {name}" for name in job.rendered.files]
    return [f"{node}: set aside", f"{node}: docker stop --time 10 nodeops-cl-previous", f"{node}: prepare", *writes,
            f"{node}: run {pinned}"]  # fmt: skip


def rollback_plan(started):
    """The plan a rollback to ``started`` makes for the pair (ServiceDeploy.run, through the lease model): a serving
    on today's version, b its standby."""
    a, b = started.service.nodes
    seen = {"a": NodeView(a, NOW, True), "b": NodeView(b, NOW, False)}
    return MODELS["lease"].plan_change(started.service, seen, Desired(started.service.image, DIGEST,
                                                                      started.rendered.config_hash))  # fmt: skip


EXITED = OperationFailed("cl b: not a waiting standby (container exited)")
CUT_A = OperationFailed("cl a: connection lost: EOF")


@pytest.mark.parametrize(
    ("fails", "cut", "calls", "message"),
    [
        # rolled back: standby first, one handover, the old active last
        ({}, (), ["keep b a", "replace b", "await-waiting b", "handover a b", "replace a", "await-waiting a"],
         None),
        # the standby's container exits on the rolled-back inputs: put back, the active untouched, what serves said
        ({"await-waiting b": EXITED}, (), ["keep b a", "replace b", "await-waiting b", "restore b", "confirm"],
         "cl b: not a waiting standby (container exited); b put back; a serves"),
        # the old active cut off after the handover, and so its undo: b serves the rolled-back version; the command
        # that finishes the change is the rollback's (a deploy would roll forward: the inventory is not changed)
        ({"replace a": CUT_A, "restore a": CUT_A}, ("a",),
         ["keep b a", "replace b", "await-waiting b", "handover a b", "replace a", "restore a", "confirm"],
         "cl a: connection lost: EOF; putting a's previous container back failed too: cl a: connection lost: EOF; "
         "b serves; a is unreachable, so the pair has no standby: once it is back, {p} rollback --env t --service "
         "cl --to 2.10.0"),
    ],
    ids=["rolled-back", "standby-exits", "old-active-unreachable"],
)  # fmt: skip
def test_a_rollback_starts_the_pinned_image_on_the_text_that_ran(rolled_back, fails, cut, calls, message, monkeypatch):
    for name, value in (("LB_TIMEOUT", 0.05), ("SERVE_TIMEOUT", 0.05), ("POLL", 0.01)):
        monkeypatch.setattr(confirm_module, name, value)
    rec, started = rolled_back
    plan = rollback_plan(started)
    change = RollingBack(started, fails, cut)
    change.rerun = finish_command("t", "cl", rec)  # as nodeops.rollback sets it (ServiceChange.finishing)
    if message is None:
        ServiceRunner(change).apply(plan)
    else:
        with pytest.raises(ChangeFailed) as err:
            ServiceRunner(change).apply(plan)
        assert str(err.value) == message.format(p=program())
        assert err.value.exit_code == EXIT_FAILED
    assert change.calls[: len(calls)] == calls and len(change.calls) == len(calls)
    sent = [short(s) for s in change.edge.sent]
    first = started_on("b", started)
    assert sent[: len(first)] == first  # the standby first, on the rolled-back inputs
    runs = [s for s in change.edge.sent if s.command.startswith("docker run ")]
    for run in runs:  # each labelled with what it really runs: the config hash the rollback announced, the digest
        assert f"io.nodeops.config={started.rendered.config_hash}" in run.command
        assert f"io.nodeops.digest={DIGEST}" in run.command
    assert len(runs) == (2 if message is None else 1)
    config = [s.stdin for s in change.edge.sent if short(s).endswith("write config.toml")]
    assert config and all(text == rec.files["config.toml"].encode() for text in config)  # the text that ran
    assert b"SecureCookies = true" not in config[0]  # not today's override


def test_the_rollback_inputs_differ_from_todays_rendering(job, tmp_path, rolled_back):
    """So the table above can fail: today's templates render another config.toml for the same variables, and the
    rollback's image is pinned to the digest that ran."""
    rec, started = rolled_back
    today = targets(job, tmp_path, rec)[0]
    assert today.rendered.files["config.toml"].data != rec.files["config.toml"].encode()
    assert started.service.image == f"smartcontract/chainlink:2.10.0@{DIGEST}" != job.service.image
    assert recorded_texts(started)["config.toml"] == rec.files["config.toml"]


def test_a_rollback_stopped_after_its_handover_names_the_rollback_that_finishes_it(rolled_back):
    """Ctrl-C once b took over on the rolled-back inputs: a waits again on its own, and the way on is the rollback
    (a deploy would roll b forward again)."""
    from nodeops.errors import Interrupted
    from tests.unit.test_executor_runner import Stop

    rec, started = rolled_back
    plan = rollback_plan(started)
    change = RollingBack(started, {})
    change.rerun = finish_command("t", "cl", rec)
    change.stop = Stop(change, 3)  # set once the handover was said
    with pytest.raises(Interrupted) as err:
        ServiceRunner(change).apply(plan)
    assert f"b runs this change, a does not: {program()} rollback --env t --service cl --to 2.10.0 finishes it" in (
        str(err.value)
    )
