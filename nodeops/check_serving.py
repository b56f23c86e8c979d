"""fab check's verdicts on who serves (nodeops.check): the one active under a model with a standby (check_active),
every node under activation all (check_serving), in the model's words; a service's own verdicts group by group, a
role with kinds judged kind by kind, each under its own model (judge_service). Pure: they judge what was fetched."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nodeops.activation import MODELS, Model
from nodeops.facts.view import NodeView
from nodeops.inventory import Service
from nodeops.status import node_role

Verdict = tuple[str, str]  # "pass" | "warn" | "unknown" | "fail", and why, in one line
Reply = tuple[int, bytes] | None  # an HTTP reply (status, body); None: nothing answered


def check_active(serving: Mapping[str, bytes | None], path: str, lb_url: str | None, lb: Reply,
                 failing: tuple[str, ...] = (), *, lease_client: Callable[[bytes], str | None],
                 model: Model = MODELS["lease"]) -> Verdict:  # fmt: skip
    """``serving``: the active nodes (``model``'s: Model.is_active; lease: those that answer on ``path``, 200 or not;
    keys: the holder), with their replies' bodies (None: it answered nothing); ``failing``: the checks the one active
    says fail (() when it answers 200); ``lb``: the load balancer's reply to ``lb_url`` (None: no answer);
    ``lease_client``: the role's hook that reads which node sent a reply (nodeops.role_hooks). Worded in the model's
    terms (Model.active_is, one_active, no_active, many_active). The node the load balancer's reply names is compared
    with the active's only where the model says the load balancer's 200 comes from the active
    (Model.lb_answers_from_active: not under keys, where every node answers 200)."""
    if not serving:
        return "fail", model.no_active.format(path=path, reached="")
    if len(serving) > 1:
        return "fail", model.many_active.format(n=len(serving), path=path, nodes=", ".join(sorted(serving)))
    (node, body), = serving.items()  # fmt: skip
    if failing:
        return "fail", f"{node} {model.active_is} but answers {path} unhealthy (failing: {', '.join(failing)})"
    if body is None:
        return "fail", f"{node} {model.active_is} but does not answer {path}"
    if lb_url is None:
        return "pass", f"{model.one_active.format(node=node, path=path)} (no load balancer in the inventory)"
    if lb is None:
        return "fail", f"{node} serves, but the load balancer {lb_url} does not answer"
    if lb[0] != 200:
        return "fail", f"{node} serves, but the load balancer {lb_url} answers HTTP {lb[0]}"
    if not model.lb_answers_from_active:
        return "pass", f"{node} is the active; the load balancer answers 200 (every node serves: any may answer)"
    ours, theirs = lease_client(body), lease_client(lb[1])
    if ours is None or theirs is None:
        return "pass", f"{node} serves; the load balancer answers 200 (its reply does not say which node answered)"
    if ours != theirs:
        return "fail", f"the load balancer answers from {theirs[:8]}, not from the active {node} ({ours[:8]})"
    return "pass", f"{node} serves; the load balancer answers 200 from it ({ours[:8]})"


def check_serving(seen: Mapping[str, NodeView], path: str, lb_url: str | None, lb: Reply) -> Verdict:
    """Activation all: every node of ``seen`` answers ``path`` with 200, and the load balancer (``lb``: its reply to
    ``lb_url``; None: no answer) with 200. Fails naming the nodes that do not serve and how each is seen."""
    silent = [f"{s.node.name}: {node_role(s, 'all')}" + (f" (failing: {', '.join(s.failing)})" if s.failing else "")
              for s in seen.values() if not s.serving]  # fmt: skip
    if silent:
        return "fail", f"{len(silent)} of {len(seen)} nodes do not serve {path} ({'; '.join(silent)}): all should"
    if lb_url is not None and (lb is None or lb[0] != 200):
        answer = "does not answer" if lb is None else f"answers HTTP {lb[0]}"
        return "fail", f"all {len(seen)} nodes serve, but the load balancer {lb_url} {answer}"
    via = "" if lb_url is None else "; the load balancer answers 200"
    return "pass", f"all {len(seen)} nodes serve {path}{via}"


def check_service(model: Model, seen: Mapping[str, NodeView], answers: Mapping[str, bytes], path: str,
                  lb_url: str | None, lb: Reply,
                  lease_client: Callable[[bytes], str | None]) -> tuple[str, Verdict]:  # fmt: skip
    """The service's serving check under ``model``: ``serving`` (check_serving) for a model where every node serves,
    else ``active`` (check_active) over the nodes the model calls active (``answers``: each node's latest health
    reply body, by name, for the nodes that answered)."""
    if not model.has_standby:
        return "serving", check_serving(seen, path, lb_url, lb)
    actives = {name: answers.get(name) for name, s in seen.items() if model.is_active(s)}
    if not actives and (lost := [name for name, s in seen.items() if not s.reachable]):  # the active may be one
        none = model.no_active.format(path=path, reached=" reached")
        who = "it" if len(lost) == 1 else "one of them"
        return "active", ("fail", f"{none}; {', '.join(lost)} cannot be reached, and {who} may be the one that does")
    failing = seen[next(iter(actives))].failing if len(actives) == 1 else ()
    return "active", check_active(actives, path, lb_url, lb, failing, lease_client=lease_client, model=model)


def judge_service(model: Model, service: Service, seen: Mapping[str, NodeView], answers: Mapping[str, bytes],
                  lb: Reply, lease: Callable[[str | None], Verdict], lease_client: Callable[[bytes], str | None],
                  path: str) -> tuple[list[tuple[str, Verdict]], list[tuple[str, Verdict]], set[str]]:  # fmt: skip
    """The service's own verdicts, group by group of ``model.groups`` (one group for a role without kinds; a role
    with kinds: one per kind, under its model, its checks named ``<check>:<kind>``): (check_service's, and once,
    for the first group with a standby, ``lease``'s verdict given that group's one active or None), the warnings
    (a group with a standby but one node: no failover), and the nodes to judge as standbys (each node of a group
    with a standby but its active; when no active is seen, each one reached: one that is not may be the active)."""
    verdicts, warnings, standbys = [], [], set()
    for kind, group_model, group, views in model.groups(service, seen):
        at = f":{kind}" if kind else ""
        name, verdict = check_service(group_model, views, answers, path, service.load_balancer, lb, lease_client)
        verdicts.append((name + at, verdict))
        if not group_model.has_standby:  # every node of the group serves: none is a standby
            continue
        actives = [node for node, s in views.items() if group_model.is_active(s)]
        active = actives[0] if len(actives) == 1 else None
        if not any(check == "lease" for check, _ in verdicts):
            verdicts.append(("lease", lease(active)))
        if len(group.nodes) == 1:
            warnings.append(("standby" + at, ("warn", "no standby in the inventory: no failover")))
        standbys |= {node for node, s in views.items() if node != active and (active is not None or s.reachable)}
    return verdicts, warnings, standbys
