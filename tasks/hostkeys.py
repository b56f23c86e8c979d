"""nodeops hostkeys: read every node's host keys through the pinned bastion, show them, and pin them
(known_hosts, after a yes) or compare them with a file of expected keys."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from invoke import task
from rich.console import Console

from nodeops import program
from nodeops.console import hostkeys_view, wrap_spans
from nodeops.edges.ssh import Fleet, scan_host_keys
from nodeops.errors import InvalidInput, InventoryError, Unsafe, raise_failures
from nodeops.hostkeys import (
    CHANGED,
    MATCH,
    MISMATCH,
    UNLISTED,
    against_expected,
    against_pinned,
    host_key_snippet,
    known_hosts_text,
    parse_expected,
)

from ._cli import INVENTORY_HELP, cli, confirm_always, is_interactive, load


@task(
    help={
        **INVENTORY_HELP,
        "expected": "file of expected keys ('<node or host> SHA256:<fp>' or known_hosts lines): compare, write "
        "nothing, exit 4 on any key not listed there",
        "write": "write the keys into the inventory's ssh.known_hosts file (asks first; --yes to skip)",
        "yes": "do not ask before --write (needed without a terminal)",
        "nodes": "comma-separated node names (default: every node)",
        "json": "one JSON object per key and a summary (the default when stdout is not a terminal)",
    }
)
@cli
def hostkeys(c, env=None, inventory=None, expected=None, write=False, yes=False, nodes=None, json_=False):
    """Every node's host key fingerprints, read through the pinned bastion and trusted only on your word."""
    json_ = json_ or not is_interactive()
    if expected and write:
        raise InvalidInput("--expected compares and --write pins: choose one")
    inv = load(env, inventory)
    wanted = None
    if expected:
        path = Path(expected)
        try:
            wanted = parse_expected(path.read_text(), str(path))
        except OSError as exc:
            raise InvalidInput(f"--expected {path}: cannot read it: {exc.strerror}") from None
    known = inv.ssh.known_hosts
    # A known_hosts file still to be written is no error here (the other commands need it to exist).
    usable = inv if known is None or known.exists() else dataclasses.replace(
        inv, ssh=dataclasses.replace(inv.ssh, known_hosts=None))  # fmt: skip
    targets = inv.select_nodes([n for n in (nodes or "").split(",") if n])
    with Fleet(usable, services=list(dict.fromkeys(n.service for n in targets))) as fleet:
        with ThreadPoolExecutor(max_workers=min(fleet.max_parallel, len(targets))) as pool:
            outcomes = list(pool.map(lambda node: _scan(fleet, node), targets))
        pinned = {node: fleet.keys.pinned(node) for node in targets}
    scans = {node: found for node, found in outcomes if not isinstance(found, Exception)}
    failures = [{"error": found} for _node, found in outcomes if isinstance(found, Exception)]
    if wanted is not None:
        ignore = tuple(a for b in inv.bastions.values() for a in (b.host, f"[{b.host}]:{b.port}"))
        rows = against_expected(scans, wanted, expected, ignore=ignore)
    else:
        rows = [row for node, keys in scans.items() for row in against_pinned(node, keys, pinned[node])]
    if json_:
        for r in rows:
            print(json.dumps({"event": "hostkey", "node": r.node, "address": r.address, "type": r.keytype,
                              "fingerprint": r.fingerprint, "status": r.status, "detail": r.detail}))  # fmt: skip
    else:
        Console(highlight=False).print(hostkeys_view(rows))
    raise_failures(failures)
    bad = [r for r in rows if r.status != MATCH and (wanted is not None or r.status == CHANGED)]
    if bad:
        raise Unsafe(f"{refusal(bad, expected)}; nothing written")  # exit 4, fitted to a terminal by cli()
    if wanted is not None:
        return
    if not write:
        advice = how_to_pin(inv, scans, [r for r in rows if r.status != MATCH], command_line(env, inventory))
        if json_:
            print(json.dumps({"event": "summary", "keys": len(rows), "not_pinned": sorted(
                {r.node for r in rows if r.status != MATCH}), "next": advice}))  # fmt: skip
        else:
            print(*fit_advice(advice, Console().width), sep="\n")
        return
    if known is None:
        raise InventoryError(str(inv.source), "ssh.known_hosts", "not set: --write writes there; set it (e.g. "
                             "known_hosts next to the inventory), or put the host_key lines shown without --write "
                             "under each node")  # fmt: skip
    plan = [f"write {sum(map(len, scans.values()))} key(s) of {len(scans)} node(s) into {known}",
            *(f"{r.node} {r.keytype} {r.fingerprint}" for r in rows)]  # fmt: skip
    confirm_always("hostkeys --write", plan, yes)
    current = known.read_text() if known.exists() else ""
    _replace(known, known_hosts_text(current, scans))
    print(json.dumps({"event": "wrote", "path": str(known), "keys": len(rows)}) if json_ else f"wrote {known}")


def _scan(fleet: Fleet, node):
    try:
        return node, scan_host_keys(fleet, node)
    except Exception as exc:  # noqa: BLE001 (a NodeopsError naming the node; reported after the table)
        return node, exc


def refusal(bad, expected: str | None) -> str:
    """Why the keys of ``bad`` rows (not MATCH) are refused, by status: against --expected ``expected`` MISMATCH
    ("do not match") and UNLISTED ("not listed in"); against the pinned keys CHANGED."""

    def nodes(status: str) -> str:
        return ", ".join(sorted({r.node for r in bad if r.status == status}))

    if expected is None:
        return f"host keys differ from the pinned keys of {nodes(CHANGED)}: see the table"
    parts = []
    if nodes(MISMATCH):
        parts.append(f"host keys of {nodes(MISMATCH)} do not match {expected}")
    if nodes(UNLISTED):
        parts.append(f"host keys of {nodes(UNLISTED)} are not listed in {expected} (add them after checking them)")
    return "; ".join(parts)


def command_line(env: str | None, inventory: str | None) -> str:
    """The command that pins the keys, as this run was given: ``nodeops hostkeys --env prod --write``."""
    chosen = ["--env", env] if env else ["--inventory", inventory or ""]
    return shlex.join([program(), "hostkeys", *chosen, "--write"])


def how_to_pin(inv, scans, unpinned, command: str) -> list[str]:
    """What to do next for ``unpinned`` rows (lines to print): run ``command`` when the inventory sets
    ssh.known_hosts, else put the printed host_key lines under the nodes."""
    if not unpinned:
        return ["every node's keys are pinned"]
    lines = ["Check these fingerprints against the hosts' own (e.g. an EC2 instance's console output), then:"]
    if inv.ssh.known_hosts is not None:
        return [*lines, f"  {command}", f"  (writes them into {inv.ssh.known_hosts})"]
    lines.append(f"put these lines under the nodes of {inv.source}:")
    return lines + host_key_snippet({n: k for n, k in scans.items() if any(r.node == n.name for r in unpinned)})


def fit_advice(advice: list[str], width: int) -> list[str]:
    """how_to_pin's lines for a person: its first (a sentence) wrapped at words to ``width`` columns; the rest as
    they are (a command, a path, host_key lines to paste: cut, they would no longer paste). Pure."""
    first, *rest = advice
    return [first[a:b] for a, b in wrap_spans(first, width)] + rest


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
