"""A fake of the one edge call the executor sends commands through (nodeops.edges.ssh.execute), for the unit tables.

It claims no remote work: it records each shell line it is given (with the link it came on, its stdin and its
timeout) and answers from a table of rules, the first whose pattern (a regular expression) is found in the line;
a line no rule matches answers exit 0 with no output. A rule's answer is (exit status, stdout, stderr), or an
exception to raise as the real edge does for a host cut off (OperationFailed). The lab tests are the proof that
the same lines do what they say on real hosts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nodeops.edges.ssh import CommandResult


@dataclass
class Sent:
    link: object
    command: str
    stdin: bytes | None
    timeout: float


@dataclass
class FakeEdge:
    rules: list[tuple[str, tuple[int, str, str] | Exception]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    def __call__(self, link, command: str, stdin: bytes | None = None, timeout: float = 600) -> CommandResult:
        self.sent.append(Sent(link, command, stdin, timeout))
        for pattern, answer in self.rules:
            if re.search(pattern, command):
                if isinstance(answer, Exception):
                    raise answer
                return CommandResult(*answer)
        return CommandResult(0, "", "")

    @property
    def commands(self) -> list[str]:
        return [s.command for s in self.sent]
