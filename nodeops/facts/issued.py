"""The value a rotation the role issues put in force, against the chain: a role's Issuer's optional ``standing``
(nodeops.role_protocols), for ``fab status`` (each such rotation's public facts, the service's ``issued``) and
``fab check`` (its finding ``issued:<rotation>``).

The role's read-only ``query`` runs in the holder's container (the one node running with the hot label), as the
rotation's createSecret runs it (``docker exec``, no secret in the argv); ``standing`` gets its output and the
rotated secret's current values as the service resolved them already (status and check resolve the role's
secrets: no other read of a backend, never a secret only the rotation ``reads``). No single holder, a query that
fails, or a hook that raises or answers out of shape is that rotation's ``error``, one line that quotes nothing
the hook was given. The engine knows no fact by name: names and values are the role's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nodeops.commands.node import container_name, sh
from nodeops.edges.ssh import CommandResult
from nodeops.errors import NodeopsError
from nodeops.facts.view import NodeView
from nodeops.job import Job
from nodeops.roles import PROFILE_VARIABLE, RotationSpec

Run = Callable[[str, str], CommandResult]  # (node, shell command) -> its result, on the node's connection
_SCALARS = (str, int, float, bool, type(None))


def issuer_variables(job: Job) -> dict[str, object]:
    """What an Issuer's methods get as ``variables``: the variables the templates read (Role.read_variables), the
    role's check variables (a threshold its result may name) and the profile in use as ``PROFILE``."""
    checks = {k: v for k, v in job.variables.items() if k in job.role.check_variables}
    return {**job.role.read_variables(job.service.variables), **checks, PROFILE_VARIABLE: job.profile}


def document_keys(job: Job, spec: RotationSpec) -> dict[str, str | None]:
    """The role's secret names whose references share ``spec``'s secret (one document: a pool's ``kes_key`` and
    ``op_cert``), each with its key in it."""
    ref = job.service.secrets[spec.secret]
    return {n: r.key for n, r in job.service.secrets.items() if (r.backend, r.name) == (ref.backend, ref.name)}


def query_command(job: Job, issuer: Any, variables: Mapping[str, object]) -> tuple[list[str], str]:
    """``issuer``'s read-only query (its argv, no secret) and the shell command that runs it in the service's
    container on a node (``docker exec``): how status, check and the rotation itself ask the chain."""
    argv = [str(a) for a in issuer.query(variables)]
    return argv, sh([job.service.runtime, "exec", container_name(job.service.name), *argv])


def says_standing(job: Job) -> bool:
    """Whether one of ``job``'s role's issuers has ``standing`` (a role without keeps its status and check)."""
    return any(hasattr(issuer, "standing") for issuer in job.role.hooks.issuers.values())


def standing(job: Job, seen: Mapping[str, NodeView], run: Run) -> dict[str, dict[str, Any]]:
    """{rotation name: {"holder", "facts", "ok", "detail"} or {"error"}} for each rotation of ``job``'s role whose
    issuer has ``standing``, from the query ``run`` in the holder's container (``seen``: the observer's views)."""
    found: dict[str, dict[str, Any]] = {}
    if not says_standing(job):
        return found
    for spec in job.role.rotation.values():
        issuer = job.role.hooks.issuers.get(spec.kind)
        if issuer is not None and hasattr(issuer, "standing"):
            try:
                found[spec.name] = _one(job, spec, issuer, seen, run)
            except NodeopsError as exc:  # the connection, the hook (RoleHookFailed), the query's output misread
                found[spec.name] = {"error": job.redact(" ".join(str(exc).split()))}
    return found


def _one(job: Job, spec: RotationSpec, issuer: Any, seen: Mapping[str, NodeView], run: Run) -> dict[str, Any]:
    holders = [name for name, s in seen.items() if s.hot]
    if len(holders) != 1:
        who = f"{len(holders)} nodes hold" if holders else "no node holds"
        return {"error": f"not read: {who} the hot keys (the chain is asked in the holder's container)"}
    holder, variables = holders[0], issuer_variables(job)
    argv, command = query_command(job, issuer, variables)
    res = run(holder, command)
    if res.exit_code != 0:
        return {"error": f"{argv[0]} in {holder}'s container failed (exit {res.exit_code})"}
    secrets = {n: job.secrets[n].reveal() for n in document_keys(job, spec) if n in job.secrets}
    said = issuer.standing(variables, secrets, res.stdout)
    shaped = isinstance(said, tuple) and len(said) == 3 and isinstance(said[0], Mapping) and \
        isinstance(said[1], bool) and isinstance(said[2], str) and \
        all(isinstance(k, str) and isinstance(v, _SCALARS) for k, v in said[0].items())  # fmt: skip
    if not shaped:
        return {"error": f"role {job.role.name}: its hook ISSUERS[{spec.kind!r}].standing returned what is not "
                "(facts: name -> str, number, bool or None, ok: bool, detail: str): fix the role's module"}  # fmt: skip
    facts = {k: job.redact(v) if isinstance(v, str) else v for k, v in said[0].items()}
    return {"holder": holder, "facts": facts, "ok": said[1], "detail": job.redact(" ".join(said[2].split()))}


def standing_findings(found: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, tuple[str, str]]]:
    """check's findings from ``standing``'s result: (node "" for the service, ``issued:<rotation>``, (pass or fail,
    detail)); an error fails, ``not checked: <error>``."""
    return [("", f"issued:{name}", ("fail", f"not checked: {s['error']}") if "error" in s else
             ("pass" if s["ok"] else "fail", s["detail"])) for name, s in found.items()]  # fmt: skip


def with_standing(result: dict, job: Job, found: Mapping[str, Mapping[str, Any]]) -> dict:
    """A service's status entry (nodeops.status.service_status) with ``issued`` (standing's result); unchanged for
    a role none of whose issuers has ``standing``."""
    return {**result, "issued": {name: dict(s) for name, s in found.items()}} if says_standing(job) else result
