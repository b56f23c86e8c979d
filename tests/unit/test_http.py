"""The HTTP edge against real servers on 127.0.0.1: any status is a reply, nothing answering is None."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from nodeops.edges import http


@contextlib.contextmanager
def server(reply: bytes, hold: bool = False) -> Iterator[tuple[int, list[bytes]]]:
    """One connection at a time on a free port: reads the request head (and what it says follows), writes ``reply``;
    with ``hold`` it then keeps the connection open without sending the rest (a body that never comes)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    got: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                    data += chunk
                length = next((int(v) for k, v in (h.split(b": ", 1) for h in data.split(b"\r\n")[1:] if b": " in h)
                               if k.lower() == b"content-length"), 0)  # fmt: skip
                while len(data.split(b"\r\n\r\n", 1)[1]) < length and (chunk := conn.recv(4096)):
                    data += chunk
                got.append(data)
                conn.sendall(reply)
                if hold:
                    stop.wait(3)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], got
    finally:
        stop.set()
        with contextlib.suppress(OSError):  # wakes the accept (a close alone leaves it blocked to its timeout)
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OK = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nSet-Cookie: s=1\r\n\r\nok"
DOWN = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown"


@pytest.mark.parametrize(("reply", "expected"), [(OK, (200, b"ok")), (DOWN, (503, b"down")), (b"SSH-2.0-x\r\n", None)])
def test_request_gives_any_status_as_a_reply_and_none_for_what_is_not_http(reply, expected):
    with server(reply) as (port, got):
        assert http.request(f"http://127.0.0.1:{port}/health", timeout=2) == expected
    assert got[0].startswith(b"GET /health HTTP/1.1\r\n")


def test_request_posts_data_with_its_headers():
    with server(OK) as (port, got):
        assert http.request(f"http://127.0.0.1:{port}/h", b'{"a":1}', {"Content-Type": "application/json"}, timeout=2)
    assert got[0].startswith(b"POST /h HTTP/1.1\r\n") and b"Content-Type: application/json\r\n" in got[0]
    assert got[0].endswith(b'\r\n\r\n{"a":1}')


def test_nothing_listening_is_none():
    port = free_port()
    assert http.request(f"http://127.0.0.1:{port}/", timeout=2) is None
    assert http.status(f"http://127.0.0.1:{port}/", 2) is None


@pytest.mark.parametrize(("reply", "expected"), [(OK, 200), (DOWN, 503)])
def test_status_is_the_status_alone(reply, expected):
    with server(reply) as (port, _):
        assert http.status(f"http://127.0.0.1:{port}/", http.PROBE_TIMEOUT) == expected


def test_status_does_not_wait_for_a_body_that_never_comes_and_request_does():
    """The outage probe counts a 200 as soon as its head arrives (as deploy's probe always did)."""
    head = b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n"
    with server(head, hold=True) as (port, _):
        assert http.status(f"http://127.0.0.1:{port}/", 0.3) == 200
    with server(head, hold=True) as (port, _):
        assert http.request(f"http://127.0.0.1:{port}/", timeout=0.3) is None  # the body's read timed out


def test_exchange_speaks_http_1_0_over_a_stream_it_is_given():
    with server(OK) as (port, got), socket.create_connection(("127.0.0.1", port), timeout=2) as stream:
        reply = http.exchange(
            stream, "10.0.0.5", 6688, "POST", "/sessions", b"{}", {"Content-Type": "application/json"}
        )
    assert (reply.status, reply.body, reply.headers["set-cookie"]) == (200, b"ok", "s=1")
    assert got == [b"POST /sessions HTTP/1.0\r\nHost: 10.0.0.5:6688\r\nConnection: close\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"]  # fmt: skip


def test_exchange_is_none_when_what_answers_is_not_http():
    with server(b"garbage\r\n\r\n") as (port, _), socket.create_connection(("127.0.0.1", port), timeout=2) as stream:
        assert http.exchange(stream, "h", 1, "GET", "/") is None
