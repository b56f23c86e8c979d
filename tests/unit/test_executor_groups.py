"""Issue 16: a service of node kinds carried out (nodeops.activation.groups.GroupsRunner): the plan's parts, one per
kind in the role's order, each by its kind's model's runner on the change seen as that kind's group, over the keys
tables' played container engine (test_executor_keys: every line a node is sent, no host touched). The hot files and
the holder's arguments go to the producer alone; the relays roll with only the relays counted as each other's
cover; a stop between two kinds leaves the next kind untouched."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from nodeops.activation.groups import GroupChange, Groups
from nodeops.errors import EXIT_INTERRUPTED, EXIT_UNSAFE, Interrupted
from nodeops.inventory import Node
from nodeops.run.runner import ChangeFailed
from tests.unit.test_executor_keys import NAME, ROLE, Engine, Keys, check_secrets, container, make_job, seen, wanted

KINDS = "kinds:\n  relay: {activation: all, min_nodes: 2}\n  producer: {activation: keys}\n"
POOL = ROLE.replace("activation: keys\n", KINDS).replace(
    '"{mount}/node.conf"]\n', '"{mount}/node.conf"]\n    hot_command: [--shelley-kes-key, "{mount}/kes.skey"]\n'
)
R1, R2 = (Node(f"r{i}", f"10.0.0.1{i}", 22, None, (), "pool", "relay") for i in (1, 2))
A = Node("a", "10.0.0.1", 22, "active", (), "pool", "producer")
B = Node("b", "10.0.0.2", 22, "standby", (), "pool", "producer")


def pool_job(tmp_path):
    job = make_job(tmp_path, role=POOL)
    return dataclasses.replace(job, service=dataclasses.replace(job.service, nodes=(R1, R2, A, B)))


def runs(engine: Engine) -> list[str]:
    """Each `docker run`, as node and whether it carried the hot label and the holder's arguments."""
    out = []
    for node, command, _ in engine.sent:
        if command.startswith("docker run"):
            argv = shlex.split(command)
            hot = "io.nodeops.hot=true" in command
            assert hot == ("--shelley-kes-key" in argv), command  # the label and the key flag go together
            out.append(f"{node}{' +keys' if hot else ''}")
    return out


@pytest.mark.parametrize(
    ("old", "expected"),
    [
        ({}, ["r1", "r2", "b", "a +keys"]),  # from nothing: the relays, then the standby, then the holder
        ({"r1": {}, "r2": {}, "a": {"hot": True}, "b": {}}, ["r1", "r2", "b", "a +keys"]),  # an upgrade
        ({"r1": {"config": "new"}, "r2": {}, "a": {"hot": True, "config": "new"}, "b": {"config": "new"}}, ["r2"]),
    ],
    ids=["fresh", "upgrade", "one-relay"],
)  # fmt: skip
def test_a_pool_is_carried_out_kind_by_kind(tmp_path, old, expected):
    job = pool_job(tmp_path)
    current = {n: {**spec, "config": job.rendered.config_hash if spec.get("config") == "new" else "old"}
               for n, spec in old.items()}  # fmt: skip
    engine = Engine({n: {NAME: container(job, **spec)} for n, spec in current.items()})
    run = Keys(job, engine)
    assert isinstance(run.model, Groups)
    plan = run.model.plan_change(job.service, seen(run), wanted(job))
    engine.sent.clear()
    run.execute(plan)
    assert runs(engine) == expected
    check_secrets(engine, {"a"})
    assert run.verify() == {"serving": ["r1", "r2"], "active": "a"}
    now = run.now()  # the audit's end entry: the holder, and every node serving
    assert (now["active"], now["serving"]) == ("a", ["r1", "r2", "a", "b"])
    assert {node["state"] for node in now["nodes"].values()} == {"serves"} and len(now["nodes"]) == 4


def test_the_producers_serving_are_no_relays_cover(tmp_path):
    """Planned with both relays serving; by r1's replace r2 has stopped. Only the relays count: refused (exit 4),
    nothing replaced, though both producers serve (the whole service seen as one would have taken r1 down too)."""
    job = pool_job(tmp_path)
    engine = Engine({n: {NAME: container(job, hot=n == "a", config="old")} for n in ("r1", "r2", "a", "b")})
    run = Keys(job, engine)
    plan = run.model.plan_change(job.service, seen(run), wanted(job))
    engine.boxes["r2"][NAME]["running"] = False
    engine.sent.clear()
    with pytest.raises(ChangeFailed) as err:
        run.execute(plan)
    assert err.value.exit_code == EXIT_UNSAFE and "r1: no other node serves just before its replace" in str(err.value)
    assert runs(engine) == []
    assert "serving: a, b" not in str(err.value)  # what serves is said of the relays' group
    assert "not serving: r2" in str(err.value)


def test_a_stop_between_two_kinds_leaves_the_next_untouched(tmp_path):
    job = pool_job(tmp_path)
    engine = Engine({n: {NAME: container(job, hot=n == "a", config="old")} for n in ("r1", "r2", "a", "b")})
    run = Keys(job, engine)
    plan = run.model.plan_change(job.service, seen(run), wanted(job))
    engine.stop_at = ("r2", r"^for f in", run.stop.requested)  # the stop comes as r2's files are shredded
    engine.sent.clear()
    with pytest.raises(Interrupted) as err:
        run.execute(plan)
    assert err.value.exit_code == EXIT_INTERRUPTED
    assert runs(engine) == ["r1", "r2"]
    assert str(err.value).startswith(
        "pool: stopped as asked once the relay nodes were done, before `replace b "
        "(standby first, without the hot keys)`: no producer node was touched"
    )


def test_a_group_change_is_the_change_seen_as_one_kind(tmp_path):
    job = pool_job(tmp_path)
    run = Keys(job, Engine({}))
    part = run.model.part(run, "relay")
    assert isinstance(part, GroupChange) and [n.name for n in part.service.nodes] == ["r1", "r2"]
    assert part.model is run.model.kinds["relay"] and part.job is run.job
    part.stop_seen = 3  # what a runner records goes to the change itself
    assert run.stop_seen == 3
