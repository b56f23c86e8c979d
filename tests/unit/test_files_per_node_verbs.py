"""Issue 16: files per node in the verbs that read what runs. A role whose templates read the node gives each node its
own files and config hash (test_files_per_node.py); ``fab status``'s mixed inputs and ``fab check``'s drift compare
each node with its own rendering (Job.at), never with the first node's; the audit record keeps each node's config and
files, ``fab rollback`` reads what runs through them and starts each node on its own, and a rotation's roll renders
each node's files on the new secret. Tables over the groups tables' pool (relays r1, r2 under all; producers a, b
under keys), deployed on the keys tables' played container engine (no host touched). A role that renders once reads
as before (test_status.py, test_rollback.py, test_executor_rotate.py untouched; test_check.py's three Job fakes gain
config_hashes, no assertion changed)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from nodeops.activation import model_of
from nodeops.check import check_drift
from nodeops.errors import InvalidInput
from nodeops.inventory import SecretRef
from nodeops.records import Deployed
from nodeops.rollback import pick, running_on, the_start, through_records
from nodeops.rotate.roll import as_recorded as roll_recorded
from nodeops.rotate.roll import job_with
from nodeops.secrets import Secret
from nodeops.status import mixed_inputs, service_status
from tests.unit import test_files_per_node as files_per_node
from tests.unit.test_executor_keys import NAME, Engine, Keys, make_job, seen
from tests.unit.test_files_per_node import fresh_deploy, per_node_job

NOW = datetime.datetime(2026, 12, 1, 21, 0, tzinfo=datetime.UTC)


def deployed(tmp_path, configs: dict[str, str] | None = None, labels: dict[str, dict[str, str]] | None = None):
    """The pool deployed from nothing, then each node's container relabelled: ``configs`` {node: its config label},
    ``labels`` {node: {label: value}} (as a container started on other inputs would carry). (job, views)."""
    job = per_node_job(tmp_path)
    engine, _want = fresh_deploy(job)
    for node, config in (configs or {}).items():
        engine.boxes[node][NAME]["labels"]["io.nodeops.config"] = config
    for node, more in (labels or {}).items():
        engine.boxes[node][NAME]["labels"].update({f"io.nodeops.{k}": v for k, v in more.items()})
    return job, seen(Keys(job, engine))


OLD = {"r1": "o-r1", "r2": "o-r2", "a": "o-p", "b": "o-p"}  # every node on its files of an older inventory


@pytest.mark.parametrize(
    ("configs", "labels", "state", "mixed"),
    [
        (None, None, "healthy", None),  # each on its own: one deploy, not mixed
        ({"r2": "o-r2"}, None, "mixed", ["r2"]),  # r2 left on older files (a deploy stopped half way)
        (OLD, None, "healthy", None),  # all on an older inventory's files, of the same variables and secrets
        (OLD, {"r1": {"variables": '{"X":"1"}'}}, "mixed", ["r1"]),  # r1 started on other variables
        (None, {"b": {"version": "1"}}, "mixed", []),  # the standby on another version
    ],
    ids=["each-its-own", "one-behind", "all-behind-alike", "behind-unlike", "version"],
)  # fmt: skip
def test_status_compares_each_node_with_its_own_rendering(tmp_path, configs, labels, state, mixed):
    """A pool deployed at once read as mixed: its check compared every node with the first node's config hash, and
    each relay's files are its own. ``mixed`` names every running node when they differ."""
    job, views = deployed(tmp_path, configs, labels)
    result = service_status(job, views, None, None, None, NOW)
    assert result["state"] == state
    if mixed is None:
        assert result["mixed"] is None
    else:
        assert [part.split()[0] for part in result["mixed"].split(", ")] == ["r1", "r2", "a", "b"]
        assert all(f"{n} runs" in result["mixed"] for n in mixed)


def test_a_role_that_renders_once_compares_the_labels_as_they_are(tmp_path):
    """Without per-node hashes (own {}), two nodes on different config labels are mixed, as before."""
    _job, views = deployed(tmp_path)
    assert mixed_inputs(list(views.values())) is not None  # the pool's own hashes differ: mixed, read as one config
    assert mixed_inputs(list(views.values()), _job.config_hashes()) is None


@pytest.mark.parametrize(
    ("configs", "behind"),
    [(None, []), ({"r2": "o-r2"}, ["r2"]), ({"a": "o-p", "b": "o-p"}, ["a", "b"])],
    ids=["each-its-own", "one-relay", "producers"],
)  # fmt: skip
def test_check_drift_compares_each_node_with_its_own_rendering(tmp_path, configs, behind):
    job, views = deployed(tmp_path, configs)
    verdict = check_drift(views, job.rendered.config_hash, job.rendered.secret_versions, job.config_hashes())
    if not behind:
        assert verdict == ("pass", "every running node is on the inventory's configuration")
    else:
        assert verdict[0] == "warn" and verdict[1].startswith(f"{', '.join(behind)} not on the inventory's")


# ---------------------------------------------------------------- the audit record, and rollback


def record_of(job, engine) -> Deployed:
    """The audit result a deploy of ``job`` writes (ServiceDeploy.ran), read back through its type."""
    run = Keys(job, engine)
    return Deployed(service="pool", changed=True, **run.ran())


def test_the_audit_record_keeps_each_nodes_config_and_files(tmp_path):
    job = per_node_job(tmp_path)
    engine, _ = fresh_deploy(job)
    record = Deployed.model_validate(record_of(job, engine).record())  # as stored and read back
    assert {n: r.config for n, r in (record.nodes or {}).items()} == job.config_hashes()
    assert {n: r.files["node.conf"] for n, r in (record.nodes or {}).items()} == {
        "r1": "r2 a b \n", "r2": "r1 a b \n", "a": "r1 r2 b \n", "b": "r1 r2 a \n"}  # fmt: skip
    assert record.config == job.rendered.config_hash  # the first node's, as before


def test_a_role_that_renders_once_records_no_nodes(tmp_path):
    job = make_job(tmp_path)
    assert "nodes" not in Keys(job, Engine({})).ran()  # Chainlink's record is unchanged


def test_rollback_reads_what_each_node_runs_through_the_records_of_its_own(tmp_path):
    """A pool on one deploy's files: its relays' labels differ (each its own), so rollback's reading of what runs
    refused it as nodes on different configurations; each node's label is now read through the record that started
    it, and the record before is the one to go back to."""
    job = per_node_job(tmp_path)
    engine, _ = fresh_deploy(job)
    now = record_of(job, engine)
    before = now.model_copy(update={"image": "reg/node:1", "config": "c-old", "nodes": {}})
    views = list(seen(Keys(job, engine)).values())
    model = model_of(job.role)
    with pytest.raises(InvalidInput, match="different versions or configurations"):
        running_on(views, model)  # the labels as they are: the relays' differ
    read = through_records(views, [before, now])
    assert running_on(read, model) == ("2", now.config)
    assert pick([before, now], running_on(read, model), None, "pool") is before
    assert read_is_unchanged(views, through_records(views, [before]))  # no record of its own: labels as they are


def read_is_unchanged(views, read) -> bool:
    return [v.container.labels for v in views] == [v.container.labels for v in read]


def test_rollback_starts_each_node_on_its_own_recorded_files(tmp_path, monkeypatch):
    """The record's text is what each node ran: today's templates (changed since) are not what goes back, and no
    node is given the first node's files."""
    job = per_node_job(tmp_path)
    engine, _ = fresh_deploy(job)
    record = record_of(job, engine)
    monkeypatch.setattr(files_per_node, "PEERS", "{{ node.name }} changed since\n")
    today = per_node_job(tmp_path / "today")
    started, notes = the_start(today, today, record)
    assert {n: started.at(n).rendered.files["node.conf"].data.decode() for n in started.nodes} == {
        "r1": "r2 a b \n", "r2": "r1 a b \n", "a": "r1 r2 b \n", "b": "r1 r2 a \n"}  # fmt: skip
    assert started.config_hashes() == job.config_hashes()  # exactly what ran, each node its own hash
    assert notes == ["note: today's templates render node.conf differently from what ran then: the text that ran is "
                     "started"]  # fmt: skip


# ---------------------------------------------------------------- a rotation's roll


def with_refs(job):
    """``job`` whose service names a reference for each of its secrets (as an inventory's does)."""
    refs = {name: SecretRef("ci", f"x/{name}") for name in job.secrets}
    return dataclasses.replace(job, service=dataclasses.replace(job.service, secrets=refs))


def test_a_rolls_job_renders_each_node_its_own_files_on_the_new_secret(tmp_path):
    """A rotation's roll rendered the pending secret once, with no node (a role whose templates read the node could
    not render so), and kept each node's rendering of the old value: every node would have restarted on the old
    password."""
    job = with_refs(per_node_job(tmp_path))
    rolled = job_with(job, {"pw": Secret("n3w-pw-0123456789", "pw", "v2")})
    assert {n: rolled.at(n).rendered.files[".pw"].data for n in job.nodes} == dict.fromkeys(
        job.nodes, b"n3w-pw-0123456789\n")  # fmt: skip
    assert {n: rolled.at(n).rendered.files["node.conf"].data for n in job.nodes} == {
        n: job.at(n).rendered.files["node.conf"].data for n in job.nodes}  # fmt: skip
    assert set(rolled.config_hashes().values()).isdisjoint(job.config_hashes().values())  # the version moved


def test_a_rolls_check_of_the_active_uses_its_own_hash_at_its_recorded_versions(tmp_path):
    job = with_refs(per_node_job(tmp_path))
    engine, _ = fresh_deploy(job)
    views = seen(Keys(job, engine))
    assert {n: roll_recorded(job, n, v.container) for n, v in views.items()} == job.config_hashes()
