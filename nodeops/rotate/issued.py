"""A rotation whose new value the role issues (role.yaml ``rotation.<name>`` of a kind in role.py ``ISSUERS``,
nodeops.role_protocols), for a service whose hot files one node holds (activation ``keys``): a pool's new KES key and
operational certificate. Secrets Manager's four steps, as every rotation here (nodeops.rotate):

  createSecret  the holder found (the one node running with the hot label), the role's read-only ``query`` run in
                its container (``docker exec``, argv with no secret), then its ``issue`` given the rotated secret's
                document, the secrets its ``reads`` names (resolved for this rotation only) and that output: the
                new document staged AWSPENDING (the whole secret: a KES key and its certificate move together). A
                refusal (exit 2) comes before anything is written or restarted;
  setSecret     the holder restarted in place onto the pending version (the executor's keys replace, as deploy's
                upgrade of the holder: files on its tmpfs, shredded once read; the standby untouched), on the image
                it runs (its container's reference, by digest: a rotation changes the keys only, whatever the tag
                points to now), unless its container records that version already;
  testSecret    the holder's health reply shows it using the new value (``in_use``) and the chain took it
                (``taken``, the query run again), within TEST_TIMEOUT;
  finishSecret  the ``updates`` the issue made to what it read (the next issue counter) written as their current
                version, then AWSCURRENT moved onto the pending version.

A rerun after a kill finds AWSPENDING and hands the pending document to ``issue``, which keeps it or issues anew
(roles/cardano/rotation.py ``resume``). Once the holder runs the pending value (this run restarted it, or a run
before this one did) nothing is undone: the chain may have taken it (the message says whether it did, from the query
asked again); AWSPENDING is kept and the message says to run again."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING

from nodeops.errors import InvalidInput, OperationFailed, Unsafe
from nodeops.facts.issued import document_keys, issuer_variables, query_command
from nodeops.facts.role_facts import command_variables
from nodeops.inventory import Node
from nodeops.job import job_for
from nodeops.plan import ServicePlan, Step
from nodeops.role_protocols import Issued
from nodeops.roles import RotationSpec
from nodeops.rotate.rules import Stages, forced_command
from nodeops.rotate.versions import Store, Target
from nodeops.run.end import EndState
from nodeops.run.fence import held_digest
from nodeops.run.restore import resume_half_replaced
from nodeops.secrets import Secret

if TYPE_CHECKING:
    from nodeops.deploy import ServiceDeploy
    from nodeops.rotate.service import ServiceRotation

TEST_TIMEOUT = 60.0  # seconds for the holder to be seen using the new value and the chain to take it
POLL = 0.5


def the_holder(deploy: ServiceDeploy) -> tuple[Node, bool]:
    """The node the new value goes to: the one holder, observed, and whether it was one a run killed in its replace
    left holding the keys by its containers' labels alone, made whole first (nodeops.run.restore.
    resume_half_replaced); Unsafe (exit 4) else."""
    states, _ = deploy.observe(dry_run=True)  # no pull: the holder is restarted on the image it runs
    held = [s.node for s in states.values() if s.hot]
    if not held and (half := resume_half_replaced(deploy, states.values())) is not None:
        return half, True
    if len(held) != 1:
        raise Unsafe(f"{deploy.service.name}: {len(held)} nodes hold the hot keys; a rotation restarts the one "
                     "holder onto the new value: deploy or promote first")  # fmt: skip
    return held[0], False


def tidy_holder(deploy: ServiceDeploy, holder: Node) -> str:
    """A holder found running the pending version (restarted onto it by a killed run): once it serves (it has read
    its files) what that run left on its tmpfs shredded (EndState.node_clean: nothing when it got to its shred) and
    the previous containers removed, as setSecret ends. Returns its step line."""
    took = deploy.waits.await_serving(holder)
    deploy.drop_previous()
    EndState(deploy).node_clean(holder.name, deploy.inspect(holder.name), set())
    return (f"{holder.name} runs the pending version already (an interrupted run), serving after {took:.1f}s; any "
            "file that run left on it shredded, its previous container removed")  # fmt: skip


def refuse_fenced(stages: Stages, fences: bool, environment: str, service: str, secret: str) -> None:
    """Unsafe (exit 4) when ``stages``' pending version is a forced promotion's (Stages.fenced) and this run is not
    one (``fences``): only promote-standby --force completes it, and the message says so."""
    if stages.fenced and not fences:
        raise Unsafe(f"{service}: the pending version {stages.pending[:8]} of {secret!r} was staged by a forced "
                     f"promotion that did not finish; {forced_command(environment, service)} completes it (a rotation "
                     "would restart the lost holder, which must never come back with its hot keys); nothing "
                     "changed")  # fmt: skip


def issue_located(target: IssuedValue, secrets: dict[str, str], pending: dict[str, str] | None,
                  held: bool) -> Issued:  # fmt: skip
    """``target``'s role's new value (Issuer.issue) over the chain's facts (the query in the holder's container).
    The issuer's refusal (InvalidInput: a wrong cold key, a counter the chain would not take) names the secrets by
    the role's names; it is raised again ending with where the inventory points each secret the rotation read
    (``prod.yaml: services.pool.secrets.counter is 'pool/IssueCounter' in backend 'aws'; ...``, review rev16d)."""
    try:
        return target.hook.issue(target.variables, secrets, target.query(), pending, held)
    except InvalidInput as exc:
        service = target.rotation.job.service
        refs = [f"services.{service.name}.secrets.{n} is {ref.name!r} in backend {ref.backend!r}"
                for n in target.spec.reads if (ref := service.secrets.get(n)) is not None]  # fmt: skip
        exc.args = (f"{exc} ({target.rotation.inventory.source}: {'; '.join(refs)})",)
        raise


class IssuedValue(Target):
    """One issued rotation (see the module): ``holder`` (found by createSecret), ``issued`` (the hook's result),
    ``started`` (the holder runs the pending version, restarted onto it by this run or by an interrupted one:
    nothing is undone then, AWSPENDING kept for a rerun)."""

    whole = True  # the store reads and writes the secret's whole document

    def __init__(self, rotation: ServiceRotation, spec: RotationSpec, versions: Store) -> None:
        super().__init__(rotation, spec, versions)
        job = rotation.job
        self.keys = document_keys(job, spec)
        self.hook = job.role.hooks.issuers[spec.kind]
        self.variables = {**issuer_variables(job), **command_variables(job, rotation.inventory.environment)}
        self.holder: Node | None = None
        self.issued: Issued | None = None
        self.values: dict[str, Secret] = {}  # the pending version's secrets, by the role's names
        self.started = self.resumed = False  # resumed: the holder's half-done replace put back and started (holder_of)

    @property
    def deploy(self) -> ServiceDeploy:
        """The rotation's executor (observed by createSecret)."""
        return self.rotation.deploy

    def query(self) -> str:
        """The role's query in the holder's container: its standard output (OperationFailed, masked, otherwise)."""
        argv, command = query_command(self.rotation.job, self.hook, self.variables)
        name = self.rotation.job.service.name
        res = self.deploy.x(self.holder.name, command, check=False)
        if res.exit_code != 0:
            raise OperationFailed(f"{name} {self.holder.name}: {argv[0]} in its container failed: "
                                  f"{self.deploy.why(res)}")  # fmt: skip
        return res.stdout

    def document(self, version: str) -> dict[str, str]:
        """The secret's document at ``version``, by key."""
        doc = json.loads(self.versions.value(version))
        if not isinstance(doc, dict):
            raise OperationFailed(f"secret {self.versions.name!r}: a version is not a JSON object")
        return doc

    def create(self) -> None:
        st, store, job = self.stages, self.versions, self.rotation.job
        current = self.document(st.current)
        if any(current.get(key) != job.secrets[n].reveal() for n, key in self.keys.items() if n in job.secrets):
            raise OperationFailed(f"secret {store.name!r} changed since this run read it; run again")
        refuse_fenced(st, self.fences, self.rotation.inventory.environment, job.service.name, store.name)
        self.holder = self.holder_of()
        if st.state == "finishing":  # AWSCURRENT moved already: only its label is left (finish tidies up)
            self.pending = Secret(json.dumps(current), self.spec.secret, st.pending)
            return
        pending = None
        if st.state == "interrupted":
            doc = self.document(st.pending)
            pending = {n: doc[key] for n, key in self.keys.items() if key in doc}
        read = {n: job.secrets[n].reveal() for n in self.spec.reads}
        secrets = {**{n: current[key] for n, key in self.keys.items() if key in current}, **read}
        self.issued = issued = self.make(secrets, pending, pending is not None and self.runs_pending())
        self.said = issued.said  # for the run's result, once the value is in force
        if stray := set(issued.values) - set(self.keys):
            raise OperationFailed(f"role {job.role.name}: its issuer {self.spec.kind} returned {', '.join(stray)}, "
                                  f"which {store.name!r} does not hold")  # fmt: skip
        facts = ", ".join(f"{k} {v}" for k, v in issued.facts.items())
        if issued.reused:
            version, said = st.pending, store.said(store.LEFT, st.pending, "kept")
        else:
            if st.state == "interrupted":
                store.discard(st)  # its certificate can no longer be used: the issuer made another
            text = json.dumps({**current, **{self.keys[n]: v for n, v in issued.values.items()}})
            version = store.create(text, Stages(st.current), self.fences)
            said = store.said(store.CREATED, version)
        self.stages = Stages(st.current, version)
        self.pending = Secret(self.versions.value(version), self.spec.secret, version)
        self.values = {n: Secret(v, n, version) for n, v in issued.values.items()}
        self.say("createSecret", f"{said}: {self.hook.change} ({facts}) for the holder {self.holder.name}",
                 version=version)  # fmt: skip

    def holder_of(self) -> Node:
        """The node the new value goes to (the_holder)."""
        holder, self.resumed = the_holder(self.deploy)
        return holder

    def make(self, secrets: dict[str, str], pending: dict[str, str] | None, held: bool) -> Issued:
        """The role's new value over the chain's facts (issue_located)."""
        return issue_located(self, secrets, pending, held)

    def masked(self) -> list[Secret]:
        return [*super().masked(), *self.values.values(),
                *(Secret(t, n) for n, t in (self.issued.updates.items() if self.issued else ()))]  # fmt: skip

    def runs_pending(self) -> bool:
        c = self.deploy.inspect(self.holder.name)
        recorded = json.loads(c.label("secrets") or "{}") if c is not None else {}
        return c is not None and c.hot and recorded.get(self.spec.secret) == self.stages.pending

    def set(self) -> None:
        name, node = self.rotation.job.service.name, self.holder.name
        if self.runs_pending():
            self.started = True  # an undo must keep AWSPENDING: it is what the node runs
            self.say("setSecret", tidy_holder(self.deploy, self.holder))
            return
        job, c = self.rotation.job, self.deploy.inspect(node)
        image = c.reference if c is not None and c.reference else job.service.image  # the image it runs, by digest
        service = dataclasses.replace(job.service, image=image)
        redo = job_for(self.rotation.inventory, service, secrets={**job.secrets, **self.values})
        self.deploy.job = dataclasses.replace(redo, redact=job.redact)
        self.deploy.digest = held_digest(self.deploy, node, image)  # what the new container is labelled with
        self.rotation.safe_point(f"setSecret {self.name}")  # a stop that came while this step read: nothing started
        self.started = True
        plan = ServicePlan(name, (Step("replace", node, "in place onto the pending hot keys", hot=True),
                                  Step("await-serving", node)), "the holder restarted onto the new value")  # fmt: skip
        self.say("setSecret", f"restarting the holder {node} in place onto the pending version; the other nodes "
                 "untouched")  # fmt: skip
        self.deploy.new_change()
        self.deploy.keep_restorable([node])
        self.deploy.execute(plan)
        self.deploy.drop_previous()
        self.say("setSecret", f"{node} restarted onto the pending version")

    def test(self) -> None:
        node, started = self.holder, time.monotonic()
        while True:
            self.deploy.health(node)
            if self.hook.in_use(self.deploy.answers.get(node.name, b""), self.issued) and self.hook.taken(
                    self.query(), self.issued):  # fmt: skip
                break
            if time.monotonic() - started > TEST_TIMEOUT:
                raise OperationFailed(f"{self.rotation.job.service.name} {node.name}: not seen using the new value "
                                      f"and the chain taking it within {TEST_TIMEOUT:g}s")  # fmt: skip
            time.sleep(POLL)
        self.say("testSecret", f"{node.name} uses the new value and the chain took it "
                 f"({time.monotonic() - started:.1f}s)")  # fmt: skip

    def finish(self) -> None:
        if self.issued is not None:
            for name, text in self.issued.updates.items():
                if self.rotation.write_current(self.spec, name, text):
                    self.say("finishSecret", f"{name}: a new current version written")
        super().finish()

    def undo(self) -> str:
        if not self.started:
            return "no node was restarted"
        raise OperationFailed(f"{self.holder.name} runs the pending version, {chain_took(self)}: nothing undone")

    @property
    def changes(self) -> str | None:
        holder = self.holder.name if self.holder else ""
        return (f"the hot keys of {holder}" if self.started else
                f"{holder}'s container put back, started on its own inputs" if self.resumed else None)  # fmt: skip


def chain_took(value: IssuedValue) -> str:
    """Whether the chain took ``value``'s pending value, as the role's ``taken`` reads the query asked again now: it
    took it, it has not yet (the holder runs it: it may still), or, the query failing, it may have."""
    try:
        taken = value.issued is not None and value.hook.taken(value.query(), value.issued)
    except OperationFailed:
        return "which the chain may have taken"
    return "which the chain took" if taken else "which the chain has not taken yet (the holder may still use it)"
