"""Issue 16: `fab promote-standby` of a service with node kinds (a pool: two relays under ``all``, a producer and
its standby under ``keys``), over the keys tables' played container engine (test_executor_keys: every line a node
is sent, no host touched). The promotion is assessed and planned in the producers' group, so the relays are never
a step and never the node promoted; there and back, the keys never on two nodes."""

from __future__ import annotations

import types

import pytest

from nodeops import promote
from nodeops.promote_keys import KeysHandover
from tests.unit.test_executor_groups import pool_job, runs
from tests.unit.test_executor_keys import NAME, Engine, Keys, check_secrets, container, seen, short


def pool_run(tmp_path, holder: str = "a") -> tuple[Keys, Engine]:
    """A deployed pool: both relays and both producers run, ``holder`` with the hot keys; the run can observe it
    (its ``observer``, as ServiceDeploy's)."""
    job = pool_job(tmp_path)
    engine = Engine({n: {NAME: container(job, hot=n == holder)} for n in ("r1", "r2", "a", "b")})
    run = Keys(job, engine)
    run.observer = types.SimpleNamespace(views=lambda: seen(run))
    return run, engine


def steps_of(plan) -> list[str]:
    return [f"{s.action} {s.node}" + (" +keys" if s.hot else "") for s in plan.steps]


@pytest.mark.parametrize(
    ("keep_old_stopped", "steps"),
    [
        (False, ["replace a", "await-fenced a", "replace b +keys", "await-serving b", "await-serving a"]),
        (True, ["stop a", "await-fenced a", "replace b +keys", "await-serving b"]),
    ],
    ids=["restart-fence", "stop-fence"],
)
def test_a_pool_is_assessed_and_planned_in_its_producers_group(tmp_path, keep_old_stopped, steps):
    """A pool has four nodes: assessed as a pair of producers (it was refused as `has no standby to promote (one
    node)`, exit 2), and planned in the producers' group: the relays are no step."""
    run, _ = pool_run(tmp_path)
    handover = promote.assess(run, force=False)
    assert isinstance(handover, KeysHandover) and (handover.holder, handover.new) == ("a", "b")
    assert steps_of(handover.plan(run, keep_old_stopped)) == steps


def test_a_pool_promoted_there_and_back_moves_the_keys_between_its_producers_only(tmp_path):
    """There (a -> b) and back (b -> a): each time the old holder is restarted without the keys before the other
    is started with them; the relays are never restarted, never given a hot file, never promoted."""
    run, engine = pool_run(tmp_path)
    for old, new in (("a", "b"), ("b", "a")):
        engine.sent.clear()
        result = promote.promote_service(run, keep_old_stopped=False, force=False)
        assert (result["active"], result["keys_held_before"]) == (new, True)
        assert runs(engine) == [old, f"{new} +keys"]  # the fence first, then the keys
        relays = {short(node, c).split(": ", 1)[1] for node, c, _ in engine.sent if node in ("r1", "r2")}
        assert relays <= {"inspect", "rm-previous"}  # looked at (never a second holder), nothing else
        check_secrets(engine, {new})
        hot = [n for n, box in engine.boxes.items() if box[NAME]["labels"].get("io.nodeops.hot") == "true"]
        assert hot == [new]
