"""The active producer's hot credentials, made in memory, and the node's command line.

The bundle: the three files ``cardano-node run`` reads to forge (``--shelley-kes-key``, ``--shelley-vrf-key``,
``--shelley-operational-certificate``: IntersectMBO/cardano-node at 0a21a743, cardano-node/src/Cardano/Node/
Parsers.hs), each the text envelope cardano-cli writes (envelope.py): a KES signing key generated in memory at its
evolution 0 (kes.py; a key file is read as evolution 0 of the certificate's start period: Protocol/Shelley.hs,
``readLeaderCredentialsSingleton``), the pool's VRF signing key, and the operational certificate the cold key signs
for that KES key with the counter and the current KES period (ocert.py, as ``cardano-cli node issue-op-cert``).
They exist as bytes in memory only: the engine uploads them 0400 to the holder's tmpfs and shreds them once the node
has read them (DESIGN.md). The cold key is used here and nowhere else, and is not kept.

The command line (Parsers.hs; the lab's simulator, lab/images/cardano-sim/README.md, reads the same flags): every
node ``run --config --topology --database-path --socket-path --host-addr --port``; the key holder alone the three
key flags with their tmpfs paths. The standby producer runs as a relay (no key flag): it holds nothing to forge with.
No secret is ever on the command line: only paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .envelope import certificate_file, kes_signing_key_file, vrf_signing_key_file
from .kes import SignKey
from .ocert import Certificate, ColdKey, issue

KES_KEY, VRF_KEY, CERTIFICATE = "kes.skey", "vrf.skey", "node.cert"


@dataclass(frozen=True)
class Paths:
    """Where the node finds its files, as the container sees them (absolute paths): ``config`` and ``topology``
    (rendered, public), ``database`` (the chain, the node's volume), ``socket`` (its local socket), ``keys`` (the
    holder's tmpfs folder for the three hot files). The defaults follow the official image's layout
    (IntersectMBO/cardano-node at 0a21a743, nix/docker/README.md: ``/data/db``, ``/ipc``, a custom configuration
    mapped at ``/config``); the keys folder is nodeops' own."""

    config: str = "/config/config.json"
    topology: str = "/config/topology.json"
    database: str = "/data/db"
    socket: str = "/ipc/node.socket"
    keys: str = "/run/cardano-keys"

    def key(self, name: str) -> str:
        """The path of hot file ``name`` (``kes.skey``, ``vrf.skey``, ``node.cert``) in the tmpfs folder."""
        return f"{self.keys.rstrip('/')}/{name}"


@dataclass(frozen=True)
class Bundle:
    """The holder's three files (``files``: name -> the bytes cardano-cli would write) and the ``certificate``
    they carry (public: its counter and start period are what the rotation records). The repr shows the
    certificate only."""

    files: dict[str, bytes] = field(repr=False)
    certificate: Certificate


def bundle(cold: ColdKey, vrf_signing_key: bytes, kes_key: SignKey, counter: int, kes_period: int) -> Bundle:
    """The hot credentials for a producer forging from ``kes_period`` on: ``kes_key`` (at its evolution 0, as a key
    file must be), ``vrf_signing_key`` (64 bytes) and the certificate ``cold`` issues for ``kes_key`` with
    ``counter``. ValueError for a KES key already evolved, a VRF key of another size or a field out of range; the
    counter's rules are the planner's (rotation.py), checked before this. Pure (the KES key comes in made)."""
    if kes_key.period != 0:
        raise ValueError(f"a KES key file holds the key at evolution 0, not {kes_key.period}")
    certificate = issue(cold, kes_key.verification_key, counter, kes_period)
    files = {
        KES_KEY: kes_signing_key_file(kes_key).encode(),
        VRF_KEY: vrf_signing_key_file(vrf_signing_key).encode(),
        CERTIFICATE: certificate_file(certificate).encode(),
    }
    return Bundle(files, certificate)


def node_args(paths: Paths, host_addr: str, port: int, holder: bool) -> list[str]:
    """``cardano-node``'s arguments: ``run`` with the files every node gets, listening on ``host_addr``:``port``,
    plus the three key flags when the node is the key ``holder`` (the active producer). Pure."""
    args = ["run", "--config", paths.config, "--topology", paths.topology, "--database-path", paths.database,
            "--socket-path", paths.socket, "--host-addr", host_addr, "--port", str(port)]  # fmt: skip
    if holder:
        args += ["--shelley-kes-key", paths.key(KES_KEY), "--shelley-vrf-key", paths.key(VRF_KEY),
                 "--shelley-operational-certificate", paths.key(CERTIFICATE)]  # fmt: skip
    return args
