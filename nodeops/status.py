"""What runs where, observed: each node's role, container, version and uptime, the lease, the lock,
the pair's state. The shape of one service's result is docs/status.schema.json."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Collection, Mapping, Sequence

from nodeops import program
from nodeops.activation import Model, as_model, model_of
from nodeops.edges.postgres import LoginRefused
from nodeops.edges.ssh import Fleet
from nodeops.errors import NodeopsError
from nodeops.facts.container import Container
from nodeops.facts.holders import FencePending, keep_line
from nodeops.facts.issued import standing, with_standing
from nodeops.facts.observe import Observer
from nodeops.facts.role_facts import node_facts, with_facts
from nodeops.facts.view import NodeView
from nodeops.inventory import Inventory
from nodeops.job import Job
from nodeops.lease import lease_reader
from nodeops.operation import locks
from nodeops.rotate.rules import forced_command
from nodeops.rotate.service import fence_of, interrupted_rotations


def node_role(s: NodeView, activation: str | Model = "lease") -> str:
    """The node's word under the role's ``activation`` (nodeops.activation.Model.role_of; a role with kinds: its
    model, under which each node is read under its kind's). lease: active answers its
    health path, 200 or not (it holds the lease; node_health says if it is healthy), standby runs and answers
    nothing; keys: active holds the hot keys (io.nodeops.hot=true), standby runs without them (both answer); either:
    down (no running container), unknown (unreachable). all (every node serves, none is active or standby): serving
    (answers 200) or not serving (runs, answers otherwise or nothing), down, unknown."""
    return as_model(activation).role_of(s)


def node_health(s: NodeView) -> str:
    """passing: answers 200; failing: answers, not 200 (NodeView.failing names the checks); no answer; unknown."""
    if s.serving:
        return "passing"
    if s.failing:
        return "failing"
    return "no answer" if s.reachable else "unknown"


def pair_state(seen: Sequence[NodeView], activation: str | Model = "lease") -> str:
    """healthy: one active (node_role), healthy, every other node a running standby, all on the same inputs; mixed:
    as healthy, but the running nodes were started from different inputs (mixed_inputs); degraded: one active, but
    it answers unhealthy or a standby is missing or unknown; down: no active (lease: nobody answers; keys: nobody
    holds the hot keys); unknown: no active seen, and a node that could not be reached may be it; unsafe: more than
    one active (two holders under keys). Under activation ``all``: healthy (mixed) when every node serves, degraded
    when some do, down when none does, unknown when none is seen serving and a node could not be reached
    (Model.state_of). A role with kinds (its model): the worst of its kind groups' (activation.groups.Groups)."""
    return as_model(activation).state_of(seen, mixed_inputs(seen))


def mixed_inputs(seen: Sequence[NodeView], own: Mapping[str, str] | None = None,
                 hot: Collection[str] = ()) -> str | None:  # fmt: skip
    """``cl1-a runs 2.11.0 config 0a1b2c3d4e5f, cl1-b runs 2.11.0 config 9f8e7d6c5b4a`` when the running containers
    were started from different inputs (their version (Container.version), ``digest`` or ``config`` labels differ:
    another image, or another configuration, which covers the variables, templates and secret version ids: a partial
    deploy, a secret version moved on one node); None when they agree. The digest is named only when it differs.

    ``own``: {node: the config hash of its own rendering of the inventory} (Job.config_hashes) for a role that
    renders per node or whose hot files alone use a secret with versions, whose nodes' config labels differ by
    design (each relay its own topology; the holder's hash covers the hot secrets' versions, Rendered.config):
    there a node is compared with its own hash, not with the others' labels. The nodes on their own agree; nodes on
    other files than their own (an older inventory's) agree with each other when the variables and secret versions
    their labels record do (their templates cannot be compared across nodes; ``hot``: inputs_of's), and never with
    a node on its own. {} or None: one configuration for every node, the labels compared as they are."""
    running = [s for s in seen if s.container is not None and s.container.running]
    ran = {s.node.name: (s.container.version or "", *(s.container.label(k) or "" for k in ("digest", "config")))
           for s in running}  # fmt: skip
    if len({(*ran[s.node.name][:2], *inputs_of(s.node.name, s.container, own or {}, hot)) for s in running}) < 2:
        return None
    digests = len({digest for _, digest, _ in ran.values()}) > 1
    return ", ".join(f"{node} runs {version or '?'}" + (f" ({digest[:19] or '?'})" if digests else "") +
                     f" config {config[:12] or '?'}" for node, (version, digest, config) in ran.items())  # fmt: skip


def inputs_of(node: str, c: Container, own: Mapping[str, str], hot: Collection[str] = ()) -> tuple[str, ...]:
    """What mixed_inputs compares of ``node``'s running container ``c`` besides its version and digest: its
    ``config`` label, or, when ``own`` gives the node a hash of its own (files per node), ("own",) when it runs on
    it, else the variables and secret versions its labels record, but those of ``hot`` (the secrets only the hot
    files use, Rendered.hot_versions: the holder's labels alone name them)."""
    config = c.label("config") or ""
    if node not in own:
        return (config,)
    if config == own[node]:
        return ("own",)
    secrets = {n: v for n, v in json.loads(c.label("secrets") or "{}").items() if n not in hot}
    return ("other", c.label("variables") or "", json.dumps(secrets, sort_keys=True))


def uptime(started: str, now: datetime.datetime) -> float | None:
    """Seconds since an engine's RFC 3339 StartedAt (nanoseconds allowed); None when unknown."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", started.strip())
    if not match or started.startswith("0001-"):  # the engines' "never started"
        return None
    fraction = (match[2] or ".0")[:7]  # datetime keeps microseconds
    at = datetime.datetime.fromisoformat(match[1] + fraction + ("+00:00" if match[3] == "Z" else match[3]))
    return round(max(0.0, (now - at).total_seconds()), 1)


def node_status(s: NodeView, now: datetime.datetime, activation: str | Model = "lease") -> dict:
    """One node's entry of docs/status.schema.json: ``unreachable`` says why a node that could not be reached was
    not (NodeView.unreachable, the connection's error), null when it was; ``role`` as node_role says under the
    role's ``activation``; ``kind``, the node's kind, only for a node of a role with kinds."""
    c = s.container
    return {
        "node": s.node.name,
        "host": s.node.host,
        **({"kind": s.node.kind} if s.node.kind is not None else {}),
        "role": node_role(s, activation),
        "health": node_health(s),
        "failing": list(s.failing),
        "unreachable": None if s.reachable else (s.unreachable or "unreachable"),
        "container": c.status if c else None,
        "uptime_seconds": uptime(c.started, now) if c and c.running else None,
        "image": c.reference or None if c else None,
        "version": c.version if c else None,
        "digest": c.label("digest") if c else None,
        "config": (c.label("config") or "")[:12] if c else None,
    }


def lease_status(fleet: Fleet, job: Job) -> dict | None:
    """The service's lease as read from its database (``error`` when unreadable, with ``login_refused`` true when
    the server refused the inventory's credentials: what a node given them meets at its next start, e.g. after a
    rotation killed once the database took the new password); None if its role keeps none."""
    if job.role.lease is None:
        return None
    try:
        with lease_reader(fleet, job) as read:
            found = read()
    except LoginRefused as exc:
        return {"error": str(exc), "login_refused": True}
    except NodeopsError as exc:
        return {"error": str(exc)}
    return {"holder": found.holder, "held": found.held, "expires_in_seconds": round(found.remaining, 1),
            "describe": found.describe()}  # fmt: skip


def rotation_status(inventory: Inventory, job: Job) -> tuple[dict | None, FencePending | None]:
    """A rotation a run left under way on the service (nodeops.rotate.service.interrupted_rotations, one read of
    each secret's version stages): the rotations (``interrupted``) and the command that completes them (``finish``):
    rotate-secrets, or promote-standby --force when a forced promotion staged one (it comes first: a rotation
    refuses its pending version); ``error`` when a backend could not be read; None when none is under way. Beside
    it, that forced promotion's pending version (fence_of; None with the error)."""
    try:
        found = interrupted_rotations(inventory, job)
    except NodeopsError as exc:
        return {"error": str(exc)}, None
    if not found:
        return None, None
    names, where = list(found), f"--env {inventory.environment} --service {job.service.name}"
    if any(stages.fenced for stages in found.values()):
        finish = forced_command(inventory.environment, job.service.name)
        return {"interrupted": names, "finish": finish}, fence_of(inventory.environment, job, found)
    which = names[0] if len(names) == 1 else "all"  # a run completes only the interrupted ones of --secret all
    return {"interrupted": names, "finish": f"{program()} rotate-secrets {where} --secret {which}"}, None


def rotation_line(rotation: dict) -> str:
    """rotation_status's entry in words: ``kes interrupted: nodeops rotate-secrets ... completes it``, or
    ``unreadable: <the backend's error>``."""
    if "finish" in rotation:
        return f"{', '.join(rotation['interrupted'])} interrupted: {rotation['finish']} completes it"
    return f"unreadable: {rotation['error']}"


def service_state(seen: Sequence[NodeView], activation: str | Model, lease: dict | None, mixed: str | None) -> str:
    """The model's state of ``seen`` (``mixed``: mixed_inputs's, each node against its own files where the role
    renders per node), but never healthy (nor mixed: degraded) while the lease database refuses the inventory's
    credentials (lease_status's ``login_refused``): the active serves on a connection opened before, and no node
    started on those credentials would."""
    state = as_model(activation).state_of(seen, mixed)
    refused = lease is not None and lease.get("login_refused")
    return "degraded" if refused and state in ("healthy", "mixed") else state


def service_status(job: Job, seen: Mapping[str, NodeView], lease: dict | None, rotation: dict | None,
                   lock: dict | None, now: datetime.datetime, fence: FencePending | None = None) -> dict:  # fmt: skip
    """One service's entry of docs/status.schema.json (but its ``event``), from its nodes' views (``seen``: name ->
    view, in inventory order) and what was read beside them (lease_status, rotation_status, the lock's record), each
    node read under the role's model (activation.model_of: a role with kinds, each node under its kind's). With two
    or more holders of the hot keys, ``holders``: which to keep and which to stop (nodeops.facts.holders; ``fence``:
    a forced promotion's pending version, rotation_status's)."""
    model, views = model_of(job.role), list(seen.values())
    # each node against its own inputs (its own files, the holder's hot secret versions) when they differ by node
    mixed = mixed_inputs(views, job.config_hashes({s.node.name for s in views if s.hot}), job.rendered.hot_versions)
    keep = keep_line(job, views, fence)
    return {
        **({"holders": keep} if keep else {}),
        "service": job.service.name,
        "state": service_state(views, model, lease, mixed),
        "mixed": mixed,
        "lease": lease,
        "rotation": rotation,
        "lock": lock,
        "nodes": [node_status(s, now, model) for s in views],
    }


def status(fleet: Fleet, jobs: Sequence[Job]) -> list[dict]:
    held = {lock.service: lock for lock in locks(fleet, [job.service.name for job in jobs])}
    results = []
    for job in jobs:
        observer = Observer(fleet, job.service, job.role)
        seen = observer.views()
        lease = lease_status(fleet, job)
        lock = held[job.service.name].record() if job.service.name in held else None
        rotation, fence = rotation_status(fleet.inventory, job)
        result = service_status(job, seen, lease, rotation, lock, datetime.datetime.now(datetime.UTC), fence)
        result = with_facts(result, job, *node_facts(job, observer.answers))  # the role's, of those replies
        results.append(with_standing(result, job, standing(job, seen, observer.run)))  # its query, in the holder
    return results
