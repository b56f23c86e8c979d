"""The edge: the live view of a run on the terminal (rich's Live over a Console), fed the run's events."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence

from rich.console import Console, RenderableType
from rich.live import Live
from rich.spinner import Spinner

from nodeops.console.steps import Progress, header, step_row


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
