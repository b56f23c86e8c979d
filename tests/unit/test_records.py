"""The audit log's lines and each verb's result (nodeops.records): docs/audit.schema.json is the types' own schema,
what an operation writes validates against it (and against docs/events.schema.json, as printed), and what is read
back goes through the same types, a line that does not match refused in one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from nodeops import ledger, operation
from nodeops.deploy import ServiceDeploy, per_service
from nodeops.errors import Interrupted, OperationFailed, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.now import now_record
from nodeops.inventory import load_inventory
from nodeops.operation import Operation, audit_log
from nodeops.records import (
    AlreadyThere,
    BackedUp,
    Deployed,
    DryRun,
    End,
    Promoted,
    Released,
    Restored,
    Rotated,
    Start,
    Step,
    audit_schema,
    entry,
)
from nodeops.run.report import Reporter
from tests.unit.test_deploy_preflight import ENV

DOCS = Path(__file__).resolve().parents[2] / "docs"
AUDIT = json.loads((DOCS / "audit.schema.json").read_text())
EVENTS = json.loads((DOCS / "events.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(AUDIT)
DIGEST = "sha256:" + "d" * 64


def test_the_checked_in_schema_is_the_types_own():
    """Regenerate with: .venv/bin/python -m nodeops.records > docs/audit.schema.json"""
    jsonschema.Draft202012Validator.check_schema(AUDIT)
    assert audit_schema() == AUDIT, "docs/audit.schema.json differs from nodeops/records.py: regenerate it"


def box(state: str = "running", config: str = "c" * 64) -> Container:
    labels = {"io.nodeops.version": "2.11.0", "io.nodeops.config": config, "io.nodeops.digest": DIGEST,
              "io.nodeops.image": f"reg/cl:2.11.0@{DIGEST}",
              "io.nodeops.secrets": json.dumps({"db": "v2"})}  # fmt: skip
    return Container("nodeops-cl", state == "running", state, "sha256:i", labels)


def every_result(job) -> list[dict]:
    """One result of every kind, each built by its writer's type from what the writer has (a deploy's recorded
    inputs: ServiceDeploy.ran over a real Job; what runs: now_record over containers as inspected)."""
    now = now_record({"a": (box(), False, ("EVM.RPC",)), "b": None, "c": (None, False, ()), "d": (box("exited"),
                      False, ())})  # fmt: skip
    run = ServiceDeploy(job, None, Reporter.silent())
    run.digest = DIGEST
    deployed = Deployed(service="cl", changed=True, active="a", failing=["EVM.RPC"], **run.ran()).record()
    holder = operation.holder_record("0123456789abcdef", ["deploy", "--env", "t"], {"GITHUB_ACTOR": "ci"})
    failed = per_service(Reporter.silent(), "cl", lambda: (_ for _ in ()).throw(Unsafe("cl: refused")),
                         lambda: now)  # fmt: skip
    return [
        {**deployed, "now": now},
        DryRun(service="cl", changed=True, planned=["replace b"], secrets_moved=[]).record(),
        {**AlreadyThere(service="cl", changed=False, active="a", already_at="2.10.0").record(), "now": now},
        {**Promoted(service="cl", active="b", outage_seconds=None, outage_measured=False).record(), "now": now},
        Promoted(service="cl", active="b", outage_seconds=1.25).record(),  # --force: no outage_measured
        {**Rotated(service="cl", rotated=["db"], outage_seconds=0.4).record(), "now": now},
        BackedUp(
            service="cl",
            backup="20261130T100000Z",
            object="t/cl/x.age",
            bytes=10,
            plain_bytes=20,
            seconds=1.0,
            deleted=[],
        ).record(),  # fmt: skip
        Restored(service="cl", backup="20261130T100000Z", database="cl_drill", seconds=2.5, key_rows=3).record(),
        Released(service="cl", released=holder).record(),
        Released(service="cl", released={}).record(),  # a holder record the bastion could not read
        failed,
    ]


@pytest.fixture
def op(job, tmp_path, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return Operation(load_inventory(tmp_path / "t.yaml"), "deploy", ["cl"], Reporter.silent(), {"to": None})


@pytest.mark.parametrize("exc", [None, OperationFailed("cl: failed"), Interrupted("cl: stopped"), KeyError("x")])
def test_what_an_operation_writes_is_valid_and_reads_back_the_same(op, job, exc):
    """The start and end entries as Operation stores them (its pure parts), with a result of every kind: valid
    against docs/audit.schema.json and, as printed, docs/events.schema.json; read back through the types unchanged;
    no secret value anywhere in them."""
    op.results = every_result(job)
    for stored in (op.start_entry(), op.end_entry(exc), op.entry("step", service="cl", node="a", message="m",
                                                                 digest=DIGEST)):  # fmt: skip
        line = json.dumps(stored)
        assert not list(VALIDATOR.iter_errors(json.loads(line))), line
        jsonschema.validate(json.loads(line), EVENTS)
        assert entry(json.loads(line)).record() == json.loads(line)
        assert not job.redact.leaks(line), "a secret value in an audit line"
    assert {type(r).__name__ for r in entry(op.end_entry(exc)).results} == {
        "Deployed",
        "DryRun",
        "AlreadyThere",
        "Promoted",
        "Rotated",
        "BackedUp",
        "Restored",
        "Released",
        "Failed",
    }


def test_the_end_entry_of_a_writer_that_drifted_is_refused_not_written(op, job):
    """A result with a field its type does not declare never reaches the log: the type refuses it."""
    op.results = [{"service": "cl", "changed": True, "active": "a", "image": "i", "config": "c", "secret": "x"}]
    with pytest.raises(ValueError, match="secret"):
        op.end_entry(None)


class Session:
    """The bastion session that holds the run's locks, as Operation._release speaks to it."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    def send_line(self, line: str) -> None:
        self.sent.append(line)

    def readline(self) -> str:
        return "released\n"

    def close(self) -> None:
        self.closed = True


def test_a_result_outside_its_type_still_releases_the_locks(op, monkeypatch):
    """The run ends on the writer's bug, but leaves no stale lock and no open connection behind."""
    closed = []
    monkeypatch.setattr(op.fleet, "close", lambda: closed.append(True))
    op.report.sinks.append(op._step)  # as __enter__ leaves it
    (ledger,) = op.ledgers  # the one bastion's
    ledger.session = session = Session()
    op.results = [{"service": "cl", "surprise": 1}]
    with pytest.raises(ValueError, match="surprise"):
        op.__exit__(None, None, None)
    assert session.sent == ["release"] and session.closed and closed == [True] and ledger.session is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda e: e["results"][0].update(image=7), "results/0/image as Deployed"),  # a renamed or retyped field
        (lambda e: e["results"][0].pop("config"), "results/0/config as Deployed"),
        (lambda e: e.update(result="maybe"), "result"),
        (lambda e: e.update(run="not-a-run-id"), "run"),
        (lambda e: e.update(event="ended"), "the line"),
    ],
    ids=["retyped", "missing", "unknown-result", "bad-run", "unknown-event"],
)
def test_a_damaged_line_is_refused_by_the_schema_and_the_type(op, job, change, where):
    op.results = every_result(job)[:1]
    damaged = op.end_entry(None)
    change(damaged)
    assert list(VALIDATOR.iter_errors(damaged))
    with pytest.raises(OperationFailed) as err:
        entry(damaged, "s/t/audit.jsonl on the bastion")
    message = str(err.value)
    assert "\n" not in message and err.value.exit_code == 1
    assert message.startswith("s/t/audit.jsonl on the bastion: the entry event ") and f"({where}: " in message


def test_each_kind_of_line_has_its_type():
    kinds = AUDIT["$defs"]
    assert {"Start", "Step", "End", "Now", "NodeNow"} <= set(kinds)
    assert [t.__name__ for t in (Start, Step, End)] == ["Start", "Step", "End"]
    assert kinds["Step"].get("additionalProperties", True) is not False  # a step may carry more fields
    assert kinds["Deployed"]["additionalProperties"] is False  # a result carries only its declared fields


def test_fab_audit_and_rollback_read_the_log_through_the_types(op, job, tmp_path, monkeypatch):
    """operation.audit_log, over the bastion's real read script run by sh in a scratch state_dir: the entries come
    back typed; a line an older nodeops wrote (same shape) reads; a damaged one is one line naming it; a line cut by a
    crash is skipped as before."""
    op.results = every_result(job)[:1]
    log = tmp_path / ".nodeops" / "t" / "audit.jsonl"
    log.parent.mkdir(parents=True)
    lines = [op.start_entry(), op.entry("step", service="cl", node="a", message="m"), op.end_entry(None)]
    log.write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"event": "end", "cut')

    def on_bastion(_fleet, _name, _label, script, _stdin=None):
        return subprocess.run(script, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=30).stdout

    monkeypatch.setattr(ledger, "on_bastion", on_bastion)
    got = audit_log(op.fleet, 10)
    assert [type(e).__name__ for e in got] == ["Start", "Step", "End"]
    assert [e.record() for e in got] == lines
    damaged = {**lines[2], "results": [{**lines[2]["results"][0], "variables": "LOG_LEVEL=info"}]}
    log.write_text("".join(json.dumps(e) + "\n" for e in [*lines, damaged]))
    with pytest.raises(OperationFailed) as err:
        audit_log(op.fleet, 10)
    assert str(err.value) == (f".nodeops/t/audit.jsonl on the bastion: the entry event end run {op.run} op deploy "
                              f"time {damaged['time']} is not one this nodeops can read (results/0/variables as "
                              "Deployed: Input should be a valid dictionary); see docs/audit.schema.json")  # fmt: skip
