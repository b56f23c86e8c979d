"""A role's facts about its nodes, through its ``node_facts`` and ``check_facts`` hooks (nodeops.role_hooks): the
named facts ``fab status`` shows per node, read from each node's reply to the role's health path (the very reply
the observer got: no second request), and the findings ``fab check`` adds from them.

A hook that raises, or answers out of shape, fails only the ``facts`` finding (check) or is said once beside the
service's nodes (status's ``facts_error``), in one line naming the role and the hook, never quoting what it was
given (a reply, a variable). The engine knows no fact by name: names and values are the role's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodeops import program
from nodeops.facts.holders import FencePending
from nodeops.job import Job
from nodeops.role_hooks import RoleHookFailed, no_node_facts

Fact = str | int | float | bool | None
FACTS_CHECK = "facts"  # check's finding for a hook that raised or answered out of shape
PROBLEM = "problem"  # the one fact the engine reads: a node that answers but cannot do its work, in the role's words
_SCALARS = (str, int, float, bool, type(None))


def says_facts(job: Job) -> bool:
    """Whether ``job``'s role defines ``node_facts`` (a role without it keeps its status JSON as it was)."""
    return job.role.hooks.node_facts is not no_node_facts


def hook_variables(job: Job) -> dict[str, object]:
    """What the hooks get as ``variables``: the service's variables over the role's defaults, ``PROFILE`` the
    profile in use."""
    return {**job.variables, "PROFILE": job.profile}


def _out_of_shape(job: Job, hook: str, what: str) -> str:
    return f"role {job.role.name}: its hook {hook} returned {what}: fix the role's module"


def node_facts(job: Job, replies: Mapping[str, bytes]) -> tuple[dict[str, dict[str, Fact]], str | None]:
    """(node -> {name: fact}, None) from the role's ``node_facts`` over ``replies`` (node -> its health reply's
    body: the nodes that answered); ({}, the one-line problem) when the hook raised or returned anything but a
    mapping of those nodes to mappings of names (str) to facts (str, int, float, bool or None)."""
    if not says_facts(job):
        return {}, None
    try:
        found: Any = job.role.hooks.node_facts(dict(replies), hook_variables(job))
    except RoleHookFailed as exc:
        return {}, str(exc)
    if not isinstance(found, Mapping) or not all(isinstance(f, Mapping) for f in found.values()):
        return {}, _out_of_shape(job, "node_facts", f"{type(found).__name__}, not node -> {{name: fact}}")
    if set(found) - set(replies):
        return {}, _out_of_shape(job, "node_facts", "facts of a node that did not answer")
    for facts in found.values():
        if not all(isinstance(k, str) and isinstance(v, _SCALARS) for k, v in facts.items()):
            return {}, _out_of_shape(job, "node_facts", "a fact that is not name (str) -> str, number, bool or None")
    return {node: dict(facts) for node, facts in found.items()}, None


def command_variables(job: Job, environment: str) -> dict[str, str]:
    """What ``check_facts`` also gets, to name a command its finding asks for in full: ``PROGRAM`` (``fab``, as the
    operator runs it) and ``SERVICE_OPTIONS`` (``--env <environment> --service <service>``)."""
    return {"PROGRAM": program(), "SERVICE_OPTIONS": f"--env {environment} --service {job.service.name}"}


def fact_findings(job: Job, facts: Mapping[str, Mapping[str, Fact]], problem: str | None, environment: str,
                  fence: FencePending | None = None) -> list[tuple[str, str, tuple[str, str]]]:  # fmt: skip
    """check's findings from the role's ``check_facts`` over ``facts`` (node_facts'), each (node or "" for the
    service, check, (pass or fail, detail)); ``problem`` (node_facts' own) or a hook that raises or answers out of
    shape (not (node, check, ok, detail): str, str, bool, str, the node one of the service's) is one failed
    ``facts`` finding instead. ``environment``: the inventory's (command_variables); ``fence``: a forced
    promotion's pending version, whose command the hook gets as ``FENCE_COMMAND`` (a new value is issued by that
    command then, not by a rotation, which refuses it)."""
    if problem is not None:
        return [("", FACTS_CHECK, ("fail", f"not checked: {problem}"))]
    if not says_facts(job):
        return []
    nodes = {"", *(n.name for n in job.service.nodes)}
    try:
        found = list(
            job.role.hooks.check_facts(
                {n: dict(f) for n, f in facts.items()},
                {
                    **hook_variables(job),
                    **command_variables(job, environment),
                    **({"FENCE_COMMAND": fence.command} if fence else {}),
                },
            )
        )
    except RoleHookFailed as exc:
        return [("", FACTS_CHECK, ("fail", f"not checked: {exc}"))]
    shaped = [f for f in found if isinstance(f, tuple) and len(f) == 4 and f[0] in nodes and isinstance(f[1], str)
              and isinstance(f[2], bool) and isinstance(f[3], str)]  # fmt: skip
    if len(shaped) != len(found):
        what = "a finding that is not (node, check, ok, detail): a node of the service or '', str, bool, str"
        return [("", FACTS_CHECK, ("fail", f"not checked: {_out_of_shape(job, 'check_facts', what)}"))]
    return [(node, name, ("pass" if ok else "fail", " ".join(detail.split()))) for node, name, ok, detail in shaped]


def problem_of(facts: Mapping[str, Fact]) -> str | None:
    """A node's ``PROBLEM`` fact, made one line; None when its facts give none (or not a string). Pure."""
    found = facts.get(PROBLEM)
    return " ".join(found.split()) if isinstance(found, str) else None


def with_facts(result: dict, job: Job, facts: Mapping[str, Mapping[str, Fact]], problem: str | None) -> dict:
    """A service's status entry (nodeops.status.service_status) with each node's ``facts`` ({} for a node that
    said none) and the service's ``facts_error`` when there was a problem; unchanged for a role without
    ``node_facts``. A node whose facts give ``PROBLEM`` (a string, made one line; None: none) makes a healthy or
    mixed state degraded: it answers, but its role says it cannot do its work (a pool's producer whose KES key
    expired)."""
    if not says_facts(job):
        return result
    troubled = False
    for node in result["nodes"]:
        node["facts"] = dict(facts.get(node["node"], {}))
        if (problem_said := problem_of(node["facts"])) is not None:
            node["facts"][PROBLEM] = problem_said
            troubled = True
    if troubled and result["state"] in ("healthy", "mixed"):
        result = {**result, "state": "degraded"}
    return {**result, "facts_error": problem} if problem is not None else result
