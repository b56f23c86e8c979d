"""A role's facts about its nodes (its node_facts and check_facts hooks, nodeops.facts.role_facts) in `fab status`
and `fab check`, over the played container engine (test_executor_keys's Engine and Keys, test_executor_kinds's
pool): each node's facts from the very reply the observer got, shown in the JSON (docs/status.schema.json) and the
table; the findings check adds; a hook that raises or answers out of shape fails only the ``facts`` finding, in one
line that quotes nothing it was given; a role without the hooks keeps its JSON and findings as they were."""

from __future__ import annotations

import dataclasses
import json
import types

import jsonschema
import pytest

from nodeops import check as chk
from nodeops.console.views import facts_text, status_view
from nodeops.errors import EXIT_INVALID, NodeopsError
from nodeops.facts import role_facts
from nodeops.facts.observe import Observer
from nodeops.inventory import CheckPolicy
from nodeops.status import service_status
from tests.unit.test_console import allowed, assert_fits, printed
from tests.unit.test_executor_groups import POOL, R1, R2
from tests.unit.test_executor_groups import A as PRODUCER
from tests.unit.test_executor_groups import B as STANDBY
from tests.unit.test_executor_keys import Keys, make_job
from tests.unit.test_executor_kinds import NOW, SCHEMA, UP, engine_of, views

HOOKS = """\
import json

def node_facts(replies, variables):
    return {node: {"forging": json.loads(body)["forging"], "min": variables.get("MIN"),
                   "profile": variables["PROFILE"]} for node, body in replies.items()}

def check_facts(facts, variables):
    forging = [node for node, f in facts.items() if f["forging"]]
    yield "", "forgers", len(forging) == 1, f"forging: {', '.join(forging) or 'none'}"
    for node in forging:
        yield node, "kept", True, "keys   in\\n use"
"""


def pool_with(tmp_path, hook: str | None, boxes=UP, forging=("a",), down=()):
    """A pool job whose role module is ``hook``, its nodes run as ``boxes`` (``down``: no container), and the
    replies the observer got (node -> body: ``{"forging": ...}``: true for ``forging`` alone, the hot label's
    holder included only if it is one of them)."""
    job = make_job(tmp_path, role=POOL, hook=hook)
    job = dataclasses.replace(job, service=dataclasses.replace(job.service, nodes=(R1, R2, PRODUCER, STANDBY),
                                                               variables={"MIN": 3}))  # fmt: skip
    idle = {n.name: 1 << 30 for n in job.service.nodes if n.name not in forging}  # its replies say it does not forge
    run = Keys(job, engine_of(job, {n: b for n, b in boxes.items() if n not in down}), forging=forging, idle=idle)
    seen = views(run)
    return job, run, seen


def status_of(job, run, seen) -> dict:
    result = service_status(job, seen, None, None, None, NOW)
    return {"event": "status", **role_facts.with_facts(result, job, *role_facts.node_facts(job, run.answers))}


def test_status_shows_each_nodes_facts_from_its_health_reply(tmp_path):
    job, run, seen = pool_with(tmp_path, HOOKS, down=("r2",))
    result = status_of(job, run, seen)
    jsonschema.validate(result, SCHEMA)
    assert {n["node"]: n["facts"] for n in result["nodes"]} == {
        "r1": {"forging": False, "min": 3, "profile": "main"},
        "r2": {},  # r2 runs nothing: it said none
        "a": {"forging": True, "min": 3, "profile": "main"},
        "b": {"forging": False, "min": 3, "profile": "main"},
    }
    assert "facts_error" not in result
    text = printed(status_view([result]))
    assert "a: forging yes, min 3, profile main" in text and "b: forging no" in text, text
    assert "r2:" not in text.replace("r2  ", "")  # no facts, no line


PROBLEM = HOOKS.replace(
    '"profile": variables["PROFILE"]}',
    '"profile": variables["PROFILE"], "problem": "cannot   work" if node == "a" else None}',
)


def test_a_nodes_problem_its_role_says_makes_the_service_degraded_and_is_shown(tmp_path):
    """Review rev16b finding 6: a holder whose role's facts say it cannot do its work (a pool's expired KES key)
    read healthy. A node's fact ``problem`` (a string; None: none) makes a healthy or mixed service degraded, the
    reason on its line; without one the state is the model's."""
    job, run, seen = pool_with(tmp_path, PROBLEM)
    result = status_of(job, run, seen)
    jsonschema.validate(result, SCHEMA)
    assert result["state"] == "degraded"
    assert {n["node"]: n["facts"].get("problem") for n in result["nodes"]} == {
        "r1": None,
        "r2": None,
        "a": "cannot work",
        "b": None,
    }
    shown = " ".join(printed(status_view([result])).split())
    assert "a: forging yes, min 3, profile main, problem cannot work" in shown, shown
    assert status_of(*pool_with(tmp_path / "no", HOOKS))["state"] == "healthy"


def test_a_role_without_the_hooks_keeps_its_status_and_findings(tmp_path):
    job, run, seen = pool_with(tmp_path, None)
    plain = {"event": "status", **service_status(job, seen, None, None, None, NOW)}
    assert status_of(job, run, seen) == plain
    assert all("facts" not in n for n in plain["nodes"])
    assert role_facts.fact_findings(job, *role_facts.node_facts(job, run.answers), "t") == []


@pytest.mark.parametrize(
    ("forging", "expected"),
    [
        (("a",), [("", "forgers", ("pass", "forging: a")), ("a", "kept", ("pass", "keys in use"))]),
        (("a", "b"), [("", "forgers", ("fail", "forging: a, b")), ("a", "kept", ("pass", "keys in use")),
                      ("b", "kept", ("pass", "keys in use"))]),
        ((), [("", "forgers", ("fail", "forging: none"))]),
    ],
    ids=["one-forges", "two-forge", "none-forges"],
)  # fmt: skip
def test_check_adds_the_roles_findings_from_its_facts(tmp_path, forging, expected):
    """check_facts' (node, check, ok, detail): its detail on one line; its node the service's or ''."""
    job, run, _seen = pool_with(tmp_path, HOOKS, forging=forging)
    assert role_facts.fact_findings(job, *role_facts.node_facts(job, run.answers), "t") == expected


BAD = {
    "node-facts-raises": ("def node_facts(replies, variables):\n    raise KeyError(replies)\n"
                          "def check_facts(facts, variables):\n    return []\n",
                          "role pool: its hook node_facts raised KeyError ("),
    "not-a-mapping": ("def node_facts(replies, variables):\n    return [1]\n",
                      "role pool: its hook node_facts returned list, not node -> {name: fact}: fix the role's module"),
    "unknown-node": ("def node_facts(replies, variables):\n    return {'zz': {}}\n",
                     "role pool: its hook node_facts returned facts of a node that did not answer: fix the role's "
                     "module"),
    "fact-not-scalar": ("def node_facts(replies, variables):\n    return {n: {'x': {'y': 1}} for n in replies}\n",
                        "role pool: its hook node_facts returned a fact that is not name (str) -> str, number, bool "
                        "or None: fix the role's module"),
    "check-facts-raises": ("def node_facts(replies, variables):\n    return {}\n"
                           "def check_facts(facts, variables):\n    raise ValueError(variables)\n",
                           "role pool: its hook check_facts raised ValueError ("),
    "finding-not-4": ("def node_facts(replies, variables):\n    return {}\n"
                      "def check_facts(facts, variables):\n    return [('', 'x', True)]\n",
                      "role pool: its hook check_facts returned a finding that is not (node, check, ok, detail)"),
    "finding-ok-not-bool": ("def node_facts(replies, variables):\n    return {}\n"
                            "def check_facts(facts, variables):\n    return [('', 'x', 1, 'd')]\n",
                            "role pool: its hook check_facts returned a finding that is not (node, check, ok,"),
    "finding-unknown-node": ("def node_facts(replies, variables):\n    return {}\n"
                             "def check_facts(facts, variables):\n    return [('zz', 'x', True, 'd')]\n",
                             "role pool: its hook check_facts returned a finding that is not (node, check, ok,"),
}  # fmt: skip


@pytest.mark.parametrize(("hook", "said"), BAD.values(), ids=BAD.keys())
def test_a_hook_that_raises_or_answers_out_of_shape_fails_only_the_facts_finding(tmp_path, hook, said):
    """One failed ``facts`` finding in check, one ``facts_error`` in status (schema-valid, shown in the table), in
    one line naming the role and the hook; nothing the hook was given (a reply, a variable) is quoted."""
    job, run, seen = pool_with(tmp_path, hook)
    ((node, name, (result, detail)),) = role_facts.fact_findings(job, *role_facts.node_facts(job, run.answers), "t")
    assert (node, name, result) == ("", "facts", "fail")
    assert detail.startswith(f"not checked: {said}"), detail
    assert "forging" not in detail and "MIN" not in detail and "\n" not in detail
    if "node_facts" in said:
        status = status_of(job, run, seen)
        jsonschema.validate(status, SCHEMA)
        assert status["facts_error"].startswith(said) and all(n["facts"] == {} for n in status["nodes"])
        assert "facts" in printed(status_view([status]))


@pytest.mark.parametrize(
    "hook",
    ["def node_facts(body):\n    return {}\n", "def check_facts(facts):\n    return []\n",
     "async def node_facts(replies, variables):\n    return {}\n"],
    ids=["node-facts-one-argument", "check-facts-one-argument", "coroutine"],
)  # fmt: skip
def test_a_hook_of_the_wrong_shape_is_refused_when_the_role_loads(tmp_path, hook):
    with pytest.raises(NodeopsError) as err:
        make_job(tmp_path, role=POOL, hook=hook)
    assert err.value.exit_code == EXIT_INVALID and "role.py" in str(err.value)


def test_check_probes_the_roles_facts_through_the_observer(tmp_path, monkeypatch):
    """The whole probe_service: the findings of check_facts, from the replies the observer got (one GET each)."""
    job, run, _seen = pool_with(tmp_path, HOOKS)
    gets = []

    class Fleet:
        def http_get(self, host, _port, _path, **_where):
            node = next(n for n in job.service.nodes if n.host == host)
            gets.append(node.name)
            return (200, run.answers[node.name]) if run.health(node)[0] else None

    monkeypatch.setattr(Observer, "connect", lambda _self, _node: None)
    monkeypatch.setattr(Observer, "container", lambda _self, node, _name=None: run.inspect(node))
    monkeypatch.setattr(chk, "secret_ages", lambda *_: {})
    monkeypatch.setattr(chk, "probe_node", lambda *_a, **_k: ([], []))
    job = dataclasses.replace(job, service=dataclasses.replace(job.service, check=CheckPolicy()))
    result = chk.probe_service(Fleet(), types.SimpleNamespace(environment="t"), job)
    found = {(f.node, f.check): (f.result, f.reason) for f in result.findings}
    assert found[("", "forgers")] == ("pass", "forging: a") and found[("a", "kept")] == ("pass", "keys in use")
    assert sorted(gets) == ["a", "b", "r1", "r2"]
    ok = {m.labels: m.value for m in result.metrics if m.name == "nodeops_check_ok"}
    assert ok[(("env", "t"), ("service", "pool"), ("node", ""), ("check", "forgers"))] == 1.0


@pytest.mark.parametrize(
    ("facts", "text"),
    [({"slot": 12, "forging": True, "kes_until": None}, "slot 12, forging yes"), ({"peers": 0, "ok": False},
     "peers 0, ok no"), ({}, "")],
    ids=["none-left-out", "zero-and-false", "empty"],
)  # fmt: skip
def test_facts_text(facts, text):
    assert facts_text(facts) == text


def test_a_pools_facts_fit_80_columns(tmp_path):
    job, run, seen = pool_with(tmp_path, HOOKS)
    result = status_of(job, run, seen)
    for n in result["nodes"]:
        n["facts"] = {**n["facts"], "kes_until": "2026-12-01T21:03:10Z", "kes_window": "100..130", "slot": 123456789}
    text = printed(status_view([result]))
    shown = json.dumps([result]).replace('"', " ").replace("}", " ")
    assert_fits(text, allowed(shown, "node kind role health container version up config - 0m00s yes no"))
