"""A pool's facts for ``fab status`` and its findings for ``fab check`` (role.py's ``node_facts`` and
``check_facts`` hooks, nodeops.role_hooks): each node's tip, its slot lag against the pool's highest, its peers,
whether it forges, and for a node holding a certificate its KES periods left and when they run out (UTC).

From each node's reply to ``/metrics`` (kesinfo.parse; ``connectedPeers`` from Tracers/Consensus.hs,
IntersectMBO/cardano-node at 0a21a743): ``slotNum`` is the tip's slot, so the lag is a node's tip against the
highest tip among the pool's nodes that answered. The network's clock is the profile's (periods.NETWORKS; the
lab's from its ``SYSTEM_START`` and periods.LAB_GENESIS).

The checks: ``kes`` for each node that reports a certificate (kesinfo.check: fails at ``KES_PERIODS_MIN`` periods
left or fewer, default 7, and once expired), or one failing when no node reports one; ``sync``: fails when a node
that answered reports no tip or lags more than ``SLOT_LAG_MAX`` slots. Two forging nodes is the engine's standby
check (role.py's ``keys_in_use``). The issue counter on chain against the store's needs the chain's query, which
the metrics do not carry: issue.py's ``counter_standing`` (the kes issuer's ``standing``, nodeops.facts.issued).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .kesinfo import DEFAULT_THRESHOLD, PREFIX, KesFacts, check, parse, runs_out, samples
from .periods import NETWORKS, Genesis, lab_shelley_genesis

DEFAULT_SLOT_LAG = 120  # slots: 2 minutes on mainnet, 24 s on the lab's fast clock
_WINDOW = ".."  # kes_window's "start..expiry"


def genesis_of(variables: Mapping[str, Any]) -> Genesis:
    """The clock of the service's network: its profile's (``PROFILE``), the lab's from ``SYSTEM_START``.
    ValueError for an unknown network or a lab without a valid start."""
    network = str(variables.get("PROFILE") or "mainnet")
    if network == "lab":
        start = datetime.fromisoformat(str(variables.get("SYSTEM_START", "")).replace("Z", "+00:00"))
        return Genesis.from_shelley_genesis("lab", lab_shelley_genesis(start))
    if network not in NETWORKS:
        raise ValueError(f"no network {network!r}")
    return NETWORKS[network]


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node(facts: KesFacts, peers: float | None, genesis: Genesis) -> dict[str, Any]:
    expired = facts.remaining == 0  # the forging_enabled gauge stays 1, but the key cannot sign (kesinfo.check)
    shown: dict[str, Any] = {"slot": facts.slot, "peers": None if peers is None else int(peers),
                             "forging": facts.forging and not expired}  # fmt: skip
    if facts.forging:
        shown["forged"] = facts.blocks_forged
    if facts.remaining is not None:
        shown["kes_window"] = f"{facts.start}{_WINDOW}{facts.expiry}"
        shown["kes_left"] = facts.remaining
        if facts.remaining and facts.expiry is not None:  # from the current period: the expiry period's first slot
            current = facts.expiry - facts.remaining
            shown["kes_until"] = _when(runs_out(genesis, current * genesis.slots_per_kes_period, facts.remaining))
    if expired:  # the engine's ``problem`` (nodeops.facts.role_facts.PROBLEM): the pool reads degraded
        shown["problem"] = (f"its operational certificate (KES periods {facts.start}..{facts.expiry}) has expired: "
                            "it cannot forge (fab check's kes names the rotation)")  # fmt: skip
    return shown


def node_facts(replies: Mapping[str, bytes], variables: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each answering node's facts (``slot``, ``lag``, ``peers``, ``forging``; ``forged`` when it forges;
    ``kes_window`` "start..expiry", ``kes_left`` and ``kes_until`` (UTC) when it holds a certificate), in the
    replies' order; a reply that is no metrics text is ``{"metrics": "unreadable"}``. ValueError for the
    network (genesis_of)."""
    genesis, found = genesis_of(variables), {}
    for node, body in replies.items():
        try:
            text = body.decode("utf-8")
            found[node] = _node(parse(text), samples(text).get(f"{PREFIX}connectedPeers_int"), genesis)
        except (UnicodeDecodeError, ValueError):
            found[node] = {"metrics": "unreadable"}
    tips = [f["slot"] for f in found.values() if f.get("slot") is not None]
    for f in found.values():
        if f.get("slot") is not None:
            f["lag"] = max(tips) - f["slot"]
    return {node: _ordered(f) for node, f in found.items()}


def _ordered(facts: dict[str, Any]) -> dict[str, Any]:
    order = ("metrics", "slot", "lag", "peers", "forging", "forged", "kes_window", "kes_left", "kes_until", "problem")
    return {name: facts[name] for name in order if name in facts}


def whole(value: object) -> int | None:
    """``value`` as a whole number of at least 0 (an integer or its digits: ``7``, ``"7"``), None for anything else
    (``"ten"``, ``-1``, ``2.5``, ``True``). Pure."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        return None
    return int(value)


def _whole(variables: Mapping[str, Any], name: str, default: int) -> int | str:
    """The variable ``name`` as a whole number of at least 0, or the one-line problem with its fix."""
    value = variables.get(name, default)
    number = whole(value)
    if number is None:
        return f"the variable {name} is {value!r}: set it to a whole number (0 or more) in the service's variables"
    return number


def _kes(node: str, facts: Mapping[str, Any], genesis: Genesis, threshold: int,
         rotate: str) -> tuple[str, str, bool, str]:  # fmt: skip
    start, expiry = (int(p) for p in str(facts["kes_window"]).split(_WINDOW))
    left = int(facts["kes_left"])
    current = expiry - left if left else None  # the node reports 0 once its key cannot evolve
    slot = (current if current is not None else expiry) * genesis.slots_per_kes_period
    verdict = check(KesFacts(current, start, expiry, left, bool(facts.get("forging")), int(facts.get("forged") or 0),
                             slot, None), genesis, threshold, rotate)  # fmt: skip
    return node, "kes", verdict.ok, verdict.message


def check_facts(facts: Mapping[str, Mapping[str, Any]],
                variables: Mapping[str, Any]) -> list[tuple[str, str, bool, str]]:  # fmt: skip
    """The pool's findings from node_facts' ``facts``: ``kes`` per node holding a certificate (or one failing
    for the pool when none does), ``sync`` for the pool; none when no node answered. A threshold variable that is
    not a whole number fails its check, naming it. A failing ``kes`` names the rotation's command in full
    (``PROGRAM`` and ``SERVICE_OPTIONS``: nodeops.facts.role_facts.command_variables), or ``FENCE_COMMAND`` when
    the engine gives it: a forced promotion left its pending certificate, which only that command completes (a
    rotation refuses it; review rev16c F3)."""
    if not facts:
        return []
    found = []
    threshold = _whole(variables, "KES_PERIODS_MIN", DEFAULT_THRESHOLD)
    holders = [node for node, f in facts.items() if "kes_left" in f]
    options = variables["SERVICE_OPTIONS"]
    rotate = variables.get("FENCE_COMMAND") or f"{variables['PROGRAM']} rotate-secrets {options} --secret kes"
    if isinstance(threshold, str):
        found.append(("", "kes", False, threshold))
    elif not holders:
        found.append(("", "kes", False, check(KesFacts(*(None,) * 4, False, 0, None, None), genesis_of(variables),
                                              threshold, rotate).message))  # fmt: skip
    else:
        found += [_kes(node, facts[node], genesis_of(variables), threshold, rotate) for node in holders]
    found.append(_sync(facts, _whole(variables, "SLOT_LAG_MAX", DEFAULT_SLOT_LAG)))
    return found


def _sync(facts: Mapping[str, Mapping[str, Any]], limit: int | str) -> tuple[str, str, bool, str]:
    if isinstance(limit, str):
        return "", "sync", False, limit
    blind = [node for node, f in facts.items() if f.get("slot") is None]
    if blind:
        return "", "sync", False, f"no tip reported by {', '.join(blind)}"
    tip = max(f["slot"] for f in facts.values())
    node, worst = max(((n, f["lag"]) for n, f in facts.items()), key=lambda item: item[1])
    lags = f"tip slot {tip}; the most behind: {node}, {worst} slot{'s' if worst != 1 else ''}"
    if worst > limit:
        return "", "sync", False, f"{lags}, over {limit} (SLOT_LAG_MAX)"
    return "", "sync", True, f"every node within {limit} slots of the tip ({lags})"
