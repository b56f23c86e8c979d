"""What ``fab check`` and ``fab status`` read of a producer's KES standing: the node's metrics text parsed into its
KES facts, the time its certificate runs out, and the threshold check.

The metrics (IntersectMBO/cardano-node at 0a21a743): served by the ``PrometheusSimple`` backend at ``/metrics``
(the node configuration's ``TraceOptions``, config.py), named ``<TraceOptionMetricsPrefix><name>`` with ``.`` and
``-`` as ``_``, then ``_int`` for a gauge and ``_counter`` for a counter (``suffix``; nothing with ``nosuffix``):
cardano-tracer/src/Cardano/Tracer/Handlers/Metrics/Prometheus.hs. The KES ones, from
cardano-node/src/Cardano/Node/Tracing/Tracers/KESInfo.hs: ``currentKESPeriod``,
``operationalCertificateStartKESPeriod``, ``operationalCertificateExpiryKESPeriod`` (start + maxKESEvolutions),
``remainingKESPeriods`` (expiry - current; the node sets it and ``currentKESPeriod`` to 0 once its key cannot evolve:
Tracers/Consensus.hs, ``TraceForgeStateUpdateError``); ``forging_enabled`` (Tracers/Startup.hs, block forging
updates), ``blocksForged`` (Tracers/ForgingStats.hs), and the tip's ``slotNum``, ``blockNum``
(Tracers/ChainDB.hs). A node that holds no certificate (a relay, the standby) serves no KES metric.

The threshold: ``fab check`` fails when a certificate has ``DEFAULT_THRESHOLD`` (7) KES periods or fewer left
(issue 16: about 10 days on mainnet, 7 x 36 h = 10.5 days), and when it has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .periods import Genesis

PREFIX = "cardano_node_metrics_"
DEFAULT_THRESHOLD = 7
GAUGES = {"current": "currentKESPeriod", "start": "operationalCertificateStartKESPeriod",
          "expiry": "operationalCertificateExpiryKESPeriod", "remaining": "remainingKESPeriods",
          "forging": "forging_enabled", "blocks_forged": "blocksForged", "slot": "slotNum",
          "block": "blockNum"}  # fmt: skip


@dataclass(frozen=True)
class KesFacts:
    """A node's KES facts: ``current`` KES period, the certificate's ``start`` and ``expiry`` periods, the
    ``remaining`` periods, whether ``forging`` is enabled, ``blocks_forged`` since it started, and its tip's
    ``slot`` and ``block`` numbers; None for what the node did not report."""

    current: int | None
    start: int | None
    expiry: int | None
    remaining: int | None
    forging: bool
    blocks_forged: int
    slot: int | None
    block: int | None


def samples(text: str) -> dict[str, float]:
    """The samples of a Prometheus text exposition: metric name (labels dropped) -> value; comments and blank lines
    skipped. ValueError naming the line for one that is not ``name[{labels}] value [timestamp]``. Pure."""
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "{" in line:  # name{labels} value: labels may hold spaces
            head, _, tail = line.rpartition("}")
            name, fields = head.split("{", 1)[0], tail.split()
        else:
            name, *fields = line.split()
        try:
            found[name] = float(fields[0])
        except (ValueError, IndexError):
            raise ValueError(f"metrics line {number} is not 'name value': {line[:80]!r}") from None
    return found


def parse(text: str, prefix: str = PREFIX) -> KesFacts:
    """The KES facts of a node's metrics ``text`` (names with ``prefix``, with or without the ``_int`` suffix;
    ``blocksForged`` falls back on the ``Forge_forged`` counter). ValueError for a line that is not a sample."""
    values = samples(text)

    def gauge(name: str) -> int | None:
        for full in (f"{prefix}{name}_int", f"{prefix}{name}"):
            if full in values:
                return int(values[full])
        return None

    got = {field: gauge(name) for field, name in GAUGES.items()}
    forged = got["blocks_forged"]
    if forged is None:
        forged = next((int(values[n]) for n in (f"{prefix}Forge_forged_counter", f"{prefix}Forge_forged")
                       if n in values), 0)  # fmt: skip
    return KesFacts(got["current"], got["start"], got["expiry"], got["remaining"], bool(got["forging"]), forged,
                    got["slot"], got["block"])  # fmt: skip


def runs_out(genesis: Genesis, slot: int, remaining: int) -> datetime:
    """When a certificate with ``remaining`` KES periods left at ``slot`` stops being valid: the first slot of
    period ``kes_period(slot) + remaining`` begins (UTC), per the network's slot length and slotsPerKESPeriod."""
    return genesis.time_of((genesis.kes_period(slot) + remaining) * genesis.slots_per_kes_period)


@dataclass(frozen=True)
class Verdict:
    """A check's outcome: ``ok`` and the one-line ``message`` that says why."""

    ok: bool
    message: str


def check(facts: KesFacts, genesis: Genesis, threshold: int, rotate: str) -> Verdict:
    """The key holder's KES check: fails with no certificate reported, none left, or ``threshold`` periods or fewer
    left (naming when they run out and ``rotate``, the command that rotates); ok otherwise. Pure."""
    if facts.remaining is None or facts.slot is None:
        return Verdict(False, "the key holder reports no KES periods: no operational certificate is loaded")
    if facts.remaining == 0:
        return Verdict(False, f"the operational certificate (KES periods {facts.start}..{facts.expiry}) has "
                       f"expired: the node cannot forge; run {rotate}")  # fmt: skip
    when = runs_out(genesis, facts.slot, facts.remaining).strftime("%Y-%m-%d %H:%M:%S UTC")
    left = f"{facts.remaining} KES period{'s' if facts.remaining != 1 else ''} left, until {when}"
    if facts.remaining <= threshold:
        return Verdict(False, f"{left} (the threshold is {threshold}): run {rotate}")
    return Verdict(True, left)
