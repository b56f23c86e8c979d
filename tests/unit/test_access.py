"""nodeops logs and shell, the pure part: flag checks, the commands built for a node, and masking a
stream whose chunks end anywhere (a secret split across two chunks is still masked)."""

from __future__ import annotations

import pytest

from nodeops.access import LINE_LIMIT, LineMasker, check_since, check_tail, container_shell_command, logs_command
from nodeops.commands.node import until_closed
from nodeops.errors import InvalidInput
from nodeops.run.report import Redactor
from nodeops.secrets import Secret
from tests.conftest import ROOT, fab

SECRET = "s3cr3t-Value%with/odd"


@pytest.mark.parametrize("since", ["10m", "1h30m", "45s", "1.5h", "500ms", "2026-11-30", "2026-11-30T08:00:00Z",
                                   "2026-11-30T08:00:00.5+01:00", "1764489600"])  # fmt: skip
def test_since_takes_durations_and_timestamps(since):
    assert check_since(since) == since


@pytest.mark.parametrize("since", ["", "10 m", "ten minutes", "10m; rm -rf /", "-1m", "$(id)"])
def test_since_refuses_anything_else(since):
    with pytest.raises(InvalidInput, match=r"^--since .*: expected a duration \(10m, 1h30m, 45s\) or a timestamp"):
        check_since(since)


@pytest.mark.parametrize(("tail", "ok"), [("0", True), ("200", True), ("all", True), ("-5", False), ("x", False)])
def test_tail(tail, ok):
    if ok:
        assert check_tail(tail) == tail
    else:
        with pytest.raises(InvalidInput, match=r"^--tail .*: expected a number of lines or 'all'$"):
            check_tail(tail)


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("docker", "cl1", None, None, False), "docker logs nodeops-cl1"),
        (("docker", "cl1", "10m", None, True), "docker logs --follow --since 10m nodeops-cl1"),
        (("podman", "cl1", None, "0", True), "podman logs --follow --tail 0 nodeops-cl1"),
        (("docker", "cl1", "2026-11-30T08:00:00Z", "all", False),
         "docker logs --since 2026-11-30T08:00:00Z --tail all nodeops-cl1"),
    ],
)  # fmt: skip
def test_logs_command(args, command):
    """The runtime's logs command, ended with the SSH session (until_closed: its behaviour in test_commands)."""
    assert logs_command(*args) == until_closed(command.split())


def test_logs_command_checks_its_flags():
    with pytest.raises(InvalidInput):
        logs_command("docker", "cl1", "$(reboot)", None, False)


def test_container_shell_command_is_quoted_once():
    assert container_shell_command("docker", "cl1") == (
        "docker exec -it nodeops-cl1 sh -c 'command -v bash >/dev/null && exec bash; exec sh'"
    )


def masked_lines(chunks: list[bytes]) -> list[str]:
    lines: list[str] = []
    masker = LineMasker(Redactor([Secret(SECRET)]), lines.append)
    for chunk in chunks:
        masker.feed(chunk)
    masker.close()
    return lines


@pytest.mark.parametrize("cut", range(1, len(f"a {SECRET} b\n")))
def test_a_secret_split_across_chunks_is_masked(cut):
    data = f"first\na {SECRET} b\nlast".encode()
    cut += len("first\n")
    assert masked_lines([data[:cut], data[cut:]]) == ["first", "a ***** b", "last"]


def test_other_forms_and_byte_by_byte():
    data = f'{{"msg": "{SECRET}"}}\r\nurl=s3cr3t-Value%25with%2Fodd\n'.encode()
    assert masked_lines([data[i : i + 1] for i in range(len(data))]) == ['{"msg": "*****"}', "url=*****"]


def test_a_utf8_character_split_across_chunks_survives():
    data = "é ok\n".encode()
    assert masked_lines([data[:1], data[1:]]) == ["é ok"]


def test_an_endless_line_is_emitted_in_bounded_pieces():
    lines = masked_lines([b"x" * (LINE_LIMIT + 10)])
    assert [len(line) for line in lines] == [LINE_LIMIT, 10]


def test_shell_without_a_terminal_is_exit_2_with_one_line():
    result = fab("shell", "--env", "nowhere", "--node", "cl1-a")  # stdin is /dev/null: no terminal
    assert result.returncode == 2
    assert result.stderr == (
        "nodeops: shell needs a terminal (stdin and stdout); for one command without one: nodeops exec\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "nodeops: --since 'yesterday': expected a duration"),
        (("--tail", "-3"), "nodeops: --tail '-3': expected a number of lines or 'all'"),
    ],
)
def test_logs_flags_are_checked_before_anything_is_read(args, message):
    result = fab("logs", "--inventory", str(ROOT / "inventory" / "missing.yaml"), "--service", "cl1", *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
