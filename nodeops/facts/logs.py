"""The log fact: a container's recent error-level lines, cut on the node so that a chatty log does not travel."""

from __future__ import annotations

from collections.abc import Callable

from nodeops.commands.node import sh


def error_candidates(runtime: str, name: str, minutes: int) -> str:
    """The container's log lines of the last ``minutes`` that mention an error-like level word: a superset
    of its error-level lines, cut on the node so that a chatty log does not travel (nodeops.check classifies)."""
    since = sh((runtime, "logs", "--since", f"{minutes}m", name))
    return f"{since} 2>&1 | grep -aiE 'err|crit|panic|fatal'"


ERROR_LEVELS = frozenset({"error", "err", "crit", "critical", "dpanic", "panic", "fatal"})


def error_lines(text: str, log_level: Callable[[str], str | None]) -> list[str]:
    """The lines of ``text`` written at an error level, by the role's ``log_level`` hook (nodeops.role_hooks)."""
    return [line for line in text.splitlines() if log_level(line) in ERROR_LEVELS]
