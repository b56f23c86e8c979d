"""Notifications (nodeops.notify): the messages are pure functions of what is already secret-free (the audit end
entry, fab check's findings); the webhook's URL is a secret that every run's redactor masks; a delivery that fails
(refused, no answer in time, non-2xx) is one warning line that never names the URL, and never raises."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeops.check import Finding
from nodeops.errors import InventoryError, OperationFailed
from nodeops.inventory import load_inventory
from nodeops.job import prepare
from nodeops.notify import Webhook, check_message, delivery_problem, operation_message, webhook_url
from nodeops.secrets import Secret
from tests.conftest import fab
from tests.unit.test_deploy_preflight import ENV, inventory

TOKEN = "T0KEN-sentinel-9f8e7d"  # the part of a webhook URL that must never show
HOOK = "NODEOPS_OPS_WEBHOOK_URL"
NOTIFY = "notify:\n  webhook: {backend: ci, name: ops/webhook, key: url}\n"

END = {"time": "2026-11-30T10:00:00Z", "run": "0123456789abcdef", "who": "ops (ci-bot)", "env": "prod",
       "op": "deploy", "event": "end", "result": "failed", "exit_code": 1,
       "error": OperationFailed("cl1 cl1-b: the new container did not come up"), "seconds": 12.5,
       "services": ["cl1", "cl2"], "results": [{"service": "cl1", "changed": True, "version": "2.10.0"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        (
            {},
            "nodeops deploy --env prod: failed (exit 1, 12.5 s; cl1, cl2): cl1 cl1-b: the new container did not come "
            "up",
        ),  # fmt: skip
        (
            {"result": "ok", "exit_code": 0, "error": None, "services": ["cl1"]},
            "nodeops deploy --env prod: ok (exit 0, 12.5 s; cl1)",
        ),  # fmt: skip
        (
            {"op": "rotate-secrets", "result": "ok", "exit_code": 0, "error": None, "services": []},
            "nodeops rotate-secrets --env prod: ok (exit 0, 12.5 s; no service)",
        ),  # fmt: skip
    ],
    ids=["failed", "ok", "no-service"],
)
def test_operation_message_is_the_end_entry_with_a_line_of_text(changes, text):
    end = {**END, **changes}
    message = operation_message(end)
    assert message["kind"] == "operation" and message["text"] == text
    assert {k: v for k, v in message.items() if k not in ("kind", "text")} == json.loads(json.dumps(end, default=str))
    json.dumps(message)  # plain JSON: the error object became its one-line message


def finding(service: str, node: str, check: str, result: str, reason: str = "why") -> Finding:
    return Finding(service, node, check, result != "fail", reason, result)


IDENTITY = {"run": "r1", "who": "ops", "from": "ci-7", "ci_run": None, "command": "fab check --env prod",
            "started": "2026-11-30T10:00:00Z"}  # fmt: skip


@pytest.mark.parametrize(
    ("findings", "failed", "text"),
    [
        ([finding("cl1", "", "active", "pass"), finding("cl1", "cl1-a", "disk", "warn")], None, None),
        ([], None, None),
        (
            [
                finding("cl1", "", "active", "fail", "no node serves /health"),
                finding("cl1", "cl1-a", "disk", "warn"),
                finding("cl2", "cl2-b", "standby", "fail", "container exited, not running"),
            ],  # fmt: skip
            [
                {"service": "cl1", "node": "", "check": "active", "reason": "no node serves /health"},
                {"service": "cl2", "node": "cl2-b", "check": "standby", "reason": "container exited, not running"},
            ],
            "nodeops check --env prod: 2 of 3 checks failed: cl1 - active; cl2 cl2-b standby",
        ),
    ],
    ids=["warnings-only", "nothing", "two-failed"],
)
def test_check_message_is_one_per_run_listing_the_failing_checks(findings, failed, text):
    message = check_message("prod", "2026-11-30T10:00:05Z", IDENTITY, findings)
    if failed is None:
        assert message is None
        return
    assert message == {**IDENTITY, "kind": "check", "text": text, "time": "2026-11-30T10:00:05Z", "env": "prod",
                       "result": "failed", "checks": len(findings), "failed": failed}  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "finished", "problem"),
    [
        ((200, b""), True, None),
        ((204, b""), True, None),
        ((299, b""), True, None),
        ((301, b""), True, "answered HTTP 301"),
        ((404, b"no such hook"), True, "answered HTTP 404"),
        ((500, b""), True, "answered HTTP 500"),
        (None, True, "unreachable (refused, no route or name, or a broken reply)"),
        (None, False, "no answer within 5 s"),
    ],
)
def test_delivery_problem(reply, finished, problem):
    assert delivery_problem(reply, finished) == problem


# -- the edge, against real HTTP servers on 127.0.0.1 ------------------------------------------------
class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.got.append((self.path, self.headers["Content-Type"], json.loads(body)))
        time.sleep(self.server.delay)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def hook_server(status: int = 204, delay: float = 0.0) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.got, server.status, server.delay = [], status, delay
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url(port: int) -> Secret:
    return Secret(f"http://127.0.0.1:{port}/hooks/{TOKEN}", "webhook")


def test_a_taken_message_is_posted_as_json_with_no_warning():
    warnings = []
    with hook_server(204) as server:
        assert Webhook(url(server.server_address[1])).send({"kind": "check", "text": "x"}, warnings.append)
    assert server.got == [(f"/hooks/{TOKEN}", "application/json", {"kind": "check", "text": "x"})]
    assert warnings == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["refused", "http-500", "slow"])
def test_a_failed_delivery_is_one_warning_line_that_never_names_the_url(case):
    warnings = []
    started = time.monotonic()
    if case == "refused":
        taken = Webhook(url(free_port())).send({"kind": "operation"}, warnings.append, timeout=0.5)
        expected = "unreachable"
    else:
        with hook_server(500 if case == "http-500" else 204, delay=3.0 if case == "slow" else 0.0) as server:
            taken = Webhook(url(server.server_address[1])).send({"kind": "operation"}, warnings.append, timeout=0.5)
        expected = "answered HTTP 500" if case == "http-500" else "no answer within 0.5 s"
    assert time.monotonic() - started < 2.5  # bounded by the timeout, not by the server's 3 s
    assert not taken and len(warnings) == 1 and expected in warnings[0], warnings
    assert warnings[0].startswith("nodeops: warning: the webhook (notify.webhook) did not take the operation message")
    assert TOKEN not in warnings[0] and "127.0.0.1" not in warnings[0]


# -- the URL: a secret reference, masked by every run's redactor ---------------------------------------
def inventory_file(tmp_path: Path, monkeypatch, hook: str | None) -> Path:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    if hook is None:
        monkeypatch.delenv(HOOK, raising=False)
    else:
        monkeypatch.setenv(HOOK, hook)
    path = tmp_path / "t.yaml"
    path.write_text(inventory() + NOTIFY)
    return path


def test_the_runs_redactor_masks_the_webhook_url(tmp_path, monkeypatch):
    hook = f"https://hooks.example.com/services/{TOKEN}"
    inv = load_inventory(inventory_file(tmp_path, monkeypatch, hook))
    assert webhook_url(inv).reveal() == hook and TOKEN not in repr(webhook_url(inv))
    [job] = prepare(inv)
    said = job.redact(f"curl -d @msg {hook} failed; json: {json.dumps({'u': hook})}")
    assert TOKEN not in said and "hooks.example.com" not in said
    assert "webhook" not in job.secrets  # masked, but no secret the templates could render


@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        (None, "environment variable NODEOPS_OPS_WEBHOOK_URL is not set"),
        (f"hooks.example.com/{TOKEN}", "secret 'ops/webhook' is not an http(s) URL (its value is not shown)"),
        (f"ftp://hooks.example.com/{TOKEN}", "is not an http(s) URL"),
        (f"http://[::1/{TOKEN}", "is not an http(s) URL"),
    ],
    ids=["unset", "no-scheme", "ftp", "broken"],
)
def test_an_unusable_webhook_is_an_inventory_error_that_shows_no_value(tmp_path, monkeypatch, hook, problem):
    inv = load_inventory(inventory_file(tmp_path, monkeypatch, hook))
    with pytest.raises(InventoryError) as info:
        webhook_url(inv)
    assert info.value.where == "notify.webhook" and problem in info.value.problem and info.value.exit_code == 2
    assert TOKEN not in str(info.value)


def test_deploy_refuses_an_unreadable_webhook_before_any_host(tmp_path, monkeypatch):
    """The bastion is 127.0.0.1:9, where nothing listens: had deploy tried to connect, it would exit 1."""
    path = inventory_file(tmp_path, monkeypatch, "not a url")
    res = fab("deploy", "--inventory", str(path), "--dry-run")
    assert res.returncode == 2, res.stderr
    assert res.stderr == f"nodeops: {path}: notify.webhook: secret 'ops/webhook' is not an http(s) URL (its value " \
                         "is not shown)\n"  # fmt: skip
