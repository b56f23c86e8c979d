"""An issued rotation (nodeops.rotate.issued) killed while setSecret replaced the holder, then run again: every state
the replace can be killed in (the old container set aside running, then stopped; the hot files written; the new one
created but never started; started but its files not yet shredded; and the rerun itself killed once it put the old
one back) converges on the rerun to the holder alone running the pending version with its hot label, AWSCURRENT on
that version, no previous container and no file left on the node, the standby untouched. The holder is recognised
from its set-aside or stopped container's ``io.nodeops.hot`` label (never guessed), and the role's query runs in a
running container of it. Over the keys tables' played container engine and a played Secrets Manager
(test_promote_forced's pool, both nodes reachable)."""

from __future__ import annotations

import json

import pytest

from nodeops import program
from nodeops.console.views import status_view
from nodeops.errors import EXIT_INVALID, InvalidInput, Unsafe
from nodeops.role_protocols import Issued
from nodeops.rotate.service import ServiceRotation
from nodeops.status import rotation_status, service_status
from tests.unit.test_console import printed
from tests.unit.test_executor_keys import NAME, PREVIOUS, VRF, check_secrets, container, seen, sent
from tests.unit.test_executor_kinds import NOW
from tests.unit.test_executor_kinds import views as status_views
from tests.unit.test_issued_status import PENDING, played_aws, probe
from tests.unit.test_issued_status import inventory as status_inventory
from tests.unit.test_issued_status import pool as status_pool
from tests.unit.test_promote_forced import NEW_KES, pool

PENDING_DOC = json.dumps({"kes": NEW_KES, "vrf": VRF})
LEFT = "node.conf 400 1000\n.pw 400 1000\nkes.skey 400 1000\nvrf.skey 400 1000\n"


def hot(job, version: str, running: bool) -> dict:
    """A container of the holder started with the hot files of ``pool/Hot``'s ``version``."""
    box = container(job, hot=True, running=running)
    box["labels"]["io.nodeops.secrets"] = json.dumps({"kes": version})
    return box


KILLED = {  # where the replace was when the run died -> the holder a's containers then
    "set aside, running": lambda job: {PREVIOUS: hot(job, "v1", True)},
    "set aside, stopped": lambda job: {PREVIOUS: hot(job, "v1", False)},
    "new one created, not started": lambda job: {NAME: hot(job, "v2", False), PREVIOUS: hot(job, "v1", False)},
    "the rerun killed after its put back": lambda job: {NAME: hot(job, "v1", False)},
    "started, files not shredded": lambda job: {NAME: hot(job, "v2", True), PREVIOUS: hot(job, "v1", False)},
}


handed: list[bool] = []  # what the engine told the issuer: whether the holder runs the pending version (held)


def killed_rotation(tmp_path, monkeypatch, boxes):
    """The pool (holder a, standby b) with ``pool/Hot``'s v2 AWSPENDING left by a killed rotation and a's containers
    as ``boxes`` gives them: (the rotation, its spec, the engine, the manager)."""
    run, engine, manager, role = pool(tmp_path, monkeypatch)
    run.unseen.clear()
    engine.boxes["a"] = boxes(run.job)
    # the files the killed run wrote to a's tmpfs, as a listing of its folder answers (the engine keeps no files)
    engine.fails.append(("a", r"find /run/nodeops/pool -type f", (0, LEFT, "")))
    manager.store["pool/Hot"]["v2"] = (PENDING_DOC, ["AWSPENDING"])
    issuer = role.hooks.issuers["hot"]
    handed.clear()

    def issue(_variables, _secrets, _chain, pending, held):
        assert pending == {"kes": NEW_KES, "vrf": VRF}  # the pending version handed over: kept, never issued anew
        handed.append(held)
        return Issued(dict(pending), {"counter": "2"}, {"counter": 1}, True)

    monkeypatch.setattr(issuer, "issue", issue)
    monkeypatch.setattr(run, "observe", lambda **_kw: (seen(run), None))
    rotation = ServiceRotation(run.fleet.inventory, run.job, run.fleet, run.report, {})
    rotation.deploy = run
    return rotation, role.rotation["hot"], engine, manager


@pytest.mark.parametrize("state", list(KILLED))
def test_a_rotation_killed_in_the_holders_replace_converges_on_the_rerun(tmp_path, monkeypatch, state):
    rotation, spec, engine, manager = killed_rotation(tmp_path, monkeypatch, KILLED[state])
    rotation.run([spec])
    lines = sent(engine)
    a = engine.boxes["a"]
    assert set(a) == {NAME}, lines  # no previous container left
    assert a[NAME]["running"] and a[NAME]["labels"]["io.nodeops.hot"] == "true", lines
    assert json.loads(a[NAME]["labels"]["io.nodeops.secrets"])["kes"] == "v2", lines
    assert manager.store["pool/Hot"]["v2"][1] == ["AWSCURRENT"] and manager.current("pool/Counter") == "2"
    assert not any(line.startswith("b: ") and line.split(": ")[1] in ("run", "run+hot", "stop", "set-aside")
                   for line in lines), lines  # fmt: skip
    check_secrets(engine, {"a"})
    query = lines.index("a: docker exec nodeops-pool cli query")
    started = [i for i, line in enumerate(lines) if line in ("a: start", "a: run+hot", "a: put-back")]
    if state != "started, files not shredded":  # the query asks a running container of the holder
        assert started and started[0] < query, lines
    written = max((i for i, line in enumerate(lines) if line.startswith("a: write")), default=0)
    assert any(line.startswith("a: shred") and "kes.skey" in line for line in lines[written:]), lines
    if state == "started, files not shredded":  # it runs the pending version: not restarted, its files shredded
        assert "a: run+hot" not in lines and "a: start" not in lines, lines
    # held only for a holder that runs the pending version: one put back on its own runs none, and the role issues a
    # pending certificate that starts before the clock's period again (rev16b finding 2)
    assert handed == [state == "started, files not shredded"], handed


def test_two_nodes_each_with_a_set_aside_holder_are_refused_nothing_changed(tmp_path, monkeypatch):
    """Never guessed: two nodes whose set-aside containers carry the hot label, no running holder: refused (exit 4)
    before anything is sent but looks."""
    rotation, spec, engine, manager = killed_rotation(tmp_path, monkeypatch, KILLED["set aside, stopped"])
    engine.boxes["b"] = {PREVIOUS: hot(rotation.job, "v1", False)}
    with pytest.raises(Unsafe, match="no node runs with the hot keys and the containers of a, b"):
        rotation.run([spec])
    assert [line for line in sent(engine) if "inspect" not in line] == []
    assert manager.store["pool/Hot"]["v2"][1] == ["AWSPENDING"]


def test_status_and_check_say_a_rotation_killed_in_the_holders_replace_and_the_command_that_completes_it(
        tmp_path, monkeypatch):  # fmt: skip
    """The producer's container set aside and stopped by the killed replace (no node runs with the hot keys):
    status's ``rotation`` and check's ``rotation`` still say the rotation is under way, with the command that
    completes it (read from the secret's stages alone), and the standing says why the chain was not asked."""
    job, run, _seen = status_pool(tmp_path)
    box = run.edge.boxes["a"]
    box[PREVIOUS] = box.pop(NAME)
    box[PREVIOUS]["running"] = False
    seen_now = status_views(run)
    played_aws(monkeypatch, PENDING)
    rotation, fence = rotation_status(status_inventory(tmp_path), job)
    finish = f"{program()} rotate-secrets --env prod --service pool --secret hot"
    assert rotation == {"interrupted": ["hot"], "finish": finish} and fence is None
    result = service_status(job, seen_now, None, rotation, None, NOW)
    assert f"hot interrupted: {finish} completes it" in " ".join(printed(status_view([result])).split())
    found = probe(tmp_path, monkeypatch, job, run)
    assert found[("", "rotation")] == ("fail", f"hot interrupted: {finish} completes it")
    assert found[("", "issued:hot")] == ("fail", "not checked: not read: no node holds the hot keys (the chain is "
                                         "asked in the holder's container)")  # fmt: skip


def test_an_issuers_refusal_names_where_the_inventory_points_the_secrets_it_read(tmp_path, monkeypatch):
    """Review rev16d finding 6: a refused counter or cold key (exit 2) named the secrets by the role's names only
    (`secret counter: ...`), not the inventory's file and references an operator must fix. The refusal keeps its
    type and words, and says where each secret the rotation read comes from; nothing is staged or sent."""
    run, engine, manager, role = pool(tmp_path, monkeypatch)
    run.unseen.clear()

    def refuse(*_args):
        raise InvalidInput("secret counter: reused: counter 1 is the chain's own; the next is 2")

    monkeypatch.setattr(role.hooks.issuers["hot"], "issue", refuse)
    monkeypatch.setattr(run, "observe", lambda **_kw: (seen(run), None))
    rotation = ServiceRotation(run.fleet.inventory, run.job, run.fleet, run.report, {})
    rotation.deploy = run
    with pytest.raises(InvalidInput) as err:
        rotation.run([role.rotation["hot"]])
    message = str(err.value)
    assert err.value.exit_code == EXIT_INVALID and "\n" not in message
    assert (f"secret counter: reused: counter 1 is the chain's own; the next is 2 ({tmp_path / 't.yaml'}: "
            "services.pool.secrets.cold is 'pool/Cold' in backend 'aws'; services.pool.secrets.counter is "
            "'pool/Counter' in backend 'aws'); changed: nothing") in message, message  # fmt: skip
    assert not any(line.startswith(("a: run", "a: write", "b: run")) for line in sent(engine))
    assert not any("AWSPENDING" in stages for _value, stages in manager.store["pool/Hot"].values())
