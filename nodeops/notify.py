"""Notifications: one JSON message to the environment's webhook at the end of every operation and of every
failing ``fab check`` run.

The inventory names the webhook by a secret reference (``notify.webhook``): its URL usually carries a
token (Slack, Mattermost, a PagerDuty or Opsgenie integration), so it is read like any other secret
(nodeops.secrets), masked by every run's redactor (nodeops.job.prepare), and never printed, logged or
put in a message.

Messages (``POST``, ``Content-Type: application/json``), built by pure functions from what is already
free of secrets:

- ``operation_message``: from the audit log's end entry (nodeops.operation), every field of it, plus
  ``kind: "operation"`` and a one-line ``text`` (the field Slack-style webhooks show);
- ``check_message``: one per ``fab check`` run that has failing checks, listing each of them (service,
  node, check, reason: the reasons the run printed), plus ``kind: "check"`` and ``text``.

Delivery never changes a run's outcome: a webhook that refuses, does not answer within ``TIMEOUT``
seconds (the whole exchange, connect to last byte), or answers other than 2xx costs one warning line on
stderr, and at most ``TIMEOUT`` seconds of the run.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nodeops.edges import http
from nodeops.errors import InventoryError
from nodeops.inventory import Inventory
from nodeops.secrets import Secret, read_reference

TIMEOUT = http.WEBHOOK_TIMEOUT  # seconds: the longest a webhook may delay a run
WHERE = "notify.webhook"  # its path in the inventory, the one name messages give it


# -- pure: the messages ---------------------------------------------------------------------------
def operation_message(end: Mapping[str, Any]) -> dict[str, Any]:
    """The message for an operation's end, from its audit end entry (``Operation.entry("end", ...)``: time,
    run, who, env, op, result, exit_code, error, seconds, services, results); values JSON-encoded as the
    audit log encodes them (an error object: its one-line message)."""
    entry = json.loads(json.dumps(dict(end), default=str))
    services = ", ".join(entry.get("services") or []) or "no service"
    text = (f"nodeops {entry.get('op')} --env {entry.get('env')}: {entry.get('result')} "
            f"(exit {entry.get('exit_code')}, {entry.get('seconds')} s; {services})")  # fmt: skip
    if entry.get("error"):
        text += f": {entry['error']}"
    return {"kind": "operation", "text": text, **entry}


def check_message(env: str, time: str, identity: Mapping[str, Any], findings: Sequence[Any]) -> dict[str, Any] | None:
    """The message for a ``fab check`` run (``findings``: nodeops.check.Finding), or None when no check failed
    (warnings are not sent: the run passed). ``time``: ISO 8601 UTC; ``identity``: who ran it, from where
    (nodeops.operation.holder_record, as in the audit log)."""
    failed = [f for f in findings if f.result == "fail"]
    if not failed:
        return None
    listed = "; ".join(f"{f.service} {f.node or '-'} {f.check}" for f in failed)
    return {
        "kind": "check",
        "text": f"nodeops check --env {env}: {len(failed)} of {len(findings)} checks failed: {listed}",
        **identity,
        "time": time,
        "env": env,
        "result": "failed",
        "checks": len(findings),
        "failed": [{"service": f.service, "node": f.node, "check": f.check, "reason": f.reason} for f in failed],
    }


def delivery_problem(reply: tuple[int, bytes] | None, finished: bool, timeout: float = TIMEOUT) -> str | None:
    """Why a delivery failed (one line, naming no URL), or None when the webhook answered 2xx."""
    if not finished:
        return f"no answer within {timeout:g} s"
    if reply is None:
        return "unreachable (refused, no route or name, or a broken reply)"
    if not 200 <= reply[0] < 300:
        return f"answered HTTP {reply[0]}"
    return None


# -- the edge -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Webhook:
    url: Secret

    def send(self, message: Mapping[str, Any], warn: Callable[[str], None] | None = None,
             timeout: float = TIMEOUT) -> bool:  # fmt: skip
        """POST ``message`` as JSON; at most ``timeout`` seconds. Whether it was taken (2xx); otherwise one
        line to ``warn`` (default: stderr). Never raises."""
        body = json.dumps(message, default=str).encode()
        got: list[tuple[int, bytes] | None] = []

        def post() -> None:
            try:
                # each socket operation may take a little longer than the whole: the join below decides "too slow"
                headers = {"Content-Type": "application/json"}
                got.append(http.request(self.url.reveal(), body, headers, timeout=timeout + 1))
            except Exception:  # noqa: BLE001 - whatever the client raises, it must not reach the run
                got.append(None)

        thread = threading.Thread(target=post, name="nodeops-webhook", daemon=True)  # abandoned after the timeout
        thread.start()
        thread.join(timeout)
        problem = delivery_problem(got[0] if got else None, bool(got), timeout)
        if problem:
            line = f"nodeops: warning: the webhook ({WHERE}) did not take the {message.get('kind')} message: " \
                   f"{problem}; the run's result stands"  # fmt: skip
            (warn or (lambda text: print(text, file=sys.stderr, flush=True)))(line)
        return problem is None


def webhook_url(inventory: Inventory) -> Secret | None:
    """The webhook's URL, read through its secret backend (None when the inventory has no ``notify:``).

    Raises InventoryError (exit 2) naming ``notify.webhook`` when the secret cannot be read or is not an
    http(s) URL (the value is never shown)."""
    if inventory.webhook is None:
        return None
    url = read_reference(inventory, inventory.webhook, WHERE, "webhook")
    try:
        parts = urlsplit(url.reveal())
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed [IPv6 address; its message would quote the URL
        usable = False
    if not usable:
        raise InventoryError(str(inventory.source), WHERE, f"secret {inventory.webhook.name!r} is not an http(s) "
                             "URL (its value is not shown)")  # fmt: skip
    return url


def webhook(inventory: Inventory) -> Webhook | None:
    url = webhook_url(inventory)
    return Webhook(url) if url is not None else None
