"""What runs on a pair at this moment, observed (now_of) and recorded (now_record: the audit log's end entry and a
run's result, records.Now) or said in one line (standing_line: an interrupted run's message)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from nodeops.activation import MODELS, Model, model_of
from nodeops.errors import NodeopsError
from nodeops.facts.container import Container
from nodeops.facts.observe import Observer
from nodeops.records import NodeNow, Now


def now_of(observer: Observer) -> dict:
    """What runs on ``observer``'s pair at this moment, observed now over its connections (a node not connected yet
    is connected; each node's container inspected, its health path asked): ``now_record``'s shape. A node that
    cannot be reached is said so; nothing is raised."""
    seen: dict[str, tuple[Container | None, bool, tuple[str, ...]] | None] = {}
    for n in observer.service.nodes:
        try:
            if n.name not in observer.conns:
                observer.connect(n)
            found = observer.container(n.name)
        except NodeopsError:
            seen[n.name] = None
            continue
        serving, failing = observer.health(n)
        seen[n.name] = (found, serving, failing)
    return now_record(seen, model=model_of(observer.role))


def now_record(seen: Mapping[str, tuple[Container | None, bool, tuple[str, ...]] | None],
               activation: str = "lease", model: Model | None = None) -> dict:  # fmt: skip
    """What runs on a pair, from what was observed last: ``seen`` maps each node's name to (its service container
    or None, whether its health path answered 200, the checks it says fail) or to None when it could not be
    reached; ``activation``: the role's model, which says who is active (Model.holds, Model.now), by its name, or
    ``model`` itself (a role with node kinds has no one name: activation.groups.Groups). Returns
    ``{"active": the one active node or None (lease: the one that answers, 200 or unhealthy; keys: the one holding
    the hot keys; all: None), ["serving": under all, every node that answers 200,] "nodes": {name: {"state",
    "version", "image", "digest", "config", "secret_versions", "failing"}}}``; ``state`` is one of serves,
    unhealthy (answers 503: holds the lease), waits (runs, does not answer), stopped, empty (no container),
    unreachable. Version, image, digest, config hash and secret versions (backend version ids, never a value) are
    the container's labels (input_labels); a node without a container has only its state."""
    nodes: dict[str, NodeNow] = {}
    for name, look in seen.items():
        if look is None:
            nodes[name] = NodeNow(state="unreachable")
            continue
        container, serving, failing = look
        if container is None:
            nodes[name] = NodeNow(state="empty")
            continue
        state = "serves" if serving else "unhealthy" if failing else "waits" if container.running else "stopped"
        digest = container.label("digest")
        nodes[name] = NodeNow(state=state, version=container.version, image=container.reference or None,
                              digest=None if digest in (None, "none") else digest, config=container.label("config"),
                              secret_versions=json.loads(container.label("secrets") or "{}"),
                              **({"failing": list(failing)} if state == "unhealthy" else {}))  # fmt: skip
    model, looks = model or MODELS[activation], {name: look for name, look in seen.items() if look is not None}
    active = [name for name, look in looks.items() if model.holds(*look)]
    return Now(**model.now(active, [name for name, look in looks.items() if look[1]]), nodes=nodes).record()


def standing_line(record: Mapping) -> str:
    """A ``now_record`` in one line: "now: a serves (2.11.0, config 0123456789ab), b waits (...)"; the active is
    named ("b serves as the active") when its state alone does not say it (activation keys: every node serves)."""
    parts, active, nodes = [], record["active"], record["nodes"]
    states = [node["state"] for node in nodes.values()]
    named = active is not None and states.count(nodes[active]["state"]) > 1
    for name, node in nodes.items():
        held = f" ({node['version']}, config {str(node['config'])[:12]})" if "config" in node else ""
        parts.append(f"{name} {node['state']}{' as the active' if named and name == active else ''}{held}")
    return "now: " + ", ".join(parts)
