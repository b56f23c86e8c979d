"""What a person at a terminal sees: a run's header, its step lines, a live row per service, the status
tables and the audit log, all fitted to the terminal's width without cutting a word.

The rendering is pure: functions from events (the Reporter's dicts, docs/events.schema.json) or results
(docs/status.schema.json) to rich renderables, tested by printing them into a Console of a given width.
The one edge is ``Screen``: a rich Live view over a Console on the terminal, fed the run's events.

    with Screen("deploy", "prod", ["cl1", "cl2"], dry_run=False) as screen:
        report = Reporter(False, show=screen.show)
        ...  # every report() prints a step line above the live rows and moves its service's row on

Without a terminal (or with --json) none of this is used: the events stay JSON lines.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.padding import Padding
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from nodeops import program
from nodeops.diff import BODY_INDENT

WIDTH = 80  # what a terminal of unknown size is taken to be (rich's own default)
DIGEST = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b")
STYLES = {"failed": "bold red", "stopped": "yellow", "warning": "yellow", "done": "green", "info": "",
          "declined": "dim"}  # fmt: skip
MARKS = {"failed": "✗", "stopped": "■", "done": "✓", "declined": "–"}
DECLINED = "declined: nothing was done"  # a row's end when the run's question was answered no
DONE_WORDS = ("active", "serving after", "took over", "took the lease", "deployed", "rotated", "roll: both nodes",
              "restarted as the standby", "waiting for the lease", "dry run:")  # fmt: skip
PREPARING = "preparing: connecting through the bastion"  # a row before its service's first step
BELOW = "(the reason is printed below)"
WARN_WORDS = ("warning:", "note:", "could not", "left stopped", "STOPPED", "stopping", "already stopping")


def short_digests(text: str) -> str:
    """Every 64-hex digest (an image's sha256, a config hash) cut to its first 12 hex digits, as docker shows
    an image id: ``sha256:3f2a...(64)`` -> ``sha256:3f2a1c9e0b7d``. Nothing else changes."""
    return DIGEST.sub(r"\1", text)


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


def fit_words(text: str, width: int) -> str:
    """``text`` on one line of at most ``width`` characters, shortened at a word boundary with "…" (never in a
    word); a first word longer than ``width`` gives "…" alone."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    kept = line[: max(0, width - 1)]
    if line[len(kept)] != " ":  # the cut falls inside a word: drop that word
        kept = kept[: kept.rfind(" ")] if " " in kept else ""
    return kept.rstrip(" ;,:") + "…"


BREAK_AFTER = "/-,;&?"  # where a word longer than its line may be cut: after one of these (a path, a URL, a list)...
BREAK_BEFORE = "@"  # ...or before this (an image reference's digest: ``repo:2.10.0`` / ``@sha256:6bc87626beba``)
NO_LINE_START = ",.;:!?)]}"  # punctuation that belongs to the end of a line: a hard cut never leaves it first
_WORD = re.compile(r"\S+")


def _pieces(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """The word ``text[a:b]`` cut at every place it may be cut (BREAK_AFTER, BREAK_BEFORE), as (start, end)."""
    cuts = sorted({i + 1 for i in range(a, b - 1) if text[i] in BREAK_AFTER} |
                  {i for i in range(a + 1, b) if text[i] in BREAK_BEFORE})  # fmt: skip
    bounds = [a, *cuts, b]
    return list(zip(bounds, bounds[1:], strict=False))


def wrap_spans(text: str, width: int, indent: int = 0) -> list[tuple[int, int]]:
    """Where one line of ``text`` breaks to fit ``width`` columns, the lines after the first being shown after
    ``indent`` spaces: the (start, end) offsets of each line in ``text`` (the spaces at a break left out).

    Lines break between words; the first line keeps its leading spaces (a diff's own indentation) and every
    line its inner ones. A word longer than a whole line is cut only after a ``/``, ``-``, ``,``, ``;``, ``&``
    or ``?`` or before an ``@`` (BREAK_AFTER, BREAK_BEFORE: a path or URL, an image reference before its digest),
    its first piece on the line under way if it fits there; a piece with none of these places that is still
    longer than a line (a 60-character token) is the one thing cut elsewhere: at the line's end, moved back so that
    no line starts with punctuation (NO_LINE_START: ``, config``, ``)``)."""
    width = max(width, 1)
    rest = max(width - indent, 1)
    lines: list[tuple[int, int]] = []
    start: int | None = None  # the line under way: text[start:end]
    end = 0

    def room() -> int:
        return rest if lines else width

    def close() -> None:
        nonlocal start
        if start is not None:
            lines.append((start, end))
        start = None

    def fits(a: int, b: int) -> bool:
        """Whether text[a:b] joins the line under way (from its start; the first line's from column 0)."""
        begin = start if start is not None else (0 if not lines else a)
        return cell_len(text[begin:b]) <= room()

    def extend(a: int, b: int) -> None:
        nonlocal start, end
        start, end = (start if start is not None else (0 if not lines else a)), b

    def place(a: int, b: int) -> None:
        """Put text[a:b] (a word or a piece of one) on the line under way, else on the next ones."""
        nonlocal start, end
        if fits(a, b):
            extend(a, b)
            return
        close()
        while cell_len(text[a:b]) > room():  # no place to cut it left: at the line's end
            cut = a + 1
            while cut < b and cell_len(text[a : cut + 1]) <= room():
                cut += 1
            while cut - 1 > a and text[cut] in NO_LINE_START:  # no line starts with ", config" or ")"
                cut -= 1
            lines.append((a, cut))
            a = cut
        start, end = a, b

    for word in _WORD.finditer(text):
        a, b = word.span()
        if fits(a, b):
            extend(a, b)
        elif cell_len(text[a:b]) <= rest:  # whole on the next line
            close()
            start, end = a, b
        else:  # longer than a line: its pieces, from the line under way
            for p, q in _pieces(text, a, b):
                place(p, q)
    close()
    return lines or [(0, 0)]


class Wrapped:
    """``text`` (a rich Text: its styles are kept), each of its lines wrapped by wrap_spans to the width it is
    given; a line's continuation is indented by ``indent(line)`` (a diff line's: under its content)."""

    def __init__(self, text: Text, indent: Callable[[str], int] = lambda _line: 0) -> None:
        self.text = text
        self.indent = indent

    def lines(self, width: int) -> list[Text]:
        out, offset = [], 0
        for line in self.text.plain.split("\n"):
            indent = min(self.indent(line), width // 2)
            for i, (a, b) in enumerate(wrap_spans(line, width, indent)):
                piece = self.text[offset + a : offset + b]
                out.append(Text(" " * indent) + piece if i else piece)
            offset += len(line) + 1
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        joined = Text("\n").join(self.lines(options.max_width))
        joined.no_wrap, joined.overflow = True, "ignore"  # already fitted: rich must not wrap it again
        yield joined

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max((cell_len(line) for line in self.text.plain.split("\n")), default=0)
        return Measurement(min(longest, 1), longest)


def diff_indent(line: str) -> int:
    """A step message's continuation indent: a diff line's (its BODY_INDENT spaces and one-character marker,
    so it wraps under its own content, never under the marker column); any other line's: 0 (under itself)."""
    return BODY_INDENT + 1 if line.startswith(" " * BODY_INDENT) else 0


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


class Screen:
    """The edge: a header, then the step lines scrolling above a live row per service (spinners), on the
    terminal. ``show`` is a Reporter's ``show`` (thread-safe: workers and the stop-request thread call it).

    A failing or stopped service's last event (``outcome``) is not printed as a line: its row turns red, and the
    reason is printed once, in red, by the task layer's error handler (tasks/_cli.py). The cursor stays
    visible, so a process ended by a third Ctrl-C (SIGKILL, see nodeops.stopping) leaves the terminal usable.
    """

    def __init__(self, command: str, env: str, services: Sequence[str], dry_run: bool = False,
                 console: Console | None = None) -> None:  # fmt: skip
        self.console = console or Console(highlight=False)
        self.progress = Progress(list(services))
        self.title = header(command, env, services, dry_run)
        self.spinner = Spinner("dots", style="cyan")
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __rich__(self) -> RenderableType:
        with self.lock:
            return self.progress.render(self.console.width, self.spinner)

    def __enter__(self) -> Screen:
        self.console.print(self.title)
        self.live = Live(self, console=self.console, refresh_per_second=8, transient=False, redirect_stdout=False,
                         redirect_stderr=False)  # fmt: skip
        self.live.start()
        self.console.show_cursor(True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from nodeops.errors import Declined, Interrupted  # the engine's errors, read only to say how the run ended

        how = ("done" if exc is None else "stopped" if isinstance(exc, Interrupted | KeyboardInterrupt)
               else "declined" if isinstance(exc, Declined) else "failed")  # fmt: skip
        with self.lock:
            self.progress.finish(how)
        live, self.live = self.live, None
        if live is not None:
            live.stop()  # draws the final rows (each service's mark) and gives the terminal back

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The live rows stopped (drawn once, as they stand) while a question is asked below them, then resumed."""
        live = self.live
        if live is None:
            yield
            return
        live.stop()
        try:
            yield
        finally:
            live.start()

    def show(self, event: Mapping) -> None:
        with self.lock:
            self.progress.update(event)
        if event.get("outcome") in ("failed", "stopped") and self.live is not None:
            return  # its row says so; the task's error handler prints the reason once
        self.console.print(step_row(event))


# -- fab status -----------------------------------------------------------------------------------------------
STATE_STYLES = {"healthy": "green", "mixed": "yellow", "degraded": "yellow"}
NODE_COLUMNS = ("node", "role", "health", "container", "version", "up", "config")


def short_duration(seconds: float | None) -> str:
    """``seconds`` as a person reads an uptime: 42m05s, 3h07m, 2d04h; "-" when unknown."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _labelled(label: str, value: str | Text, style: str = "") -> Table:
    """``label  value``, the value wrapping under itself at word boundaries (a word longer than the line, such as a
    fingerprint, folds)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style="dim")
    grid.add_column(overflow="fold")
    grid.add_row(f"  {label}", value if isinstance(value, Text) else Text(value, style=style))
    return grid


def _fits(columns: Sequence[str], cells: Sequence[Sequence[str]], width: int, indent: int) -> bool:
    """Whether a table of ``columns`` headers and ``cells`` rows, every cell whole on one line, 2 columns between
    them and ``indent`` before, fits in ``width`` columns."""
    widest = [max(len(c) for c in col) for col in zip(columns, *cells, strict=True)]
    return indent + sum(widest) + 2 * (len(widest) - 1) <= width


def _node_cells(n: Mapping) -> list[str]:
    return [n["node"], n["role"], n["health"], n["container"] or "-", n["version"] or "-",
            short_duration(n["uptime_seconds"]), n["config"] or "-"]  # fmt: skip


def _node_table(nodes: Sequence[Mapping], width: int) -> RenderableType:
    """The nodes as a table when every cell fits whole in ``width`` columns; otherwise one wrapped
    ``node: role, health, ...`` line each (a table squeezed further would cut words)."""
    cells = [_node_cells(n) for n in nodes]
    if _fits(NODE_COLUMNS, cells, width, 4):
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="dim")
        table.add_column("", no_wrap=True, width=1)  # the indent under the service's name
        for name in NODE_COLUMNS:
            table.add_column(name, no_wrap=True)
        for n, row in zip(nodes, cells, strict=True):
            style = {"active": "green" if n["health"] == "passing" else "yellow", "unknown": "red"}.get(n["role"], "")
            table.add_row("", Text(row[0], style="bold"), Text(row[1], style=style), *row[2:])
        rows: list[RenderableType] = [table]
    else:
        rows = [_labelled(f"{row[0]}:", ", ".join(f"{k} {v}" for k, v in zip(NODE_COLUMNS[1:], row[1:], strict=True)))
                for row in cells]  # fmt: skip
    for n in nodes:
        if n.get("failing"):
            rows.append(_labelled(f"{n['node']} failing:", ", ".join(n["failing"]), "yellow"))
        if n.get("unreachable"):  # why its role and health are unknown (nodeops.status.node_status)
            rows.append(_labelled(f"{n['node']} unreachable:", short_digests(n["unreachable"]), "red"))
    return Group(*rows)


def status_view(results: Iterable[Mapping], width: int = WIDTH) -> Group:
    """``fab status`` for a person (results: docs/status.schema.json): per service its name and state, the lease
    and the lock on a line each (wrapped, never more than a few lines), and its nodes; fits ``width`` columns."""
    parts: list[RenderableType] = []
    for r in results:
        title = Text()
        title.append(r["service"], style="bold")
        title.append("  ")
        title.append(r["state"], style=STATE_STYLES.get(r["state"], "bold red"))
        parts.append(title)
        lease = r["lease"]
        if lease is not None:
            text = lease.get("describe") or f"unreadable: {lease.get('error')}"
            parts.append(_labelled("lease", fit_words(short_digests(text), 3 * (width - 10)),
                                   "" if "describe" in lease else "yellow"))  # fmt: skip
        lock = r["lock"]
        if lock:
            who = lock["holder"]
            text = f"{lock['state']} by {who.get('who', '?')} from {who.get('from', '?')}: {who.get('command') or '?'}"
            style = "red" if lock["state"] == "stale" else ""
            parts.append(_labelled("lock", fit_words(text, 3 * (width - 10)), style))
        if r.get("mixed"):  # the two nodes run different inputs (nodeops.status.mixed_inputs)
            text = f"{r['mixed']} ({program()} deploy brings both to the inventory's)"
            parts.append(_labelled("mixed", fit_words(short_digests(text), 3 * (width - 10)), "yellow"))
        parts.append(_node_table(r["nodes"], width))
        parts.append(Text(""))
    return Group(*parts)


# -- nodeops hostkeys ------------------------------------------------------------------------------------------
HOSTKEY_COLUMNS = ("node", "address", "type", "fingerprint", "status", "detail")
HOSTKEY_STYLES = {"match": "green", "new": "yellow"}  # any other status (CHANGED, MISMATCH, unlisted) is red


def hostkeys_view(rows: Sequence, width: int = WIDTH) -> RenderableType:
    """``nodeops hostkeys`` for a person (rows: nodeops.hostkeys.Row): a table when every cell fits whole in
    ``width`` columns; otherwise one ``node: status type fingerprint address detail`` entry per key, wrapped at
    word boundaries (a fingerprint, one word, folds only when narrower than itself), so the status always shows."""
    cells = [[r.node, r.address, r.keytype, r.fingerprint, r.status, r.detail] for r in rows]
    if _fits(HOSTKEY_COLUMNS, cells, width, 0):
        table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, show_edge=False, header_style="dim")
        for name in HOSTKEY_COLUMNS:
            table.add_column(name, no_wrap=True)
        for r, row in zip(rows, cells, strict=True):
            table.add_row(*row[:4], Text(r.status, style=HOSTKEY_STYLES.get(r.status, "bold red")), row[5])
        return table
    entries = []
    for r in rows:
        value = Text()
        value.append(r.status, style=HOSTKEY_STYLES.get(r.status, "bold red"))
        value.append(" ".join(["", r.keytype, r.fingerprint, r.address, r.detail]).rstrip())
        entries.append(_labelled(f"{r.node}:", value))
    return Group(*entries)


# -- fab audit ------------------------------------------------------------------------------------------------
def _when(stamp: str | None) -> tuple[str, str]:
    """(date, time) of an audit entry's ISO 8601 UTC time."""
    try:
        at = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return "", str(stamp or "")
    return at.date().isoformat(), at.strftime("%H:%M:%S")


def audit_line(e: Mapping) -> Text:
    """One audit entry's words (without its time): a start, a step or an end (a dry run writes none)."""
    text = Text()
    if e.get("event") == "start":
        text.append(str(e.get("op")), style="bold")
        text.append(f" {', '.join(e.get('services') or [])} by {e.get('who')} from {e.get('from')}")
        if e.get("ci_run"):
            text.append(f" (CI {e['ci_run']})")
        text.append(f" run {e.get('run')}", style="dim")
    elif e.get("event") == "step":
        where = " ".join(x for x in (e.get("service"), e.get("node")) if x)
        if where:
            text.append(f"{where}: ", style="bold")
        text.append(short_digests(str(e.get("message"))), style=STYLES[outcome(e)])
    else:
        style = {"ok": "bold green", "declined": "bold"}.get(str(e.get("result")), "bold red")
        text.append(f"{e.get('op')} {e.get('result')}", style=style)
        text.append(f", exit {e.get('exit_code')} after {e.get('seconds')}s")
        if e.get("error"):
            text.append(f": {short_digests(str(e['error']))}", style="" if e.get("result") == "declined" else "red")
    return text


def audit_view(entries: Iterable[Mapping]) -> Table:
    """``fab audit`` for a person: the time (a date row whenever the day changes), then the entry's words
    (audit_line), steps indented under their operation, wrapping at words (wrap_spans)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style="dim")
    grid.add_column()
    day = None
    for e in entries:
        date, time = _when(e.get("time"))
        if date != day:
            grid.add_row(Text(date, style="bold"), "")
            day = date
        line = Wrapped(audit_line(e), diff_indent)
        grid.add_row(time, Padding(line, (0, 0, 0, 2)) if e.get("event") == "step" else line)
    return grid
