"""What a person at a terminal sees: a run's header, its step lines, a live row per service, the status
tables and the audit log, all fitted to the terminal's width without cutting a word.

The rendering is pure: functions from events (the Reporter's dicts, docs/events.schema.json) or results
(docs/status.schema.json) to rich renderables, tested by printing them into a Console of a given width.
The one edge is ``Screen``: a rich Live view over a Console on the terminal, fed the run's events.

    with Screen("deploy", "prod", ["cl1", "cl2"], dry_run=False) as screen:
        report = Reporter(False, show=screen.show)
        ...  # every report() prints a step line above the live rows and moves its service's row on

Without a terminal (or with --json) none of this is used: the events stay JSON lines.

The package, one job a module: ``text`` (fitting text to a width), ``steps`` (a run's header, step lines and
live rows), ``screen`` (the edge: the live view on the terminal), ``views`` (status, hostkeys and audit).
"""

from nodeops.console.screen import Screen
from nodeops.console.steps import BELOW, DECLINED, MARKS, PREPARING, Progress, header, outcome, step_row
from nodeops.console.text import BREAK_AFTER, BREAK_BEFORE, fit_words, short_digests, wrap_spans
from nodeops.console.views import HOSTKEY_COLUMNS, audit_line, audit_view, hostkeys_view, status_view

__all__ = [
    "BELOW",
    "BREAK_AFTER",
    "BREAK_BEFORE",
    "DECLINED",
    "HOSTKEY_COLUMNS",
    "MARKS",
    "PREPARING",
    "Progress",
    "Screen",
    "audit_line",
    "audit_view",
    "fit_words",
    "header",
    "hostkeys_view",
    "outcome",
    "short_digests",
    "status_view",
    "step_row",
    "wrap_spans",
]
