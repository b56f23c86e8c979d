"""Ctrl-C and SIGTERM during a run that changes pairs: stop at a safe point, never half way through a handover.

    with StopRequests(note) as stop:   # in the main thread
        ...                            # workers check stop.is_set() between the steps of a plan

The first SIGINT or SIGTERM (a CI runner cancels a job with SIGTERM) sets the flag and says so: no new
step starts, and a handover under way goes on until the old active is the standby again (see
nodeops.deploy.safe_before); the run then ends with exit 130 (errors.Interrupted), saying what runs. A
second one is refused with a one-line note, since stopping now could leave a node with no container;
a third ends the process at once with that signal's default action, as an operator who presses Ctrl-C
three times means it (as a SIGKILL would: no audit end entry, the lock left stale for `fab lock.release`).

The handler itself only counts and writes one byte to a pipe: it runs in the main thread between two
bytecodes, maybe inside a lock that thread holds (the audit session's, the reporter's), so the note is
reported by a thread of its own that reads the pipe, never from the handler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable

FIRST = ("stopping at the next safe point: no new step starts; a handover under way finishes first "
         "(Ctrl-C twice more aborts at once)")  # fmt: skip
SECOND = "already stopping at a safe point; a third Ctrl-C aborts at once and may leave a pair half-changed"


class StopRequests:
    """A flag set by the first SIGINT/SIGTERM while the block runs; ``note`` is given each request's one line."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note
        self.count = 0
        self.requested = False
        self.saved: dict[int, object] = {}
        self.pipe: tuple[int, int] | None = None
        self.reader: threading.Thread | None = None

    def is_set(self) -> bool:
        return self.requested

    def _handle(self, signum: int, _frame: object) -> None:
        self.count += 1
        if self.count >= 3:  # worker threads cannot be interrupted: only ending the process stops them
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.requested = True
        with contextlib.suppress(OSError):
            os.write(self.pipe[1], bytes([signum, self.count]))

    def _report(self, fd: int) -> None:
        while len(got := os.read(fd, 2)) == 2:
            signum, count = got
            self.note(f"{signal.Signals(signum).name}: {FIRST if count == 1 else SECOND}")

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self.pipe = os.pipe()
            self.reader = threading.Thread(target=self._report, args=(self.pipe[0],), name="stop notes", daemon=True)
            self.reader.start()
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        self.saved.clear()
        if self.pipe:
            os.close(self.pipe[1])  # the reader sees EOF once it has reported what was written
            self.reader.join(timeout=5)
            os.close(self.pipe[0])
            self.pipe = None
