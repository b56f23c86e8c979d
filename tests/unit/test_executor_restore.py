"""Undoing a failed change on one node (nodeops.run.restore) as tables: (what the node holds, what the database now
records, how the restarted node behaves, what the edge answers) -> the lines sent, in order, the message, and the way
out when the change cannot be undone.

The change is a fake of what Restore asks of it (the Restorable protocol), whose node actions are the real
NodeActions sending their lines through a fake of the one edge call (tests/unit/fake_edge.py); the inputs are real
(the ``job`` fixture, rendered again by restore_job and job_for). The lab proves the same undoings on real hosts
(tests/e2e/test_restore.py)."""

from __future__ import annotations

import dataclasses
import re
import types

import pytest

from nodeops.activation import model_of
from nodeops.errors import EXIT_UNSAFE, InvalidInput, OperationFailed, Unsafe
from nodeops.facts.container import Container
from nodeops.inventory import load_inventory
from nodeops.job import input_labels, job_for
from nodeops.run import restore as restore_module
from nodeops.run.node import NodeActions
from nodeops.run.restore import Restore
from tests.unit.fake_edge import FakeEdge

NAME, PREVIOUS = "nodeops-cl", "nodeops-cl-previous"
NEW_IMAGE = "smartcontract/chainlink:2.11.0"  # the change's; the ``job`` fixture's (what ran before) is 2.10.0
DOWN = OperationFailed("cl b: not a waiting standby (container exited)")


def container_of(job, running: bool = True, name: str = NAME, **labels) -> Container:
    """A container started by nodeops on ``job``'s inputs (its labels as input_labels records them)."""
    recorded = {"config": job.rendered.config_hash, "version": "2.10.0", **input_labels(job), **labels}
    return Container(name=name, running=running, status="running" if running else "exited", image_id="sha256:1",
                     image=job.service.image,
                     labels={f"io.nodeops.{k}": v for k, v in recorded.items() if v is not None})  # fmt: skip


class FakeChange:
    """What Restore asks of a change (nodeops.run.restore.Restorable): ``found`` {(node, container name): Container};
    ``health`` {node: (200, failing)}; ``settles``: what the standby wait does (None: it waits; an error: raised).
    Its node actions are NodeActions over ``edge``; start_new, which builds `docker run`, is recorded as one line."""

    def __init__(self, ran, change, edge, found=None, health=None, settles=None, **state):
        self.job, self.service, self.edge = change, change.service, edge
        self.fleet = types.SimpleNamespace(inventory=state.pop("inventory", None))
        self.name = NAME
        self.found, self.answers, self.settles = found or {}, health or {}, settles
        self.ran_on = {"b": ran}
        self.was_running, self.moved = {"b": True}, {"b"}
        self.recorded, self.pulled, self.inexact_ok = "2.10.0", True, False
        self.ports, self.forward, self.stuck = {}, [], False
        self.said: list[str] = []
        self.waits = self
        self.model = model_of(change.role)
        for key, value in state.items():
            setattr(self, key, value)

    def on(self, node: str) -> NodeActions:
        return NodeActions("cl", node, f"link to {node}", runtime="docker", redact=self.job.redact, timeout=30,
                           say=lambda message, **_d: self.said.append(message), execute=self.edge)  # fmt: skip

    def inspect(self, node, name=None):
        return self.found.get((node, name or NAME))

    def health(self, node):
        return self.answers.get(node.name, (False, ()))

    def say(self, _node, message, **_data):
        self.said.append(message)

    def shred(self, node, names):
        self.on(node).shred(names)

    def upload(self, node, job=None):
        job = job or self.job
        self.on(node).upload({name: f.data for name, f in job.rendered.files.items()}, job.role.user)

    def start_new(self, _node, job=None):
        tag = (job or self.job).service.image.rsplit(":", 1)[1]
        self.edge.sent.append(types.SimpleNamespace(command=f"START NEW on {tag}"))

    def await_waiting(self, _node, _job):
        if self.settles is not None:
            raise self.settles
        return "the lease is held by a"


def short(command: str, job) -> str:
    """One line sent, as the tables name it: "rm nodeops-cl", "rename", "start", "upload", "write .api", "shred
    all" (every file of ``job``), "shred start" (the files it reads at start), "shred .env", "START NEW on TAG"."""
    if command.startswith("START NEW"):
        return command
    if m := re.match(r"docker rm --force (\S+)$", command):
        return f"rm {m[1]}"
    if command == f"docker rename {PREVIOUS} {NAME}":
        return "rename"
    if command == f"docker start {NAME}":
        return "start"
    if "install -d" in command:
        return "upload"
    if m := re.search(r"/run/nodeops/cl/(\S+) && cat >", command):
        return f"write {m[1]}"
    if command.startswith("for f in"):
        names = tuple(re.findall(r"/run/nodeops/cl/([^' ;]+)", command))
        return ("shred all" if names == tuple(job.all_files) else
                "shred start" if names == job.files_read("start") else "shred " + ",".join(names))  # fmt: skip
    return command


@pytest.fixture
def inventory(job, tmp_path):
    return load_inventory(tmp_path / "t.yaml")


@pytest.fixture
def change(job, inventory):
    """The change that failed: the inventory's service on 2.11.0, with another variable (what a fix forward names)."""
    service = dataclasses.replace(job.service, image=NEW_IMAGE,
                                  variables={**job.service.variables, "ROOT_DIR": "/root/cl"})  # fmt: skip
    return job_for(inventory, service, secrets=job.secrets)


def uploads(job) -> list[str]:
    return ["upload", *(f"write {name}" for name in job.rendered.files)]


# ---------------------------------------------------------------- rollback / restore: every branch


@pytest.mark.parametrize(
    ("case", "now", "settles", "health", "rules", "sent", "message", "stuck"),
    [
        # the runner named a node this run never set aside: nothing is sent
        ("untouched", "2.10.0", None, {}, [], [], "b's container was not touched", False),
        # it had no container before the change: the new one removed, every file shredded
        ("no-previous", "2.10.0", None, {}, [], ["rm nodeops-cl", "shred all"],
         "b had no previous container to put back", False),
        # the previous container was stopped when the change began: back, stopped, files shredded
        ("was-stopped", "2.10.0", None, {}, [], ["rm nodeops-cl", "rename", "shred all"],
         "b's previous container is back, stopped as it was", False),
        # it ran: back on its own inputs (its files again, never the change's), waits, start files shredded
        ("own-inputs", "2.10.0", None, {}, [], ["rm nodeops-cl", "rename", "OWN UPLOAD", "start", "shred start"],
         "b's previous container was started again on its own inputs, and it waits for the lease", False),
        # ... the database's version unreadable: as it was, under the node's own check (a note said)
        ("db-unreadable", OperationFailed("db: connection refused"), None, {}, [],
         ["rm nodeops-cl", "rename", "OWN UPLOAD", "start", "shred start"],
         "started again on its own inputs, and it waits for the lease", False),
        # ... it took the lease back at once (no other node held it): every file read, all shredded
        ("own-inputs-serves", "2.10.0", OperationFailed("took the lease"), {"b": (True, ())}, [],
         ["rm nodeops-cl", "rename", "OWN UPLOAD", "start", "shred all"], "and it holds the lease", False),
        # ... it came back down: said with the wait's reason, every file shredded
        ("own-inputs-down", "2.10.0", DOWN, {}, [], ["rm nodeops-cl", "rename", "OWN UPLOAD", "start", "shred all"],
         f"and it is down ({DOWN})", False),
        # the new node migrated the database: the previous container removed, its inputs started on 2.11.0
        ("migrated", "2.11.0", None, {}, [], ["rm nodeops-cl", "rm nodeops-cl-previous", "START NEW on 2.11.0",
                                              "shred start"],
         "b's previous inputs were started again on 2.11.0, and it waits for the lease", False),
        # a database newer than both images: the previous container back, stopped, exit 4 (stuck)
        ("newer-than-both", "2.12.0", None, {}, [], ["rm nodeops-cl", "rename", "shred all"],
         "b's previous container is back, stopped: 2.10.0 cannot run on the database", True),
        # the rename fails: restore says it, raises nothing (what serves is confirmed after)
        ("rename-fails", "2.10.0", None, {}, [(r"^docker rename", (1, "", "Error: no such container"))],
         ["rm nodeops-cl", "rename"],
         "boom; putting b's previous container back failed too: cl b: `docker rename` failed: Error: no such "
         "container", False),
        # the node is cut off: the edge's own error, said, nothing sent after it
        ("cut-off", "2.10.0", None, {}, [(r"^docker rm", OperationFailed("cl-b: connection lost: EOF"))],
         ["rm nodeops-cl"], "boom; putting b's previous container back failed too: cl-b: connection lost: EOF",
         False),
        # the start of the previous container fails: said, its files already written
        ("start-fails", "2.10.0", None, {}, [(r"^docker start", (125, "", "Error: OCI runtime error"))],
         ["rm nodeops-cl", "rename", "OWN UPLOAD", "start"],
         "putting b's previous container back failed too: cl b: `docker start` failed: Error: OCI runtime error",
         False),
    ],
    ids=["untouched", "no-previous", "was-stopped", "own-inputs", "db-unreadable", "own-inputs-serves",
         "own-inputs-down", "migrated", "newer-than-both", "rename-fails", "cut-off", "start-fails"],
)  # fmt: skip
def test_restore_puts_the_previous_container_back_or_says_why_not(
    job, change, inventory, monkeypatch, case, now, settles, health, rules, sent, message, stuck
):
    def read(_fleet, _job):
        if isinstance(now, Exception):
            raise now
        return now

    monkeypatch.setattr(restore_module, "recorded_version", read)
    previous = {("b", PREVIOUS): container_of(job, running=case != "was-stopped", name=PREVIOUS)}
    state = {
        "untouched": {"moved": set()},
        "no-previous": {"found": {}},
        "was-stopped": {"was_running": {"b": False}},
    }.get(case, {})
    found = state.pop("found", previous)
    edge = FakeEdge(rules=rules)
    run = FakeChange(job, change, edge, found=found, health=health, settles=settles, inventory=inventory, **state)
    said = Restore(run).restore("b", "boom")
    expected = [line for s in sent for line in (uploads(job) if s == "OWN UPLOAD" else [s])]
    assert [short(c, job) for c in edge.commands] == expected
    assert said.startswith("boom; ") and message in said, said
    assert run.stuck is stuck
    assert not job.redact.leaks(said) and not change.redact.leaks(said)
    if case in ("migrated", "newer-than-both"):
        (forward,) = run.forward
        assert "correct variable ROOT_DIR in the inventory, then deploy" in forward, forward
    else:
        assert run.forward == []
    if case == "db-unreadable":
        assert any("the database's version is unknown" in line for line in run.said)
    if case == "own-inputs":  # the files written are the previous inputs', never the change's
        written = [s.stdin for s in edge.sent if getattr(s, "stdin", None)]
        assert written and b"/root/cl" not in b"".join(written)


# ---------------------------------------------------------------- keep_restorable: learnt before the change


@pytest.mark.parametrize(
    ("labels", "inexact_ok", "outcome", "said"),
    [
        ({}, False, "own", []),
        ({"config": "0" * 64}, False, "own", ["note: the role's templates or defaults, or a secret file (aws-kms), "
                                              "changed since nodeops-cl started (its inputs render to config"]),
        ({"variables": None}, False, Unsafe, []),
        ({"variables": None}, True, "change", ["warning: cl b: the inputs container nodeops-cl was started from "
                                               "cannot be rendered again"]),
        ("no container", False, "nothing", []),
    ],
    ids=["recorded", "templates-changed", "unrecorded-refused", "unrecorded-inexact", "no-container"],
)  # fmt: skip
def test_keep_restorable_learns_what_each_container_ran_on_or_refuses_before_anything_changed(
    job, change, inventory, labels, inexact_ok, outcome, said
):
    found = {} if labels == "no container" else {("b", NAME): container_of(job, **labels)}
    edge = FakeEdge()
    run = FakeChange(job, change, edge, found=found, inventory=inventory, inexact_ok=inexact_ok,
                     ran_on={}, was_running={})  # fmt: skip
    if outcome is Unsafe:
        with pytest.raises(Unsafe) as err:
            Restore(run).keep_restorable(["b"])
        assert err.value.exit_code == EXIT_UNSAFE and "--allow-inexact-restore" in str(err.value)
        assert run.ran_on == {}
        return
    Restore(run).keep_restorable(["b", "b"])  # a node asked for twice is learnt once
    assert edge.commands == []  # learning reads what inspect found; it sends nothing
    assert [line[: len(s)] for line, s in zip(run.said, said, strict=True)] == said
    if outcome == "nothing":
        assert run.ran_on == {} and run.was_running == {}
        return
    assert run.was_running == {"b": True}
    if outcome == "change":
        assert run.ran_on["b"] is run.job
        return
    learnt = run.ran_on["b"]  # what the container ran on, not the change's inputs
    assert learnt.service.image == job.service.image and learnt.service.variables == job.service.variables
    assert learnt.rendered.secret_versions == job.rendered.secret_versions


def test_new_change_forgets_what_was_learnt(job, change, inventory):
    run = FakeChange(job, change, FakeEdge(), inventory=inventory)
    Restore(run).new_change()
    assert (run.ran_on, run.was_running, run.moved) == ({}, {}, set())


# ---------------------------------------------------------------- start_again: the old active of a handover


@pytest.mark.parametrize(
    ("again", "rules", "sent", "result"),
    [
        ("own", [], ["OWN UPLOAD", "start"], "on its own inputs"),
        ("change", [], ["rm nodeops-cl", "START NEW on 2.11.0"], f"on its own inputs, on {NEW_IMAGE}"),
        ("own", [(r"^docker start", (1, "", "Error: boom"))], ["OWN UPLOAD", "start"],
         OperationFailed("cl b: `docker start` failed: Error: boom")),
        ("change", [(r"^docker rm", (1, "", "Error: busy"))], ["rm nodeops-cl"],
         OperationFailed("cl b: `docker rm` failed: Error: busy")),
    ],
    ids=["own", "on-the-change-image", "start-fails", "remove-fails"],
)  # fmt: skip
def test_start_again_starts_the_same_container_or_a_new_one_on_the_image_that_runs(
    job, change, inventory, again, rules, sent, result
):
    edge = FakeEdge(rules=rules)
    run = FakeChange(job, change, edge, inventory=inventory)
    on_new_image = dataclasses.replace(job, service=dataclasses.replace(job.service, image=NEW_IMAGE))
    inputs = job if again == "own" else on_new_image
    if isinstance(result, Exception):
        with pytest.raises(OperationFailed, match=re.escape(str(result))):
            Restore(run).start_again("b", inputs)
    else:
        assert Restore(run).start_again("b", inputs) == result
    expected = [line for s in sent for line in (uploads(job) if s == "OWN UPLOAD" else [s])]
    assert [short(c, job) for c in edge.commands] == expected


def test_inputs_the_role_refuses_on_the_changes_image_leave_the_node_stopped_saying_why(
    job, change, inventory, monkeypatch
):
    """The database moved to 2.11.0 and the role does not render the previous inputs on 2.11.0 (a variable it no
    longer takes, say): the previous container stays stopped, exit 4, the reason in the way out; asked twice (the
    handover's undo, then the runner's), the way out is said once."""

    def refuse(*_a, **_k):
        raise InvalidInput("services.cl.variables.OLD: unknown to role chainlink")

    monkeypatch.setattr(restore_module, "recorded_version", lambda _fleet, _job: "2.11.0")
    monkeypatch.setattr(restore_module, "job_for", refuse)
    edge = FakeEdge()
    previous = {("b", PREVIOUS): container_of(job, name=PREVIOUS)}
    run = FakeChange(job, change, edge, found=previous, inventory=inventory)
    said = Restore(run).restore("b", "boom")
    assert "b's previous container is back, stopped: 2.10.0 cannot run on the database" in said
    assert [short(c, job) for c in edge.commands] == ["rm nodeops-cl", "rename", "shred all"]
    Restore(run).rollback("b", "again")
    (forward,) = run.forward
    assert run.stuck and "its inputs do not render on 2.11.0: services.cl.variables.OLD: unknown to role" in forward
