"""Issue 16 (finding F5): a node's inputs are what it runs. A rotation of a hot secret (a pool's KES key) restarts
the holder alone onto its new version; a node that gets no hot file (a relay, the standby) runs on no hot secret, so
its labels, its config hash and every verb's comparison leave those secrets' versions out, and the holder's carry the
versions it runs (render.Rendered.config, Rendered.versions). Before, every node recorded and was compared on them:
after every `fab rotate-secrets --secret kes` the pool read `mixed` (degraded) and the next deploy restarted both
relays and the standby.

Tables over the groups tables' pool with a file per node (test_files_per_node: relays r1, r2 under all; producers a,
b under keys), its secrets read with backend versions, deployed from nothing on the played container engine, then
rotated as the issued rotation does it (the holder a alone replaced in place with the hot keys onto kes v2), the
inventory then reading kes v2 (finishSecret moved AWSCURRENT). Each test fails on the code before."""

from __future__ import annotations

import dataclasses
import datetime
import json
import types

import pytest

from nodeops import promote
from nodeops.activation import model_of
from nodeops.check import check_drift
from nodeops.errors import InvalidInput
from nodeops.job import Job, rendering, restore_job, run_spec
from nodeops.plan import Desired, ServicePlan, Step
from nodeops.records import Deployed
from nodeops.rollback import already_at, pick, running_on, the_start, through_records
from nodeops.secrets import Secret
from nodeops.status import service_status
from tests.unit.test_executor_keys import NAME, Engine, Keys, make_job, seen
from tests.unit.test_files_per_node import fresh_deploy, per_node_job

NOW = datetime.datetime(2026, 12, 2, 0, 30, tzinfo=datetime.UTC)
COLD = ("r1", "r2", "b")  # the nodes that get no hot file


def versioned(job: Job, kes: str = "kes-v1") -> Job:
    """``job`` with its secrets read at backend versions (``kes`` for the KES key, ``<name>-v1`` for the others)."""
    secrets = {n: Secret(s.reveal(), n, kes if n == "kes" else f"{n}-v1") for n, s in job.secrets.items()}
    rendered, nodes = rendering(job.role, job.profile, job.service, secrets)
    return dataclasses.replace(job, rendered=rendered, nodes=nodes, secrets=secrets)


def rotated(tmp_path):
    """(the inventory's job after a rotation of kes, the played engine): the pool deployed on kes v1, then the holder
    a alone replaced in place with the hot keys onto kes v2 (nodeops.rotate.issued's setSecret plan)."""
    job = versioned(per_node_job(tmp_path))
    engine, _ = fresh_deploy(job)
    now = versioned(job, "kes-v2")
    run = Keys(now, engine)
    rotation = (Step("replace", "a", "in place onto the pending hot keys", hot=True), Step("await-serving", "a"))
    run.execute(ServicePlan("pool", rotation, "the holder restarted onto the new value"))
    return now, engine


def labels(engine, node: str) -> dict[str, str]:
    return {k.removeprefix("io.nodeops."): v for k, v in engine.boxes[node][NAME]["labels"].items()}


def test_only_the_holder_records_and_is_hashed_on_the_hot_secrets_versions(tmp_path):
    """The relays' and the standby's labels name no hot secret and their config hash is the one they had before the
    rotation (it moved no input of theirs); the holder's name the version it runs, its hash the holder's."""
    before = versioned(per_node_job(tmp_path))
    now, engine = rotated(tmp_path / "now")
    for node in COLD:
        assert json.loads(labels(engine, node)["secrets"]) == {"pw": "pw-v1"}
        assert (
            labels(engine, node)["config"] == now.at(node).rendered.config_hash == before.at(node).rendered.config_hash
        )
    assert json.loads(labels(engine, "a")["secrets"]) == {"kes": "kes-v2", "pw": "pw-v1", "vrf": "vrf-v1"}
    assert labels(engine, "a")["config"] == now.at("a").rendered.config(True) != before.at("a").rendered.config(True)


def test_a_role_whose_hot_secrets_keep_no_versions_has_one_hash_for_the_holder_and_the_others(tmp_path):
    """Nothing of the hot secrets' is in either hash then (a version None says nothing): Chainlink-like roles and the
    tables' unversioned pool label and compare as before."""
    job = per_node_job(tmp_path)
    assert job.at("a").rendered.config(True) == job.at("a").rendered.config(False)
    assert run_spec(job.at("a"), hot=True).labels["config"] == run_spec(job.at("a")).labels["config"]


def test_status_reads_the_rotated_pool_healthy_not_mixed(tmp_path):
    now, engine = rotated(tmp_path)
    result = service_status(now, seen(Keys(now, engine)), None, None, None, NOW)
    assert (result["state"], result["mixed"]) == ("healthy", None)


def test_check_finds_no_drift_after_a_rotation(tmp_path):
    now, engine = rotated(tmp_path)
    views = seen(Keys(now, engine))
    holders = {n for n, v in views.items() if v.hot}
    verdict = check_drift(views, now.rendered.config_hash, now.rendered.secret_versions, now.config_hashes(holders))
    assert verdict == ("pass", "every running node is on the inventory's configuration")


@pytest.mark.parametrize(("kes", "replaced"), [("kes-v2", []), ("kes-v3", ["a"])], ids=["rotated", "moved-again"])
def test_a_deploy_after_a_rotation_plans_nothing_and_a_hot_secret_moved_since_replaces_the_holder_alone(
    tmp_path, kes, replaced
):
    """Right after the rotation the plan is empty; a version of the hot secrets the holder does not run (stored by
    hand since, say) replaces the holder alone, in place with its keys: the other nodes run on no hot secret."""
    now, engine = rotated(tmp_path)
    job = versioned(now, kes)
    run = Keys(job, engine)
    desired = Desired(job.service.image, "sha256:img", job.rendered.config_hash, job.config_hashes(),
                      job.holder_hashes())  # as the deploy's survey wants it  # fmt: skip
    plan = run.model.plan_change(run.service, seen(run), desired)
    assert [s.node for s in plan.steps if s.action == "replace"] == replaced
    assert all(s.hot for s in plan.steps if s.action == "replace")


def test_the_audit_record_keeps_the_holders_hash_and_every_version_so_rollback_finds_what_ran(tmp_path):
    now, engine = rotated(tmp_path)
    record = Deployed.model_validate(Deployed(service="pool", changed=True, **Keys(now, engine).ran({"a"})).record())
    assert {n: r.config for n, r in (record.nodes or {}).items()} == {n: labels(engine, n)["config"] for n in now.nodes}
    assert record.secret_versions == {"kes": "kes-v2", "pw": "pw-v1", "vrf": "vrf-v1"}
    started, notes = the_start(now, now, record)
    assert notes == []  # each node's record is exactly what it ran, the holder's with its hot versions
    assert started.config_hashes({"a"}) == {n: labels(engine, n)["config"] for n in now.nodes}


def test_a_node_without_the_hot_files_is_rendered_again_from_labels_that_name_no_hot_secret(tmp_path):
    """restore_job (a failed change's put-back, a promotion's own inputs, the diff's old side): the standby's labels
    name no version of kes or vrf; today's values render its hot files (never given to it) and its hash is its
    label's; the holder's, at the versions it records. Before, the standby's labels named kes's version of before
    the rotation, to be read again from the backend."""
    now, engine = rotated(tmp_path)
    (tmp_path / "nodeops.yaml").write_text("{}\n")
    inventory = types.SimpleNamespace(source=tmp_path / "inventory" / "prod.yaml", services={}, secret_backends={},
                                      environment="prod")  # fmt: skip
    for node in ("b", "a"):
        c = seen(Keys(now, engine))[node].container
        again = restore_job(inventory, now, node, c)
        assert again.rendered.config(c.started_hot) == c.label("config")


def test_a_role_rendered_once_records_each_nodes_hash_when_the_holders_differs(tmp_path):
    """A role whose files do not read the node but whose hot secrets keep versions: the record names each node's
    hash (the holder's its own), so rollback reads what the holder runs through it; Chainlink's records no nodes."""
    job = versioned(make_job(tmp_path))
    ran = Keys(job, Engine({})).ran({"a"})
    assert {n: r["config"] for n, r in ran["nodes"].items()} == {
        "a": job.rendered.config(True), "b": job.rendered.config_hash}  # fmt: skip
    assert job.rendered.config(True) != job.rendered.config_hash


def test_a_promotion_after_the_rotation_moves_the_hot_versions_with_the_keys(tmp_path):
    """There (a -> b) after the rotation: the new holder records and is hashed on the rotated versions, the fenced
    one on none, each on its own hash (the played engine labels a promotion's containers with the digest of the
    image held, so status's digests differ here: not read)."""
    now, engine = rotated(tmp_path)
    run = Keys(now, engine)
    run.observer = types.SimpleNamespace(views=lambda: seen(run))
    promote.promote_service(run, keep_old_stopped=False, force=False)
    assert json.loads(labels(engine, "b")["secrets"]) == {"kes": "kes-v2", "pw": "pw-v1", "vrf": "vrf-v1"}
    assert json.loads(labels(engine, "a")["secrets"]) == {"pw": "pw-v1"}
    assert {n: labels(engine, n)["config"] for n in now.nodes} == now.config_hashes({"b"})


# ---------------------------------------------------------------- rollback after an upgrade and a KES rotation
BEFORE = Deployed(service="pool", changed=True, image="reg/node:1", config="c-old", nodes={})  # an older version


@pytest.mark.parametrize(
    ("kes", "files", "read"),
    [
        ("kes-v1", None, "the record's"),  # deployed, no rotation since: as before
        ("kes-v2", None, "the record's"),  # the holder rotated onto kes v2 since: the same inputs but its hot keys
        ("kes-v2", '{"node.conf":"by hand\\n"}', "refused"),  # and started on other files since: no record's
    ],
    ids=["deployed", "rotated", "rotated-other-files"],
)
def test_rollback_reads_a_holder_rotated_since_its_deploy_as_the_record_that_started_it(tmp_path, kes, files, read):
    """Review rev16b finding 4: upgrade, `fab rotate-secrets --secret kes`, `fab rollback`: the holder's hash moved
    with its hot versions, which no record names, so the producers' kind read another configuration than the relays'
    and rollback was refused ("there is no one version to roll back from") while every node ran one version. A
    rollback brings back no old secret (its secrets are today's): a node runs a record's configuration when that
    record's inputs, at the secret versions the node runs, give its label. Files no record gave it: not a record's."""
    job = versioned(per_node_job(tmp_path))
    engine, _ = fresh_deploy(job)
    record = Deployed.model_validate(Deployed(service="pool", changed=True, **Keys(job, engine).ran({"a"})).record())
    now = versioned(job, kes)
    run = Keys(now, engine)
    rotation = (Step("replace", "a", "in place onto the pending hot keys", hot=True), Step("await-serving", "a"))
    run.execute(ServicePlan("pool", rotation, "the holder restarted onto the new value"))
    if files is not None:
        engine.boxes["a"][NAME]["labels"]["io.nodeops.config"] = "started-by-hand"
        engine.boxes["a"][NAME]["labels"]["io.nodeops.files"] = files
    views = list(seen(Keys(now, engine)).values())
    model = model_of(now.role)
    read_through = through_records(views, [BEFORE, record], lambda _record: now)
    if read == "refused":
        with pytest.raises(InvalidInput, match="no one version to roll back from"):
            running_on(read_through, model)
        return
    assert running_on(read_through, model) == ("2", record.config)
    assert pick([BEFORE, record], running_on(read_through, model), None, "pool") is BEFORE
    there = already_at(read_through, "2", model)  # --to the version it runs: nothing to do, the holder named
    assert there is not None and there.startswith("already at version 2: a runs it"), there
