"""One run of a command that changes a pair: its Fleet, its deploy lock on the bastion, its audit trail.

    with Operation(inventory, "deploy", ["cl1", "cl2"], report) as op:
        ...  # op.fleet is open, the services are locked, every report() event is audited
        op.results = [...]  # each service's result as its type stores it (nodeops.records; never a secret)

Entering opens the bastion and takes the services' locks (``LockHeld``,
exit 3, naming the holder, when another run has any of them, alive or
stale). Every event the run reports is appended to the environment's audit
log on the bastion, over the same session that holds the lock; leaving
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
from nodeops.edges.ssh import Fleet, Session, execute
from nodeops.errors import Declined, Interrupted, LockHeld, NodeopsError, OperationFailed
from nodeops.inventory import Inventory
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


def lock_conflict(text: str, env: str) -> LockHeld:
    locks = bastion.parse_locks(text)
    hint = "wait for it to finish"
    if any(lock.state == "stale" for lock in locks):
        names = ",".join(lock.service for lock in locks if lock.state == "stale")
        hint = (f"the run that held it is gone: check what it left ({program()} status --env {env}), then "
                f"{program()} lock.release --env {env} --service {names} --force")  # fmt: skip
    return LockHeld("; ".join(describe_locks(locks)) + f"; {hint}")


def describe_locks(locks: Sequence[bastion.LockInfo]) -> list[str]:
    """One line per holding run ("cl1, cl2: locked by ..."), not one per service."""
    runs: dict[tuple, list[bastion.LockInfo]] = {}
    for lock in locks:
        runs.setdefault((lock.holder.get("run"), lock.state, lock.pid), []).append(lock)
    return [same[0].describe(", ".join(lock.service for lock in same)) for same in runs.values()]


def end_result(exc: BaseException | None) -> str:
    """An operation's end as its audit entry and last JSON line say it (docs/events.schema.json ``end.result``):
    ok; declined when its question was answered no (Declined: exit 2, nothing done); stopped when it was asked to
    stop (Interrupted, KeyboardInterrupt: exit 130, at a safe point, the error saying what runs); failed otherwise."""
    if exc is None:
        return "ok"
    if isinstance(exc, Interrupted | KeyboardInterrupt):
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
        self.fleet = Fleet(inventory)
        self.session: Session | None = None
        self.results: list[dict] = []
        self.lost: str | None = None
        self.started = time.monotonic()
        self.stop = StopRequests(lambda line: report("", "", line, stopping=True), stopping)  # Ctrl-C, SIGTERM
        self.webhook = webhook(inventory)  # read before any host is contacted: an unreadable one is exit 2

    @property
    def env(self) -> str:
        return self.inventory.environment

    @property
    def state_dir(self) -> str:
        return self.inventory.bastion.state_dir

    # -- lock ----------------------------------------------------------------------
    def _acquire(self) -> None:
        timeout = self.inventory.bastion.lock_timeout
        script = bastion.hold(self.state_dir, self.env, self.run, self.services, timeout)
        self.session = Session(self.fleet.bastion(), script, timeout=60)
        self.session.send_line(json.dumps(self.identity))  # read by the script once no lock conflicts
        seen = []
        while line := self.session.readline():
            if line.strip() == "acquired":
                self.session.untimed()  # it now lives as long as the run
                self.session.beat("beat", timeout / 4)  # two or more per look of the bastion's watchdog
                return
            seen.append(line)
        result = self.session.finish()
        self.session = None
        text = "".join(seen) + result.stdout
        if result.exit_code == bastion.CONFLICT:
            raise lock_conflict(text, self.env)
        if result.exit_code == bastion.BUSY:
            raise LockHeld("bastion: another run kept the lock table busy for 30 s; try again")
        raise OperationFailed(f"bastion: could not take the deploy lock (exit {result.exit_code}): "
                              f"{text.strip()[-200:] or 'no output'}")  # fmt: skip

    def _release(self) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            session.send_line("release")
            answer = session.readline().strip()
            if answer == "released audit-incomplete":
                raise OperationFailed(f"bastion: {self.state_dir}/{self.env}/audit.jsonl did not take every line")
            if answer != "released":
                raise OperationFailed("bastion: the lock holder did not confirm the release")
        finally:
            session.close()

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
        line = json.dumps(entry, default=str)  # a result's error: its one-line message
        if self.session is not None:
            self.session.send_line(line)
        else:
            _on_bastion(self.fleet, bastion.append_audit(self.state_dir, self.env), (line + "\n").encode())

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
def _on_bastion(fleet: Fleet, script: str, stdin: bytes | None = None) -> str:
    res = execute(fleet.bastion(), script, stdin)
    if res.exit_code == bastion.NO_FLOCK:
        raise OperationFailed("bastion: flock(1) is not installed (Debian/Ubuntu: util-linux)")
    if res.exit_code:
        raise OperationFailed(f"bastion: {res.stdout.strip()[-200:] or res.stderr.strip()[-200:] or res.exit_code}")
    return res.stdout


def locks(fleet: Fleet, inventory: Inventory) -> list[bastion.LockInfo]:
    """Every lock of the environment, held or stale."""
    return bastion.parse_locks(_on_bastion(fleet, bastion.status(inventory.bastion.state_dir, inventory.environment)))


def release_stale(inventory: Inventory, services: Sequence[str], report: Reporter) -> list[bastion.LockInfo]:
    """Remove the locks of ``services`` whose run is gone (audited); a live holder's lock is refused (exit 3)."""
    with Operation(inventory, "lock.release", services, report, lock=False) as op:
        out = _on_bastion(op.fleet, bastion.release_stale(op.state_dir, op.env, op.services))
        found = {lock.service: lock for lock in bastion.parse_locks(out)}
        removed = [found[line.split()[1]] for line in out.splitlines() if line.startswith("removed ")]
        for lock in removed:
            report(lock.service, "", f"released a stale lock: {lock.describe()}", holder=lock.holder)
        op.results = [Released(service=lock.service, released=lock.holder).record() for lock in removed]
        alive = [found[line.split()[1]] for line in out.splitlines() if line.startswith("alive ")]
        if alive:
            raise LockHeld("; ".join(describe_locks(alive)) + "; a live run's lock is not released: "
                           "stop that run (or its process on the bastion) first")  # fmt: skip
        return removed


def audit_log(fleet: Fleet, inventory: Inventory, lines: int, steps: bool = True) -> list[Entry]:
    """The last ``lines`` entries of the audit log; without ``steps``, of the operations' start and end entries.
    Each is parsed through its type (nodeops.records: docs/audit.schema.json); one that does not match is
    OperationFailed (exit 1) naming it (records.entry). A line cut by a crash mid-write is skipped."""
    state_dir, env = inventory.bastion.state_dir, inventory.environment
    text = _on_bastion(fleet, bastion.read_audit(state_dir, env, lines, steps))
    return [entry(line, f"{state_dir}/{env}/audit.jsonl on the bastion") for line in bastion.parse_audit(text)]
