"""The health fact: a node's reply to its role's health path (HTTP status and body), and what it says.

The request itself goes through the bastion (nodeops.facts.observe); these parsers read its reply. What a reply's
body says is the role's to read (nodeops.role_hooks: ``failing_checks``, which checks fail; ``lease_client``,
which node sent it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def failing_checks(reply: tuple[int, bytes] | None, named: Callable[[bytes], Iterable[str]]) -> tuple[str, ...]:
    """What a node's reply to its health path says is wrong; () when it answered 200 or nothing answered.

    ``reply``: (HTTP status, body); ``named``: the role's hook that reads the names of the checks a body says
    fail (nodeops.role_hooks ``failing_checks``). Those names, sorted and each once; a non-200 reply that names
    none gives ``("HTTP <status>",)``. A reply that is not 200 is never (): a node that answers at all listens on
    its port, which under the lease model a node opens only once it holds the lease, so non-empty means "the
    active, unhealthy"."""
    if reply is None or reply[0] == 200:
        return ()
    return tuple(sorted({str(name) for name in named(reply[1])})) or (f"HTTP {reply[0]}",)
