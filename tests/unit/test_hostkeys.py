"""nodeops hostkeys, the pure part: fingerprints as OpenSSH prints them, the expected-keys file, the
comparison tables, the known_hosts text written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nodeops.errors import InvalidInput
from nodeops.hostkeys import (
    CHANGED,
    MATCH,
    MISMATCH,
    NEW,
    UNLISTED,
    Expected,
    Row,
    against_expected,
    against_pinned,
    fingerprint,
    host_key_snippet,
    known_hosts_text,
    parse_expected,
)
from nodeops.inventory import HostKey, Node
from tasks.hostkeys import command_line, fit_advice, refusal

ED_A = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIAexdbHB36tcwydKJhbUhZib3vTlDloQOUKT1P7lVkKp")
ED_B = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
EC_A = HostKey(
    "ecdsa-sha2-nistp256",
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCeKGu0x0nkjO0fTiTOHdESszfEjkBazuhndnIAXJPMh8hUQLRuoLmc"
    "hE5Gght2J0kTcN8KrqlAQNYIXH4pa5Tc=",
)
A = Node("cl1-a", "10.0.1.5", 22, "active", (), "cl1")
B = Node("cl1-b", "10.0.1.6", 2222, "standby", (), "cl1")


@pytest.mark.parametrize("key", [ED_A, ED_B, EC_A])
def test_fingerprint_is_what_ssh_keygen_prints(tmp_path, key):
    path = tmp_path / "key.pub"
    path.write_text(key.line + "\n")
    printed = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True).stdout
    assert printed.split()[1] == fingerprint(key)


def test_expected_file_takes_fingerprints_and_known_hosts_lines():
    text = (
        f"# from the EC2 console\n\ncl1-a {fingerprint(ED_A)} (ED25519)\n10.0.1.6,[10.0.1.6]:2222 {ED_B.line} comment\n"
    )
    assert parse_expected(text, "keys.txt") == [
        Expected("cl1-a", fingerprint(ED_A), 3),
        Expected("10.0.1.6", fingerprint(ED_B), 4),
        Expected("[10.0.1.6]:2222", fingerprint(ED_B), 4),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("cl1-a", "keys.txt:2: one word only"),
        ("cl1-a ssh-ed25519", "keys.txt:2: 'ssh-ed25519' is not a SHA256 fingerprint"),
        ("cl1-a MD5:aa:bb", "keys.txt:2: 'MD5:aa:bb' is not a SHA256 fingerprint"),
        ("cl1-a ssh-ed25519 not*base64", "keys.txt:2: the key data 'not*base64'... is not base64"),
        ("|1|abc= ssh-ed25519 AAAA", "keys.txt:2: a hashed known_hosts name cannot be matched to a node"),
    ],
)
def test_a_bad_expected_line_names_the_file_and_line(line, problem):
    with pytest.raises(InvalidInput) as err:
        parse_expected(f"# header\n{line}\n", "keys.txt")
    assert str(err.value).startswith(problem + "; expected '<node or host> SHA256:<fingerprint>'")


def statuses(rows):
    return [(r.node, r.keytype, r.status) for r in rows]


def test_against_expected_by_node_name_host_or_known_hosts_name():
    expected = [
        Expected("cl1-a", fingerprint(ED_A), 1),
        Expected("[10.0.1.6]:2222", fingerprint(ED_A), 2),  # wrong key for cl1-b
        Expected("10.0.0.1", "SHA256:bastion", 3),  # the bastion: ignored
    ]
    rows = against_expected({A: (ED_A, EC_A), B: (ED_B,)}, expected, "keys.txt", ignore=["10.0.0.1"])
    assert statuses(rows) == [
        ("cl1-a", "ssh-ed25519", MATCH),
        ("cl1-a", "ecdsa-sha2-nistp256", MISMATCH),  # the file lists cl1-a, not this key
        ("cl1-b", "ssh-ed25519", MISMATCH),
    ]
    assert rows[2].detail == f"keys.txt line(s) 2 expect {fingerprint(ED_A)}"
    assert statuses(against_expected({A: (ED_A,)}, [], "k")) == [("cl1-a", "ssh-ed25519", UNLISTED)]


def test_an_expected_entry_naming_no_node_is_refused():
    with pytest.raises(InvalidInput, match=r"^keys.txt:7: 'cl1-x' is no node of the inventory nor its host"):
        against_expected({A: (ED_A,)}, [Expected("cl1-x", fingerprint(ED_A), 7)], "keys.txt")


@pytest.mark.parametrize(
    ("scanned", "pinned", "expected"),
    [
        ((ED_A,), (ED_A,), [MATCH]),
        ((ED_A, EC_A), (), [NEW, NEW]),
        ((ED_A, EC_A), (ED_A,), [MATCH, NEW]),  # another type, the pinned one still offered
        ((ED_B,), (ED_A,), [CHANGED]),  # same type, another key
        ((EC_A,), (ED_A,), [CHANGED]),  # the pinned key is no longer offered at all
    ],
)
def test_against_pinned(scanned, pinned, expected):
    assert [r.status for r in against_pinned(A, scanned, pinned)] == expected


def test_known_hosts_text_replaces_only_the_scanned_nodes_lines():
    current = f"# mine\n10.0.0.1 {ED_B.line}\n10.0.1.5 {ED_B.line}\n[10.0.1.6]:2222,other {EC_A.line}\n"
    text = known_hosts_text(current, {A: (ED_A,), B: (ED_A, EC_A)})
    assert text.splitlines() == [
        "# mine",
        f"10.0.0.1 {ED_B.line}",
        f"10.0.1.5 {ED_A.line}",
        f"[10.0.1.6]:2222 {ED_A.line}",
        f"[10.0.1.6]:2222 {EC_A.line}",
    ]


def test_host_key_snippet_lists_every_key_under_its_node():
    assert host_key_snippet({A: (ED_A, EC_A)}) == [
        "  cl1-a (cl1, 10.0.1.5):",
        "    host_key:",
        f"      - {ED_A.line}",
        f"      - {EC_A.line}",
    ]


def row(node: str, status: str) -> Row:
    return Row(node, "10.0.0.1:22", "ssh-ed25519", "SHA256:x", status)


@pytest.mark.parametrize(
    ("rows", "expected", "message"),
    [
        ([row("a", MISMATCH)], "k.txt", "host keys of a do not match k.txt"),
        ([row("b", UNLISTED)], "k.txt", "host keys of b are not listed in k.txt (add them after checking them)"),
        ([row("a", MISMATCH), row("b", UNLISTED), row("a", MISMATCH)], "k.txt",
         "host keys of a do not match k.txt; host keys of b are not listed in k.txt (add them after checking them)"),
        ([row("c", CHANGED)], None, "host keys differ from the pinned keys of c: see the table"),
    ],
)  # fmt: skip
def test_refusal_says_what_is_wrong_per_status(rows, expected, message):
    assert refusal(rows, expected) == message


@pytest.mark.parametrize(
    ("argv0", "env", "inventory", "command"),
    [
        ("/venv/bin/nodeops", "prod", None, "nodeops hostkeys --env prod --write"),
        ("/venv/bin/fab", "prod", None, "fab hostkeys --env prod --write"),
        ("/venv/bin/nodeops", None, "inv/my prod.yaml", "nodeops hostkeys --inventory 'inv/my prod.yaml' --write"),
    ],
)  # fmt: skip
def test_the_pin_hint_is_the_command_as_run(monkeypatch, argv0, env, inventory, command):
    monkeypatch.setattr(sys, "argv", [argv0, "hostkeys"])
    assert command_line(env, inventory) == command


HINT = "Check these fingerprints against the hosts' own (e.g. an EC2 instance's console output), then:"
PASTE = "      host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l4GKJl"


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        (80, ["Check these fingerprints against the hosts' own (e.g. an EC2 instance's console",
              "output), then:", "  nodeops hostkeys --env prod --write", PASTE]),
        (40, ["Check these fingerprints against the", "hosts' own (e.g. an EC2 instance's", "console output), then:",
              "  nodeops hostkeys --env prod --write", PASTE]),
        (120, [HINT, "  nodeops hostkeys --env prod --write", PASTE]),
    ],
)  # fmt: skip
def test_the_pinning_hint_wraps_at_words_and_keeps_what_is_pasted_whole(width, expected):
    """review14b #8: the hint was one 95-character line at 80 columns; the command and host_key lines stay whole."""
    got = fit_advice([HINT, "  nodeops hostkeys --env prod --write", PASTE], width)
    assert got == expected
    assert " ".join(got[: len(got) - 2]) == HINT  # no word cut or lost
