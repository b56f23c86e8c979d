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

Pure parts (stage bookkeeping, documents, selection, the roll's plan) come first; the parts that
talk to Secrets Manager, PostgreSQL and the nodes come after.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import secrets as pysecrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nodeops import program, role_hooks
from nodeops.deploy import Job, Redactor, Reporter, ServiceDeploy, not_started, per_service
from nodeops.edges import aws, http
from nodeops.edges.postgres import scram_verifier, sql
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput, InventoryError, NodeopsError, OperationFailed, Unsafe
from nodeops.facts.container import Container
from nodeops.facts.view import NodeView, unhealthy_note
from nodeops.inventory import Inventory, Node, Service
from nodeops.lease import ADMIN_DATABASE, database
from nodeops.passwords import UNRESERVED, generate_password
from nodeops.plan import Desired, ServicePlan, plan_service, the_active
from nodeops.records import Rotated
from nodeops.render import render
from nodeops.roles import RotationSpec, role_for
from nodeops.secrets import Secret
from nodeops.stopping import StopRequests

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"


# ---------------------------------------------------------------- pure: stages, documents, selection, plan


@dataclass(frozen=True)
class Stages:
    """A secret's versions by stage, as Secrets Manager reports them (version ids)."""

    current: str
    pending: str | None = None

    @property
    def state(self) -> str:
        """fresh: no rotation under way; interrupted: a pending version not yet current (continue with it);
        finishing: AWSCURRENT already moved onto the pending version, only its AWSPENDING label is left."""
        if self.pending is None:
            return "fresh"
        return "finishing" if self.pending == self.current else "interrupted"


def stages_of(name: str, version_stages: Mapping[str, Sequence[str]]) -> Stages:
    """``describe_secret``'s VersionIdsToStages -> Stages; anything but one AWSCURRENT and at most one
    AWSPENDING is refused (Secrets Manager guarantees both; a store that breaks it is not to be guessed at)."""
    current = [v for v, stages in version_stages.items() if CURRENT in stages]
    pending = [v for v, stages in version_stages.items() if PENDING in stages]
    if len(current) != 1 or len(pending) > 1:
        raise Unsafe(f"secret {name!r} has {len(current)} version(s) staged {CURRENT} and {len(pending)} staged "
                     f"{PENDING}; expected one and at most one: fix its stages by hand first")  # fmt: skip
    return Stages(current[0], pending[0] if pending else None)


def finish_calls(name: str, stages: Stages) -> list[dict[str, str]]:
    """finishSecret as ``update_secret_version_stage`` calls: AWSCURRENT moved onto the pending version
    (Secrets Manager then stages the old one AWSPREVIOUS), then AWSPENDING removed. In that order: a crash
    between the two leaves a finished rotation that a rerun only tidies up."""
    if stages.pending is None:
        raise ValueError("nothing pending to finish")
    calls = []
    if stages.state == "interrupted":
        calls.append({"SecretId": name, "VersionStage": CURRENT, "MoveToVersionId": stages.pending,
                      "RemoveFromVersionId": stages.current})  # fmt: skip
    calls.append({"SecretId": name, "VersionStage": PENDING, "RemoveFromVersionId": stages.pending})
    return calls


def discard_calls(name: str, stages: Stages) -> list[dict[str, str]]:
    """Undo of createSecret: the pending version loses AWSPENDING (AWSCURRENT never moved)."""
    if stages.state != "interrupted":
        return []
    return [{"SecretId": name, "VersionStage": PENDING, "RemoveFromVersionId": stages.pending}]


def value_of(text: str, key: str | None, name: str) -> str:
    """The rotated value in a SecretString: the string itself, or its JSON object's ``key``."""
    if key is None:
        return text
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get(key), str):
        raise OperationFailed(f"secret {name!r}: a version is not a JSON object with a string {key!r}")
    return doc[key]


def with_value(text: str, key: str | None, value: str, name: str) -> str:
    """``text`` (the current SecretString) with the rotated value replaced; every other key kept as it is."""
    if key is None:
        return value
    value_of(text, key, name)  # a document of the expected shape
    return json.dumps({**json.loads(text), key: value})


def select(specs: Mapping[str, RotationSpec], which: str | None, where: str) -> list[RotationSpec]:
    """The rotations ``--secret`` asks for, in the role's order; a refused or unknown one is exit 2."""
    names = ", ".join([*specs, "all"])
    if not which:
        raise InvalidInput(f"--secret is required: one of {names}")
    if which == "all":
        rotatable = [s for s in specs.values() if s.kind != "refused"]
        if not rotatable:
            raise InvalidInput(f"--secret all: {where} declares no rotatable secret (rotation: in its role.yaml)")
        return rotatable
    spec = specs.get(which)
    if spec is None:
        raise InvalidInput(f"--secret {which}: {where} has no such rotatable secret (known: {names})")
    if spec.kind == "refused":
        raise InvalidInput(f"--secret {which}: {spec.reason}")
    return [spec]


def needs_admin(inventory: Inventory, names: Sequence[str] | None, which: str | None) -> bool:
    """Whether ``--secret`` selects a database password for any of the services (all when ``names`` is
    empty): only its ALTER ROLE needs the admin role's secrets, which are resolved only then (an API
    rotation never reads them). A refused or unknown selection is exit 2 here, before any secret is read."""
    services = [inventory.services[n] for n in names] if names else list(inventory.services.values())
    for service in services:
        role = role_for(inventory, service)
        if any(spec.kind == "postgres-password" for spec in select(role.rotation, which, f"role {role.name!r}")):
            return True
    return False


def check_service(inventory: Inventory, service: Service, specs: Sequence[RotationSpec]) -> None:
    """What a rotation needs from the inventory, before any connection (exit 2 otherwise)."""
    file, at = str(inventory.source), f"services.{service.name}"
    names: dict[str, str] = {}
    for spec in specs:
        ref = service.secrets[spec.secret]
        backend = inventory.secret_backends[ref.backend]
        if backend.kind != "aws-secretsmanager":
            raise InventoryError(file, f"{at}.secrets.{spec.secret}", f"backend {backend.name!r} (kind "
                                 f"{backend.kind}) keeps no versions to rotate: keep it in AWS Secrets Manager, "
                                 f"or change it in its own store and {program()} deploy")  # fmt: skip
        if ref.name in names:
            raise InventoryError(file, f"{at}.secrets.{spec.secret}", f"secret {ref.name!r} also holds "
                                 f"{names[ref.name]}: rotate them one at a time (--secret)")  # fmt: skip
        names[ref.name] = spec.secret
        if spec.kind == "postgres-password":
            missing = [s for s in (spec.admin_user, spec.admin_password) if s not in service.secrets]
            if missing:
                raise InventoryError(file, f"{at}.secrets", f"rotating {spec.name} needs {' and '.join(missing)}: "
                                     "references to an admin role that may ALTER ROLE (user, password)")  # fmt: skip
            if len(service.nodes) != 2:
                raise InvalidInput(f"{service.name}: has one node: rolling it onto a new database password would "
                                   "take the service down; add a standby first")  # fmt: skip


def rotation_plan(service: Service, states: Mapping[str, NodeView], desired: Desired) -> ServicePlan:
    """The forced rolling replace that puts both nodes on the new secret: standby first, one planned
    handover, then the old active. Refused (exit 4) unless exactly one node holds the lease (plan.the_active:
    healthy or not, an unhealthy active is rolled from like a healthy one) and it runs the inventory's image
    and configuration (fab deploy first: a rotation changes the secret, nothing else).
    The other node is replaced whatever its state (an interrupted run may have left it half-replaced)."""
    name = service.name
    if len(service.nodes) != 2:
        raise Unsafe(f"{name}: has {len(service.nodes)} node(s); a rotation rolls a pair")
    active = the_active(states.values(), name, "a rotation rolls a pair with one active")
    if not desired.matches(active.container):
        c = active.container
        raise Unsafe(f"{name}: the active {active.node.name} runs {c.version} / config "
                     f"{str(c.label('config'))[:12]}, not the inventory's {desired.image} / "
                     f"{desired.config_hash[:12]}; {program()} deploy first: a rotation changes the secret "
                     "only")  # fmt: skip
    plan = plan_service(service, states, desired, force=True)
    return dataclasses.replace(plan, reason="forced rolling replace: the nodes read the secret only when they start")


# ---------------------------------------------------------------- Secrets Manager


class SecretVersions:
    """One secret's versions and stages in Secrets Manager: the bookkeeping half of a rotation."""

    def __init__(self, client: Any, name: str, where: str) -> None:
        self.client, self.name, self.where = client, name, where

    def _call(self, operation: str, **kwargs) -> dict:
        return aws.call(self.client, f"{self.where}: {operation} of secret {self.name!r} failed", operation, **kwargs)

    def stages(self) -> Stages:
        return stages_of(self.name, self._call("describe_secret", SecretId=self.name).get("VersionIdsToStages", {}))

    def read(self, version: str) -> str:
        response = self._call("get_secret_value", SecretId=self.name, VersionId=version)
        if "SecretString" not in response:
            raise OperationFailed(f"{self.where}: secret {self.name!r} holds binary data, not a string")
        return response["SecretString"]

    def create(self, text: str) -> str:
        """createSecret: a new version staged AWSPENDING only (AWSCURRENT does not move); its id."""
        token = str(uuid.uuid4())  # the new version's id; idempotent on Secrets Manager's side
        self._call("put_secret_value", SecretId=self.name, ClientRequestToken=token, SecretString=text,
                   VersionStages=[PENDING])  # fmt: skip
        return token

    def apply(self, calls: Sequence[Mapping[str, str]]) -> None:
        for call in calls:
            self._call("update_secret_version_stage", **call)


# ---------------------------------------------------------------- the systems that check a secret


class Target(abc.ABC):
    """One secret under rotation: its versions, its current and pending values, and its system."""

    rolls = False  # whether the nodes read it only when they start, so that the pair must be rolled onto it

    def __init__(self, rotation: ServiceRotation, spec: RotationSpec, versions: SecretVersions) -> None:
        self.rotation, self.spec, self.versions = rotation, spec, versions
        job = rotation.job
        self.key = job.service.secrets[spec.secret].key
        self.current = job.secrets[spec.secret]  # AWSCURRENT as read by the preflight
        self.user = job.secrets[spec.user].reveal()
        self.account = f"<{spec.user}>"  # how messages name the user: its value is a secret too
        self.pending: Secret | None = None
        self.stages = versions.stages()

    @property
    def name(self) -> str:
        return self.spec.name

    def say(self, step: str, message: str, **data) -> None:
        self.rotation.deploy.say("", f"{step} {self.name}: {message}", step=step, secret=self.name, **data)

    def create(self) -> None:
        """createSecret, or the pending version an interrupted run left (no new version then)."""
        st, name = self.stages, self.versions.name
        current_text = self.versions.read(st.current)
        if value_of(current_text, self.key, name) != self.current.reveal():
            raise OperationFailed(f"secret {name!r} changed since this run read it; run again")
        if st.state != "fresh":
            self.pending = Secret(
                value_of(self.versions.read(st.pending), self.key, name), self.spec.secret, st.pending
            )
            what = "is current already: only its label is left" if st.state == "finishing" else "reused"
            self.say("createSecret", f"the pending version {st.pending[:8]} an interrupted run left {what}",
                     version=st.pending)  # fmt: skip
            return
        rules = self.rotation.job.role.passwords  # the node's (role.yaml passwords:)
        value = generate_password(pysecrets.SystemRandom(), self.user, rules=rules, symbols=UNRESERVED)
        version = self.versions.create(with_value(current_text, self.key, value, name))
        self.pending, self.stages = Secret(value, self.spec.secret, version), Stages(st.current, version)
        self.say("createSecret", f"new version {version[:8]} of {name} staged {PENDING}", version=version)

    def finish(self) -> None:
        self.versions.apply(finish_calls(self.versions.name, self.stages))
        self.say("finishSecret", f"{CURRENT} is version {self.stages.pending[:8]}; the old one is AWSPREVIOUS",
                 version=self.stages.pending)  # fmt: skip

    def discard(self) -> None:
        self.versions.apply(discard_calls(self.versions.name, self.stages))

    @abc.abstractmethod
    def set(self) -> None:
        """setSecret: the system that checks the secret takes the pending value (repeatable)."""

    @abc.abstractmethod
    def test(self) -> None:
        """testSecret: a real login with the pending value."""

    @abc.abstractmethod
    def undo(self) -> str:
        """The system back on the current value; says what was done."""

    @property
    @abc.abstractmethod
    def changes(self) -> str | None:
        """What setSecret may have changed, once it ran (None: it changed nothing), for the undo's message."""


class PostgresPassword(Target):
    """The service's database role: ALTER ROLE by an admin role, over a tunnel on the bastion."""

    rolls = True

    def alter(self, password: Secret) -> None:
        job, spec = self.rotation.job, self.spec
        admin, admin_password = job.secrets[spec.admin_user].reveal(), job.secrets[spec.admin_password].reveal()
        with database(self.rotation.fleet, job, admin, admin_password, ADMIN_DATABASE,
                      f"ALTER ROLE {self.account} as the admin role ({spec.admin_user})") as conn:  # fmt: skip
            # As psql's \password: the verifier is computed here; the password never reaches the server or its log.
            verifier = scram_verifier(conn, self.user, password.reveal())
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(self.user), sql.Literal(verifier)))

    def set(self) -> None:
        self.alter(self.pending)
        self.say("setSecret", f"ALTER ROLE {self.account}: the database now takes the pending password (a SCRAM "
                 "verifier computed here; running nodes keep their connections)")  # fmt: skip

    def test(self) -> None:
        with database(self.rotation.fleet, self.rotation.job, self.user, self.pending.reveal(),
                      purpose=f"log in as {self.account} with the pending password") as conn:  # fmt: skip
            conn.execute("SELECT 1")
        self.say("testSecret", f"logged in as {self.account} with the pending password")

    def undo(self) -> str:
        self.alter(self.current)
        return f"the database role {self.account} is back on its current password"

    @property
    def changes(self) -> str:
        return f"the password of the database role {self.account}"


class NodeApi:
    """One node's HTTP API for a role's hook (nodeops.role_hooks.NodeApi): through the bastion, JSON bodies,
    failures named by service and node and masked by the job's redactor."""

    def __init__(self, rotation: ServiceRotation, node: Node) -> None:
        self.rotation, self.node = rotation, node
        self.where = f"{rotation.job.service.name} {node.name}"

    def call(self, method: str, path: str, doc: Mapping[str, object] | None = None,
             cookie: str | None = None) -> http.Reply:  # fmt: skip
        headers = {"Content-Type": "application/json"} | ({"Cookie": cookie} if cookie else {})
        body = json.dumps(doc).encode() if doc is not None else None
        port = self.rotation.job.role.port
        fleet = self.rotation.fleet
        reply = fleet.request(self.node.host, port, method, path, body, headers, timeout=http.API_TIMEOUT)
        if reply is None:
            raise OperationFailed(f"{self.where}: the API does not answer {path}")
        return reply

    def refused(self, what: str, reply: http.Reply, shown: int | None = None) -> OperationFailed:
        text = reply.body.decode(errors="replace")
        redact = self.rotation.job.redact
        detail = redact.clip(text) if shown is None else redact.clip(text, shown)
        return OperationFailed(f"{self.where}: {what} answered {reply.status}: {detail}")

    def failed(self, problem: str) -> OperationFailed:
        return OperationFailed(f"{self.where}: {problem}")


class ApiPassword(Target):
    """The node's API user (a rotation kind of the role's own): its password changed through the active node's
    API, in the role's dialect (its module's ``ROTATIONS`` hook for this kind, nodeops.role_hooks.ApiPassword)."""

    node: Node | None = None  # the active node, found once by set(); test() logs in there

    @property
    def hook(self) -> role_hooks.ApiPassword:
        return self.rotation.job.role.hooks.rotations[self.spec.kind]

    def active(self) -> Node:
        """The lease holder, as every command finds it (Observer.views, plan.the_active): an active that answers
        its health path unhealthy still serves its API, and its user lives in the database the pair shares."""
        deploy = self.rotation.deploy
        active = the_active(deploy.observer.views().values(), deploy.service.name,
                            "the API password is changed on the one active node")  # fmt: skip
        if note := unhealthy_note(active):
            deploy.say(active.node.name, f"{note}: its API still answers; the password is changed there",
                       failing=list(active.failing))  # fmt: skip
        return active.node

    def login(self, node: Node, password: Secret) -> str | None:
        """The session, or None when the node refuses the password."""
        return self.hook.login(NodeApi(self.rotation, node), self.user, password.reveal())

    def logout(self, node: Node, session: str) -> None:
        self.hook.logout(NodeApi(self.rotation, node), session)

    def change(self, node: Node, old: Secret, new: Secret) -> bool:
        """The hook's password change, logged in with ``old``; False when ``old`` does not log in."""
        session = self.login(node, old)
        if session is None:
            return False
        try:
            self.hook.set_password(NodeApi(self.rotation, node), session, old.reveal(), new.reveal())
        finally:
            self.logout(node, session)
        return True

    def set(self) -> None:
        node = self.node = self.active()
        if (session := self.login(node, self.pending)) is not None:
            self.logout(node, session)
            self.say("setSecret", f"the API on {node.name} takes the pending password already (an interrupted run)")
            return
        if not self.change(node, self.current, self.pending):
            raise OperationFailed(f"{self.rotation.job.service.name} {node.name}: neither the current nor the "
                                  f"pending password logs in as {self.account}: changed outside nodeops?")  # fmt: skip
        self.say("setSecret", f"{self.hook.change} on the active node {node.name}")

    def test(self) -> None:
        node = self.node
        session = self.login(node, self.pending)
        if session is None:
            raise OperationFailed(f"{self.rotation.job.service.name} {node.name}: the pending password does not "
                                  "log in")  # fmt: skip
        self.logout(node, session)
        if (old := self.login(node, self.current)) is not None:
            self.logout(node, old)
            raise OperationFailed(f"{self.rotation.job.service.name} {node.name}: the current password still logs in")
        self.say("testSecret", f"{node.name}: the pending password logs in, the current one is refused")

    def undo(self) -> str:
        if self.node is None:  # set() found no active node: nothing was changed
            return "the API password was not changed"
        # The user lives in the database, so any active node changes it; a roll may have handed over since set().
        node = self.active() if self.rotation.touched else self.node
        if not self.change(node, self.pending, self.current):
            return "the API password was not changed"
        return "the API password is back on its current value"

    @property
    def changes(self) -> str | None:
        return None if self.node is None else f"the API password of {self.account}"


def target(kind: str) -> type[Target]:
    """The Target of a rotation kind: the engine's ``postgres-password``, else a kind of the role's own (its
    module's API password change; role.yaml's kinds are checked when the role is loaded, ``refused`` never
    gets here: nodeops.rotate.select)."""
    return PostgresPassword if kind == "postgres-password" else ApiPassword


# ---------------------------------------------------------------- one service


def as_recorded(job: Job, container: Container) -> str:
    """The config hash of ``job`` with each secret at the version ``container`` records in its labels (values
    unchanged): what it must be labelled with when it runs the job's configuration on older secret versions."""
    recorded = json.loads(container.label("secrets") or "{}")
    secrets = {n: Secret(s.reveal(), n, recorded.get(n, s.version)) for n, s in job.secrets.items()}
    return render(job.role, job.profile, job.service, secrets).config_hash


def job_with(job: Job, values: Mapping[str, Secret]) -> Job:
    """``job`` with some secrets replaced (the pending values): files rendered again, in memory. Its
    redactor is ``job``'s, which already masks the pending values. A secret read from the same backend
    secret as a replaced one (another key of its JSON document) is now read from the new version too."""
    refs = job.service.secrets
    moved = {(refs[n].backend, refs[n].name): v.version for n, v in values.items()}
    secrets = {n: Secret(s.reveal(), n, moved[(refs[n].backend, refs[n].name)])
               if (refs[n].backend, refs[n].name) in moved else s for n, s in job.secrets.items()}  # fmt: skip
    secrets.update(values)
    rendered = render(job.role, job.profile, job.service, secrets)
    return dataclasses.replace(job, rendered=rendered, secrets=secrets)


class ServiceRotation:
    def __init__(self, inventory: Inventory, job: Job, fleet: Fleet, report: Reporter, clients: dict[str, Any]) -> None:
        self.inventory, self.job, self.fleet, self.clients = inventory, job, fleet, clients
        self.deploy = ServiceDeploy(job, fleet, report)  # observed once (a roll's preflight), reused by every roll
        self.desired: Desired | None = None  # what the preflight observed: the image as pulled on the pair
        self.tolerated: tuple[str, ...] = ()  # the checks the active failed then: a roll may end failing those
        self.touched = False  # a node was replaced: an undo must roll the pair back

    def versions(self, spec: RotationSpec) -> SecretVersions:
        ref = self.job.service.secrets[spec.secret]
        backend = self.inventory.secret_backends[ref.backend]
        if backend.name not in self.clients:
            self.clients[backend.name] = aws.client(backend, str(self.inventory.source))
        return SecretVersions(self.clients[backend.name], ref.name, aws.backend_where(backend))

    def observe(self) -> None:
        """The roll's preflight: the pair connected, checked and pulled once for the whole run; refused
        (exit 4) before anything changes unless it is one sound active and a standby."""
        states, self.desired = self.deploy.observe()
        active = the_active(states.values(), self.job.service.name, "a rotation rolls a pair with one active")
        # the active must run the inventory's configuration; its secrets may be at older versions (an API password
        # rotation moves one without restarting anything): compare with the versions it records
        c = active.container
        check = dataclasses.replace(self.desired, config_hash=as_recorded(self.job, c)) if c else self.desired
        rotation_plan(self.job.service, states, check)
        self.tolerated = active.failing
        if note := unhealthy_note(active):
            self.deploy.say(active.node.name, f"{note}: rolled from like a healthy active; the new active may fail "
                            "the same checks, no others", failing=list(active.failing))  # fmt: skip

    def roll(self, job: Job) -> None:
        """Both nodes replaced with ``job``'s files: standby, handover (measured), old active. The pair
        observed by the preflight is reused: only the containers' states are read again."""
        run = self.deploy
        run.job = job
        desired = dataclasses.replace(self.desired, config_hash=job.rendered.config_hash)
        # The active was checked by the preflight (observe); it now runs another secret version than ``job``'s.
        plan = dataclasses.replace(plan_service(job.service, run.states(), desired, force=True),
                                   reason="forced rolling replace onto the new secret version")  # fmt: skip
        run.say("", f"roll: {plan.reason}; " + "; ".join(s.describe() for s in plan.steps), step="roll")
        self.touched = True
        run.new_change()  # what each node runs now is what a failure of this roll puts back
        run.execute(plan)
        run.verify(tolerated=self.tolerated)
        run.drop_previous()
        run.say("", "roll: both nodes run on the new secret", step="rolled")

    def redactor(self, targets: Sequence[Target]) -> Redactor:
        """Masks the current values and every pending value known so far."""
        return self.job.redact.with_secrets(t.pending for t in targets if t.pending is not None)

    def run(self, specs: Sequence[RotationSpec]) -> dict:
        name = self.job.service.name
        targets = [target(s.kind)(self, s, self.versions(s)) for s in specs]
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
            self.observe()
        current_job, started, step = self.job, [], ""
        try:
            for t in targets:
                step = f"createSecret {t.name}"
                t.create()
            redact = self.redactor(targets)
            self.job = self.deploy.job = current_job = dataclasses.replace(self.job, redact=redact)
            for t in work:
                started.append(t)
                step = f"setSecret {t.name}"
                t.set()
                step = f"testSecret {t.name}"
                t.test()
            if rolls:
                step = "roll"
                self.roll(job_with(current_job, {t.spec.secret: t.pending for t in targets}))
        except Exception as exc:  # noqa: BLE001 (whatever stopped it, the systems go back on the current values)
            redact = self.redactor(targets)
            reason = str(exc) if isinstance(exc, NodeopsError) else f"internal error {type(exc).__name__}: {exc}"
            failure = f"{name}: {step} failed: {redact(reason)}"
            unstarted = [t for t in fresh if t not in started]
            raise OperationFailed(self.undo(failure, started, unstarted, current_job, redact)) from None
        for t in targets:
            try:
                t.finish()
            except NodeopsError as exc:
                raise OperationFailed(f"{name}: finishSecret {t.name} failed: {exc}; its system already uses the "
                                      "pending value: run fab rotate-secrets again to finish") from None  # fmt: skip
        # the roll's handover, when there was one and its outage was measured (the service answered before it)
        outage = max((o for o in self.deploy.outages if o is not None), default=None)
        return Rotated(service=name, rotated=[t.name for t in targets],
                       outage_seconds=None if outage is None else round(outage, 3)).record()  # fmt: skip

    def undo(self, failure: str, started: Sequence[Target], unstarted: Sequence[Target], current_job: Job,
             redact: Redactor) -> str:  # fmt: skip
        """Every started target back on its current value, the pair rolled back if a node had been
        replaced; AWSPENDING removed only where that worked (elsewhere a rerun completes the rotation),
        and from the targets this run created a pending version for but never started (no system
        holds it). Whatever fails here is reported, masked by ``redact`` (every target's values), in
        the message: nothing escapes unmasked."""

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
        if self.touched:
            pair_back = all(t in clean for t in started if t.rolls)
            if pair_back:
                try:
                    self.roll(current_job)
                    undone.append("the pair rolled back onto the current password")
                except Exception as exc:  # noqa: BLE001
                    left.append(f"rolling the pair back: {why(exc)}")
                    pair_back = False
        discard = [(t, "") for t in clean if pair_back or not t.rolls]
        discard += [(t, " (never set: no system held it)") for t in unstarted if t.stages.state == "interrupted"]
        for t, note in discard:
            try:
                t.discard()
                undone.append(f"{t.name}: {PENDING} removed{note}")
            except Exception as exc:  # noqa: BLE001
                left.append(f"{t.name}: {why(exc)}")
        changed = [c for t in started if (c := t.changes)] + (["the pair's containers (the roll began)"] * self.touched)
        message = (f"{failure}; changed: {', '.join(changed) or 'nothing'}; undone: {', '.join(undone) or 'nothing'}; "
                   f"{CURRENT} unchanged")  # fmt: skip
        if left:
            message += (f"; NOT undone: {'; '.join(left)}; {PENDING} kept where the system may hold it: run "
                        f"{program()} rotate-secrets again to complete that rotation")  # fmt: skip
        if self.touched:  # the failure said what served then; the roll back may have handed over since
            message += f"; after the undo, {self.deploy.standing()}"
        return message


# ---------------------------------------------------------------- the whole


@dataclass(frozen=True)
class Rotation:
    """One service's rotations, checked before any host is touched."""

    job: Job
    specs: tuple[RotationSpec, ...]


def prepare_rotations(inventory: Inventory, jobs: Sequence[Job], which: str | None) -> list[Rotation]:
    """Preflight: the secrets ``--secret`` names, for every job's service (exit 2 before any host otherwise)."""
    out = []
    for job in jobs:
        specs = select(job.role.rotation, which, f"role {job.role.name!r}")
        check_service(inventory, job.service, specs)
        out.append(Rotation(job, tuple(specs)))
    return out


def rotate(inventory: Inventory, fleet: Fleet, rotations: Sequence[Rotation], report: Reporter,
           stop: StopRequests | None = None) -> list[dict]:  # fmt: skip
    """Rotate each service's secrets, one service after the other. A service that failed (after its undo)
    has ``error`` in its result; errors.raise_failures turns those into the run's. ``stop``: once set, no
    further service starts (a rotation under way completes or is undone)."""
    clients: dict[str, Any] = {}  # one Secrets Manager client per backend

    def one(r: Rotation) -> dict:
        if stop is not None and stop.is_set():
            return per_service(report, r.job.service.name, not_started(r.job.service.name))
        rotation = ServiceRotation(inventory, r.job, fleet, report, clients)
        return per_service(report, r.job.service.name, lambda: rotation.run(r.specs), rotation.deploy.now)

    return [one(r) for r in rotations]
