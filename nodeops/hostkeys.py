"""`nodeops hostkeys`, the pure part: fingerprints, the expected-keys file, the comparison table and
the known_hosts text to write. The keys themselves are read by nodeops.edges.ssh.scan_host_keys.

The expected-keys file (``--expected FILE``), one entry a line; blank lines and ``#`` comments skipped:

    cl1-a SHA256:Xb3...        <node name or host> <SHA256 fingerprint> [anything after: ignored]
    10.0.1.5 SHA256:Xb3...     (the host as in the inventory, or "[host]:port" for a port other than 22)
    10.0.1.5 ssh-ed25519 AAAA...   a known_hosts line (several comma-separated names allowed)

A fingerprint is OpenSSH's ``SHA256:<base64 without padding>`` (what ``ssh-keygen -lf`` prints and
what an EC2 instance's console output shows). Hashed known_hosts names (``|1|...``) are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from nodeops.edges.ssh import known_hosts_name
from nodeops.errors import InvalidInput
from nodeops.inventory import HostKey, Node

MATCH, NEW, CHANGED, MISMATCH, UNLISTED, UNREACHABLE = "match", "new", "CHANGED", "MISMATCH", "unlisted", "UNREACHABLE"


def fingerprint(key: HostKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key: ``SHA256:`` + unpadded base64 of sha256(key blob)."""
    digest = hashlib.sha256(base64.b64decode(key.blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Expected:
    """One entry of the expected-keys file: who it names, the fingerprint it expects, its line number."""

    name: str
    fingerprint: str
    line: int


def parse_expected(text: str, source: str) -> list[Expected]:
    """The entries of an expected-keys file (format: the module's docstring).

    Raises InvalidInput (exit 2) naming ``source:line`` and the fix for a line of neither form.
    """
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue

        def bad(problem: str, number: int = number) -> InvalidInput:
            return InvalidInput(f"{source}:{number}: {problem}; expected '<node or host> SHA256:<fingerprint>' or "
                                "a known_hosts line '<host> <key type> <base64 key>'")  # fmt: skip

        if len(words) < 2:
            raise bad("one word only")
        if words[0].startswith("|"):
            raise bad("a hashed known_hosts name cannot be matched to a node")
        if words[1].startswith("SHA256:") and len(words[1]) > len("SHA256:"):
            entries.append(Expected(words[0], words[1], number))
            continue
        if len(words) < 3:
            raise bad(f"{words[1]!r} is not a SHA256 fingerprint")
        try:
            key = HostKey(words[1], base64.b64encode(base64.b64decode(words[2], validate=True)).decode())
        except binascii.Error:
            raise bad(f"the key data {words[2][:20]!r}... is not base64") from None
        entries.extend(Expected(name, fingerprint(key), number) for name in words[0].split(","))
    return entries


def names_of(node: Node) -> tuple[str, ...]:
    """What an expected entry may call ``node``: its name, its host, its known_hosts name."""
    return (node.name, node.host, known_hosts_name(node.host, node.port))


@dataclass(frozen=True)
class Row:
    """One line of the table: a node's scanned key of one type and what it was compared with."""

    node: str
    address: str
    keytype: str
    fingerprint: str
    status: str  # MATCH, NEW, CHANGED (against the pinned keys) or MATCH, MISMATCH, UNLISTED (against --expected)
    detail: str = ""


def against_pinned(node: Node, scanned: Sequence[HostKey], pinned: Sequence[HostKey]) -> list[Row]:
    """Each scanned key of ``node`` against what the inventory pins: MATCH (that very key is pinned), NEW
    (nothing is pinned for the node), CHANGED (keys are pinned, of that type another one or none of them
    matches: connections are refused until the operator looks)."""
    address = f"{node.host}:{node.port}"
    pinned_set = set(pinned)
    rows = []
    for key in scanned:
        if key in pinned_set:
            status, detail = MATCH, ""
        elif not pinned:
            status, detail = NEW, "not pinned"
        else:
            same_type = [k for k in pinned if k.keytype == key.keytype]
            status = CHANGED if same_type or not (set(scanned) & pinned_set) else NEW
            detail = f"pinned: {fingerprint(same_type[0])}" if same_type else "type not pinned"
        rows.append(Row(node.name, address, key.keytype, fingerprint(key), status, detail))
    return rows


def against_expected(
    scans: Mapping[Node, Sequence[HostKey]], expected: Sequence[Expected], source: str, ignore: Iterable[str] = ()
) -> list[Row]:
    """Every scanned key against the expected-keys file: MATCH (listed for that node), MISMATCH (the file lists
    other fingerprints for the node: its line numbers in ``detail``), UNLISTED (the file says nothing of the node).

    Entries naming one of ``ignore`` (the bastion, which is verified at every connection) are skipped; an entry
    naming no node is InvalidInput (exit 2) with its line: a typo would otherwise pass unverified.
    """
    nodes = list(scans)
    skip = set(ignore)
    by_node: dict[str, list[Expected]] = {n.name: [] for n in nodes}
    for entry in expected:
        owner = next((n for n in nodes if entry.name in names_of(n)), None)
        if owner is None:
            if entry.name in skip:
                continue
            raise InvalidInput(f"{source}:{entry.line}: {entry.name!r} is no node of the inventory nor its host "
                               f"(nodes: {', '.join(n.name for n in nodes)})")  # fmt: skip
        by_node[owner.name].append(entry)
    rows = []
    for node, keys in scans.items():
        listed = by_node[node.name]
        wanted = {e.fingerprint for e in listed}
        for key in keys:
            fp = fingerprint(key)
            if fp in wanted:
                status, detail = MATCH, ""
            elif listed:
                status = MISMATCH
                detail = f"{source} line(s) {', '.join(str(e.line) for e in listed)} expect {', '.join(sorted(wanted))}"
            else:
                status, detail = UNLISTED, f"not in {source}"
            rows.append(Row(node.name, f"{node.host}:{node.port}", key.keytype, fp, status, detail))
    return rows


def known_hosts_text(current: str, scans: Mapping[Node, Sequence[HostKey]]) -> str:
    """``current`` (a known_hosts file's text) with every scanned node's lines replaced by its scanned keys:
    other lines (other hosts, comments) kept in order, the nodes' lines appended in inventory order."""
    names = {known_hosts_name(n.host, n.port) for n in scans}
    kept = [line for line in current.splitlines() if not (line.split() and set(line.split()[0].split(",")) & names)]
    added = [f"{known_hosts_name(n.host, n.port)} {k.line}" for n, keys in scans.items() for k in keys]
    return "\n".join([*kept, *added]) + "\n"


def host_key_snippet(scans: Mapping[Node, Sequence[HostKey]]) -> list[str]:
    """The ``host_key:`` lines to put under each node of the inventory (for an inventory without ssh.known_hosts)."""
    lines = []
    for node, keys in scans.items():
        lines.append(f"  {node.name} ({node.service}, {node.host}):")
        lines.append("    host_key:")
        lines.extend(f"      - {k.line}" for k in keys)
    return lines
