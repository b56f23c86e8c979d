"""Reading the host keys a node offers, through the verified bastion (nodeops hostkeys)."""

from __future__ import annotations

import paramiko
from paramiko.ssh_exception import SSHException

from nodeops.edges.ssh.fleet import Fleet
from nodeops.errors import OperationFailed
from nodeops.inventory import HostKey, Node

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
        channel = fleet._bastion_conn(fleet.keys.bastion_of(node)).transport.open_channel(
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
