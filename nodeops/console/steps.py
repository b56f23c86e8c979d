"""A run's header, its step lines and its live rows, pure: from the Reporter's events (docs/events.schema.json)
to rich renderables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from nodeops.console.text import Wrapped, diff_indent, fit_words, short_digests

STYLES = {"failed": "bold red", "stopped": "yellow", "warning": "yellow", "done": "green", "info": "",
          "declined": "dim"}  # fmt: skip
MARKS = {"failed": "✗", "stopped": "■", "done": "✓", "declined": "–"}
DECLINED = "declined: nothing was done"  # a row's end when the run's question was answered no
DONE_WORDS = ("active", "serving after", "took over", "took the lease", "deployed", "rotated", "roll: both nodes",
              "restarted as the standby", "waiting for the lease", "dry run:")  # fmt: skip
PREPARING = "preparing: connecting through the bastion"  # a row before its service's first step
BELOW = "(the reason is printed below)"
WARN_WORDS = ("warning:", "note:", "could not", "left stopped", "STOPPED", "stopping", "already stopping")


def outcome(event: Mapping) -> str:
    """How a step ended, for its colour: failed (red), stopped or warning (yellow), done (green) or info.

    ``outcome`` when the event carries one (deploy.per_service sets it on a service's last event), else read
    from the message's first words as the engine writes them (``FAILED:``, ``warning:``, ``serving after``...).
    """
    if event.get("outcome") in STYLES:
        return event["outcome"]
    message = str(event.get("message", ""))
    if event.get("service_down") or message.startswith(("FAILED", "SERVICE DOWN")):
        return "failed"
    if event.get("stopping") or message.startswith("STOPPED"):
        return "stopped"
    if message.startswith(WARN_WORDS):
        return "warning"
    return "done" if message.startswith(DONE_WORDS) else "info"


def header(command: str, env: str, services: Sequence[str], dry_run: bool = False) -> Text:
    """The run's first line: the operation, the environment and its services; a dry run says so in capitals."""
    text = Text()
    text.append(command, style="bold")
    text.append(f" in {env}: ")
    text.append(", ".join(services) or "no service")
    if dry_run:
        text.append("  DRY RUN: nothing will be changed", style="bold magenta")
    return text


def step_row(event: Mapping) -> Table:
    """One step as a person reads it: elapsed time, service, node and the message (digests shortened),
    coloured by outcome; the message wraps under itself at words (wrap_spans), a diff line under its content."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", no_wrap=True, min_width=6)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column()
    where = [event.get("service") or "", event.get("node") or ""]
    t = event.get("t")
    stamp = f"{t:.1f}s" if isinstance(t, int | float) else ""
    style = STYLES[outcome(event)]
    grid.add_row(Text(stamp, style="dim"), Text(where[0], style="bold"), Text(where[1], style="cyan"),
                 Wrapped(Text(short_digests(str(event.get("message", ""))), style=style), diff_indent))  # fmt: skip
    return grid


@dataclass
class Row:
    """One service's line in the live view: its latest step and how it ended (None while it runs)."""

    service: str
    node: str = ""
    message: str = PREPARING
    ended: str | None = None
    last: str = "info"  # the outcome of its latest step


@dataclass
class Progress:
    """The live view's state: a row per service, moved on by each event (``update``), drawn by ``render``."""

    services: Sequence[str]
    rows: dict[str, Row] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = {name: Row(name) for name in self.services}

    def update(self, event: Mapping) -> None:
        row = self.rows.get(event.get("service") or "")
        if row is None or row.ended:
            return
        row.node, row.message = event.get("node") or "", short_digests(str(event.get("message", "")))
        row.last = outcome(event)
        if event.get("outcome") in ("failed", "stopped"):  # deploy.per_service: the service's last event
            row.ended, row.message = event["outcome"], f"{event['outcome']} {BELOW}"

    def finish(self, how: str) -> None:
        """The run ended (``how``: done, failed, stopped or declined: its question was answered no): every row
        still running ends that way, but for a service whose latest step was an end in itself (``active``: it
        finished before another one failed)."""
        for row in self.rows.values():
            if row.ended is None:
                row.ended = "done" if how == "done" or row.last == "done" else how
                if row.ended != "done":
                    row.message = DECLINED if how == "declined" else f"{how} {BELOW}"

    def render(self, width: int, spinner: RenderableType | None = None) -> Table:
        """A row per service: a spinner (or its outcome's mark), the service, the node of its latest step and
        that step, shortened at a word boundary to fit ``width`` columns."""
        grid = Table.grid(padding=(0, 1))
        for _ in range(3):
            grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, overflow="crop")
        rows = self.rows.values()
        room = (
            width - 2 - max((len(r.service) for r in rows), default=0) - max((len(r.node) for r in rows), default=0) - 2
        )
        for row in rows:
            style = STYLES[row.ended] if row.ended else ""
            mark = Text(MARKS[row.ended], style=style) if row.ended else (spinner or Text("…"))
            grid.add_row(mark, Text(row.service, style="bold"), Text(row.node, style="cyan"),
                         Text(fit_words(row.message, max(room, 1)), style=style))  # fmt: skip
        return grid
