"""The one place that touches hosts: SSH through the bastion, host keys pinned.

Shape of a run: open the bastion once (its key verified), then open every node
connection as a ``direct-tcpip`` channel multiplexed over that single bastion
transport, so a fan-out costs one bastion login however many nodes there are
and sshd's MaxStartups on the bastion never comes into play. Every client,
the bastion's included, has its host keys loaded from the inventory and a
policy that refuses unknown keys: Fabric's AutoAddPolicy is replaced before
any connection is opened, and no system known_hosts file is consulted.

The only package that imports Fabric, paramiko or Invoke; the rest of nodeops imports from here. One job a module:

- ``keys``: each host's Target (address, pinned host keys) and the private keys, read from the inventory (Keyring)
- ``connection``: PinnedConnection (Fabric's Connection, unpinned keys refused) and the Link callers hold
- ``fleet``: Fleet, the bastion and the node connections: opened with retries, fanned out (Outcome), closed
- ``forward``: one HTTP request, or a local tunnel, to a private host:port through the bastion
- ``command``: a command on a Link: once (execute, CommandResult) or kept running (Session)
- ``streams``: a command's output as it comes (stream), a terminal wired to one (interactive)
- ``scan``: the host keys a node offers (scan_host_keys)
"""

from nodeops.edges.ssh.command import CommandResult, Session, execute
from nodeops.edges.ssh.connection import Link, PinnedConnection
from nodeops.edges.ssh.fleet import Fleet, Outcome
from nodeops.edges.ssh.keys import Keyring, Target, known_hosts_name, parse_pinned
from nodeops.edges.ssh.scan import SCANNED_KEY_TYPES, scan_host_keys
from nodeops.edges.ssh.streams import interactive, stream

__all__ = [
    "SCANNED_KEY_TYPES",
    "CommandResult",
    "Fleet",
    "Keyring",
    "Link",
    "Outcome",
    "PinnedConnection",
    "Session",
    "Target",
    "execute",
    "interactive",
    "known_hosts_name",
    "parse_pinned",
    "scan_host_keys",
    "stream",
]
