"""What every task shares: inventory selection (from the project around the working folder), the
question before a change to several services, and the one place where a NodeopsError becomes a
one-line message and its exit code."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from invoke import Exit, Task
from rich import box
from rich.console import Console
from rich.table import Table

from nodeops.console import Screen, short_digests
from nodeops.errors import Declined, InvalidInput, NodeopsError
from nodeops.inventory import Inventory, check_environment, inventory_path, load_inventory
from nodeops.project import project_root
from nodeops.run.report import Reporter
from nodeops.shards import parse_shard, services_in

INVENTORY_HELP = {
    "env": "environment name: loads <project>/inventory/NAME.yaml (the project: the nearest folder up from "
    "here with nodeops.yaml)",
    "inventory": "path of an inventory file (instead of --env)",
}
SERVICES_HELP = {
    **INVENTORY_HELP,
    "service": "comma-separated services (default: every service)",
    "json": "one JSON object per event (the default when stdout is not a terminal)",
}
SHARD_HELP = ("I/N: only shard I of N, a deterministic, balanced subset of the services (instead of --service; "
              "nodeops shards --count N lists them)")  # fmt: skip
SHARDED_HELP = {**SERVICES_HELP, "shard": SHARD_HELP}


class Sharded(Task):
    """A task with ``--shard`` (``@task(klass=Sharded)``): the flag gets no short form, which invoke would pick as
    ``-h`` (``-s`` is ``--service``'s), shadowing ``-h`` for help after the task's name."""

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts = super().arg_opts(name, default, taken_names)
        if name == "shard":
            opts["names"] = opts["names"][:1]
        return opts


INEXACT_HELP = ("replace containers whose own inputs cannot be rendered again (started by hand or by an older "
                "nodeops): a failure then restarts them on this run's inputs")  # fmt: skip


def cli(body):
    """Turn user-facing errors into ``nodeops: <message>`` on stderr and the documented exit code: printed
    once, in red and fitted to the width (digests shortened) when a person reads stderr on a terminal; a question
    answered no (Declined) is no failure: not in red."""

    @functools.wraps(body)
    def wrapper(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except NodeopsError as err:
            if kwargs.get("json_") or not sys.stderr.isatty() or _in_ci():
                raise Exit(f"nodeops: {err}", code=err.exit_code) from None
            style = "" if isinstance(err, Declined) else "bold red"
            Console(stderr=True, highlight=False).print(f"nodeops: {short_digests(str(err))}", style=style,
                                                        markup=False)  # fmt: skip
            raise Exit(code=err.exit_code) from None

    return wrapper


@contextlib.contextmanager
def progress(command: str, inventory: Inventory, services: Sequence[str], json_: bool,
             dry_run: bool = False) -> Iterator[Reporter]:  # fmt: skip
    """The Reporter of a run that changes pairs: JSON lines without a terminal (or with --json, or in CI);
    on a terminal, the run's header and a live row per service (nodeops.console.Screen) until the block ends."""
    if json_ or not is_interactive():
        yield Reporter(True)
        return
    with Screen(command, inventory.environment, services, dry_run) as screen:
        _SCREENS.append(screen)  # a question asked during the run (ask) pauses its live rows
        try:
            yield Reporter(False, show=screen.show)
        finally:
            _SCREENS.remove(screen)


_SCREENS: list[Screen] = []  # the live view of the run under way, if any (progress)


def load(env: str | None, inventory: str | None) -> Inventory:
    """The inventory named by --inventory PATH, else by --env NAME in the project around the working folder.

    Raises InvalidInput (exit 2) when both are given: one would silently win over the other (after a task's
    name ``-i`` is ``--inventory``)."""
    if env and inventory:
        raise InvalidInput(f"--env {env} and --inventory {inventory}: give one of them")
    root = project_root(Path.cwd()) if env and not inventory else Path.cwd()  # --inventory needs no project
    loaded = load_inventory(inventory_path(root, env, inventory))
    if env and not inventory:
        check_environment(loaded, env)
    return loaded


def services_of(inventory: Inventory, selection: str | None, shard: str | None = None) -> list[str]:
    """The services named by --service a,b, or those of --shard I/N (nodeops.shards; all when neither is given);
    an unknown name, a bad shard or both flags is exit 2."""
    if shard is not None:
        if selection:
            raise InvalidInput(f"--service {selection} and --shard {shard}: give one of them")
        return services_in(inventory, parse_shard(shard))
    names = [s for s in (selection or "").split(",") if s]
    unknown = [n for n in names if n not in inventory.services]
    if unknown:
        raise InvalidInput(f"--service {','.join(unknown)}: no such service in {inventory.source} "
                           f"(services: {', '.join(inventory.services)})")  # fmt: skip
    return names


RESULT_STYLES = {"pass": "green", "warn": "yellow", "unknown": "dim", "FAIL": "red"}


def print_checks(checks: Sequence, result: Callable[[Any], str]) -> None:
    """A table of checks (fab verify, fab check): service and node once per node, ``result(check)``
    (one of RESULT_STYLES) in its colour, and the one-line reason."""
    table = Table(box=box.SIMPLE, show_edge=False)
    for col in ("service", "node", "check", "result", "reason"):
        table.add_column(col, no_wrap=col != "reason")
    for i, ch in enumerate(checks):
        first = i == 0 or (checks[i - 1].service, checks[i - 1].node) != (ch.service, ch.node)
        where = (ch.service, ch.node or "-") if first else ("", "")
        shown = result(ch)
        table.add_row(*where, ch.check, f"[{RESULT_STYLES[shown]}]{shown}[/]", ch.reason)
    Console(highlight=False).print(table)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")  # every major CI runner sets CI=true


def is_interactive() -> bool:
    """A person at a terminal: stdout is one, and no CI runner says otherwise."""
    return sys.stdout.isatty() and not _in_ci()


YES_HELP = "do not ask: needed without a terminal when the command covers more than one service"


def confirmation(services: int, yes: bool, terminal: bool) -> Literal["go", "ask", "refuse"]:
    """Whether a change to ``services`` services goes ahead, is asked about once, or is refused (exit 2).

    ``--yes`` always goes; a person at a terminal is asked; without one, a single service goes (what
    a CI job deploying one service runs) and several need ``--yes``.
    """
    if yes:
        return "go"
    if terminal:
        return "ask"
    return "go" if services <= 1 else "refuse"


def confirm(command: str, services: Sequence[str], plan: Sequence[str], yes: bool) -> None:
    """Before ``command`` changes ``services``: show ``plan`` (one line each) and ask once on a terminal
    (stdin, with the question on stderr: stdout may carry JSON); refuse without one unless --yes.

    Raises InvalidInput (exit 2, nothing done) when refused or not confirmed.
    """
    if will_ask(command, services, yes):
        ask(command, plan)


def will_ask(command: str, services: Sequence[str], yes: bool) -> bool:
    """Whether ``command`` on ``services`` asks a person (confirmation()), decided before anything is done: for a
    command whose plan is known only once the nodes were observed (promote-standby), asked later with ask().

    Raises InvalidInput (exit 2) when it is refused: several services, no terminal, no --yes."""
    decision = confirmation(len(services), yes, _asking_possible())
    if decision == "refuse":
        raise InvalidInput(f"{command} covers {len(services)} services ({', '.join(services)}): pass --yes to "
                           "confirm without a terminal, or choose one with --service")  # fmt: skip
    return decision == "ask"


def _asking_possible() -> bool:
    return sys.stdin.isatty() and not _in_ci()


def confirm_always(command: str, plan: Sequence[str], yes: bool) -> None:
    """Before a change that always needs a person's yes (writing trusted host keys): go with --yes, ask on
    a terminal, and without one refuse (InvalidInput, exit 2, naming --yes)."""
    if yes:
        return
    if not _asking_possible():
        raise InvalidInput(f"{command}: nothing written: no terminal to confirm on; pass --yes to confirm")
    ask(command, plan)


def prompt_lines(command: str, plan: Sequence[str], width: int) -> list[str]:
    """The confirmation's text as printed: ``command will:``, then each ``plan`` line indented by 2, wrapped at
    words to ``width`` columns (continuations indented by 4); a word longer than the line is kept whole."""
    wrap = functools.partial(textwrap.wrap, width=max(width, 20), break_long_words=False, break_on_hyphens=False)
    lines = wrap(f"{command} will:")
    for item in plan:
        lines += wrap(item, initial_indent="  ", subsequent_indent="    ")
    return lines


def ask(command: str, plan: Sequence[str]) -> None:
    """Show ``plan`` (fitted to the terminal: prompt_lines) and ask once, on stderr, reading stdin; Declined (an
    InvalidInput: exit 2) unless answered yes."""
    width = shutil.get_terminal_size((80, 24)).columns
    with _SCREENS[-1].paused() if _SCREENS else contextlib.nullcontext():
        print(*prompt_lines(command, plan, width), sep="\n", file=sys.stderr)
        print("Proceed? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise Declined(f"{command}: not confirmed; nothing was done")
