"""Issue 16: a keys holder's upgrade carried out, over the played container engine of test_executor_keys.py (its
``Keys`` ServiceDeploy, ``Engine`` and a role with the ``keys_in_use`` and ``outage`` hooks): restarted in place, its
gap measured and said in seconds and in the chain's unit; with ``deploy --via-standby``, the standby upgraded, the
keys handed over to it as a planned promotion hands them (fence first), the old holder upgraded as the standby and
the keys handed back, each gap recorded; the deploy's result and its last line carry them."""

from __future__ import annotations

import pytest

from nodeops.activation import MODELS
from nodeops.deploy import finished
from nodeops.errors import Interrupted
from nodeops.run.runner import ChangeFailed, ServiceRunner
from nodeops.run.via import ViaStandbyRunner
from tests.unit.test_executor_keys import (
    IN_USE,
    NAME,
    Engine,
    Keys,
    check_secrets,
    container,
    make_job,
    seen,
    sent,
    wanted,
)

HOOKS = IN_USE + "\n\ndef outage(seconds, profile):\n    return f'{round(seconds * 5) + 1} slots'\n"


def stale_pair(tmp_path):
    job = make_job(tmp_path, hook=HOOKS)
    engine = Engine({"a": {NAME: container(job, hot=True, config="old")}, "b": {NAME: container(job, config="old")}})
    return job, engine, Keys(job, engine)


def starts(engine: Engine) -> list[str]:
    return [line for line in sent(engine) if line.endswith(("run", "run+hot"))]


def test_a_holder_restarted_in_place_reports_its_gap_in_seconds_and_the_chains_unit(tmp_path):
    job, engine, run = stale_pair(tmp_path)
    plan = MODELS["keys"].plan_change(job.service, seen(run), wanted(job))
    ServiceRunner(run).apply(plan)
    assert [(g["node"], g["how"]) for g in run.keys_gaps] == [("a", "restart in place")]
    gap = run.keys_gaps[0]
    assert gap["seconds"] >= 0 and gap["chain_units"].endswith("slots")
    assert any(n == "a" and m.startswith("restart in place: no node used the hot keys for ") for n, m in run.said)
    result = finished(run, True, {"active": "a"}, {"a"})
    assert result["keys_gaps"] == list(run.keys_gaps)
    assert run.said[-1][1].startswith("active; restart in place a: no node used the hot keys for ")


def test_via_standby_hands_the_keys_over_and_back_and_the_group_ends_as_it_started(tmp_path):
    job, engine, run = stale_pair(tmp_path)
    plan = MODELS["keys"].plan_via_standby(job.service, seen(run), wanted(job))
    engine.sent.clear()
    ViaStandbyRunner(run).apply(plan)
    # b upgraded; a fenced (restarted without keys); b with the keys; a upgraded as the standby; b fenced; a with them
    assert starts(engine) == ["b: run", "a: run", "b: run+hot", "a: run", "b: run", "a: run+hot"]
    check_secrets(engine, {"a", "b"})
    assert [(g["node"], g["how"]) for g in run.keys_gaps] == [("b", "handover"), ("a", "hand back")]
    assert all(g["seconds"] >= 0 and g["chain_units"].endswith("slots") for g in run.keys_gaps)
    assert run.verify() == {"active": "a"}
    for node in "ab":  # both on the change's inputs, a alone with the keys
        labels = engine.boxes[node][NAME]["labels"]
        assert labels["io.nodeops.config"] == job.rendered.config_hash
        assert (labels.get("io.nodeops.hot") == "true") == (node == "a")
    said = [m for _, m in run.said]
    assert any("fenced: holds no keys" in m and "no longer uses them" in m for m in said)  # the fence confirmed
    assert sum("serves with the hot keys and says it uses them" in m for m in said) == 2  # confirm_forging, twice
    last = finished(run, True, {"active": "a"}, {"a"})
    assert [g["how"] for g in last["keys_gaps"]] == ["handover", "hand back"]


def test_a_handover_that_fails_gives_the_keys_back_and_stops_the_run_there(tmp_path):
    """The standby dies once started with the keys: the promotion's undo (fence it, the keys back to the old holder)
    ends the run, exit 1, with no further part: the old holder is not upgraded and nothing is handed back."""
    job, engine, run = stale_pair(tmp_path)
    plan = MODELS["keys"].plan_via_standby(job.service, seen(run), wanted(job))
    engine.dies_hot.add("b")
    with pytest.raises(ChangeFailed) as err:
        ViaStandbyRunner(run).apply(plan)
    assert err.value.exit_code == 1 and "a was given its keys back" in str(err.value)
    assert starts(engine) == ["b: run", "a: run", "b: run+hot"]  # then a's own container put back with its keys
    assert engine.boxes["a"][NAME]["running"] and engine.boxes["a"][NAME]["labels"].get("io.nodeops.hot") == "true"
    assert run.keys_gaps == ()


VIA_STOPS = {  # when the stop came, once the keys were handed over to b -> what the run prescribes (rev16c F5)
    "before a's upgrade": "stopped as asked before `replace a (standby first, without the hot keys)`; fab deploy --env "
    "prod --service pool --via-standby finishes the change; the keys were handed over: then fab promote-standby --env "
    "prod --service pool gives them back to a; now",
    "during a's upgrade": "stopped as asked before `replace b (hand back to a: fence: restarted without the hot keys)`"
    "; every node runs the change and the keys were handed over: fab promote-standby --env prod --service pool gives "
    "them back to a (a deploy has nothing left to change); now",
}


@pytest.mark.parametrize("when", list(VIA_STOPS))
def test_a_stop_after_the_handover_prescribes_the_commands_that_finish_it(tmp_path, monkeypatch, when):
    """rev16c F5: stopped once the old holder a was upgraded as the standby, the run prescribed `deploy --via-standby`,
    which then planned "up to date" and left the keys on b. Only promote-standby is left then; before a's upgrade
    the deploy comes first (its plan upgrades a as the standby, the keys staying on b), then promote-standby."""
    from nodeops.run import via

    job, engine, run = stale_pair(tmp_path)
    plan = MODELS["keys"].plan_via_standby(job.service, seen(run), wanted(job))
    gap = via.keys_gap

    def handed_over(*args):
        gap(*args)
        if when == "before a's upgrade":
            run.stop.requested.set()
        else:  # a's replace as the standby under way: no safe point until the next part
            engine.stop_at = ("a", r"docker run", run.stop.requested)

    monkeypatch.setattr(via, "keys_gap", handed_over)
    with pytest.raises(Interrupted) as err:
        ViaStandbyRunner(run).apply(plan)
    assert err.value.exit_code == 130
    assert str(err.value).startswith(f"pool: {VIA_STOPS[when]}"), str(err.value)
    runs = ["b: run", "a: run", "b: run+hot"] + (["a: run"] if when == "during a's upgrade" else [])
    assert starts(engine) == runs  # the keys never handed back by this run
    assert engine.boxes["b"][NAME]["labels"].get("io.nodeops.hot") == "true"
