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

    label: str  # "bastion" (the one), "bastion NAME" (one of several) or the node name
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
    (``bastion_keys[name]`` per bastion, ``node_key``: from each bastion's ``identity_file`` and
    ``ssh.identity_file``, None when not set) and the host keys each host must show (``bastions[name]`` is a
    bastion's Target, ``target(node)`` a node's; ``bastion_of(node)`` names the bastion a node is reached through).

    Raises InventoryError naming the inventory file and the field when a private key or a known_hosts file
    cannot be read.
    """

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.node_key = self._load_identity(inventory.ssh.identity_file, "ssh.identity_file")
        self._known = self._load_known_hosts(inventory.ssh.known_hosts, "ssh.known_hosts")
        self.bastions: dict[str, Target] = {}
        self.bastion_keys: dict[str, paramiko.PKey | None] = {}
        for name, b in inventory.bastions.items():
            self.bastion_keys[name] = self._load_identity(b.identity_file, f"{b.where}.identity_file")
            known = self._load_known_hosts(b.known_hosts, f"{b.where}.known_hosts")
            label = "bastion" if b.where == "bastion" else f"bastion {name}"
            pinned = parse_pinned(b.host_keys) + self._lookup(known, b.host, b.port)
            self.bastions[name] = Target(label, b.host, b.port, b.user, pinned)

    def bastion_of(self, node: Node) -> str:
        """The name of the bastion ``node`` is reached through (its service's)."""
        return self.inventory.bastion_of(node.service).name

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
