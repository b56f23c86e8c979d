"""Which of two holders of the hot keys to keep (nodeops.facts.holders.keep_line), from what each container records
against the current versions the service resolved: review rev16b finding 3 (the lost producer came back after a
forced promotion; status, check and deploy said two nodes hold the keys, and none said which to stop). Pure tables."""

from __future__ import annotations

import dataclasses
import json
import types

import jsonschema
import pytest

from nodeops import program
from nodeops.console.views import status_view
from nodeops.errors import EXIT_UNSAFE, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.holders import FencePending, keep_line
from nodeops.facts.view import NodeView
from nodeops.plan import Desired
from nodeops.status import service_status
from tests.unit.test_console import printed
from tests.unit.test_executor_keys import NAME, Keys

CURRENT = {"kes_key": "5e6f7a8b-new", "op_cert": "5e6f7a8b-new", "vrf": "0c0c0c0c-v"}


def job(hot=("kes_key", "op_cert")):
    rendered = types.SimpleNamespace(hot_secrets=frozenset(hot), secret_versions=CURRENT)
    return types.SimpleNamespace(at=lambda _node: types.SimpleNamespace(rendered=rendered))


def view(name, hot=True, kes=None, running=True):
    labels = {"io.nodeops.hot": "true"} if hot else {}
    if kes is not None:
        labels["io.nodeops.secrets"] = json.dumps({"kes_key": kes, "op_cert": kes, "vrf": "0c0c0c0c-v"})
    return NodeView(types.SimpleNamespace(name=name), Container(name, running, "Up", "i", labels), True)


STOP = (f"stop its container and wipe its tmpfs (or power its host off), then {program()} deploy restarts it "
        "without them as the standby")  # fmt: skip


@pytest.mark.parametrize(
    ("seen", "said"),
    [
        ([view("bp-a", kes="1a2b3c4d-old"), view("bp-b", kes="5e6f7a8b-new")],
         "keep bp-b, which runs the current hot keys (kes_key, op_cert version 5e6f7a8b); bp-a runs superseded ones "
         "(kes_key, op_cert version 1a2b3c4d: a later rotation or forced promotion issued the current ones, and the "
         f"chain refuses theirs): {STOP}"),
        ([view("bp-a", kes="5e6f7a8b-new"), view("bp-b", kes="1a2b3c4d-old")], "keep bp-a, which runs"),
        ([view("bp-a", kes="5e6f7a8b-new"), view("bp-b", kes="5e6f7a8b-new")],
         "bp-a runs kes_key, op_cert version 5e6f7a8b, bp-b runs kes_key, op_cert version 5e6f7a8b: each on the "
         "current versions (kes_key, op_cert version 5e6f7a8b), so which to keep cannot be told from them"),
        ([view("bp-a", kes="1a2b3c4d-old"), view("bp-b")], "none on the current versions"),
        ([view("bp-a", kes="1a2b3c4d-old"), view("bp-b", hot=False, kes="5e6f7a8b-new")], None),
        ([view("bp-a", kes="1a2b3c4d-old"), view("bp-b", kes="5e6f7a8b-new", running=False)], None),
    ],
    ids=["lost-one-back", "other-order", "same-versions", "one-unrecorded", "one-holder", "one-stopped"],
)  # fmt: skip
def test_the_holder_on_the_current_hot_versions_is_the_one_to_keep(seen, said):
    line = keep_line(job(), seen)
    if said is None:
        assert line is None
    else:
        assert line is not None and said in line and "\n" not in line, line


FORCED = "fab promote-standby --env prod --service pool --force"
FENCE = FencePending("kes_key", "9d8c7b6a-pending", FORCED)  # a forced promotion's pending version, not finished


@pytest.mark.parametrize(
    ("seen", "said"),
    [
        ([view("bp-a", kes="5e6f7a8b-new"), view("bp-b", kes="9d8c7b6a-pending")],
         "bp-b runs the hot keys a forced promotion staged and did not finish (kes_key, op_cert version 9d8c7b6a): "
         f"{FORCED} completes it; bp-a runs keys that promotion supersedes (kes_key, op_cert version 5e6f7a8b; the "
         "chain refuses them once it completes): never keep it: stop its container "
         f"and wipe its tmpfs (or power its host off); once that promotion completed, {program()} deploy restarts it "
         "without them as the standby"),
        ([view("bp-b", kes="9d8c7b6a-pending"), view("bp-a", kes="1a2b3c4d-old")], "bp-b runs the hot keys a forced"),
        ([view("bp-a", kes="1a2b3c4d-old"), view("bp-b", kes="5e6f7a8b-new")], "keep bp-b, which runs the current"),
    ],
    ids=["lost-back-on-the-current-versions", "lost-back-older", "no-holder-runs-it"],
)  # fmt: skip
def test_a_forced_promotions_pending_holder_is_completed_and_the_lost_one_never_kept(seen, said):
    """Review rev16c F3: a forced promotion whose test failed left b on its pending version; the lost producer a,
    back with its keys on the current versions, was to be kept (``keep bp-a``) and b's pending version called
    superseded. With the pending version (status, check and deploy read it), the line names the promotion's command
    and says to stop a; a fence no holder records leaves the rule on the current versions."""
    line = keep_line(job(), seen, FENCE)
    assert line is not None and line.startswith(said) and "\n" not in line, line
    if "forced" in said:
        assert "keep bp-a" not in line and "superseded ones" not in line


def test_a_role_without_hot_secrets_says_nothing():
    assert keep_line(job(hot=()), [view("a", kes="x"), view("b", kes="y")]) is None


def versioned(job, versions):
    """``job`` as resolved with ``versions`` (secret -> its current version id), every node's rendering too."""
    rendered = dataclasses.replace(job.rendered, secret_versions={**job.rendered.secret_versions, **versions})
    nodes = {n: dataclasses.replace(r, secret_versions={**r.secret_versions, **versions}) for n, r in job.nodes.items()}
    return dataclasses.replace(job, rendered=rendered, nodes=nodes)


def test_status_check_and_deploy_name_the_holder_to_keep(tmp_path, monkeypatch):
    """Over the played engine (the kinds' pool: relays r1 r2, producers a and b, both holding the hot keys; a on
    the hot secrets' old versions, b on the current ones): status's ``holders`` and its line, check's ``holders``
    finding and deploy's refusal (exit 4) each say keep b, stop a."""
    from tests.unit.test_executor_kinds import NOW, SCHEMA, engine_of
    from tests.unit.test_executor_kinds import views as seen_by
    from tests.unit.test_issued_status import FRESH, NO_STANDING, played_aws, pool, probe

    job, _run, _seen = pool(tmp_path, hook=NO_STANDING)
    job = versioned(job, {"kes": "5e6f7a8b-new", "vrf": "0c0c0c0c-v"})
    engine = engine_of(job, {"r1": {}, "r2": {}, "a": {"hot": True}, "b": {"hot": True}})
    for node, kes in (("a", "1a2b3c4d-old"), ("b", "5e6f7a8b-new")):
        engine.boxes[node][NAME]["labels"]["io.nodeops.secrets"] = json.dumps({"kes": kes, "vrf": "0c0c0c0c-v"})
    run = Keys(job, engine)
    seen = seen_by(run)
    result = {"event": "status", **service_status(job, seen, None, None, None, NOW)}
    jsonschema.validate(result, SCHEMA)
    keep = "keep b, which runs the current hot keys (kes version 5e6f7a8b, vrf version 0c0c0c0c); a runs superseded"
    assert result["state"] == "unsafe" and result["holders"].startswith(keep), result["holders"]
    assert "bp" not in result["holders"] and "a runs superseded ones (kes version 1a2b3c4d:" in result["holders"]
    assert "holders keep b, which runs" in " ".join(printed(status_view([result])).split())
    played_aws(monkeypatch, FRESH)
    assert probe(tmp_path, monkeypatch, job, run)[("", "holders")] == ("fail", result["holders"])
    with pytest.raises(Unsafe) as err:  # deploy's plan over what it observes (the same views)
        run.plan(seen, Desired(job.service.image, "i", job.rendered.config_hash, job.config_hashes()))
    assert err.value.exit_code == EXIT_UNSAFE and "\n" not in str(err.value)
    assert str(err.value).startswith("pool: 2 nodes hold the hot keys (a, b); only one may: stop all but one")
    assert f"; {result['holders']}" in str(err.value)
