"""Reaching a private host:port through the bastion's transport: one HTTP request, or a local tunnel.

Both open ``direct-tcpip`` channels on the bastion's (verified) connection, the Link a Fleet gives;
nothing listens anywhere but this process's loopback.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping

from paramiko.ssh_exception import SSHException

from nodeops.edges import http
from nodeops.edges.ssh.connection import Link
from nodeops.errors import OperationFailed


def request(bastion: Link, host: str, port: int, method: str, path: str, body: bytes | None = None,
            headers: Mapping[str, str] | None = None,
            timeout: float = http.HEALTH_TIMEOUT) -> http.Reply | None:  # fmt: skip
    """One HTTP/1.0 request to a private ``host:port`` over a channel through the bastion.

    ``body`` and ``headers`` travel inside the SSH channel, never in a
    process argument. Returns the reply, or None when nothing answers HTTP
    there: the bastion could not connect, or a published port accepted and
    then dropped the connection. That is how a standby without the lease looks.
    """
    transport = bastion._conn.transport
    try:
        channel = transport.open_channel("direct-tcpip", (host, port), ("", 0), timeout=timeout)
    except SSHException:  # refused, or no answer in time (a port being torn down drops SYNs)
        if transport.is_active():
            return None
        raise OperationFailed(f"bastion ({bastion._conn.target.address}): connection lost") from None
    channel.settimeout(timeout)
    try:
        return http.exchange(channel, host, port, method, path, body, headers)
    finally:
        channel.close()


@contextlib.contextmanager
def tunnel(bastion: Link, host: str, port: int) -> Iterator[int]:
    """A port on 127.0.0.1 whose connections are forwarded through the bastion to ``host:port``.

    For services on the private network the operator has no route to (the
    database). Only this process's loopback listens; it closes on exit.
    """
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    transport = bastion._conn.transport

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
