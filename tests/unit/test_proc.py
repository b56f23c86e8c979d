"""The local-process edge with real children (this Python): the pipe the data flows through, the stderr that
becomes the message, the environment given and no other."""

from __future__ import annotations

import sys

import pytest

from nodeops.edges import proc
from nodeops.errors import OperationFailed

PY = sys.executable


def test_a_reading_child_gives_its_output_and_only_the_environment_it_was_given():
    child = proc.Child.reading([PY, "-c", "import os, sys; sys.stdout.write(repr(sorted(os.environ)))"], {"PGX": "1"})
    try:
        out = child.stdout.read()
        child.finish("print", str)
    finally:
        child.kill()
    assert out.decode() in (repr(["PGX"]), repr(["LC_CTYPE", "PGX"]))  # Python may set LC_CTYPE for itself


def test_a_writing_child_reads_what_is_written_and_its_stdin_closed():
    script = "import sys; data = sys.stdin.buffer.read(); sys.exit(0 if data == b'dump' * 3 else 3)"
    child = proc.Child.writing([PY, "-c", script], {})
    try:
        for _ in range(3):
            child.stdin.write(b"dump")
        child.stdin.close()
        child.finish("restore", str)  # exit 0: nothing raised
    finally:
        child.kill()


def test_a_failing_child_is_its_last_stderr_lines_clipped_by_the_caller():
    script = "import sys\nfor n in range(6): print(f'line {n} pw=s3cret', file=sys.stderr)\nsys.exit(2)"
    child = proc.Child.reading([PY, "-c", script], {})
    with pytest.raises(OperationFailed) as err:
        child.finish("pg_dump of db", lambda text: text.replace("s3cret", "***"))
    child.kill()
    assert str(err.value) == "pg_dump of db failed: line 2 pw=*** line 3 pw=*** line 4 pw=*** line 5 pw=***"


def test_a_failing_child_with_nothing_said_is_its_exit_status():
    child = proc.Child.reading([PY, "-c", "raise SystemExit(5)"], {})
    with pytest.raises(OperationFailed, match="^restore failed: exit 5$"):
        child.finish("restore", str)
    child.kill()


def test_output_is_stdout_whatever_the_status():
    assert proc.output([PY, "-c", "print('pg_dump (PostgreSQL) 15.8'); raise SystemExit(1)"], {}, 30) == (
        "pg_dump (PostgreSQL) 15.8\n"
    )


@pytest.mark.parametrize(
    ("argv", "timeout", "says"),
    [
        (["/nonexistent/pg_dump", "--version"], 30, "No such file"),
        ([PY, "-c", "import time; time.sleep(5)"], 0.5, "timed out"),
    ],
)
def test_output_that_cannot_start_or_end_is_a_child_error(argv, timeout, says):
    with pytest.raises(proc.ChildError, match=says):
        proc.output(argv, {}, timeout)
