"""--shard I/N: the split of services into shards (a table), its properties over many sizes, its input checks, and
the commands that take it (``nodeops shards``, ``--shard`` on the verbs), run as the fab program."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nodeops.errors import InvalidInput
from nodeops.inventory import parse_inventory
from nodeops.shards import Shard, matrix, parse_shard, services_in, split
from tests.conftest import fab

X, Y, Z = "x:22", "y:22", "z:22"


@pytest.mark.parametrize(
    ("bastions", "count", "expected"),
    [
        ({"a": X}, 1, [["a"]]),
        ({"a": X}, 3, [["a"]]),  # never an empty shard
        ({"b": X, "a": X, "c": X}, 2, [["a", "b"], ["c"]]),  # sorted by name: the mapping's order does not matter
        ({"a": X, "b": X, "c": X, "d": X}, 4, [["a"], ["b"], ["c"], ["d"]]),
        ({"a": X, "b": X, "c": Y, "d": Y}, 2, [["a", "b"], ["c", "d"]]),  # one bastion per shard
        ({"a": X, "b": X, "c": Y, "d": Y}, 4, [["a"], ["b"], ["c"], ["d"]]),
        ({"a": X, "b": X, "c": Y, "d": Y, "e": Y}, 2, [["a", "b"], ["c", "d", "e"]]),  # the smaller run first
        ({"a": X, "b": X, "c": X, "d": Y, "e": Y}, 2, [["a", "b", "c"], ["d", "e"]]),
        ({"a": X, "b": X, "c": X, "d": Y}, 2, [["a", "b"], ["c", "d"]]),  # balance first: bastion x spans two
        ({"a": Y, "b": Y, "c": X, "d": X}, 2, [["c", "d"], ["a", "b"]]),  # sorted by bastion, then name
        ({"a": X, "b": Y, "c": Y, "d": Z, "e": Z, "f": Z}, 3, [["a", "b"], ["c", "d"], ["e", "f"]]),
        ({"a": X, "b": Y, "c": Y, "d": Z, "e": Z, "f": Z}, 2, [["a", "b", "c"], ["d", "e", "f"]]),
        ({}, 2, []),
    ],
)
def test_split(bastions, count, expected):
    assert split(bastions, count) == expected


@pytest.mark.parametrize("services", [1, 2, 3, 5, 8, 13, 64])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("regions", [1, 2, 3])
def test_split_is_a_balanced_partition(services, count, regions):
    bastions = {f"s{i:02}": f"r{i % regions}" for i in range(services)}
    shards = split(bastions, count)
    assert len(shards) == min(count, services)
    assert sorted(n for s in shards for n in s) == sorted(bastions)  # every service exactly once
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert split(dict(reversed(bastions.items())), count) == shards  # the same on every runner


@pytest.mark.parametrize(
    ("text", "shard"), [("1/1", Shard(1, 1)), ("3/4", Shard(3, 4)), (" 2/2 ", Shard(2, 2)), ("1024/1024", None)]
)
def test_parse_shard(text, shard):
    assert parse_shard(text) == (shard or Shard(1024, 1024))


@pytest.mark.parametrize("text", ["", "1", "0/4", "5/4", "1/0", "-1/4", "1/4/2", "a/b", "1 / 4", "1/1025", "1/4x"])
def test_parse_shard_refuses(text):
    with pytest.raises(InvalidInput, match=r"^--shard .*: expected I/N, shard I of N with 1 <= I <= N <= 1024 "):
        parse_shard(text)


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAexdbHB36tcwydKJhbUhZib3vTlDloQOUKT1P7lVkKp"


def inventory_text(services: int) -> str:
    """An inventory of ``services`` one-node services cl<i>, listed in reverse order of their names."""
    nodes = "".join(
        f'  cl{i}:\n    nodes: [{{name: n{i}, host: 10.0.0.{i}, preferred: active, host_key: "{KEY}"}}]\n'
        for i in range(services, 0, -1)
    )
    return (
        textwrap.dedent(f"""\
        environment: t
        bastion: {{host: 127.0.0.1, user: root, host_key: "{KEY}"}}
        ssh: {{user: root}}
        defaults: {{role: chainlink, image: "smartcontract/chainlink:2.10.0"}}
        services:
        """)
        + nodes
    )


def test_services_in_keeps_the_inventory_order(tmp_path: Path):
    inv = parse_inventory(inventory_text(5), tmp_path / "t.yaml")
    assert [services_in(inv, Shard(i, 2)) for i in (1, 2)] == [["cl3", "cl2", "cl1"], ["cl5", "cl4"]]
    assert matrix(inv, 2) == [
        {"shard": "1/2", "services": "cl3,cl2,cl1", "bastions": "127.0.0.1:22"},
        {"shard": "2/2", "services": "cl5,cl4", "bastions": "127.0.0.1:22"},
    ]


def test_more_shards_than_services_is_refused(tmp_path: Path):
    inv = parse_inventory(inventory_text(2), tmp_path / "t.yaml")
    with pytest.raises(InvalidInput, match=r"has 2 service\(s\), so at most 2 shards: use --shard I/2"):
        services_in(inv, Shard(3, 3))
    assert [row["shard"] for row in matrix(inv, 3)] == ["1/2", "2/2"]  # what `nodeops shards --count 3` prints


def test_shards_command_prints_the_matrix(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text(inventory_text(3))
    res = fab("shards", "--inventory", str(path), "--count", "2", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"include": [
        {"shard": "1/2", "services": "cl2,cl1", "bastions": "127.0.0.1:22"},
        {"shard": "2/2", "services": "cl3", "bastions": "127.0.0.1:22"},
    ]}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("status", "--shard", "0/2"), "--shard '0/2': expected I/N"),
        (("deploy", "--shard", "2/x"), "--shard '2/x': expected I/N"),
        (("exec", "--command", "true", "--shard", "4/3"), "--shard '4/3': expected I/N"),
        (("check", "--shard", "3/3"), "has 2 service(s), so at most 2 shards"),
        (("verify", "--shard", "1/2", "--service", "cl1"), "--service cl1 and --shard 1/2: give one of them"),
        (("exec", "--command", "true", "--shard", "1/2", "--nodes", "n1"), "--nodes/-H n1 and --shard 1/2: give one"),
        (("exec", "--command", "true", "--shard", "1/2", "-H", "n1"), "--nodes/-H n1 and --shard 1/2: give one"),
        (("-H", "n1", "exec", "--command", "true", "--shard", "1/2"), "--nodes/-H n1 and --shard 1/2: give one"),
        (("exec", "--command", "true", "--shard", "1/2", "--hosts=n1"), "--nodes/-H n1 and --shard 1/2: give one"),
        (("shards", "--count", "0"), "--count 0: expected a number of shards from 1 to 1024"),
    ],
)
def test_bad_shard_is_one_line_and_exit_2(tmp_path: Path, args, fragment):
    path = tmp_path / "t.yaml"
    path.write_text(inventory_text(2))
    res = fab(*args, "--inventory", str(path))
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert fragment in res.stderr


@pytest.mark.parametrize("task", ["deploy", "status", "check", "rollback"])
def test_shard_has_no_short_flag_and_h_stays_help(task):
    res = fab(task, "-h")  # invoke would have made -h --shard's short form (-s is --service's)
    assert res.returncode == 0 and res.stdout.startswith(f"Usage: fab [--core-opts] {task} "), res.stderr
    assert "\n  --shard=STRING  " in res.stdout and "-h STRING" not in res.stdout
