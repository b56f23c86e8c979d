"""The log fact: a container's recent error-level lines, cut on the node so that a chatty log does not travel."""

from __future__ import annotations

import contextlib
import json
import re

from nodeops.commands.node import sh


def error_candidates(runtime: str, name: str, minutes: int) -> str:
    """The container's log lines of the last ``minutes`` that mention an error-like level word: a superset
    of its error-level lines, cut on the node so that a chatty log does not travel (nodeops.check classifies)."""
    since = sh((runtime, "logs", "--since", f"{minutes}m", name))
    return f"{since} 2>&1 | grep -aiE 'err|crit|panic|fatal'"


ERROR_LEVELS = frozenset({"error", "err", "crit", "critical", "dpanic", "panic", "fatal"})


_CONSOLE_LEVEL = re.compile(r"^(?:\S+\s+)?\[(\w+)\]")  # zap console (Chainlink): "2024-01-01T00:00:00Z [ERROR] msg"


_LOGFMT_LEVEL = re.compile(r"(?:^|\s)level=\"?(\w+)")


def log_level(line: str) -> str | None:
    """The level a log line was written at (lower case): a JSON line's "level", a console "[LEVEL]" tag or
    logfmt's level=; None for other lines (a traceback, a plain message)."""
    text = line.strip()
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            doc = json.loads(text)
            level = doc.get("level") if isinstance(doc, dict) else None
            return level.lower() if isinstance(level, str) else None
    match = _CONSOLE_LEVEL.match(text) or _LOGFMT_LEVEL.search(text)
    return match[1].lower() if match else None


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if log_level(line) in ERROR_LEVELS]
