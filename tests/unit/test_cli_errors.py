"""A user's mistake gets one line naming file, path and fix, the documented exit code, no traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import fab

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAexdbHB36tcwydKJhbUhZib3vTlDloQOUKT1P7lVkKp"
GOOD = textwrap.dedent(f"""\
    environment: t
    bastion: {{host: 127.0.0.1, user: root, host_key: "{KEY}"}}
    ssh: {{user: root}}
    services:
      cl1:
        role: chainlink
        image: smartcontract/chainlink:2.10.0
        nodes:
          - {{name: a, host: 10.0.0.1, preferred: active, host_key: "{KEY}"}}
          - {{name: b, host: 10.0.0.2, preferred: standby, host_key: "{KEY}"}}
    """)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("environment: [t\n", "line 2, column 1: invalid YAML"),
        (GOOD.replace("  cl1:\n", "  cl1:\n    rol: x\n"), "services.cl1.rol: unknown key 'rol'"),
        (GOOD.replace("user: root}\nservices", "}\nservices"), "ssh.user: missing required key 'user'"),
        (GOOD.replace("127.0.0.1, user", "127.0.0.1, port: abc, user"), "bastion.port: expected an integer"),
        (GOOD.replace("name: b,", "name: a,"), "services.cl1.nodes[1].name: duplicate node name 'a'"),
        (GOOD.replace("  cl1:\n", f"  {'c' * 300}:\n"), "a name of at most 63 characters, got 300"),
        (
            GOOD.replace("user: root, host_key", 'user: root, state_dir: "--help", host_key'),
            "bastion.state_dir: expected a directory path on the bastion",
        ),
    ],
    ids=["bad-yaml", "unknown-key", "missing-field", "wrong-type", "duplicate-node", "long-name", "option-state-dir"],
)
def test_bad_inventory_is_one_line_and_exit_2(tmp_path: Path, text: str, fragment: str):
    inventory = tmp_path / "bad.yaml"
    inventory.write_text(text)
    res = fab("exec", "--inventory", str(inventory), "--command", "true")
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"nodeops: {inventory}: ")
    assert fragment in res.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--env", "does-not-exist"), "inventory file not found"),
        (("--env", "../etc/passwd"), "invalid environment name"),
        ((), "give --env NAME or --inventory PATH"),
    ],
)
def test_bad_selection_is_one_line_and_exit_2(args, fragment):
    res = fab("exec", *args, "--command", "true")
    assert (res.returncode, res.stderr.count("\n")) == (2, 1)
    assert fragment in res.stderr and "Traceback" not in res.stderr


def test_unknown_node_and_missing_identity_file(tmp_path: Path):
    inventory = tmp_path / "t.yaml"
    inventory.write_text(GOOD)
    res = fab("exec", "--inventory", str(inventory), "--nodes", "a,zz", "--command", "true")
    assert res.returncode == 2 and "unknown node 'zz' (known: a, b)" in res.stderr
    inventory.write_text(GOOD.replace("ssh: {user: root}", "ssh: {user: root, identity_file: nope/id}"))
    res = fab("exec", "--inventory", str(inventory), "--command", "true")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert f"{inventory}: ssh.identity_file: cannot load private key {tmp_path}/nope/id" in res.stderr
