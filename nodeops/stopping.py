"""Ctrl-C and SIGTERM during a run that changes pairs: stop at a safe point, never half way through a handover.

    with StopRequests(note) as stop:   # in the main thread
        ...                            # workers check stop.is_set() between the steps of a plan

The first SIGINT or SIGTERM (a CI runner cancels a job with SIGTERM) sets the flag and says so: no new
step starts, and a handover under way goes on until the old active is the standby again (see
nodeops.deploy.safe_before); the run then ends with exit 130 (errors.Interrupted), saying what runs. A
second one is refused with a one-line note, since stopping now could leave a node with no container;
a third ends the process at once with SIGKILL, as an operator who presses Ctrl-C three times means it
(no audit end entry, the lock left stale for `fab lock.release`).

Nothing here waits for the main thread. Python runs a signal's handler in the main thread only, and only
once that thread runs bytecode again; while it waits on a worker (a deploy runs each service in a thread
of its own) it may not, when the kernel delivered the signal to another thread. So the Python handler
does nothing: the C-level handler writes the signal's number to the wakeup fd (signal.set_wakeup_fd) at
once, from whichever thread took it, and a thread of this class reads it, counts, sets the flag and
reports the note. That thread also never takes a lock the main thread may hold when the signal comes.
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
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(_signum: int, _frame: object) -> None:
    """The Python-level handler: the request is taken from the wakeup fd (see the module's docstring)."""


class StopRequests:
    """A flag set by the first SIGINT/SIGTERM while the block runs; ``note`` is given each request's one line."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note
        self.count = 0
        self.requested = threading.Event()
        self.saved: dict[int, object] = {}
        self.saved_wakeup = -1
        self.pipe: tuple[int, int] | None = None
        self.reader: threading.Thread | None = None

    def is_set(self) -> bool:
        return self.requested.is_set()

    def _read(self, fd: int) -> None:
        while got := os.read(fd, 64):
            for signum in got:
                if signum not in SIGNALS:
                    continue
                self.count += 1
                if self.count >= 3:  # worker threads cannot be interrupted: only ending the process stops them
                    os.kill(os.getpid(), signal.SIGKILL)
                self.requested.set()
                self.note(f"{signal.Signals(signum).name}: {FIRST if self.count == 1 else SECOND}")

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
            return self
        self.pipe = os.pipe()
        os.set_blocking(self.pipe[1], False)  # set_wakeup_fd requires it: a full pipe drops a byte, never blocks
        self.reader = threading.Thread(target=self._read, args=(self.pipe[0],), name="stop requests", daemon=True)
        self.reader.start()
        self.saved_wakeup = signal.set_wakeup_fd(self.pipe[1], warn_on_full_buffer=False)
        for sig in SIGNALS:
            self.saved[sig] = signal.signal(sig, _ignore)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        self.saved.clear()
        if self.pipe:
            signal.set_wakeup_fd(self.saved_wakeup)
            os.close(self.pipe[1])  # the reader sees EOF once it has reported what was written
            self.reader.join(timeout=5)
            with contextlib.suppress(OSError):
                os.close(self.pipe[0])
            self.pipe = None
