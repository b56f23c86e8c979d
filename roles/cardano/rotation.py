"""KES rotation and forced promotion, planned before any host is touched, and their crash-safe protocol: what a rerun
does after a kill at any point so that one certificate is in force and the stored counter matches it.

Planning (``plan``, ``plan_forced``): the new certificate's counter and start KES period, or a refusal
(``IssueRefused``, exit 2, nothing touched) for a cold key that is not the pool's (its verification key's
Blake2b-224 hash is the pool id: cardano-cli ``stake-pool id``; IntersectMBO/cardano-ledger, ``hashKey`` of a
``KeyHash 'StakePool``, 28 bytes; the pool's: the one whose cold key signed the certificate in force,
``pool_in_force``), a reused counter or a skip of more than one. The next counter is the stored
counter plus one (cardano-cli's issue counter file holds that number: ``node issue-op-cert`` issues it and writes
it plus one), and it must be exactly the chain's counter plus one (ocert.check_counter: ``m <= n <= m + 1``, and
equal to ``m`` would not supersede the certificate in force). A forced promotion (the old producer lost) must also
supersede any certificate the lost producer may hold, a pending one included: the highest of them plus one.
The start period is the KES period of the current slot (periods.py), as ``cardano-cli query kes-period-info``
and the SPO guides (developers.cardano.org, "Rotate KES keys") take it.

The protocol, after AWS Secrets Manager's rotation (docs.aws.amazon.com/secretsmanager, "How rotation works":
``createSecret`` writes AWSPENDING, ``setSecret`` puts it in use, ``testSecret`` checks it, ``finishSecret`` moves
AWSCURRENT; each step can be rerun): the hot keys' secret (``pool/HotKeys``: the KES key and its certificate) holds
the certificate in force as AWSCURRENT and at most one new version as AWSPENDING; the issue counter's secret holds
the next number (``Stored``: the counter in force is that minus one). The new KES key is kept in AWSPENDING, in the
store where the hot keys always live, so a rerun after a kill pushes the same version again when a node runs it or
the chain took its counter; it issues the same counter again with a new key when the pending certificate's KES
window has passed, or when no node runs it yet and it starts before the clock's KES period (a kill, then a rerun
days later: pushed, it would have lost those days of its window). The same counter is safe to issue again only
while no node forges with it: the chain keeps the highest counter ``m`` it saw in the pool's blocks and takes a
header's counter ``n`` when ``m <= n <= m + 1`` (IntersectMBO/cardano-ledger,
libs/cardano-protocol-tpraos/src/Cardano/Protocol/TPraos/Rules/OCert.hs ``ocertTransition``, ``m <= n``; from
Babbage on, IntersectMBO/ouroboros-consensus, Ouroboros.Consensus.Protocol.Praos ``doValidateKESSignature``,
``n <= m + 1``; ocert.py), so a second certificate with the pending one's counter supersedes nothing: either would
be taken. ``STAGES``, in order (the engine's nodeops.rotate.issued runs them):

1. ``pending``: the new version (KES key and certificate) staged AWSPENDING, before any host is touched;
2. ``pushed``: the holder restarted in place onto it, the files on its tmpfs shredded once read (its container's
   label records the version it runs);
3. ``forging``: the holder's metrics show forging enabled with the pending certificate's start period, and the
   chain's counter for the pool is the new one;
4. ``stored``: the issue counter's secret moved on (the new counter plus one);
5. ``current``: AWSCURRENT moved onto the pending version, AWSPENDING removed.

``resume`` reads what is observed after a kill (``Observed``) and says what the rerun does (``Step``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from nodeops.errors import Unsafe

from .forging import IssueRefused
from .ocert import Certificate, CounterRefused, chain_counter, check_counter
from .periods import Genesis

POOL_ID_SIZE = 28
STAGES = ("pending", "pushed", "forging", "stored", "current")


def pool_id(cold_vk: bytes) -> bytes:
    """The pool id of a 32-byte cold verification key: its Blake2b-224 hash (28 bytes)."""
    return hashlib.blake2b(cold_vk, digest_size=POOL_ID_SIZE).digest()


def certificate_hash(certificate: Certificate) -> str:
    """The hex Blake2b-256 hash of the certificate's CBOR (its ``node.cert`` payload): how the store and the holder
    name a certificate."""
    return hashlib.blake2b(certificate.to_cbor(), digest_size=32).hexdigest()


@dataclass(frozen=True)
class Stored:
    """The certificate in force as the store records it (AWSCURRENT): its ``counter`` and hex ``certificate_hash``
    (empty before nodeops issued one: a pool seeded with its counter alone)."""

    counter: int
    certificate_hash: str = ""


@dataclass(frozen=True)
class Pending:
    """A rotation under way (AWSPENDING): the new ``counter``, its start ``kes_period`` and the new certificate's hex
    ``certificate_hash``."""

    counter: int
    kes_period: int
    certificate_hash: str


@dataclass(frozen=True)
class Issue:
    """What to issue: the certificate's ``counter`` and start ``kes_period``."""

    counter: int
    kes_period: int


def check_pool(cold_vk: bytes, pool: bytes, where: str) -> None:
    """IssueRefused (exit 2) unless ``cold_vk`` is the cold verification key of ``pool`` (its id, 28 bytes)."""
    if pool_id(cold_vk) != pool:
        raise IssueRefused(f"{where}: this cold key is not the pool's: its pool id is {pool_id(cold_vk).hex()}, "
                              f"the pool's {pool.hex()}")  # fmt: skip


def short(pool: bytes) -> str:
    """A pool id for a message: its first 8 hex digits (the whole id is 56)."""
    return pool.hex()[:8]


def pool_in_force(cold_vk: bytes, counter_vk: bytes, in_force: Certificate, cold: str, counter: str) -> bytes:
    """The pool id (28 bytes) a new certificate is issued for: that of the certificate in force (``in_force``, the
    holder's current ``op_cert``, a public value which the cold key's and the counter's secrets cannot replace
    together with them), once ``cold_vk`` is proven its pool's: the certificate's cold signature verifies with it,
    as the chain checks a header's (IntersectMBO/cardano-ledger,
    libs/cardano-protocol-tpraos/src/Cardano/Protocol/TPraos/Rules/OCert.hs ``ocertTransition``:
    ``verifySignedDSIGN vkcold (ocertToSignable ...) tau``, else ``InvalidSignatureOCERT``). IssueRefused (exit 2)
    for a cold key that is not the pool's (``cold``: its secret's name), or a counter file that records another cold
    key (``counter``: its secret's name), naming the secret, both pools (ids shortened) and the fix. Pure."""
    pool = pool_id(in_force.cold_vk)
    if in_force.cold_vk != cold_vk or not in_force.verify(cold_vk):
        raise IssueRefused(f"secret {cold}: this cold key is not the pool's: it is pool {short(pool_id(cold_vk))}'s, "
                           f"the pool deployed is {short(pool)} (the certificate in force, op_cert, is not signed by "
                           f"it); point {cold} and {counter} at the deployed pool's cold key and issue counter, "
                           "then rerun")  # fmt: skip
    if counter_vk != cold_vk:
        raise IssueRefused(f"secret {counter}: this issue counter is pool {short(pool_id(counter_vk))}'s, not the "
                           f"deployed pool {short(pool)}'s; point {counter} at the deployed pool's issue counter, "
                           "then rerun")  # fmt: skip
    return pool


def issue_slot(genesis: Genesis, tip: int, now: datetime) -> int:
    """The slot a new certificate is issued for: the one running at ``now`` (a time with a time zone) by
    ``genesis``'s clock, Byron's slots included: the slot being forged, whatever the chain's ``tip`` (the SPO guides
    compute the start period from the current slot: developers.cardano.org, "Rotate KES keys"). A tip behind it (a
    node not synced; in the lab, a chain whose one forger stopped) does not change the certificate. IssueRefused
    (exit 2) when the tip is ahead of it by more than a KES period: the operator's clock is wrong. Pure."""
    slot = genesis.slot_at(now)
    if tip - slot > genesis.slots_per_kes_period:
        period = genesis.slots_per_kes_period
        raise IssueRefused(f"the node's tip is slot {tip}, ahead of this machine's clock's slot {slot} by more than "
                           f"a KES period ({period} slots): set its clock right (NTP) and rerun")  # fmt: skip
    return slot


def plan(genesis: Genesis, slot: int, on_chain: int | None, stored: Stored, cold_vk: bytes, pool: bytes,
         where: str, counted: str) -> Issue:  # fmt: skip
    """The next certificate of a KES rotation at ``slot`` (the current one by the clock: ``issue_slot``) on
    ``genesis``'s network: the stored counter plus one, starting at the slot's KES period. ``on_chain``: the pool's
    highest counter on chain (None: no block yet); ``cold_vk``: the cold key's verification key; ``pool``: the pool
    id (28 bytes); ``where``, ``counted``: the cold key's and the issue counter's secrets, for the message of a
    refusal over each. IssueRefused for the wrong cold key,
    or a counter the chain would refuse or that would not supersede the certificate in force. Pure."""
    check_pool(cold_vk, pool, where)
    return Issue(_checked(stored.counter + 1, on_chain, counted, ""), genesis.kes_period(slot))


def plan_forced(genesis: Genesis, slot: int, on_chain: int | None, stored: Stored, pending: Pending | None,
                cold_vk: bytes, pool: bytes, where: str, counted: str) -> Issue:  # fmt: skip
    """The certificate for the standby in a forced promotion: one past every certificate the lost producer may hold
    (the stored one, and a ``pending`` one), so the chain refuses the lost producer's blocks once the new one is on
    chain. As ``plan`` otherwise; IssueRefused saying what the operator can do when the chain cannot take it
    yet (the lost producer's newest certificate has made no block: one past it is more than one past the chain's).
    When the plan succeeds with a ``pending`` record, the chain has taken its counter: it was in force, so the run
    stores it as current and clears it before writing the standby's pending record (``resume``'s invariant: a
    pending counter is the stored one plus one)."""
    check_pool(cold_vk, pool, where)
    held = max(stored.counter, pending.counter if pending else stored.counter)
    hint = (f"; the lost producer may hold counter {held}, which has made no block yet: no certificate both fences it "
            "and is taken by the chain until it does")  # fmt: skip
    return Issue(_checked(held + 1, on_chain, counted, hint), genesis.kes_period(slot))


def _checked(counter: int, on_chain: int | None, where: str, hint: str) -> int:
    try:
        check_counter(counter, on_chain)
    except CounterRefused as err:
        cause = "reused" if counter <= chain_counter(on_chain) else "a skip of more than one"
        raise IssueRefused(f"{where}: {cause}: {err}{hint if cause != 'reused' else ''}") from None
    return counter


@dataclass(frozen=True)
class Observed:
    """What a rerun reads before it acts: the store's ``stored`` counter and ``pending`` version (AWSPENDING's
    certificate), the pool's highest counter ``on_chain`` (None: no block yet), whether the pending certificate's
    KES window holds the current slot (``pending_valid``), whether it starts before the clock's KES period
    (``pending_stale``: issue_slot's period, as a fresh rotation takes it) and whether a node runs it
    (``pending_held``: the holder's container records that version)."""

    stored: Stored
    pending: Pending | None
    on_chain: int | None
    pending_valid: bool
    pending_stale: bool = False
    pending_held: bool = False


@dataclass(frozen=True)
class Step:
    """What the rerun does: ``action`` one of ``ACTIONS`` (the stages it runs, in order, are ``RUNS[action]``),
    for ``counter``, and why (``reason``)."""

    action: str
    counter: int | None
    reason: str


RUNS = {
    "none": (),  # nothing pending: a rotation, if asked for, is planned afresh
    "reissue": ("pending", "pushed", "forging", "stored", "current"),  # same counter, a new KES key: a new version
    "push": ("pushed", "forging", "stored", "current"),  # the pending version, pushed again (unless the holder runs it)
    "current": ("current",),  # the counter is stored: only AWSCURRENT is left to move
}
ACTIONS = tuple(RUNS)


def keeps(seen: Observed) -> bool:
    """Whether a rerun keeps ``seen``'s pending certificate (pushes it) rather than issue its counter again with a
    new key: its KES window holds the current slot, and a node runs it, or the chain took its counter (a node forged
    with it: a second certificate with that counter would be taken too), or it starts at the clock's period (it has
    lost nothing of its window). Pure."""
    pending = seen.pending
    taken = pending is not None and seen.on_chain is not None and seen.on_chain == pending.counter
    return seen.pending_valid and (seen.pending_held or taken or not seen.pending_stale)


def resume(seen: Observed) -> Step:
    """What a rerun does to finish what a killed run left (the protocol above): it converges to one certificate in
    force on the holder, AWSCURRENT, and a stored counter that matches it; a pending certificate no node runs and
    the chain has not taken is issued again when it starts before the clock's period (the days since the kill are
    not lost). Unsafe (exit 4) when the records cannot
    come from this protocol: a pending counter that is neither the stored one nor the stored one plus one, or a
    counter on chain past the pending one (a certificate issued outside nodeops). Pure."""
    pending, stored = seen.pending, seen.stored
    if pending is None:
        return Step("none", None, "no rotation is pending")
    if stored.counter == pending.counter:
        return Step("current", pending.counter, "the pending certificate's counter is stored already")
    if pending.counter != stored.counter + 1:
        raise Unsafe(f"the pending rotation's counter {pending.counter} is not the stored {stored.counter} + 1: the "
                     "store was changed outside nodeops; compare it with the chain's counter and fix it")  # fmt: skip
    if chain_counter(seen.on_chain) > pending.counter:
        raise Unsafe(f"the chain's counter {seen.on_chain} is past the pending {pending.counter}: a certificate was "
                     "issued outside nodeops; store its counter before rotating")  # fmt: skip
    if keeps(seen):
        return Step("push", pending.counter, "the pending version is kept in the store: pushed to the holder again")
    if seen.pending_valid:
        return Step("reissue", pending.counter, "the pending certificate starts before the clock's KES period and no "
                    "node runs it: the same counter again, with a new key, from the clock's period")  # fmt: skip
    return Step("reissue", pending.counter, "the pending certificate's KES window has passed: the same counter "
                "again, with a new key")  # fmt: skip
