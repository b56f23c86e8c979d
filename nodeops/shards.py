"""Sharding a run across CI runners: ``--shard I/N`` picks the I-th of N deterministic, balanced subsets of an
inventory's services (pure).

Every runner computes the same split from the same inventory, with no coordination: the services, sorted by their
bastion and then by name, are cut into N consecutive runs whose sizes differ by at most one (balanced first). Where
a bigger or a smaller run ends exactly on a change of bastion, that size is taken there, so the services of one
bastion stay in one shard whenever the counts allow it (one bastion connection per runner). Runners then share
nothing but the bastions' deploy locks and audit logs: two runs given one service are serialised by its lock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from nodeops.errors import InvalidInput
from nodeops.inventory import Inventory

MAX_SHARDS = 1024  # a CI matrix has at most 256 jobs (GitHub); room for larger systems, bounded for a typo
_SHARD = re.compile(r"([0-9]{1,4})/([0-9]{1,4})")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``, as written ``I/N``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``--shard I/N`` -> Shard; InvalidInput (exit 2, one line naming the fix) unless 1 <= I <= N <= MAX_SHARDS."""
    match = _SHARD.fullmatch(text.strip())
    if match is None or not 1 <= int(match[1]) <= int(match[2]) <= MAX_SHARDS:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise InvalidInput(f"--shard {shown!r}: expected I/N, shard I of N with 1 <= I <= N <= {MAX_SHARDS} "
                           "(such as --shard 1/4)")  # fmt: skip
    return Shard(int(match[1]), int(match[2]))


def split(bastions: Mapping[str, str], count: int) -> list[list[str]]:
    """``bastions`` (service name -> the name of the bastion it is reached through) cut into ``min(count, number of
    services)`` shards: lists of service names, each non-empty, sizes differing by at most one, together every
    service exactly once. Deterministic: it depends on the names only, not on their order in the mapping."""
    ordered = sorted(bastions, key=lambda name: (bastions[name], name))
    count = min(count, len(ordered))
    if count < 1:
        return []
    small, bigger = divmod(len(ordered), count)  # ``bigger`` shards of small + 1, the others of small
    ends = {i for i in range(1, len(ordered)) if bastions[ordered[i - 1]] != bastions[ordered[i]]}
    shards, start = [], 0
    for left in range(count, 0, -1):
        sizes = [small + 1] * (bigger > 0) + [small] * (left > bigger)  # the sizes still to hand out
        size = next((s for s in sizes if start + s in ends), sizes[0])  # one that ends on a change of bastion
        bigger -= size > small
        shards.append(ordered[start : start + size])
        start += size
    return shards


def bastions_of(inventory: Inventory) -> dict[str, str]:
    """Each service's bastion, as ``split`` takes it, named by its address (``host:port``: two names of one
    host are one bastion)."""
    return {name: f"{b.host}:{b.port}" for name in inventory.services for b in (inventory.bastion_of(name),)}


def services_in(inventory: Inventory, shard: Shard) -> list[str]:
    """The services of ``shard``, in the inventory's order. InvalidInput (exit 2) when the inventory has fewer
    services than shards: shard I would be empty (``nodeops shards --count N`` prints as many shards as there
    are services, at most)."""
    services = len(inventory.services)
    if shard.count > services:
        raise InvalidInput(f"--shard {shard}: {inventory.source} has {services} service(s), so at most "
                           f"{services} shards: use --shard I/{services} (nodeops shards --count N prints the "
                           "matrix to run)")  # fmt: skip
    chosen = set(split(bastions_of(inventory), shard.count)[shard.index - 1])
    return [name for name in inventory.services if name in chosen]


def matrix(inventory: Inventory, count: int) -> list[dict[str, object]]:
    """``nodeops shards``' rows: one per shard, ``{"shard": "I/N", "services": "a,b", "bastions": "host:port"}``
    (strings, so that a CI matrix passes them to a command line as they are)."""
    bastions = bastions_of(inventory)
    shards = split(bastions, count)
    rows = []
    for i, names in enumerate(shards, 1):
        kept = [n for n in inventory.services if n in set(names)]
        rows.append({"shard": str(Shard(i, len(shards))), "services": ",".join(kept),
                     "bastions": ",".join(sorted({bastions[n] for n in kept}))})  # fmt: skip
    return rows
