"""Who is who on SSH: each host's address and the host keys it must show, and the keys we log in with.

Read from the inventory (a node's ``host_key`` entries, then the ``known_hosts`` files it names); no
system known_hosts file and no ``~/.ssh`` is consulted.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.ssh_exception import SSHException

from nodeops.errors import InventoryError
from nodeops.inventory import HostKey, Inventory, Node


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


def parse_pinned(keys: Sequence[HostKey]) -> tuple[paramiko.PKey, ...]:
    return tuple(paramiko.PKey.from_type_string(k.keytype, base64.b64decode(k.blob_b64)) for k in keys)


class Keyring:
    """The keys a Fleet connects with, read from the inventory once: the private keys it logs in with
    (``bastion_key``, ``node_key``: from ``bastion.identity_file`` and ``ssh.identity_file``, None when not set)
    and the host keys each host must show (``bastion`` is the bastion's Target; ``target(node)`` a node's).

    Raises InventoryError naming the inventory file and the field when a private key or a known_hosts file
    cannot be read.
    """

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.bastion_key = self._load_identity(inventory.bastion.identity_file, "bastion.identity_file")
        self.node_key = self._load_identity(inventory.ssh.identity_file, "ssh.identity_file")
        self._known = self._load_known_hosts(inventory.ssh.known_hosts, "ssh.known_hosts")
        bastion_known = self._load_known_hosts(inventory.bastion.known_hosts, "bastion.known_hosts")
        b = inventory.bastion
        self.bastion = Target(
            "bastion", b.host, b.port, b.user, parse_pinned(b.host_keys) + self._lookup(bastion_known, b.host, b.port)
        )

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
        return Target(node.name, node.host, node.port, self.inventory.ssh.user, pinned)

    def pinned(self, node: Node) -> tuple[HostKey, ...]:
        """The host keys ``node`` must show: its ``host_keys`` in the inventory, then ``ssh.known_hosts``'s."""
        return tuple(HostKey(k.get_name(), k.get_base64()) for k in self.target(node).pinned)
