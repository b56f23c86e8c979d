"""What a deploy changes, per service, as a diff: pure, from what each node's container runs to what the
inventory wants. `fab deploy --dry-run` prints it and stops; `fab deploy` prints it before acting.

The old side of a node is what its container records (labels ``image``, ``digest``, ``variables``,
``secrets`` and ``files``: the text of its non-secret files, so a change of the role's templates, an override
in the operator's ``roles/`` say, is a real diff of what the node read; its secret files rendered again in
memory by nodeops.job.restore_job). A container started by an older nodeops records no text: its files are
rendered again by today's templates, and a warning says so. The new side is this run's preflight. Nodes
that run the same inputs share one diff. Secret files are compared in memory and
said to be "changed", never shown; a secret reference is named with its version ids; no value of a secret
is in a ServiceDiff, a line or an event (the tests use sentinel values to prove it).

Digests are shown as their first 12 hex digits (``2f28f8bad9f7``); the JSON fields carry them whole.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from nodeops.commands.node import image_tag
from nodeops.plan import moved_versions, older_than
from nodeops.render import RenderedFile

AT_DEPLOY = "resolved at deploy"  # a digest the dry run could not read without pulling
BODY_INDENT = 6  # a file's unified diff, for a person: each line under its summary line, after this many spaces


@dataclass(frozen=True)
class Side:
    """The inputs of a container: the one a node runs (old) or the one the run would start (new).

    ``image``: its reference (``reg/repo:2.11.0``), None when the node has no container; ``digest``: the
    registry's manifest digest (``sha256:<64 hex>``), None when unknown; ``variables``: the non-secret
    variables its templates read (Role.read_variables: the role's defaults overlaid by the service's, without
    those a variable it sets makes unused), None when unknown (a container that records none); ``files``: the
    rendered files by name, None when they cannot be rendered again (restore_job refused); ``secrets``: {secret
    name: backend version id} of the secrets the files use; ``data``: {data file name: sha256 hex} (a profile's
    ``data_files``, never recorded as text: compared by hash; a container's ``data`` label, none: no data file)."""

    image: str | None = None
    digest: str | None = None
    variables: Mapping[str, object] | None = field(default_factory=dict)
    files: Mapping[str, RenderedFile] | None = field(default_factory=dict)
    secrets: Mapping[str, str | None] = field(default_factory=dict)
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One difference. ``kind``: image | variable | file | secret-file | data-file | secret. ``old``/``new``: the
    image references, variable values (None: absent), secret version ids or a data file's sha256; for a file
    ``old``/``new`` are "present"/None; ``digests``: (old, new) for an image; ``lines``: a non-secret file's unified
    diff."""

    kind: str
    name: str
    old: object = None
    new: object = None
    digests: tuple[str | None, str | None] = (None, None)
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodesDiff:
    nodes: tuple[str, ...]  # the nodes whose containers run the same old inputs
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class ServiceDiff:
    service: str
    groups: tuple[NodesDiff, ...]
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return any(g.changes for g in self.groups)


def short(digest: str | None) -> str:
    """``sha256:2f28f8bad9f7b16e...`` -> ``2f28f8bad9f7`` (12 hex); None -> ``none``."""
    return digest.split(":", 1)[-1][:12] if digest else "none"


def _text(value: object) -> str:
    """A variable's value as a diff line shows it: a string as it is (``(empty)`` for ""), else compact JSON."""
    if isinstance(value, str):
        return value or "(empty)"
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def _tag(image: str) -> str:
    """An image reference as a diff shows it beside another of its tag: the tag, and the digest when the reference
    pins one (``reg/repo:2.10.0@sha256:6bc8...`` -> ``2.10.0@6bc87626beba``), so that a reference pinned or
    unpinned does not read ``2.10.0 -> 2.10.0``."""
    pinned = image.partition("@")[2]
    return image_tag(image) + (f"@{short(pinned)}" if pinned else "")


def _files(old: Mapping[str, RenderedFile], new: Mapping[str, RenderedFile]) -> list[Change]:
    changes = []
    for name in sorted({*old, *new}):
        was, now = old.get(name), new.get(name)
        if was is not None and now is not None and was.data == now.data and was.secret == now.secret:
            continue
        presence = ("present" if was else None, "present" if now else None)
        if any(f is not None and f.secret for f in (was, now)):
            changes.append(Change("secret-file", name, *presence))  # compared in memory, never shown
            continue
        lines = difflib.unified_diff(
            (was.data if was else b"").decode("utf-8", "replace").splitlines(),
            (now.data if now else b"").decode("utf-8", "replace").splitlines(),
            f"a/{name}" if was else "/dev/null", f"b/{name}" if now else "/dev/null", lineterm="",
        )  # fmt: skip
        changes.append(Change("file", name, *presence, lines=tuple(lines)))
    return changes


def changes(old: Side, new: Side) -> tuple[Change, ...]:
    """Every difference from ``old`` to ``new``: the image (reference or digest; a new digest not known is
    one, since the tag may have moved), each variable added, removed or changed, each file, each secret whose
    version moved (plan.moved_versions). Variables or files unknown on either side (None) are not compared."""
    out: list[Change] = []
    digest_moved = new.digest is None or old.digest != new.digest
    if old.image != new.image or digest_moved:
        out.append(Change("image", "image", old.image, new.image, digests=(old.digest, new.digest)))
    if old.variables is not None and new.variables is not None:
        for name in sorted({*old.variables, *new.variables}):
            was, now = old.variables.get(name), new.variables.get(name)
            if (name in old.variables, was) != (name in new.variables, now):
                out.append(Change("variable", name, was, now))
    if old.files is not None and new.files is not None:
        out += _files(old.files, new.files)
    for name in sorted({*old.data, *new.data}):
        if old.data.get(name) != new.data.get(name):
            out.append(Change("data-file", name, old.data.get(name), new.data.get(name)))
    for name, was, now in moved_versions(old.secrets, new.secrets):
        out.append(Change("secret", name, was, now))
    return tuple(out)


def without_hot(side: Side) -> Side:
    """``side`` without the role's hot files (activation keys): what a node that does not hold the keys has."""
    if not side.files or not any(f.hot for f in side.files.values()):
        return side
    return replace(side, files={name: f for name, f in side.files.items() if not f.hot})


def service_diff(service: str, olds: Mapping[str, Side], new: Side, db_version: str | None = None,
                 unrestorable: Mapping[str, str] | None = None, notes: Sequence[str] = (),
                 holders: Collection[str] | None = None,
                 own: Mapping[str, Side] | None = None) -> ServiceDiff:  # fmt: skip
    """The diff of ``service`` from each node's ``olds`` (node name -> Side; a node without a container: an
    empty Side) to ``new``; nodes with equal old sides share one group, in the order given. ``holders``: the nodes
    that hold the hot keys after the change (activation keys): ``new``'s hot files are theirs only, the other
    nodes' new side has none (None: every node gets every file); ``own``: node -> its own new side, for a role
    that renders per node (Job.at), in place of ``new``.

    Warnings: ``new``'s image tag is older than ``db_version`` (the version the service's database last ran,
    lease.recorded_version: the node would refuse it, so a deploy is refused, exit 4); a node in
    ``unrestorable`` (node -> why, from restore_job) cannot be put back on its own inputs if the change fails
    (a deploy refuses it without --allow-inexact-restore), and its files are not compared; ``notes``: the
    caller's own, as they are."""
    groups: list[tuple[list[str], Side, Side]] = []
    for node, side in olds.items():
        mine = (own or {}).get(node, new)
        to = mine if holders is None or node in holders else without_hot(mine)
        same = next((g for g in groups if g[1:] == (side, to)), None)
        if same:
            same[0].append(node)
        else:
            groups.append(([node], side, to))
    warnings = []
    tag = image_tag(new.image or "")
    if older_than(tag, db_version):
        warnings.append(f"image version {tag} is older than {db_version}, the version the database last ran: the "
                        "node refuses to start on it; a deploy is refused (exit 4)")  # fmt: skip
    for node, why in (unrestorable or {}).items():
        warnings.append(f"{node}: not restorable if the change fails: {why}")
    warnings += notes
    return ServiceDiff(
        service,
        tuple(NodesDiff(tuple(nodes), changes(side, to)) for nodes, side, to in groups),
        tuple(warnings),
    )


@dataclass(frozen=True)
class Line:
    """One event of the summary: ``node`` ("" for the whole service, else the nodes it covers, comma-joined),
    ``message`` (one line), ``body`` (a file's unified diff, for a person), ``data`` (the event's added JSON
    fields; ``diff``: the kind of line)."""

    node: str
    message: str
    body: tuple[str, ...] = ()
    data: Mapping[str, object] = field(default_factory=dict)


def _describe(change: Change) -> tuple[str, dict]:
    c = change
    if c.kind == "image":
        old_d, new_d = c.digests
        same_repo = c.old is not None and c.new is not None and _repository(str(c.old)) == _repository(str(c.new))
        shown = (image_tag(str(c.old)), image_tag(str(c.new))) if same_repo else (c.old or "none", c.new)
        if shown[0] == shown[1] and c.old != c.new:  # one tag, pinned by digest on one side only
            shown = (_tag(str(c.old)), _tag(str(c.new)))
        text = f"image {shown[0]} -> {shown[1]} (digest {short(old_d)} -> {short(new_d) if new_d else AT_DEPLOY})"
        return text, {"old": c.old, "new": c.new, "old_digest": old_d, "new_digest": new_d or AT_DEPLOY}
    if c.kind == "variable":
        if c.old is None:
            return f"variable {c.name}: added {_text(c.new)}", {"name": c.name, "new": c.new}
        if c.new is None:
            return f"variable {c.name}: removed (was {_text(c.old)})", {"name": c.name, "old": c.old}
        return f"variable {c.name}: {_text(c.old)} -> {_text(c.new)}", {"name": c.name, "old": c.old, "new": c.new}
    if c.kind == "secret":
        return f"secret {c.name}: version {str(c.old)[:8]} -> {str(c.new)[:8]}", {
            "secret_version_moved": True, "name": c.name, "old_version": c.old, "new_version": c.new}  # fmt: skip
    state = "added" if c.old is None else "removed" if c.new is None else "changed"
    if c.kind == "secret-file":
        return f"secret file {c.name}: {state} (content not shown)", {"name": c.name, "state": state}
    if c.kind == "data-file":
        return f"data file {c.name}: {state} (sha256 {short(c.old)} -> {short(c.new)})", {
            "name": c.name, "state": state, "old_sha256": c.old, "new_sha256": c.new}  # fmt: skip
    plus = sum(1 for line in c.lines if line.startswith("+") and not line.startswith("+++"))
    minus = sum(1 for line in c.lines if line.startswith("-") and not line.startswith("---"))
    return f"file {c.name}: {state} (+{plus} -{minus})", {"name": c.name, "state": state, "unified_diff": list(c.lines)}


def summary(diff: ServiceDiff) -> list[Line]:
    """The diff as event lines, in order: each group's changes (or "no change"), then the warnings (the plan's
    steps follow, on deploy's own ``plan:`` line)."""
    lines: list[Line] = []
    everyone = sum(len(g.nodes) for g in diff.groups)
    for group in diff.groups:
        node = "" if len(group.nodes) == everyone else ",".join(group.nodes)
        where = {"nodes": list(group.nodes)}
        if not group.changes:
            lines.append(Line(node, "no change", data={"diff": "none", **where}))
        for change in group.changes:  # a secret's version too: one line for the nodes that run the same inputs
            text, data = _describe(change)
            lines.append(Line(node, text, change.lines, {"diff": change.kind, **where, **data}))
    for warning in diff.warnings:
        lines.append(Line("", f"warning: {warning}", data={"diff": "warning"}))
    return lines
