"""Raise the kernel limits the labs up need, and put back what no lab needs any more.

Labs are global on the machine and several run at once, so the limits are computed from every lab's host count
(its ``state.json``), under one lock for the whole machine. What this module changes is recorded in
``<state root>/kernel.json`` ({key: {"was": the value found, "set": the value written}}) before it is written;
``restore`` lowers a key to what the labs still up need, back to ``was`` once they need no more than it, and only
while the value is still the one written (someone else's later change is left alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from lab.topology import NEIGHBOURS_PER_HOST, kernel_limits
from nodeops.errors import InvalidInput

SYSCTL_ROOT = Path("/proc/sys")
PER_HOST_ENV = "NODEOPS_LAB_NEIGHBOURS_PER_HOST"  # a larger worst case per host (a lab test's small-scale proof)


def _path(sysctl_root: Path, key: str) -> Path:
    return sysctl_root / key.replace(".", "/")


def per_host() -> int:
    """The neighbour entries a host of a lab brought up now can add: NEIGHBOURS_PER_HOST, or ``PER_HOST_ENV``'s
    larger worst case. Recorded in the lab's state (``neighbours_per_host``), so the other labs' lab.up and lab.down
    compute this lab's need as it was brought up, not with their own figure."""
    return int(os.environ.get(PER_HOST_ENV, NEIGHBOURS_PER_HOST))


def other_labs(state_root: Path, name: str) -> dict[str, dict]:
    """Every lab but ``name`` that has a state (up, or part way up or down): {its name: its ``state.json``}; a
    state that cannot be read (being replaced, not JSON) is left out."""
    found = {}
    for state_file in state_root.glob("*/state.json"):
        if state_file.parent.name != name:
            with contextlib.suppress(OSError, ValueError):
                found[state_file.parent.name] = json.loads(state_file.read_text())
    return found


def _labs_up(state_root: Path, name: str, hosts: int | None) -> list[tuple[int, int]]:
    """Each lab's (hosts, neighbour entries a host can add): its recorded ``hosts`` (else its namespaces, the
    switch's counted, an upper bound) and its recorded ``neighbours_per_host``; ``name``'s own is ``hosts`` and
    per_host() (None: it is going down)."""
    labs = [] if hosts is None else [(hosts, per_host())]
    for state in other_labs(state_root, name).values():
        labs.append((state.get("hosts", len(state.get("netns", []))),
                     state.get("neighbours_per_host", NEIGHBOURS_PER_HOST)))  # fmt: skip
    return labs


@contextlib.contextmanager
def _machine_lock(state_root: Path) -> Iterator[dict]:
    """The record, under the machine-wide lock (held by one lab.up or lab.down at a time, whichever lab)."""
    with open(state_root / "kernel.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record_file = state_root / "kernel.json"
        record = json.loads(record_file.read_text()) if record_file.exists() else {}
        yield record
        tmp = record_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        tmp.replace(record_file)


def raise_for(
    state_root: Path, name: str, hosts: int, record: Callable[[], None], sysctl_root: Path = SYSCTL_ROOT
) -> list[str]:
    """Raise every limit below what lab ``name`` with ``hosts`` hosts and the other labs up need together, then call
    ``record``, which writes this lab's need where every lab reads it (its ``state.json``: ``hosts`` and
    ``neighbours_per_host``), still under the machine lock: a lab.down of another lab run between the two would
    lower the limits to what the labs recorded then, under this one (CI saw it).

    Returns one line per key raised ("key: old -> new"). Raises InvalidInput (exit 2) naming the key, the values
    and the fix when a limit is short and cannot be written (a read-only /proc/sys, no root): nothing is changed
    and nothing recorded.
    """
    with _machine_lock(state_root) as changes:
        short = {}
        for key, need in kernel_limits(_labs_up(state_root, name, hosts)).items():
            now = int(_path(sysctl_root, key).read_text())
            if now < need:
                short[key] = (now, need)
        written: dict[str, int] = {}
        for key, (now, need) in short.items():
            try:
                _path(sysctl_root, key).write_text(f"{need}\n")
            except OSError as exc:
                for done, was in written.items():  # nothing half applied
                    _path(sysctl_root, done).write_text(f"{was}\n")
                needs = ", ".join(f"{k} >= {n} (now {v})" for k, (v, n) in short.items())
                fix = " ".join(f"{k}={n}" for k, (_, n) in short.items())
                raise InvalidInput(
                    f"lab.up: the labs up need {needs}, and {key} cannot be written here ({exc.strerror}): "
                    f"run `sysctl -w {fix}` as root on the machine, or bring up fewer --nodes"
                ) from None
            written[key] = now
            changes[key] = {"was": changes.get(key, {}).get("was", now), "set": need}
        record()
        return [f"{key}: {now} -> {need}" for key, (now, need) in short.items()]


def restore(state_root: Path, name: str, sysctl_root: Path = SYSCTL_ROOT) -> list[str]:
    """After lab ``name`` is down: lower each recorded key to what the labs still up need, and to its old value
    once they need no more than it.

    Returns one line per key lowered ("key: set -> new"); a key whose value someone else changed since is
    forgotten and left as it is.
    """
    with _machine_lock(state_root) as record:
        needed = kernel_limits(_labs_up(state_root, name, None)) if record else {}
        lines = []
        for key, change in list(record.items()):
            path = _path(sysctl_root, key)
            now, target = int(path.read_text()), max(needed.get(key, 0), change["was"])
            if now != change["set"]:
                del record[key]
                continue
            if target < now:
                path.write_text(f"{target}\n")
                lines.append(f"{key}: {now} -> {target}")
            if target == change["was"]:
                del record[key]
            else:
                change["set"] = target  # another lab still needs it raised
        return lines
