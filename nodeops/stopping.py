"""Ctrl-C and SIGTERM during a run that changes pairs: stop at a safe point, never half way through a handover.

    with StopRequests(note) as stop:   # in the main thread
        ...                            # workers check stop.is_set() between the steps of a plan

The first SIGINT or SIGTERM (a CI runner cancels a job with SIGTERM) sets the flag and says so: no new
step starts but those that leave the pair whole; a standby a deploy already replaced goes back on its previous
container, and a handover under way finishes, its old active started again as the standby (see
nodeops.run.runner.stop_action); under activation keys a promotion's fence done before the keys moved is undone,
and a move of the keys under way finishes (nodeops.run.fence.KeysPromotion.stop_before); the run then
ends with exit 130 (errors.Interrupted), saying what runs. A
second one is refused with a one-line note, since stopping now could leave a node with no container;
a third ends the process at once with SIGKILL, as an operator who presses Ctrl-C three times means it
(no audit end entry, the lock left stale for `fab lock.release`).

Nothing here waits for the main thread. Python runs a signal's handler in the main thread only, and only
once that thread runs bytecode again; while it waits on a worker (a deploy runs each service in a thread
of its own) it may not, when the kernel delivered the signal to another thread. So the Python handler
does nothing: the C-level handler writes the signal's number to the wakeup fd (signal.set_wakeup_fd) at
once, from whichever thread took it, and a thread of this class reads it, counts, sets the flag and
reports the note. That thread also never takes a lock the main thread may hold when the signal comes.

A command with nothing to finish (`nodeops logs --follow`) ends on the first one instead:

    with ending_on_signals():          # SIGINT and SIGTERM raise Stopped (a KeyboardInterrupt) in the main thread
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

FIRST = ("stopping at the next safe point: no new step starts but those that leave the pair whole: a standby already "
         "replaced goes back, a fence before the keys moved is undone, a handover or a move of the keys under way "
         "finishes first (Ctrl-C twice more aborts at once)")  # fmt: skip
SECOND = "already stopping at a safe point; a third Ctrl-C aborts at once and may leave a pair half-changed"
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(_signum: int, _frame: object) -> None:
    """The Python-level handler: the request is taken from the wakeup fd (see the module's docstring)."""


class StopRequests:
    """A flag set by the first SIGINT/SIGTERM while the block runs; ``note`` is given each request's one line:
    ``first`` (what the command does once asked: FIRST for a deploy's steps), then SECOND."""

    def __init__(self, note: Callable[[str], None], first: str = FIRST) -> None:
        self.note, self.first = note, first
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
                said = self.first if self.count == 1 else SECOND
                if signum == signal.SIGTERM:  # either signal counts towards the third, which aborts
                    said = said.replace("Ctrl-C", "SIGTERM or Ctrl-C")
                self.note(f"{signal.Signals(signum).name}: {said}")

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


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM during a command that just ends (see ending_on_signals); ``str()`` is the signal's name."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def ending_on_signals() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise Stopped in the main thread, as Python raises
    KeyboardInterrupt for Ctrl-C: for a command with no safe point to reach (`nodeops logs --follow`), whose
    ``with`` blocks then close what they opened. A CI runner cancels a job with SIGTERM, which would otherwise
    end the process at once (exit 143), skipping them. The main thread must wait in short steps (a join with a
    timeout) for the handler to run. Off the main thread (handlers can only be set there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, _raise_stopped) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
