"""The transport's pure edges: what is retried, how keys are named and pinned."""

from __future__ import annotations

import paramiko
import pytest
from paramiko.ssh_exception import ChannelException, NoValidConnectionsError, SSHException

from nodeops.errors import HostKeyRejected
from nodeops.inventory import HostKey
from nodeops.remote import PinnedConnection, Target, _is_transient, parse_pinned

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
