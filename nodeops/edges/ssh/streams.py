"""A command's output as it comes (nodeops logs), and a terminal wired to a command (nodeops shell)."""

from __future__ import annotations

import os
import select
import signal
import sys
import termios
import tty
from collections.abc import Callable

from paramiko.ssh_exception import SSHException

from nodeops.edges.ssh.connection import Link
from nodeops.errors import OperationFailed


def stream(link: Link, command: str, sink: Callable[[bytes], None], chunk: int = 32768) -> int:
    """Run ``command`` on an open connection, giving each chunk of its output (stdout and stderr merged) to
    ``sink`` as it arrives, until the command ends or the connection is closed (another thread closing the
    Fleet ends it). Returns the exit status (-1 when the connection was closed first). A chunk may end
    anywhere, inside a line or a UTF-8 character: the sink reassembles.
    """
    conn = link._conn
    try:
        channel = conn.transport.open_session(timeout=conn.connect_timeout)
        channel.set_combine_stderr(True)
        channel.exec_command(command)
    except (SSHException, EOFError, OSError) as exc:
        raise OperationFailed(f"{conn.target.label}: cannot open a session: {exc or type(exc).__name__}") from None
    try:
        while data := channel.recv(chunk):
            sink(data)
        return channel.recv_exit_status()  # -1 when the channel closed without one
    except (SSHException, EOFError, OSError):
        return -1
    finally:
        channel.close()


def interactive(link: Link, command: str | None, term: str) -> int:
    """A PTY session on an open connection wired to this process's terminal; returns the remote exit status.

    ``command`` None: the user's login shell; else that command (e.g. ``docker exec -it ...``). The local
    terminal is put in raw mode (every key, Ctrl-C included, goes to the remote side) and restored on the
    way out, whatever happens; a window resize (SIGWINCH) is passed on with ``resize_pty``. Needs stdin and
    stdout to be a terminal (the caller checks). Raises OperationFailed when the session cannot be opened.
    """

    def size() -> tuple[int, int]:  # the terminal's own, never $COLUMNS/$LINES (they do not follow a resize)
        cols, rows = os.get_terminal_size(sys.stdout.fileno())
        return cols or 80, rows or 24

    conn = link._conn
    try:
        channel = conn.transport.open_session(timeout=conn.connect_timeout)
        cols, rows = size()
        channel.get_pty(term=term, width=cols, height=rows)
        channel.invoke_shell() if command is None else channel.exec_command(command)
    except (SSHException, EOFError, OSError) as exc:
        raise OperationFailed(f"{conn.target.label}: cannot open a terminal: {exc or type(exc).__name__}") from None
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(stdin)
    previous = signal.signal(signal.SIGWINCH, lambda *_: channel.resize_pty(*size()))
    try:
        tty.setraw(stdin, termios.TCSANOW)  # keystrokes typed before the session opened are kept
        sources = [channel, stdin]
        while True:
            ready, _, _ = select.select(sources, [], [])
            if channel in ready:
                data = channel.recv(32768)
                if not data:
                    break
                _write_all(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 4096)
                if data:
                    channel.sendall(data)
                else:  # the terminal closed: tell the remote side, keep reading its output
                    channel.shutdown_write()
                    sources = [channel]
        return channel.recv_exit_status()
    except (SSHException, EOFError, OSError):
        raise OperationFailed(f"{conn.target.label}: connection lost") from None
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
        channel.close()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
