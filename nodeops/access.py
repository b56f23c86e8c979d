"""`nodeops logs` and `nodeops shell`, the pure part: flag checks, the commands run on a node, and the
masking of a log stream line by line (nodeops.edges.ssh.stream gives chunks that may end anywhere)."""

from __future__ import annotations

import re
from collections.abc import Callable

from nodeops.commands.node import container_name, sh, until_closed
from nodeops.errors import InvalidInput

# What `docker logs --since` takes that we pass on: a duration (Go's: 10m, 1h30m, 90s, 1.5h) or a
# timestamp (2026-11-30, 2026-11-30T08:00:00Z, a Unix time). Anything else is refused here, before a host.
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:h|m|s|ms))+")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
                        r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)?|[0-9]+(?:\.[0-9]+)?")  # fmt: skip
LINE_LIMIT = 1 << 20  # bytes: a "line" without a newline longer than this is shown (masked) in pieces


def check_since(since: str) -> str:
    """``since`` as given, when docker takes it; InvalidInput (exit 2) naming the flag otherwise."""
    if not (_DURATION.fullmatch(since) or _TIMESTAMP.fullmatch(since)):
        raise InvalidInput(f"--since {since!r}: expected a duration (10m, 1h30m, 45s) or a timestamp "
                           "(2026-11-30T08:00:00Z, a Unix time)")  # fmt: skip
    return since


def check_tail(tail: str) -> str:
    """``tail`` ("all" or a count of lines) as docker takes it; InvalidInput (exit 2) otherwise."""
    if tail != "all" and not tail.isdigit():
        raise InvalidInput(f"--tail {tail!r}: expected a number of lines or 'all'")
    return tail


def logs_command(runtime: str, service: str, since: str | None, tail: str | None, follow: bool) -> str:
    """The shell line that prints (and with ``follow`` streams) the service container's log on a node; it ends
    when the SSH session closes (until_closed): stopping `nodeops logs` leaves nothing running on the node."""
    argv = [runtime, "logs"]
    if follow:
        argv.append("--follow")
    if since:
        argv += ["--since", check_since(since)]
    if tail:
        argv += ["--tail", check_tail(tail)]
    return until_closed([*argv, container_name(service)])


def container_shell_command(runtime: str, service: str) -> str:
    """`docker exec -it` of a shell in the service's container (bash when the image has one, else sh)."""
    choose = "command -v bash >/dev/null && exec bash; exec sh"
    return sh([runtime, "exec", "-it", container_name(service), "sh", "-c", choose])


class LineMasker:
    """Turns chunks of a byte stream into complete, masked lines: a secret split across two chunks is
    masked, since masking happens only once its line is whole. ``emit`` gets each line without its newline.

    ``mask``: a nodeops.run.report.Redactor (or any str -> str). A line longer than LINE_LIMIT bytes without a
    newline is emitted in pieces of that size (a secret straddling such a cut would escape: no real log has
    such lines, and memory stays bounded).
    """

    def __init__(self, mask: Callable[[str], str], emit: Callable[[str], None]) -> None:
        self.mask = mask
        self.emit = emit
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self._emit(line)
        while len(self.pending) > LINE_LIMIT:
            piece, self.pending = self.pending[:LINE_LIMIT], self.pending[LINE_LIMIT:]
            self._emit(piece)

    def close(self) -> None:
        """The stream ended: its last line, if it had no newline."""
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, line: bytes) -> None:
        self.emit(self.mask(line.decode(errors="replace").rstrip("\r")))
