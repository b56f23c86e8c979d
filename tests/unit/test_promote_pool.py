"""Issue 16: `fab promote-standby` of a service with node kinds (a pool: two relays under ``all``, a producer and
its standby under ``keys``), over the keys tables' played container engine (test_executor_keys: every line a node
is sent, no host touched). The promotion is assessed and planned in the producers' group, so the relays are never
a step and never the node promoted; there and back, the keys never on two nodes."""

from __future__ import annotations

import dataclasses
import json
import shlex
import types

import pytest

from nodeops import promote
from nodeops.errors import Unsafe
from nodeops.inventory import Service
from nodeops.promote import Handover
from nodeops.promote_keys import KeysHandover
from tasks.promote import outage_line
from tests.unit.test_executor_groups import POOL, R1, R2, A, B, runs
from tests.unit.test_executor_keys import KES, NAME, Engine, Keys, check_secrets, container, make_job, seen, short
from tests.unit.test_promote import HEALTHY, WAITING
from tests.unit.test_promote import A as LEASE_A


def pool_run(tmp_path, holder: str = "a", hook: str | None = None) -> tuple[Keys, Engine]:
    """A deployed pool: both relays and both producers run, ``holder`` with the hot keys; the run can observe it
    (its ``observer``, as ServiceDeploy's). ``hook``: the role's module."""
    job = make_job(tmp_path, role=POOL, hook=hook)
    job = dataclasses.replace(job, service=dataclasses.replace(job.service, nodes=(R1, R2, A, B)))
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


@pytest.mark.parametrize(
    ("result", "line"),
    [
        ({"outage_seconds": None, "outage_measured": False, "keys_gap_seconds": 2.726,
          "outage_chain_units": "14 slots"}, "no node held the hot keys for 2.73s (14 slots)"),
        ({"outage_seconds": 0.81, "outage_measured": True, "outage_chain_units": "1 block"}, "outage 0.81s (1 block)"),
        ({"outage_seconds": 0.81, "outage_measured": True}, "outage 0.81s"),  # no hook (Chainlink): as before
        ({"outage_seconds": None, "outage_measured": False, "keys_held_before": False},
         "no node held the hot keys when the promotion began"),  # no figure, no unit
    ],
    ids=["keys-gap-in-slots", "lease-outage-in-units", "no-hook", "no-figure"],
)  # fmt: skip
def test_the_promotion_line_gives_the_chains_unit_beside_the_seconds(result, line):
    assert outage_line(result) == line


OUTAGE = "def outage(seconds, profile):\n    return f'{round(seconds / 0.2)} slots on {profile}'\n"


@pytest.mark.parametrize(
    ("hook", "said"),
    [
        (OUTAGE, "slots on {profile}"),
        ("def outage(seconds, profile):\n    return None\n", None),
        ("def outage(seconds, profile):\n    return 1 / 0\n", None),  # raises: said on a step line, no phrase
        (None, None),  # no hook: the result as before
    ],
    ids=["says", "says-nothing", "raises", "no-hook"],
)  # fmt: skip
def test_the_promotions_result_has_the_roles_outage_phrase(tmp_path, hook, said):
    """The role's ``outage`` hook is given the keys gap measured and the service's profile; its phrase is the
    result's ``outage_chain_units`` (absent when it says nothing, raises, or the role has none)."""
    run, _ = pool_run(tmp_path, hook=hook)
    result = promote.promote_service(run, keep_old_stopped=False, force=False)
    assert result["keys_gap_seconds"] >= 0
    if said is None:
        assert "outage_chain_units" not in result
    else:
        said = said.format(profile=run.job.profile)  # the service's profile, as the hook is given it
        assert result["outage_chain_units"] == f"{round(result['keys_gap_seconds'] / 0.2)} {said}"
    told = [m for node, m in run.said if "chain's unit" in m]
    assert told == ([f"the outage in the chain's unit is not said: role pool: its hook outage raised "
                     f"ZeroDivisionError ({tmp_path / 'roles' / 'pool' / 'role.py'}:2): fix the role's module"]
                    if hook and "1 / 0" in hook else [])  # fmt: skip


@pytest.mark.parametrize(
    ("keep_old_stopped", "planned"),
    [
        (False, ["replace a (fence: restarted without the hot keys)", "await-fenced a",
                 "replace b (promoted, with the hot keys)", "await-serving b", "await-serving a"]),
        (True, ["stop a (fence: stopped)", "await-fenced a", "replace b (promoted, with the hot keys)",
                "await-serving b"]),
    ],
    ids=["restart-fence", "stop-fence"],
)  # fmt: skip
def test_a_dry_run_shows_the_plan_by_kind_and_touches_nothing(tmp_path, keep_old_stopped, planned):
    """`promote-standby --dry-run`: the pool observed and every refusal made, the plan said (the kind it moves in
    named, the relays untouched), its steps in the result; nothing but looks sent to any node."""
    run, engine = pool_run(tmp_path)
    engine.sent.clear()
    result = promote.dry_promotion(run, keep_old_stopped, force=False)
    assert result == {"service": "pool", "changed": True, "planned": planned, "secrets_moved": []}
    (line,) = [m for node, m in run.said if m.startswith("plan:")]
    assert line.startswith("plan: producer: planned promotion of b: fence a first, then the keys; relay: untouched")
    assert line.endswith("; ".join(planned))
    assert {short(node, c).split(": ", 1)[1] for node, c, _ in engine.sent} == {"inspect"}


def test_a_dry_run_is_refused_as_the_promotion_would_be(tmp_path):
    """Two holders seen: refused before any plan (exit 4), as the promotion itself."""
    run, engine = pool_run(tmp_path)
    engine.boxes["b"][NAME]["labels"]["io.nodeops.hot"] = "true"
    with pytest.raises(Unsafe, match="2 nodes hold the hot keys"):
        promote.dry_promotion(run, False, force=False)


@pytest.mark.parametrize(
    ("handover", "keep_old_stopped", "planned"),
    [
        (Handover("svc", {"a": HEALTHY, "b": WAITING}, WAITING, LEASE_A), False,
         ["hand over from a to b (planned failover)", "start-again a", "shred b (lease)"]),
        (Handover("svc", {"a": HEALTHY, "b": WAITING}, WAITING, LEASE_A), True,
         ["hand over from a to b (planned failover)", "keep-stopped a (--keep-old-stopped)", "shred b (lease)"]),
        (Handover("svc", {"a": HEALTHY, "b": WAITING}, WAITING, what="a: unreachable"), False,
         ["svc: the active is gone (a: unreachable): wait for its lease to expire by database time, then b "
          "(standby, ?) serves"]),
    ],
    ids=["lease-planned", "lease-keep-old-stopped", "lease-force"],
)  # fmt: skip
def test_a_dry_run_of_a_lease_pair_shows_its_handover(monkeypatch, handover, keep_old_stopped, planned):
    """A lease pair (Chainlink) dry-run: the handover's plan, as planned() would carry it out; with --force, the
    wait it would do (it starts nothing)."""
    monkeypatch.setattr(promote, "assess", lambda _run, _force: handover)
    said = []
    run = types.SimpleNamespace(service=Service("svc", "r", "img:2", "docker", {}, {}, (LEASE_A, WAITING.node)),
                                say=lambda _node, message, **data: said.append((message, data)))  # fmt: skip
    result = promote.dry_promotion(run, keep_old_stopped, force=handover.active is None)
    assert result == {"service": "svc", "changed": True, "planned": planned, "secrets_moved": []}
    assert said[0][1] == {"steps": planned}


def rotated(job, names: tuple[str, ...]):
    """``job`` as a node restarted by a rotation of the secrets ``names`` runs it: each at a new value and version
    (``<name>-v2``), rendered again (the labels that node's container then records)."""
    from nodeops.render import render  # noqa: PLC0415 (the one test that renders again)
    from nodeops.secrets import Secret  # noqa: PLC0415

    secrets = {**job.secrets, **{n: Secret(f"rotated-{n}-0123456789", n, f"{n}-v2") for n in names}}
    rendered = render(job.role, job.profile, job.service, secrets)
    return dataclasses.replace(
        job, secrets=secrets, rendered=rendered, redact=job.redact.with_secrets(secrets.values())
    )


@pytest.mark.parametrize("undone", [False, True], ids=["promoted", "failed-put-back"])
def test_a_promotion_after_a_rotation_starts_the_new_holder_with_the_holders_hot_secrets(tmp_path, undone):
    """The bug (docs/cardano.md): a rotation of a hot secret restarted the holder alone, so its container's labels
    record the new version and the standby's the old; the promotion started the standby on its own recorded
    versions, the old hot key and certificate (the chain refuses every block). The new holder starts with the
    versions the old holder's labels record for the secrets its hot files use, and its own for the others (``pw``
    here, which a failed deploy may have left differing). ``failed-put-back``: the new holder dies with the keys;
    the undo gives the old holder its keys back on its own (rotated) inputs and puts the standby's previous
    container back on its own inputs (its labels unchanged)."""
    run, engine = pool_run(tmp_path)
    standby_labels = dict(engine.boxes["b"][NAME]["labels"])
    run.ran_on["a"] = held = rotated(run.job, ("kes", "pw"))  # a's labels, as its restore_job reads them
    run.job = dataclasses.replace(run.job, redact=held.redact)
    engine.dies_hot = {"b"} if undone else set()
    if undone:
        with pytest.raises(Exception, match="a was given its keys back"):
            promote.promote_service(run, keep_old_stopped=False, force=False)
    else:
        promote.promote_service(run, keep_old_stopped=False, force=False)
    (hot_run,) = [c for node, c, _ in engine.sent if node == "b" and "io.nodeops.hot=true" in c]
    argv = shlex.split(hot_run)
    labels = dict(argv[i + 1].split("=", 1) for i, w in enumerate(argv) if w == "--label")
    assert json.loads(labels["io.nodeops.secrets"]) == {"kes": "kes-v2", "pw": None, "vrf": None}
    written = b"".join(stdin or b"" for node, c, stdin in engine.sent if node == "b")
    assert b"rotated-kes-0123456789" in written and b"rotated-pw-0123456789" not in written
    if undone:
        assert engine.boxes["b"][NAME]["labels"] == standby_labels  # its previous container, back
        assert engine.boxes["a"][NAME]["labels"].get("io.nodeops.hot") == "true"  # its own container, keys back
        a_written = [stdin for node, _c, stdin in engine.sent if node == "a" and stdin]
        assert any(b"rotated-kes-0123456789" in w for w in a_written)  # its own keys: the rotated ones
        assert not any(KES.encode() in w for w in a_written)
