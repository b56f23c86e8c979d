"""One SSH connection whose host key is checked against pinned keys only, and the Link that the rest
of nodeops holds instead of it.

Fabric hard-codes AutoAddPolicy and never loads known_hosts: here every client, the bastion's included,
gets the pinned keys and a policy that refuses any other before it opens.
"""

from __future__ import annotations

import functools
import logging
import socket

import paramiko
from fabric import Config, Connection
from paramiko.ssh_exception import BadHostKeyException, SSHException

from nodeops.edges.ssh.keys import Target
from nodeops.errors import HostKeyRejected

# paramiko logs refused channels and failed handshakes at ERROR; each failure is
# reported once, by host, by the caller. Without a handler, Python's last-resort
# one would print them raw on stderr.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


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


# Offered first: with an AEAD cipher a packet carries no HMAC, which paramiko computes with Python's hmac for each
# packet it sends and compares byte by byte in Python for each it reads (6.8 us a packet read, 1.2 us sent, against
# AES-GCM's tag in cryptography; about 48 packets a host over both legs of a `true`). Both are OpenSSH's since 6.2;
# every cipher paramiko offers by default is still offered after them, in its order, for a server without them.
_AEAD_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _transport(sock, **kwargs) -> paramiko.Transport:
    """paramiko's Transport with AES-GCM offered first (SSHClient.connect's ``transport_factory``; the order is
    set through the Transport's SecurityOptions, paramiko's documented way to change it before the session)."""
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    options.ciphers = _AEAD_FIRST + tuple(c for c in options.ciphers if c not in _AEAD_FIRST)
    return transport


@functools.cache
def _config() -> Config:
    """One Fabric Config for every connection of the process (building one reads the system's and the user's
    Fabric files and merges them: about 0.3 ms a connection). A Connection only reads it: every attribute it
    sets is a real one (PinnedConnection's __setattr__), never a config key."""
    return Config(ssh_config=paramiko.SSHConfig())  # never read ~/.ssh/config


class PinnedConnection(Connection):
    """A Fabric Connection that verifies the host key against pinned keys only.

    With ``via`` set, the socket is a direct-tcpip channel on ``via``'s
    (already open) transport, opened with a timeout; Fabric's own gateway
    code would wait up to an hour for a dead node.
    """

    # Real attributes: invoke's DataProxy would store an attribute it does not find on the class into the config
    # (the Config is shared: _config), and it tells which are real by calling dir() on every set.
    target: Target | None = None
    inline_ssh_env: bool | None = None  # set by Fabric's Connection.__init__

    def __setattr__(self, key: str, value) -> None:
        if key in _REAL_ATTRIBUTES:  # what DataProxy.__setattr__ does for them, without its dir() per set
            object.__setattr__(self, key, value)
        else:
            super().__setattr__(key, value)

    def __init__(
        self, target: Target, pkey: paramiko.PKey | None, timeout: float, via: PinnedConnection | None = None
    ) -> None:
        config = _config()
        connect_kwargs = {
            "allow_agent": False,
            "look_for_keys": False,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            "transport_factory": _transport,
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


_REAL_ATTRIBUTES = frozenset(dir(PinnedConnection))


class Link:
    """An open SSH connection to one host (the bastion or a node), as the rest of nodeops holds it: given to
    execute, stream, interactive or Session, and ``label`` names its host ("bastion" or the node's name).
    Fabric's Connection under it stays in this package (nodeops.edges.ssh)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: PinnedConnection) -> None:
        self._conn = conn

    @property
    def label(self) -> str:
        return self._conn.target.label
