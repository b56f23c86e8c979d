"""fab rollback: a service back to an image and configuration that ran before, through deploy's rolling path.

What ran is read from the audit log on the bastion: every successful deploy
or rollback records, per service, the image, its registry digest, the
configuration hash and the inventory's (non-secret) variables. The target is
the newest record that differs from what the active node runs now, or with
``--to VERSION`` the newest record of that version. The image is pulled by
digest (``repo:tag@sha256:...``), so the very bits that ran come back even if
the tag was pushed again since. The non-secret files (``config.toml``) are
the text that ran, as the record keeps it (nodeops.job.recorded_texts),
not today's templates' rendering of the variables of then: a rollback undoes
a bad template override too. Secrets are today's: a rollback never brings
back an old credential (a rotated database password's old version no longer
logs in), so the secret files are rendered from today's secrets. The config
hash announced, labelled and recorded is the one really started (the_start);
it differs from the record's by the digest pin and by any secret whose
version moved, and a line says when today's templates would have rendered
the files differently. ``--to`` the version the pair already runs (both nodes
on it, one config) changes nothing and says so (exit 0): a needless handover
would also leave the pair on a digest-pinned configuration hash.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence

from nodeops import program
from nodeops.activation import Model, as_model, model_of
from nodeops.commands import node as cmd
from nodeops.deploy import ServiceDeploy, per_service
from nodeops.edges.ssh import Fleet
from nodeops.errors import InvalidInput
from nodeops.facts.container import Container
from nodeops.facts.observe import Observer
from nodeops.facts.view import NodeView, unhealthy_note
from nodeops.inventory import Inventory, Service
from nodeops.job import Job, as_recorded, job_for
from nodeops.operation import audit_log
from nodeops.records import AlreadyThere, Deployed, End, Entry
from nodeops.render import with_texts
from nodeops.run.guards import Guards
from nodeops.run.report import Reporter
from nodeops.stopping import StopRequests

HISTORY_LINES = 2000  # start and end entries read back from the audit log: a thousand operations


def ran(entries: Iterable[Entry], service: str) -> list[Deployed]:
    """What ``service`` ran after each successful deploy or rollback, oldest first (``entries``: the audit log's,
    parsed through their types: operation.audit_log)."""
    found = []
    for e in entries:
        if isinstance(e, End) and e.op in ("deploy", "rollback"):
            found += [r for r in e.results if isinstance(r, Deployed) and r.service == service]
    return found


def through_records(seen: Iterable[NodeView], history: Sequence[Deployed],
                    then: Callable[[Deployed], Job] | None = None) -> list[NodeView]:  # fmt: skip
    """``seen`` with each running container's config label read through the audit records (``history``, oldest
    first): a role that renders per node records each node's own hash (Deployed.nodes), so nodes started by one
    deploy carry different labels (each relay its own files); a label a record gives that node reads as the record's
    ``config``, so what runs compares with the records (running_on, already_at, pick) as one configuration, the way a
    role that renders once does. A label no record gives that node is read as the newest record's whose inputs, at the
    secret versions the node runs, give that label (runs_record; ``then``: a record's inputs rendered today, as
    the_start's ``then``): a rotation since restarted it on new secret versions (of a secret only the hot files use:
    the holder alone), and a rollback brings no old secret back. Any other label (a record without ``nodes``: a role
    that renders once; no ``then``) is left as it is. Pure but for ``then``."""
    own = {(node, ran.config): r.config for r in history for node, ran in (r.nodes or {}).items()}
    out = []
    for s in seen:
        c = s.container
        config = None if c is None else own.get((s.node.name, c.label("config") or ""))
        if c is not None and config is None and then is not None:
            config = next((r.config for r in reversed(history) if runs_record(r, s.node.name, c, then)), None)
        if c is not None and config is not None:
            c = dataclasses.replace(c, labels={**c.labels, "io.nodeops.config": config})
        out.append(dataclasses.replace(s, container=c))
    return out


def runs_record(record: Deployed, node: str, container: Container, then: Callable[[Deployed], Job]) -> bool:
    """Whether ``container`` (on ``node``) runs ``record``'s inputs, its secrets at the versions its ``secrets``
    label names: the record's version and that node's recorded files (Deployed.nodes), hashed again at those
    versions over ``then(record)`` (as_recorded), give its ``config`` label. False for a record that names no such
    node or another version (nothing rendered), or whose inputs today's role refuses."""
    ran = (record.nodes or {}).get(node)
    if ran is None or ran.files is None or cmd.image_tag(record.image) != container.version:
        return False
    versions = {**(record.secret_versions or {}), **json.loads(container.label("secrets") or "{}")}
    try:
        return as_recorded(then(record).at(node), ran.files, container.label("config"), versions) is not None
    except InvalidInput:
        return False


def running_on(seen: Iterable[NodeView], activation: str | Model = "lease",
               to: str | None = None) -> tuple[str, str] | None:  # fmt: skip
    """(Container.version, config label) of what runs now, as the role's ``activation`` model says
    (nodeops.activation.Model.running_on): lease, the lease holder's container (NodeView.active: it answers its
    health path, 200 or not), keys, the hot keys' holder's; None unless exactly one node is active. all: what every
    running node runs; InvalidInput (exit 2) when they differ and no ``to`` (``--to``) names the target. A role with
    kinds (its model, activation.groups.Groups): what its kinds run, each under its model, when they agree."""
    return as_model(activation).running_on(list(seen), to)


def already_at(seen: Iterable[NodeView], to: str | None, activation: str | Model = "lease") -> str | None:
    """With ``--to VERSION``: what runs (running_on) is version ``to`` and every running container is on that version
    and config: a line saying so (the rollback is done already, nothing to change); None otherwise (no ``to``,
    another version, nobody or two active, a node on something else: the rolling path brings the service to
    ``to``); a role with kinds (its model): the one active of its kind with one, the other nodes the same."""
    seen, model = list(seen), as_model(activation)
    running = running_on(seen, activation, to)
    if to is None or running is None or running[0] != to:
        return None
    ran = [s for s in seen if s.container is not None and s.container.running]
    if any((s.container.version or "", s.container.label("config") or "") != running for s in ran):
        return None
    config = running[1][:12]
    actives = [s.node.name for s in seen if model.is_active(s)]
    if model.has_standby and len(actives) != 1:  # a kind's holder missing: its kind's plan says what to do
        return None
    if model.has_standby:
        others = ", and the standby the same" if len(ran) == 2 else f", and the {len(ran) - 1} other nodes the same"
        who = f"{actives[0]} runs it (config {config})" + (others if len(ran) > 1 else "")
    else:
        who = f"{', '.join(s.node.name for s in ran)} run it (config {config})"
    return f"already at version {to}: {who}; nothing to roll back, nothing changed"


def pick(history: Sequence[Deployed], running: tuple[str, str] | None, to: str | None, service: str) -> Deployed:
    """The record to return to: the newest whose (image, config) differs from ``running``, or the newest of
    version ``to``. Refused (exit 2) when there is none, saying what there is."""
    for r in reversed(history):
        same = running is not None and (cmd.image_tag(r.image), r.config) == running
        if (to is None and not same) or (to is not None and cmd.image_tag(r.image) == to):
            return r
    known = sorted({cmd.image_tag(r.image) for r in history})
    if to is not None:
        raise InvalidInput(f"{service}: version {to} never ran according to the audit log (known: "
                           f"{', '.join(known) or 'none'})")  # fmt: skip
    raise InvalidInput(f"{service}: nothing ran before what runs now according to the audit log "
                       f"(versions recorded: {', '.join(known) or 'none'}); name one with --to VERSION")  # fmt: skip


def target_service(service: Service, record: Deployed, pinned: bool = True) -> Service:
    """``service`` with the record's variables and image, pinned to the digest that ran (when known); with
    ``pinned`` False, the image reference exactly as recorded (the one the record's config hash was computed on:
    a deploy's as the inventory named it, a rollback's already pinned)."""
    image = record.image.split("@", 1)[0]
    if not pinned:
        image = record.image
    elif record.digest:
        image = f"{image}@{record.digest}"
    return dataclasses.replace(service, image=image, variables=dict(record.variables or {}))


def question(service: str, record: Deployed, config: str, activation: str | Model = "lease") -> str:
    """The confirmation's line for rolling ``service`` back to ``record`` (an audit result: image, digest,
    config): the version, the image reference (digest cut to 12 hex), the short hash of ``config``, the
    configuration the rollback starts (the_start), and how the role's ``activation`` model rolls the nodes
    (Model.rollback_how)."""
    image = record.image.split("@", 1)[0]
    digest = record.digest or ""
    pinned = f"{image}@{digest[:19]}" if digest.startswith("sha256:") else image
    return (f"{service}: back to version {cmd.image_tag(record.image)} ({pinned}, config {config[:12]}), "
            f"{as_model(activation).rollback_how}")  # fmt: skip


def the_start(job: Job, then: Job, record: Deployed) -> tuple[Job, list[str]]:
    """What a rollback to ``record`` (an audit result) starts, and the lines that say how it differs from what ran.

    ``job``: the target as today renders it (target_service: pinned image, the variables of then, today's secrets);
    ``then``: the same with the image reference as recorded (target_service(pinned=False): unpinned for a deploy's
    record, pinned for a rollback's), on which the record's config was computed: like is compared with like.
    The record's non-secret file text (``files``) replaces today's rendering when it is exactly what ran (its hash,
    over the record's secret versions, is the record's config: deploy.as_recorded); otherwise (a record of an
    older nodeops, or the role's defaults, file list, command, ports, volumes or secret files' templates changed
    since) today's rendering is started and a line says so. A line also says which files today's templates render
    differently from the text that ran. The returned Job's config hash is the one the rollback starts, labels and
    records; no line holds a secret. A role that renders per node (Job.nodes): each node so, on its own record
    (Deployed.nodes; a node it lacks: today's rendering, said), the lines said once."""
    if not job.nodes:
        return start_of(job, then, record.files, record.config, record.secret_versions)
    ran = record.nodes or {}
    starts = {n: start_of(job.at(n), then.at(n), ran[n].files if n in ran else None,
                          ran[n].config if n in ran else record.config, record.secret_versions)
              for n in job.nodes}  # fmt: skip
    nodes = {n: started.rendered for n, (started, _) in starts.items()}
    notes = list(dict.fromkeys(note for _, lines in starts.values() for note in lines))
    return dataclasses.replace(job, rendered=nodes[next(iter(nodes))], nodes=nodes), notes


def start_of(job: Job, then: Job, texts: dict[str, str] | None, config: str,
             versions: dict[str, str | None] | None) -> tuple[Job, list[str]]:  # fmt: skip
    """the_start of one rendering (``job``, ``then``: a node's own, or the service's one) against what ran: its
    recorded ``texts`` (None: none recorded), ``config`` and secret ``versions``."""
    if texts is None or as_recorded(then, texts, config, versions) is None:
        again = with_texts(then.rendered, then.role, then.service, {}, versions)
        if config in (again.config(False), again.config(True)):  # a node's without or with the hot files
            return job, []
        why = ("the audit record holds no text of its files (an older nodeops)" if texts is None else
               "the role's defaults, files, command, ports, volumes or secret files' templates changed "
               "since")  # fmt: skip
        return job, [f"note: today's templates or defaults differ from those it ran on, and {why}: its files are "
                     "today's templates' rendering of the variables of then"]  # fmt: skip
    differ = [name for name, f in then.rendered.files.items()
              if not f.secret and name in texts and f.data != texts[name].encode("utf-8")]  # fmt: skip
    started = dataclasses.replace(job, rendered=with_texts(job.rendered, job.role, job.service, texts))
    if not differ:
        return started, []
    return started, [f"note: today's templates render {', '.join(differ)} differently from what ran then: the text "
                     "that ran is started"]  # fmt: skip


def announce(record: Deployed, started: Job) -> str:
    """The line that says what a rollback starts: the image as recorded, the config hash really started and, when
    it differs from the recorded one, why (the digest pin, secrets whose version moved since, by name)."""
    config = started.rendered.config_hash
    line = f"rolling back to {record.image} (config {config[:12]}, digest {record.digest or 'unknown'})"
    if config == record.config:
        return line
    why = ["the image pinned by its digest"] if "@" in started.service.image else []
    was = record.secret_versions
    now = started.rendered.secret_versions
    if was is not None and (moved := sorted(k for k in {*was, *now} if was.get(k) != now.get(k))):
        why.append(f"today's secrets ({', '.join(moved)} moved since)")
    return f"{line}; it ran as config {record.config[:12]}" + (f", now with {' and '.join(why)}" if why else "")


def finish_command(env: str, service: str, record: Deployed) -> str:
    """The command that carries a rollback to ``record`` (an audit result) out again, as its failure's or its stop's
    message names it (ServiceChange.finishing): the rollback, ``--to`` that version; never a deploy, which rolls
    forward (the inventory is not changed)."""
    return f"{program()} rollback --env {env} --service {service} --to {cmd.image_tag(record.image)}"


def rollback(fleet: Fleet, inventory: Inventory, current: Job, to: str | None, report: Reporter,
             stop: StopRequests | None = None, ask: Callable[[str], None] = lambda _line: None) -> dict:  # fmt: skip
    """``current``: the service's preflight as the inventory has it (its secrets are today's, and reused).
    ``stop``: as deploy's (a safe point, then Interrupted). ``ask``: shown the target (question()) once it is
    known and a downgrade the database would refuse has been refused (Unsafe, exit 4, nothing asked); raises
    to stop (tasks._cli.confirm: InvalidInput when not confirmed)."""
    service = current.service
    history = ran(audit_log(fleet, HISTORY_LINES, steps=False, services=[service.name]), service.name)
    renders: dict[int, Job] = {}  # a record's inputs rendered today (the_start's then), once each

    def then(record: Deployed) -> Job:
        if id(record) not in renders:
            renders[id(record)] = job_for(inventory, target_service(service, record, pinned=False),
                                          secrets=current.secrets)  # fmt: skip
        return renders[id(record)]

    seen = through_records(Observer(fleet, current.service, current.role).views().values(), history, then)
    model = model_of(current.role)
    for s in seen:
        if model.is_active(s) and (note := unhealthy_note(s)):
            report(service.name, s.node.name, f"{note}: rolled back from like a healthy active",
                   failing=list(s.failing))  # fmt: skip
    if (there := already_at(seen, to, model)) is not None:
        active = next((s.node.name for s in seen if model.is_active(s)), None) if model.has_standby else None
        report(service.name, active or "", there)
        return AlreadyThere(service=service.name, changed=False, active=active, already_at=to).record()
    record = pick(history, running_on(seen, model, to), to, service.name)
    job = dataclasses.replace(
        job_for(inventory, target_service(service, record), secrets=current.secrets), redact=current.redact
    )  # the same secrets, and what else the run masks (a webhook)
    then = job_for(inventory, target_service(service, record, pinned=False), secrets=current.secrets)
    job, notes = the_start(job, then, record)
    report(service.name, "", announce(record, job))
    for note in notes:
        report(service.name, "", note)
    run = ServiceDeploy(job, fleet, report)
    run.finishing = finish_command(inventory.environment, service.name, record)
    Guards(run).refuse_downgrade(Guards(run).database_version())  # before asking: a yes would only meet the refusal
    ask(question(service.name, record, job.rendered.config_hash, model))
    run.stop = stop or run.stop
    return per_service(report, service.name, lambda: run.run(dry_run=False), run.now)
