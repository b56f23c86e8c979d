"""What a stop request's note says, by the signal that asked (nodeops.stopping.StopRequests)."""

from __future__ import annotations

import os
import signal

import pytest

from nodeops.stopping import StopRequests


@pytest.mark.parametrize(
    ("signum", "first", "second"),
    [
        (signal.SIGINT, "(Ctrl-C twice more aborts at once)", "a third Ctrl-C aborts at once"),
        (signal.SIGTERM, "(SIGTERM or Ctrl-C twice more aborts at once)", "a third SIGTERM or Ctrl-C aborts at once"),
    ],
)
def test_a_stop_request_says_what_the_next_ones_do_for_the_signal_that_came(signum, first, second):
    """review15 F9b: the SIGTERM banner said "(Ctrl-C twice more aborts at once)"; either signal counts (the third
    request of any kind aborts), so a SIGTERM's note says so. Two requests only: the third would SIGKILL."""
    notes: list[str] = []
    stop = StopRequests(notes.append)
    read, write = os.pipe()
    os.write(write, bytes([signum, signum]))
    os.close(write)
    stop._read(read)  # the reader thread's loop, on what set_wakeup_fd would have written
    os.close(read)
    name = signal.Signals(signum).name
    assert len(notes) == 2 and stop.is_set()
    assert notes[0].startswith(f"{name}: stopping at the next safe point") and notes[0].endswith(first), notes[0]
    assert notes[1].startswith(f"{name}: already stopping") and second in notes[1], notes[1]
