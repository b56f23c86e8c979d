"""Connections to an inventory's nodes through its bastions: opened with retries, fanned out, closed.

Each bastion the run needs opens once (its key verified, so a bad bastion fails the run before any fan-out); every
node connection is a ``direct-tcpip`` channel multiplexed over its service's bastion transport (see
nodeops.edges.ssh), and the fan-out runs behind every bastion at once.
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


def _with_retries(retries: int, attempt: Callable[[], T], target: Target) -> tuple[T, int]:
    """``attempt`` (a connection to ``target``) tried up to ``retries`` more times, with backoff, while it fails
    transiently: its value and the attempts it took; OperationFailed naming ``target`` otherwise."""
    tries = retries + 1
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


def _opened(conn: PinnedConnection) -> PinnedConnection:
    """``conn``, opened; on failure its client is closed (Fabric's close() is a no-op until open() succeeded)."""
    try:
        conn.open()
    except BaseException:
        conn.client.close()
        raise
    return conn


class _NodeLinks:
    """The node connections a Fleet holds open: added and closed from the fan-out's threads, the rest at its end.

    Closing one, its transport's reader thread may be sending a last message through the tunnel (the reply to
    the node's close of a command's channel): paramiko checks that the tunnel channel is open, then sends, so a
    close in between put that message after the tunnel's CLOSE, and the bastion's sshd dropped its whole
    connection, every node's ("data packet referred to nonexistent channel"). The transport sends each of its
    messages holding ``clear_to_send_lock``: holding it, nothing of it is half sent when the tunnel closes. A
    link that died before (its bastion's, under it) has nothing left to close.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: list[PinnedConnection] = []

    def add(self, conn: PinnedConnection) -> None:
        with self.lock:
            self.open.append(conn)

    def close(self, conn: PinnedConnection) -> None:
        with self.lock:
            self.open.remove(conn)
        self._close(conn)

    def close_all(self) -> None:
        with self.lock:
            opened, self.open = self.open[::-1], []
        for conn in opened:
            self._close(conn)

    @staticmethod
    def _close(conn: PinnedConnection) -> None:
        with contextlib.suppress(EOFError, OSError, paramiko.SSHException), conn.transport.clear_to_send_lock:
            conn.close()


class Fleet:
    """Connections to an inventory's nodes, each through its service's bastion: one transport per bastion.

    Use as a context manager: entering opens the bastions of ``services`` (None: every bastion of the inventory),
    so a bad bastion key or an unreachable bastion fails the run before any fan-out; leaving closes every
    connection. A bastion no service of the run needs is opened only if it is asked for.
    """

    def __init__(self, inventory: Inventory, max_parallel: int | None = None,
                 services: Sequence[str] | None = None) -> None:  # fmt: skip
        self.inventory = inventory
        self.settings = inventory.ssh
        self.max_parallel = max_parallel or inventory.ssh.max_parallel
        self.keys = Keyring(inventory)
        self.needed = list(inventory.bastions_of(services) if services is not None else inventory.bastions)
        self._bastions: dict[str, PinnedConnection] = {}
        self._bastion_locks = {name: threading.Lock() for name in inventory.bastions}
        self._nodes = _NodeLinks()
        self._open_lock = threading.Lock()

    # -- connections -------------------------------------------------------------
    def __enter__(self) -> Fleet:
        try:
            if len(self.needed) > 1:  # several bastions: their logins at once
                with ThreadPoolExecutor(max_workers=len(self.needed)) as pool:
                    list(pool.map(self._bastion_conn, self.needed))
            else:
                list(map(self._bastion_conn, self.needed))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection, nodes first. A link that died before (a bastion's, under the node tunnels:
        paramiko raises EOFError or OSError sending the close) has nothing left to close: the rest still are."""
        self._nodes.close_all()
        with self._open_lock:
            bastions, self._bastions = list(self._bastions.values()), {}
        for conn in bastions:
            with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
                conn.close()

    def bastion(self, name: str | None = None) -> Link:
        """The shared connection to the bastion ``name`` (None: the inventory's only one); reopened if its
        transport died."""
        return Link(self._bastion_conn(name))

    def behind(self, service: str | None) -> str | None:
        """The name of the bastion ``service`` is reached through (None: the inventory's only one)."""
        return None if service is None else self.inventory.bastion_of(service).name

    def _bastion_conn(self, name: str | None = None) -> PinnedConnection:
        if name is None:
            if len(self.inventory.bastions) != 1:
                raise ValueError("several bastions: name the one to reach")
            name = next(iter(self.inventory.bastions))
        with self._bastion_locks[name]:
            conn = self._bastions.get(name)
            if conn is None or not conn.is_connected:
                if conn is not None:
                    conn.close()
                target, key = self.keys.bastions[name], self.keys.bastion_keys[name]
                conn, _ = _with_retries(
                    self.settings.connect_retries,
                    lambda: _opened(PinnedConnection(target, key, self.settings.connect_timeout)),
                    target,
                )
                with self._open_lock:
                    self._bastions[name] = conn
            return conn

    def connect(self, node: Node) -> tuple[Link, int]:
        """An open connection to ``node`` through its bastion, and the attempts it took."""
        target, via = self.keys.target(node), self.keys.bastion_of(node)

        def attempt() -> PinnedConnection:
            conn = PinnedConnection(target, self.keys.node_key, self.settings.connect_timeout,
                                    via=self._bastion_conn(via))  # fmt: skip
            return _opened(conn)

        conn, attempts = _with_retries(self.settings.connect_retries, attempt, target)
        self._nodes.add(conn)
        return Link(conn), attempts

    # -- through a service's bastion (forward.py); service None: the inventory's only bastion ------------
    def http_get(self, host: str, port: int, path: str, timeout: float = http.HEALTH_TIMEOUT, *,
                 service: str | None = None) -> tuple[int, bytes] | None:  # fmt: skip
        """GET ``path`` on a private ``host:port`` through ``service``'s bastion: (status, body), or None (see
        request)."""
        reply = self.request(host, port, "GET", path, timeout=timeout, service=service)
        return None if reply is None else (reply.status, reply.body)

    def request(self, host: str, port: int, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = http.HEALTH_TIMEOUT, *,
                service: str | None = None) -> http.Reply | None:  # fmt: skip
        """One HTTP/1.0 request to a private ``host:port`` through ``service``'s bastion: see forward.request."""
        return forward.request(self.bastion(self.behind(service)), host, port, method, path, body, headers, timeout)

    def tunnel(self, host: str, port: int, *, service: str | None = None) -> contextlib.AbstractContextManager[int]:
        """A port on 127.0.0.1 forwarded through ``service``'s bastion to ``host:port``: see forward.tunnel."""
        return forward.tunnel(self.bastion(self.behind(service)), host, port)

    # -- fan-out -------------------------------------------------------------------
    def map(self, nodes: Sequence[Node], work: Callable[[Link, Node], T], *, keep: bool = True) -> list[Outcome[T]]:
        """Run ``work`` on every node, behind every bastion at once, at most ``max_parallel`` at a time behind each.

        Every node gets an Outcome, in the order given; a failure on one node
        is recorded there and never stops or hides the others. ``keep``: each
        node's connection stays open until the Fleet closes (for a caller that
        runs more on it afterwards); False closes it as soon as ``work`` returns.
        """

        def one(node: Node) -> Outcome[T]:
            started = time.monotonic()
            outcome: Outcome[T] = Outcome(node)
            try:
                conn, outcome.attempts = self.connect(node)
                try:
                    outcome.value = work(conn, node)
                finally:
                    if not keep:
                        self._nodes.close(conn._conn)
            except NodeopsError as exc:
                outcome.error = exc
            except Exception as exc:  # noqa: BLE001 (reported per host, never swallowed)
                outcome.error = OperationFailed(f"{node.name} ({node.host}:{node.port}): {exc or type(exc).__name__}")
            outcome.seconds = time.monotonic() - started
            return outcome

        groups: dict[str, list[Node]] = {}
        for node in nodes:
            groups.setdefault(self.keys.bastion_of(node), []).append(node)
        with contextlib.ExitStack() as stack:
            pools = {name: stack.enter_context(ThreadPoolExecutor(max_workers=min(self.max_parallel, len(group))))
                     for name, group in groups.items()}  # fmt: skip
            futures = [pools[self.keys.bastion_of(node)].submit(one, node) for node in nodes]
            return [future.result() for future in futures]

    def run(self, nodes: Sequence[Node], command: str, timeout: float | None = None) -> list[Outcome[CommandResult]]:
        """Run one shell command on every node; a non-zero exit is a result, not an error. Each node's connection
        closes once its command is done: an open paramiko transport wakes every 0.1 s until closed (its socket
        timeout, ``Transport._active_check_timeout``), CPU the rest of a large run paid (docs/scaling.md)."""
        limit = timeout or self.settings.command_timeout
        return self.map(nodes, lambda conn, _node: execute(conn, command, timeout=limit), keep=False)
