"""Issue 16: the read-only verbs and rollback for a role with node kinds (a pool: two relays under ``all``, a producer
and its standby under ``keys``), over the keys tables' played container engine (test_executor_keys.Engine: each
node's containers, inspected through the observer's parser; a node answers its health path while its container
runs). ``fab status`` reads each node under its kind's model and the service's state as the worst of its groups',
``fab check`` judges each kind group under its model, ``fab rollback`` reads what runs kind by kind and puts each
node back under its own kind's model. A role without kinds reads, checks and rolls back as before (test_status.py,
test_check.py, test_rollback.py, untouched)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import types
from pathlib import Path

import jsonschema
import pytest

from nodeops import check as chk
from nodeops.activation import model_of
from nodeops.check_serving import judge_service
from nodeops.console.views import status_view
from nodeops.errors import EXIT_INVALID, InvalidInput
from nodeops.facts.observe import Observer
from nodeops.facts.view import NodeView
from nodeops.inventory import CheckPolicy
from nodeops.rollback import already_at, question, running_on
from nodeops.status import mixed_inputs, node_status, service_state, service_status
from nodeops.verify import evaluate
from tests.unit.test_console import allowed, assert_fits, printed
from tests.unit.test_executor_groups import POOL, R1, R2, pool_job, runs
from tests.unit.test_executor_groups import A as PRODUCER
from tests.unit.test_executor_groups import B as STANDBY
from tests.unit.test_executor_keys import IN_USE, NAME, Engine, Keys, check_secrets, container, make_job, wanted
from tests.unit.test_rollback import recorded_run
from tests.unit.test_verify import OK, PIN, facts

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "status.schema.json").read_text())
NOW = datetime.datetime(2026, 12, 1, 18, 0, tzinfo=datetime.UTC)
UP = {"r1": {}, "r2": {}, "a": {"hot": True}, "b": {}}  # every node runs; a holds the keys


def engine_of(job, boxes) -> Engine:
    """``boxes``: node -> container() keywords (``version``: its version label); absent: no container."""
    out = {}
    for node, spec in boxes.items():
        spec = dict(spec)
        version = spec.pop("version", "2")
        box = container(job, **spec)
        box["labels"]["io.nodeops.version"] = version
        out[node] = {NAME: box}
    return Engine(out)


def views(run: Keys, unseen: str = "") -> dict[str, NodeView]:
    """Each node as the observer sees it through the engine; ``unseen``: nodes that cannot be reached."""
    return {n.name: NodeView(n, None, False, unreachable="timeout") if n.name in unseen.split() else
            NodeView(n, run.inspect(n.name), *run.health(n)) for n in run.service.nodes}  # fmt: skip


def pool(tmp_path, boxes, unseen: str = "") -> tuple:
    job = pool_job(tmp_path)
    run = Keys(job, engine_of(job, boxes))
    return job, run, views(run, unseen)


# ---------------------------------------------------------------- fab status


@pytest.mark.parametrize(
    ("boxes", "unseen", "roles", "state"),
    [
        (UP, "", ["serving", "serving", "active", "standby"], "healthy"),
        ({**UP, "r2": {"running": False}}, "", ["serving", "down", "active", "standby"], "degraded"),
        ({"a": {"hot": True}, "b": {}}, "", ["down", "down", "active", "standby"], "down"),  # no relay: down
        ({**UP, "a": {}}, "b", ["serving", "serving", "standby", "unknown"], "unknown"),  # b may hold the keys
        ({**UP, "b": {"hot": True}}, "", ["serving", "serving", "active", "active"], "unsafe"),  # two forge
        ({**UP, "b": {"running": False}}, "", ["serving", "serving", "active", "down"], "degraded"),
        ({**UP, "r1": {"config": "old"}}, "", ["serving", "serving", "active", "standby"], "mixed"),
    ],
    ids=["healthy", "relay-down", "no-relay", "standby-unseen", "two-holders", "standby-down", "mixed"],
)  # fmt: skip
def test_status_reads_each_node_under_its_kinds_model(tmp_path, boxes, unseen, roles, state):
    """Each node's kind and role (relays: serving or not; producers: active, the holder, or standby), the state the
    worst of the groups' (an unknown group, not seen, ranks under a down one; it raised before)."""
    job, _run, seen = pool(tmp_path, boxes, unseen)
    result = {"event": "status", **service_status(job, seen, None, None, None, NOW)}
    jsonschema.validate(result, SCHEMA)
    assert [(n["node"], n["kind"], n["role"]) for n in result["nodes"]] == list(
        zip(["r1", "r2", "a", "b"], ["relay", "relay", "producer", "producer"], roles, strict=True))  # fmt: skip
    assert result["state"] == state


def test_a_node_of_a_role_without_kinds_has_no_kind_in_its_entry(tmp_path):
    job, _run, seen = pool(tmp_path, UP)
    plain = [NodeView(dataclasses.replace(s.node, kind=None), s.container, s.serving) for s in seen.values()]
    assert all("kind" not in node_status(s, NOW, "keys") for s in plain)  # Chainlink's JSON is unchanged
    assert all(node_status(s, NOW, model_of(job.role))["kind"] for s in seen.values())
    views = list(seen.values())
    assert service_state(views, model_of(job.role), None, mixed_inputs(views, job.config_hashes())) == "healthy"


VOCABULARY = "node kind role health container version up config - 0m00s"


@pytest.mark.parametrize("long", [False, True], ids=["short-names", "long-names"])
def test_a_pools_status_fits_80_columns_with_each_nodes_kind(tmp_path, long):
    job, _run, seen = pool(tmp_path, {**UP, "r2": {"running": False}})
    result = {"event": "status", **service_status(job, seen, None, None, None, NOW)}
    if long:  # an operator's names: the table falls back to a line per node, still within 80 columns
        for n in result["nodes"]:
            n["node"] = f"mainnet-pool1-{n['kind']}-{n['node']}-eu-west-1a"
    text = printed(status_view([result]))
    assert_fits(text, allowed(json.dumps([result]).replace('"', " "), VOCABULARY))
    for n in result["nodes"]:
        line = next(line for line in text.splitlines() if line.split() and line.split()[0].strip(":") == n["node"])
        assert n["kind"] in line and n["role"] in line, text


# ---------------------------------------------------------------- fab check


def judged(model, job, seen, run, lease=("unknown", "the role keeps no lease")):
    asked = []
    verdicts, warnings, standbys = judge_service(model, job.service, seen, run.answers, None,
                                                 lambda active: asked.append(active) or lease,
                                                 job.role.hooks.lease_client, "/health")  # fmt: skip
    return dict(verdicts), dict(warnings), standbys, asked


@pytest.mark.parametrize(
    ("boxes", "unseen", "verdicts", "standbys"),
    [
        (UP, "", {"serving:relay": ("pass", "all 2 nodes serve /health"),
                  "active:producer": ("pass", "a holds the hot keys and serves /health (no load balancer in the "
                                              "inventory)")}, {"b"}),
        ({**UP, "r2": {"running": False}}, "",
         {"serving:relay": ("fail", "1 of 2 nodes do not serve /health (r2: down): all should")}, {"b"}),
        ({**UP, "b": {"hot": True}}, "",
         {"active:producer": ("fail", "2 nodes hold the hot keys (a, b): expected exactly one")}, {"a", "b"}),
        ({**UP, "a": {}}, "", {"active:producer": ("fail", "no node holds the hot keys")}, {"a", "b"}),
        ({**UP, "a": {}}, "b", {"active:producer": ("fail", "no node reached holds the hot keys; b cannot be "
                                                            "reached, and it may be the one that does")}, {"a"}),
        ({**UP, "r1": {"running": False}}, "r2",
         {"serving:relay": ("fail", "2 of 2 nodes do not serve /health (r1: down; r2: unknown): all should")},
         {"b"}),
    ],
    ids=["healthy", "relay-down", "two-holders", "no-holder", "no-holder-seen-b-unseen", "relays-gone"],
)  # fmt: skip
def test_check_judges_each_kind_group_under_its_model(tmp_path, boxes, unseen, verdicts, standbys):
    """Every relay serving (the relays' group, under all), exactly one holder among the producers (under keys);
    only producers other than the holder are judged as standbys, never a relay."""
    job, run, seen = pool(tmp_path, boxes, unseen)
    got, warnings, judged_standby, _asked = judged(model_of(job.role), job, seen, run)
    assert list(got) == ["serving:relay", "active:producer", "lease"]  # each kind's, in the role's order
    assert {k: got[k] for k in verdicts} == verdicts
    assert judged_standby == standbys and warnings == {}


def test_a_pool_check_judges_the_standby_producer_under_keys_and_warns_of_a_pool_without_one(tmp_path):
    job, run, seen = pool(tmp_path, UP)
    model = model_of(job.role)
    assert chk.check_standby(seen["b"], model) == ("pass", "running without the hot keys")
    holder = seen["a"]
    assert chk.check_standby(NodeView(seen["b"].node, holder.container, True), model) == (
        "fail", "holds the hot keys as well: two holders")  # fmt: skip
    alone = types.SimpleNamespace(service=dataclasses.replace(job.service, nodes=job.service.nodes[:3]), role=job.role)
    _got, warnings, standbys, asked = judged(model, alone, {n: seen[n] for n in ("r1", "r2", "a")}, run)
    assert warnings == {"standby:producer": ("warn", "no standby in the inventory: no failover")}
    assert standbys == set() and asked == ["a"]  # the lease is asked of the producers' one active


@pytest.mark.parametrize(
    ("hook", "forging", "verdict"),
    [
        (IN_USE, "a", ("pass", "running without the hot keys")),
        (IN_USE, "a b", ("fail", "no hot label, but its health reply says it uses hot keys (the role's keys_in_use): "
                                 "two forging")),
        (None, "a b", ("pass", "running without the hot keys")),  # a role whose replies do not say: the label decides
        ("def keys_in_use(body):\n    raise KeyError(body)\n", "a", ("fail", "not checked: role pool: its hook "
                                                                           "keys_in_use raised KeyError")),
    ],
    ids=["standby-idle", "standby-forges", "no-hook", "hook-raises"],
)  # fmt: skip
def test_a_standby_producer_whose_reply_says_it_forges_fails_check(tmp_path, hook, forging, verdict):
    """No two forging: a producer without the hot label whose health reply says it uses hot keys (the role's
    keys_in_use: a block producer's forging metric, a node started by hand with keys) fails its standby check."""
    job = make_job(tmp_path, role=POOL, hook=hook)
    job = dataclasses.replace(job, service=dataclasses.replace(job.service, nodes=(R1, R2, PRODUCER, STANDBY)))
    run = Keys(job, engine_of(job, UP), forging=forging.split())
    seen = views(run)
    result, reason = chk.standby_verdict(job, seen["b"], run.answers["b"])
    assert (result, reason[: len(verdict[1])]) == verdict


def test_check_probes_a_pool_through_the_observer(tmp_path, monkeypatch):
    """The whole probe_service over the engine: its findings name each kind's check; b alone is a standby."""
    job, run, _seen = pool(tmp_path, UP)
    probed = {}

    class Fleet:
        def http_get(self, host, _port, _path, **_where):
            node = next(n for n in job.service.nodes if n.host == host)
            return (200, b"{}") if run.health(node)[0] else None

    def probe_node(_observer, _job, s, standby):
        probed[s.node.name] = standby
        return [], []

    monkeypatch.setattr(Observer, "connect", lambda _self, _node: None)
    monkeypatch.setattr(Observer, "container", lambda _self, node, _name=None: run.inspect(node))
    monkeypatch.setattr(chk, "secret_ages", lambda *_: {})
    monkeypatch.setattr(chk, "probe_node", probe_node)
    job = dataclasses.replace(job, service=dataclasses.replace(job.service, check=CheckPolicy()))
    result = chk.probe_service(Fleet(), types.SimpleNamespace(environment="t"), job)
    checks = {f.check: f.result for f in result.findings if f.node == ""}
    assert checks == {"serving:relay": "pass", "active:producer": "pass", "lease": "unknown", "secret-age": "unknown",
                      "drift": "pass"}  # fmt: skip
    assert probed == {"r1": False, "r2": False, "a": False, "b": True}


# ---------------------------------------------------------------- fab rollback


def test_rollback_reads_what_a_pool_runs_kind_by_kind(tmp_path):
    job, _run, seen = pool(tmp_path, UP)
    model, config = model_of(job.role), job.rendered.config_hash
    assert running_on(seen.values(), model) == ("2", config)
    assert already_at(seen.values(), "2", model) == (
        f"already at version 2: a runs it (config {config[:12]}), and the 3 other nodes the same; nothing to roll "
        "back, nothing changed")  # fmt: skip
    assert already_at(seen.values(), "1", model) is None
    assert "kind by kind: relay, every node, one at a time, each awaited serving, never all down; then producer, " \
           "standby first, then the active in place with its hot keys, no handover" in question(
               "pool", recorded_run(job), config, model)  # fmt: skip


def test_a_pool_stopped_between_two_kinds_has_no_one_version_to_roll_back_from(tmp_path):
    job, _run, seen = pool(tmp_path, {"r1": {"version": "3"}, "r2": {"version": "3"}, "a": {"hot": True}, "b": {}})
    model = model_of(job.role)
    with pytest.raises(InvalidInput) as err:
        running_on(seen.values(), model)
    assert err.value.exit_code == EXIT_INVALID and "\n" not in str(err.value)
    assert str(err.value).startswith("pool: its relay nodes run 3 config ")
    assert "its producer nodes run 2 config" in str(err.value) and str(err.value).endswith("with --to VERSION")
    assert running_on(seen.values(), model, "2") == ("3", job.rendered.config_hash)  # --to names it: either
    assert already_at(seen.values(), "2", model) is None  # the relays are not on it: the rolling path brings them


def test_a_pool_without_its_holder_is_not_already_there(tmp_path):
    job, _run, seen = pool(tmp_path, {**UP, "a": {}})
    assert already_at(seen.values(), "2", model_of(job.role)) is None  # no one active among the producers


def test_a_rollback_puts_each_node_back_under_its_own_kinds_model(tmp_path):
    """What a rollback starts (deploy's rolling path on the record's inputs) on a pool that runs another config:
    the relays one at a time, then the standby, then the holder in place with its keys, the keys to it alone."""
    job, run, seen = pool(tmp_path, {n: {**spec, "config": "newer"} for n, spec in UP.items()})
    plan = run.model.plan_change(job.service, seen, wanted(job))
    run.edge.sent.clear()
    run.execute(plan)
    assert runs(run.edge) == ["r1", "r2", "b", "a +keys"]
    check_secrets(run.edge, {"a"})
    assert run.verify() == {"serving": ["r1", "r2"], "active": "a"}


SILENT = "not serving: nothing answers /health on :{} (activation {}: every node serves)"


@pytest.mark.parametrize(
    ("node", "answers", "port"),
    [
        ("r1", {"r1": None}, (False, ("all",))),
        ("b", {"b": None}, (False, ("keys",))),
        ("b", {"b": OK}, (True, "serving: answers 200 on :{}/health")),
    ],
    ids=["relay-silent", "standby-silent", "standby-serves"],
)
def test_verify_judges_each_node_under_its_kinds_model(tmp_path, node, answers, port):
    """fab verify's port check of a pool's node, under its kind's model (it said "activation kinds")."""
    job = pool_job(tmp_path)
    target = next(n for n in job.service.nodes if n.name == node)
    ok, words = port
    words = SILENT.format(job.role.port, *words) if isinstance(words, tuple) else words.format(job.role.port)
    seen = {n.name: OK for n in job.service.nodes} | answers
    assert evaluate(job, target, facts(), seen, [PIN])["port"] == (ok, words)
