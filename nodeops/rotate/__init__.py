"""fab rotate-secrets: new credentials with no outage, the AWS Secrets Manager way.

Each secret goes through the four steps of a Secrets Manager rotation:

  createSecret  a new version of the secret document, staged AWSPENDING (only the rotated key changes);
  setSecret     the system that checks it accepts it: ALTER ROLE for the database password (a SCRAM
                verifier computed here, so the server never sees the password), the role's own API
                call on the active node for the API password (Chainlink: PATCH /v2/user/password);
  testSecret    a real login with it;
  finishSecret  AWSCURRENT moved onto it (the old version becomes AWSPREVIOUS), AWSPENDING removed.

The database password has one more step between test and finish: the pair is rolled onto it (a
running node keeps the password it started with, and the config hash, which leaves secrets out,
cannot show the change): standby replaced, planned handover, old active replaced. Running nodes
keep their open connections through the ALTER ROLE; PostgreSQL holds one password per role, so a
node that reconnects between setSecret and its replacement would be refused: that window is the
few seconds of the run.

Crash safety comes from the stages. AWSCURRENT moves last, only once the target system and every
node use the pending value; until then AWSPENDING holds it. A rerun finds it and continues with it
(no new version): setSecret and the roll are repeatable. A run that finds AWSPENDING on any selected
secret only completes those. A failure before finish is undone: the target system back on the
current value (ALTER ROLE back, the pair rolled back if it had been rolled, the API password changed
back), AWSPENDING removed, AWSCURRENT never moved; if the undo itself fails, AWSPENDING is kept so
that a rerun completes the rotation instead. A version this run created for a secret it never got to
set (an earlier one failed) loses AWSPENDING too: no system holds it.

The package, one seam a module: ``rules`` (pure: stage bookkeeping, documents, selection, the roll's
plan), ``versions`` (Secrets Manager: a secret's versions and stages, the steps every secret shares),
``database`` (the database password's ALTER ROLE), ``api`` (the API password, through the role's
hook), ``roll`` (the pair rolled onto the new secret through the executor), ``service`` (one
service's rotation and its undo); this module: the preflight and the run over the services.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nodeops import program
from nodeops.activation import model_of
from nodeops.deploy import not_started, per_service
from nodeops.edges.ssh import Fleet
from nodeops.errors import Unsafe
from nodeops.inventory import Inventory
from nodeops.job import Job
from nodeops.roles import RotationSpec
from nodeops.rotate.rules import check_service, select
from nodeops.rotate.service import ServiceRotation
from nodeops.run.report import Reporter
from nodeops.stopping import StopRequests

# What the first Ctrl-C or SIGTERM says during rotate-secrets (nodeops.stopping; the rule: nodeops.rotate.service)
STOPPING = ("stopping at the next safe point: no new rotation starts; the one under way is undone if the pair is not "
            "rolling onto its new value yet, else completed first (Ctrl-C twice more aborts at once)")  # fmt: skip


@dataclass(frozen=True)
class Rotation:
    """One service's rotations, checked before any host is touched."""

    job: Job
    specs: tuple[RotationSpec, ...]


def prepare_rotations(inventory: Inventory, jobs: Sequence[Job], which: str | None) -> list[Rotation]:
    """Preflight: the secrets ``--secret`` names, for every job's service (exit 2 before any host otherwise). A
    service whose activation model does not roll a pair (Model.rotates: only lease so far) is refused first, unless
    every rotation asked for is a value the role issues (role.py ISSUERS: the holder of the hot files restarted
    onto it, nodeops.rotate.issued): Unsafe, exit 4, nothing staged."""
    out = []
    for job in jobs:
        asked = [s for s in job.role.rotation.values() if which in (s.name, "all") and s.kind != "refused"]
        issued = bool(asked) and all(s.kind in job.role.hooks.issuers for s in asked)
        if not (model := model_of(job.role)).rotates and not issued:
            name = job.service.name
            raise Unsafe(f"{name}: rotate-secrets supports activation lease only so far (role {job.role.name} has "
                         f"activation {model.name}): put the new value in the secret's backend yourself, then "
                         f"{program()} deploy --env {inventory.environment} --service {name} rolls every node onto "
                         "it")  # fmt: skip
        specs = select(job.role.rotation, which, f"role {job.role.name!r}")
        check_service(inventory, job.service, specs)
        out.append(Rotation(job, tuple(specs)))
    return out


def rotate(inventory: Inventory, fleet: Fleet, rotations: Sequence[Rotation], report: Reporter,
           stop: StopRequests | None = None) -> list[dict]:  # fmt: skip
    """Rotate each service's secrets, one service after the other. A service that failed (after its undo)
    has ``error`` in its result; errors.raise_failures turns those into the run's. ``stop``: once set, no
    further service starts, and the rotation under way stops at its next safe point: undone before the pair
    rolls onto the new value, completed after (nodeops.rotate.service); its error is Interrupted (exit 130)."""
    clients: dict[tuple[str, str], Any] = {}  # one AWS client per backend and service

    def one(r: Rotation) -> dict:
        if stop is not None and stop.is_set():
            return per_service(report, r.job.service.name, not_started(r.job.service.name))
        rotation = ServiceRotation(inventory, r.job, fleet, report, clients)
        rotation.stop = stop
        return per_service(report, r.job.service.name, lambda: rotation.run(r.specs), rotation.deploy.now)

    return [one(r) for r in rotations]
