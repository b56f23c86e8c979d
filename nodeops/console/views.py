"""The read-only commands' views for a person, pure: fab status, nodeops hostkeys, fab audit."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from nodeops import program
from nodeops.console.steps import STYLES, outcome
from nodeops.console.text import WIDTH, Wrapped, diff_indent, fit_words, short_digests
from nodeops.status import rotation_line

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


def _node_cells(n: Mapping, kinds: bool) -> list[str]:
    return [n["node"], *([n.get("kind") or "-"] if kinds else []), n["role"], n["health"], n["container"] or "-",
            n["version"] or "-", short_duration(n["uptime_seconds"]), n["config"] or "-"]  # fmt: skip


def facts_text(facts: Mapping) -> str:
    """A node's facts as a person reads them: ``slot 1203, peers 3, forging yes`` (a bool yes or no; None left
    out), in the role's order."""
    shown = {True: "yes", False: "no"}
    return ", ".join(f"{name} {shown.get(v, v) if isinstance(v, bool) else v}" for name, v in facts.items()
                     if v is not None)  # fmt: skip


def _node_table(nodes: Sequence[Mapping], width: int) -> RenderableType:
    """The nodes as a table when every cell fits whole in ``width`` columns; otherwise one wrapped
    ``node: role, health, ...`` line each (a table squeezed further would cut words). A ``kind`` column after the
    node's name when a node has one (a role with kinds: its role is its kind's model's word)."""
    kinds = any("kind" in n for n in nodes)
    columns = (NODE_COLUMNS[0], "kind", *NODE_COLUMNS[1:]) if kinds else NODE_COLUMNS
    cells = [_node_cells(n, kinds) for n in nodes]
    if _fits(columns, cells, width, 4):
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="dim")
        table.add_column("", no_wrap=True, width=1)  # the indent under the service's name
        for name in columns:
            table.add_column(name, no_wrap=True)
        for n, row in zip(nodes, cells, strict=True):
            style = {"active": "green" if n["health"] == "passing" else "yellow", "unknown": "red"}.get(n["role"], "")
            at = columns.index("role")
            table.add_row("", Text(row[0], style="bold"), *row[1:at], Text(row[at], style=style), *row[at + 1 :])
        rows: list[RenderableType] = [table]
    else:
        rows = [_labelled(f"{row[0]}:", ", ".join(f"{k} {v}" for k, v in zip(columns[1:], row[1:], strict=True)))
                for row in cells]  # fmt: skip
    for n in nodes:
        if n.get("facts"):  # the role's (nodeops.facts.role_facts): none said is no line
            rows.append(_labelled(f"{n['node']}:", facts_text(n["facts"])))
        if n.get("failing"):
            rows.append(_labelled(f"{n['node']} failing:", ", ".join(n["failing"]), "yellow"))
        if n.get("unreachable"):  # why its role and health are unknown (nodeops.status.node_status)
            rows.append(_labelled(f"{n['node']} unreachable:", short_digests(n["unreachable"]), "red"))
    return Group(*rows)


def status_view(results: Iterable[Mapping], width: int = WIDTH) -> Group:
    """``fab status`` for a person (results: docs/status.schema.json): per service its name and state, the lease,
    a rotation left under way and the lock on a line each (wrapped, never more than a few lines), and its nodes;
    fits ``width`` columns."""
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
        rotation = r.get("rotation")
        if rotation:  # a rotation a killed run left under way (nodeops.status.rotation_status)
            parts.append(_labelled("rotation", fit_words(rotation_line(rotation), 3 * (width - 10)), "yellow"))
        lock = r["lock"]
        if lock:
            who = lock["holder"]
            text = f"{lock['state']} by {who.get('who', '?')} from {who.get('from', '?')}: {who.get('command') or '?'}"
            style = "red" if lock["state"] == "stale" else ""
            parts.append(_labelled("lock", fit_words(text, 3 * (width - 10)), style))
        if r.get("mixed"):  # the two nodes run different inputs (nodeops.status.mixed_inputs)
            text = f"{r['mixed']} ({program()} deploy brings both to the inventory's)"
            parts.append(_labelled("mixed", fit_words(short_digests(text), 3 * (width - 10)), "yellow"))
        if r.get("holders"):  # two holders of the hot keys: which to keep (nodeops.facts.holders)
            parts.append(_labelled("holders", fit_words(short_digests(r["holders"]), 3 * (width - 10)), "red"))
        if r.get("facts_error"):  # the role's node_facts raised: its facts are not shown
            parts.append(_labelled("facts", fit_words(r["facts_error"], 3 * (width - 10)), "yellow"))
        for name, found in (r.get("issued") or {}).items():  # an issued rotation's value against the chain
            text = found.get("error") or f"on {found['holder']}: {facts_text(found['facts'])}" + \
                ("" if found["ok"] else f": {found['detail']}")  # fmt: skip
            parts.append(_labelled(name, fit_words(text, 3 * (width - 10)), "" if found.get("ok") else "yellow"))
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
