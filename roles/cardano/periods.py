"""KES periods from a network's genesis parameters: the period of a slot, a certificate's valid window, the periods
it has left and the time it runs out; slots and times.

Rules (IntersectMBO/cardano-ledger at bbf77221, libs/cardano-protocol/src/Cardano/Protocol/TPraos/OCert.hs,
``kesPeriod``; the window, libs/cardano-protocol-tpraos/src/Cardano/Protocol/TPraos/Rules/OCert.hs and
ouroboros-consensus's Ouroboros.Consensus.Protocol.Praos ``doValidateKESSignature``): the KES period of slot ``s`` is
``s // slotsPerKESPeriod`` (the absolute slot, Byron's slots included); a certificate starting at period ``c0`` is
valid at period ``kp`` when ``c0 <= kp < c0 + maxKESEvolutions``, and its key then signs at evolution ``kp - c0``.
cardano-node's metrics count the same way (IntersectMBO/cardano-node at 0a21a743,
cardano-node/src/Cardano/Node/Tracing/Tracers/KESInfo.hs): ``operationalCertificateExpiryKESPeriod`` is ``c0 +
maxKESEvolutions`` and ``remainingKESPeriods`` is ``max 0 (expiry - current)``.

Slots and times: a network starts at its ``systemStart`` with Byron's 20-second slots (Byron genesis
``slotDuration`` 20000 ms, epochs of ``10 k`` = 21600 slots) until its Shelley hard fork, then slots of the Shelley
genesis ``slotLength``. The values, from each network's genesis files (IntersectMBO/cardano-node
configuration/cardano/mainnet-{byron,shelley}-genesis.json at 59af1b6d; input-output-hk/cardano-playground
static/book.play.dev.cardano.org/environments/{preprod,preview}/ at 3b3ebf8b):

========  ====================  ==========  ==================  ================  ==============================
network   systemStart           slotLength  slotsPerKESPeriod   maxKESEvolutions  Byron before Shelley
========  ====================  ==========  ==================  ================  ==============================
mainnet   2017-09-23T21:44:51Z  1 s         129600 (36 h)       62 (93 days)      208 epochs: 4492800 slots
preprod   2022-06-01T00:00:00Z  1 s         129600              62                4 epochs: 86400 slots
preview   2022-10-25T00:00:00Z  1 s         129600              62                none (TestShelleyHardForkAtEpoch 0)
========  ====================  ==========  ==================  ================  ==============================

The hard fork epochs of mainnet (208) and preprod (4) are not in a genesis file (an update proposal moved them):
they are the era boundaries the nodes report (``cardano-cli query era-history``; mainnet's Byron era ends at slot
4492800, 2020-07-29T21:44:51Z). The lab's fast clock is a Genesis of its own (``Genesis.from_shelley_genesis`` of
the lab's file, or its values): any slot length (0.2 s), a few slots per KES period, no Byron era. The lab network's
values are ``LAB_GENESIS``, in one place: ``lab_shelley_genesis`` writes them as the Shelley genesis file the lab's
chain service and node simulators read (lab/images/cardano-sim).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

BYRON_SLOT_LENGTH = Fraction(20)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Genesis:
    """A network's clock and KES parameters. ``slot_length`` and ``byron_slot_length`` in seconds (kept as exact
    fractions: a float 0.2 is 1/5); ``byron_slots``: the slots before the Shelley hard fork. ValueError for a
    start without a time zone or a parameter that is not positive."""

    name: str
    system_start: datetime
    slot_length: Fraction
    slots_per_kes_period: int
    max_kes_evolutions: int
    byron_slots: int = 0
    byron_slot_length: Fraction = BYRON_SLOT_LENGTH

    def __post_init__(self) -> None:
        if self.system_start.tzinfo is None:
            raise ValueError("system_start must carry a time zone")
        if self.slot_length <= 0 or self.slots_per_kes_period <= 0 or self.max_kes_evolutions <= 0:
            raise ValueError("slot_length, slots_per_kes_period and max_kes_evolutions must be positive")
        for name in ("slot_length", "byron_slot_length"):  # 0.2 as written, not its nearest binary fraction
            value = getattr(self, name)
            object.__setattr__(self, name, Fraction(str(value)) if isinstance(value, float) else Fraction(value))

    @classmethod
    def from_shelley_genesis(cls, name: str, doc: dict[str, Any], byron_slots: int = 0) -> Genesis:
        """The parameters of a Shelley genesis file's document (``systemStart``, ``slotLength``,
        ``slotsPerKESPeriod``, ``maxKESEvolutions``); ValueError naming a missing or wrong key."""
        try:
            start = datetime.fromisoformat(doc["systemStart"].replace("Z", "+00:00"))
            return cls(name, start, Fraction(str(doc["slotLength"])), int(doc["slotsPerKESPeriod"]),
                       int(doc["maxKESEvolutions"]), byron_slots)  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"not a Shelley genesis document: {type(err).__name__}: {err}") from None

    @property
    def shelley_start(self) -> datetime:
        """When the first Shelley slot (``byron_slots``) begins."""
        return self.system_start + _duration(self.byron_slots * self.byron_slot_length)

    def time_of(self, slot: int) -> datetime:
        """When ``slot`` begins (UTC)."""
        if slot < self.byron_slots:
            return self.system_start + _duration(slot * self.byron_slot_length)
        return self.shelley_start + _duration((slot - self.byron_slots) * self.slot_length)

    def slot_at(self, when: datetime) -> int:
        """The slot running at ``when`` (a time with a time zone, not before the system start)."""
        if when < self.system_start:
            raise ValueError(f"{when.isoformat()} is before the system start {self.system_start.isoformat()}")
        if when < self.shelley_start:
            return int((when - self.system_start) // _duration(self.byron_slot_length))
        elapsed = Fraction((when - self.shelley_start) // _MICROSECOND, 1_000_000)
        return self.byron_slots + int(elapsed // self.slot_length)

    def kes_period(self, slot: int) -> int:
        """The KES period of ``slot``: ``slot // slotsPerKESPeriod``."""
        return slot // self.slots_per_kes_period

    def window(self, slot: int, start: int) -> KesWindow:
        """Where a certificate starting at KES period ``start`` stands at ``slot``."""
        end = start + self.max_kes_evolutions
        return KesWindow(self.kes_period(slot), start, end, self.time_of(end * self.slots_per_kes_period))


def _duration(seconds: Fraction) -> timedelta:
    return timedelta(microseconds=round(Fraction(seconds) * 1_000_000))


@dataclass(frozen=True)
class KesWindow:
    """A certificate's standing: the ``current`` KES period, its ``start`` period, ``end`` (``start +
    maxKESEvolutions``: the first period it is no longer valid in, cardano-node's
    ``operationalCertificateExpiryKESPeriod``) and ``expires_at``, when the first slot of ``end`` begins."""

    current: int
    start: int
    end: int
    expires_at: datetime

    @property
    def valid(self) -> bool:
        """Whether the certificate is valid now: ``start <= current < end``."""
        return self.start <= self.current < self.end

    @property
    def remaining(self) -> int:
        """The periods left from the current one on, the current one included (cardano-node's
        ``remainingKESPeriods``: ``end - current``); 0 once expired."""
        return max(0, self.end - self.current)

    @property
    def evolution(self) -> int:
        """The evolution of the KES key that signs now: ``current - start``; ValueError outside the window."""
        if not self.valid:
            raise ValueError(f"KES period {self.current} is outside the certificate's {self.start}..{self.end - 1}")
        return self.current - self.start


NETWORKS = {
    "mainnet": Genesis(
        "mainnet", datetime(2017, 9, 23, 21, 44, 51, tzinfo=UTC), Fraction(1), 129600, 62, byron_slots=208 * 21600
    ),  # fmt: skip
    "preprod": Genesis("preprod", datetime(2022, 6, 1, tzinfo=UTC), Fraction(1), 129600, 62, byron_slots=4 * 21600),
    "preview": Genesis("preview", datetime(2022, 10, 25, tzinfo=UTC), Fraction(1), 129600, 62),
}

# The lab network (lab/images/cardano-sim: its chain service and node simulators read a Shelley genesis file of these
# values): 0.2 s slots, a KES period every 10 slots (2 s), a certificate valid for 30 periods (60 s: long enough for a
# deploy, short enough to run out in a test), epochs of 100 slots, and the pool leading half of the slots
# (``activeSlotsCoeff``, the chain service's leader share: one pool, so a block about every 0.4 s).
LAB_GENESIS = {"slotLength": 0.2, "slotsPerKESPeriod": 10, "maxKESEvolutions": 30, "epochLength": 100,
               "activeSlotsCoeff": 0.5, "networkMagic": 42}  # fmt: skip


def lab_shelley_genesis(system_start: datetime) -> dict[str, Any]:
    """The lab network's Shelley genesis document (``LAB_GENESIS`` and ``systemStart``, written as a genesis file
    writes it: ``2026-12-01T08:00:00Z``, whole seconds) for a network starting at ``system_start`` (with a time
    zone). ``Genesis.from_shelley_genesis("lab", doc)`` reads it back."""
    start = system_start.astimezone(UTC).replace(microsecond=0)
    return {"systemStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"), **LAB_GENESIS}
