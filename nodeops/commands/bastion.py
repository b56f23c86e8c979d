"""Shell scripts run on the bastion for the deploy lock and the audit log, and parsers for their output (pure).

Every run passes through the bastion, so that is where two runs meet. Layout
under the inventory's ``bastion.state_dir`` (default ``~/.nodeops``), per
environment:

    <env>/locks/<service>.json   the holder: who, from where, CI run id, command, start time
    <env>/locks/<service>.run    "<run id> <pid>": the run holding it, and its process on the bastion
    <env>/runs/<run id>.flock    flock(1)ed by that process for as long as the run's SSH session lives
    <env>/runs/<run id>.beat     the run's heartbeat watchdog is on (.heard: a beat came since its last look)
    <env>/acquire.flock          serialises taking and releasing locks
    <env>/audit.jsonl            one JSON object per line, appended

A lock is **held** while its run's process holds ``runs/<run>.flock``; it
lives as long as the SSH session that started it (EOF on its stdin ends
it) and the run keeps sending a heartbeat (``runs/<run>.beat`` and
``.heard``, see ``hold``). A run that finishes sends ``release`` first and
the records go; a run that dies (SIGKILL, a frozen or cut-off machine)
leaves them behind with nobody holding the flock: the lock is **stale**.
A stale lock still refuses new runs (it is never silently taken over: the
dead run may have left a pair half changed) until ``fab lock.release
--force`` removes it, which is audited.

Every script fails closed: it reports success (``acquired``, ``released``,
``removed``, exit 0) only after each write it needs succeeded; a write that
fails (a full disk, a name too long for the file system, a directory that
is not writable) makes it undo its own records and exit non-zero.

Needs ``sh`` and util-linux ``flock`` on the bastion. Names and ``state_dir``
are validated by the inventory (names ``[a-z0-9][a-z0-9_-]*`` of at most 63
characters; no part of ``state_dir`` starts with ``-``) and quoted here all the same.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

# Exit statuses of the scripts (besides 0).
CONFLICT = 3  # acquire: a service is locked (held or stale); its lines say by whom
BUSY = 13  # another run kept acquire.flock for 30 s
NO_FLOCK = 11  # flock(1) is not installed on the bastion
NO_WRITE = 15  # hold: a record could not be written (the shell's own message says which and why); nothing is held


def _prologue(state_dir: str, env: str, create: bool = True) -> str:
    """Variables and checks every script starts with; ``create=False`` (a read) leaves a missing dir missing."""
    d = shlex.quote(f"{state_dir}/{env}")
    return (
        "set -u; umask 077\n"
        f"d={d}\n"
        f"command -v flock >/dev/null 2>&1 || {{ echo 'flock(1) is not installed'; exit {NO_FLOCK}; }}\n"
        + ('mkdir -p -- "$d/locks" "$d/runs" || exit 10\n' if create else '[ -d "$d/locks" ] || exit 0\n')
    )


# A lock's state and holder, one line: "<held|stale> <service> <bastion pid> <holder json>".
_DESCRIBE = (
    "describe() {\n"
    '  read -r run pid < "$d/locks/$1.run"\n'
    '  if flock -n "$d/runs/$run.flock" true 2>/dev/null; then state=stale; else state=held; fi\n'
    '  printf \'%s %s %s \' "$state" "$1" "${pid:-0}"\n'
    "  { cat \"$d/locks/$1.json\" 2>/dev/null || echo '{}'; } | head -n 1\n"
    "}\n"
)
_SERIALISE = f'exec 4>>"$d/acquire.flock"; flock -w 30 4 || {{ echo "busy"; exit {BUSY}; }}\n'


def _wrap(script: str) -> str:
    """Run under sh whatever the bastion user's login shell is."""
    return "sh -c " + shlex.quote(script)


def hold(state_dir: str, env: str, run: str, services: Sequence[str], timeout: int) -> str:
    """Take the locks of ``services`` for run ``run`` and keep them while the run is heard from.

    Protocol on the session: the script prints one line per conflicting
    lock and exits CONFLICT, or reads the holder record (one JSON line),
    writes it for every service, checks that the audit log takes writes and
    prints ``acquired``: only once every one of those writes succeeded
    (otherwise it removes what it wrote and exits NO_WRITE). Each following
    line read is appended to the audit log, except ``beat`` (the run is
    alive), until ``release`` (records removed, prints ``released``, or
    ``released audit-incomplete`` when an audit line could not be written)
    or EOF (the run is gone: records stay, stale).

    A client that is frozen or cut off sends no EOF: its TCP connection
    looks alive to sshd for hours. So a watchdog checks, every ``timeout``/2
    seconds, that a ``beat`` came since its last look, and ends the holder
    if none did: the lock is stale at most ``timeout`` seconds after the run
    was last heard from. It stops by itself once the holder has ended.
    """
    names = " ".join(shlex.quote(s) for s in services)
    locks = " ".join(f'"$d/locks/"{shlex.quote(s)}.json "$d/locks/"{shlex.quote(s)}.run' for s in services)
    r = shlex.quote(run)
    beat, heard = f'"$d/runs/"{r}.beat', f'"$d/runs/"{r}.heard'
    return _wrap(
        _prologue(state_dir, env)
        + _DESCRIBE
        + f'exec 3>>"$d/runs/"{r}.flock; flock -n 3 || exit 12\n'
        + f"trap 'rm -f \"$d/runs/\"{r}.flock' EXIT\n"  # unless the locks are taken (below)
        + _SERIALISE
        + "conflict=0\n"
        + f'for s in {names}; do [ -e "$d/locks/$s.run" ] && {{ describe "$s"; conflict=1; }}; done\n'
        + f"[ $conflict = 0 ] || exit {CONFLICT}\n"
        + "IFS= read -r holder || exit 14\n"
        # Until "acquired", a failed write takes back whatever this run wrote: no conflict was found under
        # acquire.flock, so every record of these services is this run's own.
        + f"trap 'rm -f {locks} {beat} {heard} \"$d/runs/\"{r}.flock' EXIT\n"
        + f"for s in {names}; do\n"
        + f'  printf \'%s\\n\' "$holder" > "$d/locks/$s.json" || exit {NO_WRITE}\n'
        + f'  printf \'%s %s\\n\' {r} "$$" > "$d/locks/$s.run" || exit {NO_WRITE}\n'
        + "done\n"
        + f"printf '' >> \"$d/audit.jsonl\" && printf '' > {beat} && printf '' > {heard} || exit {NO_WRITE}\n"
        + f"trap 'rm -f {beat} {heard}' EXIT; flock -u 4; exec 4>&-\n"  # the watchdog stops when this ends
        + f"( while sleep {max(1, timeout // 2)}; do\n"
        + f"    [ -e {beat} ] || exit 0\n"
        + f"    if [ -e {heard} ]; then rm -f {heard}; continue; fi\n"
        + f'    flock -n "$d/runs/"{r}.flock true || {{ rm -f {beat}; kill $$; }}; exit 0\n'
        + "  done ) </dev/null >/dev/null 2>&1 3>&- &\n"
        + "echo acquired\n"
        + "lost=\n"
        + "while IFS= read -r line; do\n"
        # After "acquired" the session's output is read only at the release: failures say nothing until then
        + f"  if [ \"$line\" = beat ]; then {{ printf '' > {heard}; }} 2>/dev/null; continue; fi\n"  # else: watchdog
        + '  if [ "$line" = release ]; then\n'
        + f'    rm -f {locks} "$d/runs/"{r}.flock || exit {NO_WRITE}\n'
        + '    echo "released${lost:+ audit-incomplete}"; exit 0\n'
        + "  fi\n"
        + '  { printf \'%s\\n\' "$line" >> "$d/audit.jsonl"; } 2>/dev/null || lost=1\n'
        + "done\n"
    )


def status(state_dir: str, env: str) -> str:
    """Every lock of the environment, one describe line each (creates nothing)."""
    return _wrap(
        _prologue(state_dir, env, create=False)
        + _DESCRIBE
        + 'for f in "$d"/locks/*.run; do [ -e "$f" ] || continue; s=${f##*/}; describe "${s%.run}"; done\n'
    )


def release_stale(state_dir: str, env: str, services: Sequence[str]) -> str:
    """Remove the locks of ``services`` whose run is gone; a live holder's lock is left alone.

    Prints a describe line per lock found (taken before any removal) and,
    per service, ``removed <service>``, ``alive <service>``, ``free <service>``
    or ``not removed <service>`` (then the exit status is NO_WRITE).
    """
    names = " ".join(shlex.quote(s) for s in services)
    return _wrap(
        _prologue(state_dir, env)
        + _DESCRIBE
        + _SERIALISE
        + "failed=0\n"
        + f"for s in {names}; do\n"
        + '  if [ ! -e "$d/locks/$s.run" ]; then echo "free $s"; continue; fi\n'
        + '  describe "$s"; read -r run pid < "$d/locks/$s.run"\n'
        + '  if ! flock -n "$d/runs/$run.flock" true 2>/dev/null; then echo "alive $s"\n'
        + '  elif rm -f "$d/locks/$s.json" "$d/locks/$s.run" "$d/runs/$run".*; then echo "removed $s"\n'
        + f'  else echo "not removed $s"; failed={NO_WRITE}; fi\n'
        + "done\n"
        + "exit $failed\n"
    )


def append_audit(state_dir: str, env: str) -> str:
    """Append the JSON lines on stdin to the audit log (for operations that hold no lock); exit 0 only once
    they are written."""
    return _wrap(_prologue(state_dir, env) + 'cat >> "$d/audit.jsonl"\n')


def read_audit(state_dir: str, env: str, lines: int, steps: bool = True) -> str:
    """The last ``lines`` entries; without ``steps``, of the start and end entries only (filtered there, so
    the count is of operations however many steps they had)."""
    log, n = '"$d/audit.jsonl"', int(lines)
    read = f"tail -n {n} {log}" if steps else f'grep -vF \'"event": "step"\' {log} | tail -n {n}'
    return _wrap(f"d={shlex.quote(f'{state_dir}/{env}')}; [ -f {log} ] || exit 0; {read}")


@dataclass(frozen=True)
class LockInfo:
    service: str
    state: str  # held | stale
    pid: int  # the holding process on the bastion
    holder: dict = field(default_factory=dict)

    def record(self) -> dict:
        """As fab status and fab lock.status print it (docs/status.schema.json: ``lock``)."""
        return {"state": self.state, "bastion_pid": self.pid, "holder": self.holder}

    def describe(self, services: str | None = None) -> str:
        """`<services>: locked by who@where, `command`, since when (alive or stale)`; services: its own by default."""
        h = self.holder
        who = f"{h.get('who', '?')}@{h.get('from', '?')}"
        ci = f", CI run {h['ci_run']}" if h.get("ci_run") else ""
        what = f"`{h['command']}`" if h.get("command") else "an unknown command"
        gone = " (its run is gone: stale)" if self.state == "stale" else f" (alive, bastion pid {self.pid})"
        return f"{services or self.service}: locked by {who}{ci}, {what}, since {h.get('started', '?')}{gone}"


def parse_locks(text: str) -> list[LockInfo]:
    """The describe lines of a script's output; other lines are ignored."""
    found = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[0] in ("held", "stale"):
            try:
                holder = json.loads(parts[3])
            except ValueError:
                holder = {}
            found.append(LockInfo(parts[1], parts[0], int(parts[2]) if parts[2].isdigit() else 0, holder))
    return found


def parse_audit(text: str) -> list[dict]:
    """The audit log's lines that are JSON objects (a line cut by a crash mid-write is skipped)."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
