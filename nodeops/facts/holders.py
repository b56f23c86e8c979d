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
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from nodeops import program
from nodeops.facts.view import NodeView
from nodeops.job import Job


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


def keep_line(job: Job, seen: Iterable[NodeView]) -> str | None:
    """When two or more nodes of ``seen`` hold the hot keys: one line naming the holder on the current versions of
    the role's hot secrets (keep it) and the others (theirs superseded: stop them), or saying it cannot be told from
    the versions (none, or several, on the current ones). None for fewer than two holders (or no hot secret)."""
    held = [s for s in seen if s.hot]
    if len(held) < 2:
        return None
    runs = {s.node.name: _runs(job, s) for s in held}
    if not any(current for _, current in runs.values()):
        return None
    keep = [node for node, (recorded, current) in runs.items() if recorded == current]
    names = ", ".join(f"{node} runs {_versions(recorded)}" for node, (recorded, _) in runs.items())
    if len(keep) != 1:
        return (f"{names}: {'each' if keep else 'none'} on the current versions "
                f"({_versions(next(iter(runs.values()))[1])}), so which to keep cannot be told from them")  # fmt: skip
    stop = [node for node in runs if node != keep[0]]
    return (f"keep {keep[0]}, which runs the current hot keys ({_versions(runs[keep[0]][1])}); "
            f"{', '.join(stop)} {'runs' if len(stop) == 1 else 'run'} superseded ones "
            f"({'; '.join(_versions(_moved(*runs[n])) for n in stop)}: a later rotation or forced promotion issued the "
            f"current ones, and the chain refuses theirs): stop {'its' if len(stop) == 1 else 'their'} container and "
            f"wipe its tmpfs (or power its host off), then {program()} deploy restarts it without them as the "
            "standby")  # fmt: skip
