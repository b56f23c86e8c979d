"""The Cardano role's code: what its role.yaml cannot say as data (nodeops.role_hooks, docs/roles.md).

Hooks: how the node writes its log (``log_level``), whether a reply to its metrics endpoint (the role's health path:
the node has no HTTP API) says it forges (``keys_in_use``), a promotion's outage in slots (``outage``), the
pool's facts and findings from those replies (``node_facts``, ``check_facts``: poolfacts.py), and the functions
its templates call (``TEMPLATE_FUNCTIONS``) to write the node's configuration (config.py), its topology
(topology.py) and the lab network's Shelley genesis file (periods.py), each from the modules beside this one,
never copied into Jinja. Facts from IntersectMBO/cardano-node at 0a21a743 and the lab's simulator
(lab/images/cardano-sim/README.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from fractions import Fraction
from typing import Any

from .config import genesis_hash, lab_genesis_file
from .config import node_config as _node_config
from .config import render as _render_config
from .issue import KesFence, KesRotation
from .kesinfo import DEFAULT_THRESHOLD, PREFIX, samples
from .periods import LAB_GENESIS, NETWORKS
from .poolfacts import DEFAULT_SLOT_LAG, check_facts, node_facts, whole  # noqa: F401 (hooks: the engine reads them)
from .topology import Peer, Pool
from .topology import render as _render_topology
from .topology import topology as _topology

NODE_TO_NODE = 3001  # role.yaml's ports.node-to-node and its command's --port: the port every peer is reached on

# The node's human log format (trace-dispatcher, ``Stdout HumanFormatUncoloured``):
# "[HOST:cardano.node.NAMESPACE:SEVERITY:THREAD] [YYYY-MM-DD HH:MM:SS.ss UTC] message"
_HUMAN = re.compile(r"^\[[^\]:]*:[^\]]*:(\w+):[^\]]*\]")
_LEVELS = {"alert": "critical", "emergency": "critical"}  # above Critical: counted as the engine's critical


def log_level(line: str) -> str | None:
    """The severity a line of the node's log was written at, lower case (Debug, Info, Notice, Warning, Error,
    Critical; Alert and Emergency as ``critical``); None for a line without the human format's header. Pure."""
    match = _HUMAN.match(line.strip())
    if not match:
        return None
    level = match[1].lower()
    return _LEVELS.get(level, level)


def keys_in_use(health_body: bytes) -> bool | None:
    """Whether a reply to /metrics says the node forges: its ``forging_enabled`` gauge (1: forging, 0: not, as the
    node sets it at start and at each SIGHUP, Tracers/Startup.hs); None when the reply has none or is no metrics
    text. Never raises."""
    try:
        values = samples(health_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    for name in (f"{PREFIX}forging_enabled_int", f"{PREFIX}forging_enabled"):
        if name in values:
            return values[name] != 0
    return None


def _slot_length(profile: str) -> Fraction | None:
    """The Shelley slot length of ``profile``'s network, in seconds (periods.NETWORKS, the lab's LAB_GENESIS); None
    for a profile that is no known network."""
    if profile == "lab":
        return Fraction(str(LAB_GENESIS["slotLength"]))
    network = NETWORKS.get(profile)
    return None if network is None else network.slot_length


def outage(seconds: float, profile: str) -> str | None:
    """A promotion's outage of ``seconds`` in slots of ``profile``'s network (mainnet, preprod, preview: 1 s; the
    lab: 0.2 s), ``"14 slots"``: its length in slots, rounded up (an upper bound, as the figure is), the figure
    taken to the millisecond; None for an unknown profile or a figure that is no number of seconds. The
    slots the pool led among them are its missed blocks (the chain's record says which). Pure."""
    length = _slot_length(profile)
    if length is None or not isinstance(seconds, int | float) or not 0 <= seconds < float("inf"):
        return None
    slots = math.ceil(Fraction(f"{seconds:.3f}") / length)
    return f"{slots} slot{'' if slots == 1 else 's'}"


def _start(system_start: str) -> datetime:
    """A genesis's ``systemStart`` (``2026-12-01T08:00:00Z``); ValueError for another text."""
    when = datetime.fromisoformat(system_start.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("a system start carries its time zone (Z)")
    return when


def lab_genesis(system_start: str) -> str:
    """The lab network's Shelley genesis file for a chain started at ``system_start``: the bytes the lab's chain
    service was started with (config.lab_genesis_file, the same function). ValueError for a bad time."""
    return lab_genesis_file(_start(system_start)).decode()


def node_config(network: str, kind: str, system_start: str = "") -> str:
    """The configuration file of a ``kind`` node of ``network`` (a profile: mainnet, preprod, preview or lab):
    config.node_config, metrics on every interface at 12798. The lab's names the hash of ``lab_genesis`` of
    ``system_start``, computed from the very bytes that file gets. ValueError for an unknown network or kind."""
    shelley = genesis_hash("Shelley", lab_genesis(system_start).encode()) if network == "lab" else ""
    return _render_config(_node_config(network, kind, shelley_hash=shelley)).decode()


def variable_problems(variables: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """The hook's (variable or path, problem with its fix) for each bad value among the pool's variables (the
    service's over role.yaml's defaults), checked as the inventory loads (review rev16c F7, F8): a ``SYSTEM_START``
    given that is no time with its zone (``lab_genesis``'s; an empty one is the lab template's to name), a
    ``PUBLIC_PEERS`` that is no list of ``{address, port}`` (topology.Peer's rules), a ``KES_PERIODS_MIN`` or
    ``SLOT_LAG_MAX`` that is no whole number (poolfacts.whole: check's thresholds). Pure."""
    start = variables.get("SYSTEM_START")
    if start:
        try:
            _start(str(start))
        except ValueError:
            yield "SYSTEM_START", (f"{start!r} is no time: set it to the lab chain's systemStart, with its zone "
                                   "(2026-12-01T08:00:00Z)")  # fmt: skip
    yield from _peer_problems(variables.get("PUBLIC_PEERS", []))
    for name, default, what in (("KES_PERIODS_MIN", DEFAULT_THRESHOLD, "the KES periods left at which fab check "
                                 "fails"), ("SLOT_LAG_MAX", DEFAULT_SLOT_LAG, "the slots a node may lag")):  # fmt: skip
        value = variables.get(name, default)
        if whole(value) is None:
            yield name, f"{value!r} is not a whole number: set it to 0 or more ({what}; default {default})"


def _peer_problems(peers: object) -> Iterable[tuple[str, str]]:
    example = "as {address: relays.example.org, port: 3001}"
    if not isinstance(peers, list):
        yield "PUBLIC_PEERS", f"{peers!r} is not a list: give the relays' public peers, each {example}"
        return
    for i, peer in enumerate(peers):
        if not isinstance(peer, Mapping) or not {"address", "port"} <= set(peer):
            yield f"PUBLIC_PEERS[{i}]", f"{peer!r} is not a mapping {{address, port}}: write it {example}"
        elif not isinstance(peer["address"], str) or not peer["address"]:
            yield f"PUBLIC_PEERS[{i}].address", f"{peer['address']!r} is no host name or address: give one, {example}"
        else:
            try:
                Peer(peer["address"], peer["port"])
            except ValueError:
                yield f"PUBLIC_PEERS[{i}].port", (f"{peer['port']!r} is not a port (1..65535): give the peer's "
                                                  f"node-to-node port, {example}")  # fmt: skip


def _peers(found: Iterable[Mapping[str, Any]], kind: str) -> tuple[tuple[str, Peer], ...]:
    return tuple((n["name"], Peer(n["host"], NODE_TO_NODE)) for n in found if n["kind"] == kind)


def topology(network: str, node: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]],
             public_peers: Iterable[Mapping[str, Any]] = ()) -> str:  # fmt: skip
    """``node``'s topology file (topology.py), the pool being ``nodes`` (the render's ``node``/``nodes``: ``name``,
    ``kind``, ``host``) on ``network``; ``public_peers``: the relays' public roots, each ``{address, port}`` (the
    variable PUBLIC_PEERS). A producer's names its pool's relays only. ValueError for a peer of a bad shape."""
    shown = list(nodes)
    public = tuple(Peer(p["address"], p["port"]) for p in public_peers)
    pool = Pool(network, _peers(shown, "relay"), _peers(shown, "producer"), public)
    return _render_topology(_topology(pool, node["name"])).decode()


TEMPLATE_FUNCTIONS = {"node_config": node_config, "topology": topology, "lab_genesis": lab_genesis}
ISSUERS = {"kes": KesRotation()}  # role.yaml rotation.kes: fab rotate-secrets --secret kes (issue.py)
CHAIN_FENCE = KesFence()  # promote-standby --force: rotation.kes for the standby, counter past the lost producer's
