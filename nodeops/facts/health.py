"""The health fact: a node's reply to its role's health path (HTTP status and body), and what it says.

The request itself goes through the bastion (nodeops.facts.observe); these parsers read its reply. Which node
sent a reply is the role's to read (nodeops.role_hooks ``lease_client``).
"""

from __future__ import annotations

import json


def failing_checks(reply: tuple[int, bytes] | None) -> tuple[str, ...]:
    """What a node's reply to its health path says is wrong; () when it answered 200 or nothing answered.

    ``reply``: (HTTP status, body). The names of the checks a JSON:API body marks ``failing``
    (``data[].attributes.name``, as Chainlink's /health: core/web/health_controller.go), sorted; a
    non-200 reply that names none gives ``("HTTP <status>",)``. A reply that is not 200 is never (): a
    node that answers at all listens on its port, which a Chainlink node opens only once it holds the
    database lease, so non-empty means "the active, unhealthy"."""
    if reply is None or reply[0] == 200:
        return ()
    try:
        checks = json.loads(reply[1])["data"]
        names = sorted({str(c["attributes"]["name"]) for c in checks if c["attributes"]["status"] == "failing"})
    except (ValueError, KeyError, TypeError):
        names = []
    return tuple(names) or (f"HTTP {reply[0]}",)
