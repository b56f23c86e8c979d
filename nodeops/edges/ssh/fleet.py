"""The one place that touches hosts: SSH through the bastion, host keys pinned.

Shape of a run: open the bastion once (its key verified), then open every node
connection as a ``direct-tcpip`` channel multiplexed over that single bastion
transport, so a fan-out costs one bastion login however many nodes there are
and sshd's MaxStartups on the bastion never comes into play. Every client,
the bastion's included, has its host keys loaded from the inventory and a
policy that refuses unknown keys: Fabric's AutoAddPolicy is replaced before
any connection is opened, and no system known_hosts file is consulted.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import random
import select
import signal
import socket
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import paramiko
from fabric import Config, Connection
from paramiko.ssh_exception import BadHostKeyException, ChannelException, NoValidConnectionsError, SSHException

from nodeops.edges import http
from nodeops.errors import HostKeyRejected, InventoryError, NodeopsError, OperationFailed
from nodeops.inventory import HostKey, Inventory, Node

T = TypeVar("T")

# paramiko logs refused channels and failed handshakes at ERROR; each failure is
# reported once, by host, by the caller. Without a handler, Python's last-resort
# one would print them raw on stderr.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

# Failures that a new attempt can cure: the bastion refused or reset a channel,
# sshd dropped us before its banner or never sent one, the network hiccuped.
_TRANSIENT = (ChannelException, EOFError, ConnectionResetError, TimeoutError, NoValidConnectionsError)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, SSHException) and "banner" in str(exc).lower()


def known_hosts_name(host: str, port: int) -> str:
    """The name a host's keys go by in OpenSSH's known_hosts (and in paramiko's lookups)."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class Target:
    """Where to connect and which host keys to accept there."""

    label: str  # "bastion" or the node name
    host: str
    port: int
    user: str
    pinned: tuple[paramiko.PKey, ...]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def key_name(self) -> str:
        return known_hosts_name(self.host, self.port)


class _RefuseUnpinned(paramiko.MissingHostKeyPolicy):
    def __init__(self, target: Target) -> None:
        self.target = target

    def missing_host_key(self, client, hostname, key):  # noqa: ARG002 (paramiko's signature)
        types = ", ".join(sorted({k.get_name() for k in self.target.pinned})) or "none"
        raise HostKeyRejected(
            self.target.label,
            self.target.address,
            f"{key.get_name()} {key.fingerprint}",
            f"is not pinned (pinned key types: {types})",
        )


class PinnedConnection(Connection):
    """A Fabric Connection that verifies the host key against pinned keys only.

    With ``via`` set, the socket is a direct-tcpip channel on ``via``'s
    (already open) transport, opened with a timeout; Fabric's own gateway
    code would wait up to an hour for a dead node.
    """

    def __init__(
        self, target: Target, pkey: paramiko.PKey | None, timeout: float, via: PinnedConnection | None = None
    ) -> None:
        config = Config(ssh_config=paramiko.SSHConfig())  # never read ~/.ssh/config
        connect_kwargs = {
            "allow_agent": False,
            "look_for_keys": False,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
        }
        if pkey is not None:
            connect_kwargs["pkey"] = pkey
        super().__init__(
            target.host,
            user=target.user,
            port=target.port,
            config=config,
            gateway=via,
            forward_agent=False,
            connect_timeout=timeout,
            connect_kwargs=connect_kwargs,
        )
        self.connect_timeout = timeout  # Fabric casts it to int: 0.5 s would become 0, no TCP timeout at all
        self.target = target
        self.client.set_missing_host_key_policy(_RefuseUnpinned(target))
        store = self.client.get_host_keys()
        for key in target.pinned:
            store.add(target.key_name, key.get_name(), key)

    def open_gateway(self):
        return self.gateway.transport.open_channel(
            "direct-tcpip", (self.host, int(self.port)), ("", 0), timeout=self.connect_timeout
        )

    def open(self):
        try:
            opened = super().open()
            if self.gateway is None:
                # Every node's packets share this socket: without TCP_NODELAY, a small write waits for the
                # bastion's delayed ACK (40 ms on Linux) behind the previous one, on every round trip.
                self.transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return opened
        except BadHostKeyException as exc:
            raise HostKeyRejected(
                self.target.label,
                self.target.address,
                f"{exc.key.get_name()} {exc.key.fingerprint}",
                f"does not match the pinned {exc.expected_key.get_name()} {exc.expected_key.fingerprint}",
            ) from None
        except SSHException as exc:
            # A silent peer ends in one of two ways, whichever of paramiko's two equal timeouts comes first: the
            # banner read times out ("Error reading SSH protocol banner", nothing more), or the negotiation's wait
            # ends without a word and the next call fails with "No existing session" (the transport still up).
            transport = self.client.get_transport()
            silent = transport is not None and not transport.initial_kex_done and (
                transport.is_active() or isinstance(exc.__context__, TimeoutError))  # fmt: skip
            if not silent:
                raise
            if transport.remote_version:
                raise TimeoutError(f"the SSH key exchange did not finish within {self.connect_timeout:g}s") from None
            raise TimeoutError(f"no SSH banner within {self.connect_timeout:g}s: the port accepted the connection "
                               "but sent nothing (sshd hung or overloaded, or not sshd)") from None  # fmt: skip


class Link:
    """An open SSH connection to one host (the bastion or a node), as the rest of nodeops holds it: given to
    execute, stream, interactive or Session, and ``label`` names its host ("bastion" or the node's name).
    Fabric's Connection under it stays in this module."""

    __slots__ = ("_conn",)

    def __init__(self, conn: PinnedConnection) -> None:
        self._conn = conn

    @property
    def label(self) -> str:
        return self._conn.target.label


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


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


def parse_pinned(keys: Sequence[HostKey]) -> tuple[paramiko.PKey, ...]:
    return tuple(paramiko.PKey.from_type_string(k.keytype, base64.b64decode(k.blob_b64)) for k in keys)


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
        self._bastion_key = self._load_identity(inventory.bastion.identity_file, "bastion.identity_file")
        self._node_key = self._load_identity(inventory.ssh.identity_file, "ssh.identity_file")
        self._known = self._load_known_hosts(inventory.ssh.known_hosts, "ssh.known_hosts")
        bastion_known = self._load_known_hosts(inventory.bastion.known_hosts, "bastion.known_hosts")
        b = inventory.bastion
        self.bastion_target = Target(
            "bastion", b.host, b.port, b.user, parse_pinned(b.host_keys) + self._lookup(bastion_known, b.host, b.port)
        )
        self._bastion: PinnedConnection | None = None
        self._bastion_lock = threading.Lock()
        self._open: list[PinnedConnection] = []
        self._open_lock = threading.Lock()

    # -- setup -----------------------------------------------------------------
    def _load_identity(self, path: Path | None, where: str) -> paramiko.PKey | None:
        if path is None:
            return None
        try:
            return paramiko.PKey.from_path(path)
        except (OSError, SSHException, ValueError) as exc:
            raise InventoryError(
                str(self.inventory.source),
                where,
                f"cannot load private key {path}: {exc}; point it at a readable unencrypted key",
            ) from None

    def _load_known_hosts(self, path: Path | None, where: str) -> paramiko.HostKeys | None:
        if path is None:
            return None
        try:
            return paramiko.HostKeys(str(path))
        except OSError as exc:
            raise InventoryError(
                str(self.inventory.source), where, f"cannot read known_hosts file {path}: {exc.strerror}"
            ) from None

    @staticmethod
    def _lookup(known: paramiko.HostKeys | None, host: str, port: int) -> tuple[paramiko.PKey, ...]:
        if known is None:
            return ()
        entry = known.lookup(known_hosts_name(host, port))
        return tuple(entry.values()) if entry else ()

    def target(self, node: Node) -> Target:
        pinned = parse_pinned(node.host_keys) + self._lookup(self._known, node.host, node.port)
        return Target(node.name, node.host, node.port, self.settings.user, pinned)

    def pinned(self, node: Node) -> tuple[HostKey, ...]:
        """The host keys ``node`` must show: its ``host_keys`` in the inventory, then ``ssh.known_hosts``'s."""
        return tuple(HostKey(k.get_name(), k.get_base64()) for k in self.target(node).pinned)

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
                        PinnedConnection(self.bastion_target, self._bastion_key, self.settings.connect_timeout)
                    )
                )
            return self._bastion

    def connect(self, node: Node) -> tuple[Link, int]:
        """An open connection to ``node`` through the bastion, and the attempts it took."""
        target = self.target(node)

        def attempt() -> PinnedConnection:
            conn = PinnedConnection(target, self._node_key, self.settings.connect_timeout, via=self._bastion_conn())
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
        target = target or self.bastion_target
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

    def http_get(
        self, host: str, port: int, path: str, timeout: float = http.HEALTH_TIMEOUT
    ) -> tuple[int, bytes] | None:
        """GET ``path`` on a private ``host:port`` through the bastion: (status, body), or None (see request)."""
        reply = self.request(host, port, "GET", path, timeout=timeout)
        return None if reply is None else (reply.status, reply.body)

    def request(self, host: str, port: int, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None,
                timeout: float = http.HEALTH_TIMEOUT) -> http.Reply | None:  # fmt: skip
        """One HTTP/1.0 request to a private ``host:port`` over a channel through the bastion.

        ``body`` and ``headers`` travel inside the SSH channel, never in a
        process argument. Returns the reply, or None when nothing answers HTTP
        there: the bastion could not connect, or a published port accepted and
        then dropped the connection. That is how a standby without the lease looks.
        """
        transport = self._bastion_conn().transport
        try:
            channel = transport.open_channel("direct-tcpip", (host, port), ("", 0), timeout=timeout)
        except SSHException:  # refused, or no answer in time (a port being torn down drops SYNs)
            if transport.is_active():
                return None
            raise OperationFailed(f"bastion ({self.bastion_target.address}): connection lost") from None
        channel.settimeout(timeout)
        try:
            return http.exchange(channel, host, port, method, path, body, headers)
        finally:
            channel.close()

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[int]:
        """A port on 127.0.0.1 whose connections are forwarded through the bastion to ``host:port``.

        For services on the private network the operator has no route to (the
        database). Only this process's loopback listens; it closes on exit.
        """
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(0.2)
        stop = threading.Event()
        transport = self._bastion_conn().transport

        def pump(src, dst) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR) if isinstance(dst, socket.socket) else dst.shutdown_write()

        def serve() -> None:
            while not stop.is_set():
                try:
                    client, peer = server.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                try:
                    channel = transport.open_channel("direct-tcpip", (host, port), peer, timeout=10)
                except SSHException:
                    client.close()
                    continue
                for src, dst in ((client, channel), (channel, client)):
                    threading.Thread(target=pump, args=(src, dst), daemon=True).start()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield server.getsockname()[1]
        finally:
            stop.set()
            server.close()
            thread.join(timeout=2)

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


class Session:
    """A command kept running on a host for as long as the caller needs it: lines in, lines out.

    It ends when the caller closes it, or when the connection dies with the
    caller's process: the command then reads EOF. That is what the deploy
    lock on the bastion rests on. Lines may be sent from any thread.
    """

    def __init__(self, link: Link, command: str, timeout: float) -> None:
        conn, self.label = link._conn, link.label
        self.sending = threading.Lock()
        self.closing = threading.Event()
        self.channel = conn.transport.open_session(timeout=timeout)
        self.channel.settimeout(timeout)
        self.channel.set_combine_stderr(True)  # a failing command's reason reaches the caller with its output
        self.channel.exec_command(command)
        self.out = self.channel.makefile("rb")

    def readline(self) -> str:
        try:
            return self.out.readline().decode(errors="replace")
        except TimeoutError:
            raise OperationFailed(f"{self.label}: no answer in time") from None

    def send_line(self, line: str) -> None:
        try:
            with self.sending:
                self.channel.sendall((line + "\n").encode())
        except (OSError, SSHException):
            raise OperationFailed(f"{self.label}: connection lost") from None

    def beat(self, line: str, every: float) -> None:
        """Send ``line`` every ``every`` seconds until closed: the command's proof that the caller lives (a
        frozen or cut-off caller sends no EOF). A failed send ends the beat; the caller's next send reports it."""

        def loop() -> None:
            with contextlib.suppress(OperationFailed):
                while not self.closing.wait(every):
                    self.send_line(line)

        threading.Thread(target=loop, name=f"beat {self.label}", daemon=True).start()

    def untimed(self) -> None:
        """From now on it lives as long as the caller: reads wait without a limit."""
        self.channel.settimeout(None)

    def finish(self) -> CommandResult:
        """The rest of the output and the exit status, once the command ends (stdin closed first)."""
        try:
            self.channel.shutdown_write()
            rest = self.out.read().decode(errors="replace")
            return CommandResult(self.channel.recv_exit_status(), rest, "")
        except (OSError, SSHException):
            raise OperationFailed(f"{self.label}: connection lost") from None
        finally:
            self.close()

    def close(self) -> None:
        self.closing.set()
        self.out.close()
        self.channel.close()


def execute(link: Link, command: str, stdin: bytes | None = None, timeout: float = 600) -> CommandResult:
    """Run ``command`` on an open connection; ``stdin`` (e.g. a secret file's bytes) is sent, then EOF.

    Content passed this way never appears in a process argument list. A
    non-zero exit is a result; a dead connection or the timeout raise
    OperationFailed naming the host (a host cut off mid-run: paramiko's
    "Timeout opening channel.", EOF, a reset), never paramiko's own error.

    ``timeout`` (seconds) bounds the whole command: a watchdog closes the
    channel when it runs out, since some of paramiko's waits have no timeout
    of their own (``exec_command`` waiting for a reply from a host whose
    network went away mid-run waits until TCP gives up, many minutes later).
    Opening the session is one request and its reply, bounded by the
    connection's ``connect_timeout`` (as ``stream`` and ``interactive`` do):
    once a host is cut off, each further command on it fails after that,
    not after ``timeout`` (a run's restore path meets such a host several times).
    """
    conn = link._conn
    try:
        channel = conn.transport.open_session(timeout=min(timeout, conn.connect_timeout))
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise OperationFailed(f"{conn.target.label}: cannot open a session: {exc or type(exc).__name__}") from None
    channel.settimeout(timeout)
    watchdog = threading.Timer(timeout, channel.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        channel.exec_command(command)
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        with channel.makefile("rb") as out, channel.makefile_stderr("rb") as err:
            stdout, stderr = out.read(), err.read()
        status = channel.recv_exit_status()
        if watchdog.finished.is_set():  # it closed the channel: what was read ends early, the status is -1
            raise TimeoutError
        return CommandResult(status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if isinstance(exc, TimeoutError) or watchdog.finished.is_set():
            raise OperationFailed(f"{conn.target.label}: command timed out after {timeout:g}s") from None
        raise OperationFailed(f"{conn.target.label}: connection lost: {exc or type(exc).__name__}") from None
    finally:
        watchdog.cancel()
        channel.close()


# -- reading a node's host keys (nodeops hostkeys) -------------------------------------------------
SCANNED_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512")


def scan_host_keys(fleet: Fleet, node: Node) -> tuple[HostKey, ...]:
    """The host keys ``node`` offers, one per key type it has, read through the (verified) bastion.

    Read-only and separate from every other connection on purpose: for each type in SCANNED_KEY_TYPES it
    opens a channel through the bastion, completes the SSH key exchange offering only that type, takes the
    key the node proved it holds and closes. It never authenticates, opens no session, runs nothing, and
    stores no key: the caller shows them and writes them only when the operator says so. The bastion's own
    key is never read this way (``fleet.bastion()`` refuses an unpinned one). Raises OperationFailed naming
    the node when it cannot be reached or offers none of the types.
    """
    found: list[HostKey] = []
    for keytype in SCANNED_KEY_TYPES:
        key = _offered_key(fleet, node, keytype)
        if key is not None and all(k.blob_b64 != key.blob_b64 for k in found):  # rsa-sha2-512 is an ssh-rsa key
            found.append(key)
    if not found:
        raise OperationFailed(f"{node.name} ({node.host}:{node.port}): offers none of the host key types "
                              f"{', '.join(SCANNED_KEY_TYPES)}")  # fmt: skip
    return tuple(found)


def _offered_key(fleet: Fleet, node: Node, keytype: str) -> HostKey | None:
    timeout = fleet.settings.connect_timeout
    try:
        channel = fleet._bastion_conn().transport.open_channel(
            "direct-tcpip", (node.host, node.port), ("", 0), timeout=timeout
        )
    except (SSHException, OSError, EOFError) as exc:
        raise OperationFailed(f"{node.name} ({node.host}:{node.port}): cannot connect through the bastion: "
                              f"{exc or type(exc).__name__}") from None  # fmt: skip
    transport = paramiko.Transport(channel)
    try:
        transport.get_security_options().key_types = (keytype,)
        transport.start_client(timeout=timeout)  # key exchange only: no auth, no session
        key = transport.get_remote_server_key()
        return HostKey(key.get_name(), key.get_base64())
    except SSHException as exc:
        if "host key" in str(exc).lower() or "incompatible" in str(exc).lower():
            return None  # the node has no key of this type
        raise OperationFailed(f"{node.name} ({node.host}:{node.port}): key exchange failed: {exc}") from None
    except (OSError, EOFError) as exc:
        raise OperationFailed(f"{node.name} ({node.host}:{node.port}): key exchange failed: "
                              f"{exc or type(exc).__name__}") from None  # fmt: skip
    finally:
        transport.close()


# -- a command's output as it comes (nodeops logs) ---------------------------------------------------
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


# -- an interactive terminal on a node (nodeops shell) -------------------------------------------------
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
