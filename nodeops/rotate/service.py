"""One service's rotation: every selected secret through createSecret, setSecret and testSecret, the pair rolled
onto a database password (roll.py), then finishSecret; a failure before finish undone (the systems back on the
current values, AWSPENDING removed where that worked), the message masked and saying what changed and what was
undone (see nodeops.rotate).

A stop request (Ctrl-C, SIGTERM: nodeops.stopping) is looked at before each createSecret, each setSecret and the
roll, and by a Target's setSecret once its reads are done, just before its first change (safe_point: a stop that
came while it read is honoured). Before the first createSecret nothing has changed: the rotation stops there. Later,
until the roll, no node reads the new value yet: what this run staged and set is undone as for a failure. Once the
pair rolls onto the new password (or, with no roll, once a system began taking the new value) it is completed:
undoing would roll the pair twice more. Either way the run ends with Interrupted (exit 130), whose message says
which, and, once completed, the step the stop came during (``came``: the first look after it came), not where the
run ended; an undo that could not be completed is OperationFailed (exit 1), saying what is left, as for a
failure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from nodeops import program
from nodeops.activation import model_of
from nodeops.edges import aws
from nodeops.edges.ssh import Fleet
from nodeops.errors import Interrupted, InvalidInput, NodeopsError, OperationFailed, Unsafe
from nodeops.facts.holders import FencePending
from nodeops.inventory import Inventory, Service
from nodeops.job import Job
from nodeops.records import Rotated
from nodeops.role_hooks import RoleHooks
from nodeops.roles import RotationSpec
from nodeops.rotate.api import ApiPassword
from nodeops.rotate.database import PostgresPassword
from nodeops.rotate.issued import IssuedValue
from nodeops.rotate.roll import PairRoll, job_with
from nodeops.rotate.rules import CURRENT, PENDING, Stages, forced_command, refused_backend
from nodeops.rotate.sops import SopsStore
from nodeops.rotate.ssm import ParameterVersions
from nodeops.rotate.versions import SecretVersions, Store, Target
from nodeops.run.report import Redactor, Reporter
from nodeops.stopping import StopRequests


class StopAsked(Exception):
    """A stop request seen at a safe point of a rotation (``str()``: the step it came before)."""


def target(kind: str, hooks: RoleHooks) -> type[Target]:
    """The Target of a rotation kind: the engine's ``postgres-password``, else a kind of the role's own (its
    module's API password change, or a value it issues: ``hooks.issuers``; role.yaml's kinds are checked when the
    role is loaded, ``refused`` never gets here: nodeops.rotate.rules.select)."""
    if kind == "postgres-password":
        return PostgresPassword
    return IssuedValue if kind in hooks.issuers else ApiPassword


def store_of(inventory: Inventory, service: Service, spec: RotationSpec, clients: dict[tuple[str, str], Any],
             whole: bool = False) -> Store:  # fmt: skip
    """The store of ``spec``'s secret of ``service``, by its backend's kind (rules.check_service refused the others);
    ``clients``: one AWS client per backend and service, shared, filled as needed; ``whole``: the secret's whole
    document, not its reference's key (Secrets Manager only: an issued value, rules.check_service)."""
    ref = service.secrets[spec.secret]
    backend = inventory.secret_backends[ref.backend]
    if backend.kind == "sops":
        return SopsStore(backend, str(inventory.source), ref)
    kind = "ssm" if backend.kind == "aws-ssm" else "secretsmanager"
    client = clients.get((backend.name, kind))
    if client is None:
        client = clients[(backend.name, kind)] = aws.client(backend, str(inventory.source), kind)
    if backend.kind == "aws-ssm":
        return ParameterVersions(client, ref, aws.backend_where(backend))
    return SecretVersions(client, ref.name, aws.backend_where(backend), None if whole else ref.key)


def interrupted_rotations(inventory: Inventory, job: Job) -> dict[str, Stages]:
    """The rotations of ``job``'s role (role.yaml ``rotation:``, by name) that a run left under way on its service,
    each with its secret's version stages (Stages.fenced: a forced promotion staged it, and only promote-standby
    --force completes it): their secret's backend holds a pending marker (Store.stages not fresh: Secrets Manager's
    AWSPENDING, Parameter Store's nodeops-pending label, a SOPS file's nodeops_pending entry), which only
    rotate-secrets completes. Its version stages only, never a value; one AWS client per backend. A model that does
    not rotate has none but the rotations the role issues (role.py ``ISSUERS``: a keys service's, its holder
    restarted onto the new value); a refused rotation and a backend rotation does not write have none. Read only.
    Errors: NodeopsError (a backend that cannot be read)."""
    rotates, issuers = model_of(job.role).rotates, job.role.hooks.issuers
    found, clients = {}, {}
    for spec in job.role.rotation.values():
        ref = job.service.secrets.get(spec.secret)
        backend = inventory.secret_backends[ref.backend] if ref is not None else None
        if not (rotates or spec.kind in issuers) or spec.kind == "refused" or backend is None or \
                refused_backend(backend.kind, backend.name, ref.name):  # fmt: skip
            continue
        stages = store_of(inventory, job.service, spec, clients).stages()
        if stages.state != "fresh":
            found[spec.name] = stages
    return found


def fence_of(environment: str, job: Job, found: Mapping[str, Stages]) -> FencePending | None:
    """Of interrupted_rotations' ``found``, the version a forced promotion staged and did not finish (Stages.fenced
    on a rotation the role issues, with the role's chain fence, role.py ``CHAIN_FENCE``), with its secret and the
    command that completes it (forced_command); None when none is. Pure."""
    hooks = job.role.hooks
    if hooks.chain_fence is None:
        return None
    for name, stages in found.items():
        spec = job.role.rotation[name]
        if spec.kind in hooks.issuers and stages.fenced and stages.pending is not None:
            return FencePending(spec.secret, stages.pending, forced_command(environment, job.service.name))
    return None


def fence_pending(inventory: Inventory, job: Job) -> FencePending | None:
    """fence_of the service's interrupted rotations; None, with no backend read, when the role has no chain fence.
    Errors: NodeopsError (a backend that cannot be read)."""
    if job.role.hooks.chain_fence is None:
        return None
    return fence_of(inventory.environment, job, interrupted_rotations(inventory, job))


def read_fence(inventory: Inventory, job: Job) -> FencePending | None:
    """fence_pending, or None when its backend cannot be read (status's rotation says so)."""
    try:
        return fence_pending(inventory, job)
    except NodeopsError:
        return None


def completing(rotation: ServiceRotation, targets: Sequence[Target]) -> str:
    """What completes ``rotation``'s ``targets`` left under way, in words: a forced promotion's (a target that fences)
    only by its own command (forced_command; a rotation refuses it, issued.refuse_fenced), else the rotation run
    again. Pure."""
    if any(t.fences for t in targets):
        command = forced_command(rotation.inventory.environment, rotation.job.service.name)
        return f"{command} completes it (a rotation refuses a forced promotion's version)"
    return f"run {program()} rotate-secrets again to complete that rotation"


def redactor(job: Job, targets: Sequence[Target]) -> Redactor:
    """``job``'s redactor, masking the current values and every new value known so far (Target.masked) too."""
    return job.redact.with_secrets(s for t in targets for s in t.masked())


def completed(service: str, came: str, targets: Sequence[Target], standing: str) -> str:
    """What a rotation completed after a stop says: the step the stop ``came`` during ("" when it came once every
    system used the new value), the ``targets`` rotated, ``standing`` (what runs: "" with no roll). Pure."""
    during = f"during {came}" if came else "once every system used the new value"
    return (
        f"{service}: the stop came {during}, past the last safe point, so the rotation was completed: "
        f"{', '.join(t.name for t in targets)} rotated, the new value current" + (f"; {standing}" * bool(standing))
    )


class ServiceRotation:
    """The rotation of ``job``'s service (see the module's docstring); ``clients``: one AWS client per backend and
    service, shared by the run's services."""

    def __init__(
        self, inventory: Inventory, job: Job, fleet: Fleet, report: Reporter, clients: dict[tuple[str, str], Any]
    ) -> None:
        self.inventory, self.job, self.fleet, self.clients = inventory, job, fleet, clients
        self.pair = PairRoll(job, fleet, report)
        self.deploy = self.pair.deploy  # the run's reporter and its look at the pair, for the targets too
        self.stop: StopRequests | None = None  # the run's (set by nodeops.rotate.rotate): see the module
        self.came = ""  # the step a stop came during, past its safe point (seen): what a completed run says

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def safe_point(self, before: str) -> None:
        """Raise StopAsked(``before``) when the run was asked to stop."""
        if self.stopping():
            raise StopAsked(before)

    def seen(self, step: str) -> None:
        """``step`` done: the one a stop came during, if this is the first look since it came (came)."""
        self.came = self.came or (step if self.stopping() else "")

    def versions(self, spec: RotationSpec, whole: bool = False) -> Store:
        """The store of ``spec``'s secret (store_of)."""
        return store_of(self.inventory, self.job.service, spec, self.clients, whole)

    def write_current(self, spec: RotationSpec, name: str, value: str) -> bool:
        """The service's secret ``name`` (one ``spec`` read) given ``value`` as its current version
        (SecretVersions.put_current: False when it holds it already)."""
        store = store_of(self.inventory, self.job.service, dataclasses.replace(spec, secret=name), self.clients)
        return store.put_current(value)

    def run(self, specs: Sequence[RotationSpec], kinds: Mapping[str, type[Target]] | None = None) -> dict:
        name = self.job.service.name  # kinds: each spec's Target, when not its kind's (nodeops.promote_forced)
        kinds = kinds or {s.name: target(s.kind, self.job.role.hooks) for s in specs}
        targets = [kinds[s.name](self, s, self.versions(s, True) if kinds[s.name].whole else self.versions(s))
                   for s in specs]  # fmt: skip
        interrupted = [t for t in targets if t.stages.state != "fresh"]
        if interrupted and len(interrupted) < len(targets):
            rest = ", ".join(t.name for t in targets if t not in interrupted)
            self.deploy.say("", f"completing the interrupted rotation of {', '.join(t.name for t in interrupted)} "
                            f"only; {rest}: not started, run again for it")  # fmt: skip
            targets = interrupted
        work = [t for t in targets if t.stages.state != "finishing"]
        fresh = [t for t in targets if t.stages.state == "fresh"]  # their pending version is this run's own
        rolls = any(t.rolls for t in work)
        if rolls:
            self.pair.observe()
        current_job, started, step = self.job, [], ""
        if self.stopping():
            raise Interrupted(f"{name}: stopped as asked before any new value was staged; nothing changed")
        try:
            for t in targets:
                step = f"createSecret {t.name}"
                self.safe_point(step)
                t.create()
            redact = redactor(self.job, targets)
            self.job = self.deploy.job = current_job = dataclasses.replace(self.job, redact=redact)
            for t in work:
                step = f"setSecret {t.name}"
                self.safe_point(step)
                started.append(t)
                t.set()
                self.seen(step)
                step = f"testSecret {t.name}"
                t.test()
            for t in work:  # each store's pending value where readers read it (a SOPS file), before the roll
                step = f"promote {t.name}"
                t.promote()
            if rolls:
                step = "roll"
                self.safe_point("the roll")
                self.pair.roll(job_with(current_job, {t.spec.secret: t.recorded() for t in targets}))
                self.seen("the roll")
        except Exception as exc:  # noqa: BLE001 (whatever stopped it, the systems go back on the current values)
            redact = redactor(self.job, targets)
            reason = str(exc) if isinstance(exc, NodeopsError) else f"internal error {type(exc).__name__}: {exc}"
            asked = isinstance(exc, StopAsked)
            failure = f"{name}: stopped as asked before {exc}" if asked else f"{name}: {step} failed: {redact(reason)}"
            unstarted = [t for t in fresh if t not in started]
            message, complete = self.undo(failure, started, unstarted, current_job, redact)
            kind = Interrupted if asked and complete else OperationFailed
            if complete and not started:  # a refusal before any system took anything keeps its exit code (2, 4)
                kind = next((k for k in (InvalidInput, Unsafe) if isinstance(exc, k)), kind)
            raise kind(message) from None
        for t in targets:
            try:
                t.finish()
            except NodeopsError as exc:
                raise OperationFailed(f"{name}: finishSecret {t.name} failed: {exc}; its system already uses the "
                                      f"pending value: {completing(self, [t])}") from None  # fmt: skip
        if self.stopping():  # past the last safe point: completed, and said so, with where the stop came
            raise Interrupted(completed(name, self.came, targets, self.deploy.standing() if rolls else ""))
        outage = max((o for o in self.deploy.outages if o is not None), default=None)  # a measured handover's
        said = {"said": lines} if (lines := [f"{t.name}: {t.said}" for t in targets if t.said]) else {}  # Issued.said
        return Rotated(service=name, rotated=[t.name for t in targets],
                       outage_seconds=None if outage is None else round(outage, 3), **said).record()  # fmt: skip

    def undo(self, failure: str, started: Sequence[Target], unstarted: Sequence[Target], current_job: Job,
             redact: Redactor) -> tuple[str, bool]:  # fmt: skip
        """Every started target back on its current value, the pair rolled back if a node had been
        replaced; AWSPENDING removed only where that worked (elsewhere a rerun completes the rotation),
        and from the targets this run created a pending version for but never started (no system
        holds it). Whatever fails here is reported, masked by ``redact`` (every target's values), in
        the message: nothing escapes unmasked. Returns (the message, whether everything was undone)."""

        def why(exc: Exception) -> str:
            text = str(exc) if isinstance(exc, NodeopsError) else f"{type(exc).__name__}: {exc}"
            return redact.clip(text)

        undone, left, clean = [], [], []
        for t in reversed(started):
            try:
                undone.append(t.undo())
                clean.append(t)
            except Exception as exc:  # noqa: BLE001 (a raw error here must neither escape nor show a secret)
                left.append(f"{t.name}: {why(exc)}")
        pair_back = True  # the nodes use what the database takes
        if self.pair.touched:
            pair_back = all(t in clean for t in started if t.rolls)
            if pair_back:
                try:
                    self.pair.roll(current_job)
                    undone.append("the pair rolled back onto the current password")
                except Exception as exc:  # noqa: BLE001
                    left.append(f"rolling the pair back: {why(exc)}")
                    pair_back = False
        discard = [(t, "") for t in clean if pair_back or not t.rolls]
        discard += [(t, " (never set: no system held it)") for t in unstarted if t.stages.state == "interrupted"]
        for t, note in discard:
            try:
                t.discard()
                undone.append(f"{t.name}: {t.versions.PENDING} removed{note}")
            except Exception as exc:  # noqa: BLE001
                left.append(f"{t.name}: {why(exc)}")
        changed = [c for t in started if (c := t.changes)] + (
            ["the pair's containers (the roll began)"] * self.pair.touched
        )
        kinds = {t.versions.CURRENT: t.versions.PENDING for t in [*started, *unstarted]} or {CURRENT: PENDING}
        message = (f"{failure}; changed: {', '.join(changed) or 'nothing'}; undone: {', '.join(undone) or 'nothing'}; "
                   f"{' and '.join(kinds)} unchanged")  # fmt: skip
        if left:
            message += (f"; NOT undone: {'; '.join(left)}; {' and '.join(kinds.values())} kept where the system may "
                        f"hold it: {completing(self, started)}")  # fmt: skip
        if self.pair.touched:  # the failure said what served then; the roll back may have handed over since
            message += f"; after the undo, {self.deploy.standing()}"
        return message, not left
