"""One bastion's part of a run: the deploy locks of the services reached through it, held over one session, and
the environment's audit log there (nodeops/commands/bastion.py has the layout under its ``state_dir``).

A run that reaches services behind several bastions holds one Ledger per bastion (nodeops.operation): each
service's lock and audit records live on its own bastion, so runners that share a bastion meet there and runs on
different bastions share nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from nodeops import program
from nodeops.commands import bastion
from nodeops.edges.ssh import Fleet, Session, execute
from nodeops.errors import LockHeld, OperationFailed


def lock_conflict(text: str, env: str) -> LockHeld:
    """The LockHeld (exit 3) for a refused lock, from the hold script's lines (``text``): who holds what, and
    what to do (wait, or check and release a stale one)."""
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


class Ledger:
    """The bastion ``name`` of ``fleet``'s inventory, for ``services`` (those of the run reached through it), in
    run ``run`` held by ``identity`` (the holder record, nodeops.operation.holder_record)."""

    def __init__(self, fleet: Fleet, name: str, services: Sequence[str], run: str,
                 identity: Mapping[str, object]) -> None:  # fmt: skip
        inventory = fleet.inventory
        self.fleet, self.name, self.services = fleet, name, list(services)
        self.run, self.identity = run, identity
        self.env = inventory.environment
        self.state_dir = inventory.bastions[name].state_dir
        self.lock_timeout = inventory.bastions[name].lock_timeout
        self.label = fleet.keys.bastions[name].label  # "bastion", or "bastion NAME" when there are several
        self.session: Session | None = None

    def acquire(self) -> None:
        """Take the locks of ``services`` and keep them over one session while the run lives. LockHeld (exit 3)
        naming the holder when a service is locked (lock_conflict), or when the lock table stayed busy;
        OperationFailed when the bastion could not take them."""
        script = bastion.hold(self.state_dir, self.env, self.run, self.services, self.lock_timeout)
        self.session = Session(self.fleet.bastion(self.name), script, timeout=60)
        self.session.send_line(json.dumps(self.identity))  # read by the script once no lock conflicts
        seen = []
        while line := self.session.readline():
            if line.strip() == "acquired":
                self.session.untimed()  # it now lives as long as the run
                self.session.beat("beat", self.lock_timeout / 4)  # two or more per look of the bastion's watchdog
                return
            seen.append(line)
        result = self.session.finish()
        self.session = None
        text = "".join(seen) + result.stdout
        if result.exit_code == bastion.CONFLICT:
            raise lock_conflict(text, self.env)
        if result.exit_code == bastion.BUSY:
            raise LockHeld(f"{self.label}: another run kept the lock table busy for 30 s; try again")
        raise OperationFailed(f"{self.label}: could not take the deploy lock (exit {result.exit_code}): "
                              f"{text.strip()[-200:] or 'no output'}")  # fmt: skip

    def release(self) -> None:
        """Release the locks this ledger holds (none: nothing to do); OperationFailed when the bastion does not
        confirm, or says the audit log did not take every line."""
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            session.send_line("release")
            answer = session.readline().strip()
            if answer == "released audit-incomplete":
                raise OperationFailed(f"{self.label}: {self.state_dir}/{self.env}/audit.jsonl did not take every line")
            if answer != "released":
                raise OperationFailed(f"{self.label}: the lock holder did not confirm the release")
        finally:
            session.close()

    def append(self, line: str) -> None:
        """One audit line, over the session that holds the locks, else appended on its own."""
        if self.session is not None:
            self.session.send_line(line)
        else:
            self.script(bastion.append_audit(self.state_dir, self.env), (line + "\n").encode())

    def share(self, entry: Mapping[str, object]) -> dict | None:
        """What of ``entry`` (an audit entry of the whole run) this bastion's log records: a step of a service of
        another bastion, nothing; a start or end, with only this bastion's services and their results."""
        if entry.get("service") and entry["service"] not in self.services:
            return None
        mine = dict(entry)
        if "services" in mine:
            mine["services"] = [s for s in mine["services"] if s in self.services]  # type: ignore[union-attr]
        if "results" in mine:
            mine["results"] = [r for r in mine["results"] if r.get("service") in self.services]  # type: ignore[union-attr]
        return mine

    def script(self, text: str, stdin: bytes | None = None) -> str:
        """A script of nodeops.commands.bastion run on this bastion: its stdout, or OperationFailed."""
        return on_bastion(self.fleet, self.name, self.label, text, stdin)


def on_bastion(fleet: Fleet, name: str, label: str, script: str, stdin: bytes | None = None) -> str:
    """``script`` run on the bastion ``name`` (``label`` in messages): its stdout, or OperationFailed."""
    res = execute(fleet.bastion(name), script, stdin)
    if res.exit_code == bastion.NO_FLOCK:
        raise OperationFailed(f"{label}: flock(1) is not installed (Debian/Ubuntu: util-linux)")
    if res.exit_code:
        raise OperationFailed(f"{label}: {res.stdout.strip()[-200:] or res.stderr.strip()[-200:] or res.exit_code}")
    return res.stdout
