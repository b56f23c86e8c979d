"""A run's inputs for one service, known before any host is touched (a Job: its service, role, profile, files
rendered in memory, redactor and resolved secrets), and how a container's inputs are recorded in its labels and
rendered again from them (input_labels, restore_job).

prepare is the preflight of every command that acts on a pair: any problem here is exit 2 and no host has been
contacted. The engine's verbs (deploy, promote, rollback, rotate, status, check, verify, backup) take Jobs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nodeops import program
from nodeops.commands.node import RunSpec, image_tag
from nodeops.diff import Side
from nodeops.errors import InvalidInput, Unsafe
from nodeops.facts.container import Container
from nodeops.inventory import Inventory, Service
from nodeops.notify import webhook_url
from nodeops.render import Rendered, public_names, render, render_nodes, with_texts
from nodeops.roles import Role, check_service, check_variables, profile_name, role_for
from nodeops.run.report import Redactor
from nodeops.secrets import CURRENT_ONLY, Secret, resolve, version_of_kind


@dataclass(frozen=True)
class Job:
    """One service, everything known before any host is touched. ``rendered``: what every node gets; for a role
    whose templates read the node (render.render_nodes), ``nodes`` holds each node's own and ``rendered`` is the
    one of the node ``at`` chose (the first node's until then)."""

    service: Service
    role: Role
    profile: str
    rendered: Rendered
    redact: Redactor
    secrets: Mapping[str, Secret]  # resolved, in memory only; for the lease reader
    nodes: Mapping[str, Rendered] = dataclasses.field(default_factory=dict)  # node -> its Rendered; {}: one for all

    def at(self, node: str) -> Job:
        """This job as ``node`` runs it: its own files and config hash when the role renders per node, else this
        very job (every node the same)."""
        return dataclasses.replace(self, rendered=self.nodes[node]) if node in self.nodes else self

    def config_hashes(self, hot: Collection[str] = ()) -> dict[str, str]:
        """{node: the config hash it should run} when the role renders per node or its hot files alone use a secret
        with versions (Rendered.config: ``hot``, the nodes that hold the hot files, run the holder's hash, over those
        versions too); {} when one hash is every node's."""
        if not self.nodes and not self.rendered.hot_hash:
            return {}
        return {n.name: self.at(n.name).rendered.config(n.name in hot) for n in self.service.nodes}

    def holder_hashes(self) -> dict[str, str]:
        """{node: the config hash it should run holding the hot files}, for the nodes where that differs from its
        own without them (the hot files alone use a secret with versions, Rendered.config); {} for other roles."""
        return {n.name: hot for n in self.service.nodes if (hot := self.at(n.name).rendered.hot_hash)}

    @property
    def variables(self) -> Mapping[str, object]:
        """The role's defaults overlaid with the service's variables: what the role's hooks are given, and the
        templates too but the role's ``check_variables``."""
        return {**self.role.defaults, **self.service.variables}

    def side(self, digest: str | None) -> Side:
        """What this job would start, as a diff's new side: the service's image with ``digest`` (the registry's, None
        when not known), the variables its templates read (Role.read_variables: no default a variable the service
        sets makes unused), the rendered files and the version of each secret they use."""
        files = {name: f for name, f in self.rendered.files.items() if not f.data_file}
        return Side(self.service.image, digest, self.role.read_variables(self.service.variables), files,
                    dict(self.rendered.secret_versions), data_hashes(self))  # fmt: skip

    def files_read(self, when: str) -> tuple[str, ...]:
        """The node's files it reads at process start ("start") or once it holds the lease ("lease")."""
        profile = self.role.profile(self.profile)
        return tuple(name for name in self.rendered.files  # a data file is read at start
                     if (profile.files[name].read if name in profile.files else "start") == when)  # fmt: skip

    @property
    def all_files(self) -> tuple[str, ...]:
        return tuple(self.rendered.files)


INPUT_LABELS = ("variables", "secrets")  # with image (none before it existed), profile, config: what it ran on
TEXTS_LABEL = "files"  # the text of its non-secret files; absent on a container started by an older nodeops
DATA_LABEL = "data"  # the sha256 of each of its data files; only on a container of a role with data files


def data_hashes(job: Job) -> dict[str, str]:
    """{file name: sha256 hex} of ``job``'s data files (a profile's ``data_files``, never recorded as text): what
    a container's ``data`` label keeps, so a diff names a data file that changed by its hash."""
    return {name: f.sha256 for name, f in job.rendered.files.items() if f.data_file}


def recorded_texts(job: Job) -> dict[str, str]:
    """{file name: text} of ``job``'s non-secret files (``config.toml``), what a container's ``files`` label and an
    audit record keep so that a diff's old side and a rollback are the text a node really read, not today's
    templates' rendering of its inputs. Never a secret file, not even its hash (a hash of secrets.toml would let
    anyone who reads labels test a guessed password offline: render.Rendered), and never a file whose text holds
    a form of one of the run's secrets (``job.redact``: a plain variable that equals a secret's value, say): such
    a file is left out, and compared as today's templates render it."""
    return {name: f.data.decode("utf-8") for name, f in job.rendered.files.items() if not f.secret
            and not f.data_file and not job.redact.leaks(f.data.decode("utf-8", "replace"))}  # fmt: skip


def compact(value: object) -> str:
    """``value`` as one line of JSON, keys sorted: a label's or an audit field's text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def input_labels(job: Job, hot: bool = False) -> dict[str, str]:
    """The labels that let a container be started again on exactly its inputs (``restore_job``): the image
    reference as the inventory gives it (tag and digest: the engine's own record may drop the tag,
    plan.Container.reference), the service's own variables (without the role's ``check_variables``: a threshold
    changes nothing the node runs), the version id of every secret its files use (``hot``: started with the hot
    files, whose secrets' versions only the holder records, Rendered.versions) and the text of its non-secret
    files (recorded_texts). Non-secret only: ``docker inspect`` shows labels to anyone on the host."""
    return {"image": job.service.image, "variables": compact(job.role.without_checks(job.service.variables)),
            "secrets": compact(job.rendered.versions(hot)),
            TEXTS_LABEL: compact(recorded_texts(job)),
            **({DATA_LABEL: compact(hashes)} if (hashes := data_hashes(job)) else {})}  # fmt: skip


def run_spec(job: Job, digest: str | None = None, hot: bool = False) -> RunSpec:
    """The `docker run` of ``job`` (commands.node.run turns it into argv): its image, command, user, port and
    mount, labelled with what it runs on (input_labels, the config hash, the version, ``digest``: the image's as
    pulled, "none" unknown) and, when ``hot``, ``io.nodeops.hot=true``: it was started with the role's hot files
    (NodeView.hot), its command followed by the profile's ``hot_command``, its config hash and secret versions the
    holder's (Rendered.config). Pure: the bench's playbook starts the very line nodeops does (bench/compare.py)."""
    role, r, service = job.role, job.rendered, job.service
    labels = {"service": service.name, "role": role.name, "profile": job.profile,
              "version": image_tag(service.image), "config": r.config(hot),
              "digest": digest or "none", "port": str(role.port), **input_labels(job, hot),
              **({"hot": "true"} if hot else {})}  # fmt: skip
    return RunSpec(
        runtime=service.runtime, service=service.name, image=service.image,
        command=(*r.command, *r.hot_command) if hot else r.command, user=role.user, port=role.port,
        mount=role.mount, labels=labels, restart=service.restart,
        log_driver=service.log_driver, log_options=service.log_options,
        stop_timeout=int(role.stop_timeout), init=role.init, env_file=r.env_file,
        ports=tuple(role.ports.values()), volumes=dict(role.volumes),
    )  # fmt: skip


def as_recorded(job: Job, texts: Mapping[str, str] | None, config: str | None,
                secret_versions: Mapping[str, str | None] | None = None) -> Job | None:  # fmt: skip
    """``job`` with its non-secret files holding ``texts`` (recorded_texts of when a node started), when that is
    exactly what ran: its config hash, computed again (over ``secret_versions`` when given: those of then), equals
    the recorded ``config`` (a node's with or without the hot files, Rendered.config). None when it does not (no
    texts: an older nodeops; a file left out; another command or file list today): the caller then has only today's
    templates' rendering of the inputs of then."""
    if texts is None:
        return None
    then = with_texts(job.rendered, job.role, job.service, texts, secret_versions)
    if config not in (then.config(False), then.config(True)):
        return None
    return dataclasses.replace(job, rendered=with_texts(job.rendered, job.role, job.service, texts))


def changed_inputs(then: Job, now: Job) -> list[str]:
    """What ``now`` changes in the inputs ``then`` ran on, by name only (never a value), for a fix forward:
    ``["variable ROOT_DIR", "secret keystore"]``: each variable whose value differs (role defaults included), then
    each secret whose version differs; the image and the role's check variables are left out (the image cannot go
    back; a check variable changes nothing on a node)."""
    old, new = now.role.without_checks(then.variables), now.role.without_checks(now.variables)
    variables = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    old_v, new_v = then.rendered.secret_versions, now.rendered.secret_versions
    secrets = sorted(k for k in {*old_v, *new_v} if old_v.get(k) != new_v.get(k))
    return [f"variable {k}" for k in variables] + [f"secret {k}" for k in secrets]


def foreign_versions(inventory: Inventory, service: Service, recorded: Mapping[str, str | None]) -> str | None:
    """What to say when a secret version ``recorded`` (a container's ``secrets`` label) is not of the backend the
    inventory names for that secret now (version_of_kind: the inventory moved it since the container started), and
    what to do; None when each is of its backend. A secret recorded without a version (its backend keeps none:
    env, sops; or an older nodeops recorded none for aws-kms) is none of these: it is read at its current version,
    as the same values are expected wherever they are kept (CI's env backend and a workstation's Secrets Manager,
    say); nor is one gone from the inventory."""
    refs = service.secrets
    kinds = {n: inventory.secret_backends[refs[n].backend] for n, v in recorded.items() if n in refs and v is not None}
    foreign = sorted(n for n, b in kinds.items() if b is not None and not version_of_kind(b.kind, recorded[n]))
    if not foreign:
        return None
    versions = ", ".join(f"{n} {str(recorded[n])[:8]}" for n in foreign)
    backends = "; ".join(sorted({f"{kinds[n].name}, kind {kinds[n].kind}" for n in foreign}))
    return (f"the secret versions it records ({versions}) are not of the secret backend the inventory now names for "
            f"them ({backends}): the inventory moved them to another backend since it started, and a version of the "
            "old backend cannot be read through the new one; nothing was changed. To move the pair onto the new "
            f"backend, run `{program()} deploy --env {inventory.environment} --service {service.name} "
            "--allow-inexact-restore` (a failure would then restart a node on the new backend's values); "
            "rotate-secrets and rollback work again once both nodes run on it "
            "(docs/secrets.md#moving-a-secret-to-another-backend)")  # fmt: skip


def restore_job(inventory: Inventory, current: Job, node: str, container: Container) -> Job:
    """The inputs ``container`` (on ``node``) was started from, rendered again in memory: its image reference,
    the variables and secret versions its labels record (each secret read at that version, only where it
    differs from ``current``'s), today's role. Used to start that container again after a failed change, so that
    it runs on what it ran on, never on the change's inputs.

    Raises Unsafe (exit 4) when that cannot be done: no record in the labels (a container started by hand or by
    an older nodeops), a secret version of another backend (foreign_versions), or one the backend no longer has.
    Today's role renders them, and the text of its non-secret files is the one its ``files`` label records when
    that is exactly what it ran (as_recorded); otherwise (an older nodeops recorded no text) and when the role's
    templates or defaults changed since, the result's config hash differs from the container's ``config`` label
    (the caller says so)."""
    service = current.service
    where = (f"{service.name} {node}: the inputs container {container.name} was started from cannot be rendered "
             "again (to put it back if the change fails)")  # fmt: skip
    recorded = [container.label(k) for k in INPUT_LABELS]
    if None in recorded:
        raise Unsafe(f"{where}: it records none (started by hand or by an older nodeops); replace it with "
                     "`--allow-inexact-restore` (a failure would restart it on this run's inputs)")  # fmt: skip
    variables, versions = (json.loads(text) for text in recorded)
    then = dataclasses.replace(service, image=container.reference or service.image, variables=variables)
    moved = {name: version for name, version in versions.items()
             if name not in current.secrets or current.secrets[name].version != version}  # fmt: skip
    if elsewhere := foreign_versions(inventory, service, moved):
        raise Unsafe(f"{where}: {elsewhere}")
    # a file's secret (CURRENT_ONLY) holds only today's value: the container goes back on that (its hash then differs)
    refs, backends = service.secrets, inventory.secret_backends
    moved = {n: v for n, v in moved.items() if n not in refs or backends[refs[n].backend].kind not in CURRENT_ONLY}
    try:
        # the secrets its files used, and no other: a reference added since (an RPC URL, say) changes the render
        secrets = {name: current.secrets[name] for name in versions if name not in moved}
        # a node started without the hot files records no version of the secrets only they use: today's render them
        secrets.update({n: current.secrets[n] for n in current.rendered.hot_versions if n not in versions})
        if moved:
            secrets.update(resolve(inventory, then, skip=[n for n in then.secrets if n not in moved], versions=moved))
        job = job_for(inventory, then, secrets=secrets)
    except InvalidInput as exc:
        raise Unsafe(f"{where}: {exc}; nothing was changed (`--allow-inexact-restore` goes on regardless)") from None
    texts, job = container.label(TEXTS_LABEL), job.at(node)
    job = as_recorded(job, json.loads(texts) if texts else None, container.label("config")) or job
    return dataclasses.replace(job, redact=current.redact.with_secrets(secrets.values()))


def with_held_hot_secrets(own: Job, held: Job, node: str) -> Job:
    """The inputs ``node`` starts on when a promotion gives it the hot keys: its own (``own``: what its container
    records, restore_job) with each secret the role's hot files use at the value and version ``held`` (what the old
    holder's container records) has. A rotation of a hot secret restarts the holder alone, so only the holder's labels
    name the version the chain now expects (a standby on its own versions would start with the keys of before it).
    The other secrets and the recorded text of its non-secret files stay its own. ``own`` itself when the versions
    are the same. Pure."""
    hot = own.rendered.hot_secrets | held.rendered.hot_secrets
    moved = {n: held.secrets[n] for n in hot if n in held.secrets and own.rendered.secret_versions.get(n) !=
             held.rendered.secret_versions.get(n)}  # fmt: skip
    if not moved:
        return own
    secrets = {**own.secrets, **moved}
    texts = {name: f.data.decode("utf-8") for name, f in own.rendered.files.items() if not f.secret and not f.data_file}
    rendered, nodes = rendering(own.role, own.profile, own.service, secrets)
    rendered = with_texts(nodes.get(node, rendered), own.role, own.service, texts)
    return dataclasses.replace(own, rendered=rendered, nodes={**nodes, node: rendered} if nodes else {},
                               secrets=secrets, redact=own.redact.with_secrets(moved.values()))  # fmt: skip


def prepare(inventory: Inventory, names: Sequence[str] | None = None, admin: bool = False) -> list[Job]:
    """Preflight: every role, secret and file for the chosen services, or exit 2. No host is contacted.

    ``admin``: also the secrets only a rotation needs (an admin role's); other commands never read them,
    so a CI job that deploys needs no admin credential."""
    services = [inventory.services[n] for n in names] if names else list(inventory.services.values())
    hook = webhook_url(inventory)  # not a service's secret, but masked wherever the services' are
    masked = () if hook is None else (hook,)
    return [job_for(inventory, service, admin, masked=masked, from_inventory=True) for service in services]


def job_for(inventory: Inventory, service: Service, admin: bool = False, secrets: Mapping[str, Secret] | None = None,
            masked: Iterable[Secret] = (), from_inventory: bool = False) -> Job:  # fmt: skip
    """One service's preflight (``service`` may differ from the inventory's, e.g. an older image to roll back to;
    ``secrets``: already resolved for it, not read again; ``masked``: other secrets its redactor masks too).
    ``from_inventory``: its variables are the inventory's, so one its role does not know is refused (exit 2,
    roles.check_variables); the variables a container recorded (rollback, restore) are rendered as they are."""
    role = role_for(inventory, service)
    profile = profile_name(role, service, str(inventory.source))
    if from_inventory:
        check_variables(inventory, service, role)  # a typo (LOGLEVEL) would only move the config hash
    check_service(role, service, str(inventory.source))  # ROOT_DIR under the mount, a URL given twice
    if secrets is None:
        secrets = resolve(inventory, service, skip=() if admin else role.admin_secrets)
    rendered, nodes = rendering(role, profile, service, secrets, str(inventory.source))
    redact = Redactor([*secrets.values(), *masked], public_names(role, service))
    return Job(service, role, profile, rendered, redact, secrets, nodes)


def rendering(role: Role, profile: str, service: Service, secrets: Mapping[str, Secret],
              file: str | None = None) -> tuple[Rendered, dict[str, Rendered]]:  # fmt: skip
    """A Job's ``rendered`` and ``nodes``: each node's own (render.render_nodes) and the first node's as ``rendered``,
    when the role renders per node; else the service's one rendering and {}. Errors as render's (``file``: the
    inventory, for the error's line)."""
    nodes = render_nodes(role, profile, service, secrets, file=file)
    return (next(iter(nodes.values())) if nodes else render(role, profile, service, secrets, file=file)), nodes
