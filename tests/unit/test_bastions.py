"""Several bastions in one inventory (issue 18): ``bastions:`` by name and a ``bastion:`` per service; the one
``bastion:`` keeps working; a run's fan-out, locks and audit records are each bastion's own; shards keep one
bastion's services together."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from typing import Any

import pytest
import yaml

from nodeops.edges.ssh import Fleet, Link
from nodeops.errors import InventoryError, LockHeld, OperationFailed
from nodeops.inventory import Inventory, parse_inventory
from nodeops.ledger import Ledger
from nodeops.operation import Operation
from nodeops.run.report import Reporter
from nodeops.shards import bastions_of, matrix, parse_shard, services_in
from tests.unit.test_inventory import BASE, DELETE, SOURCE, changed, key

EU = {"host": "203.0.113.20", "user": "ops", "host_key": key(20), "state_dir": ".nodeops-eu"}
US = {"host": "198.51.100.30", "port": 2222, "user": "ops", "host_key": key(30)}


def service(name: str, seed: int, bastion: str | None) -> dict[str, Any]:
    nodes = [{"name": f"{name}-a", "host": f"10.0.{seed}.10", "preferred": "active", "host_key": key(seed)},
             {"name": f"{name}-b", "host": f"10.0.{seed}.11", "preferred": "standby",
              "host_key": key(seed + 1)}]  # fmt: skip
    return {"role": "chainlink", "image": "smartcontract/chainlink:2.10.0", "nodes": nodes,
            **({"bastion": bastion} if bastion else {})}  # fmt: skip


def _two_bastions() -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    del doc["bastion"]
    doc["bastions"] = {"eu": EU, "us": US}
    doc["services"] = {"eu1": service("eu1", 10, "eu"), "us1": service("us1", 30, "us"),
                       "eu2": service("eu2", 20, "eu"), "us2": service("us2", 40, "us")}  # fmt: skip
    return doc


TWO = _two_bastions()


def several(*changes: tuple[str, Any]) -> str:
    """Two bastions (eu, us), two services behind each, after setting (or deleting) dotted paths."""
    return changed(TWO, *changes)


def parse(text: str) -> Inventory:
    return parse_inventory(text, SOURCE)


def test_bastions_by_name_and_a_bastion_per_service():
    inv = parse(several())
    assert list(inv.bastions) == ["eu", "us"]
    eu, us = inv.bastions["eu"], inv.bastions["us"]
    assert (eu.name, eu.where, eu.host, eu.port, eu.state_dir) == (
        "eu",
        "bastions.eu",
        "203.0.113.20",
        22,
        ".nodeops-eu",
    )
    assert (us.name, us.port, us.state_dir, us.lock_timeout) == ("us", 2222, ".nodeops", 60)
    assert {name: inv.bastion_of(name).name for name in inv.services} == {
        "eu1": "eu", "us1": "us", "eu2": "eu", "us2": "us"}  # fmt: skip
    assert inv.bastions_of(["us2", "eu1", "us1"]) == {"eu": ["eu1"], "us": ["us2", "us1"]}


def test_the_one_bastion_form_is_every_services_bastion():
    inv = parse(yaml.safe_dump(BASE))
    (only,) = inv.bastions.values()
    assert (only.name, only.where) == ("bastion", "bastion")
    assert inv.services["chainlink"].bastion == "bastion" and inv.bastion_of("chainlink") is only


def test_one_entry_of_bastions_needs_no_bastion_per_service():
    inv = parse(several(("bastions.us", DELETE), ("services.us1.bastion", DELETE), ("services.us2", DELETE),
                        ("services.us1.bastion", "eu")))  # fmt: skip
    assert {s.bastion for s in inv.services.values()} == {"eu"}
    inv = parse(several(("bastions.us", DELETE), ("services.us1", DELETE), ("services.us2", DELETE),
                        ("services.eu2.bastion", DELETE)))  # fmt: skip
    assert inv.services["eu2"].bastion == "eu"


def _both() -> str:
    doc = yaml.safe_load(several())
    doc["bastion"] = BASE["bastion"]
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        (_both(), "bastions", "both bastion and bastions are set: keep bastion (one for every service) or bastions"),
        (several(("bastions", DELETE)), "bastion", "missing required key 'bastion' (or bastions: several by name)"),
        (several(("bastions", {})), "bastion", "missing required key 'bastion' (or bastions: several by name)"),
        (several(("services.us2.bastion", "ap")), "services.us2.bastion", "unknown bastion 'ap' (bastions: eu, us)"),
        (
            several(("services.eu2.bastion", DELETE)),
            "services.eu2",
            "no bastion: the file has several (eu, us); name the one it is reached through (bastion: eu)",
        ),
        (
            yaml.safe_dump({**BASE, "services": {"cl": service("cl", 10, "eu")}}),
            "services.cl.bastion",
            "names bastion 'eu', but the file has one bastion (bastion:): remove this key, or declare the bastions",
        ),
        (several(("bastions.us.host_key", DELETE)), "bastions.us", "set exactly one of host_key or known_hosts"),
        (several(("bastions.eu.port", "x")), "bastions.eu.port", "expected an integer 1..65535"),
        (several(("bastions.eu.colour", "x")), "bastions.eu.colour", "unknown key 'colour'"),
        (several(("bastions.EU", EU)), "bastions.EU", "a name"),
        (several(("services.eu1.bastion", "Bad Name")), "services.eu1.bastion", "a name"),
        (
            several(("bastions.us.host", EU["host"]), ("bastions.us.port", 22)),
            "bastions.us",
            "the same host and port as bastions.eu (203.0.113.20:22): one bastion under two names would be logged in "
            "to twice; use one name for one bastion (remove bastions.us, name eu in its services' bastion:)",
        ),
        (
            several(
                ("bastions.eu.host", "bastion.example.com"),
                ("bastions.us.host", "Bastion.Example.COM"),
                ("bastions.eu.port", 2222),
            ),
            "bastions.us",
            "the same host and port as bastions.eu",
        ),
        (
            several(
                ("bastions.eu.host", "2001:db8::1"), ("bastions.us.host", "2001:0db8:0::1"), ("bastions.us.port", 22)
            ),
            "bastions.us",
            "the same host and port as bastions.eu",
        ),
    ],
    ids=[
        "both",
        "neither",
        "empty",
        "unknown",
        "missing",
        "named-under-one",
        "unpinned",
        "port",
        "unknown-key",
        "bad-name",
        "bad-reference",
        "same-address",
        "same-name-in-another-case",
        "same-ipv6-written-otherwise",
    ],  # fmt: skip
)
def test_a_bastion_mistake_is_one_located_line(text, where, fragment):
    with pytest.raises(InventoryError) as info:
        parse(text)
    err = info.value
    assert (err.file, err.where, err.exit_code) == (str(SOURCE), where, 2)
    assert fragment in err.problem, err.problem
    assert "\n" not in str(err)


def test_a_bastions_unreadable_identity_is_named_by_its_path(tmp_path):
    inv = parse(several(("bastions.us.identity_file", str(tmp_path / "missing"))))
    with pytest.raises(InventoryError) as info:
        Fleet(inv)
    assert info.value.where == "bastions.us.identity_file"


def test_each_bastion_is_a_target_of_its_own_and_each_node_goes_through_its_services():
    inv = parse(several())
    keys = Fleet(inv).keys
    assert {n: (t.label, t.address, t.user) for n, t in keys.bastions.items()} == {
        "eu": ("bastion eu", "203.0.113.20:22", "ops"), "us": ("bastion us", "198.51.100.30:2222", "ops")}  # fmt: skip
    assert {n.name: keys.bastion_of(n) for n in inv.nodes} == {
        "eu1-a": "eu", "eu1-b": "eu", "us1-a": "us", "us1-b": "us", "eu2-a": "eu", "eu2-b": "eu", "us2-a": "us",
        "us2-b": "us"}  # fmt: skip
    assert Fleet(inv, services=["us2"]).needed == ["us"] and Fleet(inv).needed == ["eu", "us"]


def test_the_fan_out_runs_behind_every_bastion_at_once_each_bounded_by_max_parallel(monkeypatch):
    """With max_parallel 1, the nodes behind eu and those behind us still overlap: a pool per bastion. The
    connection is the fake (no network here); the lab test reaches real bastions."""
    fleet = Fleet(parse(several(("ssh.max_parallel", 1))))
    lock, running, seen = threading.Lock(), {"eu": 0, "us": 0}, []
    monkeypatch.setattr(fleet, "connect", lambda _node: (Link(None), 1))

    def work(_link, node):
        where = fleet.keys.bastion_of(node)
        with lock:
            running[where] += 1
            seen.append(dict(running))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and len(seen) < 2:  # bounded: until the other bastion's first node came
            time.sleep(0.01)
        with lock:
            running[where] -= 1
        return node.name

    outcomes = fleet.map(fleet.inventory.nodes, work)
    assert [o.value for o in outcomes] == [n.name for n in fleet.inventory.nodes]  # in the order given
    assert max(s["eu"] for s in seen) == max(s["us"] for s in seen) == 1  # max_parallel behind each
    assert {"eu": 1, "us": 1} in seen  # both at once


START = {"time": "t", "event": "start", "services": ["eu1", "us1", "eu2"]}
END = {"event": "end", "services": ["eu1", "us1"], "results": [{"service": "eu1"}, {"service": "us1"}]}


@pytest.mark.parametrize(
    ("entry", "eu", "us"),
    [
        (START, {**START, "services": ["eu1", "eu2"]}, {**START, "services": ["us1"]}),
        (END, {**END, "services": ["eu1"], "results": [{"service": "eu1"}]},
         {**END, "services": ["us1"], "results": [{"service": "us1"}]}),
        ({"event": "step", "service": "us1", "node": "us1-a"}, None, {"event": "step", "service": "us1",
                                                                      "node": "us1-a"}),
        ({"event": "step", "service": "", "node": ""}, {"event": "step", "service": "", "node": ""},
         {"event": "step", "service": "", "node": ""}),
    ],
    ids=["start", "end", "a-service-step", "a-run-step"],
)  # fmt: skip
def test_each_bastions_log_records_its_own_services_share_of_a_run(entry, eu, us):
    fleet = Fleet(parse(several()))
    ledgers = {name: Ledger(fleet, name, names, "r", {}) for name, names in
               fleet.inventory.bastions_of(["eu1", "us1", "eu2"]).items()}  # fmt: skip
    assert (ledgers["eu"].share(entry), ledgers["us"].share(entry)) == (eu, us)
    assert (ledgers["eu"].state_dir, ledgers["us"].state_dir) == (".nodeops-eu", ".nodeops")


def test_shards_keep_one_bastions_services_together_when_the_count_allows():
    inv = parse(several())
    assert bastions_of(inv) == {"eu1": "203.0.113.20:22", "us1": "198.51.100.30:2222", "eu2": "203.0.113.20:22",
                                "us2": "198.51.100.30:2222"}  # fmt: skip
    assert [row["services"] for row in matrix(inv, 2)] == ["us1,us2", "eu1,eu2"]  # sorted by address
    assert [row["bastions"] for row in matrix(inv, 2)] == ["198.51.100.30:2222", "203.0.113.20:22"]
    four = [services_in(inv, parse_shard(f"{i}/4")) for i in range(1, 5)]
    assert sorted(s for shard in four for s in shard) == sorted(inv.services)  # each exactly once
    assert [len(shard) for shard in four] == [1, 1, 1, 1]


@pytest.fixture
def run_on_two(monkeypatch):
    """An Operation on eu1 and us1 whose bastions are not contacted: each Ledger's session calls recorded."""
    calls: list[str] = []
    monkeypatch.setattr(Fleet, "__enter__", lambda self: self)
    monkeypatch.setattr(Fleet, "close", lambda _self: calls.append("close"))
    monkeypatch.setattr(Ledger, "append", lambda self, line: calls.append(f"{self.name} {line}"))
    monkeypatch.setattr(Ledger, "release", lambda self: calls.append(f"release {self.name}"))
    return Operation(parse(several()), "deploy", ["us1", "eu1"], Reporter.silent()), calls


def test_a_lock_refused_on_one_bastion_releases_those_taken_on_the_others(run_on_two, monkeypatch):
    op, calls = run_on_two

    def acquire(self):
        calls.append(f"acquire {self.name}")
        if self.name == "us":
            raise LockHeld("us1: locked by someone")

    monkeypatch.setattr(Ledger, "acquire", acquire)
    with pytest.raises(LockHeld):
        op.__enter__()
    assert calls == ["acquire eu", "acquire us", "release eu", "release us", "close"]


def test_a_runs_entries_go_to_each_bastion_as_its_share(run_on_two, monkeypatch):
    op, calls = run_on_two
    monkeypatch.setattr(Ledger, "acquire", lambda self: calls.append(f"acquire {self.name}"))
    op.__enter__()
    op.report("us1", "us1-a", "pulled")
    op.__exit__(None, None, None)
    written = [(c.split(" ", 1)[0], json.loads(c.split(" ", 1)[1])) for c in calls if c[:3] in ("eu ", "us ")]
    assert [(where, e["event"], e.get("services"), e.get("service")) for where, e in written] == [
        ("eu", "start", ["eu1"], None), ("us", "start", ["us1"], None), ("us", "step", None, "us1"),
        ("eu", "end", ["eu1"], None), ("us", "end", ["us1"], None)]  # fmt: skip
    assert calls[-3:] == ["release eu", "release us", "close"]


def test_an_unreachable_bastion_of_the_run_fails_it_by_name_and_an_unneeded_one_is_not_contacted():
    """Real sockets on loopback: us's port refuses; eu's would accept (a listening socket never answered), but a
    run on us's services only never connects there."""
    with socket.socket() as refused, socket.create_server(("127.0.0.1", 0)) as listening:
        refused.bind(("127.0.0.1", 0))  # bound, never listening: a connection is refused
        text = several(("bastions.us.host", "127.0.0.1"), ("bastions.us.port", refused.getsockname()[1]),
                       ("bastions.eu.host", "127.0.0.1"), ("bastions.eu.port", listening.getsockname()[1]),
                       ("ssh.connect_retries", 0))  # fmt: skip
        with pytest.raises(OperationFailed) as err, Fleet(parse(text), services=["us1", "us2"]):
            pass
        assert str(err.value).startswith(f"bastion us (127.0.0.1:{refused.getsockname()[1]}): cannot connect after 1")
        listening.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listening.accept()  # eu was never contacted
