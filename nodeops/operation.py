"""One run of a command that changes a pair: its Fleet, its deploy locks and its audit trail on each bastion.

    with Operation(inventory, "deploy", ["cl1", "cl2"], report) as op:
        ...  # op.fleet is open, the services are locked, every report() event is audited
        op.results = [...]  # each service's result as its type stores it (nodeops.records; never a secret)

Entering opens the bastions of the services and takes the services' locks, each on its own bastion
(nodeops.ledger: one session per bastion; ``LockHeld``, exit 3, naming the holder, when another run has any of
them, alive or stale). Every event the run reports is appended to the environment's audit log on the
bastion of its service (a start or end: on each, with that bastion's services), over the session that holds the
locks; leaving
appends the end entry (result, exit code, duration), releases the locks and sends the end entry to the
environment's webhook, if it has one (nodeops.notify: a failed delivery is a warning). While inside,
the first Ctrl-C or SIGTERM sets ``stop`` (nodeops.stopping): the run's steps stop at a safe point (``stopping``:
the line that says what that means for the command, nodeops.stopping.FIRST by default).
A dry run (``dry_run=True``) changes nothing, the bastion included: it takes no lock and writes nothing
to the audit log, whose every operation is then one that may have changed something, and sends no
webhook message; only its end line on stdout (JSON) is written, with ``dry_run: true``.
See nodeops/commands/bastion.py for the layout on the bastion.
"""

from __future__ import annotations

import contextlib
import datetime
import getpass
import json
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Mapping, Sequence

from nodeops import program
from nodeops.commands import bastion
from nodeops.edges.ssh import Fleet
from nodeops.errors import EXIT_INTERRUPTED, Declined, LockHeld, NodeopsError, OperationFailed
from nodeops.inventory import Inventory
from nodeops.ledger import Ledger, describe_locks
from nodeops.notify import operation_message, webhook
from nodeops.records import Entry, Released, Start, end_entry, entry
from nodeops.run.report import Reporter
from nodeops.stopping import FIRST, StopRequests

# Where CI systems put the run's id and the person behind it (first one set wins).
CI_RUN_VARIABLES = ("NODEOPS_RUN_LABEL", "GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILDKITE_BUILD_ID",
                    "CIRCLE_WORKFLOW_ID", "BUILD_TAG")  # fmt: skip
CI_ACTOR_VARIABLES = ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def holder_record(run: str, argv: Sequence[str], environ: Mapping[str, str]) -> dict:
    """Who runs what, from where: the lock's holder and every audit entry's identity."""
    user = getpass.getuser()
    actor = next((environ[v] for v in CI_ACTOR_VARIABLES if environ.get(v)), None)
    return {
        "run": run,
        "who": f"{user} ({actor})" if actor else user,
        "from": socket.gethostname(),
        "ci_run": next((environ[v] for v in CI_RUN_VARIABLES if environ.get(v)), None),
        "command": shlex.join([program(), *argv]),  # as run: nodeops or fab
        "started": now(),
    }


def end_result(exc: BaseException | None) -> str:
    """An operation's end as its audit entry and last JSON line say it (docs/events.schema.json ``end.result``):
    ok; declined when its question was answered no (Declined: exit 2, nothing done); stopped when it was asked to
    stop (exit 130: Interrupted, KeyboardInterrupt, or raise_failures' error over services one of which stopped, at
    a safe point, the error saying what runs); failed otherwise."""
    if exc is None:
        return "ok"
    if isinstance(exc, KeyboardInterrupt) or getattr(exc, "exit_code", None) == EXIT_INTERRUPTED:
        return "stopped"
    return "declined" if isinstance(exc, Declined) else "failed"


class Operation:
    def __init__(self, inventory: Inventory, command: str, services: Sequence[str], report: Reporter,
                 details: Mapping[str, object] | None = None, lock: bool = True,
                 dry_run: bool = False, stopping: str = FIRST) -> None:  # fmt: skip
        self.inventory = inventory
        self.command = command
        self.services = sorted(services)
        self.report = report
        self.details = dict(details or {})
        self.dry_run = dry_run  # changes nothing: no lock, nothing in the audit log; the end line says dry_run
        self.lock = lock and not dry_run
        self.run = uuid.uuid4().hex[:16]
        self.identity = holder_record(self.run, sys.argv[1:], os.environ)
        self.fleet = Fleet(inventory, services=self.services)
        self.ledgers = [Ledger(self.fleet, name, names, self.run, self.identity)
                        for name, names in inventory.bastions_of(self.services).items()]  # fmt: skip
        self.results: list[dict] = []
        self.lost: str | None = None
        self.started = time.monotonic()
        self.stop = StopRequests(lambda line: report("", "", line, stopping=True), stopping)  # Ctrl-C, SIGTERM
        self.webhook = webhook(inventory)  # read before any host is contacted: an unreadable one is exit 2

    @property
    def env(self) -> str:
        return self.inventory.environment

    # -- lock ----------------------------------------------------------------------
    def _acquire(self) -> None:
        """Each bastion's locks in turn (a refusal leaves the ones taken to __enter__'s release)."""
        for ledger in self.ledgers:
            ledger.acquire()

    def _release(self) -> None:
        """Every bastion's locks released; the first failure raised once all were tried."""
        failed: list[NodeopsError] = []
        for ledger in self.ledgers:
            try:
                ledger.release()
            except NodeopsError as exc:
                failed.append(exc)
        if failed:
            raise failed[0]

    # -- audit ---------------------------------------------------------------------
    def entry(self, event: str, **data) -> dict:
        return {"time": now(), "run": self.run, "who": self.identity["who"], "env": self.env,
                "op": self.command, "event": event, **data}  # fmt: skip

    def start_entry(self) -> dict:
        """The start entry, built through its type (records.Start), as stored."""
        start = self.entry("start", services=self.services, **self.identity, **self.details)
        return Start.model_validate(start).record()

    def end_entry(self, exc: BaseException | None) -> dict:
        """The end entry for a run that ended with ``exc`` (None: it succeeded), built through its type (records.End)
        with ``results`` (each service's, NodeopsErrors as their messages), as stored and printed."""
        code = 0 if exc is None else getattr(exc, "exit_code", 1)
        # A NodeopsError's message is written for people and carries no secret; anything else might.
        error = str(exc) if isinstance(exc, NodeopsError) else f"internal error: {type(exc).__name__}" if exc else None
        return end_entry(self.entry("end", result=end_result(exc), exit_code=code, error=error,
                                    seconds=round(time.monotonic() - self.started, 2), services=self.services,
                                    results=self.results, **self.details,
                                    **({"dry_run": True} if self.dry_run else {})))  # fmt: skip

    def audit(self, entry: dict) -> None:
        """``entry`` into the audit log of each bastion of the run, as much of it as is that bastion's (its
        services, their steps and results: Ledger.share)."""
        for ledger in self.ledgers:
            mine = entry if len(self.ledgers) == 1 else ledger.share(entry)
            if mine is not None:
                ledger.append(json.dumps(mine, default=str))  # a result's error: its one-line message

    def _step(self, event: dict) -> None:
        """A Reporter sink: every step the run reports, into the audit log; a loss is noted, not raised mid-step."""
        if self.lost:
            return
        try:
            self.audit(self.entry("step", **{k: v for k, v in event.items() if k not in ("event", "t")}))
        except NodeopsError as exc:
            self.lost = str(exc)

    # -- the whole -----------------------------------------------------------------
    def __enter__(self) -> Operation:
        self.fleet.__enter__()
        try:
            if self.lock:
                self._acquire()
            if not self.dry_run:
                self.audit(self.start_entry())
        except BaseException:
            with contextlib.suppress(NodeopsError):  # e.g. Ctrl-C after the lock was taken: no stale lock
                self._release()
            self.fleet.close()
            raise
        if not self.dry_run:
            self.report.sinks.append(self._step)
        self.stop.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop.__exit__()
        if not self.dry_run:
            self.report.sinks.remove(self._step)
        try:
            end = self.end_entry(exc)
        except ValueError:  # a result outside its type (its writer's bug): nothing unchecked is written, no stale lock
            with contextlib.suppress(NodeopsError):
                self._release()
            self.fleet.close()
            raise
        try:
            if not self.lost and not self.dry_run:
                self.audit(end)
            self._release()
        except NodeopsError as problem:
            self.lost = self.lost or str(problem)
        finally:
            self.fleet.close()
        if self.report.json:
            self.report.write(json.dumps(end, default=str))
        if self.webhook is not None and not self.dry_run:  # a dry run is no operation: like the audit log
            self.webhook.send(operation_message(end))  # at most notify.TIMEOUT; a failure is one warning line
        if self.lost and exc is None:
            raise OperationFailed(f"the run finished, but the bastion session was lost ({self.lost}): the audit log "
                                  f"is incomplete; check {program()} lock.status --env {self.env}")  # fmt: skip


# -- the lock and the log, read and repaired by hand -------------------------------------
def _ledgers(fleet: Fleet, services: Sequence[str] | None = None) -> list[Ledger]:
    """A Ledger for each bastion of ``services`` (None: every bastion), holding nothing."""
    inventory = fleet.inventory
    grouped = inventory.bastions_of(list(inventory.services) if services is None else services)
    return [Ledger(fleet, name, names, "", {}) for name, names in grouped.items()]


def locks(fleet: Fleet, services: Sequence[str] | None = None) -> list[bastion.LockInfo]:
    """Every lock of the environment, held or stale, on the bastions of ``services`` (None: every bastion)."""
    return [lock for ledger in _ledgers(fleet, services)
            for lock in bastion.parse_locks(ledger.script(bastion.status(ledger.state_dir, ledger.env)))]  # fmt: skip


def release_stale(inventory: Inventory, services: Sequence[str], report: Reporter) -> list[bastion.LockInfo]:
    """Remove the locks of ``services`` whose run is gone (audited), each on its bastion; a live holder's lock is
    refused (exit 3)."""
    with Operation(inventory, "lock.release", services, report, lock=False) as op:
        found, removed, alive = {}, [], []
        for ledger in op.ledgers:
            out = ledger.script(bastion.release_stale(ledger.state_dir, op.env, ledger.services))
            found.update({lock.service: lock for lock in bastion.parse_locks(out)})
            removed += [found[line.split()[1]] for line in out.splitlines() if line.startswith("removed ")]
            alive += [found[line.split()[1]] for line in out.splitlines() if line.startswith("alive ")]
        for lock in removed:
            report(lock.service, "", f"released a stale lock: {lock.describe()}", holder=lock.holder)
        op.results = [Released(service=lock.service, released=lock.holder).record() for lock in removed]
        if alive:
            raise LockHeld("; ".join(describe_locks(alive)) + "; a live run's lock is not released: "
                           "stop that run (or its process on the bastion) first")  # fmt: skip
        return removed


def audit_log(fleet: Fleet, lines: int, steps: bool = True, services: Sequence[str] | None = None) -> list[Entry]:
    """The last ``lines`` entries of the audit log; without ``steps``, of the operations' start and end entries;
    read from the bastions of ``services`` (None: every bastion) and merged in time order. Each is parsed through
    its type (nodeops.records: docs/audit.schema.json); one that does not match is OperationFailed (exit 1)
    naming it (records.entry). A line cut by a crash mid-write is skipped."""
    found: list[tuple[str, int, Entry]] = []
    for ledger in _ledgers(fleet, services):
        text = ledger.script(bastion.read_audit(ledger.state_dir, ledger.env, lines, steps))
        where = f"{ledger.state_dir}/{ledger.env}/audit.jsonl on the {ledger.label}"
        found += [(e.time, i, e) for i, e in enumerate(entry(line, where) for line in bastion.parse_audit(text))]
    return [e for _, _, e in sorted(found, key=lambda f: f[:2])][-lines:]
