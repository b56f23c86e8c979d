"""Choosing what to roll back to, from the audit log's records (pure)."""

from __future__ import annotations

import pytest

from nodeops.errors import InvalidInput
from nodeops.inventory import Service
from nodeops.rollback import pick, ran, target_service

REG = "reg:5000/smartcontract/chainlink"


def record(version: str, config: str, **extra) -> dict:
    return {"service": "cl1", "image": f"{REG}:{version}", "digest": f"sha256:{version}", "config": config,
            "variables": {"LOG_LEVEL": config}, **extra}  # fmt: skip


def end(op: str, *results: dict, result: str = "ok") -> dict:
    return {"event": "end", "op": op, "result": result, "results": list(results)}


def test_ran_keeps_successful_deploys_and_rollbacks_of_the_service_in_order():
    log = [
        end("deploy", record("2.10.0", "a")),
        {"event": "step", "op": "deploy", "results": [record("9", "x")]},  # a step, not an outcome
        end("deploy", record("2.11.0", "b"), {"service": "cl2", "image": f"{REG}:1", "config": "z"}),
        end("deploy", {**record("2.12.0", "c"), "error": "cl1 cl1-a: not serving"}, result="failed"),
        end("promote-standby", {"service": "cl1", "active": "cl1-b"}),
        end("rollback", record("2.10.0", "a2")),
    ]
    assert [(r["image"][-6:], r["config"]) for r in ran(log, "cl1")] == [("2.10.0", "a"), ("2.11.0", "b"),
                                                                          ("2.10.0", "a2")]  # fmt: skip


HISTORY = [record("2.10.0", "a"), record("2.11.0", "b"), record("2.11.0", "c")]


@pytest.mark.parametrize(
    ("running", "to", "expected"),
    [
        (("2.11.0", "c"), None, "b"),  # the newest that differs from what runs
        (("2.11.0", "b"), None, "c"),  # after rolling back, "previous" is the one rolled away from
        (None, None, "c"),  # nothing serves: the newest record
        (("2.11.0", "c"), "2.10.0", "a"),
        (("2.11.0", "c"), "2.11.0", "c"),  # --to the running version re-applies its newest record
    ],
)
def test_pick(running, to, expected):
    assert pick(HISTORY, running, to, "cl1")["config"] == expected


@pytest.mark.parametrize(
    ("history", "running", "to", "message"),
    [
        (HISTORY, ("2.11.0", "c"), "2.9.0", "2.9.0 never ran according to the audit log (known: 2.10.0, 2.11.0)"),
        ([record("2.10.0", "a")], ("2.10.0", "a"), None, "nothing ran before what runs now"),
        ([], None, None, "(versions recorded: none); name one with --to VERSION"),
    ],
)
def test_pick_refuses_with_what_there_is(history, running, to, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        pick(history, running, to, "cl1")
    assert err.value.exit_code == 2


def test_target_service_pins_the_digest_that_ran_and_takes_the_variables_of_then():
    service = Service(name="cl1", role="chainlink", image=f"{REG}:2.11.0", runtime="docker",
                      variables={"LOG_LEVEL": "debug"}, secrets={}, nodes=())  # fmt: skip
    back = target_service(service, record("2.10.0", "info"))
    assert back.image == f"{REG}:2.10.0@sha256:2.10.0" and back.variables == {"LOG_LEVEL": "info"}
    assert target_service(service, record("2.10.0", "info"), pinned=False).image == f"{REG}:2.10.0"
    assert target_service(service, {**record("2.10.0", "info"), "digest": None}).image == f"{REG}:2.10.0"
