"""Each node's ``topology.json`` in cardano-node's peer-to-peer format, from a small typed description of the pool.

Who talks to whom (the stake pool operators' rule, developers.cardano.org docs/operate-a-stake-pool/ relay and block
producer configuration; DESIGN.md): a producer, active or standby, talks only to the pool's own relays (one local
root group of them, no public roots, no bootstrap peers, ``useLedgerAfterSlot`` -1: never peers from the ledger);
a relay keeps the pool's producers and the other relays as local roots (never advertised: a producer's address is
private) and the public peers the inventory gives as public roots, with its network's bootstrap peers and
``useLedgerAfterSlot``.

The format (IntersectMBO/cardano-node at 0a21a743, configuration/cardano/mainnet-topology.json; the fields,
developers.cardano.org docs/get-started/infrastructure/node/topology/): ``localRoots``, a list of groups
``{"accessPoints": [{"address", "port"}], "advertise", "trustable", "hotValency", "warmValency"}`` (``hotValency``
replaces the older ``valency``; ``warmValency`` defaults to it, recommended one more), ``publicRoots``
``[{"accessPoints", "advertise"}]``, ``bootstrapPeers`` (a list, or ``null``: none) and ``useLedgerAfterSlot``
(-1: never). A relay's network values (``NETWORK_PEERS``) are those of the published topology files
(input-output-hk/cardano-playground at c9f15e5b, static/book.play.dev.cardano.org/environments/{mainnet,preprod,
preview}/topology.json); the lab's network has no bootstrap peers and uses no ledger peers. The legacy format
(``Producers``) is not written: every supported node version reads this one. ``peerSnapshotFile`` (Genesis mode's
big-ledger peers) is not shipped: the relays sync from the bootstrap peers (Praos mode), as the operator docs
recommend for a pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

NEVER = -1  # useLedgerAfterSlot: do not use ledger peers


@dataclass(frozen=True)
class Peer:
    """A node's address (a host name or an IP address) and TCP port; ValueError for an empty address or a port
    outside 1..65535."""

    address: str
    port: int

    def __post_init__(self) -> None:
        if not self.address or not isinstance(self.address, str):
            raise ValueError("a peer's address must be a non-empty string")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"{self.address}: port {self.port!r} is not in 1..65535")

    def access_point(self) -> dict[str, Any]:
        """``{"address", "port"}`` as the topology writes an access point."""
        return {"address": self.address, "port": self.port}


@dataclass(frozen=True)
class NetworkPeers:
    """A network's defaults for a relay: its ``bootstrap`` peers and the slot after which it uses ledger peers."""

    bootstrap: tuple[Peer, ...]
    use_ledger_after_slot: int


NETWORK_PEERS = {
    "mainnet": NetworkPeers(
        tuple(
            Peer(f"backbone.{name}", 3001)
            for name in ("cardano.iog.io", "mainnet.cardanofoundation.org", "mainnet.emurgornd.com")
        ),
        177724800,
    ),  # fmt: skip
    "preprod": NetworkPeers((Peer("preprod-node.play.dev.cardano.org", 3001),), 112406400),
    "preview": NetworkPeers((Peer("preview-node.play.dev.cardano.org", 3001),), 102729600),
    "lab": NetworkPeers((), NEVER),
}


@dataclass(frozen=True)
class Pool:
    """One stake pool's nodes: ``relays`` and ``producers`` (the producer and its standby), each a tuple of
    ``(name, Peer)``, the ``public_peers`` its relays talk to beyond the pool, and its ``network`` (a key of
    NETWORK_PEERS). ValueError for no relay, no producer, a name used twice or an unknown network."""

    network: str
    relays: tuple[tuple[str, Peer], ...]
    producers: tuple[tuple[str, Peer], ...]
    public_peers: tuple[Peer, ...] = ()

    def __post_init__(self) -> None:
        if self.network not in NETWORK_PEERS:
            raise ValueError(f"unknown network {self.network!r}: one of {', '.join(NETWORK_PEERS)}")
        if not self.relays or not self.producers:
            raise ValueError("a pool has at least one relay and one producer")
        names = [name for name, _ in self.relays + self.producers]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"node names used twice: {', '.join(twice)}")

    def kind(self, name: str) -> str:
        """``relay`` or ``producer``; ValueError for a name that is not the pool's."""
        if name in dict(self.relays):
            return "relay"
        if name in dict(self.producers):
            return "producer"
        raise ValueError(f"{name!r} is not a node of this pool")


def _group(peers: list[Peer], trustable: bool) -> dict[str, Any]:
    count = len(peers)
    return {"accessPoints": [p.access_point() for p in peers], "advertise": False, "trustable": trustable,
            "hotValency": count, "warmValency": count}  # fmt: skip


def topology(pool: Pool, name: str) -> dict[str, Any]:
    """The topology document of node ``name`` of ``pool`` (the shape above); ValueError for a name not in it. A
    producer's: its pool's relays alone. A relay's: the producers (not trustable: a producer does not serve the
    chain to others before it is synced), the other relays (trustable) and the public peers. Pure."""
    if pool.kind(name) == "producer":
        return {"bootstrapPeers": None, "localRoots": [_group([p for _, p in pool.relays], trustable=True)],
                "publicRoots": [], "useLedgerAfterSlot": NEVER}  # fmt: skip
    network = NETWORK_PEERS[pool.network]
    groups = [_group([p for _, p in pool.producers], trustable=False)]
    others = [p for other, p in pool.relays if other != name]
    if others:
        groups.append(_group(others, trustable=True))
    public = [{"accessPoints": [p.access_point() for p in pool.public_peers], "advertise": False}]
    bootstrap = [p.access_point() for p in network.bootstrap] or None
    return {"bootstrapPeers": bootstrap, "localRoots": groups, "publicRoots": public if pool.public_peers else [],
            "useLedgerAfterSlot": network.use_ledger_after_slot}  # fmt: skip


def render(doc: dict[str, Any]) -> bytes:
    """The file's bytes: JSON, two spaces of indent, one newline at the end (as the published files)."""
    return (json.dumps(doc, indent=2) + "\n").encode()
