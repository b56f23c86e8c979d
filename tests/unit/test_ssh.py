"""The transport's pure edges: what is retried, how keys are named and pinned."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import paramiko
import pytest
from fabric import Config
from paramiko.ssh_exception import ChannelException, NoValidConnectionsError, SSHException

from nodeops.edges.ssh import Fleet, Link, PinnedConnection, Target, execute, parse_pinned
from nodeops.edges.ssh.command import Deadlines
from nodeops.edges.ssh.fleet import _is_transient
from nodeops.errors import HostKeyRejected, OperationFailed
from nodeops.inventory import HostKey, parse_inventory

KEY = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIAexdbHB36tcwydKJhbUhZib3vTlDloQOUKT1P7lVkKp")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ChannelException(2, "Connect failed"), True),
        (SSHException("Error reading SSH protocol banner[Errno 104] Connection reset by peer"), True),
        (EOFError(), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (NoValidConnectionsError({("10.0.0.1", 22): OSError("refused")}), True),
        (paramiko.AuthenticationException("Authentication failed."), False),
        (SSHException("No existing session"), False),
        (HostKeyRejected("a", "h:22", "ssh-ed25519 SHA256:x", "is not pinned"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_transient_failures_are_retried(exc, transient):
    assert _is_transient(exc) is transient


@pytest.mark.parametrize(("port", "name"), [(22, "10.0.0.1"), (2222, "[10.0.0.1]:2222")])
def test_pins_are_stored_under_the_known_hosts_name(port, name):
    target = Target("a", "10.0.0.1", port, "root", parse_pinned([KEY]))
    conn = PinnedConnection(target, None, 5)
    assert target.key_name == name
    assert conn.client.get_host_keys().lookup(name)["ssh-ed25519"].get_base64() == KEY.blob_b64
    policy = conn.client._policy
    assert not isinstance(policy, paramiko.AutoAddPolicy)
    assert len(conn.client._system_host_keys) == 0
    with pytest.raises(HostKeyRejected) as err:
        policy.missing_host_key(conn.client, name, parse_pinned([KEY])[0])
    assert "a (10.0.0.1:" in str(err.value) and "is not pinned" in str(err.value)


def test_agent_forwarding_agent_keys_and_the_users_ssh_config_are_off(tmp_path, monkeypatch):
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        "Host *\n  HostName elsewhere.invalid\n  User mallory\n  ForwardAgent yes\n  ProxyJump x\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    conn = PinnedConnection(Target("a", "10.0.0.1", 22, "root", ()), None, 5)
    assert (conn.host, conn.user, conn.forward_agent, conn.gateway) == ("10.0.0.1", "root", False, None)
    assert conn.connect_kwargs["allow_agent"] is False and conn.connect_kwargs["look_for_keys"] is False


def test_connections_share_one_fabric_config_and_keep_their_own_host_user_port_and_pins():
    """The Config is built once (reading Fabric's files and merging them was a third of a node's set-up CPU); no
    connection may leave anything of its own in it, or the next would connect to its host or accept its keys."""
    other = HostKey("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIHKgpdfWH5d/ClKdxgSX3kHv3FdFRdi+/B0CznbKwG0v")
    a = PinnedConnection(Target("a", "10.0.0.1", 22, "root", parse_pinned([KEY])), None, 5)
    before = a.config._config.copy()
    b = PinnedConnection(Target("b", "10.0.0.2", 2222, "ops", parse_pinned([other])), None, 0.5)
    assert a.config is b.config and b.config._config == before
    assert before == Config(ssh_config=paramiko.SSHConfig())._config  # as built: no connection changed it
    assert [(c.target.label, c.host, c.user, c.port, c.connect_timeout) for c in (a, b)] == [
        ("a", "10.0.0.1", "root", 22, 5),
        ("b", "10.0.0.2", "ops", 2222, 0.5),
    ]
    assert a.client.get_host_keys().lookup("10.0.0.1")["ssh-ed25519"].get_base64() == KEY.blob_b64
    assert a.client.get_host_keys().lookup("[10.0.0.2]:2222") is None
    assert b.client.get_host_keys().lookup("[10.0.0.2]:2222")["ssh-ed25519"].get_base64() == other.blob_b64


@pytest.fixture
def silent_sshd():
    """A real listening socket on 127.0.0.1 that accepts and never sends a byte (a hung sshd): its port, and the
    connections it accepted."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])  # kept open, never written to
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=5)
    server.close()
    for conn in accepted:
        conn.close()


SILENT = (
    "no SSH banner within 0.3s: the port accepted the connection but sent nothing (sshd hung or overloaded, "
    "or not sshd)"
)


@pytest.mark.parametrize("banner_timeout", [0.2, 5.0], ids=["banner-read-first", "negotiation-wait-first"])
def test_a_silent_peer_is_a_timeout_whichever_of_paramikos_timeouts_ends_first(silent_sshd, banner_timeout):
    """paramiko waits for the negotiation (connect_timeout) and reads the banner (banner_timeout); when the wait
    ended first it went on silently and failed with "No existing session", which was not retried."""
    port, _ = silent_sshd
    conn = PinnedConnection(Target("a", "127.0.0.1", port, "root", parse_pinned([KEY])), None, 0.3)
    conn.connect_kwargs["banner_timeout"] = banner_timeout
    try:
        with pytest.raises(TimeoutError) as err:
            conn.open()
    finally:
        conn.client.close()
    assert str(err.value) == SILENT and _is_transient(err.value)


def test_an_sshd_that_never_sends_its_banner_is_retried_and_named(tmp_path, silent_sshd):
    """Through the Fleet, as every command connects: retried connect_retries times like a dropped banner, and the
    message says what happened."""
    port, accepted = silent_sshd
    inventory = parse_inventory(
        f"""environment: t
bastion: {{host: 127.0.0.1, port: {port}, user: root, host_key: "{KEY.line}"}}
ssh: {{user: root, connect_timeout: 0.3, connect_retries: 2}}
services:
  cl1:
    role: chainlink
    image: smartcontract/chainlink:2.10.0
    nodes: [{{name: a, host: 10.0.0.1, preferred: active, host_key: "{KEY.line}"}}]
""",
        Path(tmp_path / "t.yaml"),
    )
    with pytest.raises(OperationFailed) as err, Fleet(inventory):
        pass
    assert str(err.value) == f"bastion (127.0.0.1:{port}): cannot connect after 3 attempt(s): {SILENT}"
    assert len(accepted) == 3


class _FreezingServer(paramiko.ServerInterface):
    """Accepts any public key; answers session requests until ``frozen`` is set, then never again (a host whose
    network went away: its connection stays open and nothing comes back)."""

    def __init__(self) -> None:
        self.frozen = threading.Event()
        self.release = threading.Event()
        self.ciphers: tuple[str, ...] | None = None  # what the server accepts (None: paramiko's defaults)

    def get_allowed_auths(self, _username):
        return "publickey"

    def check_auth_publickey(self, _username, _key):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, _kind, _chanid):
        if self.frozen.is_set():
            self.release.wait(30)  # bounded: the test ends it
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        if command == b"hang":  # runs until the client gives up
            return True

        def done() -> None:  # after the reply to this request: the command "ran", exit 0, end of output
            channel.send_exit_status(0)
            channel.close()

        threading.Timer(0.05, done).start()
        return True


@pytest.fixture
def freezing_sshd():
    """A real SSH server (paramiko's) on 127.0.0.1: yields (its Target, the client key, the server's interface)."""
    host_key, client_key = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    listener = socket.create_server(("127.0.0.1", 0))
    server, transports = _FreezingServer(), []

    def serve() -> None:
        sock, _ = listener.accept()
        transport = paramiko.Transport(sock)
        if server.ciphers:
            transport.get_security_options().ciphers = server.ciphers
        transport.add_server_key(host_key)
        transport.start_server(server=server)
        transports.append(transport)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    target = Target("a", "127.0.0.1", listener.getsockname()[1], "root", (host_key,))
    yield target, client_key, server
    server.release.set()
    thread.join(timeout=5)
    for transport in transports:
        transport.close()
    listener.close()


def test_a_command_on_a_host_gone_silent_fails_after_the_connect_timeout_not_the_command_timeout(freezing_sshd):
    """Opening a session is one request and its reply: on a host cut off mid-run, each command after the first
    fails after ssh.connect_timeout (0.5 s here), not after the command's own timeout (30 s), which a restore path
    that meets that host several times would otherwise pay each time."""
    target, client_key, server = freezing_sshd
    conn = PinnedConnection(target, client_key, 0.5)
    try:
        conn.open()
        assert execute(Link(conn), "true", timeout=30).exit_code == 0  # the session opens while the host answers
        server.frozen.set()
        started = time.monotonic()
        with pytest.raises(OperationFailed, match=r"^a: cannot open a session: "):
            execute(Link(conn), "true", timeout=30)
        assert time.monotonic() - started < 10  # the connect timeout ended the wait, not the command's 30 s
    finally:
        conn.close()


def test_a_command_past_its_timeout_is_closed_and_named(freezing_sshd):
    """The deadline closes the channel of a command that outlives ``timeout``; the caller is told which host."""
    target, client_key, _ = freezing_sshd
    conn = PinnedConnection(target, client_key, 5)
    try:
        conn.open()
        with pytest.raises(OperationFailed, match=r"^a: command timed out after 0.3s$"):
            execute(Link(conn), "hang", timeout=0.3)
        assert execute(Link(conn), "true", timeout=30).exit_code == 0  # the connection itself is still fine
    finally:
        conn.close()


def test_deadlines_run_each_due_action_once_in_order_never_a_cancelled_one_on_one_thread():
    """A threading.Timer per command was a thread per command (0.3 ms of CPU of a 2 ms command): one serves all."""
    deadlines, ran, last = Deadlines(), [], threading.Event()

    def threads() -> set[threading.Thread]:  # by name: another test's threads may end meanwhile (xdist, load)
        return {t for t in threading.enumerate() if t.name == "nodeops deadlines"}

    before = threads()
    late = deadlines.start(1.2, lambda: (ran.append("late"), last.set()))
    early = deadlines.start(0.05, lambda: ran.append("early"))
    dropped = deadlines.start(1.0, lambda: ran.append("cancelled"))  # cancelled long before it is due, even loaded
    deadlines.cancel(dropped)
    kept = [deadlines.start(600, lambda: ran.append("never")) for _ in range(50)]
    assert threads() - before == {deadlines._thread}  # one thread for the 53 deadlines
    assert last.wait(10)
    assert ran == ["early", "late"]
    assert (early.fired, late.fired, dropped.fired, any(d.fired for d in kept)) == (True, True, False, False)
    for d in kept:
        deadlines.cancel(d)


def test_a_deadline_whose_channel_died_does_not_stop_the_next():
    deadlines, done = Deadlines(), threading.Event()

    def dead_channel() -> None:
        raise EOFError  # paramiko, closing a channel whose connection is gone

    deadlines.start(0.01, dead_channel)
    deadlines.start(0.05, done.set)
    assert done.wait(10)


@pytest.mark.parametrize(
    ("server_ciphers", "agreed"),
    [
        (None, "aes128-gcm@openssh.com"),
        (("aes256-gcm@openssh.com", "aes128-ctr"), "aes256-gcm@openssh.com"),
        (("aes256-ctr", "aes128-ctr"), "aes128-ctr"),  # a server without AES-GCM: still reached, in our order
    ],
)
def test_aes_gcm_is_offered_first_and_every_default_cipher_still_is(freezing_sshd, server_ciphers, agreed):
    """AES-GCM carries no HMAC, which paramiko computes and compares in Python for every packet (docs/scaling.md)."""
    target, client_key, server = freezing_sshd
    server.ciphers = server_ciphers
    conn = PinnedConnection(target, client_key, 5)
    try:
        conn.open()
        offered = conn.transport.get_security_options().ciphers
        assert offered[:2] == ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
        assert sorted(offered) == sorted(paramiko.Transport._preferred_ciphers)
        assert (conn.transport.local_cipher, conn.transport.remote_cipher) == (agreed, agreed)
        assert execute(Link(conn), "true", timeout=30).exit_code == 0
    finally:
        conn.close()
