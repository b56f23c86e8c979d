"""The node's configuration JSON per network (mainnet, preprod, preview, the lab) and the genesis files it names.

Sources: each network's published environment files, input-output-hk/cardano-playground at c9f15e5b,
static/book.play.dev.cardano.org/environments/<network>/ (``config.json`` for a relay, ``config-bp.json`` for a
block producer: they differ in ``PeerSharing``, on for relays and off for producers, whose addresses stay private,
and the producer's ``TargetNumberOfKnownPeers``/``TargetNumberOfRootPeers`` of 100); the new tracing system's keys
from IntersectMBO/cardano-node at 0a21a743, configuration/cardano/mainnet-config.json (``UseTraceDispatcher``,
``TraceOptions``, ``TraceOptionMetricsPrefix``; the ``PrometheusSimple [suffix] HOST PORT`` backend, documented in
mainnet-config.yaml, serves the metrics on 12798 with the names kesinfo.py reads).

Chosen here, against the published files: the metrics listen on ``0.0.0.0`` (the published 127.0.0.1 is the
container's own loopback: the monitoring host could not scrape it; the security group limits who can), the log is
``Stdout HumanFormatUncoloured`` (a container's log, no colour codes), and neither ``EKGBackend`` nor ``Forwarder``
is on (no cardano-tracer in the pool). ``ConsensusMode`` is ``PraosMode`` on every network: preprod and preview
publish ``GenesisMode``, which needs a big-ledger peer snapshot (``peerSnapshotFile``) that the role does not ship;
the relays sync from the networks' bootstrap peers instead (topology.py). ``EnableP2P`` is written as published
(nodes from 10.x only run peer-to-peer and ignore it). ``LedgerDB`` is left to the node's defaults.

The genesis files reach the node as role data: ``genesis/<network>/`` holds them with the bytes upstream publishes
(the same folder and commit); the engine uploads them next to the configuration, which names them by their file
names (relative to the configuration's folder, as the node reads them). Their hashes are checked before anything
is rendered (``check_genesis``): Blake2b-256 of the file's bytes for the Shelley, Alonzo and Conway files and the
checkpoints; of the canonical JSON of the document for Byron's (cardano-ledger's Byron ``GenesisHash``: keys
sorted, no spaces), exactly what the node compares with ``<Era>GenesisHash`` at start. The lab's network has
one genesis file, its Shelley one, made from periods.LAB_GENESIS for each lab (``lab_genesis_file``): the lab's
simulator reads nothing else; a real node would need the other eras' files too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nodeops.errors import InvalidInput

from .periods import lab_shelley_genesis

GENESIS_FOLDER = Path(__file__).resolve().parent / "genesis"
METRICS_PORT = 12798
ERAS = ("Byron", "Shelley", "Alonzo", "Conway")
PUBLISHED_ALONZO = "7e94a15f55d1e82d10f09203fa1d40f8eede58fd8066542cf6566008068ed874"  # the same on all three


@dataclass(frozen=True)
class Network:
    """A network's published values: ``magic`` (``RequiresNetworkMagic``), ``block_version`` (the
    ``LastKnownBlockVersion-Major/-Minor/-Alt``), ``hashes`` (era -> the genesis hash the published configuration
    gives), ``checkpoints`` (its checkpoints file's hash, or empty: none), and ``extra`` keys it publishes."""

    magic: str
    block_version: tuple[int, int, int]
    hashes: dict[str, str]
    checkpoints: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


NETWORKS = {
    "mainnet": Network("RequiresNoMagic", (3, 0, 0), {
        "Byron": "5f20df933584822601f9e3f8c024eb5eb252fe8cefb24d1317dc3d432e940ebb",
        "Shelley": "1a3be38bcbb7911969283716ad7aa550250226b76a61fc51cc9a9a35d9276d81",
        "Alonzo": PUBLISHED_ALONZO,
        "Conway": "15a199f895e461ec0ffc6dd4e4028af28a492ab4e806d39cb674c88f7643ef62",
    }, "3e6dee5bae7acc6d870187e72674b37c929be8c66e62a552cf6a876b1af31ade", {"MaxKnownMajorProtocolVersion": 2}),
    "preprod": Network("RequiresMagic", (2, 0, 0), {
        "Byron": "d4b8de7a11d929a323373cbab6c1a9bdc931beffff11db111cf9d57356ee1937",
        "Shelley": "162d29c4e1cf6b8a84f2d692e67a3ac6bc7851bc3e6e4afe64d15778bed8bd86",
        "Alonzo": PUBLISHED_ALONZO,
        "Conway": "0eb6adaec3fcb1fe286c1b4ae0da2a117eafc3add51e17577d36dd39eddfc3db",
    }),
    "preview": Network("RequiresMagic", (3, 1, 0), {
        "Byron": "83de1d7302569ad56cf9139a41e2e11346d4cb4a31c00142557b6ab3fa550761",
        "Shelley": "363498d1024f84bb39d3fa9593ce391483cb40d479b87233f868d6e57c3a400d",
        "Alonzo": PUBLISHED_ALONZO,
        "Conway": "9cc5084f02e27210eacba47af0872e3dba8946ad9460b6072d793e1d2f3987ef",
    }, "bb5056ff1ced9d68dd99720695789664f6bf6f0cb02a4010df09b813e225ac51", {
        "ExperimentalHardForksEnabled": False, "ExperimentalProtocolsEnabled": False,
        **{f"Test{era}HardForkAtEpoch": 0 for era in ("Shelley", "Allegra", "Mary", "Alonzo")},
    }),
}  # fmt: skip
LAB_EXTRA = {f"Test{era}HardForkAtEpoch": 0 for era in ("Shelley", "Allegra", "Mary", "Alonzo")}

# cardano-node's mainnet-config.json (0a21a743): the per-namespace trace options as published
TRACE_OPTIONS = {
    "BlockFetch.Client.CompletedBlockFetch": {"maxFrequency": 2.0}, "BlockFetch.Decision": {"severity": "Info"},
    "ChainDB": {"severity": "Info"}, "ChainDB.AddBlockEvent.AddBlockValidation": {"severity": "Silence"},
    "ChainDB.AddBlockEvent.AddBlockValidation.ValidCandidate": {"maxFrequency": 2.0},
    "ChainDB.AddBlockEvent.AddedBlockToQueue": {"maxFrequency": 2.0},
    "ChainDB.AddBlockEvent.AddedBlockToVolatileDB": {"maxFrequency": 2.0},
    "ChainDB.CopyToImmutableDBEvent.CopiedBlockToImmutableDB": {"maxFrequency": 2.0},
    "ChainDB.LedgerEvent.Forker": {"severity": "Silence"}, "ChainSync.Client": {"severity": "Warning"},
    "Forge.Loop": {"severity": "Info"}, "Forge.StateInfo": {"severity": "Info"}, "Mempool": {"severity": "Silence"},
    "Mempool.AttemptAdd": {"severity": "Silence"}, "Mempool.SyncNotNeeded": {"severity": "Silence"},
    "Net.ConnectionManager.Remote": {"severity": "Info"}, "Net.InboundGovernor": {"severity": "Warning"},
    "Net.InboundGovernor.Remote": {"severity": "Info"}, "Net.Mux.Remote": {"severity": "Info"},
    "Net.PeerSelection": {"severity": "Info"}, "Resources": {"severity": "Silence"},
    "Startup.DiffusionInit": {"severity": "Info"},
}  # fmt: skip


def file_name(era: str) -> str:
    """The genesis file of ``era`` as the published folders name it: ``byron-genesis.json``."""
    return f"{era.lower()}-genesis.json"


def genesis_hash(era: str, data: bytes) -> str:
    """The hash the node checks ``data`` (a genesis file's bytes) against: Blake2b-256 of the bytes, or for Byron
    of the document's canonical JSON (sorted keys, no spaces). ValueError for a Byron file that is not JSON."""
    if era == "Byron":
        data = json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def genesis_files(network: str, folder: Path = GENESIS_FOLDER) -> dict[str, bytes]:
    """The files the node of ``network`` reads besides its configuration and topology: file name -> bytes, from
    ``folder/<network>/``, each checked against its published hash (``check_genesis``)."""
    spec = NETWORKS[network]
    names = [file_name(era) for era in ERAS] + (["checkpoints.json"] if spec.checkpoints else [])
    files = {}
    for name in names:
        path = folder / network / name
        try:
            files[name] = path.read_bytes()
        except OSError as err:
            raise InvalidInput(f"{path}: cannot read the {network} genesis file: {err.strerror}") from None
    check_genesis(network, files, folder / network)
    return files


def check_genesis(network: str, files: dict[str, bytes], where: Path | str) -> None:
    """InvalidInput (exit 2) naming the file and both hashes when a file of ``files`` is not the one ``network``
    publishes (a node would refuse to start with it); nothing otherwise. Pure."""
    spec = NETWORKS[network]
    expected = {file_name(era): (era, h) for era, h in spec.hashes.items()}
    if spec.checkpoints:
        expected["checkpoints.json"] = ("checkpoints", spec.checkpoints)
    for name, (era, want) in expected.items():
        try:
            got = genesis_hash(era, files[name])
        except (KeyError, ValueError):
            got = "missing or not JSON"
        if got != want:
            raise InvalidInput(f"{where}/{name}: its hash is {got}, the published {network} {era} genesis hash is "
                               f"{want}: restore the file as upstream publishes it")  # fmt: skip


def node_config(network: str, kind: str, metrics_host: str = "0.0.0.0", shelley_hash: str = "",
                metrics_port: int = METRICS_PORT) -> dict[str, Any]:  # fmt: skip
    """The configuration document of a ``kind`` (``relay`` or ``producer``: the producer and its standby) node of
    ``network`` (a key of NETWORKS, or ``lab``: then ``shelley_hash`` is the hash of the lab's Shelley genesis file,
    ``lab_genesis_file``), serving its metrics on ``metrics_host``:``metrics_port``. ValueError for an unknown
    network or kind. Pure."""
    if kind not in ("relay", "producer"):
        raise ValueError(f"unknown node kind {kind!r}: relay or producer")
    if network == "lab":
        doc: dict[str, Any] = {"Protocol": "Cardano", "RequiresNetworkMagic": "RequiresMagic",
                               "ShelleyGenesisFile": file_name("Shelley"), "ShelleyGenesisHash": shelley_hash,
                               **LAB_EXTRA}  # fmt: skip
    elif network in NETWORKS:
        spec = NETWORKS[network]
        doc = {"Protocol": "Cardano", "RequiresNetworkMagic": spec.magic}
        for era in ERAS:
            doc |= {f"{era}GenesisFile": file_name(era), f"{era}GenesisHash": spec.hashes[era]}
        if spec.checkpoints:
            doc |= {"CheckpointsFile": "checkpoints.json", "CheckpointsFileHash": spec.checkpoints}
        major, minor, alt = spec.block_version
        doc |= {"LastKnownBlockVersion-Major": major, "LastKnownBlockVersion-Minor": minor,
                "LastKnownBlockVersion-Alt": alt, **spec.extra}  # fmt: skip
    else:
        raise ValueError(f"unknown network {network!r}: one of {', '.join([*NETWORKS, 'lab'])}")
    doc |= {"ConsensusMode": "PraosMode", "EnableP2P": True, "PeerSharing": kind == "relay"}
    if kind == "producer":
        doc |= {"TargetNumberOfKnownPeers": 100, "TargetNumberOfRootPeers": 100}
    return doc | _tracing(metrics_host, metrics_port)


def _tracing(metrics_host: str, metrics_port: int) -> dict[str, Any]:
    backends = [f"PrometheusSimple suffix {metrics_host} {metrics_port}", "Stdout HumanFormatUncoloured"]
    return {"UseTraceDispatcher": True, "TurnOnLogging": True, "TurnOnLogMetrics": True,
            "TraceOptionMetricsPrefix": "cardano.node.metrics.", "TraceOptionResourceFrequency": 1000,
            "TraceOptions": {"": {"backends": backends, "detail": "DNormal", "severity": "Notice"}, **TRACE_OPTIONS},
            "defaultBackends": [], "defaultScribes": [], "minSeverity": "Critical", "options": {},
            "setupBackends": [], "setupScribes": []}  # fmt: skip


def lab_genesis_file(system_start: datetime) -> bytes:
    """The lab network's Shelley genesis file (periods.lab_shelley_genesis, two spaces of indent): its bytes, whose
    ``genesis_hash("Shelley", ...)`` the lab's configuration names."""
    return (json.dumps(lab_shelley_genesis(system_start), indent=2) + "\n").encode()


def render(doc: dict[str, Any]) -> bytes:
    """A configuration file's bytes: JSON, two spaces of indent, keys sorted (as the published files)."""
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
