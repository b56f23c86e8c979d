"""Ctrl-C and SIGTERM during a run that changes pairs: stop at a safe point, never half way through a handover.

    with StopRequests(note) as stop:   # in the main thread
        ...                            # workers check stop.is_set() between the steps of a plan

The first SIGINT or SIGTERM (a CI runner cancels a job with SIGTERM) sets the event and says so: no new
step starts, and a handover under way goes on until the old active is the standby again (see
nodeops.deploy.safe_before); the run then ends with exit 130 (errors.Interrupted), saying what runs. A
second one is refused with a one-line note, since stopping now could leave a node with no container;
a third raises KeyboardInterrupt, as an operator who presses Ctrl-C three times means it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

FIRST = ("stopping at the next safe point: no new step starts; a handover under way finishes first "
         "(Ctrl-C twice more aborts at once)")  # fmt: skip
SECOND = "already stopping at a safe point; a third Ctrl-C aborts at once and may leave a pair half-changed"


class StopRequests(threading.Event):
    """An Event set by the first SIGINT/SIGTERM while the block runs; ``note`` shows each request's one line."""

    def __init__(self, note: Callable[[str], None]) -> None:
        super().__init__()
        self.note = note
        self.count = 0
        self.saved: dict[int, object] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        self.count += 1
        if self.count >= 3:
            raise KeyboardInterrupt
        self.set()
        self.note(f"{signal.Signals(signum).name}: {FIRST if self.count == 1 else SECOND}")

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        self.saved.clear()
