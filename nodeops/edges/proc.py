"""Local child processes: the tools nodeops runs on the operator's machine (pg_dump and pg_restore for
fab backup and fab restore, sops for the ``sops`` secret backend).

A child gets the environment its caller gives it and nothing else (never this process's own: the caller
builds it, secrets in the environment only, never in ``argv``), and no shell: ``argv`` is run as given.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from nodeops.errors import OperationFailed


class ChildError(Exception):
    """A child that could not start, or did not end in time; the message says which and why."""


def output(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> str:
    """Run ``argv`` to its end (at most ``timeout`` seconds) and give its stdout (text); its exit status is not
    looked at (``pg_dump --version``). Raises ChildError when it cannot start or does not end in time."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, env=dict(env), timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise ChildError(str(err)) from None


@dataclass(frozen=True)
class Exchanged:
    """What a child that read ``data`` on its stdin gave back: its exit code, its stdout (bytes, kept in memory
    only: it may be a plaintext) and its stderr (text)."""

    code: int
    stdout: bytes
    stderr: str


def exchange(argv: Sequence[str], env: Mapping[str, str], data: bytes, timeout: float) -> Exchanged:
    """Run ``argv`` with ``data`` on its stdin and its stdout read through a pipe into memory (never a file), at
    most ``timeout`` seconds. Raises ChildError when it cannot start or does not end in time (then it is killed)."""
    try:
        done = subprocess.run(list(argv), input=data, capture_output=True, env=dict(env), timeout=timeout)
    except (OSError, subprocess.SubprocessError) as err:
        raise ChildError(f"{type(err).__name__}: {getattr(err, 'strerror', None) or 'did not end in time'}") from None
    return Exchanged(done.returncode, done.stdout, done.stderr.decode(errors="replace"))


@dataclass
class Child:
    """A long-running child whose data flows through one pipe (``reading``: its stdout; ``writing``: its
    stdin), its stderr drained in a thread (its last lines kept for the message)."""

    proc: subprocess.Popen
    errors: list[str]
    drain: threading.Thread | None = None

    @classmethod
    def reading(cls, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        """Started with no stdin; the caller reads its output from ``stdout`` (pg_dump)."""
        return cls._start(argv, env, subprocess.DEVNULL, subprocess.PIPE)

    @classmethod
    def writing(cls, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        """Started with its output discarded; the caller writes to ``stdin`` and closes it (pg_restore)."""
        return cls._start(argv, env, subprocess.PIPE, subprocess.DEVNULL)

    @classmethod
    def _start(cls, argv: Sequence[str], env: Mapping[str, str], stdin: int, stdout: int) -> Child:
        proc = subprocess.Popen(argv, env=dict(env), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        child = cls(proc, [])

        def drain() -> None:
            for line in proc.stderr:
                child.errors = [*child.errors[-3:], line.decode(errors="replace").strip()]

        child.drain = threading.Thread(target=drain, daemon=True)
        child.drain.start()
        return child

    @property
    def stdout(self) -> IO[bytes]:
        return self.proc.stdout

    @property
    def stdin(self) -> IO[bytes]:
        return self.proc.stdin

    def finish(self, what: str, clip: Callable[[str], str]) -> None:
        """Wait for its end; a non-zero exit raises OperationFailed ``<what> failed: <its last stderr lines>``,
        the lines given to ``clip`` first (the caller's redactor: one masked line), else ``exit N``."""
        code = self.proc.wait()
        if self.drain is not None:
            self.drain.join(timeout=5)  # its last stderr lines, read to the end: they are the message
        if code:
            detail = clip(" ".join(self.errors)) or f"exit {code}"
            raise OperationFailed(f"{what} failed: {detail}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
