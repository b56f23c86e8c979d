"""Connections to an inventory's nodes through one bastion: opened with retries, fanned out, closed.

The bastion opens once (its key verified, so a bad bastion fails the run before any fan-out); every node
connection is a ``direct-tcpip`` channel multiplexed over that one transport (see nodeops.edges.ssh).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import paramiko
from paramiko.ssh_exception import ChannelException, NoValidConnectionsError, SSHException

from nodeops.edges import http
from nodeops.edges.ssh import forward
from nodeops.edges.ssh.command import CommandResult, execute
from nodeops.edges.ssh.connection import Link, PinnedConnection
from nodeops.edges.ssh.keys import Keyring, Target
from nodeops.errors import NodeopsError, OperationFailed
from nodeops.inventory import Inventory, Node

T = TypeVar("T")


# Failures that a new attempt can cure: the bastion refused or reset a channel,
# sshd dropped us before its banner or never sent one, the network hiccuped.
_TRANSIENT = (ChannelException, EOFError, ConnectionResetError, TimeoutError, NoValidConnectionsError)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, SSHException) and "banner" in str(exc).lower()


@dataclass
class Outcome(Generic[T]):
    """What happened on one node: a value, or the error that stopped it there."""

    node: Node
    value: T | None = None
    error: NodeopsError | None = None
    seconds: float = 0.0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class Fleet:
    """Connections to an inventory's nodes, all through one bastion transport.

    Use as a context manager: entering opens the bastion (so a bad bastion key
    or an unreachable bastion fails the run before any fan-out); leaving
    closes every connection.
    """

    def __init__(self, inventory: Inventory, max_parallel: int | None = None) -> None:
        self.inventory = inventory
        self.settings = inventory.ssh
        self.max_parallel = max_parallel or inventory.ssh.max_parallel
        self.keys = Keyring(inventory)
        self._bastion: PinnedConnection | None = None
        self._bastion_lock = threading.Lock()
        self._open: list[PinnedConnection] = []
        self._open_lock = threading.Lock()

    # -- connections -------------------------------------------------------------
    def __enter__(self) -> Fleet:
        self._bastion_conn()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection, nodes first. A link that died before (the bastion's, under the node tunnels:
        paramiko raises EOFError or OSError sending the close) has nothing left to close: the rest still are."""
        with self._open_lock:
            opened, self._open = [*reversed(self._open), self._bastion], []
        self._bastion = None
        for conn in opened:
            if conn is not None:
                with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
                    conn.close()

    def bastion(self) -> Link:
        """The shared bastion connection; reopened if its transport died."""
        return Link(self._bastion_conn())

    def _bastion_conn(self) -> PinnedConnection:
        with self._bastion_lock:
            if self._bastion is None or not self._bastion.is_connected:
                if self._bastion is not None:
                    self._bastion.close()
                self._bastion, _ = self._with_retries(
                    lambda: self._opened(
                        PinnedConnection(self.keys.bastion, self.keys.bastion_key, self.settings.connect_timeout)
                    )
                )
            return self._bastion

    def connect(self, node: Node) -> tuple[Link, int]:
        """An open connection to ``node`` through the bastion, and the attempts it took."""
        target = self.keys.target(node)

        def attempt() -> PinnedConnection:
            conn = PinnedConnection(target, self.keys.node_key, self.settings.connect_timeout, via=self._bastion_conn())
            return self._opened(conn)

        conn, attempts = self._with_retries(attempt, target)
        with self._open_lock:
            self._open.append(conn)
        return Link(conn), attempts

    @staticmethod
    def _opened(conn: PinnedConnection) -> PinnedConnection:
        try:
            conn.open()
        except BaseException:
            conn.client.close()  # Fabric's close() is a no-op until open() succeeded
            raise
        return conn

    def _with_retries(self, attempt: Callable[[], T], target: Target | None = None) -> tuple[T, int]:
        target = target or self.keys.bastion
        tries = self.settings.connect_retries + 1
        for n in range(1, tries + 1):
            try:
                return attempt(), n
            except NodeopsError:
                raise
            except paramiko.AuthenticationException as exc:
                raise OperationFailed(
                    f"{target.label} ({target.address}): authentication as {target.user!r} failed: {exc}"
                ) from None
            except Exception as exc:  # noqa: BLE001 (classified right here)
                if n == tries or not _is_transient(exc):
                    reason = str(exc) or type(exc).__name__
                    raise OperationFailed(
                        f"{target.label} ({target.address}): cannot connect after {n} attempt(s): {reason}"
                    ) from None
                time.sleep(min(0.2 * 2 ** (n - 1), 2.0) + random.uniform(0, 0.2))
        raise AssertionError("unreachable")

    # -- through the bastion (forward.py) ----------------------------------------------
    def http_get(
        self, host: str, port: int, path: str, timeout: float = http.HEALTH_TIMEOUT
    ) -> tuple[int, bytes] | None:
        """GET ``path`` on a private ``host:port`` through the bastion: (status, body), or None (see request)."""
        reply = self.request(host, port, "GET", path, timeout=timeout)
        return None if reply is None else (reply.status, reply.body)

    def request(self, host: str, port: int, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None,
                timeout: float = http.HEALTH_TIMEOUT) -> http.Reply | None:  # fmt: skip
        """One HTTP/1.0 request to a private ``host:port`` through the bastion: see forward.request."""
        return forward.request(self.bastion(), host, port, method, path, body, headers, timeout)

    def tunnel(self, host: str, port: int) -> contextlib.AbstractContextManager[int]:
        """A port on 127.0.0.1 forwarded through the bastion to ``host:port``: see forward.tunnel."""
        return forward.tunnel(self.bastion(), host, port)

    # -- fan-out -------------------------------------------------------------------
    def map(self, nodes: Sequence[Node], work: Callable[[Link, Node], T]) -> list[Outcome[T]]:
        """Run ``work`` on every node, at most ``max_parallel`` at a time.

        Every node gets an Outcome, in the order given; a failure on one node
        is recorded there and never stops or hides the others.
        """

        def one(node: Node) -> Outcome[T]:
            started = time.monotonic()
            outcome: Outcome[T] = Outcome(node)
            try:
                conn, outcome.attempts = self.connect(node)
                outcome.value = work(conn, node)
            except NodeopsError as exc:
                outcome.error = exc
            except Exception as exc:  # noqa: BLE001 (reported per host, never swallowed)
                outcome.error = OperationFailed(f"{node.name} ({node.host}:{node.port}): {exc or type(exc).__name__}")
            outcome.seconds = time.monotonic() - started
            return outcome

        if not nodes:
            return []
        with ThreadPoolExecutor(max_workers=min(self.max_parallel, len(nodes))) as pool:
            return list(pool.map(one, nodes))

    def run(self, nodes: Sequence[Node], command: str, timeout: float | None = None) -> list[Outcome[CommandResult]]:
        """Run one shell command on every node; a non-zero exit is a result, not an error."""
        limit = timeout or self.settings.command_timeout
        return self.map(nodes, lambda conn, _node: execute(conn, command, timeout=limit))
