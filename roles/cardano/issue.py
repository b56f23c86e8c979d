"""KES rotation as the engine's issued rotation (role.py ``ISSUERS["kes"]``, nodeops.role_protocols): what to ask the
chain, the new KES key and operational certificate made from the pool's cold key and issue counter, and how to tell
that the holder forges with it and the chain took it.

The chain's facts come from ``cardano-cli`` in the holder's container, against its node's socket (the official image
ships it; the lab's simulator image a small one answering the same two queries): ``query tip`` (its ``slot``) and
``query protocol-state`` (its ``oCertCounters``: pool id hex -> the highest counter the chain took; cardano-cli's
``ProtocolState`` JSON, ouroboros-consensus ``PraosState.praosStateOCertCounters``). The plan and the refusals (a
cold key that is not the pool's, a reused counter, a skip) are rotation.py's; the pool id is that of the
certificate in force (the hot keys' current ``op_cert``, which carries the pool's cold verification key), and the
cold key must have signed it and the counter file (``[next, cold_vk]``) name it (pool_keys): another pool's cold key
and counter file, a pair that agrees, are refused (review rev16c finding F1).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from nodeops.errors import InvalidInput, Unsafe
from nodeops.role_protocols import Issued

from . import envelope, kes, ocert, periods, rotation
from .kesinfo import DEFAULT_THRESHOLD, KesFacts, check
from .kesinfo import parse as parse_metrics

SOCKET = "/ipc/node.socket"  # role.yaml's command: --socket-path
MAGIC = {"preprod": 1, "preview": 2, "lab": periods.LAB_GENESIS["networkMagic"]}  # mainnet: --mainnet
HOT = ("kes_key", "op_cert")  # the role's secrets the new version holds (one Secrets Manager secret, pool/HotKeys)
COLD, COUNTER = "cold_key", "counter"  # what the rotation reads (role.yaml rotation.kes.reads)


def network_flags(network: str) -> list[str]:
    """cardano-cli's network flag for a profile: ``--mainnet`` or ``--testnet-magic N``. ValueError for another."""
    if network == "mainnet":
        return ["--mainnet"]
    if network not in MAGIC:
        raise ValueError(f"no network magic for profile {network!r}")
    return ["--testnet-magic", str(MAGIC[network])]


def query_command(network: str) -> list[str]:
    """The read-only command run in the holder's container: the tip, then the protocol state, two JSON documents."""
    flags = [*network_flags(network), "--socket-path", SOCKET]
    return ["sh", "-c", " && ".join(shlex.join(["cardano-cli", "query", what, *flags])
                                    for what in ("tip", "protocol-state"))]  # fmt: skip


def chain_facts(output: str) -> tuple[int, dict[str, int]]:
    """(the tip's slot, oCertCounters) from ``query_command``'s output; InvalidInput naming what is missing."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    text = output.strip()
    try:
        while at < len(text):
            doc, end = decoder.raw_decode(text, at)
            docs.append(doc)
            at = end + len(text[end:]) - len(text[end:].lstrip())
    except ValueError:
        docs = []
    if len(docs) != 2 or not isinstance(docs[0], dict) or not isinstance(docs[1], dict):
        raise InvalidInput("cardano-cli query tip / protocol-state: expected two JSON objects")
    slot, counters = docs[0].get("slot"), docs[1].get("oCertCounters", {})
    if not isinstance(slot, int) or not isinstance(counters, dict):
        raise InvalidInput("cardano-cli query tip / protocol-state: no slot or no oCertCounters")
    return slot, {str(k): int(v) for k, v in counters.items()}


def genesis_of(variables: Mapping[str, Any]) -> periods.Genesis:
    """The KES clock of the service's network (its PROFILE; the lab's from its SYSTEM_START)."""
    network = str(variables.get("PROFILE") or "mainnet")
    if network == "lab":
        start = datetime.fromisoformat(str(variables.get("SYSTEM_START", "")).replace("Z", "+00:00"))
        return periods.Genesis.from_shelley_genesis("lab", periods.lab_shelley_genesis(start))
    return periods.NETWORKS[network]


def current_slot(variables: Mapping[str, Any], chain: str,
                 now: datetime) -> tuple[periods.Genesis, int, dict[str, int], dict[str, Any]]:  # fmt: skip
    """(the network's clock, the slot running at ``now`` that a certificate is issued for, the chain's
    oCertCounters, the tip's facts for the operator): ``slot``, ``tip_behind`` (the tip's slots behind the clock)
    and ``synced`` (behind by a KES period or less; a node far behind still gets a certificate for the current slot).
    IssueRefused (exit 2) for a tip more than a KES period ahead of the clock (rotation.issue_slot)."""
    genesis, (tip, counters) = genesis_of(variables), chain_facts(chain)
    slot = rotation.issue_slot(genesis, tip, now)
    facts = {"slot": slot, "tip_behind": slot - tip, "synced": slot - tip <= genesis.slots_per_kes_period}
    return genesis, slot, counters, facts


# The description of a certificate a forced promotion issues (a text envelope's free text, which the node ignores):
# a rerun tells that pending version from a rotation's, which the lost producer may hold
FORCED = "Node operational certificate, issued by nodeops for a forced promotion"


def _hot(cold: ocert.ColdKey, counter: int, period: int, description: str | None = None) -> dict[str, str]:
    key = kes.SignKey.generate()  # in memory; written only into the store's pending version
    certificate = ocert.issue(cold, key.verification_key, counter, period)
    cert = envelope.write(envelope.CERTIFICATE, certificate.to_cbor(), description)
    return {"kes_key": envelope.kes_signing_key_file(key), "op_cert": cert}


def in_force(variables: Mapping[str, Any], genesis: periods.Genesis, slot: int, counter: int,
             period: int) -> tuple[int, str]:  # fmt: skip
    """(the KES periods left at ``slot``, the result's line) for the certificate a rotation or a forced promotion
    puts in force: its counter, its window and kesinfo.check's verdict against the service's ``KES_PERIODS_MIN``
    (a check variable; not a whole number: the default), which names the rotation's command (``PROGRAM``,
    ``SERVICE_OPTIONS``) when it is at the threshold or under: a kept pending certificate that lost part of its
    window to the time since a kill. Pure."""
    window = genesis.window(slot, period)
    threshold = variables.get("KES_PERIODS_MIN", DEFAULT_THRESHOLD)
    threshold = int(threshold) if str(threshold).isdigit() else DEFAULT_THRESHOLD
    rotate = " ".join(str(w) for w in (variables.get("PROGRAM", "fab"), "rotate-secrets",
                                       variables.get("SERVICE_OPTIONS", ""), "--secret kes") if w)  # fmt: skip
    facts = KesFacts(window.current, period, window.end, window.remaining, True, 0, slot, None)
    verdict = check(facts, genesis, threshold, rotate)
    return window.remaining, f"certificate counter {counter}, KES periods {period}..{window.end}: {verdict.message}"


def pool_keys(secrets: Mapping[str, str]) -> tuple[ocert.ColdKey, ocert.IssueCounter, bytes]:
    """The cold key and the issue counter ``secrets`` hold, and the pool id (28 bytes) a certificate is issued for:
    that of the certificate in force (``op_cert``, the hot keys' current version), which the cold key must have
    signed and the counter file name (rotation.pool_in_force: IssueRefused, exit 2, naming the secret to fix).
    InvalidInput for a secret that is not its text envelope."""
    cold = envelope.read_cold_signing_key(secrets[COLD], COLD)
    file = envelope.read_issue_counter(secrets[COUNTER], COUNTER)
    in_force = envelope.read_certificate(secrets["op_cert"], "op_cert")
    return cold, file, rotation.pool_in_force(cold.verification_key, file.cold_vk, in_force, COLD, COUNTER)


def issue_kes(variables: Mapping[str, Any], secrets: Mapping[str, str], chain: str,
              pending: Mapping[str, str] | None, now: datetime, held: bool = False) -> Issued:  # fmt: skip
    """The new hot keys (``kes_key``, ``op_cert``) and the counter's next text, or the pending version kept
    (rotation.resume: ``push`` and ``current`` reuse it, ``reissue`` makes a new key with its counter: its window
    passed, or ``held`` is False (the holder does not run it), the chain has not taken its counter and it starts
    before the clock's period). IssueRefused (exit 2) for a cold key that is not the pool's, a reused counter or a
    skip; Unsafe (exit 4) for records the protocol cannot leave. The start period is that of the slot running at
    ``now`` (current_slot: a tip far ahead of it refused). ``facts``' ``kes_left`` and ``said``: the certificate in
    force's periods left (in_force). Pure but for the KES key's seed."""
    genesis, slot, counters, tip = current_slot(variables, chain, now)
    cold, file, pool = pool_keys(secrets)
    on_chain = counters.get(pool.hex())
    stored = rotation.Stored(file.next - 1)
    where = f"secret {COLD}"
    record = None
    if pending is not None:
        certificate = envelope.read_certificate(pending["op_cert"], "op_cert (pending)")
        record = rotation.Pending(certificate.counter, certificate.kes_period, rotation.certificate_hash(certificate))
    valid = record is not None and genesis.window(slot, record.kes_period).valid
    stale = record is not None and record.kes_period < genesis.kes_period(slot)
    step = rotation.resume(rotation.Observed(stored, record, on_chain, valid, stale, held))
    if step.action == "none":
        plan = rotation.plan(genesis, slot, on_chain, stored, cold.verification_key, pool, where, f"secret {COUNTER}")
        counter, period, reused = plan.counter, plan.kes_period, False
        values = _hot(cold, counter, period)
    else:
        counter, reused = step.counter, step.action != "reissue"
        period = record.kes_period if reused else genesis.kes_period(slot)
        values = {k: pending[k] for k in HOT} if reused else _hot(cold, counter, period)
    updates = {COUNTER: envelope.issue_counter_file(ocert.IssueCounter(counter + 1, file.cold_vk))}
    left, said = in_force(variables, genesis, slot, counter, period)
    facts = {"counter": counter, "kes_period": period, "kes_left": left, "pool": pool.hex(), "resume": step.action,
             **tip}  # fmt: skip
    return Issued(values, updates, facts, reused, said)


def counter_standing(secrets: Mapping[str, str], chain: str) -> tuple[dict[str, int | None], bool, str]:
    """The issue counter of the certificate in force as the store holds it (``op_cert``'s current version, a public
    certificate) against the chain's for its pool (``oCertCounters``, None: no block yet, which the ledger counts
    as 0, ocert.chain_counter): the facts ``counter_store`` and ``counter_chain``, and whether they agree: the
    chain's above the store's (a certificate the store does not hold as current is in force: a rotation left under
    way, or one issued outside nodeops, after which a rotation would be refused as reused) or the store's more than
    one above the chain's (the chain refuses its blocks) fails. InvalidInput for a query's output without the two
    documents; ValueError for a certificate that is not one."""
    certificate = envelope.read_certificate(secrets["op_cert"], "op_cert")
    on_chain = chain_facts(chain)[1].get(rotation.pool_id(certificate.cold_vk).hex())
    store, held = certificate.counter, ocert.chain_counter(on_chain)
    facts = {"counter_store": store, "counter_chain": on_chain}
    if held > store:
        return facts, False, (f"the chain's issue counter {held} is above the store's {store}: a certificate the store "
                              "does not hold as current is in force (a rotation left under way: run it again; or one "
                              "issued outside nodeops: the next rotation would be refused as reused)")  # fmt: skip
    if store > held + 1:
        return facts, False, (f"the store's issue counter {store} is more than one above the chain's {held}: the "
                              "chain refuses the certificate's blocks (CounterOverIncrementedOCERT)")  # fmt: skip
    fresh = " (no block with it yet)" if store == held + 1 or on_chain is None else ""
    return facts, True, f"issue counter {store} in the store, {held} on chain{fresh}"


def fence_kes(variables: Mapping[str, Any], secrets: Mapping[str, str], chain: str, pending: Mapping[str, str] | None,
              held: bool, now: datetime) -> Issued:  # fmt: skip
    """The standby's hot keys in a forced promotion (role.py ``CHAIN_FENCE``): a new KES key and the certificate the
    cold key issues for it with the counter one past every certificate the lost producer may hold, the stored one
    and a ``pending`` one (rotation.plan_forced: its refusals, exit 2), and the counter's next text; or, ``held``
    (the standby runs the pending version: this promotion's own, interrupted), that version kept. Unsafe (exit 4)
    when the chain's counter is past a kept version's. A pending version a forced promotion issued (its certificate's
    description is ``FORCED``) went to no lost producer: kept too, but issued again (a new key, same counter) once
    its KES window has passed, or, the standby not running it and the chain not having taken its counter, when it
    starts before the clock's period (rotation.resume's rule). The start period and the window are the slot's
    running at ``now``, as issue_kes's; ``kes_left`` and ``said`` as issue_kes's. Pure but for the KES key's
    seed."""
    genesis, slot, counters, tip = current_slot(variables, chain, now)
    cold, stored, pool = pool_keys(secrets)
    on_chain, where, record = counters.get(pool.hex()), f"secret {COLD}", None
    if pending is not None:
        certificate = envelope.read_certificate(pending["op_cert"], "op_cert (pending)")
        record = rotation.Pending(certificate.counter, certificate.kes_period, rotation.certificate_hash(certificate))
    ours = pending is not None and envelope.read(pending["op_cert"], "op_cert", envelope.CERTIFICATE).description
    kept = record is not None and (held or ours == FORCED)
    action = "none"  # the rotation's words (rotation.resume): none, push, or reissue (the same counter, a new key)
    if kept:
        if ocert.chain_counter(on_chain) > record.counter:
            raise Unsafe(f"the chain's counter {on_chain} is past the standby's pending {record.counter}: a "
                         "certificate was issued outside nodeops; store its counter before promoting")  # fmt: skip
        valid = genesis.window(slot, record.kes_period).valid
        stale = record.kes_period < genesis.kes_period(slot)
        kept = rotation.keeps(rotation.Observed(rotation.Stored(stored.next - 1), record, on_chain, valid, stale, held))
        action = "push" if kept else "reissue"
        counter, period = record.counter, record.kes_period if kept else genesis.kes_period(slot)
        values = {k: pending[k] for k in HOT} if kept else _hot(cold, counter, period, FORCED)
    else:
        plan = rotation.plan_forced(genesis, slot, on_chain, rotation.Stored(stored.next - 1), record,
                                    cold.verification_key, pool, where, f"secret {COUNTER}")  # fmt: skip
        counter, period = plan.counter, plan.kes_period
        values = _hot(cold, counter, period, FORCED)
    updates = {COUNTER: envelope.issue_counter_file(ocert.IssueCounter(counter + 1, stored.cold_vk))}
    left, said = in_force(variables, genesis, slot, counter, period)
    facts = {"counter": counter, "kes_period": period, "kes_left": left, "pool": pool.hex(), "resume": action,
             **tip}  # fmt: skip
    return Issued(values, updates, facts, reused=bool(kept), said=said)


class KesFence:
    """``CHAIN_FENCE``: see fence_kes; the engine carries it out as ``rotation.kes`` for the standby, whose query,
    ``in_use`` and ``taken`` are KesRotation's."""

    change = "a new KES key and operational certificate, issue counter one past the lost producer's"

    def fence(self, variables: Mapping[str, Any], secrets: Mapping[str, str], chain: str,
              pending: Mapping[str, str] | None, held: bool) -> Issued:  # fmt: skip
        return fence_kes(variables, secrets, chain, pending, held, datetime.now(UTC))


class KesRotation:
    """``ISSUERS["kes"]``: see the module."""

    change = "a new KES key and operational certificate, issue counter + 1"

    def query(self, variables: Mapping[str, Any]) -> list[str]:
        return query_command(str(variables.get("PROFILE") or "mainnet"))

    def issue(self, variables: Mapping[str, Any], secrets: Mapping[str, str], chain: str,
              pending: Mapping[str, str] | None, held: bool) -> Issued:  # fmt: skip
        return issue_kes(variables, secrets, chain, pending, datetime.now(UTC), held)

    def in_use(self, health_body: bytes, issued: Issued) -> bool:
        """The metrics show forging enabled with the new certificate's start period (kesinfo)."""
        try:
            facts = parse_metrics(health_body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return False
        return facts.forging and facts.start == issued.facts["kes_period"]

    def standing(self, variables: Mapping[str, Any], secrets: Mapping[str, str],  # noqa: ARG002 (the hook's shape)
                 chain: str) -> tuple[dict[str, int | None], bool, str]:  # fmt: skip
        return counter_standing(secrets, chain)

    def taken(self, chain: str, issued: Issued) -> bool:
        """The chain's counter for the pool is the new one."""
        try:
            return chain_facts(chain)[1].get(str(issued.facts["pool"])) == issued.facts["counter"]
        except InvalidInput:
            return False
