"""A stop (Ctrl-C, SIGTERM) during an issued rotation (nodeops.rotate.issued, nodeops.rotate.service), over the keys
tables' played container engine and a played Secrets Manager (test_promote_forced's pool, both nodes reachable): a
stop that came after createSecret's line, while setSecret read what it restarts the holder with, is honoured (rev16c
F4: the holder was restarted anyway, then the run said the stop came "once every system used the new value"); one
that came once the holder's restart began completes the rotation and says it came during setSecret, where it came,
not where the run ended."""

from __future__ import annotations

import json

import pytest

from nodeops.errors import Interrupted
from nodeops.role_protocols import Issued
from nodeops.rotate import issued
from nodeops.rotate.service import ServiceRotation
from tests.unit.test_executor_keys import KES, NAME, VRF, seen, sent
from tests.unit.test_promote_forced import NEW_KES, pool
from tests.unit.test_rotate import StopAt

STOPS = {  # where the stop came -> the run's message (exit 130), whether AWSCURRENT moved, whether a was restarted
    "the holder's reads": ("pool: stopped as asked before setSecret hot; changed: nothing; undone: no node was "
                           "restarted, hot: AWSPENDING removed; AWSCURRENT unchanged", False, False),
    "the holder's restart": ("pool: the stop came during setSecret hot, past the last safe point, so the rotation "
                             "was completed: hot rotated, the new value current", True, True),
    "testSecret": ("pool: the stop came once every system used the new value, past the last safe point, so the "
                   "rotation was completed: hot rotated, the new value current", True, True),
}  # fmt: skip


@pytest.mark.parametrize("where", list(STOPS))
def test_a_stop_in_an_issued_rotation_is_honoured_where_it_came_and_said_so(tmp_path, monkeypatch, where):
    said, moved, restarted = STOPS[where]
    run, engine, manager, role = pool(tmp_path, monkeypatch)
    run.unseen.clear()
    engine.boxes["a"][NAME]["labels"]["io.nodeops.secrets"] = json.dumps({"kes": "v1"})
    monkeypatch.setattr(run, "observe", lambda **_kw: (seen(run), None))
    issuer = role.hooks.issuers["hot"]
    monkeypatch.setattr(issuer, "issue", lambda *_a: Issued({"kes": NEW_KES, "vrf": VRF}, {"counter": "2"}, {}))
    rotation = ServiceRotation(run.fleet.inventory, run.job, run.fleet, run.report, {})
    rotation.deploy = run
    rotation.stop = stop = StopAt(where)
    digest = issued.held_digest  # setSecret's last read before the restart: the stop comes while it reads

    def held_digest(*args):
        stop.reached("the holder's reads")
        return digest(*args)

    monkeypatch.setattr(issued, "held_digest", held_digest)
    execute = run.execute

    def restart(plan):
        stop.reached("the holder's restart")
        return execute(plan)

    monkeypatch.setattr(run, "execute", restart)
    in_use = issuer.in_use

    def test_(*args):
        stop.reached("testSecret")
        return in_use(*args)

    monkeypatch.setattr(issuer, "in_use", test_)
    monkeypatch.setattr(issued, "POLL", 0.0)
    engine.sent.clear()
    with pytest.raises(Interrupted) as err:
        rotation.run([role.rotation["hot"]])
    assert (str(err.value), err.value.exit_code) == (said, 130)
    stages = [s for _, st in manager.store["pool/Hot"].values() for s in st]
    assert "AWSPENDING" not in stages, manager.store["pool/Hot"]
    assert (json.loads(manager.current("pool/Hot"))["kes"] == NEW_KES) == moved
    assert (json.loads(manager.current("pool/Hot"))["kes"] == KES) != moved
    assert ("a: run+hot" in sent(engine)) == restarted, sent(engine)
    assert not any(line.startswith("b: ") and "run" in line for line in sent(engine)), sent(engine)
