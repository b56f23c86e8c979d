"""HTTP: the one client for every request nodeops makes, and its one timeout policy.

A request travels one of two ways; either way nothing but a reply or None comes back, never an exception:
any status is a reply (a 503 from HAProxy: nobody healthy behind it), None means nothing answered HTTP
(refused, no route or name, a timeout, a broken reply).

- ``request`` and ``status``: directly from the operator's process, through urllib (proxies from the
  environment, redirects followed): a load balancer, a webhook;
- ``exchange``: one HTTP/1.0 request over a stream another edge opened: nodeops.edges.ssh's channel through
  the bastion to a node's private port (``Fleet.request``), which the operator has no route to.

The timeout policy: a timeout is seconds per socket operation (connect, each send, each read), not for a
whole exchange, and every call names one of these constants.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import BinaryIO, Protocol

# The outage probe's sample of a load balancer (nodeops.run.probe.OutageProbe): samples start every 100 ms, each in a
# thread; one stuck on a node going away must not hold a thread, nor the end of the measure, for long.
PROBE_TIMEOUT = 0.5
# A node's health path through the bastion: a node that holds the lease answers at once; silence this long
# is a standby (it opens no port before it holds the lease) or a node going away.
HEALTH_TIMEOUT = 2.0
# fab check's look at a load balancer: one request per service, not in a loop, so it may wait out a slow one.
ANSWER_TIMEOUT = 5.0
# The whole delivery of a notification (nodeops.notify waits this long, then goes on): the longest a webhook
# may delay a run.
WEBHOOK_TIMEOUT = 5.0
# A node's API in a rotation: a login and a password change each hash a password on the node (slow by design).
API_TIMEOUT = 15.0


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message  # case-insensitive: headers["Set-Cookie"]
    body: bytes = field(repr=False)


def request(url: str, data: bytes | None = None, headers: Mapping[str, str] | None = None,
            *, timeout: float) -> tuple[int, bytes] | None:  # fmt: skip
    """GET ``url`` (POST ``data`` when given, with ``headers``) from this process: (status, body), or None when
    nothing answered."""
    return _open(urllib.request.Request(url, data=data, headers=dict(headers or {})), timeout, read=True)


def status(url: str, timeout: float) -> int | None:
    """GET ``url`` from this process and give its status only (the body is not waited for), or None when
    nothing answered."""
    reply = _open(urllib.request.Request(url), timeout, read=False)
    return None if reply is None else reply[0]


def _open(req: urllib.request.Request, timeout: float, read: bool) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read() if read else b""
    except urllib.error.HTTPError as exc:  # a status other than 2xx: a reply all the same
        with exc:
            return exc.code, exc.read() if read else b""
    except (OSError, http.client.HTTPException):  # URLError is an OSError
        return None


class Stream(Protocol):
    """What ``exchange`` needs of an open stream (a socket, a paramiko channel)."""

    def sendall(self, data: bytes) -> None: ...

    def makefile(self, mode: str) -> BinaryIO: ...


class _SocketShim:
    """What http.client.HTTPResponse needs of a socket: makefile()."""

    def __init__(self, reply: BinaryIO) -> None:
        self.reply = reply

    def makefile(self, *_args, **_kwargs) -> BinaryIO:
        return self.reply


def exchange(stream: Stream, host: str, port: int, method: str, path: str, body: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> Reply | None:  # fmt: skip
    """One HTTP/1.0 request over ``stream`` (open, its timeout set by the caller, who closes it) to ``host:port``,
    and its reply read to the end; None when what answered was not HTTP or the stream broke."""
    fields = {"Host": f"{host}:{port}", "Connection": "close", **(headers or {})}
    if body is not None:
        fields["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    try:
        stream.sendall(head.encode() + (body or b""))
        with stream.makefile("rb") as reply:
            response = http.client.HTTPResponse(_SocketShim(reply))
            response.begin()
            return Reply(response.status, response.headers, response.read())
    except (OSError, http.client.HTTPException):
        return None
