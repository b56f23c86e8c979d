"""A rerun of an issued rotation (nodeops.rotate.issued) whose node runs the pending version already (an
interrupted run restarted it onto that version): a failure after that point never removes AWSPENDING, since the
running node's new hot keys would then be tracked nowhere; the undo keeps it and says a rerun completes it. Over
the keys tables' played container engine and a played Secrets Manager (test_promote_forced's pool)."""

from __future__ import annotations

import json

import pytest

from nodeops.errors import OperationFailed
from nodeops.promote_forced import ForcedHandover
from nodeops.rotate import issued
from tests.unit.test_executor_keys import NAME, sent
from tests.unit.test_promote_forced import NEW_KES, VRF, pool


def test_a_rerun_whose_test_fails_keeps_the_pending_version_the_node_runs(tmp_path, monkeypatch):
    """b runs v2 (AWSPENDING) already; the rerun skips the restart, its testSecret fails: v2 stays AWSPENDING,
    AWSCURRENT unmoved, and the message says the node holds it and a rerun of the forced promotion completes it
    (it said rotate-secrets, which refuses a forced promotion's version: review rev16c F3)."""
    run, engine, manager, role = pool(tmp_path, monkeypatch)
    manager.store["pool/Hot"]["v2"] = (json.dumps({"kes": NEW_KES, "vrf": VRF}), ["AWSPENDING"])
    engine.boxes["b"][NAME]["labels"].update({"io.nodeops.hot": "true",
                                              "io.nodeops.secrets": json.dumps({"kes": "v2"})})  # fmt: skip
    monkeypatch.setattr(role.hooks.issuers["hot"], "taken", lambda *_a: False)  # the chain never takes it
    monkeypatch.setattr(issued, "TEST_TIMEOUT", 0.0)
    monkeypatch.setattr(issued, "POLL", 0.0)
    with pytest.raises(OperationFailed) as err:
        ForcedHandover("pool", run.observer.views(), ("a",), "b", "x").promote(run)
    said = str(err.value)
    assert manager.store["pool/Hot"]["v2"][1] == ["AWSPENDING"], said
    assert json.loads(manager.current("pool/Hot"))["kes"] != NEW_KES
    assert "AWSPENDING removed" not in said and "NOT undone" in said and "rotate-secrets" not in said, said
    assert "fab promote-standby --env t --service pool --force completes it" in said, said
    assert "b: run+hot" not in sent(engine)  # the rerun restarted nothing


@pytest.mark.parametrize(("taken", "said"), [(False, "which the chain has not taken yet"),
                                             (True, "which the chain took")])  # fmt: skip
def test_the_undo_says_whether_the_chain_took_the_pending_version(tmp_path, monkeypatch, taken, said):
    """Review rev16c F1: the message said "the chain may have taken" a version the chain had not taken (there, a
    certificate of a pool it does not know); it now says what the query asked again shows."""
    run, engine, manager, role = pool(tmp_path, monkeypatch)
    manager.store["pool/Hot"]["v2"] = (json.dumps({"kes": NEW_KES, "vrf": VRF}), ["AWSPENDING"])
    engine.boxes["b"][NAME]["labels"].update({"io.nodeops.hot": "true",
                                              "io.nodeops.secrets": json.dumps({"kes": "v2"})})  # fmt: skip
    monkeypatch.setattr(role.hooks.issuers["hot"], "taken", lambda *_a: taken)
    monkeypatch.setattr(role.hooks.issuers["hot"], "in_use", lambda *_a: False)  # testSecret fails either way
    monkeypatch.setattr(issued, "TEST_TIMEOUT", 0.0)
    monkeypatch.setattr(issued, "POLL", 0.0)
    with pytest.raises(OperationFailed) as err:
        ForcedHandover("pool", run.observer.views(), ("a",), "b", "x").promote(run)
    assert f"b runs the pending version, {said}" in str(err.value) and "may have taken" not in str(err.value)
