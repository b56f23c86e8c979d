"""Long-running lab processes (sshd, engines, PostgreSQL, ...), found again by pid.

Each daemon is recorded in the lab's state under a key, with its pid and a
marker: a string its command line must contain. A pid whose command line no
longer holds the marker was reused by someone else and is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nodeops.errors import OperationFailed

READY_TIMEOUT = 30.0


def run(argv: Sequence[str], stdin: str | None = None, hide: Sequence[str] = ()) -> str:
    """Run a lab setup command; its stdout, or OperationFailed with its stderr (``hide`` values masked)."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=stdin)
    if proc.returncode:
        message = proc.stderr.strip() or str(proc.returncode)
        for value in hide:
            message = message.replace(value, "*****")
        raise OperationFailed(f"lab: {' '.join(argv)} failed: {message}")
    return proc.stdout


def process_alive(pid: int) -> bool:
    """Running and not a zombie (whoever reaps our orphans may take its time)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline_has(pid: int, marker: str) -> bool:
    """Match within the whole command line: sshd and postgres rewrite their process titles."""
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def naming(path: Path) -> list[int]:
    """The pids of the live processes whose command line names a file under ``path`` (not this process)."""
    marker = f"{path}/"
    return [int(d.name) for d in Path("/proc").iterdir()
            if d.name.isdigit() and int(d.name) != os.getpid() and process_alive(int(d.name))
            and _cmdline_has(int(d.name), marker)]  # fmt: skip


def outlast(path: Path, grace: float = 10.0) -> list[int]:
    """Once the lab's containers are gone: SIGKILL their ``conmon`` monitors naming ``path``, then wait up to
    ``grace`` seconds for every other process naming ``path`` to end and SIGKILL those left; returns the pids
    killed after the grace. A conmon outlives its container (an exec session's, podman's ``--exit-delay``, five
    minutes) and, once the container is gone, runs podman's ``container cleanup`` on the host's storage: when that
    came after the folder's removal, the storage was made again (seen: a lab's first host left with an empty
    ``containers/storage`` after lab.down). A cleanup already started is waited for."""
    for pid in naming(path):
        if _comm(pid) == "conmon":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while (left := naming(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def listening(netns: str, address: str) -> Callable[[], bool]:
    """A readiness check: something listens on TCP ``address`` (``ip:port``) in the network namespace ``netns``
    (asked with ``ss`` inside it: the operator has no route to a private address)."""
    argv = ("nsenter", f"--net=/run/netns/{netns}", "--", "ss", "-Hltn", f"src {address}")
    return lambda: bool(subprocess.run(argv, capture_output=True, text=True).stdout.strip())


def accepts(address: str, port: int) -> bool:
    """Whether ``address:port`` takes a TCP connection from here (within 0.5 s): a daemon's readiness check."""
    try:
        socket.create_connection((address, port), timeout=0.5).close()
    except OSError:
        return False
    return True


@dataclass
class Started:
    key: str
    proc: subprocess.Popen
    log: Path
    ready: Callable[[], bool]


class Daemons:
    def __init__(self, table: dict[str, dict], save: Callable[[], None]) -> None:
        self.table = table  # key -> {"pid": int, "marker": str}, part of the lab state
        self.save = save

    def running(self, key: str) -> bool:
        entry = self.table.get(key)
        return bool(entry) and process_alive(entry["pid"]) and _cmdline_has(entry["pid"], entry["marker"])

    def start(
        self,
        key: str,
        argv: Sequence[str],
        marker: str,
        log: Path,
        ready: Callable[[], bool],
        env: Mapping[str, str] | None = None,
    ) -> Started:
        """Start ``argv`` in the background (its own session, output to ``log``) and record it."""
        environ = None if env is None else {**os.environ, **env}
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, env=environ
            )
        self.table[key] = {"pid": proc.pid, "marker": marker}
        self.save()
        return Started(key, proc, log, ready)

    @staticmethod
    def wait(started: Sequence[Started], timeout: float = READY_TIMEOUT) -> None:
        """Wait until each started daemon is ready; fail at once, with its last log line, if one dies."""
        deadline = time.monotonic() + timeout
        pending = list(started)
        while pending:
            for s in list(pending):
                if s.proc.poll() is not None:
                    lines = s.log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
                    raise OperationFailed(f"lab: {s.key} exited ({s.proc.returncode}): {lines[-1]}; see {s.log}")
                if s.ready():
                    pending.remove(s)
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.key for s in pending)
                raise OperationFailed(
                    f"lab: not ready within {timeout:g}s: {names}; see their logs in {started[0].log.parent}"
                )
            if pending:
                time.sleep(0.05)

    def stop(self, keys: Sequence[str], grace: float = 5.0) -> None:
        """SIGTERM the daemons (all at once), SIGKILL what outlives ``grace``, forget them."""
        ours = []
        for key in keys:
            entry = self.table.pop(key, None)
            if entry and process_alive(entry["pid"]) and _cmdline_has(entry["pid"], entry["marker"]):
                os.kill(entry["pid"], signal.SIGTERM)
                ours.append(entry["pid"])
        self.save()
        deadline = time.monotonic() + grace
        while (ours := [p for p in ours if process_alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in ours:
            os.kill(pid, signal.SIGKILL)
