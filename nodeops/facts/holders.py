"""Which of two or more nodes holding the hot keys (activation ``keys``: the lost holder of a forced promotion came
back with its keys) to keep, for ``fab status`` (the service's ``holders``), ``fab check`` (its ``holders`` finding)
and deploy's refusal (exit 4, "stop all but one").

From what is read already: each holder's container records the version of each secret it started with (its
``secrets`` label), and the service resolved the current version of each (the store's AWSCURRENT, as deploy would
start a node on). Each rotation of a hot secret, and each forced promotion (which issues new hot keys under the
role's chain fence), puts a new version in force that supersedes the one before it: a holder on the current
versions of the role's hot secrets (the secrets its hot files use) is the one to keep; one on other versions runs
superseded keys (a Cardano pool's: a certificate whose issue counter is below the chain's, whose blocks the chain
refuses). The engine knows no secret by name: the names are the role's. Pure.

One exception: a forced promotion that did not finish (its pending version, FencePending, is not current yet). The
holder whose container records that pending version is the one the forced promotion chose; the others run keys that
promotion supersedes (the lost holder, back with its keys), never to be kept: the line names the promotion's own
command, which completes it, and says to stop them (review rev16c F3: it said to keep the lost holder, on the
current versions, and called the pending ones superseded).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from nodeops import program
from nodeops.facts.view import NodeView
from nodeops.job import Job


class FencePending(NamedTuple):
    """A forced promotion's pending version, not finished: the hot ``secret`` whose store holds it staged, its
    ``version`` id, and the ``command`` that completes it (nodeops.rotate.service.fence_pending)."""

    secret: str
    version: str
    command: str

    def refusal(self, service: str, would: str) -> str:
        """Why a change other than ``command`` is refused on ``service`` while this version waits (Unsafe, exit 4),
        in one line: ``would`` says what the change would do to the fence (review rev16c F3)."""
        return (
            f"{service}: a forced promotion staged new hot keys and did not finish ({self.secret} version "
            f"{self.version[:8]}): {would}; {self.command} completes it first; nothing changed"
        )


STOP = ("stop {its} container and wipe its tmpfs (or power its host off), then {program} deploy restarts it without "
        "them as the standby")  # fmt: skip


def _stop(nodes: list[str]) -> str:
    return STOP.format(its="its" if len(nodes) == 1 else "their", program=program())


def _runs(job: Job, s: NodeView) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """(the versions ``s``'s container records, the current ones) of the hot secrets of ``s``'s own files."""
    rendered = job.at(s.node.name).rendered
    try:
        recorded = json.loads(s.container.label("secrets") or "{}") if s.container else {}
    except ValueError:
        recorded = {}
    names = sorted(rendered.hot_secrets)
    return ({n: recorded.get(n) if isinstance(recorded, dict) else None for n in names},
            {n: rendered.secret_versions.get(n) for n in names})  # fmt: skip


def _versions(versions: dict[str, str | None]) -> str:
    by: dict[str, list[str]] = {}
    for name, version in versions.items():
        by.setdefault((version or "?")[:8], []).append(name)
    return ", ".join(f"{', '.join(names)} version {version}" for version, names in by.items())


def _moved(recorded: dict[str, str | None], current: dict[str, str | None]) -> dict[str, str | None]:
    return {name: version for name, version in recorded.items() if version != current[name]}


def keep_line(job: Job, seen: Iterable[NodeView], fence: FencePending | None = None) -> str | None:
    """When two or more nodes of ``seen`` hold the hot keys: one line naming the holder on the current versions of
    the role's hot secrets (keep it) and the others (theirs superseded: stop them), or saying it cannot be told from
    the versions (none, or several, on the current ones). With ``fence`` (a forced promotion's pending version) and
    a holder recording it: that holder is the promotion's, completed by its command, and every other holder is to be
    stopped (fenced_line). None for fewer than two holders (or no hot secret)."""
    held = [s for s in seen if s.hot]
    if len(held) < 2:
        return None
    runs = {s.node.name: _runs(job, s) for s in held}
    if not any(current for _, current in runs.values()):
        return None
    if fence is not None and (line := fenced_line(runs, fence)):
        return line
    keep = [node for node, (recorded, current) in runs.items() if recorded == current]
    names = ", ".join(f"{node} runs {_versions(recorded)}" for node, (recorded, _) in runs.items())
    if len(keep) != 1:
        return (f"{names}: {'each' if keep else 'none'} on the current versions "
                f"({_versions(next(iter(runs.values()))[1])}), so which to keep cannot be told from them")  # fmt: skip
    stop = [node for node in runs if node != keep[0]]
    return (f"keep {keep[0]}, which runs the current hot keys ({_versions(runs[keep[0]][1])}); "
            f"{', '.join(stop)} {'runs' if len(stop) == 1 else 'run'} superseded ones "
            f"({'; '.join(_versions(_moved(*runs[n])) for n in stop)}: a later rotation or forced promotion issued the "
            f"current ones, and the chain refuses theirs): {_stop(stop)}")  # fmt: skip


def fenced_line(runs: dict[str, tuple[dict, dict]], fence: FencePending) -> str | None:
    """keep_line's words when a holder of ``runs`` (node -> (recorded, current) versions) records ``fence``'s
    pending version: it is the forced promotion's, which ``fence.command`` completes; the others run keys that
    promotion supersedes (the lost holder back with its keys): stop them. None when no holder records it."""
    new = [node for node, (recorded, _) in runs.items() if recorded.get(fence.secret) == fence.version]
    if len(new) != 1:
        return None
    stop = [node for node in runs if node != new[0]]
    return (f"{new[0]} runs the hot keys a forced promotion staged and did not finish ({_versions(runs[new[0]][0])}): "
            f"{fence.command} completes it; {', '.join(stop)} {'runs' if len(stop) == 1 else 'run'} keys that "
            f"promotion supersedes ({'; '.join(_versions(runs[n][0]) for n in stop)}; the chain refuses them once it "
            f"completes): never keep {'it' if len(stop) == 1 else 'them'}: stop {'its' if len(stop) == 1 else 'their'} "
            f"container and wipe its tmpfs (or power its host off); once that promotion completed, {program()} deploy "
            "restarts it without them as the standby")  # fmt: skip
