"""The Chainlink role's code: what its role.yaml cannot say as data.

The hooks of the role interface (nodeops.role_hooks, docs/roles.md): how a Chainlink node writes its log
(``log_level``), how its health reply names its lease client (``lease_client``) and its failing checks
(``failing_checks``) and how its API user's password
is changed (``ROTATIONS``, the kind ``chainlink-api-password`` of role.yaml's ``rotation.api``). Facts from the
node's source (smartcontract/chainlink) and the lab's simulator of it (lab/images/chainlink-sim/README.md).
"""

from __future__ import annotations

import contextlib
import json
import re

from nodeops.role_hooks import default_log_level
from nodeops.role_protocols import NodeApi

# zap's console encoder, the node's default log format: "2024-01-01T00:00:00.000Z [ERROR] msg logger=... appID=..."
_CONSOLE_LEVEL = re.compile(r"^(?:\S+\s+)?\[(\w+)\]")


def log_level(line: str) -> str | None:
    """The level a line of the node's log was written at (lower case): a JSON line's "level" (``[Log]
    JSONConsole``), the console format's "[LEVEL]" tag, or logfmt's level= (nodeops.role_hooks.default_log_level);
    None for other lines (a traceback, a plain message). Pure."""
    text = line.strip()
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            json.loads(text)
            return default_log_level(text)
    match = _CONSOLE_LEVEL.match(text)
    return match[1].lower() if match else default_log_level(text)


def lease_client(health_body: bytes) -> str | None:
    """The lease client id of the node that sent ``health_body`` (its reply to /health): a node's lease client
    id is its appID (core/services/pg/lease_lock.go), which the lab's simulator shows as ``meta.appID``; None
    when the reply names none (Chainlink's own /health does not). Pure."""
    try:
        found = json.loads(health_body)["meta"]["appID"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(found) if found else None


def failing_checks(health_body: bytes) -> list[str]:
    """The names of the checks ``health_body`` (a reply to /health) marks failing: a JSON:API document whose
    ``data[].attributes`` carry each check's ``name`` and ``status`` (``passing`` or ``failing``), as
    core/web/health_controller.go writes it; [] for a body that is not one (any other reply). Pure."""
    try:
        return [str(c["attributes"]["name"]) for c in json.loads(health_body)["data"]
                if c["attributes"]["status"] == "failing"]  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return []


class ApiUserPassword:
    """The API user's password, changed as ``chainlink admin chpass`` does: log in (``POST /sessions``, the
    session in a cookie), ``PATCH /v2/user/password`` with the old and the new one, log out. The user lives in
    the database the pair shares (core/web/user_controller.go)."""

    change = "PATCH /v2/user/password"

    def login(self, api: NodeApi, user: str, password: str) -> str | None:
        reply = api.call("POST", "/sessions", {"email": user, "password": password})
        if reply.status == 401:
            return None
        if reply.status != 200:
            raise api.refused("POST /sessions", reply, 200)
        cookie = (reply.headers.get("Set-Cookie") or "").split(";", 1)[0]
        if "=" not in cookie:
            raise api.failed("POST /sessions set no cookie")
        return cookie

    def logout(self, api: NodeApi, session: str) -> None:
        api.call("DELETE", "/sessions", cookie=session)

    def set_password(self, api: NodeApi, session: str, old: str, new: str) -> None:
        reply = api.call("PATCH", "/v2/user/password", {"oldPassword": old, "newPassword": new}, session)
        if reply.status != 200:
            raise api.refused("PATCH /v2/user/password", reply)


ROTATIONS = {"chainlink-api-password": ApiUserPassword()}
